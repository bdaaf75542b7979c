// A bench-only ES256 issuer: a fresh P-256 key per run, its JWKS, and tokens
// shaped like the quickstart's (Keycloak-style `realm_access.roles`), signed
// with node:crypto directly so minting tens of thousands takes seconds.
import { createPrivateKey, generateKeyPairSync, randomUUID, sign } from 'node:crypto';

export const ISSUER = 'https://issuer.quickstart.regate.dev';
export const AUDIENCE = 'sentiment-api';

/** A new signing key and the JWKS that verifies it. */
export function createIssuer() {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const kid = `bench-${randomUUID().slice(0, 8)}`;
  const jwk = { ...publicKey.export({ format: 'jwk' }), kid, alg: 'ES256', use: 'sig' };
  return { privateKey: createPrivateKey(privateKey.export({ format: 'pem', type: 'pkcs8' })), kid, jwks: { keys: [jwk] } };
}

const b64 = (obj) => Buffer.from(JSON.stringify(obj)).toString('base64url');

/** Sign `count` distinct tokens (distinct `sub` and `jti`), valid for `ttlS` seconds; `claims` are added (the gRPC scenarios' `scope`). */
export function mintTokens(issuer, count, { roles = ['data_scientist'], ttlS = 7200, claims = {} } = {}) {
  const header = b64({ alg: 'ES256', typ: 'JWT', kid: issuer.kid });
  const now = Math.floor(Date.now() / 1000);
  const out = new Array(count);
  for (let i = 0; i < count; i++) {
    const payload = b64({
      iss: ISSUER,
      aud: AUDIENCE,
      sub: `user-${i}`,
      jti: randomUUID(),
      iat: now,
      exp: now + ttlS,
      realm_access: { roles },
      email: `user-${i}@example.com`,
      ...claims,
    });
    const input = `${header}.${payload}`;
    const sig = sign('sha256', Buffer.from(input), { key: issuer.privateKey, dsaEncoding: 'ieee-p1363' });
    out[i] = `${input}.${sig.toString('base64url')}`;
  }
  return out;
}
