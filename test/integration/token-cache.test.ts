/**
 * The verified-token cache in a real regate process, against a real JWKS
 * server: a reused token is verified once, a key removed by the identity
 * provider stops vouching for cached tokens as soon as the keys are re-fetched,
 * and `max_entries: 0` turns the cache off.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { send } from '../helpers/http.ts';
import { startJwksServer, type JwksServer } from '../helpers/jwks-server.ts';
import { parseExposition, sampleValue } from '../helpers/metrics.ts';
import { buildBundle } from '../helpers/opa.ts';
import { startRegate, writeConfig, type RegateProcess } from '../helpers/regate-process.ts';
import { baseClaims, generateTestKey, jwksOf, signToken, TEST_ISSUER, type TestKey } from '../helpers/tokens.ts';
import { startUpstreamServer, type TestUpstream } from '../helpers/upstream-server.ts';

const POLICY = `
package tc

decision := {"allow": input.subject.authenticated}
`;

let jwks: JwksServer;
let upstream: TestUpstream;
let bundle: string;
let keyA: TestKey;
let keyB: TestKey;
const started: RegateProcess[] = [];

before(async () => {
  [keyA, keyB] = await Promise.all([generateTestKey('ES256'), generateTestKey('ES256')]);
  jwks = await startJwksServer(jwksOf(keyA));
  upstream = await startUpstreamServer();
  bundle = await buildBundle({ files: { 'tc.rego': POLICY }, entrypoints: ['tc/decision'] });
});

after(async () => {
  for (const r of started) await r.stop();
  await upstream?.close();
  await jwks?.close();
});

async function start(extra: Record<string, unknown> = {}): Promise<RegateProcess> {
  const r = await startRegate(
    writeConfig({
      listen: { proxy: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 } },
      upstreams: { app: { url: upstream.url } },
      // cooldown 0: an unknown kid re-fetches the keys at once (the test's way to cause a refresh).
      issuers: [{ id: 'idp', issuer: TEST_ISSUER, jwks_url: jwks.url, audiences: ['regate'], algorithms: ['ES256'], jwks: { cooldown_s: 0 } }],
      policy: { bundle, default_entrypoint: 'tc/decision' },
      decision_log: { enabled: false },
      routes: [{ id: 'r', match: { methods: ['GET'], path: '/r' }, upstream: 'app' }],
      ...extra,
    }),
  );
  started.push(r);
  return r;
}

const lookups = async (r: RegateProcess): Promise<{ hit: number | undefined; miss: number | undefined }> => {
  const exp = parseExposition((await send(`${r.adminUrl}/metrics`)).text);
  return {
    hit: sampleValue(exp, 'regate_token_cache_lookups_total', { result: 'hit' }),
    miss: sampleValue(exp, 'regate_token_cache_lookups_total', { result: 'miss' }),
  };
};

const get = (r: RegateProcess, token: string): ReturnType<typeof send> => send(`${r.proxyUrl}/r`, { headers: { authorization: `Bearer ${token}` } });

describe('verified-token cache', () => {
  it('verifies a reused token once; a key removed from the JWKS stops vouching for it at the next key fetch', async () => {
    const r = await start();
    const tokenA = await signToken(keyA, baseClaims({ aud: 'regate' }));
    for (let i = 0; i < 5; i++) assert.equal((await get(r, tokenA)).status, 200);
    assert.deepEqual(await lookups(r), { hit: 4, miss: 1 });

    // The identity provider rotates: key A is gone. A token with the new kid makes regate re-fetch.
    jwks.setKeys(jwksOf(keyB));
    assert.equal((await get(r, await signToken(keyB, baseClaims({ aud: 'regate' })))).status, 200);
    const denied = await get(r, tokenA);
    assert.equal(denied.status, 401, 'the cached identity of a token signed by a removed key is gone');
    assert.equal(denied.json<{ reason: string }>().reason, 'unknown_key');
  });

  it('revocation: a key removed from the JWKS stops a cached token within cache_max_age_s + one fetch, with no request causing a fetch; tokens of the kept key stay cached', async () => {
    jwks.setKeys(jwksOf(keyA, keyB));
    const r = await start({
      issuers: [{ id: 'idp', issuer: TEST_ISSUER, jwks_url: jwks.url, audiences: ['regate'], algorithms: ['ES256'], jwks: { cache_max_age_s: 1, cooldown_s: 30, timeout_ms: 2000 } }],
    });
    const tokenA = await signToken(keyA, baseClaims({ aud: 'regate' }));
    const tokenB = await signToken(keyB, baseClaims({ aud: 'regate' }));
    for (let i = 0; i < 3; i++) {
      assert.equal((await get(r, tokenA)).status, 200);
      assert.equal((await get(r, tokenB)).status, 200);
    }
    assert.deepEqual(await lookups(r), { hit: 4, miss: 2 });

    jwks.setKeys(jwksOf(keyB));
    const removedAt = Date.now();
    // Documented bound: cache_max_age_s (1 s) + one fetch (timeout_ms 2 s); generous slack for a loaded machine.
    const bound = 1_000 + 2_000 + 7_000;
    let status = 200;
    while (status === 200 && Date.now() - removedAt < bound) {
      status = (await get(r, tokenA)).status;
      if (status === 200) await new Promise((res) => setTimeout(res, 100));
    }
    assert.equal(status, 401, `the cached token signed by the removed key is refused within ${bound} ms`);
    // The log line travels over the child's stderr: it may arrive just after the 401 does.
    const logged = (): boolean => r.logs.some((l) => /removed keys/.test(String(l.msg)) && l.keys === 1 && l.evicted === 1);
    for (const start = Date.now(); !logged() && Date.now() - start < 5_000; ) await new Promise((res) => setTimeout(res, 50));
    assert.ok(logged(), 'the eviction is logged');

    const before = await lookups(r);
    assert.equal((await get(r, tokenB)).status, 200);
    const after = await lookups(r);
    assert.equal(after.hit, (before.hit ?? 0) + 1, 'the token of the kept key is still served from the cache');
    assert.equal(after.miss, before.miss);
  });

  it('max_entries: 0 turns it off: every request verifies its token', async () => {
    jwks.setKeys(jwksOf(keyA, keyB));
    const r = await start({ token_cache: { max_entries: 0 } });
    const token = await signToken(keyA, baseClaims({ aud: 'regate' }));
    for (let i = 0; i < 3; i++) assert.equal((await get(r, token)).status, 200);
    assert.deepEqual(await lookups(r), { hit: 0, miss: 0 });
  });
});
