import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { exactArguments, parseJsonExact, RegoNumber } from '../../../src/policy/number-text.ts';
import { withPreciseJson } from '../../../src/policy/precise-json.ts';

/** Every RegoNumber as `#<text>`, to compare with deepEqual. */
function texts(v: unknown): unknown {
  if (v instanceof RegoNumber) return `#${v.text}`;
  if (Array.isArray(v)) return v.map(texts);
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, texts(x)]));
  return v;
}

describe('number-text', () => {
  it('parseJsonExact keeps every number as its text', () => {
    assert.deepEqual(texts(parseJsonExact('[1.0, 1e2, -0, 18446744073709551616, 7, {"a": 1e400}]')), ['#1.0', '#1e2', '#-0', '#18446744073709551616', '#7', { a: '#1e400' }]);
  });

  it('exactArguments re-reads the texts the SDK just parsed, matched by identity', () => {
    const result = withPreciseJson(() => {
      // What the SDK does for a 2-argument builtin: parse each argument, then call.
      const a = JSON.parse('"%v"');
      const b = JSON.parse('[1.0, 1e2, 9223372036854775807.0]');
      return exactArguments([a, b]);
    });
    assert.deepEqual(texts(result), ['%v', ['#1.0', '#1e2', '#9223372036854775807.0']]);
  });

  it('falls back to the values when the texts do not match the arguments', () => {
    const result = withPreciseJson(() => {
      JSON.parse('[1.5]'); // some other parse
      return exactArguments([[2], 'x']);
    });
    assert.deepEqual(texts(result), [['#2'], 'x']);
    assert.deepEqual(texts(exactArguments([1.25, 5n])), ['#1.25', '#5']); // outside a scope
  });

  it('a RegoNumber serializes as its exact text', () => {
    assert.equal(JSON.stringify({ n: new RegoNumber('1.0e400') }), '{"n":1.0e400}');
  });
});
