// The API keys page: table, filters, paging, create, edit, disable, regenerate,
// revoke, and the key for an AI agent.
import { api, qs, state, can } from './api.js';
import { h, id, field, select, notice, clear, timeEl, modal, fmtTime } from './dom.js';
import { permError, parsePerms } from './perm.js';
import { secretPanel, copyButton } from './secret.js';
import { sparkline } from './charts.js';

const PAGE = 20;
const view = { environment: '', status: '', cursors: [null], page: 0 };

export function resetKeysView() {
  view.environment = ''; view.status = ''; view.cursors = [null]; view.page = 0;
}

// A permissions picker: checkboxes for the workspace's permissions in use, plus a
// free-entry box validated as you type with the API's own rule.
function permissionsPicker(known, initial) {
  const chosen = new Set(initial || []);
  const gid = id('perm');
  const boxes = h('div', { class: 'row', role: 'group', 'aria-labelledby': `${gid}-legend` });
  const free = h('input', { type: 'text', id: `${gid}-free`, autocomplete: 'off', spellcheck: 'false',
    placeholder: 'e.g. content:read, files:*' });
  const freeField = field('Other permissions', free, 'resource:action, comma-separated; a segment may be *. Leave everything empty for a key with no permission.');
  const all = [...new Set(['*', ...known, ...chosen])].sort();
  const extra = [];
  for (const p of all) {
    const cb = h('input', { type: 'checkbox', value: p, id: id('pc'), checked: chosen.has(p) });
    boxes.append(h('label', { class: 'mono', for: cb.id }, cb, ' ', p));
    extra.push(cb);
  }
  const validate = () => {
    const bad = parsePerms(free.value).map(permError).find((e) => e);
    freeField.setError(bad || '');
    return !bad;
  };
  free.addEventListener('input', validate);
  const wrap = h('fieldset', {},
    h('legend', { id: `${gid}-legend`, text: 'Permissions' }),
    all.length ? boxes : h('p', { class: 'muted', text: 'No permissions are in use in this workspace yet.' }),
    freeField);
  wrap.value = () => {
    if (!validate()) return null;
    const out = new Set(extra.filter((c) => c.checked).map((c) => c.value));
    for (const p of parsePerms(free.value)) out.add(p);
    return [...out];
  };
  return wrap;
}

async function knownPermissions() {
  try {
    const r = await api('GET', '/v1/permissions');
    return (r && r.data) || [];
  } catch {
    return [];
  }
}

function intOrNull(v) {
  if (v === '' || v === undefined) return null;
  const n = Number(v);
  return Number.isInteger(n) && n >= 0 ? n : NaN;
}

// Advanced: daily spend cap and rate limit; returns fields + a reader.
function limitsFields(key) {
  const cap = h('input', { type: 'number', min: '0', step: '1', inputmode: 'numeric',
    value: key && key.daily_spend_cap !== null && key.daily_spend_cap !== undefined ? key.daily_spend_cap : '' });
  const rl = key && key.rate_limit;
  const limit = h('input', { type: 'number', min: '1', step: '1', inputmode: 'numeric', value: rl ? rl.limit : '' });
  const win = h('input', { type: 'number', min: '1', step: '1', inputmode: 'numeric', value: rl ? rl.window_s : '' });
  const fCap = field('Daily spend cap (credits)', cap, 'Empty: no cap. Resets at 00:00 UTC.');
  const fLimit = field('Rate limit: requests', limit, 'Empty: the server default.');
  const fWin = field('per window of (seconds)', win);
  const box = h('details', { open: key && (key.daily_spend_cap !== null || key.rate_limit) ? true : null },
    h('summary', { text: 'Advanced' }), h('div', { class: 'stack' }, fCap, h('div', { class: 'row' }, fLimit, fWin)));
  box.read = () => {
    let ok = true;
    const c = intOrNull(cap.value);
    fCap.setError(Number.isNaN(c) ? 'A whole number of 0 or more.' : '');
    if (Number.isNaN(c)) ok = false;
    const l = intOrNull(limit.value), w = intOrNull(win.value);
    fLimit.setError(''); fWin.setError('');
    let rate = null;
    if (l !== null || w !== null) {
      if (!l || l < 1) { fLimit.setError('At least 1 request.'); ok = false; }
      if (!w || w < 1) { fWin.setError('At least 1 second.'); ok = false; }
      rate = { limit: l, window_s: w };
    }
    return ok ? { daily_spend_cap: c, rate_limit: rate } : null;
  };
  return box;
}

function showError(where, e) {
  where.replaceChildren(notice('err', e.message || String(e)));
}

