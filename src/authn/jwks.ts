/**
 * Verification keys per issuer: a JWKS (RFC 7517) from a URL or a file.
 *
 * Keys are imported ONCE, when a JWKS is loaded: every usable JWK becomes one
 * `CryptoKey` per allowlisted algorithm it is compatible with, indexed by
 * (alg, kid). A request does two Map lookups and never imports a key.
 *
 * Key selection (modelled on jose's `createLocalJWKSet`, stricter):
 * - token with `kid`: the key with that `kid` usable for the token's `alg`;
 * - token without `kid`: the ONLY key usable for that `alg`. Several
 *   candidates → `unknown_key` (ambiguous). We never try candidates in turn:
 *   that multiplies signature checks per request for an attacker.
 * - a JWK is usable for an alg when its `kty`/`crv` match, its `alg` (if any)
 *   equals it, `use` (if any) is `sig` (RFC 7517 §4.2) and `key_ops` (if any)
 *   contains `verify` (§4.3). RSA keys need ≥ 2048 bits (RFC 7518 §3.3).
 * - Public keys only: `oct` (shared-secret) JWKs are never imported and HS*
 *   is not a supported algorithm, so the RS256→HS256 key-confusion attack
 *   (a verifier using public key bytes as an HMAC secret) has nothing to hit.
 * - A set that contains ANY private key material is refused as a whole.
 *
 * Remote sets (`jwks_url`) follow jose's `createRemoteJWKSet` design:
 * single-flight fetches, a cooldown on unknown-`kid` refetches, freshness by
 * `cache_max_age_s`; plus: a response size cap, no redirects, stale keys kept
 * when a refresh fails, conditional requests (ETag), and a refresh timer: the
 * keys are re-fetched every `cache_max_age_s` even when no request asks for a
 * key (with the token cache on, cached tokens never do), so a key the identity
 * provider removes is noticed within `cache_max_age_s` + one fetch. A refresh
 * that drops a key reports it ({@link KeySourceOptions.onKeysRemoved}): the
 * token cache then forgets what that key verified. A JWK that did not change
 * keeps its imported `CryptoKey` object across refreshes, which is what makes
 * "this key is gone" an identity comparison.
 */
import { readFileSync } from 'node:fs';
import { createPublicKey, type JsonWebKey, type KeyObject, type webcrypto } from 'node:crypto';
import { request } from '../upstream/undici.ts';
import { AuthnError, ConfigError } from '../errors.ts';
import type { IssuerConfig } from '../config/types.ts';
import type { Discovery } from './discovery.ts';

/** Outcome of one JWKS fetch, for metrics. */
export type JwksRefreshResult = 'success' | 'not_modified' | 'error';

/** Called after every remote fetch attempt. `error` is set for `'error'`. Must not throw (errors are swallowed). */
export type JwksRefreshHook = (issuerId: string, result: JwksRefreshResult, error?: unknown) => void;

/** A key the resolver can hand to jose. */
export type VerifyKey = webcrypto.CryptoKey;

/** The verification keys of one issuer. */
export interface KeySource {
  readonly issuerId: string;
  /**
   * The key for a token's protected-header `alg` and `kid`. Synchronous when
   * the keys are loaded and the kid is known (the hot path); a Promise when a
   * fetch is needed. Throws / rejects only with `AuthnError`:
   * `unknown_key` (no or ambiguous match) or `jwks_unavailable` (no keys ever loaded).
   */
  getKey(alg: string, kid: string | undefined): VerifyKey | Promise<VerifyKey>;
  /** Load keys now (startup). Never rejects; resolves true when keys are usable. */
  prefetch(): Promise<boolean>;
  /** True once keys have been loaded at least once. */
  ready(): boolean;
  /** Abort an in-flight fetch; no further fetches. Cached keys stay usable. */
  close(): void;
}

