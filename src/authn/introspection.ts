/**
 * RFC 7662 token introspection for `issuers[].introspection`: an opaque
 * bearer token → the authorization server's answer → a verified
 * {@link Identity}, like a JWT's claims.
 *
 * - Request (§2.1): POST `token=…&token_type_hint=access_token`, form-encoded,
 *   client authentication by HTTP Basic with a secret read from a file
 *   (RFC 6749 §2.3.1), or a `private_key_jwt` client assertion (RFC 7523 §2.2),
 *   or none (an endpoint protected by the network, e.g. Hydra's admin API).
 * - Response (§2.2): 200 JSON object; `active` must be `true`; `iss`, if
 *   present, must equal the issuer; `aud` must contain a configured audience;
 *   `exp` is required and `exp`/`nbf` are checked with `clock_tolerance_s`;
 *   `required_claims` must be present. The members become the identity's
 *   claims through the issuer's claim mapping (src/authn/claims.ts), except
 *   that scopes always come from the answer's `scope` (RFC 7662 §2.2).
 * - Fail closed: a timeout, a non-200 status, an oversized or non-JSON body →
 *   `introspection_unavailable` (401), never cached, never an allow.
 * - Cache: a bounded LRU keyed by SHA-256 of the token (the raw token is never
 *   a map key, never logged). An active token is kept until min(its `exp`,
 *   now + `max_ttl_s`): a revocation at the server is seen at most `max_ttl_s`
 *   later. An inactive or refused token is remembered `negative_ttl_s`.
 *   Concurrent requests with the same token share one call (single flight).
 */
