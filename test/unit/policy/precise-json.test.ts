import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bigintsToNumbers, parseJsonPrecise, stringifyJson, withPreciseJson } from '../../../src/policy/precise-json.ts';

describe('parseJsonPrecise', () => {
  it('keeps integers beyond 2^53 exact as bigint', () => {
    assert.deepEqual(parseJsonPrecise('{"ns":1670006453141828752,"max":9223372036854775807,"min":-9223372036854775808}'), {
      ns: 1670006453141828752n,
      max: 9223372036854775807n,
      min: -9223372036854775808n,
    });
    assert.equal(parseJsonPrecise('9007199254740993'), 9007199254740993n);
  });

  it('leaves safe integers, floats and exponents as numbers', () => {
    assert.deepEqual(parseJsonPrecise('[9007199254740991,-9007199254740991,1.5,1e300,12345678901234567890.5,0]'), [
      9007199254740991,
      -9007199254740991,
      1.5,
      1e300,
      12345678901234567890.5,
      0,
    ]);
  });

  it('ignores long digit runs inside strings', () => {
    assert.deepEqual(parseJsonPrecise('{"id":"12345678901234567890","n":1}'), { id: '12345678901234567890', n: 1 });
  });

  it('throws SyntaxError like JSON.parse', () => {
    assert.throws(() => parseJsonPrecise('{"a":'), SyntaxError);
    assert.throws(() => parseJsonPrecise('{"a":12345678901234567890'), SyntaxError);
  });
});

describe('stringifyJson', () => {
  it('writes bigint digits exactly, anywhere', () => {
    assert.equal(stringifyJson({ a: 1670006453141828752n, b: [1n, -9223372036854775808n], c: 'x' }), '{"a":1670006453141828752,"b":[1,-9223372036854775808],"c":"x"}');
    assert.equal(stringifyJson(12345678901234567890n), '12345678901234567890');
  });

  it('round-trips through parseJsonPrecise', () => {
    const value = { now: 1670006453141828752n, small: 42, list: [18446744073709551615n, 'x', null, true] };
    assert.deepEqual(parseJsonPrecise(stringifyJson(value) as string), value);
  });

  it('writes each lone surrogate code unit as U+FFFD, as Go decodes it for OPA; valid pairs stay', () => {
    const cases: [string, string][] = [
      ['\ud800', '\ufffd'],
      ['\udfff', '\ufffd'],
      // The escape of the lone surrogate used to swallow the next one (U+0000 here).
      ['a\ud800\u0000b', 'a\ufffd\u0000b'],
      ['\udc00\ud800', '\ufffd\ufffd'],
      ['\ud800\ud800\udc00', '\ufffd\ud800\udc00'],
      ['\ud83d\ude00', '\ud83d\ude00'],
      // Text that only looks like an escape: a backslash followed by "ud800".
      ['\\ud800', '\\ud800'],
      ['\\\ud800', '\\\ufffd'],
      ['\\\\ud800', '\\\\ud800'],
    ];
    for (const [input, expected] of cases) {
      const text = stringifyJson(input) as string;
      assert.equal(JSON.parse(text), expected, JSON.stringify(input));
      assert.ok(!/\\ud[89a-f]/.test(text.replace(/\\\\/g, '')), `no surrogate escape left in ${text}`);
    }
  });

  it('replaces lone surrogates in keys and nested values, also on the bigint path', () => {
    const text = stringifyJson({ ['k\udc00']: ['\ud800', { n: 1670006453141828752n, s: 'x\udbff' }] }) as string;
    assert.equal(text, '{"k\ufffd":["\ufffd",{"n":1670006453141828752,"s":"x\ufffd"}]}');
  });

  it('agrees with String.prototype.toWellFormed on any string', () => {
    // Code units biased towards surrogates, backslashes and quotes.
    const units = [0xd800, 0xdbff, 0xdc00, 0xdfff, 0xd83d, 0xde00, 0x5c, 0x22, 0x75, 0x64, 0x38, 0x00, 0x41, 0xfffd];
    let seed = 7;
    const next = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
    for (let i = 0; i < 5000; i++) {
      const s = String.fromCharCode(...Array.from({ length: next() % 12 }, () => units[next() % units.length]!));
      const wellFormed = (s as unknown as { toWellFormed(): string }).toWellFormed();
      assert.equal(JSON.parse(stringifyJson({ [s]: s }) as string)[wellFormed], wellFormed, JSON.stringify(s));
    }
  });

  it('returns undefined where JSON.stringify does', () => {
    assert.equal(stringifyJson(undefined), undefined);
    assert.equal(stringifyJson(() => 1), undefined);
    assert.equal(stringifyJson({ a: undefined }), '{}');
  });
});

describe('withPreciseJson', () => {
  const native = JSON.parse;

  it('swaps JSON.parse for the duration of fn only', () => {
    const inside = withPreciseJson(() => JSON.parse('[1670006453141828752]') as unknown);
    assert.deepEqual(inside, [1670006453141828752n]);
    assert.equal(JSON.parse, native);
    assert.equal((JSON.parse('[1670006453141828752]') as number[])[0], 1670006453141828800);
  });

  it('restores JSON.parse when fn throws', () => {
    assert.throws(() => withPreciseJson(() => { throw new Error('boom'); }), /boom/);
    assert.equal(JSON.parse, native);
  });

  it('nests, restoring the outer scope', () => {
    withPreciseJson(() => {
      const outer = JSON.parse;
      withPreciseJson(() => undefined);
      assert.equal(JSON.parse, outer);
      assert.notEqual(JSON.parse, native);
    });
    assert.equal(JSON.parse, native);
  });

  it('keeps standard semantics for callers passing a reviver', () => {
    const out = withPreciseJson(() => JSON.parse('{"a":1670006453141828752}', (_k, v: unknown) => v) as { a: unknown });
    assert.equal(typeof out.a, 'number');
  });

  it('refuses an async fn, after restoring', () => {
    assert.throws(() => withPreciseJson(async () => 1), TypeError);
    assert.equal(JSON.parse, native);
  });
});

describe('bigintsToNumbers', () => {
  it('returns the same object when there is no bigint', () => {
    const value = { a: [1, { b: 'x' }], c: null };
    assert.equal(bigintsToNumbers(value), value);
  });

  it('converts nested bigints without touching the input', () => {
    const value = { a: [1, { b: 1670006453141828752n }], c: 'x', d: 2n };
    assert.deepEqual(bigintsToNumbers(value), { a: [1, { b: 1670006453141828752 }], c: 'x', d: 2 });
    assert.equal(value.d, 2n);
  });

  it('keeps a __proto__ key as data', () => {
    const value = parseJsonPrecise('{"__proto__":{"polluted":1},"n":12345678901234567890}') as Record<string, unknown>;
    const out = bigintsToNumbers(value) as Record<string, unknown>;
    assert.equal(Object.getPrototypeOf(out), Object.prototype);
    assert.deepEqual(Object.keys(out), ['__proto__', 'n']);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });
});
