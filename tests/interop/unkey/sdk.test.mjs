// Unkey's own npm SDK (@unkey/api, pinned in package-lock.json) against a real
// latchkey: the only changes from an Unkey setup are serverURL and the root key.
// Every call goes through the SDK, so its zod schemas check each answer (a null
// where it wants a number, a missing field, a wrong content type all fail the call).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import net from 'node:net';
import { Unkey } from '@unkey/api';
import {
  BadRequestErrorResponse, UnauthorizedErrorResponse, ForbiddenErrorResponse,
  NotFoundErrorResponse, TooManyRequestsErrorResponse,
} from '@unkey/api/models/errors';

const here = dirname(fileURLToPath(import.meta.url));
const BIN = process.env.LATCHKEY_BIN || join(here, '..', '..', '..', 'build', 'latchkey');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

let srv; // { proc, dir, base, rootKey, apiId, other: { rootKey, apiId, readOnly, readWrite } }

async function v1(method, path, key, body) {
  const res = await fetch(srv.base + path, {
    method,
    headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, json: await res.json() };
}

before(async () => {
  if (!existsSync(BIN)) throw new Error(`latchkey binary not found at ${BIN} (run make)`);
  const dir = mkdtempSync(join(tmpdir(), 'latchkey-unkey-'));
  const db = `sqlite:${join(dir, 'latchkey.db')}`;
  const doc = JSON.parse(execFileSync(BIN, ['init', '--db', db, '--json'], { encoding: 'utf8' }).trim().split('\n').pop());
  const port = await freePort();
  const proc = spawn(BIN, ['serve', '--listen', `127.0.0.1:${port}`, '--db', db], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (d) => { stderr += d; });
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    try { if ((await fetch(`${base}/healthz`)).ok) break; } catch { /* not yet */ }
    if (proc.exitCode !== null || i > 150) throw new Error(`latchkey serve did not start: ${stderr}`);
    await sleep(100);
  }
  srv = { proc, dir, base, rootKey: doc.root_key, apiId: doc.workspace_id, stderr: () => stderr };
  const ws = await v1('POST', '/v1/workspaces', srv.rootKey, { name: 'other' });
  assert.equal(ws.status, 201);
  srv.other = { rootKey: ws.json.root_key, apiId: ws.json.id,
                readOnly: ws.json.application_keys.read_only, readWrite: ws.json.application_keys.read_write };
});

after(async () => {
  if (!srv) return;
  srv.proc.kill('SIGTERM');
  await new Promise((r) => (srv.proc.exitCode !== null ? r() : srv.proc.on('exit', r)));
  rmSync(srv.dir, { recursive: true, force: true });
  // Under ASan/UBSan (LATCHKEY_BIN=build-san/latchkey) a report fails the run.
  assert.doesNotMatch(srv.stderr(), /AddressSanitizer|LeakSanitizer|runtime error:/);
  assert.equal(srv.proc.exitCode, 0, srv.stderr());
});

const sdk = (rootKey = srv.rootKey) => new Unkey({ rootKey, serverURL: srv.base, retryConfig: { strategy: 'none' } });

async function rejects(promise, cls, check) {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof cls, `expected ${cls.name}, got ${err?.constructor?.name}: ${err?.message}`);
    if (check) check(err);
    return err;
  }
  assert.fail(`expected ${cls.name}, the call succeeded`);
}

