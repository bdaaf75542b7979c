/** W3C Trace Context parsing: what may be continued, what starts a new trace, what tracestate is passed on. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatTraceParent, newSpanId, newTraceId, parseTraceParent, parseTraceState, sampledByRatio } from '../../../../src/observe/tracing/trace-context.ts';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN = '00f067aa0ba902b7';

describe('parseTraceParent', () => {
  it('reads a version-00 traceparent and its sampled flag (the spec’s examples)', () => {
    assert.deepEqual(parseTraceParent(`00-${TRACE}-${SPAN}-01`), { traceId: TRACE, spanId: SPAN, sampled: true });
    assert.deepEqual(parseTraceParent(`00-${TRACE}-${SPAN}-00`), { traceId: TRACE, spanId: SPAN, sampled: false });
    // Other flag bits do not change sampling.
    assert.equal(parseTraceParent(`00-${TRACE}-${SPAN}-03`)?.sampled, true);
  });

  it('reads the known fields of a later version, extra fields and all (§3.2.4)', () => {
    assert.deepEqual(parseTraceParent(`01-${TRACE}-${SPAN}-01-what-the-future-holds`), { traceId: TRACE, spanId: SPAN, sampled: true });
  });

  it('refuses what must not be continued', () => {
    for (const bad of [
      undefined,
      [`00-${TRACE}-${SPAN}-01`, `00-${TRACE}-${SPAN}-01`],
      '',
      `00-${'0'.repeat(32)}-${SPAN}-01`,
      `00-${TRACE}-${'0'.repeat(16)}-01`,
      `ff-${TRACE}-${SPAN}-01`,
      `00-${TRACE.toUpperCase()}-${SPAN}-01`,
      `00-${TRACE}-${SPAN}-01-extra`,
      `00-${TRACE}-${SPAN}-1`,
      `00_${TRACE}_${SPAN}_01`,
      `00-${TRACE}a-${SPAN}-01`,
      `0-${TRACE}-${SPAN}-01`,
      `00-${TRACE}-${SPAN}-01`.padEnd(600, 'x'),
    ]) {
      assert.equal(parseTraceParent(bad as string), null, String(bad));
    }
  });
});

describe('parseTraceState', () => {
  it('passes a valid list on, combining repeated fields and dropping empty members', () => {
    assert.equal(parseTraceState('rojo=00f067aa0ba902b7,congo=t61rcWkgMzE'), 'rojo=00f067aa0ba902b7,congo=t61rcWkgMzE');
    assert.equal(parseTraceState(['rojo=1', 'congo=2']), 'rojo=1,congo=2');
    assert.equal(parseTraceState('rojo=1, ,congo=2'), 'rojo=1,congo=2');
    assert.equal(parseTraceState('tenant@vendor=x'), 'tenant@vendor=x');
  });

  it('drops an invalid list entirely: bad keys or values, duplicates, more than 32 members, over 512 characters', () => {
    assert.equal(parseTraceState(undefined), undefined);
    assert.equal(parseTraceState('Rojo=1'), undefined);
    assert.equal(parseTraceState('rojo=a,b'), undefined);
    assert.equal(parseTraceState('rojo=1,rojo=2'), undefined);
    assert.equal(parseTraceState('rojo=a=b'), undefined);
    assert.equal(parseTraceState('rojo=\u00e9'), undefined);
    assert.equal(parseTraceState(Array.from({ length: 33 }, (_, i) => `k${i}=v`).join(',')), undefined);
    assert.equal(parseTraceState(`k=${'v'.repeat(600)}`), undefined);
  });
});

describe('ids and sampling', () => {
  it('mints lower-case hex ids of the right length, distinct, and formats traceparent', () => {
    const ids = new Set(Array.from({ length: 1000 }, () => newTraceId()));
    assert.equal(ids.size, 1000);
    for (const id of ids) assert.match(id, /^[0-9a-f]{32}$/);
    assert.match(newSpanId(), /^[0-9a-f]{16}$/);
    assert.equal(formatTraceParent(TRACE, SPAN, true), `00-${TRACE}-${SPAN}-01`);
    assert.equal(formatTraceParent(TRACE, SPAN, false), `00-${TRACE}-${SPAN}-00`);
  });

  it('samples by trace id: 0 never, 1 always, a ratio about that share, the same id always the same way', () => {
    const ids = Array.from({ length: 4000 }, () => newTraceId());
    assert.ok(ids.every((id) => sampledByRatio(id, 1)));
    assert.ok(ids.every((id) => !sampledByRatio(id, 0)));
    const share = ids.filter((id) => sampledByRatio(id, 0.25)).length / ids.length;
    assert.ok(share > 0.2 && share < 0.3, `sampled ${share}`);
    assert.ok(ids.every((id) => sampledByRatio(id, 0.25) === sampledByRatio(id, 0.25)));
  });
});
