// The process time zone is what `[ns, "Local"]` means (Go's time.Local). Set
// before any builtin runs (the zone is resolved on first use); node --test
// runs each file in its own process, so no other file sees it.
process.env.TZ = 'America/New_York';

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import type { EvalContext } from '../../../../src/policy/builtins/index.ts';
import { bigFloatInt64, intFromText, parseDurationNs, timeBuiltins } from '../../../../src/policy/builtins/time.ts';
import { RegoNumber } from '../../../../src/policy/number-text.ts';
import { parseJsonPrecise, stringifyJson } from '../../../../src/policy/precise-json.ts';
import { opaBin } from '../../../helpers/opa.ts';

const CTX: EvalContext = { nowNs: 1670006453141828752n };
const LA = 'America/Los_Angeles';

/** Call a builtin by its Rego name. */
function call(name: string, ...args: unknown[]): unknown {
  const fn = timeBuiltins[name];
  assert.ok(fn, `no builtin ${name}`);
  return fn(CTX, ...args);
}

/** RFC 3339 (with offset) → ns, through the builtin itself. */
const ns = (rfc3339: string): bigint => BigInt(call('time.parse_rfc3339_ns', rfc3339) as number | bigint);
const fmt = (x: unknown, tz: string, layout: string): unknown => call('time.format', [x, tz, layout]);

function assertThrowsMessage(fn: () => unknown, message: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof Error);
    assert.equal(err.message, message);
    return true;
  });
}

describe('time.now_ns', () => {
  it('returns the evaluation clock exactly', () => {
    assert.equal(call('time.now_ns'), 1670006453141828752n);
    assert.equal(timeBuiltins['time.now_ns']!({ nowNs: 42n }), 42);
  });
});

describe('America/Los_Angeles DST transitions, 1 ns either side', () => {
  // 2026-03-08 02:00 PST → 03:00 PDT (10:00Z); 2026-11-01 02:00 PDT → 01:00 PST (09:00Z).
  const SPRING = 1772964000n * 1_000_000_000n;
  const FALL = 1793523600n * 1_000_000_000n;
  const layout = '2006-01-02T15:04:05.999999999 MST Z07:00';

  it('spring forward', () => {
    assert.equal(fmt(SPRING - 1n, LA, layout), '2026-03-08T01:59:59.999999999 PST -08:00');
    assert.equal(fmt(SPRING, LA, layout), '2026-03-08T03:00:00 PDT -07:00');
    assert.deepEqual(call('time.clock', [SPRING - 1n, LA]), [1, 59, 59]);
    assert.deepEqual(call('time.clock', [SPRING, LA]), [3, 0, 0]);
    assert.deepEqual(call('time.date', [SPRING - 1n, LA]), [2026, 3, 8]);
    assert.deepEqual(call('time.date', [SPRING, LA]), [2026, 3, 8]);
    assert.equal(call('time.weekday', [SPRING - 1n, LA]), 'Sunday');
    assert.equal(call('time.weekday', [SPRING, LA]), 'Sunday');
  });

  it('fall back', () => {
    assert.equal(fmt(FALL - 1n, LA, layout), '2026-11-01T01:59:59.999999999 PDT -07:00');
    assert.equal(fmt(FALL, LA, layout), '2026-11-01T01:00:00 PST -08:00');
    assert.deepEqual(call('time.clock', [FALL - 1n, LA]), [1, 59, 59]);
    assert.deepEqual(call('time.clock', [FALL, LA]), [1, 0, 0]);
    assert.deepEqual(call('time.date', [FALL, LA]), [2026, 11, 1]);
    assert.equal(call('time.weekday', [FALL + 1n, LA]), 'Sunday');
  });

  it('the same instants in UTC and as a plain number', () => {
    assert.deepEqual(call('time.clock', SPRING), [10, 0, 0]);
    assert.deepEqual(call('time.clock', [SPRING, '']), [10, 0, 0]);
    assert.deepEqual(call('time.clock', [SPRING, 'UTC']), [10, 0, 0]);
    assert.equal(call('time.format', FALL - 1n), '2026-11-01T08:59:59.999999999Z');
  });

  it('add_date counts calendar days in the zone, with Go’s choice in gaps and overlaps', () => {
    const noon = ns('2026-03-07T12:00:00-08:00');
    const nextNoon = BigInt(call('time.add_date', [noon, LA], 0, 0, 1) as bigint);
    assert.equal(nextNoon - noon, 23n * 3600n * 1_000_000_000n);
    assert.equal(fmt(nextNoon, LA, layout), '2026-03-08T12:00:00 PDT -07:00');
    // In UTC the same day is 24 h.
    assert.equal(fmt(call('time.add_date', noon, 0, 0, 1), LA, layout), '2026-03-08T13:00:00 PDT -07:00');
    // 02:30 does not exist on 2026-03-08; Go lands on 01:30 PST.
    assert.equal(fmt(call('time.add_date', [ns('2026-03-07T02:30:00-08:00'), LA], 0, 0, 1), LA, layout), '2026-03-08T01:30:00 PST -08:00');
    // 01:30 happens twice on 2026-11-01; Go picks the first (PDT) from either side.
    assert.equal(fmt(call('time.add_date', [ns('2026-10-31T01:30:00-07:00'), LA], 0, 0, 1), LA, layout), '2026-11-01T01:30:00 PDT -07:00');
    assert.equal(fmt(call('time.add_date', [ns('2026-11-02T01:30:00-08:00'), LA], 0, 0, -1), LA, layout), '2026-11-01T01:30:00 PDT -07:00');
  });

  it('diff compares wall clocks in the first argument’s zone', () => {
    const from = ns('2026-03-08T00:00:00-08:00');
    const to = ns('2026-03-09T00:00:00-07:00');
    assert.deepEqual(call('time.diff', [from, LA], [to, LA]), [0, 0, 1, 0, 0, 0]);
    assert.deepEqual(call('time.diff', from, to), [0, 0, 0, 23, 0, 0]);
    assert.deepEqual(call('time.diff', to, from), [0, 0, 0, 23, 0, 0]);
  });

  it('"Local" is the process zone (TZ=America/New_York here)', () => {
    assert.equal(call('time.format', [0, 'Local']), '1969-12-31T19:00:00-05:00');
    assert.equal(fmt(0, 'Local', 'MST'), 'EST');
    // A parsed abbreviation of the Local zone carries its offset...
    assert.equal(call('time.parse_ns', '2006-01-02 15:04 MST', '2026-07-01 12:00 EDT'), 1782921600000000000n);
    assert.equal(call('time.parse_ns', '2006-01-02 15:04 MST', '2026-07-01 12:00 EST'), 1782925200000000000n);
    // ...any other abbreviation reads the wall clock as UTC, as Go does (even GMT+3).
    assert.equal(call('time.parse_ns', '2006-01-02 15:04 MST', '2026-07-01 12:00 PST'), 1782907200000000000n);
    assert.equal(call('time.parse_ns', '2006-01-02 15:04 MST', '2026-07-01 12:00 GMT+3'), 1782907200000000000n);
  });
});

