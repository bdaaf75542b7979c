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
 *   policy would see them in OPA.
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
  return parseJsonPrecise(text);
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