async function createKeyForm(host, refresh) {
  const known = await knownPermissions();
  const name = h('input', { type: 'text', required: true, maxlength: '200', autocomplete: 'off' });
  const env = select([['live', 'live'], ['test', 'test']], 'live');
  const expiry = select([['', 'Never'], ['3600', '1 hour'], ['86400', '1 day'], ['604800', '7 days'],
    ['2592000', '30 days'], ['7776000', '90 days'], ['31536000', '1 year']], '');
  const perms = permissionsPicker(known, []);
  const adv = limitsFields(null);
  const msg = h('div');
  const fName = field('Name', name, 'So you know where it is used, e.g. "ci" or "billing-service".');
  const form = h('form', { class: 'stack panel', 'aria-label': 'Create API key', novalidate: true },
    h('h2', { text: 'New API key' }),
    fName, field('Environment', env), perms, field('Expires', expiry), adv, msg,
    h('div', { class: 'actions' },
      h('button', { type: 'submit', class: 'primary', text: 'Create API key' }),
      h('button', { type: 'button', text: 'Cancel', onclick: () => form.remove() })));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    fName.setError(name.value.trim() ? '' : 'A key needs a name.');
    const p = perms.value();
    const limits = adv.read();
    if (!name.value.trim() || p === null || !limits) return;
    const body = { name: name.value.trim(), environment: env.value, permissions: p };
    if (expiry.value) body.expires_in = Number(expiry.value);
    if (limits.daily_spend_cap !== null) body.daily_spend_cap = limits.daily_spend_cap;
    if (limits.rate_limit) body.rate_limit = limits.rate_limit;
    try {
      const k = await api('POST', '/v1/keys', body);
      form.replaceWith(secretPanel({ title: `API key “${k.name}” created`, secret: k.secret, keyName: k.name }));
      refresh();
    } catch (e) {
      showError(msg, e);
    }
  });
  host.replaceChildren(form);
  name.focus();
}

async function agentKeyForm(host, refresh) {
  const known = await knownPermissions();
  const name = h('input', { type: 'text', maxlength: '200', value: 'agent', autocomplete: 'off' });
  const life = select([['900', '15 minutes'], ['3600', '1 hour'], ['14400', '4 hours'], ['28800', '8 hours'],
    ['86400', '24 hours']], '3600');
  const perms = permissionsPicker(known, []);
  const msg = h('div');
  const form = h('form', { class: 'stack panel', 'aria-label': 'Key for an AI agent', novalidate: true },
    h('h2', { text: 'Key for an AI agent' }),
    h('p', { class: 'muted', text: 'A temporary key that expires by itself within 24 hours. Give it only what the agent needs.' }),
    field('Name', name), field('Lifetime', life, 'At most 24 hours.'), perms, msg,
    h('div', { class: 'actions' },
      h('button', { type: 'submit', class: 'primary', text: 'Create key for agent' }),
      h('button', { type: 'button', text: 'Cancel', onclick: () => form.remove() })));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const p = perms.value();
    if (p === null) return;
    const body = { workspace_id: state.ws, expires_in: Number(life.value), permissions: p };
    if (name.value.trim()) body.name = name.value.trim();
    try {
      const k = await api('POST', '/v1/keys/generate-temp', body);
      const origin = window.location.origin;
      const text = [
        'You may call this API with a temporary key.',
        `Base URL: ${origin}`,
        `Send the key in the header: Authorization: Bearer ${k.key}`,
        `Permissions: ${(k.permissions || p).join(', ') || '(none)'}`,
        `It expires at ${k.expires_at} (${fmtTime(k.expires_at)}); after that every request answers 401 expired_key.`,
        `Check it with: curl -H "Authorization: Bearer ${k.key}" ${origin}/v1/auth-context`,
      ].join('\n');
      const status = h('span', { role: 'status', class: 'muted' });
      const iid = id('instr');
      const extra = h('div', {},
        h('h3', { id: iid, text: 'Instruction for the agent' }),
        h('pre', { 'data-testid': 'agent-instruction', text }),
        h('div', { class: 'actions' }, copyButton(text, 'Copy instruction', status), status));
      form.replaceWith(secretPanel({ title: 'Temporary key for the agent', secret: k.key, keyName: body.name || 'the agent key', extra }));
      refresh();
    } catch (e) {
      showError(msg, e);
    }
  });
  host.replaceChildren(form);
  name.focus();
}

