/**
 * A port of the parts of Go's `time` package that OPA's `time.*` builtins
 * expose: reference-time layouts (`Time.Format`, `time.Parse`), the proleptic
 * Gregorian calendar, and Go's error quoting.
 *
 * Ported from Go 1.26 `src/time/format.go` (BSD-style licence, The Go
 * Authors) function by function, so that the same input gives the same
 * output and the same error text as `opa eval`. Only the calendar range OPA
 * can reach matters (int64 nanoseconds: years 1677..2262, parse years
 * 0..9999), so calendar arithmetic uses plain numbers.
 *
 * Parsing works on *byte strings* (one UTF-16 unit per UTF-8 byte, see
 * {@link toByteString}): Go slices strings by byte, and its error messages
 * escape bytes, so this is the only way to match it for non-ASCII input.
 * Formatting works on ordinary strings: every layout token is ASCII, and
 * non-token text is copied through unchanged.
 */

// ---------------------------------------------------------------------------
// Calendar

const DAYS_BEFORE = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334, 365] as const;

/** Go's `isLeap`. */
export function isLeap(year: number): boolean {
  return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
}

/** Days in `month` (1..12) of `year`. */
export function daysIn(month: number, year: number): number {
  if (month === 2 && isLeap(year)) return 29;
  return DAYS_BEFORE[month]! - DAYS_BEFORE[month - 1]!;
}

/**
 * Days since 1970-01-01 of a proleptic Gregorian date; `day` may overflow the
 * month (Go's `Date` normalization). H. Hinnant's `days_from_civil`.
 */
export function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

/** Inverse of {@link daysFromCivil}: `[year, month, day]`. */
export function civilFromDays(days: number): [number, number, number] {
  const z = days + 719468;
  const era = Math.floor(z / 146097);
  const doe = z - era * 146097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const day = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const month = mp < 10 ? mp + 3 : mp - 9;
  return [yoe + era * 400 + (month <= 2 ? 1 : 0), month, day];
}

export const LONG_DAY_NAMES = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'] as const;
const SHORT_DAY_NAMES = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'] as const;
const LONG_MONTH_NAMES = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'] as const;
const SHORT_MONTH_NAMES = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'] as const;

/**
 * The layout names OPA maps to Go constants (`acceptedTimeFormats` in OPA's
 * `topdown/time.go`). Go's other constants (Kitchen, Stamp*, DateTime,
 * DateOnly, TimeOnly, Layout) are *not* accepted: OPA uses such a name as a
 * literal layout, so `"Kitchen"` formats as the text `Kitchen`.
 */
export const OPA_LAYOUT_CONSTANTS: ReadonlyMap<string, string> = new Map([
  ['ANSIC', 'Mon Jan _2 15:04:05 2006'],
  ['UnixDate', 'Mon Jan _2 15:04:05 MST 2006'],
  ['RubyDate', 'Mon Jan 02 15:04:05 -0700 2006'],
  ['RFC822', '02 Jan 06 15:04 MST'],
  ['RFC822Z', '02 Jan 06 15:04 -0700'],
  ['RFC850', 'Monday, 02-Jan-06 15:04:05 MST'],
  ['RFC1123', 'Mon, 02 Jan 2006 15:04:05 MST'],
  ['RFC1123Z', 'Mon, 02 Jan 2006 15:04:05 -0700'],
  ['RFC3339', '2006-01-02T15:04:05Z07:00'],
  ['RFC3339Nano', '2006-01-02T15:04:05.999999999Z07:00'],
]);

/** Go's `time.RFC3339`. */
export const RFC3339 = '2006-01-02T15:04:05Z07:00';
/** Go's `time.RFC3339Nano`: OPA's default `time.format` layout. */
export const RFC3339_NANO = '2006-01-02T15:04:05.999999999Z07:00';

// ---------------------------------------------------------------------------
// Layout tokens (Go's std* constants; plain numbers because enums are not
// erasable syntax)

const NEED_DATE = 1 << 8;
const NEED_YDAY = 1 << 9;
const NEED_CLOCK = 1 << 10;
const ARG_SHIFT = 16;
const SEPARATOR_SHIFT = 28;
const STD_MASK = (1 << ARG_SHIFT) - 1;

