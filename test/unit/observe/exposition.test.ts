/**
 * /metrics content negotiation and the OpenMetrics rendering: what Prometheus
 * sends gets OpenMetrics, plain scrapers get the text format, and rendering
 * OpenMetrics leaves the live registry's text format intact (prom-client
 * renames counters in place when a registry is switched to OpenMetrics).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { negotiateExposition, OPENMETRICS_CONTENT_TYPE, renderExposition, TEXT_CONTENT_TYPE } from '../../../src/observe/exposition.ts';
import { createMetrics } from '../../../src/observe/metrics.ts';
import { parseExposition, parseOpenMetrics, sampleValue } from '../../helpers/metrics.ts';

describe('negotiateExposition', () => {
  const cases: [string | undefined, 'text' | 'openmetrics'][] = [
    [undefined, 'text'],
    ['', 'text'],
    ['*/*', 'text'],
    ['text/plain', 'text'],
    ['text/plain;version=0.0.4', 'text'],
    // Prometheus 2.x's scrape Accept header.
    ['application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1', 'openmetrics'],
    // Prometheus 3.x's default (protobuf first, which regate does not serve).
    ['application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.5,application/openmetrics-text;version=1.0.0;q=0.4,application/openmetrics-text;version=0.0.1;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1', 'openmetrics'],
    ['application/openmetrics-text', 'openmetrics'],
    ['Application/OpenMetrics-Text; Version="1.0.0"', 'openmetrics'],
    ['application/openmetrics-text;q=0.2,text/plain;q=0.9', 'text'],
    ['application/openmetrics-text;q=0', 'text'],
    ['application/openmetrics-text;version=2.0.0', 'text'],
    ['application/openmetrics-text;q=bogus', 'text'],
    ['application/openmetrics-text;q=1.5', 'text'],
    [',,;;;=', 'text'],
  ];
  for (const [accept, want] of cases) {
    it(`${JSON.stringify(accept)} → ${want}`, () => assert.equal(negotiateExposition(accept), want));
  }
});

describe('renderExposition', () => {
  const metrics = createMetrics({ routeIds: ['predict'], issuerIds: ['kc'], bundle: { name: 'regate', revision: 'r1' } });
  metrics.jwksRefresh('kc', 'success');
  metrics.observe({
    decisionId: 'd', startedAtNs: 0n, durationNs: 3_000_000, routeId: 'predict', entrypoint: 'e', input: null, result: { allow: true },
    decision: 'allow', status: 200, reason: 'allowed', authn: { outcome: 'verified', issuer: 'kc' }, scopes: [], evalNs: 30_000,
    upstreamNs: 2_000_000, upstreamStatus: 200, method: 'GET', path: '/x',
  });

  it('OpenMetrics: valid structure, counters as <family>_total, same values as the text format', async () => {
    const om = await renderExposition(metrics.registry, 'openmetrics');
    assert.equal(om.contentType, OPENMETRICS_CONTENT_TYPE);
    const exp = parseOpenMetrics(om.body);
    assert.equal(exp.types.get('regate_requests'), 'counter');
    assert.equal(exp.types.get('regate_request_duration_seconds'), 'histogram');
    assert.equal(sampleValue(exp, 'regate_requests_total', { route: 'predict', decision: 'allow', status_class: '2xx' }), 1);
    assert.equal(sampleValue(exp, 'regate_jwks_refresh_total', { issuer: 'kc', result: 'success' }), 1);
    assert.equal(sampleValue(exp, 'regate_request_duration_seconds_count', { route: 'predict' }), 1);
    assert.equal(sampleValue(exp, 'regate_policy_bundle_info', { name: 'regate', revision: 'r1' }), 1);
    assert.ok(exp.types.has('process_cpu_seconds'), 'default metrics are there too');
  });

  it('rendering OpenMetrics does not rename the live counters: the text format after it is unchanged', async () => {
    const before = (await renderExposition(metrics.registry, 'text')).body;
    await renderExposition(metrics.registry, 'openmetrics');
    const after = await renderExposition(metrics.registry, 'text');
    assert.equal(after.contentType, TEXT_CONTENT_TYPE);
    const exp = parseExposition(after.body);
    assert.equal(exp.types.get('regate_requests_total'), 'counter');
    assert.equal(sampleValue(exp, 'regate_requests_total', { route: 'predict', decision: 'allow', status_class: '2xx' }), 1);
    // Same families in the same order (values such as process CPU may move between the two renders).
    const families = (t: string): string[] => t.split('\n').filter((l) => l.startsWith('# TYPE'));
    assert.deepEqual(families(after.body), families(before));
  });

  it('a sampled request (traceId on the outcome) is its request-duration bucket’s exemplar, in OpenMetrics only', async () => {
    const m = createMetrics({ routeIds: ['predict'], bundle: { name: 'regate', revision: 'r1' }, defaultMetrics: false });
    const base = {
      decisionId: 'd', startedAtNs: 0n, routeId: 'predict', entrypoint: 'e', input: null, result: { allow: true },
      decision: 'allow', status: 200, reason: 'allowed', authn: { outcome: 'verified', issuer: 'kc' }, scopes: [], method: 'GET', path: '/x',
    } as const;
    m.observe({ ...base, durationNs: 3_000_000, traceId: '4bf92f3577b34da6a3ce929d0e0e4736' });
    m.observe({ ...base, durationNs: 40_000_000 }); // not sampled: counted, no exemplar
    const om = parseOpenMetrics((await renderExposition(m.registry, 'openmetrics')).body);
    const withExemplar = om.samples.filter((x) => x.exemplar !== undefined);
    assert.equal(withExemplar.length, 1);
    assert.equal(withExemplar[0]!.name, 'regate_request_duration_seconds_bucket');
    assert.deepEqual(withExemplar[0]!.labels, { le: '0.005', route: 'predict' });
    assert.deepEqual(withExemplar[0]!.exemplar!.labels, { trace_id: '4bf92f3577b34da6a3ce929d0e0e4736' });
    assert.equal(withExemplar[0]!.exemplar!.value, 0.003);
    assert.doesNotMatch((await renderExposition(m.registry, 'text')).body, /trace_id/);
  });

  it('keeps the exemplar a value carries (the hook tracing will use)', async () => {
    const { Registry, Histogram } = await import('prom-client');
    // prom-client records exemplars only into an OpenMetrics-typed registry.
    const registry = new Registry<typeof OPENMETRICS_CONTENT_TYPE>();
    registry.setContentType(OPENMETRICS_CONTENT_TYPE);
    const h = new Histogram({ name: 'x_seconds', help: 'x', buckets: [1], registers: [registry as never], enableExemplars: true });
    h.observe({ value: 0.5, labels: {}, exemplarLabels: { trace_id: 'abc123' } });
    const body = (await renderExposition(registry as never, 'openmetrics')).body;
    parseOpenMetrics(body);
    assert.match(body, /^x_seconds_bucket\{le="1"\} 1 # \{trace_id="abc123"\} 0\.5 \d/m);
  });
});