/** Options shared by key sources. */
export interface KeySourceOptions {
  readonly onRefresh?: JwksRefreshHook;
  /** Overrides `issuer.jwks.timeout_ms` (tests). */
  readonly fetchTimeoutMs?: number;
  /** Response size cap in bytes. Default 1 MiB. */
  readonly maxBytes?: number;
  /** Monotonic milliseconds for freshness and cooldown. Default `performance.now`. Tests inject a fake. */
  readonly monotonicMs?: () => number;
  /**
   * A refresh replaced the set and these keys (imported objects, as returned
   * by `getKey`) are no longer in it: removed, or their material changed.
   * Must not throw (errors are swallowed).
   */
  readonly onKeysRemoved?: (issuerId: string, removed: ReadonlySet<VerifyKey>) => void;
  /** The issuer's discovery (`discovery: true`): required for such an issuer. */
  readonly discovery?: Discovery;
}

/** A JWKS could not be fetched or used. Kept as `cause` / passed to {@link JwksRefreshHook}. */
export class JwksLoadError extends Error {
  /** JSON-pointer-like location in the set, '' for the whole document. */
  readonly keyPath: string;
  constructor(keyPath: string, message: string, options: { cause?: unknown } = {}) {
    super(keyPath ? `${keyPath}: ${message}` : message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'JwksLoadError';
    this.keyPath = keyPath;
  }
}

// ---------------------------------------------------------------------------
// Algorithms and key import
// ---------------------------------------------------------------------------

type ImportParams = webcrypto.AlgorithmIdentifier | webcrypto.RsaHashedImportParams | webcrypto.EcKeyImportParams;

interface AlgSpec {
  readonly kty: 'RSA' | 'EC' | 'OKP';
  readonly crv?: string;
  readonly params: ImportParams;
}

const rsa = (name: string, hash: string): AlgSpec => ({ kty: 'RSA', params: { name, hash } });
const ec = (crv: string): AlgSpec => ({ kty: 'EC', crv, params: { name: 'ECDSA', namedCurve: crv } });

/**
 * The JWS algorithms (RFC 7518 §3.1, RFC 8037) regate can verify: asymmetric
 * only, the same list as the config schema. Neither `none` nor HS* is here.
 */
const ALGORITHMS: ReadonlyMap<string, AlgSpec> = new Map<string, AlgSpec>([
  ['RS256', rsa('RSASSA-PKCS1-v1_5', 'SHA-256')],
  ['RS384', rsa('RSASSA-PKCS1-v1_5', 'SHA-384')],
  ['RS512', rsa('RSASSA-PKCS1-v1_5', 'SHA-512')],
  ['PS256', rsa('RSA-PSS', 'SHA-256')],
  ['PS384', rsa('RSA-PSS', 'SHA-384')],
  ['PS512', rsa('RSA-PSS', 'SHA-512')],
  ['ES256', ec('P-256')],
  ['ES384', ec('P-384')],
  ['ES512', ec('P-521')],
  ['EdDSA', { kty: 'OKP', crv: 'Ed25519', params: { name: 'Ed25519' } }],
  ['Ed25519', { kty: 'OKP', crv: 'Ed25519', params: { name: 'Ed25519' } }],
]);

/** Every algorithm name accepted in an issuer's `algorithms` allowlist. */
export const SUPPORTED_ALGORITHMS: readonly string[] = Object.freeze([...ALGORITHMS.keys()]);

/** Members that only a private JWK carries (RFC 7518 §6.2.2, §6.3.2; RFC 8037 §2). */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'priv'] as const;

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** The marker {@link KeySet.lookup} returns when several keys match. */
export const AMBIGUOUS = 'ambiguous';

/** Per-algorithm index inside a {@link KeySet} (built by {@link parseJwks}). */
export interface AlgIndex {
  /** The single key usable for this alg, AMBIGUOUS if several, for tokens without `kid`. */
  only: VerifyKey | typeof AMBIGUOUS | undefined;
  readonly byKid: Map<string, VerifyKey | typeof AMBIGUOUS>;
}

/** A JWK that was left out of a set, and why (diagnostics). */
export interface SkippedKey {
  readonly keyPath: string;
  readonly problem: string;
}

/** An immutable, imported JWKS: (alg, kid) → CryptoKey. Build with {@link parseJwks}. */
export class KeySet {
  /** Number of (JWK, alg) pairs imported. 0 means unusable. */
  readonly size: number;
  /** `kid`s present (diagnostics). */
  readonly kids: readonly string[];
  /** Keys that looked usable but were left out (remote sets only; files throw instead). */
  readonly skipped: readonly SkippedKey[];
  private readonly byAlg: ReadonlyMap<string, AlgIndex>;
  /** Every imported key by (alg, JWK text): lets the next refresh reuse the objects of unchanged JWKs. */
  readonly imported: ReadonlyMap<string, VerifyKey>;