const LONG_MONTH = 1 + NEED_DATE; // "January"
const MONTH = 2 + NEED_DATE; // "Jan"
const NUM_MONTH = 3 + NEED_DATE; // "1"
const ZERO_MONTH = 4 + NEED_DATE; // "01"
const LONG_WEEKDAY = 5 + NEED_DATE; // "Monday"
const WEEKDAY = 6 + NEED_DATE; // "Mon"
const DAY = 7 + NEED_DATE; // "2"
const UNDER_DAY = 8 + NEED_DATE; // "_2"
const ZERO_DAY = 9 + NEED_DATE; // "02"
const UNDER_YEAR_DAY = 10 + NEED_YDAY; // "__2"
const ZERO_YEAR_DAY = 11 + NEED_YDAY; // "002"
const HOUR = 12 + NEED_CLOCK; // "15"
const HOUR12 = 13 + NEED_CLOCK; // "3"
const ZERO_HOUR12 = 14 + NEED_CLOCK; // "03"
const MINUTE = 15 + NEED_CLOCK; // "4"
const ZERO_MINUTE = 16 + NEED_CLOCK; // "04"
const SECOND = 17 + NEED_CLOCK; // "5"
const ZERO_SECOND = 18 + NEED_CLOCK; // "05"
const LONG_YEAR = 19 + NEED_DATE; // "2006"
const YEAR = 20 + NEED_DATE; // "06"
const PM = 21 + NEED_CLOCK; // "PM"
const PM_LOWER = 22 + NEED_CLOCK; // "pm"
const TZ = 23; // "MST"
const ISO8601_TZ = 24; // "Z0700"
const ISO8601_SECONDS_TZ = 25; // "Z070000"
const ISO8601_SHORT_TZ = 26; // "Z07"
const ISO8601_COLON_TZ = 27; // "Z07:00"
const ISO8601_COLON_SECONDS_TZ = 28; // "Z07:00:00"
const NUM_TZ = 29; // "-0700"
const NUM_SECONDS_TZ = 30; // "-070000"
const NUM_SHORT_TZ = 31; // "-07"
const NUM_COLON_TZ = 32; // "-07:00"
const NUM_COLON_SECONDS_TZ = 33; // "-07:00:00"
const FRAC_SECOND0 = 34; // ".0", ".00", ... trailing zeros kept
const FRAC_SECOND9 = 35; // ".9", ".99", ... trailing zeros dropped

const STD_0X = [ZERO_MONTH, ZERO_DAY, ZERO_HOUR12, ZERO_MINUTE, ZERO_SECOND, YEAR] as const;

function stdFracSecond(code: number, n: number, c: string): number {
  const packed = code | ((n & 0xfff) << ARG_SHIFT);
  return c === '.' ? packed : packed | (1 << SEPARATOR_SHIFT);
}

function digitsLen(std: number): number {
  return (std >> ARG_SHIFT) & 0xfff;
}

function separator(std: number): string {
  return std >> SEPARATOR_SHIFT === 0 ? '.' : ',';
}

function isDigitAt(s: string, i: number): boolean {
  if (i >= s.length) return false;
  const c = s.charCodeAt(i);
  return c >= 48 && c <= 57;
}

/** Whether `s[i]` is a lower-case ASCII letter (so "Month" is not "Mon" + "th"). */
function lowerCaseAt(s: string, i: number): boolean {
  const c = s.charCodeAt(i); // NaN past the end
  return c >= 97 && c <= 122;
}

interface Chunk {
  prefix: string;
  std: number;
  suffix: string;
}

function chunkAt(layout: string, i: number, std: number, len: number): Chunk {
  return { prefix: layout.slice(0, i), std, suffix: layout.slice(i + len) };
}

