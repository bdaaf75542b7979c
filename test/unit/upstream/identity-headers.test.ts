import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { Identity } from '../../../src/authn/types.ts';
import { encodeIdentityValue, identitySource } from '../../../src/upstream/identity-headers.ts';
import { decodeIdentityHeader } from '../../helpers/identity-headers.ts';

/** RFC 9110 §5.5 field-value characters node accepts without complaint (visible ASCII, SP, HTAB). */
const FIELD_SAFE = /^[\x21-\x7e]*$/;

describe('identity header values are unambiguous (issue 9 point 7)', () => {
  const cases: [string, unknown, string | undefined][] = [
    ['plain scalar unchanged', 'alice', 'alice'],
    ['list joined with ,', ['user', 'admin'], 'user,admin'],
    ['a comma inside an item is encoded: not the same as two items', ['user,admin'], 'user%2Cadmin'],
    ['a literal %61dmin is not an encoded "admin"', '%61dmin', '%2561dmin'],
    ['non-ASCII as UTF-8 percent-encoding', 'Zoë', 'Zo%C3%AB'],
    ['space encoded (upstreams trim field values)', ' a b ', '%20a%20b%20'],
    ['CR LF never reach a header', 'a\r\nx-evil: 1', 'a%0D%0Ax-evil:%201'],
    ['numbers and booleans', 42, '42'],
    ['booleans', true, 'true'],
    ['non-string members of a list are skipped', ['a', { b: 1 }, 7, null], 'a,7'],
    ['empty string → no header', '', undefined],
    ['empty list → no header', [], undefined],
    ['objects → no header', { a: 1 }, undefined],
    ['lone surrogate becomes U+FFFD, never a throw', 'a\ud800b', 'a%EF%BF%BDb'],
  ];
  for (const [name, value, wire] of cases) {
    it(name, () => assert.equal(encodeIdentityValue(value), wire));
  }

  it('["user","admin"] and ["user,admin"] encode differently and decode back', () => {
    const a = encodeIdentityValue(['user', 'admin'])!;
    const b = encodeIdentityValue(['user,admin'])!;
    assert.notEqual(a, b);
    assert.deepEqual(decodeIdentityHeader(a), ['user', 'admin']);
    assert.deepEqual(decodeIdentityHeader(b), ['user,admin']);
  });

  it('property: any list of well-formed strings round-trips through the reference decoder, as a valid field value', () => {
    const item = fc.string({ unit: 'grapheme', minLength: 1, maxLength: 12 });
    fc.assert(
      fc.property(fc.array(item, { minLength: 1, maxLength: 6 }), (items) => {
        const wire = encodeIdentityValue(items)!;
        assert.match(wire, FIELD_SAFE);
        assert.deepEqual(decodeIdentityHeader(wire), items);
      }),
      { numRuns: 2000 },
    );
  });

  it('property: distinct lists never share a wire form', () => {
    const item = fc.string({ unit: fc.constantFrom('a', ',', '%', '2', 'C', ' ', 'é'), minLength: 1, maxLength: 5 });
    fc.assert(
      fc.property(fc.array(item, { minLength: 1, maxLength: 4 }), fc.array(item, { minLength: 1, maxLength: 4 }), (x, y) => {
        fc.pre(JSON.stringify(x) !== JSON.stringify(y));
        assert.notEqual(encodeIdentityValue(x), encodeIdentityValue(y));
      }),
      { numRuns: 2000 },
    );
  });

  it('sources: subject fields, token claims, route and decision ids', () => {
    const identity = { sub: 'a,b', roles: ['r1', 'r 2'], claims: { org: { name: 'Ünï' } } } as unknown as Identity;
    const ex = { id: 'dec-1', route: { config: { id: 'predict' } } };
    assert.equal(identitySource('subject.sub')(identity, ex), 'a%2Cb');
    assert.equal(identitySource('subject.roles')(identity, ex), 'r1,r%202');
    assert.equal(identitySource('token.org.name')(identity, ex), '%C3%9Cn%C3%AF');
    assert.equal(identitySource('route.id')(null, ex), 'predict');
    assert.equal(identitySource('decision.id')(null, ex), 'dec-1');
    assert.equal(identitySource('subject.sub')(null, ex), undefined);
  });
});
