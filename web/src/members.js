// Members: the list for everyone; invite, change role, remove and revoke
// invitations for owners. An invitation is a link shown once to the inviter.
import { api, state, can } from './api.js';
import { h, field, select, notice, timeEl, modal } from './dom.js';
import { copyButton } from './secret.js';

const ROLES = [['viewer', 'viewer'], ['editor', 'editor'], ['owner', 'owner']];

export async function membersPage(main) {
  const msg = h('div');
  const listHost = h('div');
  const invHost = h('div');
  const linkHost = h('div', { 'aria-live': 'polite' });
  const parts = [h('h1', { text: 'Members' }), msg];
  if (can.owner()) {
    const email = h('input', { type: 'email', required: true, autocomplete: 'off' });
    const role = select(ROLES, 'viewer');
    const fEmail = field('Email', email);
    const form = h('form', { class: 'row panel', 'aria-label': 'Invite a member', novalidate: true },
      fEmail, field('Role', role), h('button', { type: 'submit', class: 'primary', text: 'Invite' }));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const v = email.value.trim();
      if (!/^[^\s@]+@[^\s@]+$/.test(v)) { fEmail.setError('An email address, e.g. ada@example.com.'); return; }
      fEmail.setError('');
      try {
        const inv = await api('POST', '/v1/members', { email: v, role: role.value });
        const link = `${window.location.origin}/#/invite/${encodeURIComponent(inv.token)}`;
        const status = h('span', { role: 'status', class: 'muted' });
        linkHost.replaceChildren(h('section', { class: 'panel secret-panel', 'aria-label': 'Invitation link' },
          h('h2', { text: `Invitation for ${inv.email} (${inv.role})` }),
          h('p', { class: 'warning', text: 'Send this link to them yourself. It is shown only now, works once, and expires in 7 days.' }),
          h('code', { class: 'secret', 'data-testid': 'invite-link', text: link }),
          h('div', { class: 'actions' }, copyButton(link, 'Copy', status), status,
            h('button', { type: 'button', text: 'Done', onclick: () => linkHost.replaceChildren() }))));
        email.value = '';
        loadInvitations();
      } catch (e) { msg.replaceChildren(notice('err', e.message)); }
    });
    parts.push(form, linkHost);
  }
  parts.push(listHost);
  if (can.owner()) parts.push(h('h2', { text: 'Pending invitations' }), invHost);
  main.replaceChildren(...parts);

  async function loadMembers() {
    let r;
    try { r = await api('GET', '/v1/members'); } catch (e) { listHost.replaceChildren(notice('err', e.message)); return; }
    const rows = (r.data || []).map((m) => {
      let roleCell = m.role;
      const actions = h('div', { class: 'actions' });
      if (can.owner()) {
        const sel = select(ROLES, m.role, { 'aria-label': `Role of ${m.email}` });
        sel.addEventListener('change', async () => {
          try {
            await api('PATCH', `/v1/members/${encodeURIComponent(m.user_id)}`, { role: sel.value });
            msg.replaceChildren(notice('ok', `${m.email} is now ${sel.value}.`));
          } catch (e) { sel.value = m.role; msg.replaceChildren(notice('err', e.message)); }
        });
        roleCell = sel;
        actions.append(h('button', { type: 'button', class: 'small danger', text: 'Remove', 'aria-label': `Remove ${m.email}`, onclick: async () => {
          const ok = await modal(`Remove ${m.email}?`, (done) => h('div', { class: 'stack' },
            h('p', { text: `${m.email} loses access to this workspace at once.` }),
            h('div', { class: 'actions' }, h('button', { type: 'button', class: 'danger primary', text: 'Remove member', onclick: () => done(true) }),
              h('button', { type: 'button', text: 'Cancel', onclick: () => done(false) }))));
          if (!ok) return;
          try { await api('DELETE', `/v1/members/${encodeURIComponent(m.user_id)}`); loadMembers(); } catch (e) { msg.replaceChildren(notice('err', e.message)); }
        } }));
      }
      const you = state.me && state.me.user && state.me.user.id === m.user_id;
      return h('tr', {}, h('td', {}, m.email, you ? h('span', { class: 'muted', text: ' (you)' }) : null),
        h('td', {}, roleCell), h('td', {}, timeEl(m.created_at)), h('td', {}, actions));
    });
    listHost.replaceChildren(h('div', { class: 'table-wrap' }, h('table', {},
      h('caption', { class: 'sr-only', text: 'Members of this workspace' }),
      h('thead', {}, h('tr', {}, ['Email', 'Role', 'Since', 'Actions'].map((t) => h('th', { scope: 'col', text: t })))),
      h('tbody', {}, rows))));
  }
  async function loadInvitations() {
    if (!can.owner()) return;
    let r;
    try { r = await api('GET', '/v1/invitations'); } catch (e) { invHost.replaceChildren(notice('err', e.message)); return; }
    const rows = (r.data || []).map((i) => h('tr', {}, h('td', { text: i.email }), h('td', { text: i.role }),
      h('td', {}, timeEl(i.expires_at)),
      h('td', {}, h('button', { type: 'button', class: 'small danger', text: 'Cancel invitation', 'aria-label': `Cancel invitation of ${i.email}`, onclick: async () => {
        try { await api('DELETE', `/v1/invitations/${encodeURIComponent(i.id)}`); loadInvitations(); } catch (e) { msg.replaceChildren(notice('err', e.message)); }
      } }))));
    invHost.replaceChildren(rows.length ? h('div', { class: 'table-wrap' }, h('table', {},
      h('caption', { class: 'sr-only', text: 'Pending invitations' }),
      h('thead', {}, h('tr', {}, ['Email', 'Role', 'Expires', 'Actions'].map((t) => h('th', { scope: 'col', text: t })))),
      h('tbody', {}, rows))) : h('p', { class: 'muted', text: 'None.' }));
  }
  await Promise.all([loadMembers(), loadInvitations()]);
}
