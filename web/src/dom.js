// Tiny DOM helpers. Everything is built with createElement and textContent, never
// innerHTML, so nothing from the API is ever parsed as markup; and no style
// attribute is ever set, so the strict CSP (style-src 'self') holds.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = v;
      else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (k === 'value') el.value = v;
      else if (k === 'checked' || k === 'selected' || k === 'disabled') el[k] = !!v;
      else if (k === 'style') throw new Error('style attributes are refused by the CSP');
      else el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

let uid = 0;
export function id(prefix = 'f') {
  uid += 1;
  return `${prefix}-${uid}`;
}

// A labelled form field: <label for> + control + optional hint and error line.
export function field(label, control, hint) {
  const cid = control.id || id('f');
  control.id = cid;
  const err = h('div', { class: 'error', id: `${cid}-err`, 'aria-live': 'polite' });
  const parts = [h('label', { for: cid, text: label }), control];
  const described = [err.id];
  if (hint) {
    const hi = h('div', { class: 'hint', id: `${cid}-hint`, text: hint });
    parts.push(hi);
    described.unshift(hi.id);
  }
  control.setAttribute('aria-describedby', described.join(' '));
  parts.push(err);
  const wrap = h('div', { class: 'field' }, parts);
  wrap.setError = (msg) => {
    err.textContent = msg || '';
    if (msg) control.setAttribute('aria-invalid', 'true');
    else control.removeAttribute('aria-invalid');
  };
  return wrap;
}

export function select(options, value, attrs = {}) {
  return h('select', attrs, options.map(([v, label]) => h('option', { value: v, selected: v === value, text: label })));
}

export function notice(kind, text) {
  return h('div', { class: `notice ${kind}`, role: kind === 'err' ? 'alert' : 'status', text });
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export function fmtTime(t) {
  if (!t) return '—';
  const d = new Date(t);
  if (Number.isNaN(d.getTime())) return String(t);
  return d.toISOString().replace('T', ' ').replace(/:\d\d(\.\d+)?Z$/, ' UTC');
}

export function timeEl(t) {
  if (!t) return h('span', { class: 'muted', text: t === null ? 'never' : '—' });
  const [day, clock] = fmtTime(t).split(/ (.*)/);
  return h('time', { datetime: t }, h('span', { text: day }), ' ', h('span', { text: clock || '' }));
}

// A modal dialog; resolves with the value passed to close, or null when dismissed.
export function modal(title, build) {
  return new Promise((resolve) => {
    const hid = id('dlg');
    const dlg = h('dialog', { 'aria-labelledby': hid });
    let result = null;
    const done = (v) => { result = v; dlg.close(); };
    dlg.append(h('h2', { id: hid, text: title }), build(done));
    dlg.addEventListener('close', () => { dlg.remove(); resolve(result); });
    document.body.appendChild(dlg);
    dlg.showModal();
  });
}
