import type { TimeInput } from './types.ts';

/**
 * Local calendar fields for `input.time`, computed in an IANA timezone.
 *
 * Intl.DateTimeFormat is the only DST-correct zone database in Node; building a
 * formatter costs ~50 µs, so there is exactly one per zone (cached), and the
 * result for the current second is memoized: under load thousands of requests
 * share one second, so the per-request cost is a comparison.
 */
const WEEKDAYS: Record<string, string> = {
  Mon: 'Monday',
  Tue: 'Tuesday',
  Wed: 'Wednesday',
  Thu: 'Thursday',
  Fri: 'Friday',
  Sat: 'Saturday',
  Sun: 'Sunday',
};

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatterFor(timezone: string): Intl.DateTimeFormat {
  let f = formatters.get(timezone);
  if (!f) {
    // Throws RangeError for an unknown zone; the config loader validated it already.
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: timezone,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
      weekday: 'short',
    });
    formatters.set(timezone, f);
  }
  return f;
}

const pad2 = (n: number): string => (n < 10 ? `0${n}` : String(n));

/** Calendar fields of `epochMs` (floored to the second) in `timezone`. */
export function localFields(epochMs: number, timezone: string): TimeInput['local'] {
  const parts = formatterFor(timezone).formatToParts(new Date(epochMs));
  let year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0, weekday = '';
  for (const p of parts) {
    switch (p.type) {
      case 'year': year = Number(p.value); break;
      case 'month': month = Number(p.value); break;
      case 'day': day = Number(p.value); break;
      case 'hour': hour = Number(p.value); break;
      case 'minute': minute = Number(p.value); break;
      case 'second': second = Number(p.value); break;
      case 'weekday': weekday = WEEKDAYS[p.value] ?? p.value; break;
      default: break;
    }
  }
  // Offset = local wall time read as UTC minus the instant, in whole minutes.
  const wallUtc = Date.UTC(year, month - 1, day, hour, minute, second);
  const offsetMin = Math.round((wallUtc - Math.floor(epochMs / 1000) * 1000) / 60_000);
  const sign = offsetMin < 0 ? '-' : '+';
  const abs = Math.abs(offsetMin);
  return {
    date: `${String(year).padStart(4, '0')}-${pad2(month)}-${pad2(day)}`,
    clock: `${pad2(hour)}:${pad2(minute)}:${pad2(second)}`,
    year,
    month,
    day,
    hour,
    minute,
    second,
    weekday,
    offset: `${sign}${pad2(Math.floor(abs / 60))}:${pad2(abs % 60)}`,
  };
}

type RawJson = (text: string) => unknown;
const rawJSON = (JSON as unknown as { rawJSON: RawJson }).rawJSON;

/**
 * `input.time` as JSON with `now_ns` as its exact 19 digits (`JSON.rawJSON`),
 * so the policy input serializes with the native JSON.stringify and no bigint
 * replacer — a replacer is called for every value of the input and was the
 * largest single cost of an evaluation (src/policy/precise-json.ts).
 */
function timeToJson(this: TimeInput): unknown {
  return { now_ns: rawJSON(this.now_ns.toString()), rfc3339: this.rfc3339, timezone: this.timezone, local: this.local };
}
const TO_JSON: PropertyDescriptor = Object.freeze({ value: timeToJson, enumerable: false, writable: false, configurable: false });

/**
 * Builds `input.time` for one instant. Memoizes the calendar fields per
 * (zone, second); `now_ns` and `rfc3339` are always exact for the instant.
 */
export class TimeInputBuilder {
  readonly timezone: string;
  #cachedSecond = Number.NaN;
  #cachedLocal: TimeInput['local'] | undefined;

  constructor(timezone: string) {
    this.timezone = timezone;
    formatterFor(timezone);
  }

  build(nowNs: bigint): TimeInput {
    const epochMs = Number(nowNs / 1_000_000n);
    const second = Math.floor(epochMs / 1000);
    if (second !== this.#cachedSecond || this.#cachedLocal === undefined) {
      this.#cachedLocal = localFields(epochMs, this.timezone);
      this.#cachedSecond = second;
    }
    const time: TimeInput = {
      now_ns: nowNs,
      rfc3339: new Date(epochMs).toISOString(),
      timezone: this.timezone,
      local: this.#cachedLocal,
    };
    // Non-enumerable: invisible to Object.keys, deepEqual and the policy, seen by JSON.stringify.
    Object.defineProperty(time, 'toJSON', TO_JSON);
    return time;
  }
}
