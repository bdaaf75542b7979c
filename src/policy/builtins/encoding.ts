/**
 * Digest and encoding builtins that the wasm target leaves to the host.
 *
 * Chosen because node:crypto and Buffer give byte-for-byte the results of
 * OPA's Go implementation (checked against `opa eval` in the tests). Builtins
 * whose Go semantics are harder to match exactly (regex RE2 syntax, semver,
 * invalid UTF-8 handling of `hex.decode`) are deliberately left out: an
 * unsupported builtin is refused at load, a subtly different one is not.
 *
 * Rego strings are UTF-8; a non-string argument makes the call undefined,
 * as OPA does for builtin type errors outside strict mode.
 */

import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { HostBuiltin } from './index.ts';

function digest(algorithm: string): HostBuiltin {
  return (_ctx, x) => (typeof x === 'string' ? createHash(algorithm).update(x, 'utf8').digest('hex') : undefined);
}

function hmac(algorithm: string): HostBuiltin {
  return (_ctx, x, key) =>
    typeof x === 'string' && typeof key === 'string' ? createHmac(algorithm, Buffer.from(key, 'utf8')).update(x, 'utf8').digest('hex') : undefined;
}

/** `crypto.*` digests and HMACs, `hex.encode`, `base64url.encode_no_pad`. */
export const encodingBuiltins: Readonly<Record<string, HostBuiltin>> = Object.freeze({
  'crypto.md5': digest('md5'),
  'crypto.sha1': digest('sha1'),
  'crypto.sha256': digest('sha256'),
  'crypto.hmac.md5': hmac('md5'),
  'crypto.hmac.sha1': hmac('sha1'),
  'crypto.hmac.sha256': hmac('sha256'),
  'crypto.hmac.sha512': hmac('sha512'),
  // Go's hmac.Equal: constant time over equal lengths, false on a length mismatch.
  'crypto.hmac.equal': (_ctx, a, b) => {
    if (typeof a !== 'string' || typeof b !== 'string') return undefined;
    const x = Buffer.from(a, 'utf8');
    const y = Buffer.from(b, 'utf8');
    return x.length === y.length && timingSafeEqual(x, y);
  },
  'hex.encode': (_ctx, x) => (typeof x === 'string' ? Buffer.from(x, 'utf8').toString('hex') : undefined),
  'base64url.encode_no_pad': (_ctx, x) => (typeof x === 'string' ? Buffer.from(x, 'utf8').toString('base64url') : undefined),
});
