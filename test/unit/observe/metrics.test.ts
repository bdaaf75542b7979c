import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { register as globalRegistry } from 'prom-client';
import { AUTHN_REASONS } from '../../../src/errors.ts';
import { createMetrics, type MetricsOptions } from '../../../src/observe/metrics.ts';
import type { RequestOutcome } from '../../../src/observe/record.ts';
import { labelValues, sampleValue, samplesOf, scrape } from '../../helpers/metrics.ts';

function outcome(over: Partial<RequestOutcome> = {}): RequestOutcome {
  return {
    decisionId: 'd-1',
    startedAtNs: 1_773_072_000_000_000_000n,
    durationNs: 2_000_000,
    routeId: 'predict',
    entrypoint: 'regate/authz/decision',
    input: null,
    result: { allow: true },
    decision: 'allow',
    status: 200,
    reason: 'allowed',
    authn: { outcome: 'verified', issuer: 'kc' },
    scopes: [],
    evalNs: 40_000,
    upstreamNs: 1_000_000,
    upstreamStatus: 200,
    method: 'POST',
    path: '/v1/models/m/predict',
    ...over,
  };
}

const base: MetricsOptions = {
  routeIds: ['predict', 'files'],
  issuerIds: ['kc'],
  bundle: { name: 'regate', revision: 'rev-1' },
  version: '9.9.9',
  defaultMetrics: false,
};

