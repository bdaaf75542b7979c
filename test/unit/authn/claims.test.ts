import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { claimAt, compileClaimPath, deepFreeze, mapIdentity, toStringList } from '../../../src/authn/claims.ts';
import { AuthnError } from '../../../src/errors.ts';
import { issuerConfig } from '../../helpers/tokens.ts';

describe('claimAt', () => {
  const claims = JSON.parse(
    '{"roles":["a"],"realm_access":{"roles":["admin"],"deep":{"x":1}},"https://example.com/roles":["ns"],"list":[{"a":1}],"__proto__":{"polluted":true}}',
  ) as Record<string, unknown>;

  const cases: [string, unknown][] = [
    ['roles', ['a']],
    ['realm_access.roles', ['admin']],
    ['realm_access.deep.x', 1],
    ['realm_access.missing', undefined],
    ['missing.roles', undefined],
    // An exact top-level key containing dots wins (Auth0 namespaced claims).
    ['https://example.com/roles', ['ns']],
    // No array indexing.
    ['list.0', undefined],
    // No prototype walking.
    ['constructor', undefined],
    ['toString', undefined],
    ['realm_access.constructor', undefined],
    ['realm_access.roles.length', undefined],
    // A literal "__proto__" key from JSON.parse is an own property, and only it is reachable.
    ['__proto__.polluted', true],
    ['roles.hasOwnProperty', undefined],
  ];
  for (const [path, expected] of cases) {
    it(`${path} → ${JSON.stringify(expected)}`, () => {
      assert.deepEqual(claimAt(claims, path), expected);
      assert.deepEqual(claimAt(claims, compileClaimPath(path)), expected);
    });
  }

  it('non-object claims → undefined', () => {
    assert.equal(claimAt(null, 'a'), undefined);
    assert.equal(claimAt(['a'], '0'), undefined);
    assert.equal(claimAt('str', 'length'), undefined);
  });

  it('rejects empty paths and segments at compile time', () => {
    assert.throws(() => compileClaimPath(''), TypeError);
    assert.throws(() => compileClaimPath('a..b'), TypeError);
    assert.throws(() => compileClaimPath('.a'), TypeError);
  });
});

describe('toStringList', () => {
  const cases: [string, unknown, boolean, string[] | undefined][] = [
    ['undefined', undefined, false, []],
    ['null', null, false, []],
    ['single role string is ONE role', 'Domain Admins', false, ['Domain Admins']],
    ['empty string', '', false, []],
    ['scope string split on SP', 'read  write admin:x', true, ['read', 'write', 'admin:x']],
    ['scope string of spaces', '   ', true, []],
    ['array', ['a', 'b'], false, ['a', 'b']],
    ['array items are not split', ['a b'], true, ['a b']],
    ['non-strings and empties ignored', ['a', 1, null, { b: 1 }, ['c'], '', true, 'd'], false, ['a', 'd']],
    ['number → invalid', 5, false, undefined],
    ['object → invalid', { a: 1 }, false, undefined],
    ['boolean → invalid', true, false, undefined],
  ];
  for (const [name, value, split, expected] of cases) {
    it(name, () => assert.deepEqual(toStringList(value, { splitOnSpace: split }), expected));
  }
});

describe('mapIdentity', () => {
  const issuer = issuerConfig({ jwks_file: '/unused' });

  it('maps the default claims', () => {
    const identity = mapIdentity({ iss: 'https://idp.test', sub: 'alice', exp: 100, roles: ['r'], groups: 'g one', scope: 'a b', tenant: 't1' }, issuer);
    assert.deepEqual({ ...identity, claims: undefined }, {
      sub: 'alice',
      iss: 'https://idp.test',
      issuerId: 'idp',
      roles: ['r'],
      groups: ['g one'],
      scopes: ['a', 'b'],
      tenant: 't1',
      claims: undefined,
      exp: 100,
    });
    assert.ok(Object.isFrozen(identity));
    assert.ok(Object.isFrozen(identity.roles));
    assert.ok(Object.isFrozen(identity.claims));
  });

  it('nested paths and array scopes (Keycloak / scp style)', () => {
    const custom = issuerConfig({
      jwks_file: '/unused',
      claims: { roles: 'realm_access.roles', groups: 'https://example.com/groups', scopes: 'scp', tenant: 'org.id' },
    });
    const identity = mapIdentity(
      { exp: 1, realm_access: { roles: ['admin', 7] }, 'https://example.com/groups': ['eng'], scp: ['read', 'write'], org: { id: 'acme' } },
      custom,
    );
    assert.deepEqual(identity.roles, ['admin']);
    assert.deepEqual(identity.groups, ['eng']);
    assert.deepEqual(identity.scopes, ['read', 'write']);
    assert.equal(identity.tenant, 'acme');
  });

  it('absent claims → empty values', () => {
    const identity = mapIdentity({ exp: 1 }, issuer);
    assert.equal(identity.sub, '');
    assert.equal(identity.tenant, '');
    assert.deepEqual([identity.roles, identity.groups, identity.scopes], [[], [], []]);
  });

  const invalid: [string, Record<string, unknown>][] = [
    ['numeric sub', { exp: 1, sub: 42 }],
    ['numeric tenant', { exp: 1, tenant: 42 }],
    ['object tenant', { exp: 1, tenant: { id: 'x' } }],
    ['numeric roles', { exp: 1, roles: 1 }],
    ['object groups', { exp: 1, groups: { a: 1 } }],
    ['boolean scope', { exp: 1, scope: true }],
    ['missing exp', {}],
    ['string exp', { exp: '1' }],
  ];
  for (const [name, payload] of invalid) {
    it(`${name} → invalid_claim`, () => {
      assert.throws(
        () => mapIdentity(payload, issuer),
        (err: unknown) => err instanceof AuthnError && err.reason === 'invalid_claim',
      );
    });
  }
});

describe('deepFreeze', () => {
  it('freezes deeply nested values without recursion limits', () => {
    let nested: unknown = 'leaf';
    for (let i = 0; i < 100_000; i++) nested = [nested];
    const frozen = deepFreeze({ nested });
    let node: unknown = frozen.nested;
    let depth = 0;
    while (Array.isArray(node)) {
      assert.ok(depth % 10_000 !== 0 || Object.isFrozen(node));
      node = node[0];
      depth++;
    }
    assert.equal(depth, 100_000);
  });
});
