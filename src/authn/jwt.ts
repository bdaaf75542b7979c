/**
 * The authentication stage: `Authorization: Bearer <JWT>` → verified {@link Identity}.
 *
 * Per request, in this order (each step fails closed with a stable reason):
 *
 * 1. Exactly one Authorization header (`multiple_authorization`). Node's
 *    `req.headers` keeps the FIRST Authorization and silently drops the rest,
 *    so duplicates are only visible in `req.rawHeaders`: pass it.
 * 2. `Bearer` (case-insensitive, RFC 7235 §2.1) + 1*SP + one b64token
 *    (RFC 6750 §2.1), nothing else (`malformed_authorization`). Tokens in the
 *    query string or body (RFC 6750 §2.2/§2.3) are never read.
 * 3. At most 8 KiB, JWS compact shape (`malformed_token`) — or, when one
 *    issuer has `introspection`, any other token is opaque and introspected
 *    there (RFC 7662, src/authn/introspection.ts).
 * 4. The UNVERIFIED `iss` picks exactly one configured issuer
 *    (`unknown_issuer`); an issuer with introspection and no key source
 *    introspects its JWTs too. We never try every issuer's keys: that would turn one
 *    request into N signature checks and blur which trust anchor vouched.
 * 5. jose `jwtVerify` with that issuer's alg allowlist, issuer, audiences,
 *    clock tolerance and required claims (`exp` always). jose checks the alg
 *    allowlist BEFORE resolving a key, so `alg: none` or HS256-with-a-public-
 *    key never reach key lookup or a JWKS fetch.
 * 6. Claim mapping ({@link mapIdentity}).
 *
 * Every jose error is translated to an `AuthnError` with the original kept
 * as `cause`; anything unexpected is still an `AuthnError` — never an allow,
 * never a 500 from this stage.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { jwtVerify, type JWTVerifyOptions, type JWTVerifyGetKey } from 'jose';
import { jsonDepthExceeds, MAX_JSON_DEPTH } from '../input/json.ts';
import { AuthnError, ConfigError, type AuthnReason } from '../errors.ts';
import type { AuthMode, IssuerConfig } from '../config/types.ts';
import type { Authenticator, AuthnRequest, Identity } from './types.ts';
import { compileClaimMapping, mapIdentity, type CompiledClaimMapping } from './claims.ts';
import { createKeySource, SUPPORTED_ALGORITHMS, type JwksRefreshHook, type KeySource } from './jwks.ts';
import { Discovery, type DiscoveryResult } from './discovery.ts';
import { Introspector, type IntrospectionCacheKind, type IntrospectionResult } from './introspection.ts';

/** Default maximum token length in bytes (all ASCII): anything longer is `malformed_token`. */
export const DEFAULT_MAX_TOKEN_BYTES = 8192;

/**
 * A cache of verified identities, keyed by the exact token string
 * (implemented by `TokenCache`, src/authn/token-cache.ts). Contract: only
 * successful verifications are `set`; an entry must not outlive
 * `identity.exp`. The authenticator re-checks `exp` against its own clock on
 * every hit, so a buggy cache cannot extend a token's life.
 */
export interface VerifiedTokenCache {
  get(token: string): Identity | undefined;
  /**
   * Store a verified identity. `since` is the {@link generation} read before
   * the verification began: if keys were evicted meanwhile, the identity may
   * have been verified by one of them and is not stored. `key` is the key that
   * verified the token, for {@link evictKeys}.
   */
  set(token: string, identity: Identity, since?: number, key?: object): void;
  /** Incremented by every clear and eviction. */
  readonly generation?: number;
  /** Forget the identities verified by these keys: a JWKS refresh dropped them. */
  evictKeys?(keys: ReadonlySet<object>): number;
}