  constructor(
    byAlg: ReadonlyMap<string, AlgIndex>,
    size: number,
    kids: readonly string[],
    skipped: readonly SkippedKey[],
    imported: ReadonlyMap<string, VerifyKey> = new Map(),
  ) {
    this.byAlg = byAlg;
    this.size = size;
    this.kids = Object.freeze([...kids]);
    this.skipped = Object.freeze([...skipped]);
    this.imported = imported;
  }

  /** The keys of this set that `next` no longer holds (removed, or their material changed). */
  removedIn(next: KeySet): Set<VerifyKey> {
    const held = new Set(next.imported.values());
    const removed = new Set<VerifyKey>();
    for (const key of this.imported.values()) if (!held.has(key)) removed.add(key);
    return removed;
  }

  /** The key for (alg, kid): a key, {@link AMBIGUOUS}, or `undefined` (no match). */
  lookup(alg: string, kid: string | undefined): VerifyKey | typeof AMBIGUOUS | undefined {
    const index = this.byAlg.get(alg);
    if (index === undefined) return undefined;
    return kid === undefined ? index.only : index.byKid.get(kid);
  }
}

/** Options for {@link parseJwks}. */
export interface ParseJwksOptions {
  /**
   * Throw on a key that is meant for us but cannot be used (bad material,
   * weak key, malformed member) instead of skipping it. Files: true (the
   * operator fixes it before startup); remote sets: false (one broken key
   * must not take down the others).
   */
  readonly strict: boolean;
  /** The set this one replaces: a JWK that is byte-for-byte the same keeps its imported key object. */
  readonly previous?: KeySet;
}

/**
 * Validate and import a JWKS document for an algorithm allowlist. Throws
 * {@link JwksLoadError} when the document is not a JWKS, holds private key
 * material, or (strict) has an unusable key. A set may come back with
 * `size === 0`; callers decide whether that is an error.
 */