describe('Go layouts', () => {
  // Go's reference time 2006-01-02T15:04:05-07:00 in a zone that is MST all year.
  const REFERENCE = 1136239445000000000n;

  it('formats every token of the reference time', () => {
    const layout =
      'Mon Monday Jan January 1 01 2 02 _2 __2 002 06 2006 15 3 03 4 04 5 05 PM pm MST -0700 -07:00 -07 -070000 -07:00:00 Z0700 Z07:00 Z07 Z070000 Z07:00:00 .000 .999 ,000 ,999 .9 _2006';
    assert.equal(
      fmt(REFERENCE, 'America/Phoenix', layout),
      'Mon Monday Jan January 1 01 2 02  2   2 002 06 2006 15 3 03 4 04 5 05 PM pm MST -0700 -07:00 -07 -070000 -07:00:00 -0700 -07:00 -07 -070000 -07:00:00 .000  ,000   _2006',
    );
    assert.equal(fmt(REFERENCE, 'UTC', 'Z0700 Z07:00 -0700 MST'), 'Z Z +0000 UTC');
  });

  it('formats fractional seconds: .000 keeps zeros, .999 trims them', () => {
    assert.equal(fmt(REFERENCE + 12300000n, 'UTC', '05.000 05.999 05,000000 05.9 05.000000000000'), '05.012 05.012 05,012300 05 05.012300000');
    assert.equal(fmt(REFERENCE, 'UTC', '05.999|05.000'), '05|05.000');
  });

  it('accepts exactly the Go constant names OPA maps', () => {
    const t = 1670006453141828752n;
    const expected: Record<string, string> = {
      ANSIC: 'Sat Dec  3 00:10:53 2022',
      UnixDate: 'Sat Dec  3 00:10:53 IST 2022',
      RubyDate: 'Sat Dec 03 00:10:53 +0530 2022',
      RFC822: '03 Dec 22 00:10 IST',
      RFC822Z: '03 Dec 22 00:10 +0530',
      RFC850: 'Saturday, 03-Dec-22 00:10:53 IST',
      RFC1123: 'Sat, 03 Dec 2022 00:10:53 IST',
      RFC1123Z: 'Sat, 03 Dec 2022 00:10:53 +0530',
      RFC3339: '2022-12-03T00:10:53+05:30',
      RFC3339Nano: '2022-12-03T00:10:53.141828752+05:30',
      // Not mapped by OPA: used as literal layouts.
      Kitchen: 'Kitchen',
      DateTime: 'DateTime',
      StampMilli: 'StampMilli',
    };
    for (const [name, text] of Object.entries(expected)) assert.equal(fmt(t, 'Asia/Kolkata', name), text, name);
    assert.equal(call('time.format', [t, 'Asia/Kolkata']), '2022-12-03T00:10:53.141828752+05:30');
  });

  it('round-trips format → parse_ns', () => {
    // The int64 extremes only in UTC: before ~1920 zones used local mean time, whose
    // offset has seconds that -07:00 layouts drop (as in Go).
    const instants = [0n, -1n, 1n, 1772964000n * 1_000_000_000n - 1n, 1670006453141828752n, -1000000000000000000n, 7000000000000000000n];
    const layouts = ['RFC3339Nano', '2006-01-02T15:04:05.000000000Z07:00', 'Mon, 02 Jan 2006 15:04:05.999999999 -0700', '2006-01-02 15:04:05,000000000 -07:00:00'];
    for (const t of [-9223372036854775808n, 9223372036854775807n]) assert.equal(call('time.parse_ns', 'RFC3339Nano', call('time.format', t)), t);
    for (const zone of ['UTC', LA, 'Asia/Kathmandu', 'America/St_Johns']) {
      for (const t of instants) {
        for (const layout of layouts) {
          const text = fmt(t, zone, layout) as string;
          assert.equal(BigInt(call('time.parse_ns', layout, text) as number | bigint), t, `${zone} ${layout} ${text}`);
        }
      }
    }
  });

  it('parses the way Go does', () => {
    // Two-digit years pivot at 69.
    assert.equal(call('time.parse_ns', '06-01-02', '69-01-01'), -31536000000000000n);
    assert.equal(call('time.parse_ns', '06-01-02', '68-12-31'), 3124137600000000000n);
    // Day of year, AM/PM, space-padded day, a fraction the layout does not mention.
    assert.equal(call('time.parse_ns', '2006 002', '2024 060'), 1709164800000000000n);
    assert.equal(call('time.parse_ns', '2006 __2', '2023  60'), 1677628800000000000n);
    assert.equal(call('time.parse_ns', '2006-01-02 3:04PM', '2026-01-02 12:30AM'), 1767313800000000000n);
    assert.equal(call('time.parse_ns', '2006-01-02 3:04pm', '2026-01-02 12:30pm'), 1767357000000000000n);
    assert.equal(call('time.parse_ns', '2006 Jan _2 15:04:05', '2026 Feb  3 04:05:06.789'), 1770091506789000000n);
    // Month and day names match case-insensitively; spaces match runs of spaces.
    assert.equal(call('time.parse_ns', 'Monday January 2 2006', 'FRIDAY   DECEMBER 2 2022'), 1669939200000000000n);
    // Without a zone, UTC; with an offset, that offset.
    assert.equal(call('time.parse_ns', '2006-01-02 15:04', '1970-01-02 00:00'), 86_400_000_000_000);
    assert.equal(call('time.parse_ns', '2006-01-02T15:04:05Z07:00', '2017-06-02T19:00:00-07:00'), 1496455200000000000n);
  });

  it('reports parse errors with Go’s text', () => {
    const cases: [string, string, string][] = [
      ['2006-01-02', 'x', 'parsing time "x" as "2006-01-02": cannot parse "x" as "2006"'],
      ['2006-01-02', '2026-02-30', 'parsing time "2026-02-30": day out of range'],
      ['2006-01-02', '2026-13-01', 'parsing time "2026-13-01": month out of range'],
      ['15:04', '24:00', 'parsing time "24:00": hour out of range'],
      ['2006-01-02', '2026-01-02 extra', 'parsing time "2026-01-02 extra": extra text: " extra"'],
      ['2006-01-02 MST', '2026-01-02 Zürich', 'parsing time "2026-01-02 Z\\xc3\\xbcrich" as "2006-01-02 MST": cannot parse "Z\\xc3\\xbcrich" as "MST"'],
      ['2006 002', '2026 366', 'parsing time "2026 366": day-of-year out of range'],
      ['15:04', '12:30', 'time outside of valid range'], // year 0
    ];
    for (const [layout, value, message] of cases) assertThrowsMessage(() => call('time.parse_ns', layout, value), `time.parse_ns: ${message}`);
  });
});