/** Go's `nextStdChunk`: the text before the first token, the token, the rest. */
function nextStdChunk(layout: string): Chunk {
  for (let i = 0; i < layout.length; i++) {
    const c = layout[i];
    switch (c) {
      case 'J':
        if (layout.startsWith('Jan', i)) {
          if (layout.startsWith('January', i)) return chunkAt(layout, i, LONG_MONTH, 7);
          if (!lowerCaseAt(layout, i + 3)) return chunkAt(layout, i, MONTH, 3);
        }
        break;
      case 'M':
        if (layout.startsWith('Mon', i)) {
          if (layout.startsWith('Monday', i)) return chunkAt(layout, i, LONG_WEEKDAY, 6);
          if (!lowerCaseAt(layout, i + 3)) return chunkAt(layout, i, WEEKDAY, 3);
        }
        if (layout.startsWith('MST', i)) return chunkAt(layout, i, TZ, 3);
        break;
      case '0': {
        const d = layout.charCodeAt(i + 1);
        if (d >= 49 && d <= 54) return chunkAt(layout, i, STD_0X[d - 49]!, 2);
        if (layout.startsWith('002', i)) return chunkAt(layout, i, ZERO_YEAR_DAY, 3);
        break;
      }
      case '1':
        if (layout[i + 1] === '5') return chunkAt(layout, i, HOUR, 2);
        return chunkAt(layout, i, NUM_MONTH, 1);
      case '2':
        if (layout.startsWith('2006', i)) return chunkAt(layout, i, LONG_YEAR, 4);
        return chunkAt(layout, i, DAY, 1);
      case '_':
        if (layout[i + 1] === '2') {
          // "_2006" is a literal "_" followed by the long year.
          if (layout.startsWith('2006', i + 1)) return chunkAt(layout, i + 1, LONG_YEAR, 4);
          return chunkAt(layout, i, UNDER_DAY, 2);
        }
        if (layout.startsWith('__2', i)) return chunkAt(layout, i, UNDER_YEAR_DAY, 3);
        break;
      case '3':
        return chunkAt(layout, i, HOUR12, 1);
      case '4':
        return chunkAt(layout, i, MINUTE, 1);
      case '5':
        return chunkAt(layout, i, SECOND, 1);
      case 'P':
        if (layout[i + 1] === 'M') return chunkAt(layout, i, PM, 2);
        break;
      case 'p':
        if (layout[i + 1] === 'm') return chunkAt(layout, i, PM_LOWER, 2);
        break;
      case '-':
        if (layout.startsWith('-070000', i)) return chunkAt(layout, i, NUM_SECONDS_TZ, 7);
        if (layout.startsWith('-07:00:00', i)) return chunkAt(layout, i, NUM_COLON_SECONDS_TZ, 9);
        if (layout.startsWith('-0700', i)) return chunkAt(layout, i, NUM_TZ, 5);
        if (layout.startsWith('-07:00', i)) return chunkAt(layout, i, NUM_COLON_TZ, 6);
        if (layout.startsWith('-07', i)) return chunkAt(layout, i, NUM_SHORT_TZ, 3);
        break;
      case 'Z':
        if (layout.startsWith('Z070000', i)) return chunkAt(layout, i, ISO8601_SECONDS_TZ, 7);
        if (layout.startsWith('Z07:00:00', i)) return chunkAt(layout, i, ISO8601_COLON_SECONDS_TZ, 9);
        if (layout.startsWith('Z0700', i)) return chunkAt(layout, i, ISO8601_TZ, 5);
        if (layout.startsWith('Z07:00', i)) return chunkAt(layout, i, ISO8601_COLON_TZ, 6);
        if (layout.startsWith('Z07', i)) return chunkAt(layout, i, ISO8601_SHORT_TZ, 3);
        break;
      case '.':
      case ',': {
        const ch = layout[i + 1];
        if (ch === '0' || ch === '9') {
          let j = i + 1;
          while (j < layout.length && layout[j] === ch) j++;
          // Only a run that is not followed by another digit is a fraction.
          if (!isDigitAt(layout, j)) return chunkAt(layout, i, stdFracSecond(ch === '9' ? FRAC_SECOND9 : FRAC_SECOND0, j - (i + 1), c), j - i);
        }
        break;
      }
    }
  }
  return { prefix: layout, std: 0, suffix: '' };
}

/** One step of a compiled layout: literal text, then a token (`std` 0 = end). */
interface LayoutStep {
  readonly prefix: string;
  readonly std: number;
  /** The token's text in the layout, for parse errors. */
  readonly stdstr: string;
}

const compiled = new Map<string, readonly LayoutStep[]>();
const MAX_COMPILED_LAYOUTS = 256;

/**
 * A layout split into its tokens once. Policies use a handful of constant
 * layouts; the cache is cleared rather than grown past a bound, since a
 * layout can also come from input.
 */
function compileLayout(layout: string): readonly LayoutStep[] {
  let steps = compiled.get(layout);
  if (steps) return steps;
  const out: LayoutStep[] = [];
  let rest = layout;
  for (;;) {
    const { prefix, std, suffix } = nextStdChunk(rest);
    out.push({ prefix, std, stdstr: rest.slice(prefix.length, rest.length - suffix.length) });
    if (std === 0) break;
    rest = suffix;
  }
  steps = out;
  if (compiled.size >= MAX_COMPILED_LAYOUTS) compiled.clear();
  compiled.set(layout, steps);
  return steps;
}

// ---------------------------------------------------------------------------
// Format

/** A time broken down in its zone, as `Time.Format` sees it. */
export interface BrokenDownTime {
  readonly year: number;
  readonly month: number;
  readonly day: number;
  /** Day of the year, 1..366. */
  readonly yday: number;
  /** 0 = Sunday. */
  readonly weekday: number;
  readonly hour: number;
  readonly minute: number;
  readonly second: number;
  readonly nanosecond: number;
  /** Seconds east of UTC. */
  readonly offset: number;
  /** Zone abbreviation (`MST`); a function because it costs an Intl call and is rarely needed. */
  zoneName(): string;
}

/** Go's `appendInt`: decimal, zero-padded to `width` (sign not counted). */
function fmtInt(x: number, width: number): string {
  const digits = String(Math.abs(x)).padStart(width, '0');
  return x < 0 ? `-${digits}` : digits;
}