export function parseJwks(json: unknown, algorithms: readonly string[], options: ParseJwksOptions): KeySet {
  if (!isPlainObject(json) || !Array.isArray(json.keys)) {
    throw new JwksLoadError('', 'not a JSON Web Key Set: expected an object with a "keys" array');
  }
  const byAlg = new Map<string, AlgIndex>();
  const kids: string[] = [];
  const skipped: SkippedKey[] = [];
  const imported = new Map<string, VerifyKey>();
  const reuse = options.previous?.imported;
  let size = 0;

  const skip = (keyPath: string, problem: string, cause?: unknown): void => {
    if (options.strict) throw new JwksLoadError(keyPath, problem, { cause });
    skipped.push({ keyPath, problem });
  };
  const add = (alg: string, kid: string | undefined, key: VerifyKey): void => {
    let index = byAlg.get(alg);
    if (index === undefined) byAlg.set(alg, (index = { only: undefined, byKid: new Map() }));
    index.only = index.only === undefined ? key : AMBIGUOUS;
    // Duplicate kids for one alg: refuse to pick one (fail closed).
    if (kid !== undefined) index.byKid.set(kid, index.byKid.has(kid) ? AMBIGUOUS : key);
    size++;
  };

  const keys: unknown[] = json.keys;
  for (let i = 0; i < keys.length; i++) {
    const keyPath = `/keys/${i}`;
    const jwk = keys[i];
    if (!isPlainObject(jwk)) {
      skip(keyPath, 'not a JSON object');
      continue;
    }
    const { kty, kid, use, key_ops: keyOps, alg: jwkAlg } = jwk;
    if (PRIVATE_MEMBERS.some((m) => Object.hasOwn(jwk, m))) {
      // Whoever can read this set can sign tokens: refuse the whole set.
      throw new JwksLoadError(keyPath, 'contains private key material; refusing the whole set');
    }
    if (typeof kty !== 'string') {
      skip(keyPath, 'missing "kty"');
      continue;
    }
    if (kid !== undefined && typeof kid !== 'string') {
      skip(keyPath, '"kid" must be a string');
      continue;
    }
    if (jwkAlg !== undefined && typeof jwkAlg !== 'string') {
      skip(keyPath, '"alg" must be a string');
      continue;
    }
    if (use !== undefined && use !== 'sig') continue; // an encryption key: not ours (RFC 7517 §4.2)
    if (keyOps !== undefined) {
      if (!Array.isArray(keyOps) || !keyOps.every((op) => typeof op === 'string')) {
        skip(keyPath, '"key_ops" must be an array of strings');
        continue;
      }
      if (!keyOps.includes('verify')) continue; // not a verification key (RFC 7517 §4.3)
    }
    if (typeof kid === 'string') kids.push(kid);

    // Identity of this JWK: its members as published (a changed member is a different key).
    const text = JSON.stringify(jwk);
    let keyObject: KeyObject | undefined;
    for (const alg of algorithms) {
      const spec = ALGORITHMS.get(alg);
      if (spec === undefined || spec.kty !== kty) continue;
      if (jwkAlg !== undefined && jwkAlg !== alg) continue;
      if (spec.crv !== undefined && jwk.crv !== spec.crv) continue;
      let problem: string | undefined;
      const id = `${alg} ${text}`;
      const same = reuse?.get(id);
      if (same !== undefined && !imported.has(id)) {
        imported.set(id, same);
        add(alg, kid, same);
        continue;
      }
      try {
        // node:crypto validates the material (curve points, RSA parameters).
        keyObject ??= createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' });
        problem = weakness(keyObject, spec, alg);
        if (problem === undefined) {
          const key = keyObject.toCryptoKey(spec.params, false, ['verify']);
          if (!imported.has(id)) imported.set(id, key);
          add(alg, kid, key);
        }
      } catch (cause) {
        skip(keyPath, `cannot import key for ${alg}: ${(cause as Error)?.message ?? String(cause)}`, cause);
        break;
      }
      if (problem !== undefined) {
        skip(keyPath, problem);
        break;
      }
    }
  }
  return new KeySet(byAlg, size, kids, skipped, imported);
}

function weakness(keyObject: KeyObject, spec: AlgSpec, alg: string): string | undefined {
  if (spec.kty === 'RSA') {
    const bits = keyObject.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < 2048) return `${alg} requires an RSA key of at least 2048 bits (RFC 7518 §3.3), got ${bits}`;
  }
  return undefined;
}

// ---------------------------------------------------------------------------
// Sources
// ---------------------------------------------------------------------------

const DEFAULT_MAX_BYTES = 1024 * 1024;
/**
 * With NO keys at all, requests (and /readyz) may retry a failed fetch after
 * this long even if `cooldown_s` is longer, so startup recovers quickly from
 * an IdP blip. Single flight still bounds it to one fetch at a time.
 */
const NO_KEYS_RETRY_MS = 1000;

function unknownKey(alg: string, kid: string | undefined, ambiguous: boolean): AuthnError {
  return ambiguous
    ? new AuthnError('unknown_key', kid === undefined ? `token has no "kid" and several ${alg} keys match` : `several ${alg} keys share the token's "kid"`, {
        detail: 'ambiguous',
      })
    : new AuthnError('unknown_key', `no ${alg} key matches the token's ${kid === undefined ? 'header' : '"kid"'}`);
}

function select(set: KeySet, alg: string, kid: string | undefined): VerifyKey {
  const found = set.lookup(alg, kid);
  if (found === undefined || found === AMBIGUOUS) throw unknownKey(alg, kid, found === AMBIGUOUS);
  return found;
}

/** A key source for `jwks_file`: read and imported synchronously at construction. */
class FileKeySource implements KeySource {
  readonly issuerId: string;
  private readonly keys: KeySet;

