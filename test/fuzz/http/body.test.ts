/**
 * Property: any body bytes under any content type yield one of the documented
 * statuses, never a throw; a parsed body is exactly what JSON.parse reads, and
 * duplicate keys are never parsed (the policy and the upstream could disagree).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { parseBody } from '../../../src/http/body.ts';
import { duplicateKey } from '../../../src/input/json.ts';

const RUNS = Number(process.env.FUZZ_RUNS ?? 2000);
const STATUSES = new Set(['parsed', 'body_empty', 'body_not_json', 'body_malformed']);

/** Objects built from few key names, so duplicates are frequent once serialized by hand. */
const key = fc.constantFrom('a', 'b', 'c', 'channel', '\\u0061', 'a\\"');
const leaf = fc.oneof(fc.integer(), fc.string({ maxLength: 4 }).map((s) => JSON.stringify(s)), fc.constant('null'));
const objectText: fc.Arbitrary<string> = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: 'small' }, leaf, tie('object'), tie('array')),
  object: fc.array(fc.tuple(key, tie('value')), { maxLength: 4 }).map((pairs) => `{${pairs.map(([k, v]) => `"${k}":${v}`).join(',')}}`),
  array: fc.array(tie('value'), { maxLength: 3 }).map((items) => `[${items.join(',')}]`),
})).object as fc.Arbitrary<string>;

describe('fuzz: request bodies', () => {
  it('never throws; statuses are the documented ones', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.constantFrom('application/json', 'text/plain', 'application/x+json; charset=utf-8'), (bytes, type) => {
        assert.ok(STATUSES.has(parseBody(bytes, type).status));
      }),
      { numRuns: RUNS },
    );
  });

  it('a parsed body has no duplicate key anywhere, and equals JSON.parse of the text', () => {
    fc.assert(
      fc.property(objectText, (text) => {
        const r = parseBody(Buffer.from(text), 'application/json');
        const hasDup = duplicateKey(text) !== null;
        if (r.status === 'parsed') {
          assert.equal(hasDup, false, text);
          assert.deepEqual((r as { value: unknown }).value, JSON.parse(text));
        } else {
          assert.equal(r.status, 'body_malformed');
          assert.equal(hasDup, true, `refused without a duplicate: ${text}`);
        }
      }),
      { numRuns: RUNS },
    );
  });
});
