/**
 * Builtin arguments with every number as its exact decimal text.
 *
 * Rego numbers are decimal text, not doubles: the wasm module hands a host
 * builtin `1.0`, `1e2`, `1e400` or `1795455000123456789.000000000` exactly as
 * the policy holds them, and OPA's Go builtins decide by that text (`sprintf`
 * prints `1.0` as a float64 but `1` as an int64; `json.Number.Int64` refuses
 * `1e2`). The SDK decodes each argument with the global `JSON.parse` before it
 * calls the builtin, and a JS number has forgotten the spelling. So while a
 * precise-JSON scope is active ({@link noteParsed} is called by it for every
 * text it parses), the last few texts are kept; {@link exactArguments} finds
 * the text of each argument (by identity with the value the SDK passed) and
 * parses it again into {@link RegoNumber}s.
 */

const rawJSON = (JSON as unknown as { rawJSON(text: string): unknown }).rawJSON;
// Captured at import: inside a precise-JSON scope the global is swapped.
const nativeParse = JSON.parse as (text: string, reviver: typeof exactReviver) => unknown;

/** A Rego number as exact JSON number text (`1.0`, `-0`, `1e400`, `18446744073709551616`). */
export class RegoNumber {
  readonly text: string;
  constructor(text: string) {
    this.text = text;
  }
  /** Serializes as the exact text. */
  toJSON(): unknown {
    return rawJSON(this.text);
  }
}

// The texts parsed most recently in the active scope, oldest first.
const RECENT = 8;
const recentTexts: string[] = [];
const recentValues: unknown[] = [];

/** Called by the precise-JSON scope for each text it parses. */
export function noteParsed(text: string, value: unknown): void {
  if (recentTexts.length === RECENT) {
    recentTexts.shift();
    recentValues.shift();
  }
  recentTexts.push(text);
  recentValues.push(value);
}

/** Forget what was noted (the scope ended). */
export function clearParsed(): void {
  recentTexts.length = 0;
  recentValues.length = 0;
}

function exactReviver(this: unknown, _key: string, value: unknown, context?: { source?: string }): unknown {
  return typeof value === 'number' ? new RegoNumber(context?.source ?? String(value)) : value;
}

/** Parse JSON text with every number a {@link RegoNumber}. */
export function parseJsonExact(text: string): unknown {
  return nativeParse(text, exactReviver);
}

/** A decoded value with its numbers as {@link RegoNumber} (from the nearest number: only when no text is known). */
export function exactFromValue(v: unknown): unknown {
  if (typeof v === 'number' || typeof v === 'bigint') return new RegoNumber(String(v));
  if (Array.isArray(v)) return v.map(exactFromValue);
  if (v !== null && typeof v === 'object' && !(v instanceof RegoNumber)) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) Object.defineProperty(out, k, { value: exactFromValue(x), enumerable: true, writable: true, configurable: true });
    return out;
  }
  return v;
}

/**
 * The builtin's arguments re-parsed from the exact texts the SDK just decoded
 * them from: the last `args.length` noted parses, each checked to be the very
 * value passed. An argument whose text is not found is converted from its
 * value (exact for strings, booleans, null and integers).
 */
export function exactArguments(args: readonly unknown[]): unknown[] {
  const base = recentTexts.length - args.length;
  const out = args.map((arg, i) => {
    const j = base + i;
    if (j >= 0 && Object.is(recentValues[j], arg)) {
      const text = recentTexts[j] as string;
      return /[0-9]/.test(text) ? parseJsonExact(text) : arg;
    }
    return exactFromValue(arg);
  });
  clearParsed();
  return out;
}
