/**
 * Cluster mode (`workers: 2`) end to end with a real regate process: the
 * primary forks two workers sharing the proxy port, both serve, /metrics on the
 * primary's admin listener counts exactly the requests sent, a killed worker is
 * restarted while the other keeps serving, SIGHUP reaches every worker, and
 * SIGTERM drains and exits 0. Every wait is a bounded poll; nothing is timed.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { rawRequest, send } from '../helpers/http.ts';
import { parseExposition, sampleValue, type Exposition } from '../helpers/metrics.ts';
import { buildBundle } from '../helpers/opa.ts';
import { startRegate, writeConfig, type RegateProcess } from '../helpers/regate-process.ts';
import { baseClaims, generateTestKey, jwksOf, signToken, TEST_ISSUER, type TestKey } from '../helpers/tokens.ts';
import { startUpstreamServer, type TestUpstream } from '../helpers/upstream-server.ts';

const POLICY = `
package cl

default decision := {"allow": false}

decision := {"allow": true} if "reader" in input.subject.roles
`;

let upstream: TestUpstream;
let key: TestKey;
let regate: RegateProcess;
let token: string;

before(async () => {
  key = await generateTestKey('ES256');
  upstream = await startUpstreamServer();
  const dir = mkdtempSync(join(tmpdir(), 'regate-cluster-'));
  writeFileSync(join(dir, 'jwks.json'), JSON.stringify(jwksOf(key)));
  const bundle = await buildBundle({ files: { 'cl.rego': POLICY }, entrypoints: ['cl/decision'], args: ['--revision', 'cl-1'] });
  const configFile = writeConfig(
    {
      workers: 2,
      listen: { proxy: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 } },
      upstreams: { app: { url: upstream.url } },
      issuers: [{ id: 'idp', issuer: TEST_ISSUER, jwks_file: join(dir, 'jwks.json'), audiences: ['regate'], algorithms: ['ES256'] }],
      policy: { bundle, default_entrypoint: 'cl/decision' },
      decision_log: { destination: 'stdout' },
      shutdown: { grace_ms: 5000 },
      routes: [{ id: 'read', match: { methods: ['GET'], path: '/data/{rest*}' }, upstream: 'app' }],
    },
    dir,
  );
  token = await signToken(key, baseClaims({ aud: 'regate', roles: ['reader'] }));
  regate = await startRegate(configFile);
});

after(async () => {
  await regate?.stop('SIGKILL');
  await upstream?.close();
});

/** One GET on a fresh connection: the primary hands each new connection to the next worker. */
function get(path: string): ReturnType<typeof rawRequest> {
  const { host } = new URL(regate.proxyUrl);
  return rawRequest(regate.proxyUrl, `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer ${token}`);
}

async function scrape(): Promise<Exposition> {
  const res = await send(`${regate.adminUrl}/metrics`);
  assert.equal(res.status, 200, res.text);
  return parseExposition(res.text);
}

const allowed = (exp: Exposition): number | undefined => sampleValue(exp, 'regate_requests_total', { route: 'read', decision: 'allow', status_class: '2xx' });