  constructor(issuer: IssuerConfig, file: string) {
    this.issuerId = issuer.id;
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(file, 'utf8'));
    } catch (cause) {
      throw new ConfigError(file, '', `cannot read JWKS: ${(cause as Error).message}`, { cause });
    }
    try {
      this.keys = parseJwks(json, issuer.algorithms, { strict: true });
    } catch (cause) {
      if (!(cause instanceof JwksLoadError)) throw cause;
      throw new ConfigError(file, cause.keyPath, cause.keyPath ? cause.message.slice(cause.keyPath.length + 2) : cause.message, { cause });
    }
    if (this.keys.size === 0) {
      throw new ConfigError(file, '', `no key usable with the issuer's algorithms (${issuer.algorithms.join(', ')})`);
    }
  }

  getKey(alg: string, kid: string | undefined): VerifyKey {
    return select(this.keys, alg, kid);
  }
  prefetch(): Promise<boolean> {
    return Promise.resolve(true);
  }
  ready(): boolean {
    return true;
  }
  close(): void {}
}

type FetchOutcome = { readonly status: 'not_modified' } | { readonly status: 'ok'; readonly body: string; readonly etag: string | undefined };

const utf8 = new TextDecoder('utf-8', { fatal: true });
const ignore = (): void => {};

/**
 * GET a JWKS document: no redirects (undici `request` follows none, so a
 * 3xx is an error), one deadline for connect + headers + body, a size cap
 * checked against Content-Length and again while streaming.
 */