test('createKey, getKey and verifyKey with permissions', async () => {
  const unkey = sdk();
  const created = await unkey.keys.createKey({
    apiId: srv.apiId, name: 'acme', meta: { plan: 'pro' },
    permissions: ['documents.read', 'billing.*'],
  });
  assert.match(created.meta.requestId, /^req_/);
  assert.match(created.data.keyId, /^key_/);
  assert.match(created.data.key, /^lk_live_/);

  const got = await unkey.keys.getKey({ keyId: created.data.keyId });
  assert.equal(got.data.keyId, created.data.keyId);
  assert.equal(got.data.name, 'acme');
  assert.equal(got.data.enabled, true);
  assert.deepEqual(got.data.meta, { plan: 'pro' });
  assert.deepEqual(got.data.permissions, ['documents.read', 'billing.*']);
  assert.ok(Math.abs(got.data.createdAt - Date.now()) < 60_000, 'createdAt is Unix ms');
  assert.equal(got.data.expires, undefined);
  assert.equal(got.data.credits, undefined);

  const ok = await unkey.keys.verifyKey({ key: created.data.key });
  assert.equal(ok.data.valid, true);
  assert.equal(ok.data.code, 'VALID');
  assert.equal(ok.data.keyId, created.data.keyId);
  assert.equal(ok.data.name, 'acme');

  const q = await unkey.keys.verifyKey({ key: created.data.key, permissions: 'documents.read AND (billing.refund OR admin)' });
  assert.equal(q.data.code, 'VALID');
  assert.deepEqual(q.data.permissions, ['documents.read', 'billing.*']);

  const no = await unkey.keys.verifyKey({ key: created.data.key, permissions: 'documents.write' });
  assert.equal(no.data.valid, false);
  assert.equal(no.data.code, 'INSUFFICIENT_PERMISSIONS');

  const unknown = await unkey.keys.verifyKey({ key: 'lk_live_not_a_key' });
  assert.equal(unknown.data.code, 'NOT_FOUND');
  assert.equal(unknown.data.keyId, undefined);

  // A key without permissions has none, as in Unkey (latchkey's /v1 default is `*`).
  const bare = await unkey.keys.createKey({ apiId: srv.apiId });
  const bq = await unkey.keys.verifyKey({ key: bare.data.key, permissions: 'documents.read' });
  assert.equal(bq.data.code, 'INSUFFICIENT_PERMISSIONS');
  assert.equal((await unkey.keys.getKey({ keyId: bare.data.keyId })).data.name, undefined);

  await rejects(unkey.keys.verifyKey({ key: created.data.key, permissions: 'documents.read AND (' }),
    BadRequestErrorResponse, (e) => assert.equal(e.error.errors[0].location, 'body.permissions'));
});

test('rate limits: the key\'s limit, reported per check', async () => {
  const unkey = sdk();
  const { data } = await unkey.keys.createKey({
    apiId: srv.apiId, ratelimits: [{ name: 'default', limit: 2, duration: 60_000, autoApply: true }],
  });
  const first = await unkey.keys.verifyKey({ key: data.key });
  assert.equal(first.data.code, 'VALID');
  assert.equal(first.data.ratelimits.length, 1);
  const rl = first.data.ratelimits[0];
  assert.equal(rl.name, 'default');
  assert.equal(rl.limit, 2);
  assert.equal(rl.duration, 60_000);
  assert.equal(rl.remaining, 1);
  assert.equal(rl.exceeded, false);
  assert.equal(rl.autoApply, true);
  assert.equal((await unkey.keys.verifyKey({ key: data.key, ratelimits: [{ name: 'default' }] })).data.code, 'VALID');
  const third = await unkey.keys.verifyKey({ key: data.key });
  assert.equal(third.data.valid, false);
  assert.equal(third.data.code, 'RATE_LIMITED');
  assert.equal(third.data.ratelimits[0].exceeded, true);
  assert.equal(third.data.ratelimits[0].remaining, 0);

  const got = await unkey.keys.getKey({ keyId: data.keyId });
  assert.deepEqual(got.data.ratelimits.map(({ name, limit, duration, autoApply }) => ({ name, limit, duration, autoApply })),
    [{ name: 'default', limit: 2, duration: 60_000, autoApply: true }]);
});

test('a key\'s own credits: each check spends one, refill shown, then USAGE_EXCEEDED', async () => {
  const unkey = sdk();
  const { data } = await unkey.keys.createKey({
    apiId: srv.apiId, credits: { remaining: 3, refill: { interval: 'daily', amount: 3 } },
  });
  const got = await unkey.keys.getKey({ keyId: data.keyId });
  assert.deepEqual(got.data.credits, { remaining: 3, refill: { interval: 'daily', amount: 3 } });
  assert.equal((await unkey.keys.verifyKey({ key: data.key })).data.credits, 2);
  assert.equal((await unkey.keys.verifyKey({ key: data.key, credits: { cost: 2 } })).data.credits, 0);
  const out = await unkey.keys.verifyKey({ key: data.key });
  assert.equal(out.data.valid, false);
  assert.equal(out.data.code, 'USAGE_EXCEEDED');
  assert.equal(out.data.credits, 0);
  await unkey.keys.updateKey({ keyId: data.keyId, credits: { remaining: 10 } });
  assert.equal((await unkey.keys.verifyKey({ key: data.key })).data.credits, 9);
  assert.equal((await unkey.keys.getKey({ keyId: data.keyId })).data.credits.refill.amount, 3);
  await unkey.keys.updateKey({ keyId: data.keyId, credits: null });
  const free = await unkey.keys.verifyKey({ key: data.key });
  assert.equal(free.data.code, 'VALID');
  assert.equal(free.data.credits, undefined);
});

