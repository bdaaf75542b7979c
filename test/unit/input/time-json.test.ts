import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TimeInputBuilder } from '../../../src/input/time.ts';
import { stringifyJson } from '../../../src/policy/precise-json.ts';

describe('input.time as JSON', () => {
  const time = new TimeInputBuilder('Europe/Paris').build(1_773_072_000_123_456_789n);

  it('serializes now_ns exactly with the native JSON.stringify', () => {
    const json = JSON.stringify({ time });
    assert.match(json, /"now_ns":1773072000123456789,/);
    assert.deepEqual(JSON.parse(json.replace('1773072000123456789', '0')).time.local, time.local);
  });

  it('stays a plain record for everything else: the bigint, four keys, nothing enumerable added', () => {
    assert.equal(typeof time.now_ns, 'bigint');
    assert.deepEqual(Object.keys(time), ['now_ns', 'rfc3339', 'timezone', 'local']);
    assert.deepEqual({ ...time }, { now_ns: time.now_ns, rfc3339: time.rfc3339, timezone: 'Europe/Paris', local: time.local });
  });
});

describe('stringifyJson', () => {
  it('takes the exact path for any other bigint (a huge integer in a JSON body)', () => {
    const time = new TimeInputBuilder('UTC').build(5n);
    assert.equal(stringifyJson({ body: { id: 2n ** 64n }, list: [1n] }), '{"body":{"id":18446744073709551616},"list":[1]}');
    assert.equal(stringifyJson({ time, n: 12345678901234567890n })?.includes('"now_ns":5,'), true);
    assert.equal(stringifyJson(undefined), undefined);
  });

  it('still refuses what JSON cannot hold (a cycle)', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    assert.throws(() => stringifyJson(cyclic), TypeError);
  });
});
