import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseRfc3339Ns } from '../../../src/clock.ts';
import { localFields, TimeInputBuilder } from '../../../src/input/time.ts';

const LA = 'America/Los_Angeles';
const ms = (rfc3339: string): number => Date.parse(rfc3339);

describe('localFields', () => {
  it('computes the local calendar in the zone, with weekday and offset', () => {
    // 2026-11-23T17:30:00Z is 09:30 PST on a Monday.
    assert.deepEqual(localFields(ms('2026-11-23T17:30:00Z'), LA), {
      date: '2026-11-23',
      clock: '09:30:00',
      year: 2026,
      month: 11,
      day: 23,
      hour: 9,
      minute: 30,
      second: 0,
      weekday: 'Monday',
      offset: '-08:00',
    });
  });

  it('is DST-correct on both sides of the spring-forward gap (2026-03-08)', () => {
    // 01:59:59 PST (-08:00) is 09:59:59Z; one second later it is 03:00:00 PDT (-07:00).
    const before = localFields(ms('2026-03-08T09:59:59Z'), LA);
    const after = localFields(ms('2026-03-08T10:00:00Z'), LA);
    assert.equal(before.clock, '01:59:59');
    assert.equal(before.offset, '-08:00');
    assert.equal(after.clock, '03:00:00');
    assert.equal(after.offset, '-07:00');
    assert.equal(after.weekday, 'Sunday');
  });

  it('is DST-correct across the fall-back overlap (2026-11-01)', () => {
    // 01:30 happens twice: first PDT (08:30Z), then PST (09:30Z).
    const first = localFields(ms('2026-11-01T08:30:00Z'), LA);
    const second = localFields(ms('2026-11-01T09:30:00Z'), LA);
    assert.equal(first.clock, '01:30:00');
    assert.equal(second.clock, '01:30:00');
    assert.equal(first.offset, '-07:00');
    assert.equal(second.offset, '-08:00');
  });

  it('business hours 09:00 local fall on different UTC hours in winter and summer', () => {
    assert.equal(localFields(ms('2026-01-12T17:00:00Z'), LA).clock, '09:00:00'); // PST
    assert.equal(localFields(ms('2026-07-13T16:00:00Z'), LA).clock, '09:00:00'); // PDT
  });

  it('handles half-hour zones and UTC', () => {
    assert.equal(localFields(ms('2026-01-01T00:00:00Z'), 'Asia/Kolkata').offset, '+05:30');
    assert.equal(localFields(ms('2026-01-01T00:00:00Z'), 'UTC').offset, '+00:00');
    assert.equal(localFields(ms('2026-01-01T00:00:00Z'), 'UTC').weekday, 'Thursday');
  });

  it('rejects an unknown zone', () => {
    assert.throws(() => localFields(0, 'Mars/Olympus_Mons'), RangeError);
  });
});

describe('TimeInputBuilder', () => {
  it('keeps now_ns exact and the rfc3339 instant in UTC', () => {
    const b = new TimeInputBuilder(LA);
    const ns = parseRfc3339Ns('2026-11-23T17:30:00.123456789Z');
    const t = b.build(ns);
    assert.equal(t.now_ns, 1795455000123456789n);
    assert.equal(t.rfc3339, '2026-11-23T17:30:00.123Z');
    assert.equal(t.timezone, LA);
    assert.equal(t.local.clock, '09:30:00');
  });

  it('recomputes local fields when the second changes (memo never serves a stale second)', () => {
    const b = new TimeInputBuilder(LA);
    const a = b.build(parseRfc3339Ns('2026-03-08T09:59:59.999Z'));
    const c = b.build(parseRfc3339Ns('2026-03-08T10:00:00.000Z'));
    assert.equal(a.local.clock, '01:59:59');
    assert.equal(c.local.clock, '03:00:00');
    // Going back in time (fixed test clocks do) also recomputes.
    assert.equal(b.build(parseRfc3339Ns('2026-03-08T09:59:59.000Z')).local.clock, '01:59:59');
  });
});

describe('parseRfc3339Ns', () => {
  it('parses offsets and fractions to exact nanoseconds', () => {
    assert.equal(parseRfc3339Ns('1970-01-01T00:00:00Z'), 0n);
    assert.equal(parseRfc3339Ns('1970-01-01T00:00:00.000000001Z'), 1n);
    assert.equal(parseRfc3339Ns('2026-03-08T01:59:59-08:00'), parseRfc3339Ns('2026-03-08T09:59:59Z'));
  });
  it('refuses non-RFC 3339 text', () => {
    for (const bad of ['2026-03-08', '2026-03-08 10:00:00Z', 'yesterday', '2026-13-01T00:00:00Z', '']) {
      assert.throws(() => parseRfc3339Ns(bad), TypeError, bad);
    }
  });
});
