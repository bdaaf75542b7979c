/**
 * The `time.*` builtins, which OPA's wasm target leaves to the host.
 *
 * Each one behaves as OPA 1.x's Go implementation (`v1/topdown/time.go`,
 * Go's `time` package) does: same results and the same error text, including
 * OPA's `time.xxx: ` prefix. Checked against OPA's conformance cases and,
 * in the unit tests, against `opa eval` on generated calls. Nanosecond values
 * are int64 in OPA, so instant arithmetic is BigInt and results beyond 2^53
 * come back as bigint.
 *
 * Time zones come from the ICU data built into Node, through `Intl`: one
 * cached `Intl.DateTimeFormat` per zone gives the UTC offset at any instant,
 * so DST is exact. `"Local"` is the process zone (TZ), as Go's `time.Local`.
 * Known differences from OPA, all outside what policies normally do:
 * - the `MST` layout token prints tzdata's abbreviations, which Intl does not
 *   expose; they are derived (see `abbreviationAt`) and right for current
 *   rules, but may differ for historical instants (Guam's "GST" before 2000);
 * - ICU's tz database version can differ from the host's, which OPA reads;
 * - a zone alias spelled with wrong capitals ("US/pacific") is accepted.
 */
import { exactArguments, RegoNumber } from '../number-text.ts';
import type { EvalContext, HostBuiltin } from './index.ts';
import {
  type BrokenDownTime,
  LONG_DAY_NAMES,
  OPA_LAYOUT_CONSTANTS,
  RFC3339,
  RFC3339_NANO,
  civilFromDays,
  daysFromCivil,
  daysIn,
  formatGoLayout,
  goQuote,
  leadingInt,
  parseGoLayout,
  toByteString,
} from './go-time-layout.ts';

const NS_PER_SEC = 1_000_000_000n;
const MIN_INT64 = -(1n << 63n);
const MAX_INT64 = (1n << 63n) - 1n;
/** Whole seconds of the int64 nanosecond range, padded by two days for zone offsets. */
const MIN_UNIX_SEC = Number(MIN_INT64 / NS_PER_SEC) - 2 * 86400;
const MAX_UNIX_SEC = Number(MAX_INT64 / NS_PER_SEC) + 2 * 86400;

// ---------------------------------------------------------------------------
// Operands (OPA's `builtins.*Operand` helpers and their messages)

/** OPA's `ast.ValueName` for a JSON-decoded value. */
function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (v instanceof RegoNumber) return 'number';
  if (Array.isArray(v)) return 'array';
  switch (typeof v) {
    case 'boolean':
      return 'boolean';
    case 'number':
    case 'bigint':
      return 'number';
    case 'string':
      return 'string';
    default:
      return 'object';
  }
}

function operandTypeError(pos: number, got: unknown, expected: string): Error {
  return new Error(`operand ${pos} must be ${expected} but got ${typeName(got)}`);
}

function stringOperand(v: unknown, pos: number): string {
  if (typeof v !== 'string') throw operandTypeError(pos, v, 'string');
  return v;
}

/**
 * The integer OPA's `IntOperand` reads from a number's text, as measured
 * against opa 1.22: plain integer text exactly; `1.0`, `-0.00` (a fraction of
 * zeros, no exponent) through float64, so `9007199254740993.0` is
 * 9007199254740992 and `9223372036854775806.0` (2^63 as a double) is refused;
 * anything with an exponent or a non-zero fraction (`1e2`, `1.5`) is refused.
 */
export function intFromText(text: string): bigint | undefined {
  if (/^-?[0-9]+$/.test(text)) return BigInt(text);
  if (!/^-?[0-9]+\.0+$/.test(text)) return undefined;
  const f = Number(text);
  return f >= -(2 ** 63) && f < 2 ** 63 ? BigInt(f) : undefined;
}

/** OPA's `IntOperand`: an int64 (Go `int`), else an error. */
function intOperand(v: unknown, pos: number): bigint {
  if (typeof v !== 'number' && typeof v !== 'bigint' && !(v instanceof RegoNumber)) throw operandTypeError(pos, v, 'number');
  const i = v instanceof RegoNumber ? intFromText(v.text) : typeof v === 'bigint' ? v : Number.isSafeInteger(v) ? BigInt(v) : undefined;
  if (i === undefined || i < MIN_INT64 || i > MAX_INT64) {
    throw new Error(`operand ${pos} must be integer number but got floating-point number`);
  }
  return i;
}

/** A JSON integer: a number when exact, else a bigint (the engine serializes it exactly). */
function jsonInt(i: bigint): number | bigint {
  return i >= BigInt(Number.MIN_SAFE_INTEGER) && i <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(i) : i;
}

function floorDiv(a: bigint, b: bigint): bigint {
  const q = a / b;
  return (a % b !== 0n && (a < 0n) !== (b < 0n)) ? q - 1n : q;
}

/** OPA's `toSafeUnixNano`: int64 nanoseconds or "time outside of valid range". */
function safeUnixNano(ns: bigint): number | bigint {
  if (ns < MIN_INT64 || ns > MAX_INT64) throw new Error('time outside of valid range');
  return jsonInt(ns);
}

// ---------------------------------------------------------------------------
// Zones

