/**
 * Resource attributes from an HTTP catalog (`routes[].resource` → `input.resource`).
 *
 * One {@link ResourceCatalog} per runtime holds everything shared by the
 * routes that look resources up: one undici `Pool` per catalog origin, one
 * bounded LRU cache and one table of in-flight lookups. Each route compiles
 * its {@link ResourceSource} once at startup (URL template, headers, limits).
 *
 * Per lookup:
 *
 * 1. fill the URL template with the route's path params (see template.ts);
 * 2. a fresh cache entry answers at once (`hit`); a remembered 404 fails at once;
 * 3. a lookup of the same URL already in flight is joined (`coalesced`):
 *    N concurrent requests for one resource cost the catalog one request
 *    (single flight, as jose collapses concurrent JWKS reloads);
 * 4. otherwise GET it (`miss`): 200 with a JSON object is cached for `ttl_s`.
 *
 * Every failure is an {@link AttributeSourceError} and denies the request
 * (fail closed); failures are never cached as successes. A 404 is remembered
 * for {@link NOT_FOUND_TTL_MS} at most (never longer than `ttl_s`), so a
 * client repeating a request for a missing resource does not turn into a
 * catalog request each time, while a resource created a moment later becomes
 * usable within seconds. Timeouts, 5xx and connection errors are not
 * remembered: the next request tries again (still one at a time per URL).
 *
 * The cache key is the filled URL plus the route's static catalog headers
 * (two routes asking the same URL with different credentials may get
 * different answers). A joined lookup runs under the timeout of the request
 * that started it.
 */

import { performance } from 'node:perf_hooks';
import { Pool } from '../upstream/undici.ts';
import { deepFreeze } from '../authn/claims.ts';
import type { ResourceSourceConfig } from '../config/types.ts';
import { AttributeSourceError, type ResourceReason } from '../errors.ts';
import { parseJsonDocument } from '../input/json.ts';
import { VERSION } from '../version.ts';
import { compileUrlTemplate, type UrlTemplate } from './template.ts';

/** How a lookup was answered: from the cache, by joining one in flight, or by a catalog request. */
export type LookupSource = 'hit' | 'coalesced' | 'miss';

/** How a lookup ended: `regate_attribute_lookups_total{result}` (see ATTRIBUTE_LOOKUP_RESULTS in metrics.ts). */
export type LookupResult = LookupSource | ResourceReason;

/** Default bound of the shared cache (entries, all routes together). */
export const DEFAULT_MAX_ENTRIES = 10_000;
/** Longest a 404 is remembered. */
export const NOT_FOUND_TTL_MS = 5_000;

/** A successful lookup. */
export interface ResourceLookup {
  /** The catalog's JSON object, deep-frozen (shared by every request served from the cache). */
  readonly attributes: Readonly<Record<string, unknown>>;
  readonly source: LookupSource;
}

/** One route's compiled view of the catalog. */
export interface ResourceSource {
  readonly routeId: string;
  readonly template: UrlTemplate;
  /**
   * Look up the resource these route params name.
   * @throws (rejects) AttributeSourceError: the request must be denied.
   */
  lookup(params: Readonly<Record<string, string>>): Promise<ResourceLookup>;
}

/** Hooks for metrics; called synchronously, must not throw. */
export interface CatalogObserver {
  /** One lookup finished, however it was answered. */
  lookup(routeId: string, result: LookupResult): void;
  /** One catalog request finished (success or not): its duration. */
  fetched(routeId: string, seconds: number): void;
}

/** Options of {@link createResourceCatalog}. */
export interface CatalogOptions {
  /** Monotonic milliseconds for cache expiry. Default `performance.now` (tests inject a fake). */
  readonly monotonicMs?: () => number;
  /** Cache bound, entries. Default {@link DEFAULT_MAX_ENTRIES}. */
  readonly maxEntries?: number;
  /** Max connections per catalog origin. Default 32. */
  readonly connections?: number;
  readonly observer?: CatalogObserver;
}