describe('time.parse_duration_ns', () => {
  it('parses Go duration syntax', () => {
    const cases: [string, number | bigint][] = [
      ['0', 0],
      ['-0', 0],
      ['300ms', 300_000_000],
      ['-1.5h', -5_400_000_000_000],
      ['1h2m3.5s', 3_723_500_000_000],
      ['2us', 2000],
      ['2µs', 2000], // micro sign
      ['2μs', 2000], // Greek mu
      ['15ns', 15],
      ['.5s', 500_000_000],
      ['1.s', 1_000_000_000],
      ['+1m1m', 120_000_000_000],
      ['0.3333333333333333333333h', 1_200_000_000_000], // Go's float64 fraction arithmetic
      ['2562047h47m16.854775807s', 9223372036854775807n],
      ['-2562047h47m16.854775808s', -9223372036854775808n],
    ];
    for (const [text, expected] of cases) assert.equal(call('time.parse_duration_ns', text), expected, text);
    assert.equal(parseDurationNs('1h'), 3_600_000_000_000n);
  });

  it('adds OPA’s d, w and y units (24h, 7d, 365d)', () => {
    const cases: [string, number | bigint][] = [
      ['1.5d', 129_600_000_000_000],
      ['2w3d', 1_468_800_000_000_000],
      ['1y', 31_536_000_000_000_000n],
      ['0.1y', 3_153_600_000_000_000],
      ['-1.5w', -907_200_000_000_000],
      ['1d12h30m', 131_400_000_000_000],
      ['106751d23h47m16.854775807s', 9223372036854775807n],
      ['-106751d23h47m16.854775808s', -9223372036854775808n],
      // A d/w/y segment becomes float64 hours printed in Go's shortest form.
      ['106751.99116730063d', 9223372036854774000n],
      ['0.0665441d', 5_749_410_239_999],
    ];
    for (const [text, expected] of cases) assert.equal(call('time.parse_duration_ns', text), expected, text);
  });

  it('rejects what OPA rejects, with its text', () => {
    const cases: [string, string][] = [
      // No d/w/y: Go's own errors, quoting bytes.
      ['', 'time: invalid duration ""'],
      ['ns', 'time: invalid duration "ns"'],
      ['1', 'time: missing unit in duration "1"'],
      ['1x', 'time: unknown unit "x" in duration "1x"'],
      ['1D', 'time: unknown unit "D" in duration "1D"'],
      ['1µ', 'time: unknown unit "\\xc2\\xb5" in duration "1\\xc2\\xb5"'],
      ['1h 2m', 'time: unknown unit "h " in duration "1h 2m"'],
      ['.s', 'time: invalid duration ".s"'],
      ['9223372036854775808ns', 'time: invalid duration "9223372036854775808ns"'],
      ['2562047h47m16.854775808s', 'time: invalid duration "2562047h47m16.854775808s"'],
      // With d/w/y: OPA's grammar, the original string quoted by strconv.Quote.
      ['2dd', 'time: invalid duration "2dd"'],
      ['1day', 'time: invalid duration "1day"'],
      ['1.5.5d', 'time: invalid duration "1.5.5d"'],
      ['1d\t', 'time: invalid duration "1d\\t"'],
      ['1µd', 'time: invalid duration "1µd"'],
      ['1d1x', 'time: unknown unit "x" in duration "1d1x"'],
      ['1d1.5.5h', 'time: missing unit in duration "1d1.5.5h"'],
      ['106752d', 'time: invalid duration "106752d"'],
    ];
    for (const [text, message] of cases) assertThrowsMessage(() => call('time.parse_duration_ns', text), `time.parse_duration_ns: ${message}`);
  });
});

