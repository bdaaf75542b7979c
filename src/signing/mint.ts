/**
 * Compact JWS signing of the broker's tokens (ES256 / EdDSA) with node:crypto
 * directly: one header + payload + signature, no key import per call.
 */

import { randomBytes, sign } from 'node:crypto';
import type { SigningKey } from './keys.ts';

const b64url = (buf: Buffer | string): string => Buffer.from(buf).toString('base64url');

/** Sign `payload` with `key`; `typ` is the JWS header's `typ` (`at+jwt` or `JWT`). */
export function signJwt(key: SigningKey, payload: Readonly<Record<string, unknown>>, typ: string): string {
  const header = b64url(JSON.stringify({ alg: key.alg, kid: key.kid, typ }));
  const body = b64url(JSON.stringify(payload));
  const input = `${header}.${body}`;
  const signature =
    key.alg === 'EdDSA'
      ? sign(null, Buffer.from(input), key.privateKey)
      : sign('sha256', Buffer.from(input), { key: key.privateKey, dsaEncoding: 'ieee-p1363' });
  return `${input}.${b64url(signature)}`;
}

/** A random `jti`: 128 bits, base64url. */
export function newJti(): string {
  return b64url(randomBytes(16));
}
