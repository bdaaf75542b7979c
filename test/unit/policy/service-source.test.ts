/**
 * The `policy.service` source against a real loopback bundle server, with
 * controllable timers: tests assert on the delays the poller asks for (jitter
 * bounds, backoff growth and reset), never on elapsed time.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, beforeEach, describe, it } from 'node:test';
import { pino } from 'pino';
import type { BundleServiceConfig, PolicyConfig } from '../../../src/config/types.ts';
import { BundleError } from '../../../src/errors.ts';
import { createMetrics, type Metrics } from '../../../src/observe/metrics.ts';
import type { Bundle } from '../../../src/policy/bundle.ts';
import { createBundleSource, type BundleSource } from '../../../src/policy/source.ts';
import { startBundleServer, type BundleServer } from '../../helpers/bundle-server.ts';
import { createFakeTimers, type FakeTimer, type FakeTimers } from '../../helpers/fake-timers.ts';
import { createLogSink, type LogSink } from '../../helpers/log-sink.ts';
import { scrape, sampleValue } from '../../helpers/metrics.ts';
import { buildBundle } from '../../helpers/opa.ts';
import { makeKeys, opaBuildSigned, tempDir } from '../../helpers/signing.ts';

const REGO = 'package regate.authz\n\ndecision := {"allow": true}\n';
const ENTRY = ['regate/authz/decision'];

let r1: Uint8Array;
let r2: Uint8Array;

before(async () => {
  const build = async (rev: string): Promise<Uint8Array> =>
    readFile(await buildBundle({ files: { 'authz.rego': REGO }, entrypoints: ENTRY, args: ['--revision', rev] }));
  [r1, r2] = await Promise.all([build('r1'), build('r2')]);
});

interface Harness {
  readonly source: BundleSource;
  readonly timers: FakeTimers;
  readonly metrics: Metrics;
  readonly logs: LogSink;
  readonly bundles: Bundle[];
  readonly errors: Error[];
  /** Fire the next scheduled poll and wait until the poll after it is scheduled; returns that timer. */
  poll(): Promise<FakeTimer>;
  value(name: string, labels?: Record<string, string>): Promise<number | undefined>;
}

const started: BundleSource[] = [];

async function harness(server: BundleServer, service: Partial<BundleServiceConfig> = {}, extra: Partial<PolicyConfig> = {}, now = (): number => 1_700_000_000_000): Promise<Harness> {
  const timers = createFakeTimers();
  const logs = createLogSink();
  const metrics = createMetrics({ routeIds: [], bundle: { name: 'regate', revision: '' }, defaultMetrics: false });
  const policy: PolicyConfig = {
    default_entrypoint: 'regate/authz/decision',
    timezone: 'UTC',
    service: {
      url: server.url,
      polling: { min_delay_seconds: 60, max_delay_seconds: 120 },
      timeout_ms: 5000,
      headers: {},
      max_download_bytes: 64 * 1024 * 1024,
      ...service,
    },
    ...extra,
  };
  const source = createBundleSource(policy, { logger: pino({ level: 'debug' }, logs.stream), metrics, configFile: '/etc/regate.yaml', timers, random: () => 0.5, now });
  started.push(source);
  const bundles: Bundle[] = [];
  const errors: Error[] = [];
  source.start(
    (b) => bundles.push(b),
    (e) => errors.push(e),
  );
  let pending = await timers.next();
  return {
    source,
    timers,
    metrics,
    logs,
    bundles,
    errors,
    async poll() {
      timers.fire(pending);
      pending = await timers.next();
      return pending;
    },
    async value(name, labels = {}) {
      return sampleValue(await scrape(metrics.registry), name, labels);
    },
  };
}

