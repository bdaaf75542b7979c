/**
 * JSON documents that become part of the policy input: request bodies
 * (`input.request.body`) and catalog answers (`input.resource`).
 *
 * Both come from outside regate, so they are parsed strictly and bounded:
 *
 * - UTF-8 only (RFC 8259 §8.1), decoded with a fatal decoder: invalid bytes
 *   are an error, never U+FFFD; a byte-order mark is refused as JSON.parse does;
 * - nesting deeper than {@link MAX_JSON_DEPTH} is refused before parsing: the
 *   value is later serialized recursively (wasm input, decision log), and a
 *   64 KiB body of `[[[[…` would otherwise exhaust the stack there;
 * - integers beyond 2^53 stay exact (`bigint`, see precise-json.ts), as the
 *   policy would see them in OPA;
 * - an object with the same key twice is refused: JSON.parse keeps the last
 *   value, other parsers keep the first (RFC 8259 §4 leaves it open), so
 *   `{"channel":"allowed","channel":"other"}` could be judged on one value and
 *   acted on with the other. The policy never sees the duplicate, so only the
 *   parser can refuse it.
 */

import { parseJsonPrecise } from '../policy/precise-json.ts';

/** Deepest array/object nesting accepted. Real API payloads stay far below it. */
export const MAX_JSON_DEPTH = 64;

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Decode and parse one JSON document.
 * @throws TypeError (invalid UTF-8), RangeError (too deep) or SyntaxError (not JSON).
 */
export function parseJsonDocument(bytes: Uint8Array): unknown {
  const text = utf8.decode(bytes);
  if (jsonDepthExceeds(text, MAX_JSON_DEPTH)) throw new RangeError(`JSON nested deeper than ${MAX_JSON_DEPTH} levels`);
  const value = parseJsonPrecise(text);
  const dup = duplicateKey(text);
  if (dup !== null) throw new SyntaxError(`duplicate object key ${JSON.stringify(dup)}`);
  return value;
}

/**
 * The first key that appears twice in one object of `text` (valid JSON: call
 * after parsing succeeded), compared after unescaping (`"a"` and `"\u0061"`
 * are the same key), or null. One linear pass; a Set per open object.
 */
export function duplicateKey(text: string): string | null {
  // One entry per open container: the keys seen so far for an object, null for an array.
  const stack: Array<Set<string> | null> = [];
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      const start = i;
      for (i++; i < text.length; i++) {
        const d = text.charCodeAt(i);
        if (d === 0x5c /* \ */) i++;
        else if (d === 0x22) break;
      }
      if (expectKey) {
        const keys = stack[stack.length - 1];
        const raw = text.slice(start, i + 1);
        const key = raw.includes('\\') ? (JSON.parse(raw) as string) : raw.slice(1, -1);
        if (keys) {
          if (keys.has(key)) return key;
          keys.add(key);
        }
        expectKey = false;
      }
    } else if (c === 0x7b /* { */) {
      stack.push(new Set());
      expectKey = true;
    } else if (c === 0x5b /* [ */) {
      stack.push(null);
      expectKey = false;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
      expectKey = false;
    } else if (c === 0x2c /* , */) {
      expectKey = stack[stack.length - 1] != null;
    }
  }
  return null;
}

/**
 * True when brackets outside strings nest deeper than `max`. A linear scan
 * that only tracks string state; the text need not be valid JSON.
 */
export function jsonDepthExceeds(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c /* \ */) i++;
      else if (c === 0x22 /* " */) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x5b /* [ */ || c === 0x7b /* { */) {
      if (++depth > max) return true;
    } else if (c === 0x5d /* ] */ || c === 0x7d /* } */) {
      depth--;
    }
  }
  return false;
}
