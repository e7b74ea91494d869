// The shown-once panel. The secret lives only in this panel's DOM and in the
// closure of its Copy button; it is never stored, logged or sent anywhere, and
// the QR code is drawn on a canvas in the page.
import QRCode from 'qrcode';
import { h, id } from './dom.js';

async function copyText(text, btn, status) {
  try {
    await navigator.clipboard.writeText(text);
    status.textContent = 'Copied to the clipboard.';
  } catch {
    // No clipboard permission: select the text so the person can copy it themselves.
    const target = btn.closest('.secret-panel').querySelector('.secret');
    const range = document.createRange();
    range.selectNodeContents(target);
    const sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
    status.textContent = 'Selected: press Ctrl+C (or ⌘C) to copy.';
  }
}

export function copyButton(text, label = 'Copy', status) {
  const st = status || h('span', { role: 'status', class: 'muted' });
  const btn = h('button', { type: 'button', class: 'primary', text: label });
  btn.addEventListener('click', () => copyText(text, btn, st));
  return status ? btn : [btn, ' ', st];
}

// title: the panel's heading; extra: nodes shown under the warning (e.g. the
// agent's instruction). onDone removes the panel and with it the secret.
export function secretPanel({ title, secret, keyName, extra, onDone }) {
  const hid = id('sec');
  const status = h('span', { role: 'status', class: 'muted' });
  const canvas = h('canvas', {
    class: 'qr', role: 'img', 'aria-label': `QR code of the secret of ${keyName}`, 'data-testid': 'secret-qr',
  });
  QRCode.toCanvas(canvas, secret, { errorCorrectionLevel: 'M', margin: 4, scale: 4 }).catch(() => {
    canvas.replaceWith(h('p', { class: 'error', text: 'The QR code could not be drawn.' }));
  });
  const panel = h('section', { class: 'panel secret-panel', 'aria-labelledby': hid, 'data-testid': 'secret-panel' },
    h('h2', { id: hid, tabindex: '-1', text: title }),
    h('p', { class: 'warning', role: 'note' },
      h('strong', { text: 'Copy this secret now. ' }),
      'It will not be shown again: latchkey keeps only its hash. If you lose it, regenerate the key.'),
    h('p', { class: 'label', text: `Secret of ${keyName}:` }),
    h('code', { class: 'secret', 'data-testid': 'secret', text: secret }),
    h('div', { class: 'actions' }, copyButton(secret, 'Copy', status), status),
    canvas,
    extra || null,
    h('div', { class: 'actions' }, h('button', { type: 'button', text: 'Done, I have stored it', onclick: () => {
      panel.remove();
      if (onDone) onDone();
    } })));
  // Move focus to the panel so keyboard and screen-reader users land on it.
  requestAnimationFrame(() => panel.querySelector('h2').focus());
  return panel;
}
