// Usage: the workspace's and each key's checks over 30 days by outcome, the
// rolling quota, and the credit balance with its ledger (top-up for owners).
import { api, qs, can } from './api.js';
import { h, field, select, notice, timeEl } from './dom.js';
import { usageChart } from './charts.js';

let charts = [];
function dropCharts() { charts.forEach((c) => c.destroy()); charts = []; }

function num(v) { return v === null || v === undefined ? 'unlimited' : Number(v).toLocaleString('en-US'); }

function chartBox(label) {
  const canvas = h('canvas', { 'data-testid': 'usage-chart' });
  return { canvas, box: h('div', { class: 'chart-box' }, canvas), label };
}

function quotaCard(title, q) {
  return h('div', { class: 'card' }, h('h3', { text: title }),
    h('div', { class: 'big', text: `${num(q.used)}` }),
    h('div', { class: 'muted', text: `of ${num(q.limit)} valid checks in 30 days; ${num(q.remaining)} left` }));
}

async function creditsSection(host) {
  let c;
  try {
    c = await api('GET', '/v1/credits');
  } catch (e) {
    host.replaceChildren(notice('err', e.message));
    return;
  }
  const rows = (c.ledger || []).map((e) => h('tr', {},
    h('td', {}, timeEl(e.created_at)), h('td', { text: e.kind.replace(/_/g, ' ') }),
    h('td', { class: 'mono', text: String(e.amount) }), h('td', { text: e.note || '' }), h('td', { class: 'mono', text: e.actor || '' })));
  const parts = [
    h('div', { class: 'cards' },
      h('div', { class: 'card' }, h('h3', { text: 'Balance' }), h('div', { class: 'big', 'data-testid': 'balance', text: num(c.balance) }), h('div', { class: 'muted', text: 'credits' })),
      h('div', { class: 'card' }, h('h3', { text: 'Topped up' }), h('div', { class: 'big', text: num(c.topped_up) })),
      h('div', { class: 'card' }, h('h3', { text: 'Spent' }), h('div', { class: 'big', text: num(c.spent) }))),
  ];
  if (can.owner()) {
    const amount = h('input', { type: 'number', min: '1', step: '1', inputmode: 'numeric', required: true });
    const note = h('input', { type: 'text', maxlength: '200' });
    const fAmount = field('Amount', amount);
    const msg = h('div');
    const form = h('form', { class: 'row', 'aria-label': 'Top up credits', novalidate: true }, fAmount, field('Note', note),
      h('button', { type: 'submit', class: 'primary', text: 'Top up' }), msg);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const n = Number(amount.value);
      if (!Number.isInteger(n) || n < 1) { fAmount.setError('A whole number of credits, at least 1.'); return; }
      fAmount.setError('');
      try {
        const body = { amount: n };
        if (note.value.trim()) body.note = note.value.trim();
        await api('POST', '/v1/credits', body);
        creditsSection(host);
      } catch (e) { msg.replaceChildren(notice('err', e.message)); }
    });
    parts.push(h('h3', { text: 'Top up' }), form);
  }
  parts.push(h('h3', { text: 'Ledger' }), h('div', { class: 'table-wrap' }, h('table', {},
    h('caption', { class: 'sr-only', text: 'Credit ledger, newest first' }),
    h('thead', {}, h('tr', {}, ['When', 'Kind', 'Amount', 'Note', 'By'].map((t) => h('th', { scope: 'col', text: t })))),
    h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: '5', class: 'muted', text: 'No entries yet.' }))))));
  host.replaceChildren(...parts);
}

export async function usagePage(main) {
  dropCharts();
  const from = Math.floor(Date.now() / 1000) - 29 * 86400;
  const ws = chartBox('Checks of the whole workspace, last 30 days');
  const keySel = select([['', 'Choose a key']], '');
  const quotaHost = h('div', { class: 'cards' });
  const creditHost = h('div');
  const keyHost = h('div', {}, h('p', { class: 'muted', text: 'Choose a key to see its checks.' }));
  main.replaceChildren(
    h('h1', { text: 'Usage' }),
    h('section', { 'aria-labelledby': 'u-ws' }, h('h2', { id: 'u-ws', text: 'Checks of the workspace (30 days, by outcome)' }), ws.box),
    h('section', { 'aria-labelledby': 'u-q' }, h('h2', { id: 'u-q', text: 'Quota (rolling 30 days)' }), quotaHost),
    h('section', { 'aria-labelledby': 'u-k' }, h('h2', { id: 'u-k', text: 'Checks of one key' }), field('Key', keySel), keyHost),
    h('section', { 'aria-labelledby': 'u-c' }, h('h2', { id: 'u-c', text: 'Credits' }), creditHost));

  const tasks = [];
  tasks.push(api('GET', `/v1/usage${qs({ granularity: 'day', from })}`).then((u) => {
    charts.push(usageChart(ws.canvas, u, ws.label));
  }).catch((e) => ws.box.replaceWith(notice('err', `Workspace usage: ${e.message}`))));
  tasks.push(api('GET', '/v1/quota').then((q) => {
    quotaHost.replaceChildren(quotaCard('Live keys', q.live || {}), quotaCard('Test keys', q.test || {}));
  }).catch((e) => quotaHost.replaceChildren(notice('err', e.message))));
  tasks.push(creditsSection(creditHost));
  tasks.push(api('GET', `/v1/keys${qs({ limit: 100 })}`).then((r) => {
    for (const k of r.data || []) keySel.append(h('option', { value: k.id, text: `${k.name} (${k.hint})` }));
  }).catch(() => {}));
  let kc = null;
  keySel.addEventListener('change', async () => {
    if (kc) { kc.destroy(); kc = null; }
    if (!keySel.value) return;
    const c = chartBox(`Checks of ${keySel.selectedOptions[0].textContent}, last 30 days`);
    keyHost.replaceChildren(c.box);
    try {
      const u = await api('GET', `/v1/keys/${encodeURIComponent(keySel.value)}/usage${qs({ granularity: 'day', from })}`);
      kc = usageChart(c.canvas, u, c.label);
      charts.push(kc);
    } catch (e) { keyHost.replaceChildren(notice('err', e.message)); }
  });
  await Promise.all(tasks);
}

export { dropCharts };