describe('policy.service source', () => {
  let server: BundleServer;
  beforeEach(async () => {
    await server?.close();
    server = await startBundleServer(r1);
  });
  after(async () => {
    await Promise.all(started.map((s) => s.stop()));
    await server.close();
  });

  it('polls at once, then every [min, max] s; an unchanged bundle costs a 304 and no activation', async () => {
    const h = await harness(server);
    assert.equal(h.timers.scheduled[0]!.ms, 0, 'the first poll starts at once');
    assert.equal(h.source.ready(), false);

    const afterFirst = await h.poll();
    assert.equal(afterFirst.ms, 90_000, 'random 0.5 → midway between 60 s and 120 s');
    assert.equal(h.bundles.length, 1);
    assert.equal(h.bundles[0]!.manifest.revision, 'r1');
    assert.equal(h.bundles[0]!.source, server.url);
    assert.equal(h.source.ready(), true);

    await h.poll();
    assert.equal(server.requests.at(-1)!.headers['if-none-match'], server.etag);
    assert.equal(server.notModified, 1);
    assert.equal(h.bundles.length, 1, 'a 304 is not a new bundle');

    server.serve(r2);
    await h.poll();
    assert.deepEqual(
      h.bundles.map((b) => b.manifest.revision),
      ['r1', 'r2'],
    );
    assert.equal(await h.value('regate_bundle_requests_total', { result: 'modified' }), 2);
    assert.equal(await h.value('regate_bundle_requests_total', { result: 'not_modified' }), 1);
    assert.equal(await h.value('regate_bundle_requests_total', { result: 'error' }), 0);
    assert.equal(await h.value('regate_bundle_activations_total', { result: 'success' }), 2);
    assert.equal(await h.value('regate_bundle_last_success_timestamp_seconds'), 1_700_000_000);
    assert.deepEqual(h.errors, []);
    const ready = h.logs.records.filter((r) => r.msg === 'policy bundle read and verified; handing it over for activation');
    assert.deepEqual(
      ready.map((r) => [r.revision, r.bundle]),
      [
        ['r1', server.url],
        ['r2', server.url],
      ],
    );
  });

  it('keeps the jittered delay within [min, max] whatever the random source says', async () => {
    for (const random of [0, 0.25, 0.999999]) {
      const timers = createFakeTimers();
      const metrics = createMetrics({ routeIds: [], bundle: { name: 'regate', revision: '' }, defaultMetrics: false });
      const source = createBundleSource(
        { default_entrypoint: 'x', timezone: 'UTC', service: { url: server.url, polling: { min_delay_seconds: 10, max_delay_seconds: 30 }, timeout_ms: 5000, headers: {}, max_download_bytes: 1 << 26 } },
        { logger: pino({ level: 'silent' }), metrics, configFile: 'c', timers, random: () => random },
      );
      started.push(source);
      source.start(
        () => {},
        () => {},
      );
      timers.fire(await timers.next());
      const next = await timers.next();
      assert.ok(next.ms >= 10_000 && next.ms <= 30_000, `${random} → ${next.ms}`);
      assert.equal(next.ms, 10_000 + 20_000 * random);
      await source.stop();
    }
  });

  it('backs off exponentially while the server fails, resets on success; a failure is not a refusal', async () => {
    server.mode = 'fail';
    const h = await harness(server, { polling: { min_delay_seconds: 1, max_delay_seconds: 1 } });
    const delays: number[] = [];
    for (let i = 0; i < 7; i++) delays.push((await h.poll()).ms);
    // OPA: 0 for the first retry, then 100 ms × 1.6^n (jitter factor 1 with random 0.5), capped at max_delay (1 s).
    const want = [0, 160, 256, 409.6, 655.36, 1000, 1000];
    delays.forEach((d, i) => assert.ok(Math.abs(d - want[i]!) < 1e-6, `retry ${i}: ${d} vs ${want[i]}`));
    assert.equal(h.source.ready(), false);
    assert.deepEqual(h.errors, [], 'transient download failures do not call onError');
    assert.equal(await h.value('regate_bundle_requests_total', { result: 'error' }), 7);
    assert.equal(await h.value('regate_bundle_errors_total', { reason: 'bundle_unavailable' }), 7);
    const warn = h.logs.records.find((r) => r.msg === 'policy bundle download failed; no bundle is active yet (not ready)');
    assert.equal(warn?.reason, 'bundle_unavailable');

    server.mode = 'ok';
    const afterSuccess = await h.poll();
    assert.equal(h.bundles.length, 1);
    assert.equal(afterSuccess.ms, 1000, 'back to the polling delay');

    server.mode = 'fail';
    assert.equal((await h.poll()).ms, 0, 'the backoff starts over after a success');
    assert.equal((await h.poll()).ms, 160);
    assert.equal(h.source.ready(), true, 'the last good bundle stays active');
  });

  it('refuses garbage (onError, counted) and forgets the ETag so the next poll downloads again', async () => {
    const h = await harness(server);
    await h.poll();
    assert.equal(h.bundles.length, 1);

    server.mode = 'garbage';
    const retry = await h.poll();
    assert.equal(retry.ms, 0, 'a refused bundle is retried with backoff');
    assert.equal(h.errors.length, 1);
    const err = h.errors[0] as BundleError;
    assert.ok(err instanceof BundleError);
    assert.equal(err.reason, 'bundle_invalid');
    assert.match(err.message, /not a gzip file/);
    assert.equal(await h.value('regate_bundle_activations_total', { result: 'error' }), 1);
    assert.equal(await h.value('regate_bundle_errors_total', { reason: 'bundle_invalid' }), 1);
    const refusal = h.logs.records.find((r) => r.msg === 'policy bundle refused; the last good bundle keeps serving');
    assert.equal(refusal?.reason, 'bundle_invalid');
    assert.equal(refusal?.level, 50);

    server.mode = 'ok';
    await h.poll();
    assert.equal(server.requests.at(-1)!.headers['if-none-match'], undefined, 'the refused bundle’s ETag is not reused');
    assert.equal(h.bundles.length, 1, 'same bytes as the active bundle: not handed over again');
    assert.equal(h.source.ready(), true);
  });

  it('times out a hanging server and retries', async () => {
    server.mode = 'hang';
    const h = await harness(server, { timeout_ms: 150 });
    assert.equal((await h.poll()).ms, 0);
    assert.equal(await h.value('regate_bundle_errors_total', { reason: 'bundle_timeout' }), 1);
    assert.deepEqual(h.errors, []);
  });

  it('refuses a bundle over max_download_bytes', async () => {
    const h = await harness(server, { max_download_bytes: 1024 });
    await h.poll();
    assert.equal(h.errors.length, 1);
    assert.equal((h.errors[0] as BundleError).reason, 'bundle_too_large');
    assert.equal(await h.value('regate_bundle_requests_total', { result: 'error' }), 1);
    assert.equal(await h.value('regate_bundle_activations_total', { result: 'error' }), 1);
  });

  it('sends the configured headers', async () => {
    server.requireAuthorization = 'Bearer t0ken';
    const h = await harness(server, { headers: { authorization: 'Bearer t0ken' } });
    await h.poll();
    assert.equal(h.bundles.length, 1);
    assert.ok(!h.logs.lines.some((l) => l.includes('t0ken')), 'credentials never reach the logs');
  });

  it('serves without ETags: the same bytes again are not handed over again', async () => {
    server.etags = false;
    const h = await harness(server);
    await h.poll();
    await h.poll();
    assert.equal(server.served, 2);
    assert.equal(h.bundles.length, 1);
    server.serve(r2);
    await h.poll();
    assert.equal(h.bundles.at(-1)!.manifest.revision, 'r2');
  });

  it('verifies signatures: an unsigned bundle is refused, a signed one accepted', async () => {
    const dir = await tempDir();
    const key = await makeKeys(dir, 'k');
    const signed = await opaBuildSigned({ files: { 'authz.rego': REGO }, entrypoints: ENTRY, signingKey: key.privateKey, revision: 'signed' });
    const h = await harness(server, {}, { signing: { public_key_file: key.publicKey, algorithm: 'RS256', keyid: 'default', exclude_files: [] } });
    await h.poll();
    assert.equal((h.errors[0] as BundleError).reason, 'signature_missing');
    assert.equal(h.source.ready(), false);
    assert.equal(h.logs.records.find((r) => r.reason === 'signature_missing')?.msg, 'policy bundle refused; no bundle is active yet (not ready)');
    server.serve(signed);
    await h.poll();
    assert.equal(h.bundles.length, 1);
    assert.equal(h.bundles[0]!.manifest.revision, 'signed');
    assert.equal(await h.value('regate_bundle_errors_total', { reason: 'signature_missing' }), 1);
  });

  it('stop() aborts a request in flight; no callback runs afterwards', async () => {
    server.mode = 'hang';
    const h = await harness(server);
    const seen = server.requests.length;
    h.timers.fire(h.timers.pending()[0]!);
    await server.waitForRequests(seen + 1);
    await h.source.stop();
    server.mode = 'ok';
    assert.deepEqual(h.timers.pending(), [], 'nothing scheduled after stop');
    assert.deepEqual(h.errors, []);
    assert.equal(await h.value('regate_bundle_requests_total', { result: 'error' }), 0, 'a stop is not a failure');
    h.source.start(
      () => assert.fail('started after stop'),
      () => assert.fail('started after stop'),
    );
    assert.deepEqual(h.timers.pending(), []);
  });
});

