// Starts a real latchkey for the browser tests: `latchkey init --json` on a scratch
// database, `latchkey serve` on a free port, and an owner and a viewer who joined
// by invitation through the API. When the binary does not serve the dashboard
// itself (GET / answers 404), a small static server serves web/dist with the same
// security headers and passes /v1 and /api through to latchkey, on one origin.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import http from 'node:http';
import net from 'node:net';

const here = dirname(fileURLToPath(import.meta.url));
export const REPO = join(here, '..', '..');
export const BIN = process.env.LATCHKEY_BIN || join(REPO, 'build', 'latchkey');
export const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
  + "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

export const OWNER = { email: 'owner@example.com', password: 'owner-password-1' };
export const VIEWER = { email: 'viewer@example.com', password: 'viewer-password-1' };

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function call(base, method, path, { key, body, headers = {} } = {}) {
  const h = { ...headers };
  if (key) h.Authorization = `Bearer ${key}`;
  if (body !== undefined) h['Content-Type'] = 'application/json';
  const res = await fetch(base + path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  return { status: res.status, json, text, headers: res.headers };
}

function staticServer(distDir, upstreamPort) {
  const types = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.css': 'text/css' };
  const api = /^\/(v1|api)\/|^\/(healthz|readyz|openapi\.json)$/;
  return http.createServer((req, res) => {
    if (api.test(req.url.split('?')[0])) {
      // Host is kept, so latchkey sees the page's own origin (its Origin check).
      const up = http.request({ host: '127.0.0.1', port: upstreamPort, method: req.method, path: req.url, headers: req.headers }, (ur) => {
        res.writeHead(ur.statusCode, ur.headers);
        ur.pipe(res);
      });
      up.on('error', () => { res.writeHead(502); res.end(); });
      req.pipe(up);
      return;
    }
    let name = req.url.split('?')[0];
    if (name !== '/app.js' && name !== '/app.css') name = '/index.html';
    const ext = name.slice(name.lastIndexOf('.'));
    res.writeHead(200, {
      'Content-Type': types[ext], 'Content-Security-Policy': CSP, 'X-Frame-Options': 'DENY',
      'X-Content-Type-Options': 'nosniff', 'Referrer-Policy': 'no-referrer', 'Cache-Control': 'no-store',
    });
    res.end(readFileSync(join(distDir, name.slice(1))));
  });
}

export async function startLatchkey() {
  if (!existsSync(BIN)) throw new Error(`latchkey binary not found at ${BIN} (run make)`);
  const dir = mkdtempSync(join(tmpdir(), 'latchkey-browser-'));
  const db = `sqlite:${join(dir, 'latchkey.db')}`;
  const out = execFileSync(BIN, ['init', '--db', db, '--json'], { encoding: 'utf8' });
  const doc = out.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('{')).map((l) => JSON.parse(l))
    .find((d) => d.root_key && d.workspace_id);
  if (!doc) throw new Error('latchkey init --json printed no root key');
  const port = await freePort();
  const proc = spawn(BIN, ['serve', '--listen', `127.0.0.1:${port}`, '--db', db], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (d) => { stderr += d; });
  const apiBase = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    try {
      const r = await fetch(`${apiBase}/healthz`);
      if (r.ok) break;
    } catch { /* not yet */ }
    if (proc.exitCode !== null || i > 150) throw new Error(`latchkey serve did not start: ${stderr}`);
    await sleep(100);
  }
  const env = { dir, proc, apiBase, base: apiBase, rootKey: doc.root_key, workspaceId: doc.workspace_id, server: null, ownDashboard: true };
  const root = await fetch(`${apiBase}/`);
  if (root.status === 404 || !(root.headers.get('content-type') || '').includes('text/html')) {
    const dist = join(REPO, 'web', 'dist');
    if (!existsSync(join(dist, 'index.html'))) throw new Error('web/dist is not built (run make web)');
    const sport = await freePort();
    env.server = staticServer(dist, port);
    await new Promise((r) => env.server.listen(sport, '127.0.0.1', r));
    env.base = `http://127.0.0.1:${sport}`;
    env.ownDashboard = false;
  }
  for (const [who, role] of [[OWNER, 'owner'], [VIEWER, 'viewer']]) {
    const inv = await call(apiBase, 'POST', '/v1/members', { key: doc.root_key, body: { email: who.email, role } });
    if (inv.status !== 201) throw new Error(`invite ${role}: ${inv.status} ${inv.text}`);
    const acc = await call(apiBase, 'POST', '/v1/invitations/accept', { body: { token: inv.json.token, password: who.password } });
    if (acc.status !== 200) throw new Error(`accept ${role}: ${acc.status} ${acc.text}`);
  }
  env.stop = async () => {
    if (env.server) await new Promise((r) => env.server.close(r));
    proc.kill('SIGTERM');
    await new Promise((r) => (proc.exitCode !== null ? r() : proc.on('exit', r)));
    rmSync(dir, { recursive: true, force: true });
  };
  return env;
}
