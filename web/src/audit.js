// The audit log with filters by actor, action and time, newest first.
import { api, qs } from './api.js';
import { h, field, notice, timeEl } from './dom.js';

const ACTIONS = ['key.', 'key.create', 'key.update', 'key.revoke', 'key.regenerate', 'key.generate_temp', 'key.import',
  'invitation.', 'invitation.create', 'invitation.accept', 'invitation.revoke', 'member.', 'member.update', 'member.remove',
  'credits.top_up', 'auth.', 'auth.login', 'auth.login_failed', 'auth.logout', 'workspace.create', 'workspace.set_quota'];

function toUnix(v) {
  if (!v) return '';
  const t = Date.parse(`${v}:00Z`);
  return Number.isNaN(t) ? '' : String(Math.floor(t / 1000));
}

export async function auditPage(main) {
  const actor = h('input', { type: 'text', autocomplete: 'off', spellcheck: 'false', placeholder: 'key_… or usr_…' });
  const action = h('input', { type: 'text', autocomplete: 'off', spellcheck: 'false', list: 'audit-actions', placeholder: 'key. or key.create' });
  const from = h('input', { type: 'datetime-local' });
  const to = h('input', { type: 'datetime-local' });
  const list = h('datalist', { id: 'audit-actions' }, ACTIONS.map((a) => h('option', { value: a })));
  const host = h('div');
  const cursors = [null];
  let page = 0;
  const form = h('form', { class: 'row', role: 'search', 'aria-label': 'Filter the audit log' },
    field('Actor', actor), field('Action', action, 'Exact, or a prefix ending in "."'), field('From (UTC)', from), field('To (UTC)', to),
    list, h('button', { type: 'submit', class: 'primary', text: 'Filter' }));
  form.addEventListener('submit', (ev) => { ev.preventDefault(); cursors.length = 1; page = 0; load(); });
  main.replaceChildren(h('h1', { text: 'Audit log' }), form, host);

  async function load() {
    let r;
    try {
      r = await api('GET', `/v1/audit${qs({ limit: 50, cursor: cursors[page], actor: actor.value.trim(), action: action.value.trim(), from: toUnix(from.value), to: toUnix(to.value) })}`);
    } catch (e) { host.replaceChildren(notice('err', e.message)); return; }
    cursors[page + 1] = r.next_cursor || null;
    const rows = (r.data || []).map((e) => h('tr', {}, h('td', {}, timeEl(e.created_at)), h('td', { class: 'mono', text: e.action }),
      h('td', { class: 'mono', text: e.actor || '' }), h('td', { class: 'mono', text: e.target || '' }), h('td', { class: 'mono', text: e.address || '' })));
    host.replaceChildren(h('div', { class: 'table-wrap' }, h('table', {},
      h('caption', { class: 'sr-only', text: 'Audit events, newest first' }),
      h('thead', {}, h('tr', {}, ['When', 'Action', 'Actor', 'Target', 'Address'].map((t) => h('th', { scope: 'col', text: t })))),
      h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: '5', class: 'muted', text: 'No events match.' }))))),
    h('nav', { class: 'row', 'aria-label': 'Pages of the audit log' },
      h('button', { type: 'button', text: 'Newer', disabled: page === 0, onclick: () => { page -= 1; load(); } }),
      h('button', { type: 'button', text: 'Older', disabled: !r.next_cursor, onclick: () => { page += 1; load(); } })));
  }
  await load();
}
