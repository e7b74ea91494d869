// The dashboard in Debian's Chromium, driven by Playwright, against a real latchkey.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import AxeBuilder from '@axe-core/playwright';
import jsQR from 'jsqr';
import { startLatchkey, call, OWNER, VIEWER, REPO } from './harness.mjs';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SHOTS = process.env.LATCHKEY_SCREENSHOTS ? join(REPO, 'docs', 'screenshots') : null;

let lk, browser, owner;
const contexts = [];
const requests = []; // every request any page made: {url, method, headers, postData}
const cspErrors = [];

async function newPage(viewport = { width: 1280, height: 900 }) {
  const ctx = await browser.newContext({ viewport, baseURL: lk.base });
  contexts.push(ctx);
  ctx.on('request', (r) => requests.push({ url: r.url(), method: r.method(), headers: r.headers(), postData: r.postData() }));
  const page = await ctx.newPage();
  page.on('console', (m) => { if (/Content Security Policy|Refused to/i.test(m.text())) cspErrors.push(m.text()); });
  return page;
}

async function signIn(page, who) {
  await page.goto('/#/signin');
  await page.getByLabel('Email').fill(who.email);
  await page.getByLabel('Password').fill(who.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'API keys' }).waitFor();
}

async function shot(page, name) {
  if (!SHOTS) return;
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

async function seriousViolations(page) {
  const r = await new AxeBuilder({ page }).analyze();
  return r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join(', ')})`);
}

async function createKey(page, name, perms) {
  await page.getByRole('button', { name: 'Create API key' }).first().click();
  const form = page.getByRole('form', { name: 'Create API key' });
  await form.getByLabel('Name', { exact: true }).fill(name);
  if (perms) await form.getByLabel('Other permissions').fill(perms);
  await form.getByRole('button', { name: 'Create API key' }).click();
  const secret = (await page.getByTestId('secret').textContent()).trim();
  assert.match(secret, /^lk_live_/);
  return secret;
}

async function qrText(page) {
  // The QR code is drawn asynchronously; read its pixels once it is.
  for (let i = 0; i < 50; i++) {
    const img = await page.getByTestId('secret-qr').evaluate((c) => {
      if (c.width === 300 && c.height === 150) return null; // still the blank default canvas
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height);
      return { w: d.width, h: d.height, data: Array.from(d.data) };
    });
    if (img) {
      const code = jsQR(Uint8ClampedArray.from(img.data), img.w, img.h);
      if (code) return code.data;
    }
    await page.waitForTimeout(100);
  }
  return null;
}

before(async () => {
  lk = await startLatchkey();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [...(process.getuid && process.getuid() === 0 ? ['--no-sandbox'] : []), '--disable-dev-shm-usage'],
  });
  owner = await newPage();
});

after(async () => {
  if (browser) await browser.close();
  if (lk) await lk.stop();
});

let secret, keyId;

test('sign in, create a key, read it from the shown-once panel, use it; the QR code holds the secret', async () => {
  await owner.goto('/');
  await shot(owner, 'sign-in');
  await signIn(owner, OWNER);

  // Free entry is checked as you type, with the API's rule.
  await owner.getByRole('button', { name: 'Create API key' }).click();
  const form = owner.getByRole('form', { name: 'Create API key' });
  await form.getByLabel('Other permissions').fill('Content:Read');
  assert.match(await form.locator('.field .error').filter({ hasText: 'segment' }).first().textContent(), /Content/);
  await form.getByRole('button', { name: 'Cancel' }).click();

  secret = await createKey(owner, 'browser-ci', 'content:read, files:*');
  await owner.getByRole('button', { name: 'Copy' }).first().waitFor();
  assert.match(await owner.getByTestId('secret-panel').textContent(), /will not be shown again/);
  assert.equal(await qrText(owner), secret);
  await shot(owner, 'new-key');

  const ctx = await call(lk.apiBase, 'GET', '/v1/auth-context', { key: secret });
  assert.equal(ctx.status, 200, ctx.text);
  assert.equal(ctx.json.name, 'browser-ci');
  assert.deepEqual(ctx.json.permissions, ['content:read', 'files:*']);
  keyId = ctx.json.key_id;
  const row = owner.locator(`tr[data-key-id="${keyId}"]`);
  await row.waitFor();
  assert.match(await row.textContent(), /browser-ci.*live.*permanent.*content:read.*active/s);
});

test('the usage charts show the checks just made', async () => {
  for (let i = 0; i < 3; i++) {
    const v = await call(lk.apiBase, 'POST', '/v1/verify', { body: { key: secret } });
    assert.equal(v.json.code, 'valid');
  }
  // Usage is written every second: look again until the page shows the checks.
  const keyChart = owner.locator('section', { hasText: 'Checks of one key' }).getByTestId('usage-chart');
  let total = 0;
  await owner.goto('/#/usage');
  for (let i = 0; i < 10 && total < 3; i++) {
    await owner.waitForTimeout(500);
    await owner.reload();
    await owner.getByRole('heading', { name: 'Usage' }).waitFor();
    await owner.getByLabel('Key', { exact: true }).selectOption(keyId);
    await keyChart.waitFor();
    total = Number(await keyChart.getAttribute('data-total'));
  }
  assert.ok(total >= 3, `the key's chart shows ${total} checks`);
  assert.match(await keyChart.getAttribute('aria-label'), /\d+ checks \(\d+ valid\)/);
  const ws = await call(lk.apiBase, 'GET', '/v1/usage?granularity=day', { key: lk.rootKey });
  if (ws.status !== 404) {
    const wsChart = owner.locator('section', { hasText: 'Checks of the workspace' }).getByTestId('usage-chart');
    await wsChart.waitFor();
    assert.ok(Number(await wsChart.getAttribute('data-total')) >= 4);
  }
  await owner.getByTestId('balance').waitFor();
  await shot(owner, 'usage');
  await owner.goto('/#/keys');
  const spark = owner.locator(`canvas.spark[data-key-id="${keyId}"]`);
  // Polled from the test: waitForFunction would need eval, which the page's CSP refuses.
  let sparkTotal = null;
  for (let i = 0; i < 50 && sparkTotal === null; i++) {
    sparkTotal = await spark.getAttribute('data-total');
    if (sparkTotal === null) await owner.waitForTimeout(100);
  }
  assert.ok(Number(sparkTotal) >= 3, `the sparkline shows ${sparkTotal} checks`);
  await shot(owner, 'keys');
});

