/**
 * In-flight requests, counted per runtime version.
 *
 * A reload swaps the server's runtime atomically, but requests that started on
 * the old one finish on it (handle() reads the runtime once). Its resources
 * (upstream pools, decision log, JWKS timers) may only be closed once the last
 * of those requests ended: {@link InFlight.drained} says exactly when, so
 * nothing is closed early (a cut stream) or late (a leak) — no grace-period
 * guess. A long-lived stream keeps its runtime alive for as long as it lasts.
 */

/** Reference counts of requests per key (a runtime), plus the total. */
export class InFlight<K extends object> {
  readonly #counts = new Map<K, number>();
  readonly #drainWaiters = new Map<K, (() => void)[]>();
  #idleWaiters: (() => void)[] = [];
  #total = 0;

  /** Requests running now, on every version. */
  get total(): number {
    return this.#total;
  }

  /** Requests running now on `key`. */
  count(key: K): number {
    return this.#counts.get(key) ?? 0;
  }

  /** A request started on `key`. Pair every call with exactly one {@link leave}. */
  enter(key: K): void {
    this.#counts.set(key, (this.#counts.get(key) ?? 0) + 1);
    this.#total++;
  }

  /** A request on `key` ended. */
  leave(key: K): void {
    const n = this.#counts.get(key);
    if (n === undefined) throw new TypeError('InFlight.leave without a matching enter');
    this.#total--;
    if (n > 1) {
      this.#counts.set(key, n - 1);
    } else {
      this.#counts.delete(key);
      const waiters = this.#drainWaiters.get(key);
      this.#drainWaiters.delete(key);
      for (const w of waiters ?? []) w();
    }
    if (this.#total === 0) {
      const waiters = this.#idleWaiters;
      this.#idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  /** Resolves once no request runs on `key` (at once if none does). */
  drained(key: K): Promise<void> {
    if (!this.#counts.has(key)) return Promise.resolve();
    return new Promise((resolve) => {
      const list = this.#drainWaiters.get(key) ?? [];
      list.push(resolve);
      this.#drainWaiters.set(key, list);
    });
  }

  /** Resolves once no request runs at all (at once if none does). */
  idle(): Promise<void> {
    if (this.#total === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }
}