/** A Go `*time.Location`, backed by UTC or by ICU through Intl. */
interface Zone {
  /** Seconds east of UTC in effect at `unixSec`. */
  offsetAt(unixSec: number): number;
  /** The abbreviation Go would print for the `MST` token. */
  abbreviationAt(unixSec: number): string;
}

const UTC_ZONE: Zone = {
  offsetAt: () => 0,
  abbreviationAt: () => 'UTC',
};

/** tzdata's `Factory` zone (UTC, abbreviation "-00"), which Go loads and ICU does not know. */
const FACTORY_ZONE: Zone = {
  offsetAt: () => 0,
  abbreviationAt: () => '-00',
};

/** tzdata abbreviations, `[standard, daylight]`, for zones where ICU's en-US names differ. */
const ABBREVIATIONS = new Map<string, readonly [string, string]>();
function abbreviate(std: string, dst: string, zones: string): void {
  for (const z of zones.split(' ')) ABBREVIATIONS.set(z, [std, dst]);
}
abbreviate('GMT', 'GMT', 'GMT Etc/GMT Etc/GMT0 Etc/GMT+0 Etc/GMT-0 GMT0 GMT+0 GMT-0 Greenwich Etc/Greenwich Africa/Abidjan Africa/Accra Africa/Bamako Africa/Banjul Africa/Bissau Africa/Conakry Africa/Dakar Africa/Freetown Africa/Lome Africa/Monrovia Africa/Nouakchott Africa/Ouagadougou Africa/Sao_Tome Africa/Timbuktu Atlantic/Reykjavik Atlantic/St_Helena Iceland America/Danmarkshavn');
abbreviate('UTC', 'UTC', 'Etc/UTC Etc/UCT Etc/Universal Etc/Zulu UCT Universal Zulu');
abbreviate('GMT', 'BST', 'Europe/London Europe/Belfast Europe/Guernsey Europe/Isle_of_Man Europe/Jersey GB GB-Eire');
abbreviate('GMT', 'IST', 'Europe/Dublin Eire');
abbreviate('WET', 'WEST', 'WET Europe/Lisbon Portugal Atlantic/Madeira Atlantic/Canary Atlantic/Faroe Atlantic/Faeroe');
abbreviate('CET', 'CEST', 'CET Poland Africa/Ceuta Arctic/Longyearbyen Atlantic/Jan_Mayen Europe/Amsterdam Europe/Andorra Europe/Belgrade Europe/Berlin Europe/Bratislava Europe/Brussels Europe/Budapest Europe/Busingen Europe/Copenhagen Europe/Gibraltar Europe/Ljubljana Europe/Luxembourg Europe/Madrid Europe/Malta Europe/Monaco Europe/Oslo Europe/Paris Europe/Podgorica Europe/Prague Europe/Rome Europe/San_Marino Europe/Sarajevo Europe/Skopje Europe/Stockholm Europe/Tirane Europe/Vaduz Europe/Vatican Europe/Vienna Europe/Warsaw Europe/Zagreb Europe/Zurich');
abbreviate('MET', 'MEST', 'MET');
abbreviate('CET', 'CET', 'Africa/Algiers Africa/Tunis');
abbreviate('EET', 'EEST', 'EET Egypt Africa/Cairo Asia/Beirut Asia/Famagusta Asia/Gaza Asia/Hebron Asia/Nicosia Europe/Athens Europe/Bucharest Europe/Chisinau Europe/Helsinki Europe/Kiev Europe/Kyiv Europe/Mariehamn Europe/Nicosia Europe/Riga Europe/Sofia Europe/Tallinn Europe/Tiraspol Europe/Uzhgorod Europe/Vilnius Europe/Zaporozhye');
abbreviate('EET', 'EET', 'Libya Africa/Tripoli Europe/Kaliningrad');
abbreviate('MSK', 'MSK', 'W-SU Europe/Moscow Europe/Simferopol');
abbreviate('IST', 'IDT', 'Israel Asia/Jerusalem Asia/Tel_Aviv');
abbreviate('IST', 'IST', 'Asia/Kolkata Asia/Calcutta');
abbreviate('PKT', 'PKST', 'Asia/Karachi');
abbreviate('HKT', 'HKST', 'Hongkong Asia/Hong_Kong');
abbreviate('CST', 'CDT', 'PRC ROC Asia/Shanghai Asia/Chongqing Asia/Chungking Asia/Harbin Asia/Taipei Asia/Macau Asia/Macao Cuba America/Havana');
abbreviate('JST', 'JDT', 'Japan Asia/Tokyo');
abbreviate('KST', 'KDT', 'ROK Asia/Seoul');
abbreviate('KST', 'KST', 'Asia/Pyongyang');
abbreviate('PST', 'PDT', 'Asia/Manila');
abbreviate('WIB', 'WIB', 'Asia/Jakarta Asia/Pontianak');
abbreviate('WITA', 'WITA', 'Asia/Makassar Asia/Ujung_Pandang');
abbreviate('WIT', 'WIT', 'Asia/Jayapura');
abbreviate('AEST', 'AEDT', 'Australia/Sydney Australia/Melbourne Australia/Hobart Australia/Canberra Australia/ACT Australia/NSW Australia/Victoria Australia/Tasmania Australia/Currie Antarctica/Macquarie');
abbreviate('AEST', 'AEST', 'Australia/Brisbane Australia/Lindeman Australia/Queensland');
abbreviate('ACST', 'ACDT', 'Australia/Adelaide Australia/Broken_Hill Australia/South Australia/Yancowinna');
abbreviate('ACST', 'ACST', 'Australia/Darwin Australia/North');
abbreviate('AWST', 'AWST', 'Australia/Perth Australia/West');
abbreviate('NZST', 'NZDT', 'NZ Pacific/Auckland Antarctica/McMurdo Antarctica/South_Pole');
abbreviate('ChST', 'ChST', 'Pacific/Guam Pacific/Saipan');
abbreviate('SST', 'SST', 'Pacific/Pago_Pago Pacific/Midway Pacific/Samoa US/Samoa');
abbreviate('NST', 'NDT', 'America/St_Johns Canada/Newfoundland');
abbreviate('CAT', 'CAT', 'Africa/Maputo Africa/Harare Africa/Lusaka Africa/Blantyre Africa/Bujumbura Africa/Gaborone Africa/Kigali Africa/Lubumbashi Africa/Windhoek Africa/Juba Africa/Khartoum');
abbreviate('EAT', 'EAT', 'Africa/Nairobi Africa/Addis_Ababa Africa/Asmara Africa/Asmera Africa/Dar_es_Salaam Africa/Djibouti Africa/Kampala Africa/Mogadishu Indian/Antananarivo Indian/Comoro Indian/Mayotte');
abbreviate('WAT', 'WAT', 'Africa/Lagos Africa/Kinshasa Africa/Luanda Africa/Douala Africa/Libreville Africa/Malabo Africa/Niamey Africa/Ndjamena Africa/Porto-Novo Africa/Bangui Africa/Brazzaville');
abbreviate('SAST', 'SAST', 'Africa/Johannesburg Africa/Maseru Africa/Mbabane');
// POSIX-style zones (links to the US zones since tzdata 2024b); ICU names them by offset.
abbreviate('EST', 'EDT', 'EST5EDT');
abbreviate('CST', 'CDT', 'CST6CDT');
abbreviate('MST', 'MDT', 'MST7MDT');
abbreviate('PST', 'PDT', 'PST8PDT');