/** Go's `appendNano`. */
function fmtNano(nanosecond: number, std: number): string {
  const trim = (std & STD_MASK) === FRAC_SECOND9;
  const n = digitsLen(std);
  if (trim && (n === 0 || nanosecond === 0)) return '';
  const dot = separator(std);
  let b = dot + fmtInt(nanosecond, 9);
  if (n < 9) b = b.slice(0, b.length - 9 + n);
  if (trim) {
    b = b.replace(/0+$/, '');
    if (b === dot) b = '';
  }
  return b;
}

/** Go's `Time.Format(layout)`. */
export function formatGoLayout(t: BrokenDownTime, layout: string): string {
  let out = '';
  for (const { prefix, std } of compileLayout(layout)) {
    out += prefix;
    if (std === 0) break;
    switch (std & STD_MASK) {
      case YEAR:
        out += fmtInt(Math.abs(t.year) % 100, 2);
        break;
      case LONG_YEAR:
        out += fmtInt(t.year, 4);
        break;
      case MONTH:
        out += SHORT_MONTH_NAMES[t.month - 1];
        break;
      case LONG_MONTH:
        out += LONG_MONTH_NAMES[t.month - 1];
        break;
      case NUM_MONTH:
        out += fmtInt(t.month, 0);
        break;
      case ZERO_MONTH:
        out += fmtInt(t.month, 2);
        break;
      case WEEKDAY:
        out += SHORT_DAY_NAMES[t.weekday];
        break;
      case LONG_WEEKDAY:
        out += LONG_DAY_NAMES[t.weekday];
        break;
      case DAY:
        out += fmtInt(t.day, 0);
        break;
      case UNDER_DAY:
        out += (t.day < 10 ? ' ' : '') + fmtInt(t.day, 0);
        break;
      case ZERO_DAY:
        out += fmtInt(t.day, 2);
        break;
      case UNDER_YEAR_DAY:
        out += (t.yday < 10 ? '  ' : t.yday < 100 ? ' ' : '') + fmtInt(t.yday, 0);
        break;
      case ZERO_YEAR_DAY:
        out += fmtInt(t.yday, 3);
        break;
      case HOUR:
        out += fmtInt(t.hour, 2);
        break;
      case HOUR12:
        // Noon is 12PM, midnight is 12AM.
        out += fmtInt(t.hour % 12 === 0 ? 12 : t.hour % 12, 0);
        break;
      case ZERO_HOUR12:
        out += fmtInt(t.hour % 12 === 0 ? 12 : t.hour % 12, 2);
        break;
      case MINUTE:
        out += fmtInt(t.minute, 0);
        break;
      case ZERO_MINUTE:
        out += fmtInt(t.minute, 2);
        break;
      case SECOND:
        out += fmtInt(t.second, 0);
        break;
      case ZERO_SECOND:
        out += fmtInt(t.second, 2);
        break;
      case PM:
        out += t.hour >= 12 ? 'PM' : 'AM';
        break;
      case PM_LOWER:
        out += t.hour >= 12 ? 'pm' : 'am';
        break;
      case ISO8601_TZ:
      case ISO8601_COLON_TZ:
      case ISO8601_SECONDS_TZ:
      case ISO8601_SHORT_TZ:
      case ISO8601_COLON_SECONDS_TZ:
      case NUM_TZ:
      case NUM_COLON_TZ:
      case NUM_SECONDS_TZ:
      case NUM_SHORT_TZ:
      case NUM_COLON_SECONDS_TZ:
        out += fmtOffset(std, t.offset);
        break;
      case TZ: {
        const name = t.zoneName();
        if (name !== '') {
          out += name;
          break;
        }
        // No abbreviation known: Go falls back to -0700.
        const zone = Math.trunc(t.offset / 60);
        out += (zone < 0 ? '-' : '+') + fmtInt(Math.trunc(Math.abs(zone) / 60), 2) + fmtInt(Math.abs(zone) % 60, 2);
        break;
      }
      case FRAC_SECOND0:
      case FRAC_SECOND9:
        out += fmtNano(t.nanosecond, std);
        break;
    }
  }
  return out;
}

