// The latchkey dashboard: a single page over the JSON API and the session cookie.
// Routes live in the hash (#/keys, #/usage, #/members, #/audit, #/invite/<token>,
// #/signin) so the server serves one page for all of them.
import { api, state, setUnauthorizedHandler } from './api.js';
import { h, select, notice } from './dom.js';
import { signInPage, invitePage } from './auth.js';
import { keysPage, resetKeysView } from './keys.js';
import { usagePage, dropCharts } from './usage.js';
import { membersPage } from './members.js';
import { auditPage } from './audit.js';

const main = document.getElementById('main');
const top = document.getElementById('top');
const WS_KEY = 'latchkey.workspace'; // only the chosen workspace id, never a secret

const PAGES = {
  keys: { title: 'API keys', render: keysPage },
  usage: { title: 'Usage', render: usagePage },
  members: { title: 'Members', render: membersPage },
  audit: { title: 'Audit log', render: auditPage },
};

function route() {
  const raw = window.location.hash.replace(/^#\/?/, '');
  const [name, ...rest] = raw.split('/');
  return { name: name || 'keys', arg: rest.join('/') };
}

function go(hash) {
  if (window.location.hash === hash) render();
  else window.location.hash = hash;
}

async function loadMe() {
  try {
    state.me = await api('GET', '/v1/me', undefined, { noWorkspace: true, quiet401: true });
  } catch (e) {
    state.me = null;
    if (e.status !== 401) throw e;
    return false;
  }
  const ms = state.me.memberships || [];
  const saved = sessionStorage.getItem(WS_KEY);
  const pick = ms.find((m) => m.workspace_id === saved) || ms.find((m) => m.workspace_id === state.ws) || ms[0];
  state.ws = pick ? pick.workspace_id : null;
  state.role = pick ? pick.role : null;
  return true;
}

function setWorkspace(wsId) {
  const m = (state.me.memberships || []).find((x) => x.workspace_id === wsId);
  if (!m) return;
  state.ws = m.workspace_id;
  state.role = m.role;
  sessionStorage.setItem(WS_KEY, wsId);
  resetKeysView();
}

function header(current) {
  top.replaceChildren();
  top.append(h('span', { class: 'brand', text: 'latchkey' }));
  if (!state.me) return;
  const links = Object.entries(PAGES).map(([k, p]) => h('li', {},
    h('a', { href: `#/${k}`, 'aria-current': k === current ? 'page' : null, text: p.title })));
  top.append(h('nav', { 'aria-label': 'Main' }, h('ul', {}, links)));
  const who = h('div', { class: 'who' });
  const ms = state.me.memberships || [];
  if (ms.length > 1) {
    const sel = select(ms.map((m) => [m.workspace_id, `${m.workspace_name || m.workspace_id} (${m.role})`]), state.ws,
      { id: 'ws-switch' });
    sel.addEventListener('change', () => { setWorkspace(sel.value); render(); });
    who.append(h('label', { for: 'ws-switch', text: 'Workspace' }), sel);
  } else if (ms.length === 1) {
    who.append(h('span', { class: 'muted', text: `${ms[0].workspace_id} · ${state.role}` }));
  }
  who.append(h('span', { text: state.me.user ? state.me.user.email : '' }),
    h('button', { type: 'button', class: 'small', text: 'Sign out', onclick: signOut }));
  top.append(who);
}

async function signOut() {
  try { await api('POST', '/v1/auth/logout', undefined, { quiet401: true }); } catch { /* already gone */ }
  state.me = null; state.ws = null; state.role = null;
  sessionStorage.removeItem(WS_KEY);
  go('#/signin');
}

let rendering = 0;
async function render() {
  const my = ++rendering;
  dropCharts();
  for (const d of document.querySelectorAll('dialog')) d.remove();
  const r = route();
  if (r.name === 'invite') {
    state.me = null;
    header(null);
    document.title = 'Join a workspace · latchkey';
    invitePage(main, decodeURIComponent(r.arg || ''), async (wsId) => {
      if (wsId) sessionStorage.setItem(WS_KEY, wsId);
      go('#/keys');
    });
    return;
  }
  let signedIn = false;
  try {
    signedIn = state.me ? true : await loadMe();
  } catch (e) {
    main.replaceChildren(notice('err', `latchkey does not answer: ${e.message}`));
    return;
  }
  if (my !== rendering) return;
  if (!signedIn || r.name === 'signin') {
    if (signedIn && r.name === 'signin') { go('#/keys'); return; }
    header(null);
    document.title = 'Sign in · latchkey';
    signInPage(main, async () => { state.me = null; await loadMe(); go('#/keys'); });
    return;
  }
  const page = PAGES[r.name];
  if (!page) { go('#/keys'); return; }
  header(r.name);
  document.title = `${page.title} · latchkey`;
  if (!state.ws) {
    main.replaceChildren(h('h1', { text: page.title }), notice('err', 'You are not a member of any workspace yet. Ask an owner for an invitation.'));
    return;
  }
  main.replaceChildren(h('p', { text: 'Loading…' }));
  try {
    await page.render(main);
  } catch (e) {
    main.replaceChildren(h('h1', { text: page.title }), notice('err', e.message));
  }
  main.focus({ preventScroll: true });
}

setUnauthorizedHandler(() => {
  state.me = null;
  if (route().name !== 'invite') go('#/signin');
});
window.addEventListener('hashchange', render);
render();