describe('time.add_date', () => {
  const day = (t: unknown) => fmt(t, 'UTC', '2006-01-02');

  it('normalizes like Go’s AddDate: Jan 31 + 1 month overflows into March', () => {
    assert.equal(day(call('time.add_date', ns('2026-01-31T10:00:00Z'), 0, 1, 0)), '2026-03-03');
    assert.equal(day(call('time.add_date', ns('2024-01-31T10:00:00Z'), 0, 1, 0)), '2024-03-02');
    assert.equal(day(call('time.add_date', ns('2024-02-29T10:00:00Z'), 1, 0, 0)), '2025-03-01');
    assert.equal(day(call('time.add_date', ns('2026-03-31T10:00:00Z'), 0, -1, 0)), '2026-03-03');
    assert.equal(day(call('time.add_date', ns('2026-01-15T00:00:00Z'), 0, -13, 0)), '2024-12-15');
    assert.equal(day(call('time.add_date', ns('2026-01-15T00:00:00Z'), 0, 0, 1000)), '2028-10-11');
    assert.equal(day(call('time.add_date', ns('1900-03-01T00:00:00Z'), 0, 0, 36524)), '2000-02-29');
  });

  it('keeps nanoseconds and checks the int64 range', () => {
    assert.equal(call('time.add_date', 1585852421593912000n, 3, 9, 12), 1705257221593912000n);
    assert.equal(call('time.add_date', 9223372036854775807n, 0, 0, 0), 9223372036854775807n);
    assertThrowsMessage(() => call('time.add_date', 9223372036854775807n, 0, 0, 1), 'time.add_date: time outside of valid range');
    assertThrowsMessage(() => call('time.add_date', 0, 9223372036854775807n, 0, 0), 'time.add_date: time outside of valid range');
    // Years far outside the range and back in again still compute exactly.
    assert.equal(call('time.add_date', 0, 400_000, 0, -146097 * 1000), 0);
  });

  it('requires integer years, months and days', () => {
    assertThrowsMessage(() => call('time.add_date', 0, 1.5, 0, 0), 'time.add_date: operand 2 must be integer number but got floating-point number');
    assertThrowsMessage(() => call('time.add_date', 0, 0, '1', 0), 'time.add_date: operand 3 must be number but got string');
    assertThrowsMessage(() => call('time.add_date', 0, 0, 0, 1n << 63n), 'time.add_date: operand 4 must be integer number but got floating-point number');
  });
});