function fmtOffset(std: number, offset: number): string {
  // The Z variants print "Z" for UTC (ISO 8601).
  const iso = std === ISO8601_TZ || std === ISO8601_COLON_TZ || std === ISO8601_SECONDS_TZ || std === ISO8601_SHORT_TZ || std === ISO8601_COLON_SECONDS_TZ;
  if (offset === 0 && iso) return 'Z';
  // Go divides with truncation: an LMT offset of -7:52:58 prints as -07:52.
  let zone = Math.trunc(offset / 60);
  let absoffset = offset;
  let b: string;
  if (zone < 0) {
    b = '-';
    zone = -zone;
    absoffset = -absoffset;
  } else {
    b = '+';
  }
  b += fmtInt(Math.trunc(zone / 60), 2);
  if (std === ISO8601_COLON_TZ || std === NUM_COLON_TZ || std === ISO8601_COLON_SECONDS_TZ || std === NUM_COLON_SECONDS_TZ) b += ':';
  if (std !== NUM_SHORT_TZ && std !== ISO8601_SHORT_TZ) b += fmtInt(zone % 60, 2);
  if (std === ISO8601_SECONDS_TZ || std === NUM_SECONDS_TZ || std === NUM_COLON_SECONDS_TZ || std === ISO8601_COLON_SECONDS_TZ) {
    if (std === NUM_COLON_SECONDS_TZ || std === ISO8601_COLON_SECONDS_TZ) b += ':';
    b += fmtInt(absoffset % 60, 2);
  }
  return b;
}

// ---------------------------------------------------------------------------
// Strings as Go sees them

/** UTF-8 bytes of `s`, one UTF-16 unit per byte (a "byte string"). */
export function toByteString(s: string): string {
  // All-ASCII strings are already their own byte string: skip the copy.
  return /^[\x00-\x7f]*$/.test(s) ? s : Buffer.from(s, 'utf8').toString('latin1');
}

const HEX = '0123456789abcdef';

/**
 * Go's `time.quote` over a byte string: quotes, backslash before `"` and
 * `\`, and `\xNN` for every control or non-ASCII byte.
 */
export function goQuote(bytes: string): string {
  let out = '"';
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes.charCodeAt(i);
    if (c >= 0x80 || c < 0x20) out += `\\x${HEX[c >> 4]}${HEX[c & 0xf]}`;
    else if (c === 0x22 || c === 0x5c) out += `\\${bytes[i]}`;
    else out += bytes[i];
  }
  return `${out}"`;
}

const TWO_63 = 1n << 63n;

/**
 * Go's `leadingInt`: the leading `[0-9]*` of a byte string, as uint64.
 * `undefined` on overflow past 2^63.
 */
export function leadingInt(s: string): { x: bigint; rem: string } | undefined {
  let x = 0n;
  let i = 0;
  for (; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) break;
    if (x > TWO_63 / 10n) return undefined;
    x = x * 10n + BigInt(c - 48);
    if (x > TWO_63) return undefined;
  }
  return { x, rem: s.slice(i) };
}

// ---------------------------------------------------------------------------
// Parse

/** Go's placeholder error: reported as a ParseError naming the layout element. */
const BAD = Symbol('errBad');

/** Go's `atoi` (every call site bounds the digits, so a number is exact). */
function atoi(s: string): number | typeof BAD {
  let neg = false;
  if (s.length > 0 && (s[0] === '-' || s[0] === '+')) {
    neg = s[0] === '-';
    s = s.slice(1);
  }
  const r = leadingInt(s);
  if (r === undefined || r.rem.length > 0) return BAD;
  const x = Number(r.x);
  return neg ? -x : x;
}

function getnum(s: string, fixed: boolean): [number, string] | typeof BAD {
  if (!isDigitAt(s, 0)) return BAD;
  if (!isDigitAt(s, 1)) {
    if (fixed) return BAD;
    return [s.charCodeAt(0) - 48, s.slice(1)];
  }
  return [(s.charCodeAt(0) - 48) * 10 + (s.charCodeAt(1) - 48), s.slice(2)];
}

function getnum3(s: string, fixed: boolean): [number, string] | typeof BAD {
  let n = 0;
  let i = 0;
  for (; i < 3 && isDigitAt(s, i); i++) n = n * 10 + (s.charCodeAt(i) - 48);
  if (i === 0 || (fixed && i !== 3)) return BAD;
  return [n, s.slice(i)];
}

/** Go's `match`: ASCII case-insensitive equality of equal-length strings. */
function matchFold(s1: string, s2: string): boolean {
  for (let i = 0; i < s1.length; i++) {
    let c1 = s1.charCodeAt(i);
    let c2 = s2.charCodeAt(i);
    if (c1 !== c2) {
      c1 |= 0x20;
      c2 |= 0x20;
      if (c1 !== c2 || c1 < 97 || c1 > 122) return false;
    }
  }
  return true;
}

function lookup(tab: readonly string[], val: string): [number, string] | typeof BAD {
  for (let i = 0; i < tab.length; i++) {
    const v = tab[i]!;
    if (val.length >= v.length && matchFold(val.slice(0, v.length), v)) return [i, val.slice(v.length)];
  }
  return BAD;
}

/** Go's `skip`: remove `prefix` from `value`, runs of spaces matching runs of spaces. */
function skip(value: string, prefix: string): string | typeof BAD {
  while (prefix.length > 0) {
    if (prefix[0] === ' ') {
      if (value.length > 0 && value[0] !== ' ') return BAD;
      prefix = prefix.replace(/^ +/, '');
      value = value.replace(/^ +/, '');
      continue;
    }
    if (value.length === 0 || value[0] !== prefix[0]) return BAD;
    prefix = prefix.slice(1);
    value = value.slice(1);
  }
  return value;
}