test('revoke the key in the page, with a confirmation naming it; the API refuses it', async () => {
  await owner.goto('/#/keys');
  const row = owner.locator(`tr[data-key-id="${keyId}"]`);
  await row.getByRole('button', { name: 'Revoke' }).click();
  const dlg = owner.getByRole('dialog');
  assert.match(await dlg.textContent(), /browser-ci/);
  await dlg.getByRole('button', { name: 'Revoke' }).click();
  await row.locator('.badge.revoked').waitFor();
  const ctx = await call(lk.apiBase, 'GET', '/v1/auth-context', { key: secret });
  assert.equal(ctx.status, 401);
  assert.equal((ctx.json.error || ctx.json).code, 'revoked_key');
});

test('regenerate shows the new secret once; after a reload no secret is in the DOM, storage or requests', async () => {
  await owner.goto('/#/keys');
  const s1 = await createKey(owner, 'reload-check');
  const id = (await call(lk.apiBase, 'GET', '/v1/auth-context', { key: s1 })).json.key_id;
  await owner.getByRole('button', { name: 'Done, I have stored it' }).click();
  await owner.locator(`tr[data-key-id="${id}"]`).getByRole('button', { name: 'Regenerate' }).click();
  await owner.getByRole('dialog').getByLabel('Grace period').selectOption('300');
  await owner.getByRole('dialog').getByRole('button', { name: 'Regenerate' }).click();
  const s2 = (await owner.getByTestId('secret').textContent()).trim();
  assert.notEqual(s2, s1);
  assert.equal(await qrText(owner), s2);
  assert.equal((await call(lk.apiBase, 'GET', '/v1/auth-context', { key: s2 })).status, 200);
  assert.equal((await call(lk.apiBase, 'GET', '/v1/auth-context', { key: s1 })).status, 200, 'grace period');

  const before = requests.length;
  await owner.reload();
  await owner.getByRole('heading', { name: 'API keys' }).waitFor();
  await owner.locator(`tr[data-key-id="${id}"]`).waitFor();
  await owner.waitForLoadState('networkidle');
  const dump = await owner.evaluate(() => JSON.stringify({
    html: document.documentElement.outerHTML,
    text: document.body.innerText,
    inputs: [...document.querySelectorAll('input,textarea')].map((i) => i.value),
    local: { ...localStorage }, session: { ...sessionStorage }, cookie: document.cookie, url: location.href,
  }));
  const cookies = JSON.stringify(await owner.context().cookies());
  const after = JSON.stringify(requests.slice(before));
  for (const s of [secret, s1, s2]) {
    assert.ok(!dump.includes(s), 'a secret is in the page after a reload');
    assert.ok(!cookies.includes(s), 'a secret is in a cookie');
    assert.ok(!after.includes(s), 'a secret is in a request after the reload');
  }
});

