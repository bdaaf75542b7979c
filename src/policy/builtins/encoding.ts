/**
 * Digest and encoding builtins that the wasm target leaves to the host.
 *
 * Chosen because node:crypto and Buffer give byte-for-byte the results of
 * OPA's Go implementation (checked against `opa eval` in the tests). Builtins
 * whose Go semantics are harder to match exactly (regex RE2 syntax, semver,
 * invalid UTF-8 handling of `hex.decode`) are deliberately left out: an
 * unsupported builtin is refused at load, a subtly different one is not.
 *
 * Rego strings are UTF-8; a non-string argument is OPA's type error
 * (`crypto.sha256: operand 1 must be string but got number`), which aborts
 * the evaluation as `--strict-builtin-errors` does.
 */

import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { HostBuiltin } from './index.ts';
import { operandTypeError } from './operands.ts';

/** The string operands of a call, or OPA's type error for the first that is not one. */
function strings(name: string, args: readonly unknown[]): string[] {
  args.forEach((a, i) => {
    if (typeof a !== 'string') throw operandTypeError(name, i + 1, a, 'string');
  });
  return args as string[];
}

function digest(algorithm: string): HostBuiltin {
  const name = `crypto.${algorithm}`;
  return (_ctx, ...args) => {
    const [x] = strings(name, args);
    return createHash(algorithm).update(x as string, 'utf8').digest('hex');
  };
}

function hmac(algorithm: string): HostBuiltin {
  const name = `crypto.hmac.${algorithm}`;
  return (_ctx, ...args) => {
    const [x, key] = strings(name, args);
    return createHmac(algorithm, Buffer.from(key as string, 'utf8')).update(x as string, 'utf8').digest('hex');
  };
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
  'crypto.hmac.equal': (_ctx, ...args) => {
    const [a, b] = strings('crypto.hmac.equal', args);
    const x = Buffer.from(a as string, 'utf8');
    const y = Buffer.from(b as string, 'utf8');
    return x.length === y.length && timingSafeEqual(x, y);
  },
  'hex.encode': (_ctx, ...args) => Buffer.from(strings('hex.encode', args)[0] as string, 'utf8').toString('hex'),
  'base64url.encode_no_pad': (_ctx, ...args) => Buffer.from(strings('base64url.encode_no_pad', args)[0] as string, 'utf8').toString('base64url'),
});
