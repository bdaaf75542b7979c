import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PolicyError } from '../../../src/errors.ts';
import { compileShadow } from '../../../src/policy/shadow.ts';
import type { Decision, PolicyEngine } from '../../../src/policy/types.ts';

/** An engine whose entrypoints are plain functions of the input. */
function engine(entrypoints: Record<string, (input: unknown) => Decision>): PolicyEngine {
  return {
    revision: 'r',
    entrypoints: Object.keys(entrypoints),
    unsupportedBuiltins: [],
    evaluate(entrypoint, input) {
      const f = entrypoints[entrypoint];
      if (!f) throw new PolicyError('policy_unknown_entrypoint', `no ${entrypoint}`);
      return { decision: f(input), evalNs: 500 };
    },
  };
}
const decision = (allow: boolean): Decision => ({ allow, reasons: [], headers: {}, responseHeaders: {}, raw: { allow } });

describe('compileShadow', () => {
  const shadow = compileShadow(
    engine({
      'v2/decision': (input) => decision((input as { ok: boolean }).ok),
      'v2/undefined': () => {
        throw new PolicyError('policy_undefined', 'undefined');
      },
      'v2/bug': () => {
        throw new TypeError('a bug');
      },
    }),
    { entrypoint: 'v2/decision', bundle: 'candidate' },
  );

  it('agrees when the candidate decides the same allow', () => {
    assert.deepEqual(shadow.evaluate({ ok: true }, 1n, true), { path: 'v2/decision', bundle: 'candidate', result: { allow: true }, allow: true, agreement: 'agree', evalNs: 500 });
    assert.equal(shadow.evaluate({ ok: false }, 1n, false).agreement, 'agree');
  });

  it('disagrees both ways: stricter and looser', () => {
    assert.equal(shadow.evaluate({ ok: false }, 1n, true).agreement, 'disagree');
    assert.equal(shadow.evaluate({ ok: true }, 1n, false).agreement, 'disagree');
  });

  it('never throws: a PolicyError or a bug is an `error` agreement with a reason', () => {
    const undef = compileShadow(engine({ 'v2/undefined': () => decision(true) }), { entrypoint: 'v2/missing', bundle: 'active' });
    assert.deepEqual(undef.evaluate({}, 1n, true), { path: 'v2/missing', bundle: 'active', result: undefined, allow: null, agreement: 'error', reason: 'policy_unknown_entrypoint' });
    const bug = compileShadow(
      engine({
        'v2/bug': () => {
          throw new TypeError('a bug');
        },
      }),
      { entrypoint: 'v2/bug', bundle: 'active' },
    );
    assert.equal(bug.evaluate({}, 1n, true).reason, 'internal_error');
  });
});