function commaOrPeriod(c: string | undefined): boolean {
  return c === '.' || c === ',';
}

/** Go's `parseNanoseconds`: `[ns, rangeErr]` or BAD. */
function parseNanoseconds(value: string, nbytes: number): [number, string] | typeof BAD {
  if (!commaOrPeriod(value[0])) return BAD;
  if (nbytes > 10) {
    value = value.slice(0, 10);
    nbytes = 10;
  }
  let ns = atoi(value.slice(1, nbytes));
  if (ns === BAD) return BAD;
  if (ns < 0) return [0, 'fractional second'];
  // Scale to nanoseconds: value has nbytes-1 digits, at most 9 are kept.
  for (let i = 0; i < 10 - nbytes; i++) ns *= 10;
  return [ns, ''];
}

/** Go's `parseSignedOffset`: length of a `+hh`/`-hh` (hh <= 23) prefix, or 0. */
function parseSignedOffset(value: string): number {
  if (value[0] !== '-' && value[0] !== '+') return 0;
  const r = leadingInt(value.slice(1));
  if (r === undefined || r.rem === value.slice(1)) return 0;
  if (r.x > 23n) return 0;
  return value.length - r.rem.length;
}

/** Go's `parseTimeZone`: length of a zone abbreviation at the start of `value`. */
function parseTimeZone(value: string): number {
  if (value.length < 3) return 0;
  // ChST and MeST are the only abbreviations with a lower-case letter.
  if (value.startsWith('ChST') || value.startsWith('MeST')) return 4;
  // GMT may carry an hour offset.
  if (value.startsWith('GMT')) return 3 + (value.length === 3 ? 0 : parseSignedOffset(value.slice(3)));
  // Unnamed zones written as +hh / -hh.
  if (value[0] === '+' || value[0] === '-') return parseSignedOffset(value);
  let nUpper = 0;
  for (; nUpper < 6 && nUpper < value.length; nUpper++) {
    const c = value.charCodeAt(nUpper);
    if (c < 65 || c > 90) break;
  }
  switch (nUpper) {
    case 5:
      return value[4] === 'T' ? 5 : 0;
    case 4:
      return value[3] === 'T' || value.startsWith('WITA') ? 4 : 0;
    case 3:
      return 3;
    default:
      return 0;
  }
}

/** What `time.Parse` read, before it is turned into an instant. */
export interface ParsedFields {
  readonly year: number;
  readonly month: number;
  readonly day: number;
  readonly hour: number;
  readonly minute: number;
  readonly second: number;
  readonly nanosecond: number;
  /** The value said `Z` or `UTC`. */
  readonly utc: boolean;
  /** Numeric zone offset in seconds east of UTC, when the value had one. */
  readonly zoneOffset: number | undefined;
  /** Zone abbreviation (`MST`, `GMT+3`), '' when none. */
  readonly zoneName: string;
}

/**
 * Go's `time.Parse(layout, value)` up to (not including) building the
 * `Time`. Both arguments are byte strings ({@link toByteString}). Throws an
 * Error with Go's `ParseError` text.
 */
