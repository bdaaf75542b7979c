/**
 * What dry-run, shadow and reloads add to the decision log and the metrics:
 * the fields and series operators read while rolling out a policy.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildDecisionEvent, createEventContext } from '../../../src/observe/decision-log.ts';
import { createMetrics } from '../../../src/observe/metrics.ts';
import type { RequestOutcome, ShadowOutcome } from '../../../src/observe/record.ts';
import { parseExposition, sampleValue } from '../../helpers/metrics.ts';

function outcome(over: Partial<RequestOutcome> = {}): RequestOutcome {
  return {
    decisionId: 'd1',
    startedAtNs: 1_773_072_000_000_000_000n,
    durationNs: 1000,
    routeId: 'r',
    entrypoint: 'app/decision',
    input: null,
    result: { allow: false },
    decision: 'allow',
    status: 200,
    reason: 'allowed',
    authn: { outcome: 'skipped' },
    scopes: [],
    method: 'GET',
    path: '/',
    ...over,
  };
}

const shadow = (over: Partial<ShadowOutcome> = {}): ShadowOutcome => ({
  path: 'app/decision_v2',
  bundle: 'active',
  result: { allow: true, secret: 's3cr3t', reasons: ['ok'] },
  allow: true,
  agreement: 'disagree',
  evalNs: 1234.6,
  ...over,
});

/** cloneForLog builds null-prototype objects: compare as the JSON that is written. */
const plain = (v: unknown): unknown => JSON.parse(JSON.stringify(v));

const ctx = (mask: string[] = []) =>
  createEventContext({ enabled: true, destination: 'stdout', mask, labels: {} }, { bundles: () => ({ regate: { revision: 'r1' } }), version: '0', instanceId: 'i' });

describe('decision log: dry-run and shadow fields', () => {
  it('a dry-run record says so and carries the would-be decision', () => {
    const event = buildDecisionEvent(outcome({ dryRun: { decision: 'deny', reason: 'policy_denied' } }), ctx());
    assert.equal(event.custom.decision, 'allow', 'what regate did');
    assert.equal(event.custom.dry_run, true);
    assert.equal(event.custom.dry_run_decision, 'deny');
    assert.equal(event.custom.dry_run_reason, 'policy_denied');
  });

  it('an enforcing record has no dry-run or shadow fields', () => {
    const event = buildDecisionEvent(outcome(), ctx());
    for (const k of ['dry_run', 'dry_run_decision', 'dry_run_reason', 'shadow']) assert.equal(k in event.custom, false, k);
    assert.equal('timer_regate_shadow_eval_ns' in event.metrics, false);
  });

  it('a shadow record carries path, bundle, result, allow and agreement, and its timer', () => {
    const event = buildDecisionEvent(outcome({ shadow: shadow() }), ctx());
    assert.deepEqual(plain(event.custom.shadow), { path: 'app/decision_v2', bundle: 'active', result: { allow: true, secret: 's3cr3t', reasons: ['ok'] }, allow: true, agree: false });
    assert.equal(event.metrics.timer_regate_shadow_eval_ns, 1235);
  });

  it("the operator's /result mask applies to the shadow result too, listed under /custom/shadow/result", () => {
    const event = buildDecisionEvent(outcome({ result: { allow: false, secret: 'x' }, shadow: shadow() }), ctx(['/result/secret']));
    assert.deepEqual(plain(event.result), { allow: false });
    assert.deepEqual(plain(event.custom.shadow?.result), { allow: true, reasons: ['ok'] });
    assert.deepEqual(event.erased, ['/result/secret', '/custom/shadow/result/secret']);
  });

  it('a failed shadow evaluation: no result, allow and agree null, the reason', () => {
    const event = buildDecisionEvent(outcome({ shadow: shadow({ result: undefined, allow: null, agreement: 'error', reason: 'policy_undefined', evalNs: undefined }) }), ctx());
    assert.deepEqual(event.custom.shadow, { path: 'app/decision_v2', bundle: 'active', allow: null, agree: null, error: 'policy_undefined' });
  });
});