test('a temporary key minted for an AI agent, with a ready-to-paste instruction', async () => {
  await owner.goto('/#/keys');
  await owner.getByRole('button', { name: 'Key for an AI agent' }).click();
  const form = owner.getByRole('form', { name: 'Key for an AI agent' });
  await form.getByLabel('Lifetime').selectOption('3600');
  await form.getByLabel('Other permissions').fill('docs:read');
  await form.getByRole('button', { name: 'Create key for agent' }).click();
  const key = (await owner.getByTestId('secret').textContent()).trim();
  const instr = await owner.getByTestId('agent-instruction').textContent();
  assert.ok(instr.includes(`Base URL: ${lk.base}`), instr);
  assert.ok(instr.includes(`Authorization: Bearer ${key}`), instr);
  assert.match(instr, /expires at \d{4}-\d\d-\d\dT/);
  await shot(owner, 'agent-key');
  const ctx = await call(lk.apiBase, 'GET', '/v1/auth-context', { key });
  assert.equal(ctx.status, 200, ctx.text);
  assert.equal(ctx.json.kind, 'temporary');
  assert.deepEqual(ctx.json.permissions, ['docs:read']);
  const left = Date.parse(ctx.json.expires_at) - Date.now();
  assert.ok(left > 0 && left <= 3600 * 1000 + 5000, `expires in ${left} ms`);
  await owner.getByRole('button', { name: 'Done, I have stored it' }).click();
});

test('an invitation accepted by a new person, who then signs in', async () => {
  await owner.goto('/#/members');
  await owner.getByRole('heading', { name: 'Members' }).waitFor();
  await owner.getByLabel('Email').fill('new.person@example.com');
  await owner.getByLabel('Role', { exact: true }).selectOption('editor');
  await owner.getByRole('button', { name: 'Invite' }).click();
  const link = (await owner.getByTestId('invite-link').textContent()).trim();
  assert.match(link, new RegExp(`^${lk.base.replace(/\./g, '\\.')}/#/invite/lki_[0-9A-Za-z]+$`));
  await shot(owner, 'members');

  const guest = await newPage({ width: 390, height: 844 });
  await guest.goto(link);
  await guest.getByRole('heading', { name: 'Join a workspace' }).waitFor();
  await guest.getByLabel('Password').fill('a-new-password-9');
  await guest.getByRole('button', { name: 'Accept invitation' }).click();
  await guest.getByRole('heading', { name: 'API keys' }).waitFor();
  assert.ok(!guest.url().includes('lki_'), 'the token stays out of the address bar');
  assert.equal(await guest.getByRole('button', { name: 'Create API key' }).count(), 1, 'an editor may create keys');
  await shot(guest, 'keys-phone');
  const members = await call(lk.apiBase, 'GET', '/v1/members', { key: lk.rootKey });
  assert.ok(members.json.data.some((m) => m.email === 'new.person@example.com' && m.role === 'editor'));
});

test("a viewer's page has no create, edit or revoke controls, and the API refuses the viewer anyway", async () => {
  const viewer = await newPage();
  await signIn(viewer, VIEWER);
  await viewer.locator('table.keys tbody tr').first().waitFor();
  for (const name of ['Create API key', 'Key for an AI agent', 'Revoke', 'Regenerate', 'Edit', 'Disable']) {
    assert.equal(await viewer.getByRole('button', { name, exact: true }).count(), 0, name);
  }
  await viewer.goto('/#/members');
  await viewer.getByRole('heading', { name: 'Members' }).waitFor();
  assert.equal(await viewer.getByRole('button', { name: 'Invite' }).count(), 0);
  // The viewer's own session cookie, from the page's origin.
  const r = await viewer.request.post('/v1/keys', { data: { name: 'sneaky' }, headers: { Origin: lk.base } });
  assert.equal(r.status(), 403);
  const body = await r.json();
  assert.equal((body.error || body).code, 'insufficient_permissions');
  const ids = (await call(lk.apiBase, 'GET', '/v1/keys?limit=100', { key: lk.rootKey })).json.data;
  assert.ok(!ids.some((k) => k.name === 'sneaky'));
});

test('axe finds no serious violations on the pages', async () => {
  const found = [];
  const anon = await newPage();
  await anon.goto('/#/signin');
  await anon.getByRole('button', { name: 'Sign in' }).waitFor();
  found.push(...(await seriousViolations(anon)).map((v) => `sign-in: ${v}`));
  for (const [route, heading] of [['keys', 'API keys'], ['usage', 'Usage'], ['members', 'Members'], ['audit', 'Audit log']]) {
    await owner.goto(`/#/${route}`);
    await owner.getByRole('heading', { name: heading, exact: true }).waitFor();
    await owner.waitForLoadState('networkidle');
    if (route === 'audit') await shot(owner, 'audit');
    found.push(...(await seriousViolations(owner)).map((v) => `${route}: ${v}`));
  }
  await owner.goto('/#/keys');
  await owner.getByRole('button', { name: 'Create API key' }).click();
  found.push(...(await seriousViolations(owner)).map((v) => `create form: ${v}`));
  assert.deepEqual(found, []);
});

test('no request leaves for another host, and the page breaks no CSP rule', async () => {
  const origin = new URL(lk.base).origin;
  const foreign = requests.filter((r) => !r.url.startsWith('data:') && !r.url.startsWith('blob:') && new URL(r.url).origin !== origin);
  assert.ok(requests.length > 20, `only ${requests.length} requests were seen`);
  assert.deepEqual(foreign.map((r) => r.url), []);
  assert.deepEqual(cspErrors, []);
});