/** The catalog client of one runtime. */
export interface ResourceCatalog {
  /**
   * Compile a route's source (startup). `pathParams` are the route's path
   * parameter names; the config loader has validated the template against them.
   */
  source(routeId: string, config: ResourceSourceConfig, pathParams: readonly string[]): ResourceSource;
  /** Entries in the cache now (tests, diagnostics). */
  readonly size: number;
  /** Close every pool once in-flight lookups finish. */
  close(): Promise<void>;
}

interface CacheEntry {
  /** Attributes, or the remembered 404. */
  readonly value: Readonly<Record<string, unknown>> | null;
  readonly expiresAt: number;
}

const noopObserver: CatalogObserver = { lookup() {}, fetched() {} };

/** Create the catalog client (one per runtime: a reload starts with an empty cache). */
export function createResourceCatalog(options: CatalogOptions = {}): ResourceCatalog {
  const now = options.monotonicMs ?? (() => performance.now());
  const maxEntries = options.maxEntries ?? DEFAULT_MAX_ENTRIES;
  if (!Number.isInteger(maxEntries) || maxEntries < 1) throw new TypeError('maxEntries must be a positive integer');
  const observer = options.observer ?? noopObserver;
  const pools = new Map<string, Pool>();
  // Map iteration order is insertion order: re-inserting on a hit makes it an LRU.
  const cache = new Map<string, CacheEntry>();
  const inFlight = new Map<string, Promise<Readonly<Record<string, unknown>>>>();

  const remember = (key: string, entry: CacheEntry): void => {
    cache.delete(key);
    cache.set(key, entry);
    if (cache.size > maxEntries) cache.delete(cache.keys().next().value as string);
  };

  const poolFor = (origin: string): Pool => {
    let pool = pools.get(origin);
    if (!pool) {
      pool = new Pool(origin, {
        connections: options.connections ?? 32,
        keepAliveTimeout: 4_000,
        keepAliveMaxTimeout: 4_000,
        pipelining: 1,
        allowH2: false,
      });
      pools.set(origin, pool);
    }
    return pool;
  };

  return {
    source(routeId, config, pathParams) {
      const template = compileUrlTemplate(config.url, pathParams);
      const pool = poolFor(template.origin);
      const headers: Record<string, string> = { ...config.headers, 'user-agent': `regate/${VERSION}`, accept: 'application/json' };
      const headerNames = Object.keys(config.headers).sort();
      // Static headers are part of the key: other credentials may see another answer.
      const keyPrefix = headerNames.length === 0 ? '' : `${JSON.stringify(headerNames.map((n) => [n, config.headers[n]]))}\n`;
      const ttlMs = config.ttl_s * 1000;
      const notFoundTtlMs = Math.min(NOT_FOUND_TTL_MS, ttlMs);
      const fetchOptions: FetchOptions = { pool, headers, timeoutMs: config.timeout_ms, maxBytes: config.max_bytes };

      const start = (key: string, path: string): Promise<Readonly<Record<string, unknown>>> => {
        const started = now();
        const flight = fetchResource(path, fetchOptions).then(
          (attributes) => {
            observer.fetched(routeId, (now() - started) / 1000);
            if (ttlMs > 0) remember(key, { value: attributes, expiresAt: now() + ttlMs });
            return attributes;
          },
          (err: unknown) => {
            observer.fetched(routeId, (now() - started) / 1000);
            if (notFoundTtlMs > 0 && err instanceof AttributeSourceError && err.reason === 'resource_not_found') {
              remember(key, { value: null, expiresAt: now() + notFoundTtlMs });
            }
            throw err;
          },
        );
        inFlight.set(key, flight);
        // Removed once settled, whatever the outcome: the next lookup after a failure tries again.
        const clear = (): void => {
          if (inFlight.get(key) === flight) inFlight.delete(key);
        };
        flight.then(clear, clear);
        return flight;
      };

      return Object.freeze({
        routeId,
        template,
        async lookup(params: Readonly<Record<string, string>>): Promise<ResourceLookup> {
          const path = template.fill(params);
          const key = keyPrefix + template.origin + path;
          let source: LookupSource;
          let flight: Promise<Readonly<Record<string, unknown>>>;
          const entry = cache.get(key);
          if (entry !== undefined && entry.expiresAt > now()) {
            remember(key, entry);
            if (entry.value === null) {
              observer.lookup(routeId, 'resource_not_found');
              throw notFound(template.origin + path);
            }
            observer.lookup(routeId, 'hit');
            return { attributes: entry.value, source: 'hit' };
          }
          if (entry !== undefined) cache.delete(key);
          const joined = inFlight.get(key);
          if (joined !== undefined) {
            source = 'coalesced';
            flight = joined;
          } else {
            source = 'miss';
            flight = start(key, path);
          }
          try {
            const attributes = await flight;
            observer.lookup(routeId, source);
            return { attributes, source };
          } catch (err) {
            observer.lookup(routeId, err instanceof AttributeSourceError ? (err.reason as ResourceReason) : 'resource_unavailable');
            throw err;
          }
        },
      });
    },
    get size() {
      return cache.size;
    },
    async close() {
      await Promise.allSettled([...pools.values()].map((p) => p.close()));
    },
  };
}