/**
 * ICU's own legacy IDs, which Intl accepts but tzdata (and so Go) does not
 * have: `PST`, `IST`, `SystemV/...` and zones removed from tzdata.
 */
const ICU_ONLY_ZONE =
  /^(?:ACT|AET|AGT|ART|AST|BET|BST|CAT|CNT|CST|CTT|EAT|ECT|IET|IST|JST|MIT|NET|NST|PLT|PNT|PRT|PST|SST|VST|SystemV\/.*|US\/Pacific-New|Canada\/East-Saskatchewan)$/;

const LONG_OFFSET = /^GMT(?:([+-])(\d{1,2})(?::(\d{2}))?(?::(\d{2}))?)?$/;

/** tzdata's numeric abbreviation ("+03", "+0530", "-0930") for zones without a name. */
function numericAbbreviation(offset: number): string {
  const abs = Math.abs(offset);
  const minutes = Math.floor(abs / 60) % 60;
  return (offset < 0 ? '-' : '+') + String(Math.floor(abs / 3600)).padStart(2, '0') + (minutes === 0 ? '' : String(minutes).padStart(2, '0'));
}

/** Bound on each zone's per-hour offset cache (entries, ~100 KB). */
const MAX_CACHED_HOURS = 2048;

/** Reference instants (2025-01-15, 2025-07-15) that name a zone's standard and daylight offsets. */
const REFERENCE_SECS = [daysFromCivil(2025, 1, 15) * 86400, daysFromCivil(2025, 7, 15) * 86400] as const;

