/**
 * Policy bundle sources end to end: a real regate process polls a real
 * loopback bundle server (OPA bundle protocol, ETags) for bundles signed by
 * the real opa CLI. Not ready until a first bundle; a new signed bundle is
 * activated and its revision shows in the decision log and /metrics; an
 * unsigned or tampered bundle is refused, counted and logged while the last
 * good one keeps serving. Every wait is a bounded poll.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startBundleServer, type BundleServer } from '../helpers/bundle-server.ts';
import { send } from '../helpers/http.ts';
import { parseExposition, sampleValue, type Exposition } from '../helpers/metrics.ts';
import { startRegate, writeConfig, type RegateProcess } from '../helpers/regate-process.ts';
import { bundleFiles, makeKeys, opaBuildSigned, packBundle, tempDir, type KeyFiles } from '../helpers/signing.ts';
import { startUpstreamServer, type TestUpstream } from '../helpers/upstream-server.ts';

/** Allows exactly when `data.bundles_it.open` is true, and says which bundle decided. */
const POLICY = `
package bundles_it

decision := {"allow": data.bundles_it.open == true, "headers": {"x-policy-version": data.bundles_it.tag}}
`;
const ENTRY = ['bundles_it/decision'];

let upstream: TestUpstream;
let server: BundleServer;
let key: KeyFiles;
let signedOpen: Uint8Array;
let signedClosed: Uint8Array;
let unsigned: Uint8Array;
let regate: RegateProcess | undefined;

const build = (tag: string, open: boolean, signingKey?: string): Promise<Uint8Array> =>
  opaBuildSigned({
    files: { 'policy.rego': POLICY, 'bundles_it/data.json': JSON.stringify({ open, tag }) },
    entrypoints: ENTRY,
    revision: tag,
    ...(signingKey !== undefined ? { signingKey } : {}),
  });

/** Poll `check` every 50 ms until it returns a value (not undefined), at most `timeoutMs`. */
async function waitFor<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const scrape = async (): Promise<Exposition> => parseExposition((await send(`${regate!.adminUrl}/metrics`)).text);
const metric = async (name: string, labels: Record<string, string> = {}): Promise<number> => sampleValue(await scrape(), name, labels) ?? 0;

before(async () => {
  const dir = await tempDir();
  key = await makeKeys(dir, 'bundle-signing');
  [signedOpen, signedClosed, unsigned] = await Promise.all([build('it-open', true, key.privateKey), build('it-closed', false, key.privateKey), build('it-unsigned', true)]);
  upstream = await startUpstreamServer();
  server = await startBundleServer(signedOpen);
  server.mode = 'fail'; // regate starts before any bundle is available
  server.requireAuthorization = 'Bearer it-token';
});

after(async () => {
  await regate?.stop();
  await server?.close();
  await upstream?.close();
});

describe('bundles from an OPA bundle server, signed', () => {
  it('is not ready until the first bundle, then enforces it', async () => {
    const configFile = writeConfig({
      listen: { proxy: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 } },
      upstreams: { app: { url: upstream.url } },
      policy: {
        service: {
          url: server.url,
          polling: { min_delay_seconds: 1, max_delay_seconds: 1 },
          timeout_ms: 5000,
          headers: { authorization: 'Bearer ${BUNDLE_TOKEN}' },
        },
        signing: { public_key_file: key.publicKey, algorithm: 'RS256', keyid: 'default' },
        default_entrypoint: 'bundles_it/decision',
      },
      routes: [{ id: 'r', match: { methods: ['GET'], path: '/r' }, upstream: 'app', auth: 'none' }],
    });
    regate = await startRegate(configFile, { BUNDLE_TOKEN: 'it-token' });

    // The server fails: regate listens but is not ready, and refuses traffic rather than guess.
    await server.waitForRequests(2);
    assert.equal((await send(`${regate.adminUrl}/readyz`)).status, 503);
    assert.equal((await send(`${regate.proxyUrl}/r`)).status, 503);
    assert.ok((await metric('regate_bundle_requests_total', { result: 'error' })) >= 1);

    server.mode = 'ok';
    await waitFor('readiness', async () => ((await send(`${regate!.adminUrl}/readyz`)).status === 200 ? true : undefined));
    const res = await send(`${regate.proxyUrl}/r`);
    assert.equal(res.status, 200);
    const record = await regate.waitForDecision((r) => (r.custom as { route_id?: string } | undefined)?.route_id === 'r');
    assert.deepEqual(record.bundles, { regate: { revision: 'it-open' } });
    assert.equal(await metric('regate_policy_bundle_info', { name: 'regate', revision: 'it-open' }), 1);
    assert.equal(server.requests.at(-1)!.headers.authorization, 'Bearer it-token');
  });

  it('polls with If-None-Match: an unchanged bundle costs a 304', async () => {
    const before304 = server.notModified;
    await waitFor('a 304', async () => (server.notModified > before304 ? true : undefined));
    await waitFor('not_modified counted', async () => ((await metric('regate_bundle_requests_total', { result: 'not_modified' })) >= 1 ? true : undefined));
    assert.ok((await metric('regate_bundle_last_success_timestamp_seconds')) > 1_600_000_000);
    assert.equal(await metric('regate_bundle_activations_total', { result: 'success' }), 1);
  });

  it('refuses an unsigned and a tampered bundle; the last good one keeps serving', async () => {
    server.serve(unsigned);
    await waitFor('signature_missing', async () => ((await metric('regate_bundle_errors_total', { reason: 'signature_missing' })) >= 1 ? true : undefined));

    const files = new Map<string, Uint8Array | string>(await bundleFiles(signedOpen));
    files.set('data.json', JSON.stringify({ bundles_it: { open: false, tag: 'tampered' } }));
    server.serve(packBundle(files));
    await waitFor('file_digest_mismatch', async () => ((await metric('regate_bundle_errors_total', { reason: 'file_digest_mismatch' })) >= 1 ? true : undefined));

    assert.ok((await metric('regate_bundle_activations_total', { result: 'error' })) >= 2);
    assert.equal(await metric('regate_policy_bundle_info', { name: 'regate', revision: 'it-open' }), 1);
    const res = await send(`${regate!.proxyUrl}/r`);
    assert.equal(res.status, 200, 'still the last good bundle');
    assert.equal((await send(`${regate!.adminUrl}/readyz`)).status, 200);
    const refusal = regate!.logs.find((l) => l.reason === 'file_digest_mismatch');
    assert.equal(refusal?.msg, 'policy bundle refused; the last good bundle keeps serving');
    assert.equal(refusal?.bundle, server.url);
  });

  it('never logs the bundle server credentials (policy.service.headers)', () => {
    const leaks = regate!.logs.filter((l) => JSON.stringify(l).includes('it-token'));
    assert.deepEqual(leaks, [], 'the bearer token reached the operational log');
  });

  it('activates a new signed bundle: its revision shows in decisions and metrics', async () => {
    server.serve(signedClosed);
    await waitFor('it-closed active', async () => ((await metric('regate_policy_bundle_info', { name: 'regate', revision: 'it-closed' })) === 1 ? true : undefined));
    const res = await send(`${regate!.proxyUrl}/r`);
    assert.equal(res.status, 403);
    const record = await regate!.waitForDecision((r) => (r.bundles as { regate?: { revision?: string } } | undefined)?.regate?.revision === 'it-closed');
    assert.equal((record.result as { allow?: boolean }).allow, false);
    assert.equal(await metric('regate_bundle_activations_total', { result: 'success' }), 2);
  });
});
