import assert from 'node:assert/strict';
import cluster, { type Worker } from 'node:cluster';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { AggregatorRegistry, Registry } from 'prom-client';
import { ask, ClusterRegistry } from '../../../src/cluster/aggregate.ts';
import { createMetrics } from '../../../src/observe/metrics.ts';
import { renderExposition } from '../../../src/observe/exposition.ts';
import { parseExposition, parseOpenMetrics, sampleValue } from '../../helpers/metrics.ts';

const workerScript = fileURLToPath(new URL('../../fixtures/cluster/metrics-worker.ts', import.meta.url));
cluster.setupPrimary({ exec: workerScript, silent: true });

const forked: Worker[] = [];
after(async () => {
  await Promise.all(forked.filter((w) => !w.isDead()).map(async (w) => {
    w.process.kill('SIGKILL');
    await once(w, 'exit');
  }));
});

/** Fork the fixture worker and wait for its `regate:listening`. */
async function fork(env: Record<string, string>): Promise<Worker> {
  const w = cluster.fork(env);
  forked.push(w);
  await new Promise<void>((resolve, reject) => {
    w.on('message', (m: { type?: string }) => m.type === 'regate:listening' && resolve());
    w.once('exit', (code) => reject(new Error(`fixture worker exited ${code}`)));
  });
  return w;
}

describe('aggregation modes of regate metrics', () => {
  it('sums counters and histograms, keeps info gauges at 1 per label set, takes the stalest reload', async () => {
    const a = createMetrics({ routeIds: ['predict'], bundle: { name: 'regate', revision: 'r1' }, version: '1', defaultMetrics: false });
    const b = createMetrics({ routeIds: ['predict'], bundle: { name: 'regate', revision: 'r2' }, version: '1', defaultMetrics: false });
    a.decisionLogError();
    b.decisionLogError();
    b.decisionLogError();
    a.tokenCacheLookup('hit');
    b.tokenCacheLookup('hit');
    b.tokenCacheLookup('miss');
    a.activated(1000);
    b.activated(2000);
    b.reloaded('signal', 'error', 3000);
    const merged = AggregatorRegistry.aggregate([await a.registry.getMetricsAsJSON(), await b.registry.getMetricsAsJSON()]);
    const exp = parseExposition(await merged.metrics());
    assert.equal(sampleValue(exp, 'regate_decision_log_errors_total', {}), 3);
    assert.equal(sampleValue(exp, 'regate_token_cache_lookups_total', { result: 'hit' }), 2);
    assert.equal(sampleValue(exp, 'regate_token_cache_lookups_total', { result: 'miss' }), 1);
    // Mid rolling reload: both revisions show, each as 1 — never "2 bundles of r1".
    assert.equal(sampleValue(exp, 'regate_policy_bundle_info', { name: 'regate', revision: 'r1' }), 1);
    assert.equal(sampleValue(exp, 'regate_policy_bundle_info', { name: 'regate', revision: 'r2' }), 1);
    assert.equal(sampleValue(exp, 'regate_build_info', { version: '1', node: process.version }), 1);
    assert.equal(sampleValue(exp, 'regate_config_last_reload_success_timestamp_seconds', {}), 1000, 'the stalest worker');
    assert.equal(sampleValue(exp, 'regate_config_reload_success', {}), 0, 'one worker refused its last reload');
  });
});

describe('ClusterRegistry (real workers over IPC)', () => {
  it('aggregates every listening worker with its own registry', async () => {
    const workers = [await fork({ REQUESTS: '3', REVISION: 'r1' }), await fork({ REQUESTS: '4', REVISION: 'r1' })];
    const own = new Registry();
    const registry = new ClusterRegistry(own, () => workers);
    const exp = parseExposition(await registry.metrics());
    assert.equal(sampleValue(exp, 'regate_requests_total', { route: 'predict', decision: 'allow', status_class: '2xx' }), 7);
    assert.equal(sampleValue(exp, 'regate_request_duration_seconds_count', { route: 'predict' }), 7);
    assert.equal(sampleValue(exp, 'regate_request_duration_seconds_bucket', { route: 'predict', le: '0.0025' }), 7);
    assert.equal(sampleValue(exp, 'regate_token_cache_lookups_total', { result: 'miss' }), 2);
    assert.equal(sampleValue(exp, 'regate_token_cache_lookups_total', { result: 'hit' }), 5);
    assert.equal(sampleValue(exp, 'regate_policy_bundle_info', { name: 'regate', revision: 'r1' }), 1);
    // The OpenMetrics rendering reads the same merged values.
    const om = parseOpenMetrics((await renderExposition(registry, 'openmetrics')).body);
    assert.equal(sampleValue(om, 'regate_requests_total', { route: 'predict', decision: 'allow', status_class: '2xx' }), 7);
    assert.equal(sampleValue(om, 'regate_request_duration_seconds_count', { route: 'predict' }), 7);
    const ready = await ask(workers[0]!, 'regate:ready?', 'regate:ready');
    assert.deepEqual(ready.readiness, { ready: true, checks: { policy: true } });
  });

  it('fails the scrape when a worker does not answer, rather than report totals without it', async () => {
    const workers = [await fork({ REQUESTS: '1' }), await fork({ SILENT: '1' })];
    const registry = new ClusterRegistry(new Registry(), () => workers, 200);
    await assert.rejects(registry.metrics(), /did not answer regate:metrics\? within 200 ms/);
  });

  it('a question to a worker that exits is rejected, not left pending', async () => {
    const w = await fork({ SILENT: '1' });
    const pending = ask(w, 'regate:ready?', 'regate:ready', 10_000);
    w.process.kill('SIGKILL');
    await assert.rejects(pending, /exited before answering/);
  });
});
