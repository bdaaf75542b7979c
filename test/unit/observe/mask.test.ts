import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { applyMask, cloneForLog, compileMask, containsJwt, redactCredentials, redactJwts, type MaskableEvent } from '../../../src/observe/mask.ts';

const JWT =
  'eyJhbGciOiJFUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJhbGljZSIsImV4cCI6MTc3MzA3MjAwMH0.MEUCIQDx3Zq1y4Yy8m0lY8q2b7i2cW0mQw6B6Jw1oN2X9d_-AiA';

/** A masked copy of `doc`, as the decision log makes it. */
function masked(doc: MaskableEvent, pointers: string[]): { doc: MaskableEvent; erased: string[] } {
  const copy: MaskableEvent = {};
  if (doc.input !== undefined) copy.input = cloneForLog(doc.input);
  if (doc.result !== undefined) copy.result = cloneForLog(doc.result);
  const erased = applyMask(copy, compileMask(pointers));
  return { doc: JSON.parse(JSON.stringify(copy)) as MaskableEvent, erased };
}

describe('compileMask', () => {
  it('splits and unescapes RFC 6901 pointers once', () => {
    const { pointers } = compileMask(['/input/request/headers/x-api-key', '/result/a~1b/c~0d', '/input']);
    assert.deepEqual(pointers[0], { pointer: '/input/request/headers/x-api-key', root: 'input', tokens: ['request', 'headers', 'x-api-key'] });
    assert.deepEqual(pointers[1]?.tokens, ['a/b', 'c~d']);
    assert.deepEqual(pointers[2]?.tokens, []);
  });

  it('refuses pointers outside /input and /result, and malformed ones', () => {
    for (const bad of ['input/x', '', '/labels/id', '/custom/route_id', '/input/a~2b']) {
      assert.throws(() => compileMask([bad]), TypeError, bad);
    }
  });
});

describe('applyMask', () => {
  const input = {
    request: { headers: { 'x-api-key': 'k', accept: '*/*' }, query: { q: ['a', 'b'] } },
    subject: { roles: ['admin', 'user', 'auditor'] },
    token: { nested: { secret: 's', keep: 1 } },
  };

  it('removes a nested key and lists it as erased', () => {
    const { doc, erased } = masked({ input }, ['/input/token/nested/secret']);
    assert.deepEqual((doc.input as typeof input).token, { nested: { keep: 1 } });
    assert.deepEqual(erased, ['/input/token/nested/secret']);
  });

  it('splices out an array element (OPA semantics: later indices shift)', () => {
    const { doc, erased } = masked({ input }, ['/input/subject/roles/0', '/input/subject/roles/0']);
    assert.deepEqual((doc.input as typeof input).subject.roles, ['auditor']);
    assert.deepEqual(erased, ['/input/subject/roles/0', '/input/subject/roles/0']);
  });

  it('is a no-op for a missing key, an out-of-range or non-canonical index, or a path through a scalar', () => {
    const pointers = ['/input/token/missing', '/input/subject/roles/3', '/input/subject/roles/01', '/input/subject/roles/-', '/input/token/nested/keep/deeper', '/result/x'];
    const { doc, erased } = masked({ input }, pointers);
    assert.deepEqual(doc.input, input);
    assert.deepEqual(erased, []);
  });

  it('removes the whole input or result', () => {
    const { doc, erased } = masked({ input, result: { allow: true } }, ['/input', '/result']);
    assert.deepEqual(doc, {});
    assert.deepEqual(erased, ['/input', '/result']);
  });

  it('reaches keys that contain / and ~', () => {
    const { doc, erased } = masked({ result: { 'a/b': 1, 'c~d': 2, e: 3 } }, ['/result/a~1b', '/result/c~0d']);
    assert.deepEqual(doc.result, { e: 3 });
    assert.equal(erased.length, 2);
  });

  it('never touches the original', () => {
    const original = structuredClone(input);
    masked({ input }, ['/input/request/headers/x-api-key', '/input/subject/roles/1']);
    assert.deepEqual(input, original);
  });
});

describe('redactCredentials', () => {
  it('erases credential headers and masks JWT-shaped header and query values', () => {
    const input = cloneForLog({
      request: {
        headers: { authorization: `Bearer ${JWT}`, 'proxy-authorization': 'Basic dTpw', cookie: 'sid=1', 'x-token': `Bearer ${JWT}`, accept: 'application/json' },
        query: { access_token: [JWT], page: ['2'] },
      },
    });
    const r = redactCredentials(input);
    const out = JSON.parse(JSON.stringify(input)) as { request: { headers: Record<string, string>; query: Record<string, string[]> } };
    assert.deepEqual(out.request.headers, { 'x-token': 'Bearer [REDACTED:jwt]', accept: 'application/json' });
    assert.deepEqual(out.request.query, { access_token: ['[REDACTED:jwt]'], page: ['2'] });
    assert.deepEqual(r.erased, ['/input/request/headers/authorization', '/input/request/headers/proxy-authorization', '/input/request/headers/cookie']);
    assert.deepEqual(r.masked, ['/input/request/headers/x-token', '/input/request/query/access_token/0']);
  });

  it('recognises JWS and JWE compact forms, not ordinary values', () => {
    assert.ok(containsJwt(JWT));
    assert.ok(containsJwt('eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.')); // alg none: empty signature
    assert.ok(containsJwt('eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d')); // JWE: five parts
    assert.equal(redactJwts('eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d'), '[REDACTED:jwt]');
    assert.ok(!containsJwt('eyJustAWord'));
    assert.ok(!containsJwt('text/html,application/xhtml+xml'));
    assert.ok(!containsJwt('1.2.3'));
  });
});

describe('cloneForLog', () => {
  it('keeps bigints exact in JSON', () => {
    const json = JSON.stringify(cloneForLog({ now_ns: 1_773_072_000_123_456_789n, list: [2n ** 64n] }));
    assert.equal(json, '{"now_ns":1773072000123456789,"list":[18446744073709551616]}');
  });

  it('copies a __proto__ key as a key, not a prototype', () => {
    const evil = JSON.parse('{"__proto__":{"polluted":true},"a":1}') as Record<string, unknown>;
    const copy = cloneForLog(evil) as Record<string, unknown>;
    assert.equal(JSON.stringify(copy), '{"__proto__":{"polluted":true},"a":1}');
    assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
  });
});
