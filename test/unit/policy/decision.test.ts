import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PolicyError } from '../../../src/errors.ts';
import { normalizeDecision } from '../../../src/policy/decision.ts';

const rs = (result: unknown): unknown => [{ result }];

function assertPolicyError(fn: () => unknown, reason: string, message?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof PolicyError, `expected PolicyError, got ${String(err)}`);
    assert.equal(err.reason, reason);
    assert.equal(err.status, 500);
    if (message) assert.match(err.message, message);
    return true;
  });
}

describe('normalizeDecision', () => {
  it('maps a boolean result to allow / deny', () => {
    assert.deepEqual(normalizeDecision(rs(true)), { allow: true, reasons: [], headers: {}, responseHeaders: {}, raw: true });
    assert.deepEqual(normalizeDecision(rs(false)), { allow: false, reasons: [], headers: {}, responseHeaders: {}, raw: false });
  });

  it('reads a full allow document', () => {
    const raw = { allow: true, reasons: ['ok'], headers: { 'X-Tenant': 'acme', 'x-empty': '' }, response_headers: { 'Cache-Control': 'no-store' }, extra: 1 };
    const d = normalizeDecision(rs(raw));
    assert.equal(d.allow, true);
    assert.deepEqual(d.reasons, ['ok']);
    assert.deepEqual(d.headers, { 'X-Tenant': 'acme', 'x-empty': '' });
    assert.deepEqual(d.responseHeaders, { 'Cache-Control': 'no-store' });
    assert.equal(d.status, undefined);
    assert.equal(d.raw, raw);
    assert.ok(Object.isFrozen(d));
  });

  it('reads a deny document with a status', () => {
    const d = normalizeDecision(rs({ allow: false, reasons: ['no'], status: 404, headers: { 'X-A': 'b' }, response_headers: { 'X-Why': 'policy' } }));
    assert.equal(d.allow, false);
    assert.equal(d.status, 404);
    assert.deepEqual(d.reasons, ['no']);
    // Upstream headers only matter on allow.
    assert.deepEqual(d.headers, {});
    assert.deepEqual(d.responseHeaders, { 'X-Why': 'policy' });
  });

  it('ignores status on allow', () => {
    const d = normalizeDecision(rs({ allow: true, status: 418 }));
    assert.equal(d.status, undefined);
  });

  it('keeps a __proto__ header name as a plain key', () => {
    const raw = JSON.parse('{"allow":true,"headers":{"__proto__":"x"}}') as unknown;
    const d = normalizeDecision(rs(raw));
    assert.equal(Object.getPrototypeOf(d.headers), Object.prototype);
    assert.deepEqual(Object.keys(d.headers), ['__proto__']);
  });

  describe('undefined', () => {
    for (const [name, set] of [
      ['empty result set', []],
      ['element without result', [{}]],
      ['element that is not an object', [true]],
    ] as const) {
      it(name, () => assertPolicyError(() => normalizeDecision(set), 'policy_undefined'));
    }
  });

  describe('invalid', () => {
    const cases: [string, unknown, RegExp][] = [
      ['result set not an array', { result: true }, /not an array/],
      ['conflicting result set', [{ result: true }, { result: false }], /conflicting/],
      ['number', rs(1), /got a number/],
      ['string', rs('allow'), /got a string/],
      ['array', rs([true]), /got an array/],
      ['null', rs(null), /got null/],
      ['missing allow', rs({ reasons: [] }), /"allow" must be a boolean, got nothing/],
      ['string allow', rs({ allow: 'true' }), /"allow" must be a boolean/],
      ['numeric allow', rs({ allow: 1 }), /"allow" must be a boolean/],
      ['reasons not an array', rs({ allow: false, reasons: 'no' }), /"reasons"/],
      ['reasons with a non-string', rs({ allow: false, reasons: ['a', 1] }), /"reasons"/],
      ['status below 400', rs({ allow: false, status: 302 }), /"status"/],
      ['status above 499', rs({ allow: false, status: 500 }), /"status"/],
      ['status not an integer', rs({ allow: false, status: 403.5 }), /"status"/],
      ['status as a string', rs({ allow: false, status: '403' }), /"status"/],
      ['status as a bigint', rs({ allow: false, status: 403n }), /"status"/],
      ['headers not an object', rs({ allow: true, headers: ['X-A'] }), /"headers" must be an object/],
      ['headers null', rs({ allow: true, headers: null }), /"headers" must be an object/],
      ['header value not a string', rs({ allow: true, headers: { 'X-A': 1 } }), /"headers.X-A" must be a string/],
      ['header name with a space', rs({ allow: true, headers: { 'X A': 'b' } }), /invalid header name/],
      ['header name with a colon', rs({ allow: true, headers: { 'X-A:': 'b' } }), /invalid header name/],
      ['empty header name', rs({ allow: true, headers: { '': 'b' } }), /invalid header name/],
      ['header value with CR LF', rs({ allow: true, headers: { 'X-A': 'b\r\nX-Injected: 1' } }), /control character/],
      ['header value with NUL', rs({ allow: true, headers: { 'X-A': 'b\0' } }), /control character/],
      ['header value beyond Latin-1', rs({ allow: true, headers: { 'X-A': 'ж' } }), /outside Latin-1/],
      ['duplicate header names', rs({ allow: true, headers: { 'X-A': '1', 'x-a': '2' } }), /twice/],
      ['framing header', rs({ allow: true, headers: { 'Content-Length': '0' } }), /may not set/],
      ['hop-by-hop header', rs({ allow: true, headers: { 'Transfer-Encoding': 'chunked' } }), /may not set/],
      ['response header with LF', rs({ allow: false, response_headers: { 'X-A': 'a\nb' } }), /"response_headers.X-A"/],
      ['response headers not an object', rs({ allow: false, response_headers: 'x' }), /"response_headers" must be an object/],
      // Validated on deny too: a broken document should surface at once.
      ['invalid headers on a deny', rs({ allow: false, headers: { 'X-A': 2 } }), /"headers.X-A"/],
    ];
    for (const [name, set, message] of cases) {
      it(name, () => assertPolicyError(() => normalizeDecision(set), 'policy_invalid_result', message));
    }
  });
});

describe('normalizeDecision: credentials (issue 15)', () => {
  it('an allow may name credentials (deduplicated); absent means the route’s list', () => {
    assert.deepEqual(normalizeDecision(rs({ allow: true, credentials: ['translation', 'key', 'key'] })).credentials, ['translation', 'key']);
    assert.deepEqual(normalizeDecision(rs({ allow: true, credentials: [] })).credentials, []);
    assert.equal(normalizeDecision(rs({ allow: true })).credentials, undefined);
    assert.equal(normalizeDecision(rs(true)).credentials, undefined);
  });

  it('a deny carries none; a malformed field fails closed whatever the outcome', () => {
    assert.equal(normalizeDecision(rs({ allow: false, credentials: ['translation'] })).credentials, undefined);
    for (const bad of ['translation', [1], ['Translation'], ['a b'], [''], { translation: true }, null]) {
      assertPolicyError(() => normalizeDecision(rs({ allow: true, credentials: bad })), 'policy_invalid_result', /"credentials" must be an array of credential names/);
      assertPolicyError(() => normalizeDecision(rs({ allow: false, credentials: bad })), 'policy_invalid_result');
    }
  });
});