async function editKey(k, refresh) {
  const known = await knownPermissions();
  await modal(`Edit “${k.name}”`, (done) => {
    const name = h('input', { type: 'text', value: k.name, maxlength: '200', required: true });
    const fName = field('Name', name);
    const perms = permissionsPicker(known, k.permissions);
    const adv = limitsFields(k);
    const msg = h('div');
    const form = h('form', { class: 'stack', novalidate: true }, fName, perms, adv, msg,
      h('div', { class: 'actions' },
        h('button', { type: 'submit', class: 'primary', text: 'Save' }),
        h('button', { type: 'button', text: 'Cancel', onclick: () => done(null) })));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      fName.setError(name.value.trim() ? '' : 'A key needs a name.');
      const p = perms.value();
      const limits = adv.read();
      if (!name.value.trim() || p === null || !limits) return;
      try {
        await api('PATCH', `/v1/keys/${encodeURIComponent(k.id)}`, { name: name.value.trim(), permissions: p, ...limits });
        done(true);
        refresh();
      } catch (e) {
        showError(msg, e);
      }
    });
    return form;
  });
}

function confirmRevoke(k) {
  return modal(`Revoke “${k.name}”?`, (done) => h('div', { class: 'stack' },
    h('p', {}, 'The key ', h('strong', { text: k.name }), ` (${k.hint}) stops working at once, everywhere. This cannot be undone.`),
    h('div', { class: 'actions' },
      h('button', { type: 'button', class: 'danger primary', text: 'Revoke', onclick: () => done(true) }),
      h('button', { type: 'button', text: 'Cancel', onclick: () => done(false) }))));
}

function askRegenerate(k) {
  return modal(`Regenerate “${k.name}”?`, (done) => {
    const grace = select([['0', 'None: the old secret stops now'], ['300', '5 minutes'], ['3600', '1 hour'],
      ['86400', '24 hours'], ['604800', '7 days']], '3600');
    return h('div', { class: 'stack' },
      h('p', { text: 'A new secret replaces the current one. During the grace period both work, so you can roll it out.' }),
      field('Grace period', grace),
      h('div', { class: 'actions' },
        h('button', { type: 'button', class: 'primary', text: 'Regenerate', onclick: () => done(Number(grace.value)) }),
        h('button', { type: 'button', text: 'Cancel', onclick: () => done(null) })));
  });
}

function keyRow(k, ctx) {
  const nameId = id('kn');
  const app = k.kind === 'application';
  const live = k.status !== 'revoked';
  const spark = h('canvas', { class: 'spark', role: 'img', 'aria-label': 'checks in the last 36 hours: loading', 'data-key-id': k.id });
  const cells = [
    ['Name', [h('span', { id: nameId, class: 'key-name' }, k.name), app ? [' ', h('span', { class: 'badge application', text: 'application key' })] : null]],
    ['Hint', h('code', { text: k.hint })],
    ['Environment', k.environment],
    ['Kind', k.kind],
    ['Permissions', h('span', { class: 'perms' }, (k.permissions || []).length ? k.permissions.map((p) => h('code', { text: p })) : h('span', { class: 'muted', text: 'none' }))],
    ['Created', timeEl(k.created_at)],
    ['Last used', timeEl(k.last_used_at)],
    ['Expires', timeEl(k.expires_at)],
    ['Status', h('span', { class: `badge ${k.status}`, text: k.status })],
    ['Last 36 h', spark],
  ];
  const actions = h('div', { class: 'actions' });
  if (state.me && state.me.routes) {
    actions.append(h('a', { class: 'button small', href: `/v1/keys/${encodeURIComponent(k.id)}/openapi?workspace_id=${encodeURIComponent(state.ws)}`,
      target: '_blank', rel: 'noopener', 'aria-describedby': nameId, text: 'API docs' }));
  }
  // Root keys are changed only with an unrestricted root key, application keys
  // only by owners (the API refuses the rest; the page does not offer it).
  const mayChange = can.write() && live && k.kind !== 'root' && (!app || can.owner());
  if (mayChange) {
    const btn = (text, cls, fn) => h('button', { type: 'button', class: `small ${cls}`, 'aria-describedby': nameId, text, onclick: fn });
    actions.append(btn('Edit', '', () => editKey(k, ctx.refresh)));
    if (!app) {
      actions.append(btn(k.enabled ? 'Disable' : 'Enable', '', async () => {
        try {
          await api('PATCH', `/v1/keys/${encodeURIComponent(k.id)}`, { enabled: !k.enabled });
          ctx.refresh();
        } catch (e) { showError(ctx.msg, e); }
      }));
    }
    actions.append(btn('Regenerate', '', async () => {
      const grace = await askRegenerate(k);
      if (grace === null) return;
      try {
        const r = await api('POST', `/v1/keys/${encodeURIComponent(k.id)}/regenerate`, { grace_period_s: grace });
        ctx.panel.replaceChildren(secretPanel({ title: `New secret for “${r.name}”`, secret: r.secret, keyName: r.name }));
        ctx.refresh();
      } catch (e) { showError(ctx.msg, e); }
    }));
    if (!app) {
      actions.append(btn('Revoke', 'danger', async () => {
        if (!(await confirmRevoke(k))) return;
        try {
          await api('DELETE', `/v1/keys/${encodeURIComponent(k.id)}`);
          ctx.msg.replaceChildren(notice('ok', `“${k.name}” is revoked.`));
          ctx.refresh();
        } catch (e) { showError(ctx.msg, e); }
      }));
    }
  }
  const tr = h('tr', { 'data-key-id': k.id },
    cells.map(([label, v]) => h('td', { 'data-label': label }, v)),
    h('td', { 'data-label': 'Actions' }, actions));
  return { tr, spark };
}

