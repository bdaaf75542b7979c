/**
 * The clock regate reads for `input.time` and `time.now_ns()`.
 *
 * Production uses the system clock. Tests and `regate eval` freeze it, so a
 * business-hours policy can be exercised on both sides of a DST change.
 */
export interface Clock {
  /** Nanoseconds since the Unix epoch. */
  nowNs(): bigint;
}

export const systemClock: Clock = {
  nowNs(): bigint {
    // Date.now() has ms resolution; hrtime gives the sub-ms part so that two
    // reads in one ms still differ. Anchored once at startup.
    return anchorNs + (process.hrtime.bigint() - anchorHr);
  },
};

const anchorNs = BigInt(Date.now()) * 1_000_000n;
const anchorHr = process.hrtime.bigint();

/** A clock stopped at `ns`. */
export function fixedClock(ns: bigint): Clock {
  return { nowNs: () => ns };
}

/**
 * Parse an RFC 3339 instant (`2026-03-08T09:30:00-08:00`, fractional seconds
 * up to ns) into epoch nanoseconds. Throws TypeError on anything else.
 */
export function parseRfc3339Ns(value: string): bigint {
  const m = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/i.exec(value);
  if (!m) throw new TypeError(`not an RFC 3339 timestamp: ${JSON.stringify(value)}`);
  const ms = Date.parse(`${m[1]}${m[3]}`);
  if (Number.isNaN(ms)) throw new TypeError(`not a valid RFC 3339 timestamp: ${JSON.stringify(value)}`);
  const frac = BigInt((m[2] ?? '').padEnd(9, '0'));
  return BigInt(ms) * 1_000_000n + frac;
}

/**
 * The clock for a process: `REGATE_CLOCK` (RFC 3339) wins over `clock.fixed`
 * in config; otherwise the system clock.
 */
export function clockFrom(fixed: string | undefined, env: NodeJS.ProcessEnv = process.env): Clock {
  const value = env.REGATE_CLOCK || fixed;
  return value ? fixedClock(parseRfc3339Ns(value)) : systemClock;
}