describe('time.diff', () => {
  it('returns absolute [y, m, d, h, min, s], borrowing the earlier month’s length', () => {
    const p = (s: string) => call('time.parse_ns', '2006-01-02', s);
    assert.deepEqual(call('time.diff', p('2020-02-02'), p('2020-03-01')), [0, 0, 28, 0, 0, 0]);
    assert.deepEqual(call('time.diff', p('2021-02-02'), p('2021-03-01')), [0, 0, 27, 0, 0, 0]);
    assert.deepEqual(call('time.diff', p('2004-02-29'), p('2005-03-01')), [1, 0, 1, 0, 0, 0]);
    assert.deepEqual(call('time.diff', -9223372036854775808n, 9223372036854775807n), [584, 6, 20, 23, 34, 33]);
  });
});

describe('operands and errors', () => {
  it('timestamps must be int64 nanoseconds', () => {
    for (const name of ['time.date', 'time.clock', 'time.weekday', 'time.format']) {
      assertThrowsMessage(() => call(name, 1.5), `${name}: timestamp too big`);
      assertThrowsMessage(() => call(name, 1582977600 * 10e12), `${name}: timestamp too big`);
      assertThrowsMessage(() => call(name, 9223372036854775808n), `${name}: timestamp too big`);
      assertThrowsMessage(() => call(name, [-9223372036854775809n, 'UTC']), `${name}: timestamp too big`);
    }
    assert.deepEqual(call('time.date', -9223372036854775808n), [1677, 9, 21]);
    assert.deepEqual(call('time.date', 9223372036854775807n), [2262, 4, 11]);
  });

  it('time zones are tzdata names, exactly spelled', () => {
    assertThrowsMessage(() => call('time.date', [0, 'Mars/Olympus']), 'time.date: unknown time zone Mars/Olympus');
    assertThrowsMessage(() => call('time.date', [0, 'america/new_york']), 'time.date: unknown time zone america/new_york');
    assertThrowsMessage(() => call('time.date', [0, 'utc']), 'time.date: unknown time zone utc');
    assertThrowsMessage(() => call('time.date', [0, 'PST']), 'time.date: unknown time zone PST'); // ICU-only alias
    assertThrowsMessage(() => call('time.date', [0, '+05:30']), 'time.date: unknown time zone +05:30');
    assertThrowsMessage(() => call('time.date', [0, '../etc/passwd']), 'time.date: time: invalid location name');
    // Aliases and Etc zones that tzdata has.
    assert.deepEqual(call('time.clock', [0, 'US/Pacific']), [16, 0, 0]);
    assert.deepEqual(call('time.clock', [0, 'Asia/Calcutta']), [5, 30, 0]);
    assert.deepEqual(call('time.clock', [0, 'Etc/GMT+5']), [19, 0, 0]);
    assert.equal(fmt(0, 'Etc/GMT+5', 'MST'), '-05');
    assert.equal(fmt(0, 'GMT', 'MST'), 'GMT');
  });

  it('reports operand types as OPA does', () => {
    assertThrowsMessage(() => call('time.date', 'now'), 'time.date: operand 1 must be either number (ns) or [number (ns), string (tz)] but got string');
    assertThrowsMessage(() => call('time.date', []), 'time.date: operand 1 must be either number (ns) or [number (ns), string (tz)] but got array');
    assertThrowsMessage(() => call('time.date', ['0']), 'time.date: operand 1 must be number but got string');
    assertThrowsMessage(() => call('time.date', [0, 1]), 'time.date: operand 1 must be string but got number');
    assertThrowsMessage(() => call('time.format', [0, 'UTC', null]), 'time.format: operand 1 must be string but got null');
    assertThrowsMessage(() => call('time.parse_ns', 1, 'x'), 'time.parse_ns: operand 1 must be string but got number');
    assertThrowsMessage(() => call('time.parse_rfc3339_ns', {}), 'time.parse_rfc3339_ns: operand 1 must be string but got object');
  });
});