interface FetchOptions {
  readonly pool: Pool;
  readonly headers: Readonly<Record<string, string>>;
  readonly timeoutMs: number;
  readonly maxBytes: number;
}

function notFound(url: string): AttributeSourceError {
  return new AttributeSourceError('resource_not_found', 'the resource is not in the catalog', { detail: url });
}

/**
 * One catalog request: GET, bounded in time (whole exchange) and size.
 * Resolves with the deep-frozen JSON object; rejects only with AttributeSourceError.
 */
async function fetchResource(path: string, o: FetchOptions): Promise<Readonly<Record<string, unknown>>> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), o.timeoutMs);
  try {
    const res = await o.pool.request({ method: 'GET', path, headers: o.headers, signal: controller.signal });
    if (res.statusCode !== 200) {
      // Drain (bounded) so the connection can be reused; the body does not matter.
      res.body.dump({ limit: 4096 }).catch(() => {});
      if (res.statusCode === 404) throw notFound(path);
      throw new AttributeSourceError('resource_unavailable', 'the resource catalog did not answer 200', { detail: `status ${res.statusCode}` });
    }
    const declared = Number(res.headers['content-length']);
    if (Number.isFinite(declared) && declared > o.maxBytes) {
      discard(res.body);
      throw tooLarge(o.maxBytes);
    }
    const chunks: Buffer[] = [];
    let total = 0;
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      total += chunk.length;
      if (total > o.maxBytes) {
        discard(res.body);
        throw tooLarge(o.maxBytes);
      }
      chunks.push(chunk);
    }
    return parseAttributes(Buffer.concat(chunks, total));
  } catch (err) {
    if (err instanceof AttributeSourceError) throw err;
    if (controller.signal.aborted) {
      throw new AttributeSourceError('resource_timeout', `the resource catalog did not answer within ${o.timeoutMs} ms`, { cause: err });
    }
    const code = (err as { code?: unknown } | null)?.code;
    throw new AttributeSourceError('resource_unavailable', 'the resource catalog could not be reached', {
      cause: err,
      detail: typeof code === 'string' ? code : undefined,
    });
  } finally {
    clearTimeout(timer);
  }
}

/** Stop reading a response body. undici errors a destroyed body: that error is expected, not unhandled. */
function discard(body: { on(event: 'error', fn: () => void): unknown; destroy(): unknown }): void {
  body.on('error', () => {});
  body.destroy();
}

function tooLarge(maxBytes: number): AttributeSourceError {
  return new AttributeSourceError('resource_too_large', `the resource catalog answered more than ${maxBytes} bytes`);
}

/** The response body as a frozen JSON object, or `resource_invalid`. */
function parseAttributes(bytes: Buffer): Readonly<Record<string, unknown>> {
  let value: unknown;
  try {
    value = parseJsonDocument(bytes);
  } catch (cause) {
    throw new AttributeSourceError('resource_invalid', 'the resource catalog did not answer JSON', { cause });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new AttributeSourceError('resource_invalid', 'the resource catalog did not answer a JSON object');
  }
  return deepFreeze(value as Record<string, unknown>);
}
