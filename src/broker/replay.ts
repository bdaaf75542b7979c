/**
 * Single-use `jti`s (client assertions, RFC 7523 §3; subject tokens with
 * `broker.single_use_subject_tokens`): each is remembered until its token
 * expires. Bounded: when full of unexpired entries a new one is refused
 * (fail closed) rather than an old one forgotten, which would let that token
 * be replayed. Per process.
 */

export type ReplayResult = 'fresh' | 'replayed' | 'full';

export class ReplayStore {
  readonly #max: number;
  readonly #now: () => number;
  /** key → exp (seconds); insertion order ≈ arrival order. */
  readonly #seen = new Map<string, number>();
  /** Entries dropped because they had expired (sweeps). */
  expired = 0;

  constructor(options: { readonly maxEntries: number; readonly now: () => number }) {
    this.#max = options.maxEntries;
    this.#now = options.now;
  }

  get size(): number {
    return this.#seen.size;
  }

  /** Record `key` (issuer + jti) used until `exp` (seconds since the epoch). */
  use(key: string, exp: number): ReplayResult {
    const now = this.#now();
    const prev = this.#seen.get(key);
    if (prev !== undefined && prev > now) return 'replayed';
    if (prev !== undefined) this.#seen.delete(key);
    if (this.#seen.size >= this.#max) {
      this.#sweep(now);
      if (this.#seen.size >= this.#max) return 'full';
    }
    this.#seen.set(key, exp);
    return 'fresh';
  }

  #sweep(now: number): void {
    for (const [key, exp] of this.#seen) {
      if (exp <= now) {
        this.#seen.delete(key);
        this.expired++;
      }
    }
  }
}