import { createHash, createPrivateKey, randomUUID, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { SignJWT } from 'jose';
import type { IssuerConfig } from '../config/types.ts';
import { AuthnError, ConfigError } from '../errors.ts';
import { jsonDepthExceeds, MAX_JSON_DEPTH } from '../input/json.ts';
import { compileClaimMapping, mapIdentity, type CompiledClaimMapping } from './claims.ts';
import type { Discovery } from './discovery.ts';
import { fetchText, isSecureOrLoopback } from './fetch-json.ts';
import type { Identity } from './types.ts';

/** `regate_introspection_requests_total{result}`: active, inactive (active false), refused (active but its claims are not accepted), error. */
export const INTROSPECTION_RESULTS = ['active', 'inactive', 'refused', 'error'] as const;
export type IntrospectionResult = (typeof INTROSPECTION_RESULTS)[number];

/** `regate_introspection_cache_hits_total{kind}`. */
export const INTROSPECTION_CACHE_KINDS = ['positive', 'negative'] as const;
export type IntrospectionCacheKind = (typeof INTROSPECTION_CACHE_KINDS)[number];

export interface IntrospectorOptions {
  /** Wall-clock seconds (the runtime's clock): exp/nbf and cache lifetimes. */
  readonly now?: () => number;
  /** Config file, for `ConfigError`s. */
  readonly source?: string;
  /** Position of the issuer in `issuers[]`, for `ConfigError` key paths. */
  readonly index?: number;
  /** The issuer's discovery, for a missing `url`. */
  readonly discovery?: Discovery;
  /** Overrides `introspection.timeout_ms` (tests). */
  readonly timeoutMs?: number;
  /** Response size cap. Default 64 KiB. */
  readonly maxBytes?: number;
  /** After every introspection call (not cache hits). Must not throw. `error` for `'error'`: never holds the token. */
  readonly onRequest?: (issuerId: string, result: IntrospectionResult, error?: unknown) => void;
  /** A cache hit. Must not throw. */
  readonly onCacheHit?: (issuerId: string, kind: IntrospectionCacheKind) => void;
}

type Credential =
  | { readonly kind: 'none'; readonly clientId: string | undefined }
  | { readonly kind: 'basic'; readonly header: string }
  | { readonly kind: 'private_key_jwt'; readonly clientId: string; readonly key: KeyObject; readonly alg: string; readonly kid: string | undefined };

type Entry = { readonly until: number; readonly identity: Identity } | { readonly until: number; readonly error: AuthnError };

const DEFAULT_MAX_BYTES = 64 * 1024;
const ASSERTION_TTL_S = 60;

function readConfigFile(file: string, source: string, keyPath: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (cause) {
    throw new ConfigError(source, keyPath, `cannot read the ${what} file ${file}: ${(cause as Error).message}`, { cause });
  }
}

/** Form-encode per RFC 6749 Appendix B (client id and secret in Basic, too). */
function formEncode(value: string): string {
  return encodeURIComponent(value).replace(/%20/g, '+');
}

function loadCredential(issuer: IssuerConfig, source: string, at: string): Credential {
  const config = issuer.introspection!;
  if (config.client_secret_file !== undefined) {
    const secret = readConfigFile(config.client_secret_file, source, `${at}/client_secret_file`, 'client secret').trim();
    if (secret === '') throw new ConfigError(source, `${at}/client_secret_file`, `the client secret file ${config.client_secret_file} is empty`);
    const id = config.client_id!;
    return { kind: 'basic', header: `Basic ${Buffer.from(`${formEncode(id)}:${formEncode(secret)}`).toString('base64')}` };
  }
  const pkj = config.private_key_jwt;
  if (pkj !== undefined) {
    const text = readConfigFile(pkj.key_file, source, `${at}/private_key_jwt/key_file`, 'private key');
    let key: KeyObject;
    try {
      key = text.trimStart().startsWith('{') ? createPrivateKey({ key: JSON.parse(text), format: 'jwk' }) : createPrivateKey(text);
    } catch (cause) {
      throw new ConfigError(source, `${at}/private_key_jwt/key_file`, `${pkj.key_file} is not a private key (PKCS#8 PEM or private JWK): ${(cause as Error).message}`, { cause });
    }
    return { kind: 'private_key_jwt', clientId: config.client_id!, key, alg: pkj.alg, kid: pkj.kid };
  }
  return { kind: 'none', clientId: config.client_id };
}

function refuse(reason: 'invalid_issuer' | 'invalid_audience' | 'missing_claim' | 'token_expired' | 'token_not_yet_valid' | 'invalid_claim', message: string, detail: string): AuthnError {
  return new AuthnError(reason, message, { detail });
}

/** One issuer's introspection client and cache. */
export class Introspector {
  readonly issuerId: string;
  private readonly issuer: IssuerConfig;
  private readonly credential: Credential;
  private readonly mapping: CompiledClaimMapping;
  private readonly now: () => number;
  private readonly timeoutMs: number;
  private readonly maxBytes: number;
  private readonly discovery: Discovery | undefined;
  private readonly options: IntrospectorOptions;
  private readonly cache = new Map<string, Entry>();
  private readonly inflight = new Map<string, Promise<Identity>>();
  private readonly abort = new AbortController();

  constructor(issuer: IssuerConfig, options: IntrospectorOptions = {}) {
    const config = issuer.introspection;
    if (config === undefined) throw new TypeError(`issuer ${issuer.id} has no introspection`);
    const source = options.source ?? '<config>';
    const at = `/issuers/${options.index ?? 0}/introspection`;
    if (config.url === undefined && options.discovery === undefined) throw new ConfigError(source, `${at}/url`, 'missing required key "url" (no discovery to take introspection_endpoint from)');
    this.issuerId = issuer.id;
    this.issuer = issuer;
    this.credential = loadCredential(issuer, source, at);
    // RFC 7662 §2.2 defines `scope` (space-separated) for every answer: scopes come from it
    // whatever `claims.scopes` says for this issuer's JWTs (Hydra's use `scp`); the other paths apply.
    this.mapping = compileClaimMapping({ ...issuer.claims, scopes: 'scope' });
    this.now = options.now ?? (() => Date.now() / 1000);
    this.timeoutMs = options.timeoutMs ?? config.timeout_ms;
    this.maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
    this.discovery = options.discovery;
    this.options = options;
  }

  /** Cached results (tests, diagnostics). */
  get size(): number {
    return this.cache.size;
  }

  /** The identity for an opaque token. Rejects only with `AuthnError`. */
  introspect(token: string): Promise<Identity> {
    const key = createHash('sha256').update(token).digest('base64url');
    const now = this.now();
    const hit = this.cache.get(key);
    if (hit !== undefined) {
      if (hit.until > now && ('error' in hit || hit.identity.exp > now)) {
        // LRU: a hit moves to the young end.
        this.cache.delete(key);
        this.cache.set(key, hit);
        this.hook(() => this.options.onCacheHit?.(this.issuerId, 'error' in hit ? 'negative' : 'positive'));
        return 'error' in hit ? Promise.reject(hit.error) : Promise.resolve(hit.identity);
      }
      this.cache.delete(key);
    }
    const pending = this.inflight.get(key);
    if (pending !== undefined) return pending;
    const call = this.call(token, key).finally(() => this.inflight.delete(key));
    this.inflight.set(key, call);
    return call;
  }

  private async call(token: string, key: string): Promise<Identity> {
    let answer: Record<string, unknown>;
    try {
      answer = await this.ask(token);
    } catch (cause) {
      this.report('error', cause);
      throw new AuthnError('introspection_unavailable', 'the token could not be introspected', { cause, detail: `issuer=${this.issuerId}` });
    }
    const now = this.now();
    let identity: Identity;
    try {
      identity = this.verify(answer, now);
    } catch (err) {
      const error = err instanceof AuthnError ? err : new AuthnError('invalid_claim', 'the introspection answer cannot be used', { cause: err });
      this.report(error.reason === 'token_inactive' ? 'inactive' : 'refused');
      this.remember(key, { until: now + this.issuer.introspection!.cache.negative_ttl_s, error });
      throw error;
    }
    this.report('active');
    this.remember(key, { until: Math.min(identity.exp, now + this.issuer.introspection!.cache.max_ttl_s), identity });
    return identity;
  }

  private remember(key: string, entry: Entry): void {
    const max = this.issuer.introspection!.cache.max_entries;
    if (max === 0 || entry.until <= this.now()) return;
    this.cache.delete(key);
    this.cache.set(key, entry);
    while (this.cache.size > max) this.cache.delete(this.cache.keys().next().value!);
  }

  private async endpoint(): Promise<string> {
    const url = this.issuer.introspection!.url;
    if (url !== undefined) return url;
    const metadata = await this.discovery!.get();
    if (metadata.introspection_endpoint === undefined) throw new Error('the discovery document has no introspection_endpoint');
    return metadata.introspection_endpoint;
  }

  private async ask(token: string): Promise<Record<string, unknown>> {
    const url = await this.endpoint();
    if (!isSecureOrLoopback(new URL(url))) throw new Error('the introspection endpoint is not https:// (or loopback http://)');
    const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
    let body = `token=${formEncode(token)}&token_type_hint=access_token`;
    const credential = this.credential;
    if (credential.kind === 'basic') headers.authorization = credential.header;
    else if (credential.kind === 'private_key_jwt') {
      const now = Math.floor(this.now());
      const assertion = await new SignJWT({})
        .setProtectedHeader({ alg: credential.alg, typ: 'JWT', ...(credential.kid !== undefined ? { kid: credential.kid } : {}) })
        .setIssuer(credential.clientId)
        .setSubject(credential.clientId)
        .setAudience(url)
        .setJti(randomUUID())
        .setIssuedAt(now)
        .setExpirationTime(now + ASSERTION_TTL_S)
        .sign(credential.key);
      body += `&client_id=${formEncode(credential.clientId)}&client_assertion_type=${formEncode('urn:ietf:params:oauth:client-assertion-type:jwt-bearer')}&client_assertion=${assertion}`;
    } else if (credential.clientId !== undefined) body += `&client_id=${formEncode(credential.clientId)}`;
    const res = await fetchText(url, { method: 'POST', headers, body, timeoutMs: this.timeoutMs, maxBytes: this.maxBytes, signal: this.abort.signal });
    if (res.status !== 200) throw new Error(`expected 200 from the introspection endpoint, got ${res.status}`);
    if (jsonDepthExceeds(res.text, MAX_JSON_DEPTH)) throw new Error(`introspection answer nests deeper than ${MAX_JSON_DEPTH} levels`);
    let json: unknown;
    try {
      json = JSON.parse(res.text);
    } catch (cause) {
      throw new Error('the introspection answer is not JSON', { cause });
    }
    if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error('the introspection answer is not a JSON object');
    return json as Record<string, unknown>;
  }

  /** RFC 7662 §2.2 answer → identity, or the `AuthnError` that refuses it. */
  private verify(answer: Record<string, unknown>, now: number): Identity {
    if (answer.active !== true) throw new AuthnError('token_inactive', 'the authorization server says the token is not active', { detail: `issuer=${this.issuerId}` });
    const issuer = this.issuer;
    const tolerance = issuer.clock_tolerance_s;
    if (answer.iss !== undefined && answer.iss !== issuer.issuer) throw refuse('invalid_issuer', 'token issuer is not accepted', 'claim=iss');
    const aud = answer.aud;
    const auds = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud : [];
    if (!auds.some((a) => typeof a === 'string' && issuer.audiences.includes(a))) throw refuse('invalid_audience', 'token audience is not accepted', 'claim=aud');
    const exp = answer.exp;
    if (exp === undefined) throw refuse('missing_claim', 'the introspection answer has no "exp"', 'claim=exp');
    if (typeof exp !== 'number' || !Number.isFinite(exp)) throw refuse('invalid_claim', 'claim "exp" must be a number', 'claim=exp');
    if (exp + tolerance <= now) throw refuse('token_expired', 'token has expired', 'claim=exp');
    const nbf = answer.nbf;
    if (nbf !== undefined && (typeof nbf !== 'number' || nbf > now + tolerance)) {
      throw typeof nbf === 'number' ? refuse('token_not_yet_valid', 'token is not valid yet', 'claim=nbf') : refuse('invalid_claim', 'claim "nbf" must be a number', 'claim=nbf');
    }
    for (const claim of issuer.required_claims) {
      if (answer[claim] === undefined) throw refuse('missing_claim', `token lacks required claim "${claim}"`, `claim=${claim}`);
    }
    return mapIdentity({ ...answer }, issuer, this.mapping);
  }

  private report(result: IntrospectionResult, error?: unknown): void {
    this.hook(() => this.options.onRequest?.(this.issuerId, result, error));
  }

  private hook(fn: () => void): void {
    try {
      fn();
    } catch {
      // A metrics hook must never break authentication.
    }
  }

  /** Abort calls in flight; cached results stay usable by requests already running. */
  close(): void {
    this.abort.abort();
  }
}
