import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { normalizeGrant, parseScope } from '../../../src/broker/decision.ts';
import { PolicyError } from '../../../src/errors.ts';

const invalid = (raw: unknown): void => assert.throws(() => normalizeGrant(raw), (e: unknown) => e instanceof PolicyError && e.reason === 'policy_invalid_result');

describe('normalizeGrant', () => {
  it('booleans and objects; unknown keys ignored; error defaults to invalid_grant', () => {
    assert.deepEqual(normalizeGrant(false), { allow: false, reasons: [], error: 'invalid_grant', claims: {} });
    const g = normalizeGrant({ allow: true, scopes: ['a', 'a', 'b'], audience: 'api', ttl_s: 60, claims: { step: 1 }, authorization_details: [{ type: 't' }], other: 1 });
    assert.deepEqual(g.scopes, ['a', 'b']);
    assert.equal(g.ttl_s, 60);
    assert.equal(normalizeGrant({ allow: false, error: 'invalid_scope' }).error, 'invalid_scope');
  });
  it('refuses malformed fields and registered claims', () => {
    invalid({ allow: 'yes' });
    invalid({ allow: true, scopes: 'a b' });
    invalid({ allow: true, scopes: ['a b'] });
    invalid({ allow: true, ttl_s: 0 });
    invalid({ allow: true, ttl_s: 1.5 });
    invalid({ allow: true, audience: '' });
    invalid({ allow: false, error: 'server_error' });
    invalid({ allow: true, authorization_details: [{ nope: 1 }] });
    for (const claim of ['sub', 'iss', 'aud', 'exp', 'act', 'scope', 'jti', 'client_id']) invalid({ allow: true, claims: { [claim]: 'x' } });
  });
});

describe('parseScope', () => {
  it('scope-tokens, deduplicated; anything else undefined', () => {
    assert.deepEqual(parseScope('a b a'), ['a', 'b']);
    assert.equal(parseScope('a  b'), undefined);
    assert.equal(parseScope('a"b'), undefined);
  });
});