/** Options for {@link createAuthenticator}. */
export interface AuthenticatorOptions {
  /** Metrics hook, called after every remote JWKS fetch attempt. */
  readonly onJwksRefresh?: JwksRefreshHook;
  /** A JWKS refresh dropped `keys` keys; `evicted` cached verifications made with them were forgotten. Must not throw. */
  readonly onJwksKeysRemoved?: (issuerId: string, keys: number, evicted: number) => void;
  /** Overrides every issuer's `jwks.timeout_ms` (tests). */
  readonly fetchTimeoutMs?: number;
  /** Current time in (fractional) seconds since the epoch for exp/nbf checks. Default: system time. */
  readonly now?: () => number;
  /** Monotonic ms for JWKS freshness/cooldown. Default `performance.now` (tests inject a fake). */
  readonly monotonicMs?: () => number;
  /** Default {@link DEFAULT_MAX_TOKEN_BYTES}. */
  readonly maxTokenBytes?: number;
  /** JWKS response size cap. Default 1 MiB. */
  readonly maxJwksBytes?: number;
  /** Optional verified-token cache (see {@link VerifiedTokenCache}). */
  readonly cache?: VerifiedTokenCache;
  /** After every OIDC discovery attempt (`discovery: true`). Must not throw. */
  readonly onDiscovery?: (issuerId: string, result: DiscoveryResult, error?: unknown) => void;
  /** After every introspection call. Must not throw; `error` never holds the token. */
  readonly onIntrospection?: (issuerId: string, result: IntrospectionResult, error?: unknown) => void;
  /** An introspection cache hit. Must not throw. */
  readonly onIntrospectionCacheHit?: (issuerId: string, kind: IntrospectionCacheKind) => void;
  /** Overrides every issuer's `introspection.timeout_ms` (tests). */
  readonly introspectionTimeoutMs?: number;
  /** Config file path, for `ConfigError`s about issuers. Default `'<config>'`. */
  readonly source?: string;
}

export type { AuthnRequest } from './types.ts';

/** Result of {@link JwtAuthenticator.prefetch} for one issuer. */
export interface PrefetchResult {
  readonly issuerId: string;
  readonly ready: boolean;
}

/**
 * The JWT {@link Authenticator}. Call `authenticate(req, mode)` with the
 * `IncomingMessage` so duplicate Authorization headers are detected.
 */
export interface JwtAuthenticator extends Authenticator {
  /**
   * Preferred: `authenticate(req, mode)` — `req` is an {@link AuthnRequest}
   * (an `IncomingMessage`); its `rawHeaders` are the source of truth for
   * Authorization (two or more → `multiple_authorization`).
   *
   * Also accepted, for the `Authenticator` interface: `authenticate(req.headers,
   * mode, req.rawHeaders)`. Without `rawHeaders`, duplicates that node dropped
   * cannot be seen.
   *
   * The identity itself (no promise) when it is known without waiting: `none`, an
   * absent token under `optional`, a token-cache hit. Failures always reject.
   */
  authenticate(req: AuthnRequest | IncomingHttpHeaders, mode: AuthMode, rawHeaders?: readonly string[]): Identity | null | Promise<Identity | null>;
  /** Verify a bare token (no header parsing). Rejects only with `AuthnError`. */
  verifyToken(token: string): Promise<Identity>;
  /** Load every remote JWKS now (startup, before readiness). Never rejects. */
  prefetch(): Promise<readonly PrefetchResult[]>;
}

interface IssuerRuntime {
  readonly config: IssuerConfig;
  /** Absent for an introspection-only issuer. */
  readonly keys: KeySource | undefined;
  readonly introspector: Introspector | undefined;
  readonly getKey: JWTVerifyGetKey;
  readonly verifyOptions: Readonly<JWTVerifyOptions>;
  readonly mapping: CompiledClaimMapping;
}

/** RFC 6750 §2.1: credentials = "Bearer" 1*SP b64token. Compiled once. */
const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*)$/i;
/** JWS compact serialization (RFC 7515 §7.1). Empty signature allowed so `alg: none` is reported as such. */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

function fail(reason: AuthnReason, message: string, detail?: string, cause?: unknown): AuthnError {
  return new AuthnError(reason, message, { detail, cause });
}

