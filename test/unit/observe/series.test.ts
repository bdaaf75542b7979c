/**
 * The request-path metric families (src/observe/series.ts): what they export
 * must be what prom-client's Counter / Histogram exported for the same
 * observations — same sample names, labels (in order), cumulative buckets,
 * +Inf, sum, count — in the text format, in OpenMetrics (with exemplars
 * there only), and through the cluster aggregation.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AggregatorRegistry, Counter, Histogram, Registry } from 'prom-client';
import { renderExposition } from '../../../src/observe/exposition.ts';
import { CounterFamily, HistogramFamily } from '../../../src/observe/series.ts';
import { parseExposition, parseOpenMetrics, sampleValue } from '../../helpers/metrics.ts';

const BUCKETS = [0.001, 0.01, 0.1, 1];

/** The same observations into prom-client's metrics and into the families, each in its own registry. */
function twins(): { ours: Registry; theirs: Registry; observe(route: string, seconds: number): void; inc(route: string, status: string, by?: number): void } {
  const ours = new Registry();
  const theirs = new Registry();
  const h = new HistogramFamily({ name: 't_duration_seconds', help: 'h', labelNames: ['route'], buckets: BUCKETS, registers: [ours] });
  const c = new CounterFamily({ name: 't_requests_total', help: 'c', labelNames: ['route', 'status'], registers: [ours] });
  const ph = new Histogram({ name: 't_duration_seconds', help: 'h', labelNames: ['route'], buckets: BUCKETS, registers: [theirs] });
  const pc = new Counter({ name: 't_requests_total', help: 'c', labelNames: ['route', 'status'], registers: [theirs] });
  return {
    ours,
    theirs,
    observe(route, seconds) {
      h.series({ route }).observe(seconds);
      ph.observe({ route }, seconds);
    },
    inc(route, status, by = 1) {
      c.series({ route, status }).inc(by);
      pc.inc({ route, status }, by);
    },
  };
}