/** A zone from ICU, with the formatters it needs created once. */
function intlZone(name: string, icuId: string): Zone {
  const offsetFormat = new Intl.DateTimeFormat('en-US', { timeZone: icuId, timeZoneName: 'longOffset' });
  let shortFormat: Intl.DateTimeFormat | undefined;
  let namesByOffset: Map<number, string> | undefined;
  let earliestOffset: number | undefined;

  const intlOffsetAt = (unixSec: number): number => {
    const text = offsetFormat.formatToParts(unixSec * 1000).find((p) => p.type === 'timeZoneName')?.value ?? '';
    const m = LONG_OFFSET.exec(text);
    if (!m) throw new Error(`unexpected Intl offset ${JSON.stringify(text)} for ${name}`);
    if (m[1] === undefined) return 0;
    const abs = Number(m[2]) * 3600 + Number(m[3] ?? 0) * 60 + Number(m[4] ?? 0);
    return m[1] === '-' ? -abs : abs;
  };
  // An Intl lookup costs ~3 µs; requests cluster around "now". Cache the
  // offset per UTC hour when both ends of the hour agree (no zone changes
  // offset and back within an hour); an hour holding a transition is marked
  // NaN and always looked up exactly.
  const hourOffsets = new Map<number, number>();
  const offsetAt = (unixSec: number): number => {
    const hour = Math.floor(unixSec / 3600);
    let offset = hourOffsets.get(hour);
    if (offset === undefined) {
      const first = intlOffsetAt(hour * 3600);
      offset = first === intlOffsetAt(hour * 3600 + 3599) ? first : Number.NaN;
      if (hourOffsets.size >= MAX_CACHED_HOURS) hourOffsets.clear();
      hourOffsets.set(hour, offset);
    }
    return Number.isNaN(offset) ? intlOffsetAt(unixSec) : offset;
  };
  // ICU's en-US short names are tzdata's for the Americas (PST, EST, AKST, ...)
  // and for UTC/GMT; elsewhere ICU says "GMT+3" where tzdata says "+03".
  const intlAbbreviation = (unixSec: number, offset: number): string => {
    shortFormat ??= new Intl.DateTimeFormat('en-US', { timeZone: icuId, timeZoneName: 'short' });
    const short = shortFormat.formatToParts(unixSec * 1000).find((p) => p.type === 'timeZoneName')?.value ?? '';
    return /^[A-Z]{3,5}$/.test(short) ? short : numericAbbreviation(offset);
  };
  // Today's standard and daylight names, keyed by offset. ICU only knows
  // names from 1970 on, and tzdata's abbreviations follow the offset far more
  // often than the date, so a past instant with today's offset gets today's name.
  const modernNames = (): Map<number, string> => {
    if (namesByOffset) return namesByOffset;
    namesByOffset = new Map();
    const [jan, jul] = REFERENCE_SECS.map((s) => ({ s, offset: offsetAt(s) })) as [{ s: number; offset: number }, { s: number; offset: number }];
    const table = ABBREVIATIONS.get(name) ?? ABBREVIATIONS.get(icuId);
    if (table) {
      // The larger offset is the daylight one (also for Dublin, whose winter
      // "GMT" is tzdata's negative DST).
      namesByOffset.set(Math.max(jan.offset, jul.offset), table[1]);
      namesByOffset.set(Math.min(jan.offset, jul.offset), table[0]);
    } else {
      for (const r of [jan, jul]) namesByOffset.set(r.offset, intlAbbreviation(r.s, r.offset));
    }
    return namesByOffset;
  };

  return {
    offsetAt,
    abbreviationAt(unixSec) {
      const offset = offsetAt(unixSec);
      const modern = modernNames().get(offset);
      if (modern !== undefined) return modern;
      // Local mean time: the zone's first offset (ICU's as of 1677), often with seconds.
      earliestOffset ??= offsetAt(MIN_UNIX_SEC);
      if (offset % 60 !== 0 || offset === earliestOffset) return 'LMT';
      return intlAbbreviation(unixSec, offset);
    },
  };
}

/** Loaded zones by name. Only valid names are kept, so the map stays bounded. */
const zones = new Map<string, Zone>();

/** Go's `time.LoadLocation`, which OPA calls for every name except "", "UTC" and "Local". */
function loadZone(name: string): Zone {
  const cached = zones.get(name);
  if (cached) return cached;
  // Go refuses these before looking anything up.
  if (name.includes('..') || name.startsWith('/') || name.startsWith('\\')) throw new Error('time: invalid location name');
  if (name === 'Factory') return FACTORY_ZONE;
  const unknown = () => new Error(`unknown time zone ${name}`);
  // Intl also takes offsets ("+05:30") and ICU-only IDs, which Go does not.
  if (name === '' || /^[+-]/.test(name) || ICU_ONLY_ZONE.test(name)) throw unknown();
  let icuId: string;
  try {
    icuId = new Intl.DateTimeFormat('en-US', { timeZone: name }).resolvedOptions().timeZone;
  } catch {
    throw unknown();
  }
  // Intl matches case-insensitively; Go's tzdata lookup is by exact file name.
  // ICU maps aliases to canonical IDs, so for an alias we can only insist on
  // the capitalised segments that every tzdata name has.
  const wrongCase = icuId !== name && (icuId.toLowerCase() === name.toLowerCase() || name.split('/').some((s) => !/^[A-Z]/.test(s)));
  if (wrongCase) throw unknown();
  const zone = /^(?:UTC|Etc\/UTC)$/.test(icuId) && !ABBREVIATIONS.has(name) ? UTC_ZONE : intlZone(name, icuId);
  zones.set(name, zone);
  return zone;
}

let localZone: Zone | undefined;

/** Go's `time.Local`: the process time zone (TZ, else the system's). */
function loadLocalZone(): Zone {
  if (!localZone) {
    const id = new Intl.DateTimeFormat().resolvedOptions().timeZone;
    localZone = id === 'UTC' || id === 'Etc/UTC' ? UTC_ZONE : intlZone(id, id);
  }
  return localZone;
}

// ---------------------------------------------------------------------------
// Instants

/** An instant in a zone: Go's `time.Unix(0, ns).In(loc)`. */
interface ZonedTime {
  readonly ns: bigint;
  readonly zone: Zone;
}