test('several named rate limits, applied by themselves or by name', async () => {
  const unkey = sdk();
  const { data } = await unkey.keys.createKey({
    apiId: srv.apiId, ratelimits: [
      { name: 'requests', limit: 3, duration: 60_000, autoApply: true },
      { name: 'tokens', limit: 100, duration: 3_600_000 },
    ],
  });
  const got = await unkey.keys.getKey({ keyId: data.keyId });
  assert.deepEqual(got.data.ratelimits.map((r) => [r.name, r.limit, r.duration, r.autoApply]),
    [['requests', 3, 60_000, true], ['tokens', 100, 3_600_000, false]]);
  const one = await unkey.keys.verifyKey({ key: data.key });
  assert.deepEqual(one.data.ratelimits.map((r) => [r.name, r.remaining]), [['requests', 2]]);
  const spent = await unkey.keys.verifyKey({ key: data.key, ratelimits: [{ name: 'tokens', cost: 60 }] });
  const by = Object.fromEntries(spent.data.ratelimits.map((r) => [r.name, r]));
  assert.equal(by.tokens.remaining, 40);
  assert.equal(by.requests.remaining, 1);
  const over = await unkey.keys.verifyKey({ key: data.key, ratelimits: [{ name: 'tokens', cost: 60 }] });
  assert.equal(over.data.code, 'RATE_LIMITED');
  assert.equal(over.data.ratelimits.find((r) => r.name === 'tokens').exceeded, true);
  await rejects(unkey.keys.verifyKey({ key: data.key, ratelimits: [{ name: 'nope' }] }), BadRequestErrorResponse,
    (e) => assert.equal(e.error.errors[0].location, 'body.ratelimits[0].name'));
});

test('credits: a verification spends its cost from the workspace, then USAGE_EXCEEDED', async () => {
  const unkey = sdk(srv.other.rootKey);
  const top = await v1('POST', '/v1/credits', srv.other.rootKey, { amount: 10 });
  assert.equal(top.status, 201);
  const { data } = await unkey.keys.createKey({ apiId: srv.other.apiId });
  assert.equal((await unkey.keys.verifyKey({ key: data.key, credits: { cost: 6 } })).data.code, 'VALID');
  const over = await unkey.keys.verifyKey({ key: data.key, credits: { cost: 6 } });
  assert.equal(over.data.valid, false);
  assert.equal(over.data.code, 'USAGE_EXCEEDED');
  assert.equal((await unkey.keys.verifyKey({ key: data.key, credits: { cost: 4 } })).data.code, 'VALID');
  assert.equal((await v1('GET', '/v1/credits', srv.other.rootKey)).json.balance, 0);
});

test('updateKey: disable, rename, expire; DISABLED and EXPIRED', async () => {
  const unkey = sdk();
  const { data } = await unkey.keys.createKey({ apiId: srv.apiId, name: 'before' });
  const up = await unkey.keys.updateKey({ keyId: data.keyId, name: 'after', enabled: false, meta: { tier: 2 } });
  assert.deepEqual(up.data, {});
  const off = await unkey.keys.verifyKey({ key: data.key });
  assert.equal(off.data.code, 'DISABLED');
  assert.equal(off.data.enabled, false);
  assert.equal(off.data.name, 'after');
  await unkey.keys.updateKey({ keyId: data.keyId, enabled: true, name: null });
  const on = await unkey.keys.getKey({ keyId: data.keyId });
  assert.equal(on.data.enabled, true);
  assert.equal(on.data.name, undefined);
  assert.deepEqual(on.data.meta, { tier: 2 });

  const soon = Date.now() + 1500;
  await unkey.keys.updateKey({ keyId: data.keyId, expires: soon });
  assert.equal((await unkey.keys.getKey({ keyId: data.keyId })).data.expires, Math.floor(soon / 1000) * 1000);
  for (let i = 0; ; i++) {
    const r = await unkey.keys.verifyKey({ key: data.key });
    if (r.data.code === 'EXPIRED') { assert.equal(r.data.valid, false); break; }
    assert.equal(r.data.code, 'VALID');
    assert.ok(i < 50, 'the key expires');
    await sleep(200);
  }
  await rejects(unkey.keys.updateKey({ keyId: data.keyId, expires: Date.now() - 1000 }), BadRequestErrorResponse,
    (e) => assert.equal(e.error.errors[0].location, 'body.expires'));
  await unkey.keys.updateKey({ keyId: data.keyId, expires: null });
  assert.equal((await unkey.keys.verifyKey({ key: data.key })).data.code, 'VALID');
});