// ---------------------------------------------------------------------------
// Differential check against OPA's Go implementation (`opa eval`, topdown).

/** A small deterministic PRNG (mulberry32), so failures reproduce. */
function prng(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface DiffCase {
  id: string;
  fn: string;
  args: unknown[];
}

/**
 * Generated cases. Zone-dependent instants stay in 1972..2025 and in zones
 * whose rules and abbreviations have been stable since: the offsets come from
 * Node's ICU on one side and the host's tzdata on the other, and the two only
 * agree where history is settled. UTC instants cover the whole int64 range.
 */
function generateCases(count: number): DiffCase[] {
  const rnd = prng(20260308);
  const pick = <X>(a: readonly X[]): X => a[Math.floor(rnd() * a.length)]!;
  const int = (lo: number, hi: number) => lo + Math.floor(rnd() * (hi - lo + 1));
  const big = (lo: bigint, hi: bigint) => lo + (BigInt(Math.floor(rnd() * 2 ** 32)) * 2n ** 32n + BigInt(Math.floor(rnd() * 2 ** 32))) % (hi - lo + 1n);
  const zones = ['', 'UTC', 'Local', LA, 'America/New_York', 'America/St_Johns', 'Europe/London', 'Europe/Berlin', 'Asia/Kolkata', 'Asia/Tokyo', 'Australia/Sydney', 'Pacific/Chatham', 'Etc/GMT+5'];
  const layouts = ['RFC3339', 'RFC3339Nano', 'ANSIC', 'UnixDate', 'RubyDate', 'RFC822', 'RFC822Z', 'RFC850', 'RFC1123', 'RFC1123Z', 'Kitchen', '3:04PM', 'Monday, January _2 2006 15:04:05.000 Z07:00:00', '__2 002 06 1 2 3 4 5 pm -07', '2006-01-02 15:04:05,999999 -070000 MST'];
  const SEC = 1_000_000_000n;
  const zoned = () => big(63072000n, 1767225599n) * SEC + big(0n, SEC - 1n); // 1972-01-01 .. 2025-12-31
  const dst = () => (pick([1772964000n, 1793523600n, 1743847200n, 1759593600n]) + BigInt(int(-5400, 5400))) * SEC; // LA 2026, Sydney 2025
  const anyNs = () => (rnd() < 0.2 ? pick([-(2n ** 63n), 2n ** 63n - 1n, 0n, -1n]) : big(-(2n ** 63n), 2n ** 63n - 1n));
  const instant = (): unknown => (rnd() < 0.25 ? anyNs() : [rnd() < 0.3 ? dst() : zoned(), pick(zones)]);
  const duration = () => {
    let s = pick(['', '-', '+']);
    for (let i = int(1, 3); i > 0; i--) {
      s += `${int(0, 3000)}${rnd() < 0.4 ? `.${int(0, 999999)}` : ''}${pick(['ns', 'us', 'µs', 'μs', 'ms', 's', 'm', 'h', 'd', 'w', 'y'])}`;
    }
    return rnd() < 0.15 ? s.replace(/[a-zµμ]+$/, pick(['', 'x', 'dd', 'D', ' '])) : s;
  };

  const cases: DiffCase[] = [];
  const add = (fn: string, ...args: unknown[]) => cases.push({ id: String(cases.length), fn, args });
  for (let i = 0; i < count; i++) {
    add('date', instant());
    add('clock', instant());
    add('weekday', instant());
    add('format', rnd() < 0.3 ? instant() : [zoned(), pick(zones), pick(layouts)]);
    add('add_date', instant(), int(-30, 30), int(-30, 30), pick([0, 1, -1, 29, 31, int(-800, 800)]));
    add('diff', instant(), instant());
    add('parse_duration_ns', duration());
    // Parse what format produced, sometimes damaged.
    const layout = pick(layouts);
    let text = fmt(zoned(), pick(zones), layout) as string;
    if (rnd() < 0.3) {
      const at = int(0, text.length);
      text = text.slice(0, at) + pick(['', '0', 'x', ' ', '+', ':', 'Z', '.5', 'EST', 'GMT+3']) + text.slice(at + int(0, 2));
    }
    add('parse_ns', layout, text);
    add('parse_rfc3339_ns', fmt(rnd() < 0.5 ? anyNs() : zoned(), pick(zones), pick(['RFC3339', 'RFC3339Nano'])));
  }
  return cases;
}

const REGO_CALLS: Record<string, string> = {
  date: 'time.date(c.args[0])',
  clock: 'time.clock(c.args[0])',
  weekday: 'time.weekday(c.args[0])',
  format: 'time.format(c.args[0])',
  add_date: 'time.add_date(c.args[0], c.args[1], c.args[2], c.args[3])',
  diff: 'time.diff(c.args[0], c.args[1])',
  parse_duration_ns: 'time.parse_duration_ns(c.args[0])',
  parse_ns: 'time.parse_ns(c.args[0], c.args[1])',
  parse_rfc3339_ns: 'time.parse_rfc3339_ns(c.args[0])',
};

/** Error-producing calls whose messages must equal `opa eval --strict-builtin-errors`. */
const ERROR_QUERIES = [
  'time.date(1.5)',
  'time.clock([0, "Mars/Olympus"])',
  'time.weekday([0, "america/new_york"])',
  'time.format([0, "../x"])',
  'time.parse_ns("2006-01-02", "2026-02-30")',
  'time.parse_ns("2006-01-02 MST", "2026-01-02 Zürich")',
  'time.parse_ns("15:04", "12:30")',
  'time.parse_rfc3339_ns("2262-04-11T23:47:16.854775808Z")',
  'time.parse_duration_ns("1µ")',
  'time.parse_duration_ns("9223372036854775808ns")',
  'time.add_date(0, 2262, 1, 1)',
  'time.add_date(0, 1.5, 0, 0)',
  'time.date(json.unmarshal("[0, 1]"))',
  'time.date(json.unmarshal("\\"now\\""))',
];

describe('agrees with opa eval (OPA’s Go implementation)', () => {
  const run = promisify(execFile);
  const env = { ...process.env, TZ: 'America/New_York' };
  let work: string;
  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'regate-time-'));
  });
  after(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('on generated calls of every builtin (errors ↔ undefined)', async () => {
    const cases = generateCases(150);
    const rego = `package timediff\n\n${Object.entries(REGO_CALLS)
      .map(([fn, expr]) => `results[c.id] := r if {\n\tsome c in input.cases\n\tc.fn == "${fn}"\n\tr := ${expr}\n}\n`)
      .join('\n')}`;
    await writeFile(join(work, 'timediff.rego'), rego);
    await writeFile(join(work, 'input.json'), stringifyJson({ cases })!);
    const { stdout } = await run(opaBin(), ['eval', '-f', 'json', '-d', join(work, 'timediff.rego'), '-i', join(work, 'input.json'), 'data.timediff.results'], {
      env,
      maxBuffer: 64 * 1024 * 1024,
    });
    const opa = (parseJsonPrecise(stdout) as { result: [{ expressions: [{ value: Record<string, unknown> }] }] }).result[0].expressions[0].value;

    const mismatches: string[] = [];
    for (const c of cases) {
      let mine: string;
      try {
        mine = stringifyJson(call(`time.${c.fn}`, ...c.args))!;
      } catch {
        mine = 'undefined'; // OPA (not strict) makes a failing call undefined
      }
      const theirs = c.id in opa ? stringifyJson(opa[c.id])! : 'undefined';
      if (mine !== theirs) mismatches.push(`time.${c.fn}(${stringifyJson(c.args)}): regate ${mine}, opa ${theirs}`);
    }
    assert.deepEqual(mismatches, [], `${mismatches.length} of ${cases.length} differ`);
  });

  it('on error messages', async () => {
    const messages = await Promise.all(
      ERROR_QUERIES.map(async (query) => {
        const result = await run(opaBin(), ['eval', '--strict-builtin-errors', '-f', 'json', query], { env }).catch((err: { stdout: string }) => err);
        const { errors } = JSON.parse(result.stdout) as { errors?: { message: string }[] };
        assert.ok(errors, `opa eval ${query} did not fail`);
        return errors[0]!.message;
      }),
    );
    for (const [i, query] of ERROR_QUERIES.entries()) {
      const m = /^(time\.\w+)\((.*)\)$/.exec(query)!;
      // Evaluate the same arguments with the builtin (Rego literal → JSON; json.unmarshal wraps the dynamic ones).
      const args = JSON.parse(`[${m[2]!.replace(/json\.unmarshal\("((?:[^"\\]|\\.)*)"\)/g, (_s, inner: string) => JSON.parse(`"${inner}"`) as string)}]`) as unknown[];
      assertThrowsMessage(() => call(m[1]!, ...args), messages[i]!);
    }
  });
});