/** OPA's `tzTime`: `ns`, `[ns, tz]` or `[ns, tz, layout]`. */
function tzTime(a: unknown): { t: ZonedTime; layout: string } {
  const expected = 'either number (ns) or [number (ns), string (tz)]';
  let zone = UTC_ZONE;
  let layout = '';
  let n: unknown;
  if (Array.isArray(a)) {
    if (a.length === 0) throw operandTypeError(1, a, expected);
    n = a[0];
    if (typeof n !== 'number' && typeof n !== 'bigint' && !(n instanceof RegoNumber)) throw operandTypeError(1, n, 'number');
    if (a.length > 1) {
      const tz = stringOperand(a[1], 1);
      if (tz === 'Local') zone = loadLocalZone();
      else if (tz !== '' && tz !== 'UTC') zone = loadZone(tz);
    }
    if (a.length > 2) layout = stringOperand(a[2], 1);
  } else if (typeof a === 'number' || typeof a === 'bigint' || a instanceof RegoNumber) {
    n = a;
  } else {
    throw operandTypeError(1, a, expected);
  }
  // OPA converts the number to int64 exactly or not at all: fractions and
  // anything past int64 are "too big".
  let ns: bigint | undefined;
  if (n instanceof RegoNumber) ns = bigFloatInt64(n.text);
  else if (typeof n === 'bigint') ns = n;
  else if (typeof n === 'number' && Number.isInteger(n)) ns = BigInt(n);
  if (ns === undefined || ns < MIN_INT64 || ns > MAX_INT64) throw new Error('timestamp too big');
  return { t: { ns, zone }, layout };
}

const bitLength = (x: bigint): number => (x === 0n ? 0 : x.toString(2).length);

/**
 * OPA's `NumberToFloat(n).Int64()` when exact: the decimal text is rounded to
 * a big.Float of 64-bit precision (nearest even), which must then be an
 * integer. So `9223372036854775807.0` and `1e2` are integers, `1.5` and
 * `1e-400` are not, and `1795455000123456789.0000000001` rounds to one.
 * Returns undefined when not an integer (the caller's range check follows).
 */
export function bigFloatInt64(text: string): bigint | undefined {
  const m = /^(-?)([0-9]+)(?:\.([0-9]+))?(?:[eE]([-+]?[0-9]+))?$/.exec(text);
  if (!m) return undefined;
  const neg = m[1] === '-';
  const frac = m[3] ?? '';
  const exp = Number(m[4] ?? '0') - frac.length;
  const digits = BigInt((m[2] as string) + frac);
  if (digits === 0n) return 0n;
  if (!Number.isSafeInteger(exp) || exp > 40) return undefined; // far beyond int64
  if (exp < -400 - frac.length) return undefined; // far below 1: never rounds to an integer
  let num = exp >= 0 ? digits * 10n ** BigInt(exp) : digits;
  const den = exp >= 0 ? 1n : 10n ** BigInt(-exp);
  if (num / den >= 1n << 64n) return undefined;
  // Scale by 2^s so the quotient has exactly 64 bits, then round half to even.
  let s = 64 - (bitLength(num) - bitLength(den));
  const scaled = (k: number): bigint => (k >= 0 ? (num << BigInt(k)) / den : num / (den << BigInt(-k)));
  while (bitLength(scaled(s)) > 64) s--;
  while (bitLength(scaled(s)) < 64) s++;
  let q = scaled(s);
  const rem = s >= 0 ? (num << BigInt(s)) - q * den : num - q * (den << BigInt(-s));
  const unit = s >= 0 ? den : den << BigInt(-s);
  if (2n * rem > unit || (2n * rem === unit && (q & 1n) === 1n)) q++;
  // The rounded value is q / 2^s.
  let int: bigint;
  if (s <= 0) int = q << BigInt(-s);
  else {
    if (q % (1n << BigInt(s)) !== 0n) return undefined;
    int = q >> BigInt(s);
  }
  num = neg ? -int : int;
  return num;
}

/** The calendar fields of an instant in its zone. */
function breakDown({ ns, zone }: ZonedTime): BrokenDownTime {
  const secBig = floorDiv(ns, NS_PER_SEC);
  const unixSec = Number(secBig);
  const offset = zone.offsetAt(unixSec);
  const local = unixSec + offset;
  const days = Math.floor(local / 86400);
  const secOfDay = local - days * 86400;
  const [year, month, day] = civilFromDays(days);
  return {
    year,
    month,
    day,
    yday: days - daysFromCivil(year, 1, 1) + 1,
    weekday: (((days + 4) % 7) + 7) % 7, // 1970-01-01 was a Thursday
    hour: Math.floor(secOfDay / 3600),
    minute: Math.floor(secOfDay / 60) % 60,
    second: secOfDay % 60,
    nanosecond: Number(ns - secBig * NS_PER_SEC),
    offset,
    zoneName: () => zone.abbreviationAt(unixSec),
  };
}

/**
 * Go's `time.Date` zone step: the instant whose wall clock in `zone` reads
 * `localSec`. In a gap or an overlap Go picks by this exact two-lookup rule,
 * which we keep so DST edges match OPA.
 */
function wallToUnix(localSec: number, zone: Zone): number {
  const offset = zone.offsetAt(localSec);
  if (offset === 0) return localSec;
  return localSec - zone.offsetAt(localSec - offset);
}

/**
 * Go's `Location.lookupName` on the Local zone, approximated with the offsets
 * the zone uses in that year: which offset a parsed abbreviation (`PST`) means.
 */
