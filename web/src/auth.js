// Sign-in and the invitation page.
import { api, ApiError } from './api.js';
import { h, field, notice } from './dom.js';

export function signInPage(main, onSignedIn, reason) {
  const email = h('input', { type: 'email', autocomplete: 'username', required: true });
  const password = h('input', { type: 'password', autocomplete: 'current-password', required: true });
  const msg = h('div', { 'aria-live': 'polite' }, reason ? notice('err', reason) : null);
  const form = h('form', { class: 'stack', 'aria-label': 'Sign in', novalidate: true },
    field('Email', email), field('Password', password), msg,
    h('button', { type: 'submit', class: 'primary', text: 'Sign in' }));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      await api('POST', '/v1/auth/login', { email: email.value.trim(), password: password.value }, { noWorkspace: true, quiet401: true });
      password.value = '';
      onSignedIn();
    } catch (e) {
      msg.replaceChildren(notice('err', e instanceof ApiError && e.status === 401 ? 'Wrong email or password.' : e.message));
    }
  });
  main.replaceChildren(h('div', { class: 'center' }, h('h1', { text: 'Sign in to latchkey' }), form));
  email.focus();
}

export function invitePage(main, token, onSignedIn) {
  const password = h('input', { type: 'password', autocomplete: 'new-password', required: true, minlength: '8', maxlength: '200' });
  const fPassword = field('Password', password, 'New to latchkey? Choose a password (8–200 characters). Already have an account? Give your current password.');
  const msg = h('div', { 'aria-live': 'polite' });
  const form = h('form', { class: 'stack', 'aria-label': 'Accept the invitation', novalidate: true },
    fPassword, msg,
    h('button', { type: 'submit', class: 'primary', text: 'Accept invitation' }));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const pw = password.value;
    const n = new TextEncoder().encode(pw).length;
    if (n < 8 || n > 200) { fPassword.setError('A password has 8 to 200 characters.'); return; }
    fPassword.setError('');
    try {
      const r = await api('POST', '/v1/invitations/accept', { token, password: pw }, { noWorkspace: true, quiet401: true });
      await api('POST', '/v1/auth/login', { email: r.email, password: pw }, { noWorkspace: true, quiet401: true });
      password.value = '';
      history.replaceState(null, '', '#/keys');
      onSignedIn(r.workspace_id);
    } catch (e) {
      let text = e.message;
      if (e.code === 'invalid_invitation') text = 'This invitation is not valid: it may have been used, cancelled or have expired. Ask for a new one.';
      else if (e.code === 'invalid_credentials') text = 'You already have an account: give its current password.';
      msg.replaceChildren(notice('err', text));
    }
  });
  main.replaceChildren(h('div', { class: 'center' }, h('h1', { text: 'Join a workspace' }),
    h('p', { text: 'You have been invited to a latchkey workspace.' }), form));
  password.focus();
}
