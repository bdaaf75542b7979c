/**
 * OIDC discovery for `issuers[].discovery: true` (OpenID Connect Discovery 1.0
 * §4, RFC 8414 §3): GET `<issuer>/.well-known/openid-configuration` (a trailing
 * slash of the issuer is not doubled), then
 *
 * - the document's `issuer` must equal the configured issuer EXACTLY (§4.3:
 *   otherwise a document served for one issuer could vouch keys for another);
 * - `jwks_uri` is required: https, or http on a loopback host, no credentials;
 * - `introspection_endpoint` (RFC 8414 §2), when present, obeys the same rule.
 *
 * The document is fetched once per runtime (a reload discovers again). Until a
 * fetch succeeds, {@link Discovery.get} rejects; failures are retried with
 * exponential backoff (1 s, 2 s, 4 s … up to `jwks.cooldown_s`, at least 1 s),
 * by a timer and by requests / readiness probes, one fetch at a time.
 */
import type { IssuerConfig } from '../config/types.ts';
import { fetchText, isSecureOrLoopback } from './fetch-json.ts';

/** What regate takes from a discovery document. */
export interface DiscoveredMetadata {
  readonly issuer: string;
  readonly jwks_uri: string;
  readonly introspection_endpoint?: string;
}

export type DiscoveryResult = 'success' | 'error';

export interface DiscoveryOptions {
  /** Overrides `jwks.timeout_ms`. */
  readonly timeoutMs?: number;
  /** Response size cap. Default 256 KiB. */
  readonly maxBytes?: number;
  readonly monotonicMs?: () => number;
  /** After every fetch attempt. Must not throw (errors are swallowed). */
  readonly onResult?: (issuerId: string, result: DiscoveryResult, error?: unknown) => void;
}

/** The discovery document could not be fetched or used (kept as `cause`). */
export class DiscoveryError extends Error {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'DiscoveryError';
  }
}

const DEFAULT_MAX_BYTES = 256 * 1024;
const FIRST_RETRY_MS = 1000;

/** `<issuer>/.well-known/openid-configuration` (OIDC Discovery 1.0 §4: remove a trailing `/` first). */
export function discoveryUrl(issuer: string): string {
  return `${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;
}

function endpoint(doc: Record<string, unknown>, name: string, required: boolean): string | undefined {
  const value = doc[name];
  if (value === undefined && !required) return undefined;
  if (typeof value !== 'string' || value === '') throw new DiscoveryError(`discovery document has no "${name}" string`);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new DiscoveryError(`discovery document "${name}" is not a URL`);
  }
  if (!isSecureOrLoopback(url)) throw new DiscoveryError(`discovery document "${name}" must be https:// (http:// only on a loopback host)`);
  if (url.username || url.password) throw new DiscoveryError(`discovery document "${name}" must not contain credentials`);
  if (url.hash) throw new DiscoveryError(`discovery document "${name}" must not have a fragment`);
  return url.href;
}

/** Validate a parsed discovery document for `issuer`. Exported for tests. */
export function parseDiscovery(json: unknown, issuer: string): DiscoveredMetadata {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new DiscoveryError('discovery document is not a JSON object');
  const doc = json as Record<string, unknown>;
  if (doc.issuer !== issuer) {
    throw new DiscoveryError(`discovery document names issuer ${JSON.stringify(doc.issuer)}, not the configured ${JSON.stringify(issuer)} (they must be equal exactly)`);
  }
  const jwksUri = endpoint(doc, 'jwks_uri', true)!;
  const introspection = endpoint(doc, 'introspection_endpoint', false);
  return Object.freeze({ issuer, jwks_uri: jwksUri, ...(introspection !== undefined ? { introspection_endpoint: introspection } : {}) });
}

