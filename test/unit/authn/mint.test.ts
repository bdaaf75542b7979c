import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeProtectedHeader } from 'jose';
import { createAuthenticator } from '../../../src/authn/jwt.ts';
import { mintToken } from '../../../src/authn/mint.ts';
import { AuthnError } from '../../../src/errors.ts';
import { generateTestKey, issuerConfig, jwksOf, TEST_ISSUER, type TestKey } from '../../helpers/tokens.ts';

describe('mintToken', () => {
  let dir: string;
  let key: TestKey;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'regate-mint-'));
    key = await generateTestKey('EdDSA');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('mints a token regate verifies, with iat/exp from now + ttl', async () => {
    const file = join(dir, 'jwks.json');
    writeFileSync(file, JSON.stringify(jwksOf(key)));
    const now = Math.floor(Date.now() / 1000);
    const token = await mintToken({
      privateJwk: key.privateJwk,
      alg: 'EdDSA',
      issuer: TEST_ISSUER,
      audience: ['regate'],
      sub: 'dev',
      // Registered claims from options win over `claims`.
      claims: { roles: ['admin'], iss: 'https://evil.test', exp: 1 },
      ttlSeconds: 600,
      now,
    });
    assert.deepEqual(decodeProtectedHeader(token), { alg: 'EdDSA', typ: 'JWT', kid: key.kid });
    const auth = createAuthenticator([issuerConfig({ jwks_file: file })]);
    const identity = await auth.verifyToken(token);
    assert.equal(identity.sub, 'dev');
    assert.deepEqual(identity.roles, ['admin']);
    assert.equal(identity.exp, now + 600);
    assert.equal(identity.claims.iat, now);
    auth.close();
  });

  it('an expired mint is refused by the verifier', async () => {
    const file = join(dir, 'jwks2.json');
    writeFileSync(file, JSON.stringify(jwksOf(key)));
    const auth = createAuthenticator([issuerConfig({ jwks_file: file })]);
    const expired = await mintToken({ privateJwk: key.privateJwk, alg: 'EdDSA', issuer: TEST_ISSUER, audience: 'regate', ttlSeconds: 60, now: 1000 });
    await assert.rejects(auth.verifyToken(expired), (err: unknown) => err instanceof AuthnError && err.reason === 'token_expired');
    auth.close();
  });

  const bad: [string, Partial<Parameters<typeof mintToken>[0]>][] = [
    ['alg none', { alg: 'none' }],
    ['zero ttl', { ttlSeconds: 0 }],
    ['fractional ttl', { ttlSeconds: 1.5 }],
    ['NaN ttl', { ttlSeconds: Number.NaN }],
  ];
  for (const [name, overrides] of bad) {
    it(`${name} → TypeError`, async () => {
      await assert.rejects(
        mintToken({ privateJwk: key.privateJwk, alg: 'EdDSA', issuer: TEST_ISSUER, audience: 'regate', ttlSeconds: 60, ...overrides }),
        TypeError,
      );
    });
  }
});