/** Poll `check` every 25 ms until it returns a value (not undefined), at most `timeoutMs`. */
async function waitFor<T>(what: string, check: () => Promise<T | undefined> | T | undefined, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** The pids of the workers currently listening, from their 'worker listening' log lines. */
const workerPids = (): number[] => regate.logs.filter((l) => l.msg === 'worker listening').map((l) => Number(l.pid));

describe('cluster mode: workers: 2', () => {
  it('announces one listening line with the shared proxy port and the primary admin port', async () => {
    const line = regate.logs.find((l) => l.msg === 'listening');
    assert.equal(line?.workers, 2);
    assert.equal(line?.pid, regate.child.pid, 'the primary announces the service');
    // Workers log on their own (same stderr): their lines may trail the primary's.
    await waitFor('both workers logged', () => (workerPids().length === 2 ? true : undefined));
    assert.equal(new Set(workerPids()).size, 2);
    assert.ok(!workerPids().includes(regate.child.pid!));
  });

  it('/readyz is ready once every worker is, and says so', async () => {
    const res = await send(`${regate.adminUrl}/readyz`);
    assert.equal(res.status, 200, res.text);
    const doc = res.json<{ status: string; checks: Record<string, boolean> }>();
    assert.equal(doc.checks.workers, true);
    assert.equal(doc.checks.policy, true);
    assert.equal(doc.checks.keys, true);
  });

  it('both workers serve, and /metrics counts exactly the requests sent', async () => {
    const before = allowed(await scrape()) ?? 0;
    const N = 40;
    const replies = await Promise.all(Array.from({ length: N }, (_, i) => get(`/data/${i}`)));
    for (const r of replies) assert.equal(r.status, 200, r.text);
    assert.equal(allowed(await scrape()), before + N);
    // Each worker is its own decision-log instance (labels.id): both took connections.
    const records = await waitFor('N decision records', () => {
      const got = regate.decisions.filter((d) => String((d.custom as { http_path?: string } | undefined)?.http_path).startsWith('/data/'));
      return got.length >= N ? got : undefined;
    });
    const instances = new Set(records.map((d) => (d.labels as { id: string }).id));
    assert.equal(instances.size, 2, `decision records from ${[...instances].join(', ')}`);
    const exp = await scrape();
    assert.equal(sampleValue(exp, 'regate_cluster_workers', {}), 2);
    assert.equal(sampleValue(exp, 'regate_policy_bundle_info', { name: 'regate', revision: 'cl-1' }), 1, 'an info metric is not summed');
    assert.ok((sampleValue(exp, 'regate_token_cache_lookups_total', { result: 'hit' }) ?? 0) >= 1, 'workers reuse verified tokens');
  });

  it('a killed worker is restarted with a log line, and service continues meanwhile', async () => {
    const [victim, survivor] = workerPids();
    process.kill(victim!, 'SIGKILL');
    const logged = await waitFor('the restart log line', () => regate.logs.find((l) => l.msg === 'worker exited unexpectedly; restarting' && l.pid === victim));
    assert.equal(logged.signal, 'SIGKILL');
    assert.equal(typeof logged.restart_in_ms, 'number');
    // While it restarts, every request is served (by the survivor, then by both).
    for (let i = 0; i < 10; i++) assert.equal((await get(`/data/during-${i}`)).status, 200);
    await waitFor('a third worker process listening', () => (workerPids().length === 3 ? true : undefined));
    assert.ok(workerPids().includes(survivor!));
    const exp = await waitFor('two workers again', async () => {
      const e = await scrape();
      return sampleValue(e, 'regate_cluster_workers', {}) === 2 ? e : undefined;
    });
    assert.equal(sampleValue(exp, 'regate_cluster_worker_restarts_total', {}), 1);
    assert.equal((await send(`${regate.adminUrl}/readyz`)).status, 200);
    const replies = await Promise.all(Array.from({ length: 10 }, (_, i) => get(`/data/after-${i}`)));
    for (const r of replies) assert.equal(r.status, 200);
  });

  it('SIGHUP is forwarded: every worker reloads', async () => {
    const reloadsBefore = regate.logs.filter((l) => l.msg === 'reloaded' && l.trigger === 'signal').length;
    regate.child.kill('SIGHUP');
    await waitFor('two worker reloads', () => (regate.logs.filter((l) => l.msg === 'reloaded' && l.trigger === 'signal').length >= reloadsBefore + 2 ? true : undefined));
    assert.equal((await get('/data/after-reload')).status, 200);
  });

  it('SIGTERM drains every worker, then the primary exits 0', async () => {
    const code = await regate.stop('SIGTERM');
    assert.equal(code, 0);
    assert.equal(regate.logs.filter((l) => l.msg === 'stopped' && l.worker !== undefined).length, 2, 'both live workers stopped cleanly');
    assert.ok(regate.logs.some((l) => l.msg === 'stopped' && l.worker === undefined), 'then the primary');
  });
});

describe('cluster mode: a startup the workers refuse', () => {
  it('stops the primary with exit 1 and the reason on stderr, instead of restarting forever', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'regate-cluster-bad-'));
    writeFileSync(join(dir, 'jwks.json'), JSON.stringify(jwksOf(key)));
    // The bundle lacks the entrypoint the config names: each worker's runtime refuses it.
    const bundle = await buildBundle({ files: { 'cl.rego': POLICY }, entrypoints: ['cl/decision'] });
    const configFile = writeConfig(
      {
        workers: 2,
        listen: { proxy: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 } },
        upstreams: { app: { url: upstream.url } },
        issuers: [{ id: 'idp', issuer: TEST_ISSUER, jwks_file: join(dir, 'jwks.json'), audiences: ['regate'], algorithms: ['ES256'] }],
        policy: { bundle, default_entrypoint: 'cl/missing' },
        routes: [{ id: 'read', match: { methods: ['GET'], path: '/data' }, upstream: 'app' }],
      },
      dir,
    );
    await assert.rejects(startRegate(configFile), (err: Error) => {
      assert.match(err.message, /exited with 1 before listening/);
      assert.match(err.message, /entrypoint "cl\/missing" is not compiled/);
      assert.match(err.message, /a worker exited during startup/);
      return true;
    });
  });
});
