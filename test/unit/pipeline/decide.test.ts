import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { PolicyError } from '../../../src/errors.ts';
import { decide, evaluateShadow } from '../../../src/pipeline/decide.ts';
import { Exchange } from '../../../src/pipeline/exchange.ts';
import { compileShadow } from '../../../src/pipeline/shadow.ts';
import type { Decision, PolicyEngine } from '../../../src/policy/types.ts';
import type { CompiledRoute, Runtime } from '../../../src/runtime.ts';

const decision = (allow: boolean, headers: Record<string, string> = {}): Decision => ({ allow, reasons: ['why'], headers, responseHeaders: { 'x-r': '1' }, raw: { allow } });

/** A runtime whose policy answers by entrypoint; just what decide() and Exchange read. */
function runtime(answers: Record<string, Decision | Error>): Runtime {
  const policy: PolicyEngine = {
    revision: 'r',
    entrypoints: Object.keys(answers),
    unsupportedBuiltins: [],
    evaluate(entrypoint) {
      const a = answers[entrypoint];
      if (a === undefined || a instanceof Error) throw a ?? new PolicyError('policy_unknown_entrypoint', entrypoint);
      return { decision: a, evalNs: 100 };
    },
  };
  return { policy, clock: { nowNs: () => 1_000n }, logger: pino({ level: 'silent' }) } as unknown as Runtime;
}

function exchange(rt: Runtime, route: CompiledRoute): Exchange {
  const req = { method: 'GET', url: '/x', headers: { host: 'h' }, socket: { remoteAddress: '127.0.0.1' } } as unknown as IncomingMessage;
  const ex = new Exchange(rt, req);
  ex.route = route;
  ex.input = { request: {} } as never;
  return ex;
}

const route = (entrypoint: string, dryRun: boolean, shadow: CompiledRoute['shadow'] = null): CompiledRoute =>
  ({ config: { id: 'r' }, entrypoint, dryRun, shadow }) as unknown as CompiledRoute;

describe('decide', () => {
  it('an enforcing route returns the decision and a policy error throws', () => {
    const rt = runtime({ allow: decision(true), deny: decision(false), broken: new PolicyError('policy_eval_error', 'boom') });
    const ex = exchange(rt, route('deny', false));
    assert.equal(decide(rt, route('deny', false), ex).allow, false);
    assert.equal(ex.decision, 'deny');
    assert.equal(ex.dryRun, undefined);
    assert.throws(() => decide(rt, route('broken', false), exchange(rt, route('broken', false))), PolicyError);
  });

  it('a dry-run deny is forwarded without the deny’s headers; the would-be decision is recorded', () => {
    const rt = runtime({ deny: decision(false, { 'x-h': 'v' }) });
    const ex = exchange(rt, route('deny', true));
    const d = decide(rt, route('deny', true), ex);
    assert.equal(d.allow, true);
    assert.deepEqual(d.headers, {});
    assert.deepEqual(d.responseHeaders, {});
    assert.deepEqual(ex.dryRun, { decision: 'deny', reason: 'policy_denied' });
    assert.equal(ex.decision, 'allow');
    assert.equal(ex.reason, 'allowed');
    assert.deepEqual(ex.result, { allow: false }, 'the policy result is still logged');
  });

  it('a dry-run allow is enforced as usual (its headers apply)', () => {
    const allow = decision(true, { 'x-h': 'v' });
    const rt = runtime({ allow });
    const ex = exchange(rt, route('allow', true));
    assert.equal(decide(rt, route('allow', true), ex), allow);
    assert.deepEqual(ex.dryRun, { decision: 'allow', reason: 'allowed' });
  });

  it('a dry-run policy error is forwarded, recorded as error with its reason', () => {
    const rt = runtime({ broken: new PolicyError('policy_undefined', 'undefined') });
    const ex = exchange(rt, route('broken', true));
    assert.equal(decide(rt, route('broken', true), ex).allow, true);
    assert.deepEqual(ex.dryRun, { decision: 'error', reason: 'policy_undefined' });
    assert.equal(ex.error, null);
  });
});

describe('evaluateShadow', () => {
  const candidate: PolicyEngine = {
    revision: 'c',
    entrypoints: ['v2'],
    unsupportedBuiltins: [],
    evaluate: () => ({ decision: decision(true), evalNs: 7 }),
  };
  const shadow = compileShadow(candidate, { entrypoint: 'v2', bundle: 'candidate' });

  it('compares with the enforced decision', () => {
    const rt = runtime({ deny: decision(false) });
    const ex = exchange(rt, route('deny', false, shadow));
    decide(rt, route('deny', false, shadow), ex);
    evaluateShadow(ex);
    assert.equal(ex.shadow?.agreement, 'disagree');
  });

  it('on a dry-run route, compares with what would have been enforced', () => {
    const rt = runtime({ deny: decision(false) });
    const ex = exchange(rt, route('deny', true, shadow));
    decide(rt, route('deny', true, shadow), ex);
    evaluateShadow(ex);
    assert.equal(ex.shadow?.agreement, 'disagree', 'the enforced policy said deny, even though regate forwarded');
  });

  it('is skipped when the policy stage was never reached', () => {
    const rt = runtime({});
    const ex = exchange(rt, route('deny', false, shadow));
    evaluateShadow(ex);
    assert.equal(ex.shadow, undefined);
  });
});