test('add, remove and set permissions', async () => {
  const unkey = sdk();
  const { data } = await unkey.keys.createKey({ apiId: srv.apiId, permissions: ['a.read'] });
  const added = await unkey.keys.addPermissions({ keyId: data.keyId, permissions: ['a.write', 'a.read'] });
  assert.deepEqual(added.data.map((p) => p.slug), ['a.read', 'a.write']);
  assert.deepEqual(added.data[0], { id: 'a.read', name: 'a.read', slug: 'a.read' });
  assert.equal((await unkey.keys.verifyKey({ key: data.key, permissions: 'a.read AND a.write' })).data.code, 'VALID');
  const removed = await unkey.keys.removePermissions({ keyId: data.keyId, permissions: ['a.read'] });
  assert.deepEqual(removed.data.map((p) => p.name), ['a.write']);
  assert.equal((await unkey.keys.verifyKey({ key: data.key, permissions: 'a.read' })).data.code, 'INSUFFICIENT_PERMISSIONS');
  const set = await unkey.keys.setPermissions({ keyId: data.keyId, permissions: ['b.*'] });
  assert.deepEqual(set.data.map((p) => p.name), ['b.*']);
  assert.equal((await unkey.keys.verifyKey({ key: data.key, permissions: 'b.anything' })).data.code, 'VALID');
  await rejects(unkey.keys.addPermissions({ keyId: data.keyId, permissions: ['Not Valid'] }), BadRequestErrorResponse,
    (e) => assert.equal(e.error.errors[0].location, 'body.permissions'));
});

test('rerollKey: a new secret for the same key; deleteKey: NOT_FOUND from then on', async () => {
  const unkey = sdk();
  const { data } = await unkey.keys.createKey({ apiId: srv.apiId, name: 'rolling' });
  const rolled = await unkey.keys.rerollKey({ keyId: data.keyId, expiration: 0 });
  assert.equal(rolled.data.keyId, data.keyId);
  assert.notEqual(rolled.data.key, data.key);
  assert.equal((await unkey.keys.verifyKey({ key: data.key })).data.code, 'NOT_FOUND');
  assert.equal((await unkey.keys.verifyKey({ key: rolled.data.key })).data.code, 'VALID');

  const graced = await unkey.keys.rerollKey({ keyId: data.keyId, expiration: 60_000 });
  assert.equal((await unkey.keys.verifyKey({ key: rolled.data.key })).data.code, 'VALID', 'the old secret lives on');
  assert.equal((await unkey.keys.verifyKey({ key: graced.data.key })).data.code, 'VALID');

  const del = await unkey.keys.deleteKey({ keyId: data.keyId });
  assert.deepEqual(del.data, {});
  assert.equal((await unkey.keys.verifyKey({ key: graced.data.key })).data.code, 'NOT_FOUND');
  await rejects(unkey.keys.getKey({ keyId: data.keyId }), NotFoundErrorResponse,
    (e) => { assert.equal(e.error.status, 404); assert.match(e.error.type, /key_not_found/); });
  await rejects(unkey.keys.deleteKey({ keyId: data.keyId }), NotFoundErrorResponse);
});

