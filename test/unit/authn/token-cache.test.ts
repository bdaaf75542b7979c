import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createAuthenticator, type JwtAuthenticator } from '../../../src/authn/jwt.ts';
import { TokenCache, type TokenCacheResult } from '../../../src/authn/token-cache.ts';
import type { Identity } from '../../../src/authn/types.ts';
import { AuthnError } from '../../../src/errors.ts';
import { baseClaims, generateTestKey, issuerConfig, jwksOf, signToken, tamperPayload, type TestKey } from '../../helpers/tokens.ts';

const T0 = 1_900_000_000;

function identity(exp: number, sub = 'alice'): Identity {
  return Object.freeze({ sub, iss: 'https://idp.test', issuerId: 'idp', roles: [], groups: [], scopes: [], tenant: '', claims: { sub, exp }, exp });
}

describe('TokenCache', () => {
  it('returns exactly the identity stored for exactly that token', () => {
    const cache = new TokenCache({ maxEntries: 10, now: () => T0 });
    const id = identity(T0 + 60);
    cache.set('a.b.c', id);
    assert.equal(cache.get('a.b.c'), id);
    assert.equal(cache.get('a.b.C'), undefined, 'one changed character is another token');
    assert.equal(cache.get('a.b.c '), undefined);
  });

  it('never returns an entry at or after exp, and drops it', () => {
    let now = T0;
    const cache = new TokenCache({ maxEntries: 10, now: () => now });
    cache.set('t', identity(T0 + 10));
    now = T0 + 9.999;
    assert.ok(cache.get('t'));
    now = T0 + 10;
    assert.equal(cache.get('t'), undefined, 'exp is exclusive: no leeway in the cache');
    assert.equal(cache.size, 0, 'the expired entry is gone');
  });

  it('refuses to store an identity that has already expired', () => {
    const cache = new TokenCache({ maxEntries: 10, now: () => T0 });
    cache.set('t', identity(T0));
    cache.set('u', identity(T0 - 100));
    assert.equal(cache.size, 0);
  });

  it('is bounded: the least recently used entry is evicted', () => {
    const cache = new TokenCache({ maxEntries: 3, now: () => T0 });
    for (const t of ['t1', 't2', 't3']) cache.set(t, identity(T0 + 60, t));
    assert.ok(cache.get('t1'), 't1 becomes the most recently used');
    cache.set('t4', identity(T0 + 60, 't4'));
    assert.equal(cache.size, 3);
    assert.equal(cache.get('t2'), undefined, 't2 was the least recently used');
    for (const t of ['t1', 't3', 't4']) assert.ok(cache.get(t), `${t} kept`);
    // Many more than the bound: the size never exceeds it.
    for (let i = 0; i < 1000; i++) cache.set(`x${i}`, identity(T0 + 60));
    assert.equal(cache.size, 3);
  });

  it('re-setting a token refreshes its entry instead of adding one', () => {
    const cache = new TokenCache({ maxEntries: 2, now: () => T0 });
    const newer = identity(T0 + 120);
    cache.set('t', identity(T0 + 60));
    cache.set('t', newer);
    assert.equal(cache.size, 1);
    assert.equal(cache.get('t'), newer);
  });

  it('clear() forgets everything', () => {
    const cache = new TokenCache({ maxEntries: 10, now: () => T0 });
    cache.set('t', identity(T0 + 60));
    cache.clear();
    assert.equal(cache.get('t'), undefined);
  });

  it('a verification that began before a clear() (keys changed) is not stored', () => {
    const cache = new TokenCache({ maxEntries: 10, now: () => T0 });
    const before = cache.generation;
    cache.clear(); // a JWKS refresh while the verification was in flight
    cache.set('t', identity(T0 + 60), before);
    assert.equal(cache.size, 0);
    assert.equal(cache.get('t'), undefined);
    cache.set('t', identity(T0 + 60), cache.generation);
    assert.equal(cache.size, 1, 'a verification begun after the clear is stored');
  });

  it('evictKeys() forgets exactly the identities verified by those keys, and bumps the generation', () => {
    const cache = new TokenCache({ maxEntries: 10, now: () => T0 });
    const keyA = {};
    const keyB = {};
    cache.set('a1', identity(T0 + 60), undefined, keyA);
    cache.set('a2', identity(T0 + 60), undefined, keyA);
    cache.set('b1', identity(T0 + 60), undefined, keyB);
    const before = cache.generation;
    assert.equal(cache.evictKeys(new Set([keyA])), 2);
    assert.equal(cache.get('a1'), undefined);
    assert.equal(cache.get('a2'), undefined);
    assert.ok(cache.get('b1'), 'a token verified by a key still published stays cached');
    assert.notEqual(cache.generation, before, 'a verification in flight across the eviction is not stored');
    cache.set('a3', identity(T0 + 60), before, keyA);
    assert.equal(cache.get('a3'), undefined);
  });

  it('reports every lookup: hit, or miss (absent or expired)', () => {
    let now = T0;
    const seen: TokenCacheResult[] = [];
    const cache = new TokenCache({ maxEntries: 10, now: () => now, onLookup: (r) => seen.push(r) });
    cache.get('t');
    cache.set('t', identity(T0 + 10));
    cache.get('t');
    now = T0 + 11;
    cache.get('t');
    assert.deepEqual(seen, ['miss', 'hit', 'miss']);
  });

  it('refuses a nonsensical bound (a caller bug)', () => {
    for (const maxEntries of [0, -1, 1.5, Number.NaN]) assert.throws(() => new TokenCache({ maxEntries }), TypeError);
  });
});

