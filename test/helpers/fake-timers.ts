/**
 * Controllable timers for polling / backoff tests: every `setTimeout` is
 * recorded with its delay and runs only when the test fires it. Tests assert
 * on the delays a component asked for, never on how long anything took.
 */

export interface FakeTimer {
  readonly ms: number;
  readonly fn: () => void;
  cleared: boolean;
  fired: boolean;
}

export interface FakeTimers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  /** Every timer ever scheduled, oldest first. */
  readonly scheduled: readonly FakeTimer[];
  /** Timers neither fired nor cleared. */
  pending(): FakeTimer[];
  /**
   * Wait (bounded) until a timer not yet returned by `next()` is scheduled;
   * returns it without firing it.
   */
  next(timeoutMs?: number): Promise<FakeTimer>;
  /** Run a timer's callback (it must be pending). */
  fire(timer: FakeTimer): void;
}

export function createFakeTimers(): FakeTimers {
  const scheduled: FakeTimer[] = [];
  let seen = 0;
  const waiters = new Set<() => void>();
  return {
    scheduled,
    setTimeout(fn, ms) {
      const t: FakeTimer = { fn, ms, cleared: false, fired: false };
      scheduled.push(t);
      for (const w of waiters) w();
      return t;
    },
    clearTimeout(handle) {
      if (handle !== undefined && handle !== null) (handle as FakeTimer).cleared = true;
    },
    pending: () => scheduled.filter((t) => !t.cleared && !t.fired),
    next(timeoutMs = 10_000) {
      return new Promise<FakeTimer>((resolve, reject) => {
        const check = (): void => {
          if (scheduled.length > seen) {
            clearTimeout(timer);
            waiters.delete(check);
            resolve(scheduled[seen++]!);
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no timer scheduled within ${timeoutMs} ms (${scheduled.length} so far)`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    fire(t) {
      if (t.cleared || t.fired) throw new Error(`fake timer (${t.ms} ms) is ${t.cleared ? 'cleared' : 'already fired'}`);
      t.fired = true;
      t.fn();
    },
  };
}