test('apis.listKeys pages newest first with a cursor, and the SDK iterates the pages', async () => {
  const unkey = sdk(srv.other.rootKey);
  const ids = [];
  for (let i = 0; i < 3; i++) ids.push((await unkey.keys.createKey({ apiId: srv.other.apiId, name: `l${i}` })).data.keyId);
  await unkey.keys.deleteKey({ keyId: ids[1] });
  const all = (await unkey.apis.listKeys({ apiId: srv.other.apiId })).result;
  const allIds = all.data.map((k) => k.keyId);
  assert.match(all.meta.requestId, /^req_/);
  assert.ok(!allIds.includes(ids[1]), 'deleted keys are not listed');
  assert.deepEqual(allIds.slice(0, 2), [ids[2], ids[0]]);
  assert.equal(all.pagination.hasMore, false);
  assert.equal(all.pagination.cursor, undefined);
  const p1 = (await unkey.apis.listKeys({ apiId: srv.other.apiId, limit: 1 })).result;
  assert.equal(p1.data.length, 1);
  assert.equal(p1.pagination.hasMore, true);
  assert.equal(p1.data[0].keyId, ids[2]);
  assert.equal(p1.data[0].name, 'l2');
  const p2 = (await unkey.apis.listKeys({ apiId: srv.other.apiId, limit: 1, cursor: p1.pagination.cursor })).result;
  assert.equal(p2.data[0].keyId, ids[0]);
  // The SDK's own paging follows pagination.cursor until there is none.
  const seen = [];
  for await (const page of await unkey.apis.listKeys({ apiId: srv.other.apiId, limit: 1 }))
    seen.push(...page.result.data.map((k) => k.keyId));
  assert.deepEqual(seen, allIds);
});

test('externalId links keys to an identity; listKeys filters by it', async () => {
  const unkey = sdk();
  const a = await unkey.keys.createKey({ apiId: srv.apiId, externalId: 'user_123', name: 'a' });
  const b = await unkey.keys.createKey({ apiId: srv.apiId, externalId: 'user_123', name: 'b' });
  await unkey.keys.createKey({ apiId: srv.apiId, externalId: 'user_456' });
  const got = await unkey.keys.getKey({ keyId: a.data.keyId });
  assert.equal(got.data.identity.externalId, 'user_123');
  assert.match(got.data.identity.id, /^idn_/);
  assert.equal((await unkey.keys.getKey({ keyId: b.data.keyId })).data.identity.id, got.data.identity.id);
  const mine = (await unkey.apis.listKeys({ apiId: srv.apiId, externalId: 'user_123' })).result.data;
  assert.deepEqual(mine.map((k) => k.keyId), [b.data.keyId, a.data.keyId]);
  assert.deepEqual((await unkey.apis.listKeys({ apiId: srv.apiId, externalId: 'nobody' })).result.data, []);
  await unkey.keys.updateKey({ keyId: a.data.keyId, externalId: null });
  assert.equal((await unkey.keys.getKey({ keyId: a.data.keyId })).data.identity, undefined);
  await unkey.keys.updateKey({ keyId: a.data.keyId, externalId: 'user_456' });
  assert.equal((await unkey.keys.getKey({ keyId: a.data.keyId })).data.identity.externalId, 'user_456');
});

test('verifyKey returns the key\'s meta and identity, as Unkey does', async () => {
  const unkey = sdk();
  const meta = { plan: 'pro', seats: 5, tags: ['a', 'b'], nested: { ok: true }, note: 'caf\u00e9 "q"' };
  const k = await unkey.keys.createKey({ apiId: srv.apiId, meta, externalId: 'user_meta' });
  const got = await unkey.keys.getKey({ keyId: k.data.keyId });
  const v = await unkey.keys.verifyKey({ key: k.data.key });
  assert.equal(v.data.code, 'VALID');
  assert.deepEqual(v.data.meta, meta);
  assert.equal(typeof v.data.meta.seats, 'number');
  assert.deepEqual(v.data.identity, { id: got.data.identity.id, externalId: 'user_meta' });
  assert.match(v.data.identity.id, /^idn_/);

  // A found key that is refused shows them too; a key without either shows neither.
  await unkey.keys.updateKey({ keyId: k.data.keyId, enabled: false, meta: { plan: 'team' } });
  const off = await unkey.keys.verifyKey({ key: k.data.key });
  assert.equal(off.data.code, 'DISABLED');
  assert.deepEqual(off.data.meta, { plan: 'team' });
  assert.equal(off.data.identity.externalId, 'user_meta');
  const bare = await unkey.keys.createKey({ apiId: srv.apiId });
  const bv = await unkey.keys.verifyKey({ key: bare.data.key });
  assert.equal(bv.data.meta, undefined);
  assert.equal(bv.data.identity, undefined);
});

