import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createDecisionLog } from '../../../src/observe/decision-log.ts';
import { createMetrics } from '../../../src/observe/metrics.ts';
import { createObserver, type RequestOutcome } from '../../../src/observe/record.ts';
import { createLogSink } from '../../helpers/log-sink.ts';
import { sampleValue, scrape } from '../../helpers/metrics.ts';

const outcome: RequestOutcome = {
  decisionId: 'd-1',
  startedAtNs: 1_773_072_000_000_000_000n,
  durationNs: 1_000_000,
  routeId: 'predict',
  entrypoint: 'regate/authz/decision',
  input: null,
  result: { allow: false },
  decision: 'deny',
  status: 403,
  reason: 'policy_denied',
  authn: { outcome: 'verified', issuer: 'idp' },
  scopes: ['read'],
  evalNs: 12_000,
  method: 'GET',
  path: '/v1/x',
};

describe('createObserver', () => {
  it('feeds one outcome to the metrics and to exactly one decision-log line', async () => {
    const metrics = createMetrics({ routeIds: ['predict'], bundle: { name: 'b', revision: 'r' }, defaultMetrics: false });
    const sink = createLogSink();
    const decisionLog = createDecisionLog({ enabled: true, destination: 'stdout', mask: [], labels: {}, max_buffer_bytes: 4 * 1024 * 1024, overload: 'block' }, { bundles: () => ({}), version: 'v', instanceId: 'i' }, { stream: sink.stream });
    createObserver({ metrics, decisionLog }).record(outcome);

    const exp = await scrape(metrics.registry);
    assert.equal(sampleValue(exp, 'regate_requests_total', { route: 'predict', decision: 'deny', status_class: '4xx' }), 1);
    assert.equal(sampleValue(exp, 'regate_denials_total', { route: 'predict', reason: 'policy_denied' }), 1);
    const record = sink.only();
    assert.equal(record['decision_id'], 'd-1');
    assert.equal((record['custom'] as Record<string, unknown>)['decision'], 'deny');
  });

  it('isolates the parts: a throwing one neither stops the other nor escapes', () => {
    const seen: string[] = [];
    const errors: unknown[] = [];
    const observer = createObserver({
      metrics: {
        observe() {
          throw new Error('metrics broke');
        },
      },
      decisionLog: { write: (o) => void seen.push(o.decisionId) },
      onError: (err) => errors.push(err),
    });
    assert.doesNotThrow(() => observer.record(outcome));
    assert.deepEqual(seen, ['d-1']);
    assert.equal((errors[0] as Error).message, 'metrics broke');

    const quiet = createObserver({
      metrics: { observe: () => void seen.push('m') },
      decisionLog: {
        write() {
          throw new Error('log broke');
        },
      },
      onError() {
        throw new Error('even the reporter broke');
      },
    });
    assert.doesNotThrow(() => quiet.record(outcome));
    assert.deepEqual(seen, ['d-1', 'm']);
  });
});
