/**
 * Exact JSON for integers beyond 2^53, at the boundary with opa-wasm.
 *
 * Why this exists: Rego numbers are arbitrary precision, and the policy sees
 * nanosecond timestamps (`time.now_ns()`, `input.time.now_ns`, JWT-derived
 * values) that do not fit in a double: 1670006453141828752 read by plain
 * `JSON.parse` becomes 1670006453141828900, and 9223372036854775807 becomes
 * 2^63. The opa-wasm SDK moves every value between wasm memory and JS as JSON
 * text and decodes it with the global `JSON.parse` (`_dumpJSONRaw` in
 * `opa.js`): builtin arguments and the result set. We cannot pass it a parser,
 * so {@link withPreciseJson} swaps the global for the duration of one
 * synchronous evaluation and restores it in `finally`. Node runs one
 * JavaScript stack at a time, so no other code can observe the swap.
 *
 * In the other direction (input and builtin results) values are handed to the
 * SDK as pre-serialized JSON in an ArrayBuffer, written by
 * {@link stringifyJson}, which prints a bigint as its exact digits.
 *
 * Relies on JSON.parse source text access (`context.source` in revivers) and
 * `JSON.rawJSON`, both in V8 since Node 21; checked once at import.
 */

import { clearParsed, noteParsed } from './number-text.ts';

/** Shape of the third reviver argument (TC39 "JSON.parse source text access"). */
interface ReviverContext {
  readonly source?: string;
}
type SourceReviver = (this: unknown, key: string, value: unknown, context?: ReviverContext) => unknown;
type NativeParse = (text: string, reviver?: SourceReviver) => unknown;
type RawJson = (text: string) => unknown;

// Captured once: the swapped-in parser must call the real one, never itself.
const nativeParse = JSON.parse as NativeParse;
const rawJSON = (JSON as unknown as { rawJSON?: RawJson }).rawJSON;

// A safe integer has at most 16 digits (2^53 - 1 = 9007199254740991), so text
// without a run of 16 digits cannot hold an unsafe integer and takes the
// native path untouched. Compiled once.
const LONG_DIGIT_RUN = /\d{16}/;
const INTEGER_LITERAL = /^-?\d+$/;

function preciseReviver(this: unknown, _key: string, value: unknown, context?: ReviverContext): unknown {
  if (typeof value !== 'number' || Number.isSafeInteger(value)) return value;
  const source = context?.source;
  // Only integer literals become bigint; 1.5e300 or 1.0 stay numbers (Rego
  // treats them as floats too).
  return source !== undefined && INTEGER_LITERAL.test(source) ? BigInt(source) : value;
}

function assertRuntimeSupport(): void {
  let seen: string | undefined;
  nativeParse('12345678901234567890', (_k, v, c) => {
    seen = c?.source;
    return v;
  });
  if (seen !== '12345678901234567890' || typeof rawJSON !== 'function') {
    throw new Error('regate needs JSON.parse source text access and JSON.rawJSON (Node >= 21)');
  }
}
assertRuntimeSupport();

/**
 * Parse JSON text; integers that are not safe integers become `bigint`
 * (exact), everything else is what `JSON.parse` returns.
 */
export function parseJsonPrecise(text: string): unknown {
  return LONG_DIGIT_RUN.test(text) ? nativeParse(text, preciseReviver) : nativeParse(text);
}

// Stand-in for the global while a scope is active. A caller passing its own
// reviver keeps standard semantics (we must not change its values).
function scopedParse(text: unknown, reviver?: SourceReviver): unknown {
  if (reviver !== undefined) return nativeParse(text as string, reviver);
  const source = typeof text === 'string' ? text : String(text);
  const value = parseJsonPrecise(source);
  noteParsed(source, value); // builtins that read numbers as exact text (number-text.ts)
  return value;
}

/**
 * Run `fn` with the global `JSON.parse` replaced by {@link parseJsonPrecise},
 * then restore whatever was installed before (scopes nest). `fn` must be
 * synchronous: an async function would run its tail after the restore, so a
 * returned promise is refused with a TypeError (after restoring).
 */
export function withPreciseJson<T>(fn: () => T): T {
  const previous = JSON.parse;
  JSON.parse = scopedParse as typeof JSON.parse;
  let result: T;
  try {
    result = fn();
  } finally {
    JSON.parse = previous;
    clearParsed();
  }
  if (result instanceof Promise) throw new TypeError('withPreciseJson: fn must be synchronous');
  return result;
}