test('workspaces are sealed: another apiId is not found, another\'s key is NOT_FOUND', async () => {
  const mine = sdk();
  const theirs = sdk(srv.other.rootKey);
  const { data } = await mine.keys.createKey({ apiId: srv.apiId });
  await rejects(theirs.keys.createKey({ apiId: srv.apiId }), NotFoundErrorResponse,
    (e) => assert.match(e.error.type, /api_not_found/));
  await rejects(theirs.apis.listKeys({ apiId: srv.apiId }), NotFoundErrorResponse);
  await rejects(theirs.keys.getKey({ keyId: data.keyId }), NotFoundErrorResponse);
  const v = await theirs.keys.verifyKey({ key: data.key });
  assert.equal(v.data.valid, false);
  assert.equal(v.data.code, 'NOT_FOUND');
  assert.equal(v.data.keyId, undefined);
  assert.equal((await mine.keys.verifyKey({ key: data.key })).data.code, 'VALID');
});

test('application keys: read-write manages keys, read-only only reads', async () => {
  const rw = sdk(srv.other.readWrite);
  const ro = sdk(srv.other.readOnly);
  const { data } = await rw.keys.createKey({ apiId: srv.other.apiId, name: 'by-app' });
  assert.equal((await ro.keys.getKey({ keyId: data.keyId })).data.name, 'by-app');
  assert.equal((await ro.keys.verifyKey({ key: data.key })).data.code, 'VALID');
  await rejects(ro.keys.createKey({ apiId: srv.other.apiId }), ForbiddenErrorResponse,
    (e) => { assert.equal(e.error.status, 403); assert.match(e.error.type, /insufficient_permissions/); });
});

test('refused: recoverable keys, decrypt, roles, unknown prefixes', async () => {
  const unkey = sdk();
  await rejects(unkey.keys.createKey({ apiId: srv.apiId, recoverable: true }), BadRequestErrorResponse,
    (e) => { assert.equal(e.error.status, 400); assert.equal(e.error.errors[0].location, 'body.recoverable'); });
  const { data } = await unkey.keys.createKey({ apiId: srv.apiId, prefix: 'lk_test', byteLength: 32 });
  assert.match(data.key, /^lk_test_/);
  await rejects(unkey.keys.getKey({ keyId: data.keyId, decrypt: true }), BadRequestErrorResponse);
  await rejects(unkey.keys.createKey({ apiId: srv.apiId, roles: ['admin'] }), BadRequestErrorResponse);
  await rejects(unkey.keys.createKey({ apiId: srv.apiId, prefix: 'sk' }), BadRequestErrorResponse,
    (e) => assert.equal(e.error.errors[0].location, 'body.prefix'));
  await rejects(unkey.keys.createKey({ apiId: srv.apiId, byteLength: 64 }), BadRequestErrorResponse);
});

test('a wrong root key is Unauthorized; guessing root keys ends in TooManyRequests', async () => {
  const wrong = sdk('lk_live_EvQIvSt2AfW6WftK0PFZQV3rkJAyF007sypOxzOQrO82sxcaB');
  await rejects(wrong.keys.createKey({ apiId: srv.apiId }), UnauthorizedErrorResponse,
    (e) => assert.equal(e.error.status, 401));
  await rejects(sdk('not-a-key').keys.verifyKey({ key: 'x' }), UnauthorizedErrorResponse);
  // Unknown keys from one address are throttled (failed_key_limit, 100 a minute):
  // the SDK reads the 429 as application/problem+json. Last: the address stays blocked.
  let err;
  for (let i = 0; i < 150 && !(err instanceof TooManyRequestsErrorResponse); i++) {
    try { await wrong.keys.verifyKey({ key: 'x' }); } catch (e) { err = e; }
  }
  assert.ok(err instanceof TooManyRequestsErrorResponse, `got ${err?.constructor?.name}`);
  assert.equal(err.error.status, 429);
  assert.equal(err.contentType, 'application/problem+json');
  assert.ok(Number(err.headers.get('retry-after')) > 0);
});