describe('createMetrics', () => {
  it('pre-initialises the known series of every configured route at 0', async () => {
    const m = createMetrics(base);
    const exp = await scrape(m.registry);
    for (const route of ['predict', 'files']) {
      for (const [decision, cls] of [['allow', '2xx'], ['allow', '3xx'], ['allow', '4xx'], ['allow', '5xx'], ['deny', '4xx'], ['error', '5xx']] as const) {
        assert.equal(sampleValue(exp, 'regate_requests_total', { route, decision, status_class: cls }), 0, `${route} ${decision} ${cls}`);
      }
      // Implausible combinations are not pre-created (they still count if they ever happen).
      assert.equal(sampleValue(exp, 'regate_requests_total', { route, decision: 'deny', status_class: '2xx' }), undefined);
      assert.equal(sampleValue(exp, 'regate_request_duration_seconds_count', { route }), 0);
      assert.equal(sampleValue(exp, 'regate_upstream_duration_seconds_count', { route }), 0);
      assert.equal(sampleValue(exp, 'regate_denials_total', { route, reason: 'policy_denied' }), 0);
      assert.equal(sampleValue(exp, 'regate_forward_failures_total', { route, reason: 'upstream_unavailable' }), 0);
      assert.equal(sampleValue(exp, 'regate_forward_failures_total', { route, reason: 'upstream_timeout' }), 0);
    }
    assert.equal(sampleValue(exp, 'regate_requests_total', { route: '_unmatched', decision: 'deny', status_class: '4xx' }), 0);
    assert.equal(sampleValue(exp, 'regate_requests_total', { route: '_unmatched', decision: 'error', status_class: '5xx' }), 0);
    // Unmatched requests are never allowed: no zero series that could never move.
    assert.equal(sampleValue(exp, 'regate_requests_total', { route: '_unmatched', decision: 'allow', status_class: '2xx' }), undefined);
    for (const reason of AUTHN_REASONS) assert.equal(sampleValue(exp, 'regate_authn_failures_total', { reason }), 0, reason);
    for (const result of ['success', 'not_modified', 'error']) assert.equal(sampleValue(exp, 'regate_jwks_refresh_total', { issuer: 'kc', result }), 0);
    assert.equal(sampleValue(exp, 'regate_decision_duration_seconds_count'), 0);
    assert.equal(sampleValue(exp, 'regate_decision_log_errors_total'), 0);
  });

  it('counts and times synthetic outcomes', async () => {
    const m = createMetrics(base);
    m.observe(outcome());
    m.observe(outcome({ durationNs: 20_000_000 }));
    m.observe(outcome({ decision: 'deny', status: 403, reason: 'policy_denied', upstreamNs: undefined, upstreamStatus: undefined }));
    m.observe(
      outcome({
        routeId: 'files',
        decision: 'deny',
        status: 401,
        reason: 'token_expired',
        authn: { outcome: 'failed', reason: 'token_expired' },
        entrypoint: null,
        result: undefined,
        evalNs: undefined,
        upstreamNs: undefined,
      }),
    );
    m.observe(outcome({ routeId: null, decision: 'deny', status: 404, reason: 'route_not_found', authn: { outcome: 'skipped' }, evalNs: undefined, upstreamNs: undefined }));
    m.observe(outcome({ routeId: null, decision: 'deny', status: 400, reason: 'dot_segment', authn: { outcome: 'skipped' }, evalNs: undefined, upstreamNs: undefined }));
    // Allowed, then the upstream timed out: still `allow`, counted as a forward failure.
    m.observe(outcome({ status: 504, reason: 'upstream_timeout', upstreamNs: 0, upstreamStatus: undefined }));
    m.observe(outcome({ routeId: 'files', decision: 'error', status: 500, reason: 'policy_eval_error', upstreamNs: undefined }));

    const exp = await scrape(m.registry);
    assert.equal(sampleValue(exp, 'regate_requests_total', { route: 'predict', decision: 'allow', status_class: '2xx' }), 2);
    assert.equal(sampleValue(exp, 'regate_requests_total', { route: 'predict', decision: 'deny', status_class: '4xx' }), 1);
    assert.equal(sampleValue(exp, 'regate_requests_total', { route: 'predict', decision: 'allow', status_class: '5xx' }), 1);
    assert.equal(sampleValue(exp, 'regate_requests_total', { route: 'files', decision: 'deny', status_class: '4xx' }), 1);
    assert.equal(sampleValue(exp, 'regate_requests_total', { route: 'files', decision: 'error', status_class: '5xx' }), 1);
    assert.equal(sampleValue(exp, 'regate_requests_total', { route: '_unmatched', decision: 'deny', status_class: '4xx' }), 2);

    assert.equal(sampleValue(exp, 'regate_request_duration_seconds_count', { route: 'predict' }), 4);
    assert.ok(Math.abs(sampleValue(exp, 'regate_request_duration_seconds_sum', { route: 'predict' })! - 0.026) < 1e-12);
    assert.equal(sampleValue(exp, 'regate_request_duration_seconds_bucket', { route: 'predict', le: '0.0025' }), 3);
    assert.equal(sampleValue(exp, 'regate_request_duration_seconds_bucket', { route: 'predict', le: '0.025' }), 4);
    assert.equal(sampleValue(exp, 'regate_upstream_duration_seconds_count', { route: 'predict' }), 2);
    assert.equal(sampleValue(exp, 'regate_upstream_duration_seconds_sum', { route: 'predict' }), 0.002);
    assert.equal(sampleValue(exp, 'regate_decision_duration_seconds_count'), 5);
    assert.equal(sampleValue(exp, 'regate_decision_duration_seconds_bucket', { le: '0.00005' }), 5);
    assert.equal(sampleValue(exp, 'regate_decision_duration_seconds_bucket', { le: '0.000025' }), 0);

    assert.equal(sampleValue(exp, 'regate_authn_failures_total', { reason: 'token_expired' }), 1);
    assert.equal(sampleValue(exp, 'regate_authn_failures_total', { reason: 'missing_token' }), 0);
    assert.equal(sampleValue(exp, 'regate_denials_total', { route: 'predict', reason: 'policy_denied' }), 1);
    assert.equal(sampleValue(exp, 'regate_denials_total', { route: 'files', reason: 'token_expired' }), 1);
    assert.equal(sampleValue(exp, 'regate_denials_total', { route: '_unmatched', reason: 'route_not_found' }), 1);
    assert.equal(sampleValue(exp, 'regate_denials_total', { route: '_unmatched', reason: 'dot_segment' }), 1);
    assert.equal(sampleValue(exp, 'regate_denials_total', { route: 'files', reason: 'policy_eval_error' }), 1);
    assert.equal(sampleValue(exp, 'regate_denials_total', { route: 'predict', reason: 'upstream_timeout' }), undefined);
    assert.equal(sampleValue(exp, 'regate_forward_failures_total', { route: 'predict', reason: 'upstream_timeout' }), 1);
  });

  it('keeps every label bounded: unknown routes, reasons and statuses are bucketed', async () => {
    const m = createMetrics(base);
    for (let i = 0; i < 50; i++) {
      m.observe(
        outcome({
          routeId: `attacker-${i}`,
          decision: 'error',
          status: i % 2 === 0 ? 0 : 999,
          reason: `made_up_${i}`,
          authn: { outcome: 'failed', reason: `bogus_${i}` },
        }),
      );
    }
    m.observe(outcome({ status: 502, reason: 'upstream_exploded' }));
    const exp = await scrape(m.registry);
    assert.equal(sampleValue(exp, 'regate_forward_failures_total', { route: 'predict', reason: 'other' }), 1);
    for (const name of ['regate_requests_total', 'regate_request_duration_seconds_count', 'regate_upstream_duration_seconds_count', 'regate_denials_total', 'regate_forward_failures_total']) {
      const routes = labelValues(exp, name, 'route');
      assert.ok([...routes].every((r) => ['predict', 'files', '_unmatched'].includes(r)), `${name}: ${[...routes].join(',')}`);
    }
    assert.ok(labelValues(exp, 'regate_requests_total', 'route').has('_unmatched'));
    assert.equal(sampleValue(exp, 'regate_requests_total', { route: '_unmatched', decision: 'error', status_class: 'other' }), 50);
    assert.equal(sampleValue(exp, 'regate_denials_total', { route: '_unmatched', reason: 'other' }), 50);
    assert.equal(sampleValue(exp, 'regate_authn_failures_total', { reason: 'other' }), 50);
    assert.deepEqual(labelValues(exp, 'regate_authn_failures_total', 'reason'), new Set([...AUTHN_REASONS, 'other']));
    assert.deepEqual(labelValues(exp, 'regate_denials_total', 'reason'), new Set(['policy_denied', 'other']));
  });

  it('never throws on nonsensical durations (it runs in the pipeline finally)', async () => {
    const m = createMetrics(base);
    m.observe(outcome({ durationNs: Number.NaN, evalNs: -1, upstreamNs: Infinity }));
    const exp = await scrape(m.registry);
    assert.equal(sampleValue(exp, 'regate_requests_total', { route: 'predict', decision: 'allow', status_class: '2xx' }), 1);
    assert.equal(sampleValue(exp, 'regate_request_duration_seconds_count', { route: 'predict' }), 0);
    assert.equal(sampleValue(exp, 'regate_decision_duration_seconds_count'), 0);
    assert.equal(sampleValue(exp, 'regate_upstream_duration_seconds_count', { route: 'predict' }), 0);
  });

  it('counts JWKS refreshes per configured issuer, others as _other', async () => {
    const m = createMetrics(base);
    m.jwksRefresh('kc', 'success');
    m.jwksRefresh('kc', 'not_modified');
    m.jwksRefresh('kc', 'not_modified');
    m.jwksRefresh('https://evil.example', 'error');
    assert.throws(() => m.jwksRefresh('kc', 'maybe' as 'error'), TypeError);
    const exp = await scrape(m.registry);
    assert.equal(sampleValue(exp, 'regate_jwks_refresh_total', { issuer: 'kc', result: 'success' }), 1);
    assert.equal(sampleValue(exp, 'regate_jwks_refresh_total', { issuer: 'kc', result: 'not_modified' }), 2);
    assert.equal(sampleValue(exp, 'regate_jwks_refresh_total', { issuer: '_other', result: 'error' }), 1);
    assert.deepEqual(labelValues(exp, 'regate_jwks_refresh_total', 'issuer'), new Set(['kc', '_other']));
  });

  it('exposes exactly one bundle info series, swapped by setBundle', async () => {
    const m = createMetrics(base);
    let exp = await scrape(m.registry);
    assert.deepEqual(samplesOf(exp, 'regate_policy_bundle_info'), [{ name: 'regate_policy_bundle_info', labels: { name: 'regate', revision: 'rev-1' }, value: 1 }]);
    m.setBundle({ name: 'regate', revision: 'rev-2' });
    exp = await scrape(m.registry);
    assert.deepEqual(samplesOf(exp, 'regate_policy_bundle_info'), [{ name: 'regate_policy_bundle_info', labels: { name: 'regate', revision: 'rev-2' }, value: 1 }]);
  });

  it('exposes build info', async () => {
    const exp = await scrape(createMetrics(base).registry);
    assert.equal(sampleValue(exp, 'regate_build_info', { version: '9.9.9', node: process.version }), 1);
  });

  it('admits the routes of a reloaded config and keeps the old ones', async () => {
    const m = createMetrics(base);
    m.observe(outcome());
    m.configure({ routeIds: ['search'], issuerIds: ['auth0'] });
    m.observe(outcome({ routeId: 'search' }));
    m.observe(outcome()); // an in-flight request of the previous runtime
    const exp = await scrape(m.registry);
    assert.equal(sampleValue(exp, 'regate_requests_total', { route: 'search', decision: 'allow', status_class: '2xx' }), 1);
    assert.equal(sampleValue(exp, 'regate_requests_total', { route: 'predict', decision: 'allow', status_class: '2xx' }), 2);
    assert.equal(sampleValue(exp, 'regate_jwks_refresh_total', { issuer: 'auth0', result: 'success' }), 0);
    assert.throws(() => m.configure({ routeIds: ['_unmatched'] }), TypeError);
  });

  it('counts policy engine rebuilds by bundle, both series from 0', async () => {
    const m = createMetrics(base);
    let exp = await scrape(m.registry);
    assert.equal(sampleValue(exp, 'regate_policy_engine_resets_total', { bundle: 'active' }), 0);
    assert.equal(sampleValue(exp, 'regate_policy_engine_resets_total', { bundle: 'candidate' }), 0);
    m.policyEngineReset('candidate');
    m.policyEngineReset('candidate');
    exp = await scrape(m.registry);
    assert.equal(sampleValue(exp, 'regate_policy_engine_resets_total', { bundle: 'candidate' }), 2);
    assert.equal(sampleValue(exp, 'regate_policy_engine_resets_total', { bundle: 'active' }), 0);
    assert.throws(() => m.policyEngineReset('other' as 'active'), TypeError);
  });

  it('counts decision-log write failures', async () => {
    const m = createMetrics(base);
    m.decisionLogError();
    assert.equal(sampleValue(await scrape(m.registry), 'regate_decision_log_errors_total'), 1);
  });

  it('uses its own registry, never the global one, and can register into a given one', async () => {
    const a = createMetrics(base);
    const b = createMetrics(base); // would throw "already registered" on a shared registry
    a.observe(outcome());
    assert.equal(sampleValue(await scrape(b.registry), 'regate_requests_total', { route: 'predict', decision: 'allow', status_class: '2xx' }), 0);
    assert.equal(globalRegistry.getSingleMetric('regate_requests_total'), undefined);
  });

  it('registers the default process_* and nodejs_* metrics unprefixed', async () => {
    const m = createMetrics({ ...base, defaultMetrics: true });
    const exp = await scrape(m.registry);
    assert.equal(exp.types.get('process_cpu_seconds_total'), 'counter');
    assert.equal(exp.types.get('nodejs_heap_size_used_bytes'), 'gauge');
    assert.ok(!exp.types.has('regate_process_cpu_seconds_total'));
  });
});
