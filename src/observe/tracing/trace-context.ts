/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/): parsing the
 * `traceparent` and `tracestate` a request arrives with, and the ids regate
 * mints for its own spans.
 *
 * Parsing is strict where the spec says a receiver must not continue a trace:
 * a malformed `traceparent`, an all-zero trace or parent id, or version `ff`
 * starts a new trace (§3.2.2.3, §3.2.2.4). A later version (not `00`) is read
 * for its first four fields and passed on as version `00` (§3.2.4). An invalid
 * `tracestate` is dropped, never forwarded (§3.3.1.1, §3.5).
 */

import { randomFillSync } from 'node:crypto';

/** A trace context as it is propagated. */
export interface TraceParent {
  /** 32 lower-case hex digits, not all zero. */
  readonly traceId: string;
  /** The caller's span: 16 lower-case hex digits, not all zero. */
  readonly spanId: string;
  /** The `sampled` flag (bit 0 of trace-flags). */
  readonly sampled: boolean;
}

const TRACEPARENT_00 = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
/** A future version: same first fields, anything after a further `-` (§3.2.4). */
const TRACEPARENT_LATER = /^([0-9a-e][0-9a-f]|f[0-9a-e])-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const ZERO_TRACE = '0'.repeat(32);
const ZERO_SPAN = '0'.repeat(16);

/** Parse a `traceparent` field value; null when it must not be continued. Repeated fields are refused. */
export function parseTraceParent(value: string | string[] | undefined): TraceParent | null {
  if (typeof value !== 'string' || value.length < 55 || value.length > 512) return null;
  const v = value.trim();
  let m = TRACEPARENT_00.exec(v);
  let traceId: string, spanId: string, flags: string;
  if (m !== null) {
    [, traceId, spanId, flags] = m as unknown as [string, string, string, string];
  } else {
    m = TRACEPARENT_LATER.exec(v);
    if (m === null || m[1] === '00') return null;
    [, , traceId, spanId, flags] = m as unknown as [string, string, string, string, string];
  }
  if (traceId === ZERO_TRACE || spanId === ZERO_SPAN) return null;
  return { traceId, spanId, sampled: (parseInt(flags, 16) & 1) === 1 };
}

/** tracestate list members: `key=value`, key per §3.3.1.3.1, value printable without `,` and `=`, not ending in a space. */
const MEMBER = /^(?:[a-z0-9][_0-9a-z\-*/]{0,255}|[a-z0-9][_0-9a-z\-*/]{0,240}@[a-z][_0-9a-z\-*/]{0,13})=[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]$/;

/**
 * A `tracestate` to pass on, or undefined when there is none or it is invalid:
 * at most 32 members and 512 characters, valid members, no duplicate keys.
 * Repeated fields are combined as one list (RFC 9110 §5.3).
 */
export function parseTraceState(value: string | string[] | undefined): string | undefined {
  if (value === undefined) return undefined;
  const joined = Array.isArray(value) ? value.join(',') : value;
  if (joined.length > 512) return undefined;
  const members: string[] = [];
  const keys = new Set<string>();
  for (const raw of joined.split(',')) {
    const member = raw.trim();
    if (member === '') continue;
    if (!MEMBER.test(member)) return undefined;
    const key = member.slice(0, member.indexOf('='));
    if (keys.has(key)) return undefined;
    keys.add(key);
    members.push(member);
  }
  if (members.length === 0 || members.length > 32) return undefined;
  return members.join(',');
}

/** The `traceparent` value regate sends for its span `spanId`. */
export function formatTraceParent(traceId: string, spanId: string, sampled: boolean): string {
  return `00-${traceId}-${spanId}-${sampled ? '01' : '00'}`;
}

/**
 * Random ids from a pooled buffer: one `randomFillSync` per 256 spans instead
 * of one per id (the CSPRNG call dominates the cost of a small read).
 */
const pool = Buffer.allocUnsafe(4096);
let offset = pool.length;

function randomHex(bytes: number): string {
  if (offset + bytes > pool.length) {
    randomFillSync(pool);
    offset = 0;
  }
  const hex = pool.toString('hex', offset, offset + bytes);
  offset += bytes;
  return hex;
}

/** A new trace id (never all zero). */
export function newTraceId(): string {
  let id = randomHex(16);
  while (id === ZERO_TRACE) id = randomHex(16);
  return id;
}

/** A new span id (never all zero). */
export function newSpanId(): string {
  let id = randomHex(8);
  while (id === ZERO_SPAN) id = randomHex(8);
  return id;
}

/**
 * Whether a new root trace is sampled at `ratio`: OpenTelemetry's
 * TraceIdRatioBased decision on the trace id's last 56 bits (random per W3C
 * Trace Context level 2), so every service that samples by ratio agrees.
 */
export function sampledByRatio(traceId: string, ratio: number): boolean {
  if (ratio >= 1) return true;
  if (ratio <= 0) return false;
  return parseInt(traceId.slice(18), 16) < ratio * 2 ** 56;
}