/**
 * The single Authorization value, `undefined` when absent. Throws
 * `multiple_authorization` on duplicates. Exported for tests.
 */
export function readAuthorization(headers: IncomingHttpHeaders, rawHeaders?: readonly string[]): string | undefined {
  if (rawHeaders !== undefined) {
    let value: string | undefined;
    let count = 0;
    for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
      const name = rawHeaders[i]!;
      if (name.length === 13 && name.toLowerCase() === 'authorization') {
        count++;
        value = rawHeaders[i + 1];
      }
    }
    if (count > 1) throw fail('multiple_authorization', 'more than one Authorization header');
    return value;
  }
  const value: unknown = headers.authorization;
  if (Array.isArray(value)) {
    if (value.length > 1) throw fail('multiple_authorization', 'more than one Authorization header');
    return value[0] as string | undefined;
  }
  return value as string | undefined;
}

/**
 * A request (`{headers: {...}, rawHeaders: [...]}`) rather than a header bag?
 * Unambiguous for node-parsed headers: their values are strings (arrays
 * only for set-cookie), never a plain object, and names are lower-case, so a
 * client cannot forge a `headers` object or a `rawHeaders` member.
 */
function isAuthnRequest(value: AuthnRequest | IncomingHttpHeaders): value is AuthnRequest {
  const headers: unknown = (value as { headers?: unknown }).headers;
  return typeof headers === 'object' && headers !== null && !Array.isArray(headers);
}

/** The token of a `Bearer` Authorization value; throws `malformed_authorization`. Exported for tests. */
export function parseBearer(value: string): string {
  const match = BEARER.exec(value);
  if (match === null) throw fail('malformed_authorization', 'Authorization must be "Bearer <token>"');
  return match[1]!;
}

/** The unverified `iss` of a compact JWS. Only used to pick the issuer. */
function peekIssuer(token: string): string {
  const start = token.indexOf('.') + 1;
  const end = token.indexOf('.', start);
  const text = Buffer.from(token.slice(start, end), 'base64url').toString('utf8');
  // Claims become the policy input: nested deeper than any JSON regate accepts (bodies,
  // catalog documents), they would fail the evaluation (a 500) instead of the token (a 401).
  if (jsonDepthExceeds(text, MAX_JSON_DEPTH)) throw fail('malformed_token', `token payload nests deeper than ${MAX_JSON_DEPTH} levels`);
  let payload: unknown;
  try {
    payload = JSON.parse(text);
  } catch (cause) {
    throw fail('malformed_token', 'token payload is not base64url JSON', undefined, cause);
  }
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) {
    throw fail('malformed_token', 'token payload is not a JSON object');
  }
  const iss = (payload as Record<string, unknown>).iss;
  if (iss === undefined) throw fail('missing_claim', 'token has no "iss" claim', 'claim=iss');
  if (typeof iss !== 'string') throw fail('invalid_claim', 'claim "iss" must be a string', 'claim=iss');
  return iss;
}

/**
 * Translate a jose (or any) error into an `AuthnError`. Exported for tests:
 * the mapping IS the metric-label contract.
 */