export function parseGoLayout(layout: string, value: string): ParsedFields {
  const avalue = value;
  const parseError = (layoutElem: string, valueElem: string, message: string): Error =>
    new Error(
      message === ''
        ? `parsing time ${goQuote(avalue)} as ${goQuote(layout)}: cannot parse ${goQuote(valueElem)} as ${goQuote(layoutElem)}`
        : `parsing time ${goQuote(avalue)}${message}`,
    );

  let rangeErr = '';
  let amSet = false;
  let pmSet = false;
  let year = 0;
  let month = -1;
  let day = -1;
  let yday = -1;
  let hour = 0;
  let min = 0;
  let sec = 0;
  let nsec = 0;
  let utc = false;
  let zoneOffset = -1;
  let zoneName = '';

  let bad = false;
  // Runs a getnum-style reader: consumes what it read and returns the number; flags BAD.
  const take = (r: [number, string] | typeof BAD): number => {
    if (r === BAD) {
      bad = true;
      return 0;
    }
    value = r[1];
    return r[0];
  };

  const steps = compileLayout(layout);
  for (let k = 0; k < steps.length; k++) {
    const { prefix, std, stdstr } = steps[k]!;
    const skipped = skip(value, prefix);
    if (skipped === BAD) throw parseError(prefix, value, '');
    value = skipped;
    if (std === 0) {
      if (value.length !== 0) throw parseError('', value, `: extra text: ${goQuote(value)}`);
      break;
    }
    const hold = value;
    bad = false;

    switch (std & STD_MASK) {
      case YEAR: {
        if (value.length < 2) {
          bad = true;
          break;
        }
        const p = value.slice(0, 2);
        value = value.slice(2);
        const y = atoi(p);
        if (y === BAD) {
          bad = true;
          break;
        }
        // Unix time starts Dec 31 1969 in some time zones.
        year = y >= 69 ? y + 1900 : y + 2000;
        break;
      }
      case LONG_YEAR: {
        if (value.length < 4 || !isDigitAt(value, 0)) {
          bad = true;
          break;
        }
        const p = value.slice(0, 4);
        value = value.slice(4);
        const y = atoi(p);
        if (y === BAD) bad = true;
        else year = y;
        break;
      }
      case MONTH:
        month = take(lookup(SHORT_MONTH_NAMES, value)) + 1;
        break;
      case LONG_MONTH:
        month = take(lookup(LONG_MONTH_NAMES, value)) + 1;
        break;
      case NUM_MONTH:
      case ZERO_MONTH:
        month = take(getnum(value, std === ZERO_MONTH));
        if (!bad && (month <= 0 || month > 12)) rangeErr = 'month';
        break;
      case WEEKDAY:
        // The weekday is checked for syntax only.
        take(lookup(SHORT_DAY_NAMES, value));
        break;
      case LONG_WEEKDAY:
        take(lookup(LONG_DAY_NAMES, value));
        break;
      case DAY:
      case UNDER_DAY:
      case ZERO_DAY:
        if (std === UNDER_DAY && value[0] === ' ') value = value.slice(1);
        // Any one- or two-digit day; validated against the month at the end.
        day = take(getnum(value, std === ZERO_DAY));
        break;
      case UNDER_YEAR_DAY:
      case ZERO_YEAR_DAY:
        for (let i = 0; i < 2; i++) if (std === UNDER_YEAR_DAY && value[0] === ' ') value = value.slice(1);
        yday = take(getnum3(value, std === ZERO_YEAR_DAY));
        break;
      case HOUR:
        hour = take(getnum(value, false));
        if (hour < 0 || hour >= 24) rangeErr = 'hour';
        break;
      case HOUR12:
      case ZERO_HOUR12:
        hour = take(getnum(value, std === ZERO_HOUR12));
        if (hour < 0 || hour > 12) rangeErr = 'hour';
        break;
      case MINUTE:
      case ZERO_MINUTE:
        min = take(getnum(value, std === ZERO_MINUTE));
        if (min < 0 || min >= 60) rangeErr = 'minute';
        break;
      case SECOND:
      case ZERO_SECOND: {
        sec = take(getnum(value, std === ZERO_SECOND));
        if (bad) break;
        if (sec < 0 || sec >= 60) {
          rangeErr = 'second';
          break;
        }
        // A fractional second in the value but not in the layout is accepted.
        if (value.length >= 2 && commaOrPeriod(value[0]) && isDigitAt(value, 1)) {
          const next = steps[k + 1]!.std & STD_MASK;
          if (next === FRAC_SECOND0 || next === FRAC_SECOND9) break;
          let n = 2;
          while (n < value.length && isDigitAt(value, n)) n++;
          const r = parseNanoseconds(value, n);
          if (r === BAD) bad = true;
          else [nsec, rangeErr] = r;
          value = value.slice(n);
        }
        break;
      }
      case PM:
      case PM_LOWER: {
        if (value.length < 2) {
          bad = true;
          break;
        }
        const p = value.slice(0, 2);
        value = value.slice(2);
        const [pmText, amText] = (std & STD_MASK) === PM ? ['PM', 'AM'] : ['pm', 'am'];
        if (p === pmText) pmSet = true;
        else if (p === amText) amSet = true;
        else bad = true;
        break;
      }
      case ISO8601_TZ:
      case ISO8601_SHORT_TZ:
      case ISO8601_COLON_TZ:
      case ISO8601_SECONDS_TZ:
      case ISO8601_COLON_SECONDS_TZ:
      case NUM_TZ:
      case NUM_SHORT_TZ:
      case NUM_COLON_TZ:
      case NUM_SECONDS_TZ:
      case NUM_COLON_SECONDS_TZ: {
        const iso = std === ISO8601_TZ || std === ISO8601_SHORT_TZ || std === ISO8601_COLON_TZ || std === ISO8601_SECONDS_TZ || std === ISO8601_COLON_SECONDS_TZ;
        if (iso && value[0] === 'Z') {
          value = value.slice(1);
          utc = true;
          break;
        }
        let parts: [string, string, string, string] | undefined;
        if (std === ISO8601_COLON_TZ || std === NUM_COLON_TZ) {
          if (value.length >= 6 && value[3] === ':') parts = [value[0]!, value.slice(1, 3), value.slice(4, 6), '00'];
          if (parts) value = value.slice(6);
        } else if (std === NUM_SHORT_TZ || std === ISO8601_SHORT_TZ) {
          if (value.length >= 3) parts = [value[0]!, value.slice(1, 3), '00', '00'];
          if (parts) value = value.slice(3);
        } else if (std === ISO8601_COLON_SECONDS_TZ || std === NUM_COLON_SECONDS_TZ) {
          if (value.length >= 9 && value[3] === ':' && value[6] === ':') parts = [value[0]!, value.slice(1, 3), value.slice(4, 6), value.slice(7, 9)];
          if (parts) value = value.slice(9);
        } else if (std === ISO8601_SECONDS_TZ || std === NUM_SECONDS_TZ) {
          if (value.length >= 7) parts = [value[0]!, value.slice(1, 3), value.slice(3, 5), value.slice(5, 7)];
          if (parts) value = value.slice(7);
        } else {
          if (value.length >= 5) parts = [value[0]!, value.slice(1, 3), value.slice(3, 5), '00'];
          if (parts) value = value.slice(5);
        }
        if (!parts) {
          bad = true;
          break;
        }
        const [sign, hh, mm, ss] = parts;
        let hr = 0;
        let mi = 0;
        let se = 0;
        const h = getnum(hh, true);
        if (h === BAD) bad = true;
        else {
          hr = h[0];
          const m = getnum(mm, true);
          if (m === BAD) bad = true;
          else {
            mi = m[0];
            const s = getnum(ss, true);
            if (s === BAD) bad = true;
            else se = s[0];
          }
        }
        // Go tests with > rather than >=: offsets of 24h / 60m / 60s occur in the wild.
        if (hr > 24) rangeErr = 'time zone offset hour';
        if (mi > 60) rangeErr = 'time zone offset minute';
        if (se > 60) rangeErr = 'time zone offset second';
        zoneOffset = (hr * 60 + mi) * 60 + se;
        if (sign === '-') zoneOffset = -zoneOffset;
        else if (sign !== '+') bad = true;
        break;
      }
      case TZ: {
        if (value.startsWith('UTC')) {
          utc = true;
          value = value.slice(3);
          break;
        }
        const n = parseTimeZone(value);
        if (n === 0) {
          bad = true;
          break;
        }
        zoneName = value.slice(0, n);
        value = value.slice(n);
        break;
      }
      case FRAC_SECOND0: {
        // Exactly as many digits as the layout has.
        const ndigit = 1 + digitsLen(std);
        if (value.length < ndigit) {
          bad = true;
          break;
        }
        const r = parseNanoseconds(value, ndigit);
        if (r === BAD) bad = true;
        else [nsec, rangeErr] = r;
        value = value.slice(ndigit);
        break;
      }
      case FRAC_SECOND9: {
        if (value.length < 2 || !commaOrPeriod(value[0]) || !isDigitAt(value, 1)) break; // fraction omitted
        // Any number of digits, as the seconds case would take.
        let i = 0;
        while (i + 1 < value.length && isDigitAt(value, i + 1)) i++;
        const r = parseNanoseconds(value, 1 + i);
        if (r === BAD) bad = true;
        else [nsec, rangeErr] = r;
        value = value.slice(1 + i);
        break;
      }
    }
    if (rangeErr !== '') throw parseError(stdstr, value, `: ${rangeErr} out of range`);
    if (bad) throw parseError(stdstr, hold, '');
  }

  if (pmSet && hour < 12) hour += 12;
  else if (amSet && hour === 12) hour = 0;

  if (yday >= 0) {
    let d = 0;
    let m = 0;
    if (isLeap(year)) {
      if (yday === 31 + 29) {
        m = 2;
        d = 29;
      } else if (yday > 31 + 29) {
        yday--;
      }
    }
    if (yday < 1 || yday > 365) throw parseError('', value, ': day-of-year out of range');
    if (m === 0) {
      m = Math.floor((yday - 1) / 31) + 1;
      if (DAYS_BEFORE[m]! < yday) m++;
      d = yday - DAYS_BEFORE[m - 1]!;
    }
    if (month >= 0 && month !== m) throw parseError('', value, ': day-of-year does not match month');
    month = m;
    if (day >= 0 && day !== d) throw parseError('', value, ': day-of-year does not match day');
    day = d;
  } else {
    if (month < 0) month = 1;
    if (day < 0) day = 1;
  }

  if (day < 1 || day > daysIn(month, year)) throw parseError('', value, ': day out of range');

  return {
    year,
    month,
    day,
    hour,
    minute: min,
    second: sec,
    nanosecond: nsec,
    utc,
    zoneOffset: zoneOffset === -1 ? undefined : zoneOffset,
    zoneName,
  };
}