function lookupLocalAbbreviation(name: string, unixSec: number): number | undefined {
  const zone = loadLocalZone();
  if (zone === UTC_ZONE) return undefined; // Go's UTC Local has no named zones besides "UTC"
  const year = civilFromDays(Math.floor(unixSec / 86400))[0];
  const probes = [unixSec, daysFromCivil(year, 1, 1) * 86400, daysFromCivil(year, 7, 1) * 86400];
  // First, a zone with that name in effect at the given time...
  for (const probe of probes) {
    const offset = zone.offsetAt(probe);
    const at = unixSec - offset;
    if (zone.offsetAt(at) === offset && zone.abbreviationAt(at) === name) return offset;
  }
  // ...else any zone with that name, including the earliest one (LMT).
  for (const probe of [...probes, MIN_UNIX_SEC]) if (zone.abbreviationAt(probe) === name) return zone.offsetAt(probe);
  return undefined;
}

/** Go's `time.Parse(layout, value)` then OPA's range check. */
function parseNs(layout: string, value: string): number | bigint {
  const f = parseGoLayout(toByteString(layout), toByteString(value));
  let sec = daysFromCivil(f.year, f.month, f.day) * 86400 + f.hour * 3600 + f.minute * 60 + f.second;
  if (f.utc) {
    // Already UTC.
  } else if (f.zoneOffset !== undefined) {
    sec -= f.zoneOffset;
  } else if (f.zoneName !== '') {
    // A known Local abbreviation gives its offset; any other name makes a
    // fabricated zone in Go *without* shifting the instant (even "GMT+3").
    sec -= lookupLocalAbbreviation(f.zoneName, sec) ?? 0;
  }
  return safeUnixNano(BigInt(sec) * NS_PER_SEC + BigInt(f.nanosecond));
}

// ---------------------------------------------------------------------------
// Durations

const UNITS = new Map<string, bigint>([
  ['ns', 1n],
  ['us', 1_000n],
  ['\xc2\xb5s', 1_000n], // U+00B5 micro sign, as UTF-8 bytes
  ['\xce\xbcs', 1_000n], // U+03BC Greek mu, as UTF-8 bytes
  ['ms', 1_000_000n],
  ['s', NS_PER_SEC],
  ['m', 60n * NS_PER_SEC],
  ['h', 3600n * NS_PER_SEC],
]);

const TWO_63 = 1n << 63n;

/** Go's `leadingFraction`: digits after the point, stopping (not failing) on overflow. */
function leadingFraction(s: string): { f: bigint; scale: number; rem: string } {
  let f = 0n;
  let scale = 1;
  let overflow = false;
  let i = 0;
  for (; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) break;
    if (overflow) continue;
    if (f > (TWO_63 - 1n) / 10n) {
      overflow = true;
      continue;
    }
    const y = f * 10n + BigInt(c - 48);
    if (y > TWO_63) {
      overflow = true;
      continue;
    }
    f = y;
    scale *= 10;
  }
  return { f, scale, rem: s.slice(i) };
}

/** Why Go's `ParseDuration` refused a string; the caller words the message. */
type DurationError = { kind: 'invalid' } | { kind: 'missing unit' } | { kind: 'unknown unit'; unit: string };

/**
 * Go's `time.ParseDuration` over a byte string:
 * `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+`, int64 nanoseconds.
 */
function goParseDuration(orig: string): bigint | DurationError {
  const invalid: DurationError = { kind: 'invalid' };
  let s = orig;
  let d = 0n;
  let neg = false;
  if (s[0] === '-' || s[0] === '+') {
    neg = s[0] === '-';
    s = s.slice(1);
  }
  if (s === '0') return 0n;
  if (s === '') return invalid;
  while (s !== '') {
    const c0 = s.charCodeAt(0);
    if (!(c0 === 46 || (c0 >= 48 && c0 <= 57))) return invalid;
    const pl = s.length;
    const lead = leadingInt(s);
    if (lead === undefined) return invalid;
    let v = lead.x;
    s = lead.rem;
    const pre = pl !== s.length;
    let f = 0n;
    let scale = 1;
    let post = false;
    if (s[0] === '.') {
      s = s.slice(1);
      const before = s.length;
      ({ f, scale, rem: s } = leadingFraction(s));
      post = before !== s.length;
    }
    if (!pre && !post) return invalid; // no digits, e.g. ".s"
    let i = 0;
    while (i < s.length) {
      const c = s.charCodeAt(i);
      if (c === 46 || (c >= 48 && c <= 57)) break;
      i++;
    }
    if (i === 0) return { kind: 'missing unit' };
    const u = s.slice(0, i);
    s = s.slice(i);
    const unit = UNITS.get(u);
    if (unit === undefined) return { kind: 'unknown unit', unit: u };
    if (v > TWO_63 / unit) return invalid;
    v *= unit;
    if (f > 0n) {
      // Go computes the fraction in float64, nanosecond-accurate up to hours;
      // the same IEEE operations here give the same bits.
      v += BigInt(Math.trunc(Number(f) * (Number(unit) / scale)));
      if (v > TWO_63) return invalid;
    }
    d += v;
    if (d > TWO_63) return invalid;
  }
  if (neg) return -d;
  if (d > TWO_63 - 1n) return invalid;
  return d;
}