export function toAuthnError(err: unknown): AuthnError {
  if (err instanceof AuthnError) return err;
  const code = (err as { code?: unknown } | null)?.code;
  switch (code) {
    case 'ERR_JWT_EXPIRED':
      return fail('token_expired', 'token has expired', 'claim=exp', err);
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED': {
      const { claim, reason } = err as { claim?: string; reason?: string };
      const detail = `claim=${claim}`;
      if (reason === 'missing') return fail('missing_claim', `token lacks required claim "${claim}"`, detail, err);
      if (reason === 'check_failed') {
        if (claim === 'nbf') return fail('token_not_yet_valid', 'token is not valid yet', detail, err);
        if (claim === 'aud') return fail('invalid_audience', 'token audience is not accepted', detail, err);
        if (claim === 'iss') return fail('invalid_issuer', 'token issuer is not accepted', detail, err);
      }
      return fail('invalid_claim', `claim "${claim}" is invalid`, detail, err);
    }
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return fail('algorithm_not_allowed', 'token algorithm is not allowed for this issuer', undefined, err);
    case 'ERR_JWKS_NO_MATCHING_KEY':
    case 'ERR_JWKS_MULTIPLE_MATCHING_KEYS':
      return fail('unknown_key', 'no key matches the token', undefined, err);
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return fail('invalid_signature', 'token signature is invalid', undefined, err);
    case 'ERR_JWS_INVALID':
    case 'ERR_JWT_INVALID':
    case 'ERR_JOSE_NOT_SUPPORTED': // e.g. an unrecognised "crit" header (RFC 7515 §4.1.11)
      return fail('malformed_token', 'token is malformed', undefined, err);
    default:
      // Unexpected (a bug, a runtime crypto error): still a typed 401 that
      // denies. `malformed_token` is the closest stable reason; `detail`
      // tells operators it was unexpected.
      return fail('malformed_token', 'token could not be verified', `unexpected=${(err as Error | null)?.name ?? typeof err}`, err);
  }
}

function checkIssuerConfig(issuer: IssuerConfig, index: number, source: string): void {
  const at = (key: string): string => `/issuers/${index}/${key}`;
  const hasKeys = issuer.jwks_url !== undefined || issuer.jwks_file !== undefined || issuer.discovery === true;
  if (!hasKeys && issuer.introspection === undefined) throw new ConfigError(source, `/issuers/${index}`, 'set one of jwks_url, jwks_file, discovery, introspection');
  if (!hasKeys) return;
  if (issuer.algorithms.length === 0) throw new ConfigError(source, at('algorithms'), 'at least one algorithm is required');
  for (const alg of issuer.algorithms) {
    // Defence in depth (the schema refuses these too): `none` is an unsigned
    // token; HS* would need a shared secret, and verifying HS* against public
    // key material is the RS256→HS256 key-confusion attack.
    if (!SUPPORTED_ALGORITHMS.includes(alg)) {
      throw new ConfigError(source, at('algorithms'), `unsupported algorithm ${JSON.stringify(alg)}; regate verifies with public keys only (${SUPPORTED_ALGORITHMS.join(', ')})`);
    }
  }
  if (issuer.audiences.length === 0) throw new ConfigError(source, at('audiences'), 'at least one audience is required');
}

function buildIssuer(issuer: IssuerConfig, keys: KeySource | undefined, introspector: Introspector | undefined): IssuerRuntime {
  const getKey: JWTVerifyGetKey = (header) => {
    const { alg, kid } = header;
    // jose has checked alg against the allowlist before calling us.
    if (kid !== undefined && typeof kid !== 'string') throw fail('malformed_token', 'token "kid" must be a string');
    if (keys === undefined) throw fail('unknown_key', 'this issuer has no keys (introspection only)');
    return keys.getKey(alg, kid);
  };
  const verifyOptions: JWTVerifyOptions = Object.freeze({
    algorithms: [...issuer.algorithms],
    issuer: issuer.issuer,
    audience: [...issuer.audiences],
    clockTolerance: issuer.clock_tolerance_s,
    requiredClaims: [...new Set(['exp', ...issuer.required_claims])],
  });
  return { config: issuer, keys, introspector, getKey, verifyOptions, mapping: compileClaimMapping(issuer.claims) };
}

/**
 * Build the authenticator for a set of issuers (startup / reload). Throws
 * `ConfigError` for an unusable issuer (duplicate `issuer`, unsupported or
 * HMAC-with-URL algorithm, unreadable `jwks_file`). Remote JWKS are fetched
 * on {@link JwtAuthenticator.prefetch} or first use.
 */
