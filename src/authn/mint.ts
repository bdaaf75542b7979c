/**
 * Token minting for the dev-only `regate token` command and for tests.
 *
 * regate never issues tokens in production: it verifies tokens from an IdP.
 * This exists so a developer can exercise a local setup end to end with a key
 * pair they control (its public half in a `jwks_file`).
 */
import { importJWK, SignJWT, type JWK } from 'jose';

/** Options for {@link mintToken}. */
export interface MintOptions {
  /** Private JWK (or `oct` secret JWK for HS*). */
  readonly privateJwk: JWK;
  /** JWS algorithm, e.g. `ES256`. Never `none`. */
  readonly alg: string;
  readonly issuer: string;
  readonly audience: string | readonly string[];
  readonly sub?: string;
  /** Extra claims. `iss`, `aud`, `sub`, `iat`, `exp` set by the other options win. */
  readonly claims?: Readonly<Record<string, unknown>>;
  /** Lifetime; a positive integer number of seconds. */
  readonly ttlSeconds: number;
  /** `kid` header; defaults to `privateJwk.kid` when present. */
  readonly kid?: string;
  /** Issue time in seconds since the epoch. Default: now. */
  readonly now?: number;
}

/**
 * Sign a compact JWT (`typ: JWT`) with `iat = now`, `exp = now + ttlSeconds`.
 * Throws `TypeError` on bad options (a developer mistake, not untrusted input).
 */
export async function mintToken(options: MintOptions): Promise<string> {
  const { privateJwk, alg, issuer, audience, sub, claims = {}, ttlSeconds } = options;
  if (typeof alg !== 'string' || alg === '' || alg.toLowerCase() === 'none') throw new TypeError('alg must name a signing algorithm');
  if (!Number.isSafeInteger(ttlSeconds) || ttlSeconds <= 0) throw new TypeError('ttlSeconds must be a positive integer');
  const now = Math.floor(options.now ?? Date.now() / 1000);
  const kid = options.kid ?? privateJwk.kid;
  const key = await importJWK(privateJwk, alg);
  const jwt = new SignJWT({ ...claims })
    .setProtectedHeader(kid === undefined ? { alg, typ: 'JWT' } : { alg, typ: 'JWT', kid })
    .setIssuer(issuer)
    .setAudience(typeof audience === 'string' ? audience : [...audience])
    .setIssuedAt(now)
    .setExpirationTime(now + ttlSeconds);
  if (sub !== undefined) jwt.setSubject(sub);
  return jwt.sign(key);
}