describe('numbers as exact text (values measured with opa eval 1.22.2)', () => {
  const ctx: EvalContext = { nowNs: 0n };
  const call = (name: string, ...args: unknown[]): unknown => (timeBuiltins[name] as (c: EvalContext, ...a: unknown[]) => unknown)(ctx, ...args);
  const n = (t: string): RegoNumber => new RegoNumber(t);

  it('an instant is the decimal text rounded to a 64-bit big.Float, exact int64 or "timestamp too big"', () => {
    assert.equal(bigFloatInt64('9223372036854775807.0'), 9223372036854775807n);
    assert.equal(bigFloatInt64('1795455000123456789.000000000'), 1795455000123456789n);
    assert.equal(bigFloatInt64('1e2'), 100n);
    assert.equal(bigFloatInt64('-0'), 0n);
    assert.equal(bigFloatInt64('1795455000123456789.0000000001'), 1795455000123456789n); // below half an ulp of 64 bits
    assert.equal(bigFloatInt64('1.5'), undefined);
    assert.equal(bigFloatInt64('-1e-400'), undefined);
    assert.equal(bigFloatInt64('1e400'), undefined);
    assert.deepEqual(call('time.date', n('9223372036854775807.0')), [2262, 4, 11]);
    assert.throws(() => call('time.date', n('-1e-400')), { message: 'time.date: timestamp too big' });
    assert.throws(() => call('time.date', n('1.5')), { message: 'time.date: timestamp too big' });
    assert.equal(call('time.format', n('1795455000123456789.000000000')), '2026-11-23T17:30:00.123456789Z');
  });

  it("add_date's counts follow OPA's IntOperand: 1.0 is 1, 1e2 and 1.5 are floating-point", () => {
    assert.equal(intFromText('1.0'), 1n);
    assert.equal(intFromText('-0.00'), 0n);
    assert.equal(intFromText('9007199254740993.0'), 9007199254740992n); // through float64, as OPA
    assert.equal(intFromText('9223372036854775806.0'), undefined); // 2^63 as a double
    assert.equal(intFromText('1e2'), undefined);
    assert.equal(intFromText('1.000000000000000000001'), undefined);
    assert.equal(call('time.add_date', 0, n('1.0'), 0, 0), 31536000000000000n);
    assert.throws(() => call('time.add_date', 0, n('1e2'), 0, 0), { message: 'time.add_date: operand 2 must be integer number but got floating-point number' });
    assert.throws(() => call('time.add_date', 0, 0, n('-1e-400'), 0), { message: 'time.add_date: operand 3 must be integer number but got floating-point number' });
  });

  it('Factory is UTC named "-00", as tzdata has it', () => {
    assert.equal(call('time.format', [0, 'Factory', 'Mon Jan _2 15:04:05 MST 2006']), 'Thu Jan  1 00:00:00 -00 1970');
    assert.deepEqual(call('time.date', [1711846800000000000n, 'Factory']), [2024, 3, 31]);
  });
});