function durationError(err: DurationError, quotedInput: string): Error {
  switch (err.kind) {
    case 'invalid':
      return new Error(`time: invalid duration ${quotedInput}`);
    case 'missing unit':
      return new Error(`time: missing unit in duration ${quotedInput}`);
    case 'unknown unit':
      return new Error(`time: unknown unit ${goQuote(err.unit)} in duration ${quotedInput}`);
  }
}

/** Go's `strconv.Quote`: how OPA quotes the input in its own duration errors. */
function strconvQuote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    if (ch === '"' || ch === '\\') out += `\\${ch}`;
    else if (cp >= 0x20 && cp < 0x7f) out += ch;
    else if (cp < 0x80) out += STRCONV_ESCAPES.get(ch) ?? `\\x${cp.toString(16).padStart(2, '0')}`;
    else if (cp >= 0xd800 && cp <= 0xdfff) out += '\ufffd'; // a lone surrogate is U+FFFD once in UTF-8
    else if (GO_PRINTABLE.test(ch)) out += ch;
    else out += cp < 0x10000 ? `\\u${cp.toString(16).padStart(4, '0')}` : `\\U${cp.toString(16).padStart(8, '0')}`;
  }
  return `${out}"`;
}
const STRCONV_ESCAPES = new Map([['\x07', '\\a'], ['\b', '\\b'], ['\f', '\\f'], ['\n', '\\n'], ['\r', '\\r'], ['\t', '\\t'], ['\v', '\\v']]);
/** Go's `unicode.IsPrint` outside ASCII: letters, marks, numbers, punctuation, symbols. */
const GO_PRINTABLE = /^[\p{L}\p{M}\p{N}\p{P}\p{S}]$/u;

/** Go's `strconv.FormatFloat(x, 'f', -1, 64)`: shortest round-trip digits, never an exponent. */
function formatFloatF(x: number): string {
  if (!Number.isFinite(x)) return x > 0 ? '+Inf' : x < 0 ? '-Inf' : 'NaN';
  if (x === 0) return '0';
  const m = /^(\d)(?:\.(\d+))?e([+-]\d+)$/.exec(Math.abs(x).toExponential())!;
  const digits = m[1]! + (m[2] ?? '');
  const exp = Number(m[3]);
  let text: string;
  if (exp >= digits.length - 1) text = digits + '0'.repeat(exp - digits.length + 1);
  else if (exp >= 0) text = `${digits.slice(0, exp + 1)}.${digits.slice(exp + 1)}`;
  else text = `0.${'0'.repeat(-exp - 1)}${digits}`;
  return x < 0 ? `-${text}` : text;
}

/** Hours per OPA's extra duration units. */
const EXTRA_UNIT_HOURS = new Map([
  ['d', 24],
  ['w', 7 * 24],
  ['y', 365 * 24],
]);
/** The grammar OPA requires once an extra unit may be present (its `durationparser` PEG). */
const EXTENDED_DURATION = /^[-+]?(?:[0-9.]+(?:ms|us|\u00b5s|ns|[a-z]))+$/;
const EXTENDED_SEGMENT = /([0-9.]+)(ms|us|\u00b5s|ns|[a-z])/g;

/**
 * `time.parse_duration_ns` as OPA 1.x does it: Go's `time.ParseDuration`,
 * plus the units `d` (24h), `w` (7d) and `y` (365d).
 *
 * OPA's extension (behaviour established against `opa eval`, as its source
 * is generated from a PEG): a string with no `d`, `w` or `y` goes to Go
 * unchanged. Otherwise it must match `[-+]?([0-9.]+(ms|us|µs|ns|[a-z]))+`;
 * each `d`/`w`/`y` segment is read as a float64, multiplied into hours,
 * printed in Go's shortest form and the rebuilt string is parsed by Go.
 * Errors then quote the original string with `strconv.Quote`.
 */
export function parseDurationNs(input: string): bigint {
  if (!/[dwy]/.test(input)) {
    const bytes = toByteString(input);
    const r = goParseDuration(bytes);
    if (typeof r === 'bigint') return r;
    throw durationError(r, goQuote(bytes));
  }
  const quoted = strconvQuote(input);
  if (!EXTENDED_DURATION.test(input)) throw durationError({ kind: 'invalid' }, quoted);
  let rebuilt = input[0] === '-' || input[0] === '+' ? input[0] : '';
  for (const [, digits, unit] of input.matchAll(EXTENDED_SEGMENT)) {
    const hours = EXTRA_UNIT_HOURS.get(unit!);
    if (hours === undefined) {
      rebuilt += digits! + unit!;
      continue;
    }
    // Go's ParseFloat over [0-9.]+: a second point or a lone "." is an error.
    if (!/^(?:\d+\.?\d*|\.\d+)$/.test(digits!)) throw durationError({ kind: 'invalid' }, quoted);
    rebuilt += `${formatFloatF(Number(digits) * hours)}h`;
  }
  const r = goParseDuration(toByteString(rebuilt));
  if (typeof r === 'bigint') return r;
  throw durationError(r, quoted);
}

// ---------------------------------------------------------------------------
// Builtins