export function createAuthenticator(issuers: readonly IssuerConfig[], options: AuthenticatorOptions = {}): JwtAuthenticator {
  const source = options.source ?? '<config>';
  const maxTokenBytes = options.maxTokenBytes ?? DEFAULT_MAX_TOKEN_BYTES;
  const now = options.now;
  const cache = options.cache;
  const byIss = new Map<string, IssuerRuntime>();
  const all: IssuerRuntime[] = [];
  const discoveries: Discovery[] = [];
  /** The one issuer that introspects opaque tokens (config checks allow at most one). */
  let introspecting: IssuerRuntime | undefined;
  try {
    issuers.forEach((issuer, index) => {
      checkIssuerConfig(issuer, index, source);
      if (byIss.has(issuer.issuer)) {
        throw new ConfigError(source, `/issuers/${index}/issuer`, `duplicate issuer ${JSON.stringify(issuer.issuer)}`);
      }
      if (issuer.introspection !== undefined && introspecting !== undefined) {
        throw new ConfigError(source, `/issuers/${index}/introspection`, 'only one issuer may use introspection: an opaque token names no issuer');
      }
      const discovery =
        issuer.discovery === true ? new Discovery(issuer, { timeoutMs: options.fetchTimeoutMs, monotonicMs: options.monotonicMs, onResult: options.onDiscovery }) : undefined;
      if (discovery !== undefined) discoveries.push(discovery);
      const introspector =
        issuer.introspection === undefined
          ? undefined
          : new Introspector(issuer, {
              now,
              source,
              index,
              discovery,
              timeoutMs: options.introspectionTimeoutMs,
              onRequest: options.onIntrospection,
              onCacheHit: options.onIntrospectionCacheHit,
            });
      const hasKeys = issuer.jwks_url !== undefined || issuer.jwks_file !== undefined || discovery !== undefined;
      const keys = !hasKeys ? undefined : createKeySource(issuer, {
        discovery,
        onRefresh: options.onJwksRefresh,
        // Cached tokens must not outlive the key that vouched for them.
        onKeysRemoved: (issuerId, removed) => {
          const evicted = cache?.evictKeys?.(removed) ?? 0;
          options.onJwksKeysRemoved?.(issuerId, removed.size, evicted);
        },
        fetchTimeoutMs: options.fetchTimeoutMs,
        maxBytes: options.maxJwksBytes,
        monotonicMs: options.monotonicMs,
      });
      const runtime = buildIssuer(issuer, keys, introspector);
      byIss.set(issuer.issuer, runtime);
      all.push(runtime);
      if (introspector !== undefined) introspecting = runtime;
    });
  } catch (err) {
    for (const runtime of all) {
      runtime.keys?.close();
      runtime.introspector?.close();
    }
    for (const discovery of discoveries) discovery.close();
    throw err;
  }

  const nowSeconds = (): number => (now === undefined ? Date.now() / 1000 : now());

  /**
   * The checks that need no key, then the cache: the cached identity on a hit,
   * undefined when the token must be verified (or, opaque, introspected). Throws
   * `AuthnError` for a token that is not a compact JWS when no issuer introspects.
   */
  function cachedIdentity(token: string): Identity | undefined {
    if (typeof token !== 'string') throw new TypeError('token must be a string');
    if (token.length > maxTokenBytes) throw fail('malformed_token', `token longer than ${maxTokenBytes} bytes`);
    if (!COMPACT_JWS.test(token)) {
      // Not a JWT: an opaque token, for the introspecting issuer (if any) — its own cache, in verifyUncached.
      if (introspecting !== undefined) return undefined;
      throw fail('malformed_token', 'token is not a compact JWS');
    }
    if (cache !== undefined) {
      const hit = cache.get(token);
      // Never trust the cache with expiry: re-check against our clock, with
      // no tolerance (a cache may only shorten a token's life).
      if (hit !== undefined && hit.exp > nowSeconds()) return hit;
    }
    return undefined;
  }

  async function verifyToken(token: string): Promise<Identity> {
    return cachedIdentity(token) ?? verifyUncached(token);
  }

  /** Signature and claims through jose (after {@link cachedIdentity} missed). */
  async function verifyUncached(token: string): Promise<Identity> {
    if (introspecting !== undefined && !COMPACT_JWS.test(token)) return introspecting.introspector!.introspect(token);
    // Read before verifying: a key refresh that clears the cache while jwtVerify
    // runs must not let this (old-key) verification back into the cache.
    const generation = cache?.generation;
    let iss: string;
    try {
      iss = peekIssuer(token);
    } catch (err) {
      // JWT-shaped but unreadable: an introspection-only issuer takes every token as opaque.
      if (introspecting !== undefined && introspecting.keys === undefined) return introspecting.introspector!.introspect(token);
      throw err;
    }
    const issuer = byIss.get(iss);
    if (issuer === undefined) throw fail('unknown_issuer', 'token issuer is not configured');
    // An issuer with introspection and no key source: its JWTs are introspected too.
    if (issuer.keys === undefined) return issuer.introspector!.introspect(token);
    const verifyOptions = now === undefined ? issuer.verifyOptions : { ...issuer.verifyOptions, currentDate: new Date(now() * 1000) };
    let payload: Record<string, unknown>;
    // The key that verifies it, remembered with the cached identity (evicted with the key).
    let usedKey: object | undefined;
    const getKey: JWTVerifyGetKey =
      cache === undefined
        ? issuer.getKey
        : async (header, jws) => {
            const key = await issuer.getKey(header, jws);
            usedKey = key as object;
            return key;
          };
    try {
      ({ payload } = await jwtVerify(token, getKey, verifyOptions));
    } catch (err) {
      throw toAuthnError(err);
    }
    // jose checks a future `iat` only together with maxTokenAge; a token issued
    // later than now + clock_tolerance_s was minted by a clock (or an attacker)
    // regate must not trust: RFC 7519 §4.1.6 makes `iat` the issue time.
    const iat = payload.iat;
    if (typeof iat === 'number' && iat > nowSeconds() + issuer.config.clock_tolerance_s) {
      throw fail('token_not_yet_valid', 'token was issued in the future', 'claim=iat');
    }
    let identity: Identity;
    try {
      identity = mapIdentity(payload, issuer.config, issuer.mapping);
    } catch (err) {
      throw toAuthnError(err);
    }
    cache?.set(token, identity, generation, usedKey);
    return identity;
  }

  return {
    // Not async: what is known without waiting (no token needed, a token-cache hit) is
    // returned as it is, so a cached request takes no promise or microtask here (issue 11).
    // Failures are always rejected promises, never thrown.
    authenticate(req: AuthnRequest | IncomingHttpHeaders, mode: AuthMode, rawHeaders?: readonly string[]): Identity | null | Promise<Identity | null> {
      try {
        if (mode === 'none') return null;
        if (mode !== 'required' && mode !== 'optional') throw new TypeError(`unknown auth mode ${JSON.stringify(mode)}`);
        const value = isAuthnRequest(req) ? readAuthorization(req.headers, req.rawHeaders ?? rawHeaders) : readAuthorization(req, rawHeaders);
        if (value === undefined) {
          if (mode === 'optional') return null;
          throw fail('missing_token', 'no bearer token');
        }
        // A present but empty or non-Bearer header is an attempt, not an absence:
        // it fails even in `optional` mode.
        const token = parseBearer(value);
        return cachedIdentity(token) ?? verifyUncached(token);
      } catch (err) {
        return Promise.reject(err);
      }
    },
    verifyToken,
    ready(): boolean {
      let ready = true;
      // Call ready() on every source: it kicks a (rate-limited) retry for the unloaded ones.
      for (const runtime of all) if (runtime.keys !== undefined) ready = runtime.keys.ready() && ready;
      return ready;
    },
    async prefetch(): Promise<readonly PrefetchResult[]> {
      return Promise.all(all.map(async (runtime) => ({ issuerId: runtime.config.id, ready: runtime.keys === undefined ? true : await runtime.keys.prefetch() })));
    },
    close(): void {
      for (const runtime of all) {
        runtime.keys?.close();
        runtime.introspector?.close();
      }
      for (const discovery of discoveries) discovery.close();
    },
  };
}