async function fetchJwksDocument(url: string, etag: string | undefined, timeoutMs: number, maxBytes: number, closed: AbortSignal): Promise<FetchOutcome> {
  const signal = AbortSignal.any([AbortSignal.timeout(timeoutMs), closed]);
  const headers: Record<string, string> = { accept: 'application/jwk-set+json, application/json' };
  if (etag !== undefined) headers['if-none-match'] = etag;
  const res = await request(url, { method: 'GET', headers, signal, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
  try {
    if (res.statusCode === 304 && etag !== undefined) return { status: 'not_modified' };
    if (res.statusCode !== 200) throw new JwksLoadError('', `expected 200 from the JWKS endpoint, got ${res.statusCode}`);
    const declared = Number(res.headers['content-length']);
    if (declared > maxBytes) throw new JwksLoadError('', `JWKS response too large (${declared} > ${maxBytes} bytes)`);
    const chunks: Buffer[] = [];
    let total = 0;
    for await (const chunk of res.body) {
      total += (chunk as Buffer).length;
      if (total > maxBytes) throw new JwksLoadError('', `JWKS response too large (> ${maxBytes} bytes)`);
      chunks.push(chunk as Buffer);
    }
    const rawEtag = res.headers.etag;
    return { status: 'ok', body: utf8.decode(Buffer.concat(chunks, total)), etag: typeof rawEtag === 'string' ? rawEtag : undefined };
  } finally {
    // Release the socket whatever happened (no-op once fully read). An
    // unconsumed undici body emits 'error' when destroyed: swallow it, the
    // outcome is already decided.
    if (!res.body.destroyed) {
      res.body.on('error', ignore);
      res.body.destroy();
    }
  }
}

/** A key source for `jwks_url`. */
class RemoteKeySource implements KeySource {
  readonly issuerId: string;
  private readonly url: string;
  private readonly algorithms: readonly string[];
  private readonly maxAgeMs: number;
  private readonly cooldownMs: number;
  private readonly timeoutMs: number;
  private readonly maxBytes: number;
  private readonly now: () => number;
  private readonly onRefresh: JwksRefreshHook | undefined;
  private readonly onKeysRemoved: KeySourceOptions['onKeysRemoved'];
  private readonly abort = new AbortController();
  /** The next scheduled refresh (unref'd: it never keeps the process alive). */
  private timer: NodeJS.Timeout | undefined;

  private keys: KeySet | undefined;
  private body: string | undefined;
  private etag: string | undefined;
  private lastSuccessAt = Number.NEGATIVE_INFINITY;
  /** Start of the last fetch attempt, successful or not: the cooldown anchor. */
  private lastAttemptAt = Number.NEGATIVE_INFINITY;
  private inflight: Promise<void> | undefined;
  private closed = false;
  /** Last fetch failure (diagnostics); cleared on success. */
  lastError: unknown;

  constructor(issuer: IssuerConfig, url: string, options: KeySourceOptions) {
    const parsed = new URL(url);
    if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') throw new TypeError(`jwks_url must be http(s): ${url}`);
    this.issuerId = issuer.id;
    this.url = parsed.href;
    this.algorithms = issuer.algorithms;
    this.maxAgeMs = issuer.jwks.cache_max_age_s * 1000;
    this.cooldownMs = issuer.jwks.cooldown_s * 1000;
    this.timeoutMs = options.fetchTimeoutMs ?? issuer.jwks.timeout_ms;
    this.maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
    this.now = options.monotonicMs ?? (() => performance.now());
    this.onRefresh = options.onRefresh;
    this.onKeysRemoved = options.onKeysRemoved;
  }

  getKey(alg: string, kid: string | undefined): VerifyKey | Promise<VerifyKey> {
    const keys = this.keys;
    if (keys === undefined) return this.getKeyAfterFetch(alg, kid);
    const now = this.now();
    // Stale-while-revalidate: the current keys keep serving while one
    // background fetch (rate-limited by the cooldown) refreshes them.
    if (now - this.lastSuccessAt >= this.maxAgeMs && this.mayFetch(now)) void this.refresh();
    const found = keys.lookup(alg, kid);
    if (found === AMBIGUOUS) throw unknownKey(alg, kid, true);
    if (found !== undefined) return found;
    return this.getKeyAfterFetch(alg, kid);
  }

  /**
   * Unknown kid or no keys yet: join the in-flight fetch, or start one if the
   * cooldown allows, then look again once. An attacker spraying random kids
   * costs at most one fetch per cooldown period.
   */
  private async getKeyAfterFetch(alg: string, kid: string | undefined): Promise<VerifyKey> {
    if (this.inflight !== undefined) await this.inflight;
    else if (this.mayFetch(this.now())) await this.refresh();
    const keys = this.keys;
    if (keys === undefined) {
      throw new AuthnError('jwks_unavailable', 'no keys could be loaded for the token issuer', { cause: this.lastError, detail: `issuer=${this.issuerId}` });
    }
    return select(keys, alg, kid);
  }

  private mayFetch(now: number): boolean {
    if (this.closed) return false;
    const wait = this.keys === undefined ? Math.min(this.cooldownMs, NO_KEYS_RETRY_MS) : this.cooldownMs;
    return now - this.lastAttemptAt >= wait;
  }

  /** Start a fetch, or join the one in flight (single flight). Never rejects. */
  private refresh(): Promise<void> {
    if (this.inflight !== undefined) return this.inflight;
    this.lastAttemptAt = this.now();
    clearTimeout(this.timer);
    const pending = this.fetchAndApply().finally(() => {
      if (this.inflight === pending) this.inflight = undefined;
      this.schedule();
    });
    this.inflight = pending;
    return pending;
  }

  /**
   * The next refresh, whether or not a request asks for a key: at max age
   * after a success, after the cooldown (the backoff) after a failure — and
   * within a second while no keys were ever loaded, as {@link mayFetch} allows.
   */
  private schedule(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.closed) return;
    const delay =
      this.keys === undefined
        ? Math.min(this.cooldownMs, NO_KEYS_RETRY_MS)
        : this.lastError === undefined
          ? this.maxAgeMs
          : Math.min(this.maxAgeMs, Math.max(this.cooldownMs, NO_KEYS_RETRY_MS));
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.refresh();
    }, delay);
    this.timer.unref();
  }

  private async fetchAndApply(): Promise<void> {
    let result: JwksRefreshResult;
    let error: unknown;
    try {
      const outcome = await fetchJwksDocument(this.url, this.keys === undefined ? undefined : this.etag, this.timeoutMs, this.maxBytes, this.abort.signal);
      if (outcome.status === 'not_modified' || (this.keys !== undefined && outcome.body === this.body)) {
        // Same document: keep the imported keys, just renew freshness.
        if (outcome.status === 'ok') this.etag = outcome.etag;
        result = 'not_modified';
      } else {
        let json: unknown;
        try {
          json = JSON.parse(outcome.body);
        } catch (cause) {
          throw new JwksLoadError('', 'JWKS response is not JSON', { cause });
        }
        const previous = this.keys;
        const keys = parseJwks(json, this.algorithms, { strict: false, previous });
        // An empty (or all-unusable) set is far more likely a publishing
        // glitch than a deliberate revocation of every key: keep the last
        // good keys and report the failure.
        if (keys.size === 0) throw new JwksLoadError('', `JWKS has no key usable with ${this.algorithms.join(', ')}`);
        this.keys = keys;
        this.body = outcome.body;
        this.etag = outcome.etag;
        result = 'success';
        const removed = previous?.removedIn(keys);
        if (removed !== undefined && removed.size > 0 && this.onKeysRemoved !== undefined) {
          try {
            this.onKeysRemoved(this.issuerId, removed);
          } catch {
            // A cache hook must never break key loading.
          }
        }
      }
      this.lastSuccessAt = this.now();
      this.lastError = undefined;
    } catch (cause) {
      result = 'error';
      error = cause;
      this.lastError = cause;
    }
    // A closed source belongs to a replaced runtime: its late outcome is noise.
    if (this.onRefresh !== undefined && !this.closed) {
      try {
        this.onRefresh(this.issuerId, result, error);
      } catch {
        // A metrics hook must never break authentication.
      }
    }
  }

  async prefetch(): Promise<boolean> {
    if (this.closed) return this.keys !== undefined;
    await this.refresh();
    return this.keys !== undefined;
  }

  ready(): boolean {
    if (this.keys !== undefined) return true;
    // Not loaded yet: let readiness probes drive recovery (rate-limited).
    if (this.inflight === undefined && this.mayFetch(this.now())) void this.refresh();
    return false;
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.abort.abort();
  }
}