/** `time.add_date`: Go's `AddDate`, normalizing like `time.Date` (Jan 31 + 1 month = Mar 3 or 2). */
function addDate(a: unknown, yearsArg: unknown, monthsArg: unknown, daysArg: unknown): number | bigint {
  const { t } = tzTime(a);
  const years = intOperand(yearsArg, 2);
  const months = intOperand(monthsArg, 3);
  const days = intOperand(daysArg, 4);
  const b = breakDown(t);
  // Month overflow carries into the year; day overflow is plain day arithmetic.
  const m0 = BigInt(b.month - 1) + months;
  const year = BigInt(b.year) + years + floorDiv(m0, 12n);
  const month = Number(m0 - floorDiv(m0, 12n) * 12n) + 1;
  // The Gregorian calendar repeats every 400 years (146097 days), which keeps
  // the per-date arithmetic in plain numbers for any int64 year.
  const cycles = floorDiv(year, 400n);
  const dayNumber = cycles * 146097n + BigInt(daysFromCivil(Number(year - cycles * 400n), month, 1)) + BigInt(b.day - 1) + days;
  const localSec = dayNumber * 86400n + BigInt(b.hour * 3600 + b.minute * 60 + b.second);
  if (localSec < BigInt(MIN_UNIX_SEC) || localSec > BigInt(MAX_UNIX_SEC)) throw new Error('time outside of valid range');
  const unixSec = wallToUnix(Number(localSec), t.zone);
  return safeUnixNano(BigInt(unixSec) * NS_PER_SEC + BigInt(b.nanosecond));
}

/** `time.diff`: OPA's [years, months, days, hours, minutes, seconds] between two instants, in the first one's zone. */
function diff(a: unknown, b: unknown): number[] {
  const t1 = tzTime(a).t;
  const t2 = tzTime(b).t;
  // Go moves t2 into t1's location, then orders them.
  const [early, late] = t1.ns > t2.ns ? [t2.ns, t1.ns] : [t1.ns, t2.ns];
  const x = breakDown({ ns: early, zone: t1.zone });
  const y = breakDown({ ns: late, zone: t1.zone });
  let year = y.year - x.year;
  let month = y.month - x.month;
  let day = y.day - x.day;
  let hour = y.hour - x.hour;
  let min = y.minute - x.minute;
  let sec = y.second - x.second;
  // Borrow like the icza/gox algorithm OPA copies; days borrow the length of
  // the *earlier* date's month.
  if (sec < 0) {
    sec += 60;
    min--;
  }
  if (min < 0) {
    min += 60;
    hour--;
  }
  if (hour < 0) {
    hour += 24;
    day--;
  }
  if (day < 0) {
    day += daysIn(x.month, x.year);
    month--;
  }
  if (month < 0) {
    month += 12;
    year--;
  }
  return [year, month, day, hour, min, sec];
}

const implementations: Record<string, HostBuiltin> = {
  'time.now_ns': (ctx: EvalContext) => jsonInt(ctx.nowNs),

  'time.parse_ns': (_ctx, layout, value) => {
    const l = stringOperand(layout, 1);
    const v = stringOperand(value, 2);
    return parseNs(OPA_LAYOUT_CONSTANTS.get(l) ?? l, v);
  },

  'time.parse_rfc3339_ns': (_ctx, value) => parseNs(RFC3339, stringOperand(value, 1)),

  'time.parse_duration_ns': (_ctx, value) => jsonInt(parseDurationNs(stringOperand(value, 1))),

  'time.date': (_ctx, x) => {
    const b = breakDown(tzTime(x).t);
    return [b.year, b.month, b.day];
  },

  'time.clock': (_ctx, x) => {
    const b = breakDown(tzTime(x).t);
    return [b.hour, b.minute, b.second];
  },

  'time.weekday': (_ctx, x) => LONG_DAY_NAMES[breakDown(tzTime(x).t).weekday],

  'time.add_date': (_ctx, x, years, months, days) => addDate(x, years, months, days),

  'time.diff': (_ctx, a, b) => diff(a, b),

  'time.format': (_ctx, x) => {
    const { t, layout } = tzTime(x);
    return formatGoLayout(breakDown(t), layout === '' ? RFC3339_NANO : (OPA_LAYOUT_CONSTANTS.get(layout) ?? layout));
  },
};

/**
 * OPA reports a builtin's error as `<name>: <error>`
 * (`time.parse_ns: time outside of valid range`); the wasm engine passes a
 * thrown message through unchanged, so the name is added here.
 */
function named(name: string, fn: HostBuiltin): HostBuiltin {
  // Numbers as exact text: OPA converts them from their decimal spelling (number-text.ts).
  return (ctx, ...args) => {
    try {
      return fn(ctx, ...exactArguments(args));
    } catch (err) {
      if (err instanceof Error) err.message = `${name}: ${err.message}`;
      throw err;
    }
  };
}

/**
 * The `time.*` builtins OPA's wasm target imports from the host, by name.
 * A builtin error throws an Error with OPA's message (regate treats builtin
 * errors strictly: the evaluation fails, the request is denied).
 */
export const timeBuiltins: Readonly<Record<string, HostBuiltin>> = Object.freeze(
  Object.fromEntries(Object.entries(implementations).map(([name, fn]) => [name, named(name, fn)])),
);