describe('TokenCache in the JWT authenticator', () => {
  let key: TestKey;
  let dir: string;
  let jwksFile: string;
  const opened: JwtAuthenticator[] = [];

  before(async () => {
    key = await generateTestKey('ES256');
    dir = mkdtempSync(join(tmpdir(), 'regate-token-cache-'));
    jwksFile = join(dir, 'jwks.json');
    writeFileSync(jwksFile, JSON.stringify(jwksOf(key)));
  });
  after(() => {
    for (const a of opened) a.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const authenticator = (now: () => number, cache: TokenCache): JwtAuthenticator => {
    const a = createAuthenticator([issuerConfig({ jwks_file: jwksFile, clock_tolerance_s: 30 })], { now, cache });
    opened.push(a);
    return a;
  };

  it('a reused token is verified once: later requests get the same identity from the cache', async () => {
    const now = (): number => Date.now() / 1000;
    const results: TokenCacheResult[] = [];
    const cache = new TokenCache({ maxEntries: 100, now, onLookup: (r) => results.push(r) });
    const auth = authenticator(now, cache);
    const token = await signToken(key, baseClaims());
    const first = await auth.verifyToken(token);
    for (let i = 0; i < 5; i++) assert.equal(await auth.verifyToken(token), first, 'the cached identity object itself');
    assert.deepEqual(results, ['miss', 'hit', 'hit', 'hit', 'hit', 'hit']);
    // Without a cache every call maps a fresh identity.
    const uncached = createAuthenticator([issuerConfig({ jwks_file: jwksFile })], { now });
    opened.push(uncached);
    assert.notEqual(await uncached.verifyToken(token), await uncached.verifyToken(token));
  });

  it('failures are never cached: a rejected token is rejected again, and nothing is stored', async () => {
    const now = (): number => Date.now() / 1000;
    const cache = new TokenCache({ maxEntries: 100, now });
    const auth = authenticator(now, cache);
    const good = await signToken(key, baseClaims());
    const forged = tamperPayload(good, { roles: ['admin'] });
    const expired = await signToken(key, baseClaims({ exp: Math.floor(now()) - 3600 }));
    for (const [token, reason] of [[forged, 'invalid_signature'], [expired, 'token_expired']] as const) {
      for (let i = 0; i < 2; i++) {
        await assert.rejects(auth.verifyToken(token), (err: unknown) => err instanceof AuthnError && err.reason === reason);
      }
    }
    assert.equal(cache.size, 0);
    // The valid token with the same header and signature still verifies (and is then cached).
    await auth.verifyToken(good);
    assert.equal(cache.size, 1);
  });

  it('a token inside its clock tolerance is re-verified every time, never served from the cache', async () => {
    let now = T0;
    const results: TokenCacheResult[] = [];
    const cache = new TokenCache({ maxEntries: 100, now: () => now, onLookup: (r) => results.push(r) });
    const auth = authenticator(() => now, cache);
    const token = await signToken(key, baseClaims({ iat: T0 - 10, exp: T0 + 5 }, T0));
    const verified = await auth.verifyToken(token);
    assert.equal(await auth.verifyToken(token), verified, 'cached while before exp');
    // Past exp but within the issuer's 30 s tolerance: jose still accepts it...
    now = T0 + 10;
    const again = await auth.verifyToken(token);
    assert.notEqual(again, verified, 'verified afresh');
    assert.equal(cache.size, 0, '...but the cache neither serves nor stores it');
    // And once past the tolerance it fails, cache or not.
    now = T0 + 40;
    await assert.rejects(auth.verifyToken(token), (err: unknown) => err instanceof AuthnError && err.reason === 'token_expired');
    assert.deepEqual(results, ['miss', 'hit', 'miss', 'miss']);
  });
});
