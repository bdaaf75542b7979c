/**
 * Test keys and tokens, honest and hostile.
 *
 * Honest tokens are signed by jose over an arbitrary payload (so tests can
 * omit `exp` or use odd claim types). Hostile tokens are built by hand: jose
 * refuses to produce most of them, which is the point.
 */
import { createHmac, randomUUID, type webcrypto } from 'node:crypto';
import { CompactSign, exportJWK, exportSPKI, generateKeyPair, type JWK } from 'jose';
import type { IssuerConfig } from '../../src/config/types.ts';

/** Algorithms the helpers can generate keys for. */
export type TestAlg = 'ES256' | 'ES384' | 'RS256' | 'PS256' | 'EdDSA';

/** A signing key pair with its JWKs. */
export interface TestKey {
  readonly alg: TestAlg;
  readonly kid: string;
  readonly privateKey: webcrypto.CryptoKey;
  readonly publicKey: webcrypto.CryptoKey;
  /** Public JWK with `kid`, `alg` and `use: sig`. */
  readonly publicJwk: JWK;
  /** Private JWK with `kid`. */
  readonly privateJwk: JWK;
}

/** Generate an extractable key pair. */
export async function generateTestKey(alg: TestAlg, kid: string = `${alg.toLowerCase()}-${randomUUID().slice(0, 8)}`): Promise<TestKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk: JWK = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  const privateJwk: JWK = { ...(await exportJWK(privateKey)), kid };
  return { alg, kid, privateKey, publicKey, publicJwk, privateJwk };
}

/** A JWKS holding the public halves of `keys`. */
export function jwksOf(...keys: readonly TestKey[]): { keys: JWK[] } {
  return { keys: keys.map((k) => k.publicJwk) };
}

/** base64url(JSON(value)) */
export function segment(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

/** Seconds since the epoch, floored. */
export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

/** Default claims for the test issuer: iss, aud, sub, iat, exp (+1h). */
export function baseClaims(overrides: Record<string, unknown> = {}, now: number = nowSeconds()): Record<string, unknown> {
  return { iss: 'https://idp.test', aud: 'regate', sub: 'alice', iat: now, exp: now + 3600, ...overrides };
}

/**
 * Sign `payload` as given (nothing added). The header defaults to
 * `{alg: key.alg, typ: 'JWT', kid: key.kid}`; a header key set to `undefined` is removed.
 */
export async function signToken(key: TestKey, payload: Record<string, unknown>, header: Record<string, unknown> = {}): Promise<string> {
  const merged: Record<string, unknown> = { alg: key.alg, typ: 'JWT', kid: key.kid, ...header };
  for (const k of Object.keys(merged)) if (merged[k] === undefined) delete merged[k];
  return new CompactSign(Buffer.from(JSON.stringify(payload))).setProtectedHeader(merged as { alg: string }).sign(key.privateKey);
}

/** `header.payload.signature` from raw parts (no signing). */
export function rawToken(header: unknown, payload: unknown, signature = ''): string {
  return `${segment(header)}.${segment(payload)}.${signature}`;
}

/** An unsecured JWT (RFC 7519 §6): `alg: none`, empty signature. */
export function algNoneToken(payload: Record<string, unknown>, kid?: string): string {
  return rawToken(kid === undefined ? { alg: 'none', typ: 'JWT' } : { alg: 'none', typ: 'JWT', kid }, payload);
}

/**
 * The RS256→HS256 key-confusion attack: an HS256 token whose HMAC secret is
 * the verifier's RSA PUBLIC key (as SPKI PEM, or as the JWK JSON text), which
 * anyone can download.
 */
export async function hs256WithPublicKey(rsa: TestKey, payload: Record<string, unknown>, form: 'pem' | 'jwk' = 'pem'): Promise<string> {
  const secret = form === 'pem' ? await exportSPKI(rsa.publicKey) : JSON.stringify(rsa.publicJwk);
  const input = `${segment({ alg: 'HS256', typ: 'JWT', kid: rsa.kid })}.${segment(payload)}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

/** Replace the payload of a signed token, keeping header and signature. */
export function tamperPayload(token: string, patch: Record<string, unknown>): string {
  const [h, p, s] = token.split('.') as [string, string, string];
  const payload = JSON.parse(Buffer.from(p, 'base64url').toString('utf8')) as Record<string, unknown>;
  return `${h}.${segment({ ...payload, ...patch })}.${s}`;
}

/** Replace the protected header of a signed token, keeping payload and signature. */
export function tamperHeader(token: string, patch: Record<string, unknown>): string {
  const [h, p, s] = token.split('.') as [string, string, string];
  const header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8')) as Record<string, unknown>;
  return `${segment({ ...header, ...patch })}.${p}.${s}`;
}

/** The issuer `baseClaims()` tokens come from. */
export const TEST_ISSUER = 'https://idp.test';

/**
 * A validated-looking {@link IssuerConfig} (defaults as the loader applies
 * them) for `TEST_ISSUER`, audience `regate`. Pass `jwks_url` or `jwks_file`.
 */
export function issuerConfig(overrides: Partial<IssuerConfig> = {}): IssuerConfig {
  return {
    id: 'idp',
    issuer: TEST_ISSUER,
    audiences: ['regate'],
    algorithms: ['ES256', 'RS256', 'EdDSA'],
    clock_tolerance_s: 30,
    required_claims: [],
    jwks: { timeout_ms: 2000, cache_max_age_s: 300, cooldown_s: 30 },
    claims: { roles: 'roles', groups: 'groups', scopes: 'scope', tenant: 'tenant' },
    ...overrides,
  };
}

const SIGN_PARAMS: Record<TestAlg, webcrypto.AlgorithmIdentifier | webcrypto.EcdsaParams | webcrypto.RsaPssParams> = {
  ES256: { name: 'ECDSA', hash: 'SHA-256' },
  ES384: { name: 'ECDSA', hash: 'SHA-384' },
  RS256: { name: 'RSASSA-PKCS1-v1_5' },
  PS256: { name: 'RSA-PSS', saltLength: 32 },
  EdDSA: { name: 'Ed25519' },
};

/**
 * Sign an arbitrary header and payload with WebCrypto directly, bypassing
 * jose's producer-side checks (e.g. an unrecognised `crit`). A validly signed
 * token that a correct verifier must still refuse.
 */
export async function signRawToken(key: TestKey, header: Record<string, unknown>, payload: unknown): Promise<string> {
  const input = `${segment(header)}.${segment(payload)}`;
  const signature = await crypto.subtle.sign(SIGN_PARAMS[key.alg], key.privateKey, Buffer.from(input));
  return `${input}.${Buffer.from(signature).toString('base64url')}`;
}
