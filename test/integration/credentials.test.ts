/**
 * Issue 15, credential injection (`upstreams.<id>.credentials`, `routes[].credentials`,
 * the decision's `credentials`), against a real regate process, a real upstream that
 * records what it received, and a real JWKS server: the secret reaches the upstream
 * of allowed requests only, the client's copy never does (in any spelling), the
 * policy chooses among the route's credentials and fails closed outside them, the
 * value is never in the decision log, a problem document or a log line, and a file
 * rotated under load (rename, Kubernetes `..data` symlink swap) is picked up without
 * a failed request.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Agent, request } from 'undici';
import WebSocket from 'ws';
import { startJwksServer, type JwksServer } from '../helpers/jwks-server.ts';
import { rawRequest, send } from '../helpers/http.ts';
import { parseExposition, sampleValue } from '../helpers/metrics.ts';
import { buildBundle } from '../helpers/opa.ts';
import { startRegate, writeConfig, type RegateProcess } from '../helpers/regate-process.ts';
import { baseClaims, generateTestKey, jwksOf, signToken, TEST_ISSUER, type TestKey } from '../helpers/tokens.ts';
import { startUpstreamServer, type EchoBody, type TestUpstream } from '../helpers/upstream-server.ts';
import { startWsUpstream, type WsUpstream } from '../helpers/ws-upstream.ts';

const POLICY = `
package creds.authz

import rego.v1

default allow := false

allow if not contains(input.request.path, "deny")

# Routes "choose", "outside" and "unknown": the policy names the credentials (?cred=...).
chooses if input.route.id in {"choose", "outside", "unknown"}

decision := {"allow": allow} if not chooses

decision := {"allow": allow, "credentials": object.get(input.request.query, "cred", [])} if chooses
`;

const SECRET = 'tr-secret-0001-do-not-leak';
const API_KEY = 'ak-secret-0002-do-not-leak';
const OTHER = 'other-secret-0003';
const K8S_V1 = 'k8s-secret-v1-0004';

let jwks: JwksServer;
let key: TestKey;
let upstream: TestUpstream;
let ws: WsUpstream;
let regate: RegateProcess;
let dir: string;

before(async () => {
  key = await generateTestKey('ES256');
  jwks = await startJwksServer(jwksOf(key));
  upstream = await startUpstreamServer();
  ws = await startWsUpstream();
  dir = mkdtempSync(join(tmpdir(), 'regate-creds-'));
  writeFileSync(join(dir, 'translation'), `${SECRET}\n`);
  mkdirSync(join(dir, 'secrets'));
  writeFileSync(join(dir, 'secrets', 'api-key'), API_KEY);
  writeFileSync(join(dir, 'other'), OTHER);
  writeFileSync(join(dir, 'rotating'), 'rot-v0');
  // A Kubernetes Secret volume: key → ..data/key, ..data → a timestamped directory.
  const vol = join(dir, 'k8s');
  mkdirSync(join(vol, '..2026_01'), { recursive: true });
  writeFileSync(join(vol, '..2026_01', 'token'), `${K8S_V1}\n`);
  symlinkSync('..2026_01', join(vol, '..data'));
  symlinkSync('..data/token', join(vol, 'token'));

  const bundle = await buildBundle({ files: { 'authz.rego': POLICY }, entrypoints: ['creds/authz/decision'] });
  const route = (id: string, path: string, extra: Record<string, unknown> = {}) => ({ id, match: { methods: ['GET', 'POST'], path }, upstream: 'app', auth: 'none', ...extra });
  const configFile = writeConfig(
    {
      listen: {
        proxy: { host: '127.0.0.1', port: 0, http2: { h2c: true } },
        admin: { host: '127.0.0.1', port: 0 },
        authz: { host: '127.0.0.1', port: 0, protocol: 'nginx' },
      },
      upstreams: {
        app: {
          url: upstream.url,
          credentials: {
            translation: { header: 'Authorization', scheme: 'Bearer', value_file: join(dir, 'translation') },
            // Relative to the config file's directory.
            apikey: { header: 'X-Api-Key', value_file: 'secrets/api-key' },
            other: { header: 'X-Other-Key', value_file: join(dir, 'other') },
            rotating: { header: 'X-Rotating', value_file: join(dir, 'rotating') },
            k8s: { header: 'X-K8s-Token', value_file: join(vol, 'token') },
          },
        },
        wsapp: { url: ws.url, credentials: { translation: { header: 'Authorization', scheme: 'Bearer', value_file: join(dir, 'translation') } } },
      },
      issuers: [{ id: 'idp', issuer: TEST_ISSUER, jwks_url: jwks.url, audiences: ['regate'], algorithms: ['ES256'] }],
      policy: { bundle, default_entrypoint: 'creds/authz/decision' },
      decision_log: { destination: 'stdout' },
      routes: [
        route('inject', '/inject/{rest*}', { credentials: ['translation', 'apikey'] }),
        route('authed', '/authed/{rest*}', { auth: 'required', credentials: ['translation'] }),
        route('choose', '/choose/{rest*}', { credentials: ['translation', 'apikey'] }),
        route('outside', '/outside/{rest*}', { credentials: ['translation'] }),
        route('unknown', '/unknown/{rest*}', { credentials: ['translation'] }),
        route('plain', '/plain/{rest*}'),
        route('rotate', '/rotate/{rest*}', { credentials: ['rotating', 'k8s'] }),
        { ...route('ws', '/ws/{rest*}', { credentials: ['translation'], websocket: true }), upstream: 'wsapp', match: { methods: ['GET'], path: '/ws/{rest*}' } },
      ],
    },
    dir,
  );
  regate = await startRegate(configFile);
});

after(async () => {
  await regate?.stop();
  await Promise.allSettled([upstream?.close(), ws?.close(), jwks?.close()]);
});

/** The upstream's echo of one request through regate. */
async function echo(path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: EchoBody & Record<string, unknown> }> {
  const r = await send(regate.proxyUrl + path, { headers });
  return { status: r.status, body: r.json() };
}

