/**
 * Property: whatever a policy returns, normalizeDecision yields a Decision or
 * throws a PolicyError — and it allows only when the result is exactly `true`
 * or an object whose `allow` is exactly `true` (fail closed on anything else).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { PolicyError } from '../../../src/errors.ts';
import { normalizeDecision } from '../../../src/policy/decision.ts';

const RUNS = Number(process.env.FUZZ_RUNS ?? 2000);

const headerMap = fc.dictionary(fc.string({ maxLength: 12 }), fc.oneof(fc.string({ maxLength: 12 }), fc.integer()), { maxKeys: 3 });
const decisionLike = fc.record(
  {
    allow: fc.oneof(fc.boolean(), fc.constant('true'), fc.constant(1), fc.constant(null)),
    reasons: fc.oneof(fc.array(fc.string({ maxLength: 10 }), { maxLength: 3 }), fc.string(), fc.array(fc.integer())),
    status: fc.oneof(fc.integer({ min: 100, max: 600 }), fc.double(), fc.string()),
    headers: headerMap,
    response_headers: headerMap,
  },
  { requiredKeys: [] },
);
const result = fc.oneof(fc.jsonValue(), decisionLike);
const resultSet = fc.oneof(
  result.map((r) => [{ result: r }]),
  fc.array(result.map((r) => ({ result: r })), { maxLength: 3 }),
  fc.jsonValue(),
);

describe('fuzz: policy results', () => {
  it('a Decision or a PolicyError; allow only for an exact true', () => {
    fc.assert(
      fc.property(resultSet, (rs) => {
        let decision;
        try {
          decision = normalizeDecision(rs);
        } catch (err) {
          assert.ok(err instanceof PolicyError, `not a PolicyError: ${String(err)}`);
          return;
        }
        assert.ok(Array.isArray(rs) && rs.length === 1, 'only a single result can decide');
        const r = (rs[0] as { result: unknown }).result;
        const allowed = r === true || (typeof r === 'object' && r !== null && !Array.isArray(r) && (r as { allow?: unknown }).allow === true);
        assert.equal(decision.allow, allowed, JSON.stringify(rs));
      }),
      { numRuns: RUNS },
    );
  });
});
