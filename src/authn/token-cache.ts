/**
 * The verified-token cache: a bounded LRU of identities keyed by the exact
 * token string, plugged into the authenticator's {@link VerifiedTokenCache}
 * hook.
 *
 * Why: clients reuse one bearer token for many requests (until it nears
 * expiry), and verifying an ES256 signature costs ~100 µs of CPU — more than
 * everything else regate does per request. A hit costs two Map operations.
 *
 * Safety rules (each one tested):
 *
 * - Only successful verifications are stored: the authenticator calls `set`
 *   after jose verified signature and claims and the identity was mapped.
 *   Failures are never cached, neither as successes nor as failures (a
 *   negative cache would let an attacker pin a valid token's failure).
 * - An entry never outlives the token's `exp`: `get` compares `exp` with the
 *   clock on every hit, with no leeway, and drops an expired entry. jose's
 *   `clock_tolerance_s` therefore never applies to a cached hit: a token in its
 *   tolerance window is re-verified every time (a cache may only shorten a
 *   token's life). The authenticator re-checks `exp` itself as well.
 * - The key is the whole token string, so a hit means byte-for-byte the same
 *   signed token: no prefix, hash or claim-based key that could collide.
 * - Bounded: at most `maxEntries`; the least recently used entry is evicted.
 * - Each entry remembers the key that verified it. When a JWKS refresh drops
 *   keys (removed by the identity provider, or their material changed), the
 *   authenticator calls {@link TokenCache.evictKeys}: every entry verified by
 *   one of them goes at once, so a removed key stops vouching for cached tokens
 *   at the same moment it stops vouching for new ones. Keys are refreshed on a
 *   timer (src/authn/jwks.ts), so this happens within `cache_max_age_s` + one
 *   fetch of the removal even when every request hits the cache. A reload
 *   builds a new runtime and so starts with an empty cache.
 */
import type { VerifiedTokenCache } from './jwt.ts';
import type { Identity } from './types.ts';

/** Outcome of one cache lookup (metric label `result`). */
export type TokenCacheResult = 'hit' | 'miss';

/** Options of {@link TokenCache}. */
export interface TokenCacheOptions {
  /** Maximum number of cached identities; at least 1. */
  readonly maxEntries: number;
  /** Current time, seconds since the epoch (the authenticator's clock). Default `Date.now() / 1000`. */
  readonly now?: () => number;
  /** Hears every lookup (metrics). Must not throw. */
  readonly onLookup?: (result: TokenCacheResult) => void;
}

/** Bounded LRU of verified identities; see the module comment for the rules. */
export class TokenCache implements VerifiedTokenCache {
  readonly maxEntries: number;
  // A Map iterates in insertion order: re-inserting on a hit makes the first key the LRU one.
  readonly #entries = new Map<string, Entry>();
  readonly #now: () => number;
  readonly #onLookup: ((result: TokenCacheResult) => void) | undefined;
  #generation = 0;

  constructor(options: TokenCacheOptions) {
    if (!Number.isInteger(options.maxEntries) || options.maxEntries < 1) {
      throw new TypeError(`TokenCache: maxEntries must be a positive integer, got ${options.maxEntries}`);
    }
    this.maxEntries = options.maxEntries;
    this.#now = options.now ?? (() => Date.now() / 1000);
    this.#onLookup = options.onLookup;
  }

  /** Entries currently held (expired ones included until looked up or evicted). */
  get size(): number {
    return this.#entries.size;
  }

  /** The identity verified for exactly `token`, if cached and not expired by now. */
  get(token: string): Identity | undefined {
    const entries = this.#entries;
    const entry = entries.get(token);
    if (entry === undefined) {
      this.#onLookup?.('miss');
      return undefined;
    }
    entries.delete(token);
    if (!(entry.identity.exp > this.#now())) {
      this.#onLookup?.('miss');
      return undefined;
    }
    entries.set(token, entry);
    this.#onLookup?.('hit');
    return entry.identity;
  }

  /** Incremented by every {@link clear} and {@link evictKeys}. */
  get generation(): number {
    return this.#generation;
  }

  /**
   * Store a verified identity and the key that verified it. Ignored when it
   * has already expired, or when keys were evicted since `since` (the
   * generation read before the verification began: it may have used a key
   * that is gone now).
   */
  set(token: string, identity: Identity, since?: number, key?: object): void {
    if (since !== undefined && since !== this.#generation) return;
    if (!(identity.exp > this.#now())) return;
    const entries = this.#entries;
    entries.delete(token);
    entries.set(token, { identity, key });
    if (entries.size > this.maxEntries) {
      // Exactly one over the bound: evict the least recently used.
      const oldest = entries.keys().next();
      if (!oldest.done) entries.delete(oldest.value);
    }
  }

  /** Forget everything. */
  clear(): void {
    this.#generation++;
    this.#entries.clear();
  }

  /**
   * Forget every identity verified by one of `keys` (a JWKS refresh dropped
   * them); returns how many went. O(entries), on a key change only.
   */
  evictKeys(keys: ReadonlySet<object>): number {
    this.#generation++;
    let evicted = 0;
    for (const [token, entry] of this.#entries) {
      if (entry.key !== undefined && keys.has(entry.key)) {
        this.#entries.delete(token);
        evicted++;
      }
    }
    return evicted;
  }
}

/** One cached verification. */
interface Entry {
  readonly identity: Identity;
  /** The key that verified the token; undefined when the caller did not say (then no key eviction reaches it). */
  readonly key: object | undefined;
}