/**
 * A key source for `discovery: true`: the discovered `jwks_uri` served by a
 * {@link RemoteKeySource} (same cache, cooldown and kid refetch). Until the
 * document is discovered every key lookup is `jwks_unavailable`.
 */
class DiscoveryKeySource implements KeySource {
  readonly issuerId: string;
  private inner: RemoteKeySource | undefined;
  private readonly issuer: IssuerConfig;
  private readonly discovery: Discovery;
  private readonly options: KeySourceOptions;

  constructor(issuer: IssuerConfig, discovery: Discovery, options: KeySourceOptions) {
    this.issuerId = issuer.id;
    this.issuer = issuer;
    this.discovery = discovery;
    this.options = options;
  }

  private remote(): RemoteKeySource | undefined {
    if (this.inner !== undefined) return this.inner;
    const metadata = this.discovery.current();
    if (metadata === undefined) return undefined;
    this.inner = new RemoteKeySource(this.issuer, metadata.jwks_uri, this.options);
    return this.inner;
  }

  getKey(alg: string, kid: string | undefined): VerifyKey | Promise<VerifyKey> {
    const inner = this.remote();
    if (inner !== undefined) return inner.getKey(alg, kid);
    return this.discovery.get().then(
      () => this.remote()!.getKey(alg, kid),
      (cause: unknown) => {
        throw new AuthnError('jwks_unavailable', "the issuer's discovery document could not be loaded", { cause, detail: `issuer=${this.issuerId}` });
      },
    );
  }

  async prefetch(): Promise<boolean> {
    try {
      await this.discovery.get();
    } catch {
      return false;
    }
    return this.remote()!.prefetch();
  }

  ready(): boolean {
    const inner = this.remote();
    if (inner !== undefined) return inner.ready();
    this.discovery.ready();
    return false;
  }

  close(): void {
    this.discovery.close();
    this.inner?.close();
  }
}

/**
 * The key source for an issuer: `jwks_file` (loaded now; invalid → `ConfigError`
 * naming the file), `jwks_url` or `discovery` (loaded on `prefetch()` or first use).
 */
export function createKeySource(issuer: IssuerConfig, options: KeySourceOptions = {}): KeySource {
  const sources = [issuer.jwks_file, issuer.jwks_url, issuer.discovery].filter((s) => s !== undefined).length;
  if (sources !== 1) throw new TypeError(`issuer ${issuer.id}: exactly one of jwks_url / jwks_file / discovery must be set`);
  if (issuer.jwks_file !== undefined) return new FileKeySource(issuer, issuer.jwks_file);
  if (issuer.jwks_url !== undefined) return new RemoteKeySource(issuer, issuer.jwks_url, options);
  if (options.discovery === undefined) throw new TypeError(`issuer ${issuer.id}: discovery: true needs its Discovery`);
  return new DiscoveryKeySource(issuer, options.discovery, options);
}