describe('metrics: dry-run, shadow and reloads', () => {
  const scrape = async (m: ReturnType<typeof createMetrics>) => parseExposition(await m.registry.metrics());

  it('dry-run and shadow series exist at 0 for the routes that use them, and count by outcome', async () => {
    const m = createMetrics({ routeIds: ['r', 'plain'], bundle: { name: 'regate', revision: 'x' }, defaultMetrics: false });
    m.configure({ routeIds: ['r', 'plain'], dryRunRouteIds: ['r'], shadowRouteIds: ['r'] });
    let exp = await scrape(m);
    for (const decision of ['allow', 'deny', 'error']) assert.equal(sampleValue(exp, 'regate_dry_run_decisions_total', { route: 'r', decision }), 0);
    for (const agreement of ['agree', 'disagree', 'error']) assert.equal(sampleValue(exp, 'regate_shadow_decisions_total', { route: 'r', agreement }), 0);
    assert.equal(sampleValue(exp, 'regate_dry_run_decisions_total', { route: 'plain', decision: 'deny' }), undefined, 'no series for routes without dry_run');

    m.observe(outcome({ dryRun: { decision: 'deny', reason: 'policy_denied' }, shadow: shadow() }));
    m.observe(outcome({ dryRun: { decision: 'deny', reason: 'policy_denied' }, shadow: shadow({ agreement: 'agree' }) }));
    exp = await scrape(m);
    assert.equal(sampleValue(exp, 'regate_dry_run_decisions_total', { route: 'r', decision: 'deny' }), 2);
    assert.equal(sampleValue(exp, 'regate_shadow_decisions_total', { route: 'r', agreement: 'disagree' }), 1);
    assert.equal(sampleValue(exp, 'regate_shadow_decisions_total', { route: 'r', agreement: 'agree' }), 1);
    assert.equal(sampleValue(exp, 'regate_requests_total', { route: 'r', decision: 'allow', status_class: '2xx' }), 2, 'a dry-run deny was an allowed request');
    assert.equal(sampleValue(exp, 'regate_denials_total', { route: 'r', reason: 'policy_denied' }), 0);
  });

  it('reloads: every trigger × result at 0; success sets the gauges, an error sets reload_success 0 and keeps the timestamp', async () => {
    const m = createMetrics({ routeIds: [], bundle: { name: 'regate', revision: 'x' }, defaultMetrics: false });
    let exp = await scrape(m);
    for (const trigger of ['file', 'signal', 'bundle']) for (const result of ['success', 'error']) assert.equal(sampleValue(exp, 'regate_reloads_total', { trigger, result }), 0);
    m.activated(1000);
    exp = await scrape(m);
    assert.equal(sampleValue(exp, 'regate_config_reload_success'), 1);
    assert.equal(sampleValue(exp, 'regate_config_last_reload_success_timestamp_seconds'), 1000);
    assert.equal(sampleValue(exp, 'regate_reloads_total', { trigger: 'file', result: 'success' }), 0, 'startup is not a reload');
    m.reloaded('signal', 'error', 2000);
    exp = await scrape(m);
    assert.equal(sampleValue(exp, 'regate_config_reload_success'), 0);
    assert.equal(sampleValue(exp, 'regate_config_last_reload_success_timestamp_seconds'), 1000);
    assert.equal(sampleValue(exp, 'regate_reloads_total', { trigger: 'signal', result: 'error' }), 1);
    m.reloaded('bundle', 'success', 3000);
    exp = await scrape(m);
    assert.equal(sampleValue(exp, 'regate_config_reload_success'), 1);
    assert.equal(sampleValue(exp, 'regate_config_last_reload_success_timestamp_seconds'), 3000);
    assert.throws(() => m.reloaded('cron' as 'file', 'success'), TypeError);
  });
});