describe('CounterFamily / HistogramFamily', () => {
  it('export exactly what prom-client exports for the same observations (text format, byte for byte)', async () => {
    const t = twins();
    for (const [route, s] of [['a', 0.0005], ['a', 0.001], ['a', 0.05], ['b', 3], ['a', 0.5], ['b', 0.001000001]] as const) t.observe(route, s);
    t.inc('a', '2xx');
    t.inc('a', '2xx', 2);
    t.inc('b', '5xx');
    assert.equal(await t.ours.metrics(), await t.theirs.metrics());
    const exp = parseExposition(await t.ours.metrics());
    assert.equal(sampleValue(exp, 't_duration_seconds_bucket', { le: '0.001', route: 'a' }), 2, 'le is inclusive, cumulative');
    assert.equal(sampleValue(exp, 't_duration_seconds_bucket', { le: '+Inf', route: 'b' }), 2);
    assert.equal(sampleValue(exp, 't_requests_total', { route: 'a', status: '2xx' }), 3);
  });

  it('OpenMetrics and the JSON prom-client aggregates are the same as prom-client’s too', async () => {
    const t = twins();
    t.observe('a', 0.02);
    t.inc('a', '4xx');
    assert.equal((await renderExposition(t.ours, 'openmetrics')).body, (await renderExposition(t.theirs, 'openmetrics')).body);
    // prom-client writes `exemplar: null` where there is none; the families leave it out (both mean none).
    const plain = (v: unknown): unknown => JSON.parse(JSON.stringify(v, (k, x: unknown) => (k === 'exemplar' && x === null ? undefined : x)));
    assert.deepEqual(plain(await t.ours.getMetricsAsJSON()), plain(await t.theirs.getMetricsAsJSON()));
  });

  it('a series exists (at 0) from the moment it is resolved, and a resolved series is the same object every time', async () => {
    const registry = new Registry();
    const h = new HistogramFamily({ name: 'z_seconds', help: 'z', labelNames: ['route'], buckets: [1], registers: [registry] });
    const s = h.series({ route: 'r' });
    assert.equal(h.series({ route: 'r' }), s);
    const exp = parseExposition(await registry.metrics());
    assert.equal(sampleValue(exp, 'z_seconds_count', { route: 'r' }), 0);
    assert.equal(sampleValue(exp, 'z_seconds_bucket', { le: '+Inf', route: 'r' }), 0);
  });

  it('refuses label sets that do not match the label names (a programming error, at resolve time)', () => {
    const c = new CounterFamily({ name: 'l_total', help: 'l', labelNames: ['route'] });
    assert.throws(() => c.series({}), TypeError);
    assert.throws(() => c.series({ route: 'a', extra: 'b' }), TypeError);
    assert.throws(() => c.series({ other: 'a' }), TypeError);
    assert.throws(() => new HistogramFamily({ name: 'b_seconds', help: 'b', buckets: [1, 1] }), TypeError);
  });

  it('registry.resetMetrics() zeroes every series and keeps them exported', async () => {
    const registry = new Registry();
    const c = new CounterFamily({ name: 'r_total', help: 'r', labelNames: ['k'], registers: [registry] });
    const h = new HistogramFamily({ name: 'r_seconds', help: 'r', buckets: [1], registers: [registry] });
    c.series({ k: 'x' }).inc(5);
    h.series().observe(2, 'aaaabbbbccccddddaaaabbbbccccdddd');
    registry.resetMetrics();
    const exp = parseExposition(await registry.metrics());
    assert.equal(sampleValue(exp, 'r_total', { k: 'x' }), 0);
    assert.equal(sampleValue(exp, 'r_seconds_count'), 0);
    assert.doesNotMatch((await renderExposition(registry, 'openmetrics')).body, /trace_id/);
  });

  it('exemplars: the latest traced observation per bucket, in OpenMetrics only, within its bucket', async () => {
    const registry = new Registry();
    const h = new HistogramFamily({ name: 'e_seconds', help: 'e', labelNames: ['route'], buckets: [0.01, 0.1], registers: [registry] });
    const s = h.series({ route: 'r' });
    const before = Date.now() / 1000;
    s.observe(0.005, '0af7651916cd43dd8448eb211c80319c');
    s.observe(0.007, 'b7ad6b7169203331b7ad6b7169203331');
    s.observe(0.05); // untraced: counted, no exemplar
    s.observe(5, 'ffffffffffffffffffffffffffffffff');
    const om = parseOpenMetrics((await renderExposition(registry, 'openmetrics')).body);
    const bucket = (le: string) => om.samples.find((x) => x.name === 'e_seconds_bucket' && x.labels.le === le)!;
    assert.deepEqual(bucket('0.01').exemplar?.labels, { trace_id: 'b7ad6b7169203331b7ad6b7169203331' });
    assert.equal(bucket('0.01').exemplar?.value, 0.007);
    assert.ok(bucket('0.01').exemplar!.timestamp! >= before - 1 && bucket('0.01').exemplar!.timestamp! <= Date.now() / 1000 + 1);
    assert.equal(bucket('0.1').exemplar, undefined);
    assert.equal(bucket('0.1').value, 3);
    assert.deepEqual(bucket('+Inf').exemplar?.labels, { trace_id: 'ffffffffffffffffffffffffffffffff' });
    assert.doesNotMatch(await registry.metrics(), /#\s*\{/, 'the text format has no exemplars');
  });

  it('sums across workers like prom-client metrics (src/cluster/aggregate.ts)', async () => {
    const a = new Registry();
    const b = new Registry();
    for (const [r, n] of [[a, 1], [b, 2]] as const) {
      const c = new CounterFamily({ name: 'w_total', help: 'w', labelNames: ['route'], registers: [r] });
      const h = new HistogramFamily({ name: 'w_seconds', help: 'w', labelNames: ['route'], buckets: [1], registers: [r] });
      c.series({ route: 'x' }).inc(n);
      for (let i = 0; i < n; i++) h.series({ route: 'x' }).observe(0.5);
      h.series({ route: 'y' }).observe(2);
    }
    const merged = parseExposition(await AggregatorRegistry.aggregate([await a.getMetricsAsJSON(), await b.getMetricsAsJSON()]).metrics());
    assert.equal(sampleValue(merged, 'w_total', { route: 'x' }), 3);
    assert.equal(sampleValue(merged, 'w_seconds_bucket', { le: '1', route: 'x' }), 3);
    assert.equal(sampleValue(merged, 'w_seconds_bucket', { le: '1', route: 'y' }), 0);
    assert.equal(sampleValue(merged, 'w_seconds_count', { route: 'y' }), 2);
  });
});