function bigintReplacer(this: unknown, _key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? (rawJSON as RawJson)(value.toString()) : value;
}

/**
 * `JSON.stringify` that writes a `bigint` as its exact decimal digits instead
 * of throwing, and a lone UTF-16 surrogate as U+FFFD. Returns `undefined`
 * where `JSON.stringify` would (undefined, functions, symbols at the top
 * level).
 *
 * Lone surrogates: a JS string can hold a surrogate code unit without its
 * pair (`"\ud800"` in a token claim decodes to one), which has no UTF-8
 * form. JSON.stringify writes it as the escape `\ud800`; the wasm module's
 * JSON parser refuses that escape ("illegal string escape character") or,
 * followed by another escape, silently drops the next character. OPA (Go's
 * encoding/json) decodes each lone surrogate code unit to one U+FFFD and
 * keeps valid pairs, so that is what the policy sees here too: valid pairs
 * are written as themselves by JSON.stringify, so every `\udXXX` escape in
 * its output is exactly one lone code unit.
 */
export function stringifyJson(value: unknown): string | undefined {
  if (typeof value === 'bigint') return value.toString();
  // Native first: a replacer is called for every value, which made serializing
  // the policy input the largest single cost of an evaluation. The input's one
  // bigint (`input.time.now_ns`) serializes itself (toJSON, src/input/time.ts);
  // only a value holding another bigint (a huge integer in a JSON body) throws
  // and takes the exact, slower path.
  let text: string | undefined;
  try {
    text = JSON.stringify(value) as string | undefined;
  } catch (err) {
    if (!(err instanceof TypeError)) throw err;
    text = JSON.stringify(value, bigintReplacer) as string | undefined;
  }
  // One native scan on the hot path; `\\ud…` (an escaped backslash before
  // the letters "ud") also takes the slow path, which tells the two apart.
  return text !== undefined && text.includes('\\ud') ? text.replace(SURROGATE_ESCAPE, replaceSurrogateEscape) : text;
}

// An escaped backslash (kept, so that the text after it is not read as an
// escape) or the escape of a surrogate code unit (lowercase, as JSON.stringify writes it).
const SURROGATE_ESCAPE = /\\\\|\\ud[89a-f][0-9a-f]{2}/g;

function replaceSurrogateEscape(match: string): string {
  return match.length === 2 ? match : '\ufffd';
}

/**
 * JSON text already produced for a value, by identity. The policy engine
 * serializes the input for every evaluation; the decision log prints the same
 * input at the end of the request and reuses that text instead of serializing
 * the object a second time. Only for values nobody mutates afterwards (the
 * policy input is built once and then only read). Weak: gone with the value.
 */
const serialized = new WeakMap<object, string>();

/** Remember that `text` is {@link stringifyJson}'s output for `value`. */
export function rememberJson(value: object, text: string): void {
  serialized.set(value, text);
}

/** The text remembered for `value`, if any. */
export function rememberedJson(value: object): string | undefined {
  return serialized.get(value);
}

/**
 * Replace every `bigint` in a JSON value by the nearest `number`, returning
 * the same object when there is none (the common case: no copy). For results
 * that leave the policy stage as plain JSON (decision log, problem documents)
 * where exactness beyond 2^53 does not matter but a stray bigint would make
 * `JSON.stringify` throw.
 */
export function bigintsToNumbers(value: unknown): unknown {
  if (typeof value === 'bigint') return Number(value);
  if (typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) {
    let out: unknown[] | undefined;
    for (let i = 0; i < value.length; i++) {
      const v: unknown = value[i];
      const c = bigintsToNumbers(v);
      if (c !== v && out === undefined) out = value.slice(0, i);
      if (out !== undefined) out.push(c);
    }
    return out ?? value;
  }
  let out: Record<string, unknown> | undefined;
  const entries = Object.entries(value);
  for (let i = 0; i < entries.length; i++) {
    const [k, v] = entries[i] as [string, unknown];
    const c = bigintsToNumbers(v);
    if (c !== v && out === undefined) out = Object.fromEntries(entries.slice(0, i));
    // defineProperty, not assignment: a "__proto__" key must stay a key.
    if (out !== undefined) Object.defineProperty(out, k, { value: c, enumerable: true, writable: true, configurable: true });
  }
  return out ?? value;
}
