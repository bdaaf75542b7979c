/**
 * Property: whatever arrives in the Authorization header — random bytes, or
 * JWT-shaped tokens with arbitrary headers, claims and signatures — the
 * authenticator either verifies a token signed by a configured key or rejects
 * with a typed AuthnError carrying a known reason. Never another error (a 500),
 * never an identity for a token the key did not sign.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { createAuthenticator, type JwtAuthenticator } from '../../../src/authn/jwt.ts';
import { AUTHN_REASONS, AuthnError } from '../../../src/errors.ts';
import { baseClaims, generateTestKey, issuerConfig, jwksOf, segment, signToken, TEST_ISSUER, type TestKey } from '../../helpers/tokens.ts';

const RUNS = Number(process.env.FUZZ_RUNS ?? 300);
const REASONS: ReadonlySet<string> = new Set(AUTHN_REASONS);

let key: TestKey;
let auth: JwtAuthenticator;

before(async () => {
  key = await generateTestKey('ES256');
  const dir = mkdtempSync(join(tmpdir(), 'regate-fuzz-'));
  const jwksFile = join(dir, 'jwks.json');
  writeFileSync(jwksFile, JSON.stringify(jwksOf(key)));
  auth = createAuthenticator([issuerConfig({ jwks_file: jwksFile, algorithms: ['ES256'] })]);
});
after(() => auth?.close());

/** Either an identity (only for `mayVerify`) or an AuthnError with a known reason. */
async function outcome(authorization: string | undefined, mayVerify: boolean): Promise<void> {
  const headers = authorization === undefined ? {} : { authorization };
  const rawHeaders = authorization === undefined ? [] : ['Authorization', authorization];
  try {
    const identity = await auth.authenticate({ headers, rawHeaders }, 'required');
    assert.ok(mayVerify, `accepted a token the key did not sign: ${authorization}`);
    assert.equal(identity?.iss, TEST_ISSUER);
  } catch (err) {
    assert.ok(err instanceof AuthnError, `not an AuthnError: ${String(err)} for ${JSON.stringify(authorization)}`);
    assert.ok(REASONS.has(err.reason), `unknown reason ${err.reason}`);
  }
}

const b64 = fc.string({ unit: fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'), maxLength: 60 });
const headerJson = fc.record(
  {
    alg: fc.constantFrom('ES256', 'RS256', 'HS256', 'none', 'None', 'EdDSA', '', 'ES512'),
    typ: fc.constantFrom('JWT', 'at+jwt', 'JOSE'),
    kid: fc.oneof(fc.constant(undefined), fc.string({ maxLength: 12 })),
    crit: fc.oneof(fc.constant(undefined), fc.array(fc.string({ maxLength: 6 }), { maxLength: 2 })),
    b64: fc.oneof(fc.constant(undefined), fc.boolean()),
    jku: fc.oneof(fc.constant(undefined), fc.constant('http://127.0.0.1:9/jwks')),
  },
  { requiredKeys: ['alg'] },
);
const claims = fc.record(
  {
    iss: fc.oneof(fc.constant(TEST_ISSUER), fc.string({ maxLength: 12 }), fc.integer(), fc.constant(null)),
    aud: fc.oneof(fc.constant('regate'), fc.array(fc.constantFrom('regate', 'other'), { maxLength: 3 }), fc.integer()),
    exp: fc.oneof(fc.integer({ min: -1, max: 2 ** 33 }), fc.constant('soon'), fc.double()),
    nbf: fc.oneof(fc.constant(undefined), fc.integer({ min: 0, max: 2 ** 33 })),
    sub: fc.oneof(fc.string({ maxLength: 8 }), fc.integer()),
    roles: fc.oneof(fc.array(fc.string({ maxLength: 6 }), { maxLength: 3 }), fc.string(), fc.object()),
  },
  { requiredKeys: [] },
);
const forged = fc
  .tuple(headerJson, claims, b64)
  .map(([h, c, sig]) => `${segment(h)}.${segment(c)}.${sig}`);
const scheme = fc.constantFrom('Bearer ', 'bearer ', 'BEARER  ', 'Basic ', 'Bearer', '', ' Bearer ');

describe('fuzz: authentication only ever fails with a typed AuthnError', () => {
  it('random header values', async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.string({ unit: 'binary', maxLength: 120 }), fc.constant(undefined)), (value) => outcome(value, false)),
      { numRuns: RUNS },
    );
  });

  it('JWT-shaped tokens with arbitrary headers, claims and signatures (forged: never accepted)', async () => {
    await fc.assert(fc.asyncProperty(scheme, forged, (s, token) => outcome(`${s}${token}`, false)), { numRuns: RUNS });
  });

  it('tokens really signed by the key, with arbitrary claims: verified or refused for a known reason', async () => {
    await fc.assert(
      fc.asyncProperty(claims, async (c) => {
        const token = await signToken(key, { ...baseClaims(), ...c });
        await outcome(`Bearer ${token}`, true);
      }),
      { numRuns: Math.min(RUNS, 150) },
    );
  });
});