/** Every value of `name` (any spelling, `_` read as `-`) the upstream received. */
function received(body: EchoBody, name: string): string[] {
  const want = name.toLowerCase();
  const out: string[] = [];
  for (let i = 0; i < body.rawHeaders.length; i += 2) if (body.rawHeaders[i]!.toLowerCase().replaceAll('_', '-') === want) out.push(body.rawHeaders[i + 1]!);
  return out;
}

const metrics = async () => parseExposition(await (await fetch(`${regate.adminUrl}/metrics`)).text());

describe('credential injection', () => {
  it('an allowed request carries the route’s credentials: scheme + value from the file, trailing newline removed; relative value_file', async () => {
    const r = await echo('/inject/a');
    assert.equal(r.status, 200);
    assert.deepEqual(received(r.body, 'authorization'), [`Bearer ${SECRET}`]);
    assert.deepEqual(received(r.body, 'x-api-key'), [API_KEY]);
    assert.deepEqual(received(r.body, 'x-other-key'), [], 'a credential the route does not list is not injected');
    const d = await regate.waitForDecision((x) => (x.custom as Record<string, unknown>).http_path === '/inject/a');
    assert.deepEqual((d.custom as Record<string, unknown>).credentials, ['translation', 'apikey']);
  });

  it('the client’s copies are removed in every spelling, repeated or not; the policy input does not show them', async () => {
    const r = await rawRequest(
      regate.proxyUrl,
      [
        'GET /inject/raw HTTP/1.1',
        'Host: x',
        'Authorization: Bearer client-token',
        'authorization: Bearer client-token-2',
        'X-Api-Key: client-key',
        'x-api-key: client-key-2',
        'X_Api_Key: client-key-3',
        'x_API-key: client-key-4',
        'Connection: close',
      ].join('\r\n'),
    );
    assert.equal(r.status, 200);
    const body = r.json<EchoBody>();
    assert.deepEqual(received(body, 'authorization'), [`Bearer ${SECRET}`]);
    assert.deepEqual(received(body, 'x-api-key'), [API_KEY]);
    const d = await regate.waitForDecision((x) => (x.custom as Record<string, unknown>).http_path === '/inject/raw');
    const headers = ((d.input as Record<string, Record<string, unknown>>).request!.headers ?? {}) as Record<string, unknown>;
    for (const name of Object.keys(headers)) assert.doesNotMatch(name.replaceAll('_', '-'), /^(x-api-key|authorization)$/i);
  });

  it('a route without credentials forwards a client’s X-Api-Key unchanged (only routes that inject strip it)', async () => {
    const r = await echo('/plain/a', { 'x-api-key': 'mine' });
    assert.deepEqual(received(r.body, 'x-api-key'), ['mine']);
    assert.deepEqual(received(r.body, 'authorization'), []);
  });

  it('not injected on a deny, a 401 or a 404: nothing reaches the upstream and no answer carries the value', async () => {
    const before = upstream.requests.length;
    const deny = await send(`${regate.proxyUrl}/inject/deny`);
    assert.equal(deny.status, 403);
    const unauth = await send(`${regate.proxyUrl}/authed/a`);
    assert.equal(unauth.status, 401);
    const bad = await send(`${regate.proxyUrl}/authed/a`, { headers: { authorization: 'Bearer not.a.jwt' } });
    assert.equal(bad.status, 401);
    const missing = await send(`${regate.proxyUrl}/nowhere`);
    assert.equal(missing.status, 404);
    assert.equal(upstream.requests.length, before);
    for (const r of [deny, unauth, bad, missing]) {
      assert.doesNotMatch(r.text + JSON.stringify(r.headers), new RegExp(`${SECRET}|${API_KEY}`));
    }
  });

  it('an authenticated allow: the caller’s token is replaced by the credential', async () => {
    const token = await signToken(key, baseClaims({ aud: 'regate' }));
    const r = await echo('/authed/a', { authorization: `Bearer ${token}` });
    assert.equal(r.status, 200);
    assert.deepEqual(received(r.body, 'authorization'), [`Bearer ${SECRET}`]);
  });

  it('the policy chooses among the route’s credentials; an empty choice injects none', async () => {
    const one = await echo('/choose/a?cred=apikey', { 'x-api-key': 'client', authorization: 'Bearer client' });
    assert.equal(one.status, 200);
    assert.deepEqual(received(one.body, 'x-api-key'), [API_KEY]);
    // The header of a listed credential the policy did not choose is still stripped.
    assert.deepEqual(received(one.body, 'authorization'), []);
    const none = await echo('/choose/b', { 'x-api-key': 'client' });
    assert.equal(none.status, 200);
    assert.deepEqual(received(none.body, 'x-api-key'), []);
    assert.deepEqual(received(none.body, 'authorization'), []);
    const d = await regate.waitForDecision((x) => (x.custom as Record<string, unknown>).http_path === '/choose/a');
    assert.deepEqual((d.custom as Record<string, unknown>).credentials, ['apikey']);
  });

  it('a credential outside the route’s list, or one not declared at all, fails closed: 500 invalid_decision_credential, nothing forwarded', async () => {
    const before = upstream.requests.length;
    for (const path of ['/outside/a?cred=other', '/unknown/a?cred=nosuch', '/outside/b?cred=translation&cred=apikey']) {
      const r = await send(regate.proxyUrl + path);
      assert.equal(r.status, 500, path);
      assert.equal(r.json().reason, 'invalid_decision_credential');
      assert.doesNotMatch(r.text, new RegExp(`${SECRET}|${OTHER}|${API_KEY}`));
    }
    assert.equal(upstream.requests.length, before);
    const m = await metrics();
    assert.equal(sampleValue(m, 'regate_requests_total', { route: 'outside', decision: 'error', status_class: '5xx' }), 2);
  });

  it('HTTP/2 (h2c): the credential is injected, the client’s copy stripped', async () => {
    const session = http2.connect(regate.proxyUrl);
    try {
      const body = await new Promise<string>((resolve, reject) => {
        const s = session.request({ ':method': 'GET', ':path': '/inject/h2', 'x-api-key': 'client', authorization: 'Bearer client' });
        let text = '';
        s.setEncoding('utf8');
        s.on('data', (c: string) => (text += c));
        s.on('end', () => resolve(text));
        s.on('error', reject);
      });
      const echoed = JSON.parse(body) as EchoBody;
      assert.deepEqual(received(echoed, 'authorization'), [`Bearer ${SECRET}`]);
      assert.deepEqual(received(echoed, 'x-api-key'), [API_KEY]);
    } finally {
      session.close();
    }
  });

  it('WebSocket upgrades: the upgrade request the upstream receives carries the credential, not the client’s', async () => {
    const client = new WebSocket(`${regate.proxyUrl.replace('http', 'ws')}/ws/a`, { headers: { authorization: 'Bearer client' } });
    await new Promise<void>((resolve, reject) => {
      client.once('open', () => resolve());
      client.once('error', reject);
    });
    client.close();
    const up = ws.upgrades.find((u) => u.url === '/ws/a');
    assert.ok(up);
    assert.equal(up.headers.authorization, `Bearer ${SECRET}`);
  });

  it('the authz listener (nginx auth_request): the 200 carries the credential for the proxy to copy; unchosen credential headers are blanked', async () => {
    const ok = await send(`${regate.authzUrl}/`, { headers: { 'x-original-method': 'GET', 'x-original-uri': '/inject/authz', 'x-original-host': 'x', 'x-real-ip': '127.0.0.1' } });
    assert.equal(ok.status, 200);
    assert.equal(ok.headers.authorization, `Bearer ${SECRET}`);
    assert.equal(ok.headers['x-api-key'], API_KEY);
    const chosen = await send(`${regate.authzUrl}/`, { headers: { 'x-original-method': 'GET', 'x-original-uri': '/choose/authz?cred=apikey', 'x-original-host': 'x', 'x-real-ip': '127.0.0.1' } });
    assert.equal(chosen.status, 200);
    assert.equal(chosen.headers['x-api-key'], API_KEY);
    assert.equal(chosen.headers.authorization, '');
    const denied = await send(`${regate.authzUrl}/`, { headers: { 'x-original-method': 'GET', 'x-original-uri': '/inject/deny', 'x-original-host': 'x', 'x-real-ip': '127.0.0.1' } });
    assert.equal(denied.status, 403);
    assert.equal(denied.headers.authorization, undefined);
    assert.doesNotMatch(denied.text, new RegExp(SECRET));
  });

  it('rotation under load: 400 keep-alive requests while the file is renamed over and the ..data symlink swapped; no failure, the new values promptly, the old never again', async () => {
    const agent = new Agent({ connections: 4, pipelining: 1 });
    const seen: { rot: string; k8s: string }[] = [];
    let failures = 0;
    const one = async (i: number): Promise<void> => {
      const r = await request(`${regate.proxyUrl}/rotate/${i}`, { dispatcher: agent });
      const text = await r.body.text();
      if (r.statusCode !== 200) {
        failures++;
        return;
      }
      const body = JSON.parse(text) as EchoBody;
      seen.push({ rot: received(body, 'x-rotating')[0] ?? '', k8s: received(body, 'x-k8s-token')[0] ?? '' });
    };
    const vol = join(dir, 'k8s');
    const swap = (): void => {
      // Write a temporary file, then rename it into place (atomic for readers).
      writeFileSync(join(dir, '.rotating.tmp'), 'rot-v1\n');
      renameSync(join(dir, '.rotating.tmp'), join(dir, 'rotating'));
      // Kubernetes: a new timestamped directory, a new ..data link renamed over the old one.
      mkdirSync(join(vol, '..2026_02'));
      writeFileSync(join(vol, '..2026_02', 'token'), 'k8s-secret-v2\n');
      symlinkSync('..2026_02', join(vol, '..data_tmp'));
      renameSync(join(vol, '..data_tmp'), join(vol, '..data'));
    };
    // Four workers, each sending its requests one after another over the agent's keep-alive connections.
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < 400) {
        const i = next++;
        if (i === 100) swap();
        await one(i);
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    // Then wait (bounded) until both new values are seen.
    let newSeen = false;
    for (let i = 0; i < 200 && !newSeen; i++) {
      await one(1000 + i);
      const last = seen.at(-1);
      newSeen = last?.rot === 'rot-v1' && last.k8s === 'k8s-secret-v2';
      if (!newSeen) await new Promise((res) => setTimeout(res, 50));
    }
    assert.equal(newSeen, true, `new values not seen: ${JSON.stringify(seen.at(-1))}`);
    // Once seen, the old values never come back.
    const firstNew = seen.findIndex((s) => s.rot === 'rot-v1' && s.k8s === 'k8s-secret-v2');
    for (let i = 0; i < 50; i++) await one(2000 + i);
    assert.equal(failures, 0);
    assert.ok(seen.length >= 450);
    for (const s of seen) assert.ok(['rot-v0', 'rot-v1'].includes(s.rot) && [K8S_V1, 'k8s-secret-v2'].includes(s.k8s), JSON.stringify(s));
    assert.ok(seen.slice(firstNew).every((s) => s.rot === 'rot-v1' && s.k8s === 'k8s-secret-v2'), 'an old value after the new one was seen');
    await agent.close();
    const m = await metrics();
    assert.ok(sampleValue(m, 'regate_credential_reloads_total', { upstream: 'app', credential: 'rotating', result: 'success' })! >= 1);
    assert.ok(sampleValue(m, 'regate_credential_reloads_total', { upstream: 'app', credential: 'k8s', result: 'success' })! >= 1);
    assert.ok(sampleValue(m, 'regate_credential_last_reload_timestamp_seconds', { upstream: 'app', credential: 'rotating' })! > 0);
  });

  it('a broken new file (empty, a line break inside) keeps the previous value, counted and logged', async () => {
    const m0 = sampleValue(await metrics(), 'regate_credential_reloads_total', { upstream: 'app', credential: 'rotating', result: 'failure' }) ?? 0;
    writeFileSync(join(dir, '.rotating.tmp'), '');
    renameSync(join(dir, '.rotating.tmp'), join(dir, 'rotating'));
    let failed = 0;
    for (let i = 0; i < 100 && failed <= m0; i++) {
      await new Promise((res) => setTimeout(res, 50));
      failed = sampleValue(await metrics(), 'regate_credential_reloads_total', { upstream: 'app', credential: 'rotating', result: 'failure' }) ?? 0;
    }
    assert.equal(failed, m0 + 1);
    const r = await echo('/rotate/after-empty');
    assert.equal(r.status, 200);
    assert.deepEqual(received(r.body, 'x-rotating'), ['rot-v1']);
    writeFileSync(join(dir, '.rotating.tmp'), 'rot-bad\ninjected: header\n');
    renameSync(join(dir, '.rotating.tmp'), join(dir, 'rotating'));
    for (let i = 0; i < 100 && failed <= m0 + 1; i++) {
      await new Promise((res) => setTimeout(res, 50));
      failed = sampleValue(await metrics(), 'regate_credential_reloads_total', { upstream: 'app', credential: 'rotating', result: 'failure' }) ?? 0;
    }
    assert.equal(failed, m0 + 2);
    const r2 = await echo('/rotate/after-crlf');
    assert.deepEqual(received(r2.body, 'x-rotating'), ['rot-v1']);
    assert.deepEqual(received(r2.body, 'injected'), []);
    const log = regate.logs.find((l) => l.msg === 'credential file refused: the previous value stays in use' && l.credential === 'rotating');
    assert.ok(log);
  });

  it('hot reload: refused (precisely, the last good version serving) while a credential file is invalid; an unchanged file keeps its watcher and value', async () => {
    // The file is still empty-then-broken from the previous test.
    const logs0 = regate.logs.length;
    regate.child.kill('SIGHUP');
    let refused: Record<string, unknown> | undefined;
    for (let i = 0; i < 200 && refused === undefined; i++) {
      await new Promise((res) => setTimeout(res, 25));
      refused = regate.logs.slice(logs0).find((l) => l.msg === 'reload refused; the last good version keeps serving');
    }
    assert.ok(refused, 'no reload refusal logged');
    assert.match(JSON.stringify(refused.errors), /\/upstreams\/app\/credentials\/rotating\/value_file: .*line break inside/);
    assert.deepEqual(received((await echo('/rotate/after-refused')).body, 'x-rotating'), ['rot-v1']);
    writeFileSync(join(dir, '.rotating.tmp'), 'rot-v2\n');
    renameSync(join(dir, '.rotating.tmp'), join(dir, 'rotating'));
    const logs1 = regate.logs.length;
    regate.child.kill('SIGHUP');
    let reloaded: Record<string, unknown> | undefined;
    for (let i = 0; i < 200 && reloaded === undefined; i++) {
      await new Promise((res) => setTimeout(res, 25));
      reloaded = regate.logs.slice(logs1).find((l) => l.msg === 'reloaded');
    }
    assert.ok(reloaded, 'no reload logged');
    // The new version shares the file with the old one; its value follows within a bounded wait.
    let value = '';
    for (let i = 0; i < 100 && value !== 'rot-v2'; i++) {
      value = received((await echo(`/rotate/after-reload-${i}`)).body, 'x-rotating')[0] ?? '';
      if (value !== 'rot-v2') await new Promise((res) => setTimeout(res, 25));
    }
    assert.equal(value, 'rot-v2');
    assert.deepEqual(received((await echo('/rotate/after-reload-k8s')).body, 'x-k8s-token'), ['k8s-secret-v2']);
    assert.deepEqual(received((await echo('/inject/after-reload')).body, 'authorization'), [`Bearer ${SECRET}`]);
  });

  it('no value is ever in the decision log or the operational log', async () => {
    // Let the last decision records arrive.
    await new Promise((res) => setTimeout(res, 200));
    const text = JSON.stringify(regate.decisions) + JSON.stringify(regate.logs);
    for (const secret of [SECRET, API_KEY, OTHER, K8S_V1, 'k8s-secret-v2', 'rot-v0', 'rot-v1', 'rot-v2', 'rot-bad']) {
      assert.equal(text.includes(secret), false, `${secret} leaked`);
    }
    assert.ok(regate.decisions.length > 400);
  });
});