async function loadSparks(items) {
  const from = Math.floor(Date.now() / 1000) - 35 * 3600;
  await Promise.all(items.map(async ({ id: kid, spark }) => {
    try {
      const u = await api('GET', `/v1/keys/${encodeURIComponent(kid)}/usage${qs({ granularity: 'hour', from })}`);
      sparkline(spark, u);
    } catch {
      spark.setAttribute('aria-label', 'usage unavailable');
    }
  }));
}

export async function keysPage(main) {
  const panel = h('div', { 'aria-live': 'polite' });
  const msg = h('div');
  const tableHost = h('div');
  const formHost = h('div');
  const envSel = select([['', 'All'], ['live', 'live'], ['test', 'test']], view.environment);
  const statusSel = select([['', 'All'], ['active', 'active'], ['disabled', 'disabled'], ['expired', 'expired'], ['revoked', 'revoked']], view.status);
  const onFilter = () => {
    view.environment = envSel.value; view.status = statusSel.value; view.cursors = [null]; view.page = 0;
    load();
  };
  envSel.addEventListener('change', onFilter);
  statusSel.addEventListener('change', onFilter);
  const toolbar = h('div', { class: 'row' });
  if (can.write()) {
    toolbar.append(
      h('button', { type: 'button', class: 'primary', text: 'Create API key', onclick: () => createKeyForm(formHost, load) }),
      h('button', { type: 'button', text: 'Key for an AI agent', onclick: () => agentKeyForm(formHost, load) }));
  }
  const filters = h('form', { class: 'row', role: 'search', 'aria-label': 'Filter keys', onsubmit: (e) => e.preventDefault() },
    field('Environment', envSel), field('Status', statusSel));
  main.replaceChildren(h('h1', { text: 'API keys' }), toolbar, formHost, panel, filters, msg, tableHost);

  const ctx = { panel, msg, refresh: () => load() };
  async function load() {
    const cursor = view.cursors[view.page];
    let r;
    try {
      r = await api('GET', `/v1/keys${qs({ limit: PAGE, cursor, environment: view.environment, status: view.status })}`);
    } catch (e) {
      showError(tableHost, e);
      return;
    }
    const keys = (r.data || []).slice().sort((a, b) => (b.created_at || '').localeCompare(a.created_at || ''));
    view.cursors[view.page + 1] = r.next_cursor || null;
    const rows = keys.map((k) => ({ id: k.id, ...keyRow(k, ctx) }));
    const heads = ['Name', 'Hint', 'Environment', 'Kind', 'Permissions', 'Created', 'Last used', 'Expires', 'Status', 'Last 36 h', 'Actions'];
    const table = h('table', { class: 'keys' },
      h('caption', { class: 'sr-only', text: 'API keys, newest first' }),
      h('thead', {}, h('tr', {}, heads.map((t) => h('th', { scope: 'col', text: t })))),
      h('tbody', {}, rows.length ? rows.map((x) => x.tr) : h('tr', {}, h('td', { colspan: String(heads.length), class: 'muted', text: 'No keys match.' }))));
    const pager = h('nav', { class: 'row', 'aria-label': 'Pages of keys' },
      h('button', { type: 'button', text: 'Previous page', disabled: view.page === 0, onclick: () => { view.page -= 1; load(); } }),
      h('span', { class: 'muted', text: `Page ${view.page + 1}` }),
      h('button', { type: 'button', text: 'Next page', disabled: !r.next_cursor, onclick: () => { view.page += 1; load(); } }));
    tableHost.replaceChildren(h('div', { class: 'table-wrap' }, table), pager);
    loadSparks(rows);
  }
  await load();
}