/** One issuer's discovery document: fetched once, shared by its key source and its introspector. */
export class Discovery {
  readonly issuerId: string;
  readonly url: string;
  private readonly issuer: string;
  private readonly timeoutMs: number;
  private readonly maxBytes: number;
  private readonly maxBackoffMs: number;
  private readonly now: () => number;
  private readonly onResult: DiscoveryOptions['onResult'];
  private readonly abort = new AbortController();
  private metadata: DiscoveredMetadata | undefined;
  private inflight: Promise<DiscoveredMetadata> | undefined;
  private failures = 0;
  private lastAttemptAt = Number.NEGATIVE_INFINITY;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  /** Last failure (diagnostics; the `cause` of refusals). */
  lastError: unknown;

  constructor(issuer: IssuerConfig, options: DiscoveryOptions = {}) {
    this.issuerId = issuer.id;
    this.issuer = issuer.issuer;
    this.url = discoveryUrl(issuer.issuer);
    this.timeoutMs = options.timeoutMs ?? issuer.jwks.timeout_ms;
    this.maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
    this.maxBackoffMs = Math.max(issuer.jwks.cooldown_s * 1000, FIRST_RETRY_MS);
    this.now = options.monotonicMs ?? (() => performance.now());
    this.onResult = options.onResult;
  }

  /** The document, once discovered. */
  current(): DiscoveredMetadata | undefined {
    return this.metadata;
  }

  /** The backoff after `failures` failed attempts. */
  private backoffMs(): number {
    return Math.min(FIRST_RETRY_MS * 2 ** Math.max(this.failures - 1, 0), this.maxBackoffMs);
  }

  /**
   * The document: at once when discovered; else the fetch in flight, a new one
   * if the backoff allows, or a rejection with the last error (rate-limited).
   */
  get(): Promise<DiscoveredMetadata> {
    if (this.metadata !== undefined) return Promise.resolve(this.metadata);
    if (this.inflight !== undefined) return this.inflight;
    if (this.closed || this.now() - this.lastAttemptAt < this.backoffMs()) {
      return Promise.reject(new DiscoveryError(`discovery at ${this.url} failed; retrying with backoff`, { cause: this.lastError }));
    }
    return this.start();
  }

  /** True once discovered; otherwise kicks a (backoff-limited) retry. */
  ready(): boolean {
    if (this.metadata !== undefined) return true;
    this.get().catch(() => {});
    return false;
  }

  private start(): Promise<DiscoveredMetadata> {
    this.lastAttemptAt = this.now();
    clearTimeout(this.timer);
    const pending = this.fetchOnce().finally(() => {
      if (this.inflight === pending) this.inflight = undefined;
    });
    this.inflight = pending;
    return pending;
  }

  private async fetchOnce(): Promise<DiscoveredMetadata> {
    try {
      const res = await fetchText(this.url, {
        method: 'GET',
        headers: { accept: 'application/json' },
        timeoutMs: this.timeoutMs,
        maxBytes: this.maxBytes,
        signal: this.abort.signal,
      });
      if (res.status !== 200) throw new DiscoveryError(`expected 200 from ${this.url}, got ${res.status}`);
      let json: unknown;
      try {
        json = JSON.parse(res.text);
      } catch (cause) {
        throw new DiscoveryError('discovery document is not JSON', { cause });
      }
      const metadata = parseDiscovery(json, this.issuer);
      this.metadata = metadata;
      this.lastError = undefined;
      this.failures = 0;
      this.report('success');
      return metadata;
    } catch (cause) {
      const error = cause instanceof DiscoveryError ? cause : new DiscoveryError(`discovery at ${this.url} failed: ${(cause as Error)?.message ?? String(cause)}`, { cause });
      this.lastError = error;
      this.failures++;
      this.report('error', error);
      this.scheduleRetry();
      throw error;
    }
  }

  private scheduleRetry(): void {
    if (this.closed) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.metadata === undefined && this.inflight === undefined) this.start().catch(() => {});
    }, this.backoffMs());
    this.timer.unref();
  }

  private report(result: DiscoveryResult, error?: unknown): void {
    if (this.onResult === undefined || this.closed) return;
    try {
      this.onResult(this.issuerId, result, error);
    } catch {
      // A metrics hook must never break authentication.
    }
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.abort.abort();
  }
}