describe('policy.service source: freshness gauges', () => {
  let server: BundleServer;
  before(async () => {
    server = await startBundleServer(r1);
  });
  after(async () => {
    await server.close();
  });

  it('a 304 poll is a check, a failed or refused poll is not; the activation time stays that of the bundle', async () => {
    let clock = 1_700_000_000_000;
    const h = await harness(server, {}, {}, () => clock);
    await h.poll(); // r1 delivered at 1_700_000_000
    assert.equal(await h.value('regate_bundle_last_check_timestamp_seconds'), 1_700_000_000);
    clock += 60_000;
    await h.poll(); // 304
    assert.equal(await h.value('regate_bundle_last_check_timestamp_seconds'), 1_700_000_060);
    clock += 60_000;
    server.mode = 'fail';
    await h.poll();
    assert.equal(await h.value('regate_bundle_last_check_timestamp_seconds'), 1_700_000_060, 'a 500 confirms nothing');
    clock += 60_000;
    server.mode = 'garbage';
    await h.poll();
    assert.equal(h.errors.length, 1);
    assert.equal(await h.value('regate_bundle_last_check_timestamp_seconds'), 1_700_000_060, 'a refused bundle is not the newest one active');
    clock += 60_000;
    server.mode = 'ok';
    await h.poll();
    assert.equal(await h.value('regate_bundle_last_check_timestamp_seconds'), 1_700_000_240);
  });

  it('a source with freshness off (a shadow candidate) sets neither gauge', async () => {
    const timers = createFakeTimers();
    const metrics = createMetrics({ routeIds: [], bundle: { name: 'regate', revision: '' }, defaultMetrics: false });
    const source = createBundleSource(
      { default_entrypoint: 'regate/authz/decision', timezone: 'UTC', service: { url: server.url, polling: { min_delay_seconds: 60, max_delay_seconds: 120 }, timeout_ms: 5000, headers: {}, max_download_bytes: 1 << 26 } },
      { logger: pino({ level: 'silent' }), metrics, configFile: '/etc/regate.yaml', timers, random: () => 0.5, now: () => 1_700_000_000_000, freshness: false },
    );
    started.push(source);
    const bundles: Bundle[] = [];
    source.start((b) => bundles.push(b), () => {});
    timers.fire(await timers.next());
    await timers.next();
    assert.equal(bundles.length, 1);
    const m = await scrape(metrics.registry);
    assert.equal(sampleValue(m, 'regate_bundle_last_check_timestamp_seconds'), 0);
    assert.equal(sampleValue(m, 'regate_bundle_last_success_timestamp_seconds'), 0);
  });
});
