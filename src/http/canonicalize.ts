/**
 * Request target → canonical path and query.
 *
 * "Canonicalize before you authorize; forward exactly what was authorized."
 * The router and the policy see the *decoded* path and query; the upstream is
 * sent a re-encoding of exactly those decoded values, so both parse the same
 * thing. Anything that different servers are known to read differently (dot
 * segments, encoded slashes, backslashes, `;` path parameters, empty segments,
 * control characters, malformed escapes) is refused with a 400 instead of being
 * "repaired": a repair is one more interpretation an attacker can play against
 * the upstream's own (CVE history of nginx `merge_slashes`, Envoy `%2F`,
 * Tomcat/Spring/Shiro `..;/`).
 *
 * Decisions (each one is tested in `test/unit/http/canonicalize.test.ts`):
 *
 * - **Origin-form only** (RFC 9112 §3.2.1). Absolute-form (`http://h/p`) would
 *   carry a second authority that can disagree with `Host`; authority-form
 *   (`CONNECT h:443`) and asterisk-form (`OPTIONS *`) are not proxied.
 * - **Decode exactly once.** `%252e` is the three-character segment `%2e`
 *   (data, not a dot segment) and goes upstream as `%252e` again.
 * - **Raw characters**: printable ASCII only. A raw space or raw non-ASCII byte
 *   (`invalid_character`) means a client that did not encode its target; how
 *   Node turned those bytes into a string is not something to authorize on.
 *   RFC 3986 "unsafe" but unambiguous characters (`"<>[]^\`{|}`) are accepted
 *   as data, because browsers send some of them unencoded, and are encoded on
 *   the wire.
 * - **Control characters** C0, DEL and C1 (U+0080–U+009F), raw or encoded, in
 *   the path and in the query: no legitimate use, and a header/log injection and
 *   "NEL as newline" vector.
 * - **Invalid UTF-8** after decoding is refused (fatal decoder, so overlong
 *   forms such as `%C0%AE` for `.` and encoded surrogates are refused too). A
 *   byte-order mark is kept as data, never silently stripped.
 * - **Dot segments** `.`/`..`, in any spelling (`%2e`, `.%2E`), are refused, not
 *   resolved. `...` and `.well-known` are ordinary segments.
 * - **Empty segments** (`//`, `/a//b`) are refused, not merged: servers disagree
 *   on merging, and a leading `//` reads as a network-path reference
 *   (`//evil.example/`) to URL parsers. A single trailing `/` is kept and is
 *   significant: `/a/` and `/a` are different paths (segments `['a', '']` vs
 *   `['a']`). The root `/` is the single empty segment `['']`, so always
 *   `path === '/' + segments.join('/')`.
 * - **`;`** (raw or `%3B`) in the path is refused (`semicolon`): Tomcat, Jetty
 *   and Spring strip `;params` from segments before routing, which is the classic
 *   `/public/..;/admin` bypass. In the query `;` is ordinary data.
 * - **`+` in the path** is a literal plus (RFC 3986) and is sent as `%2B`, so an
 *   upstream that (wrongly) reads `+` as a space in paths sees the same `+`.
 * - **Unicode**: segments are not normalized (the policy and the upstream see
 *   the same code points), but a segment whose NFKC form is `.`/`..` or contains
 *   `/`, `\`, `;` or `%` (`．．` and `％２ｅ`-style fullwidth forms, U+2025 `‥`,
 *   U+FF0F `／`, U+FF05 `％`) is refused as `unicode_confusable`: upstreams that
 *   NFKC-normalize (Python, some filesystems) would otherwise resolve it to
 *   something else, or percent-decode what the normalization produced.
 * - **Encoded white space at a segment's edge** (`/admin%20`, `/%09x`,
 *   `/a%C2%A0`, `/%E3%80%80a`, a leading or trailing BOM) is refused
 *   (`encoded_whitespace`): upstreams that trim segments would route
 *   `/admin%20` to `/admin`. Inside a segment (`/sent%20iment`) it is data.
 * - **Query**: WHATWG `application/x-www-form-urlencoded` semantics (what
 *   `URLSearchParams`, Express, Go, Python and Rails parse): `&`-separated pairs,
 *   split at the first `=`, `+` is a space, empty pairs (`a&&b`) skipped, a pair
 *   without `=` has the value `''`, order kept. Unlike WHATWG, a malformed escape
 *   or invalid UTF-8 is a 400, not a U+FFFD. `wireQuery` re-serializes every
 *   pair in the original order, with spaces as `%20` (never `+`) and everything
 *   outside RFC 3986 unreserved percent-encoded, so an upstream reads the same
 *   values whether or not it treats `+` as a space.
 * - **Wire path**: each decoded segment is percent-encoded (upper-case hex,
 *   UTF-8) except RFC 3986 `unreserved` and the sub-delims/`pchar` characters
 *   with no delimiter role in any mainstream server: `! $ & ' ( ) * , : = @`.
 *   `:` stays raw for `/v1/models/m:predict`-style custom methods. `+` is
 *   encoded (see above); `/`, `\`, `;` never occur in a decoded segment.
 *
 * Hot path: one left-to-right scan with lookup tables built at module load, no
 * regular expressions, a reused decode buffer, and segments without escapes
 * or encodable characters are sliced straight through.
 */

import { BadRequestError, UriTooLongError } from '../errors.ts';

/** The decoded and re-encoded request target. */
export interface CanonicalTarget {
  /** Decoded canonical path for routing and policy, e.g. `/v1/models/sent iment/predict`. Always `'/' + segments.join('/')`. */
  readonly path: string;
  /** Decoded segments; never `.`/`..`, never containing `/`, `\`, `;` or controls. Only the last may be `''` (trailing slash; `/` is `['']`). */
  readonly segments: readonly string[];
  /** Canonical re-encoding of `segments` to send upstream, e.g. `/v1/models/sent%20iment/predict`. */
  readonly wirePath: string;
  /** Decoded query: each key maps to its values in order. Null-prototype object (a key may be `__proto__`). */
  readonly query: Readonly<Record<string, readonly string[]>>;
  /** Canonical re-serialization of exactly the parsed query, without the leading `?`; `''` if there is none. */
  readonly wireQuery: string;
}

/** Default for `maxBytes`, same as `limits.max_url_bytes`. */
export const DEFAULT_MAX_TARGET_BYTES = 8192;

/** Every `reason` a {@link BadRequestError} from {@link canonicalizeTarget} can carry (metric label). */
export const TARGET_REASONS = [
  'not_origin_form',
  'absolute_form',
  'authority_form',
  'asterisk_form',
  'fragment',
  'invalid_character',
  'control_character',
  'invalid_percent_encoding',
  'invalid_utf8',
  'dot_segment',
  'empty_segment',
  'encoded_slash',
  'backslash',
  'semicolon',
  'unicode_confusable',
  'encoded_whitespace',
] as const;
export type TargetReason = (typeof TARGET_REASONS)[number];

const MESSAGES: Readonly<Record<TargetReason, string>> = {
  not_origin_form: "request target must be origin-form: it must start with '/'",
  absolute_form: 'absolute-form request targets are not accepted; send the path only',
  authority_form: 'authority-form request targets (CONNECT) are not accepted',
  asterisk_form: "asterisk-form request target '*' is not accepted",
  fragment: "request target must not contain a fragment ('#')",
  invalid_character: 'request target contains a space or a non-ASCII character; percent-encode it',
  control_character: 'request target contains a control character',
  invalid_percent_encoding: "request target contains a malformed percent-escape ('%' must be followed by two hex digits)",
  invalid_utf8: 'request target decodes to invalid UTF-8',
  dot_segment: "path contains a '.' or '..' segment",
  empty_segment: "path contains an empty segment ('//')",
  encoded_slash: "path contains an encoded slash ('%2F')",
  backslash: "path contains a backslash ('\\' or '%5C')",
  semicolon: "path contains a ';' (path parameters are not accepted)",
  unicode_confusable: "path segment normalizes (NFKC) to a dot segment or to one containing '/', '\\', ';' or '%'",
  encoded_whitespace: 'path segment starts or ends with encoded whitespace (%20, %09, U+00A0, U+3000, ...)',
};

function refuse(reason: TargetReason, offset: number): never {
  throw new BadRequestError(reason, MESSAGES[reason], { detail: `at offset ${offset}` });
}

// ---------------------------------------------------------------------------
// Lookup tables, built once.

const SLASH = 0x2f;
const QMARK = 0x3f;
const PERCENT = 0x25;
const PLUS = 0x2b;
const AMP = 0x26;
const EQUALS = 0x3d;
const HASH = 0x23;
const BACKSLASH = 0x5c;
const SEMICOLON = 0x3b;
const END = -1;

// Raw character classes inside the path (ASCII only; everything >= 0x80 is refused).
const C_WIRE = 0; // allowed, identical on the wire
const C_DATA = 1; // allowed, percent-encoded on the wire
const C_PCT = 2;
const C_CTRL = 3;
const C_SPACE = 4;
const C_HASH = 5;
const C_BACKSLASH = 6;
const C_SEMICOLON = 7;

function isUnreserved(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x2d || c === 0x2e || c === 0x5f || c === 0x7e;
}

/** Bytes sent raw in a wire path segment: unreserved + `!$&'()*,:=@`. */
const PATH_WIRE_SAFE = new Uint8Array(128);
/** Bytes sent raw in a wire query name or value: unreserved only. */
const QUERY_WIRE_SAFE = new Uint8Array(128);
const PATH_CLASS = new Uint8Array(128);
const HEX_VALUE = new Int8Array(128).fill(-1);
const PCT_ENCODED: string[] = [];

for (let c = 0; c < 256; c++) PCT_ENCODED.push('%' + c.toString(16).toUpperCase().padStart(2, '0'));
for (let c = 0; c < 128; c++) {
  if (isUnreserved(c)) {
    PATH_WIRE_SAFE[c] = 1;
    QUERY_WIRE_SAFE[c] = 1;
  }
  if (c >= 0x30 && c <= 0x39) HEX_VALUE[c] = c - 0x30;
  else if (c >= 0x41 && c <= 0x46) HEX_VALUE[c] = c - 0x41 + 10;
  else if (c >= 0x61 && c <= 0x66) HEX_VALUE[c] = c - 0x61 + 10;
  PATH_CLASS[c] = c < 0x20 || c === 0x7f ? C_CTRL : C_DATA;
}
for (const ch of "!$&'()*,:=@") PATH_WIRE_SAFE[ch.charCodeAt(0)] = 1;
for (let c = 0x21; c < 0x7f; c++) if (PATH_WIRE_SAFE[c] === 1) PATH_CLASS[c] = C_WIRE;
PATH_CLASS[0x20] = C_SPACE;
PATH_CLASS[PERCENT] = C_PCT;
PATH_CLASS[HASH] = C_HASH;
PATH_CLASS[BACKSLASH] = C_BACKSLASH;
PATH_CLASS[SEMICOLON] = C_SEMICOLON;
// '/' and '?' are boundaries and handled before classification.

const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const UTF8_ENCODER = new TextEncoder();

// ---------------------------------------------------------------------------

/**
 * Canonicalize an HTTP request target (`req.url`) for routing, policy and
 * forwarding. Pure and synchronous; see the module comment for every decision.
 *
 * @param rawTarget - the request target exactly as received.
 * @param maxBytes - limit on the target's length; accepted targets are ASCII,
 *   so characters are bytes. Default {@link DEFAULT_MAX_TARGET_BYTES}.
 * @throws {UriTooLongError} (414, `uri_too_long`) when longer than `maxBytes`.
 * @throws {BadRequestError} (400) with a `reason` from {@link TARGET_REASONS}.
 * @throws {TypeError} on caller misuse (not a string, bad `maxBytes`).
 */
export function canonicalizeTarget(rawTarget: string, maxBytes: number = DEFAULT_MAX_TARGET_BYTES): CanonicalTarget {
  if (typeof rawTarget !== 'string') throw new TypeError('canonicalizeTarget: rawTarget must be a string');
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) throw new TypeError('canonicalizeTarget: maxBytes must be a positive integer');
  const n = rawTarget.length;
  // Before any parsing: an oversized target costs nothing.
  if (n > maxBytes) throw new UriTooLongError(maxBytes);
  if (n === 0 || rawTarget.charCodeAt(0) !== SLASH) refuse(classifyNonOriginForm(rawTarget), 0);

  const segments: string[] = [];
  let wirePath = '';
  let segStart = 1;
  let hasPct = false;
  let needsEncoding = false;
  let i = 1;
  for (;;) {
    const c = i < n ? rawTarget.charCodeAt(i) : END;
    if (c === SLASH || c === QMARK || c === END) {
      wirePath += '/' + closeSegment(rawTarget, segStart, i, hasPct, needsEncoding, c !== SLASH, segments);
      if (c !== SLASH) break;
      segStart = i + 1;
      hasPct = false;
      needsEncoding = false;
    } else if (c < 0x80) {
      switch (PATH_CLASS[c]) {
        case C_WIRE:
          break;
        case C_DATA:
          needsEncoding = true;
          break;
        case C_PCT:
          hasPct = true;
          break;
        case C_HASH:
          refuse('fragment', i);
        case C_BACKSLASH:
          refuse('backslash', i);
        case C_SEMICOLON:
          refuse('semicolon', i);
        case C_CTRL:
          refuse('control_character', i);
        default:
          refuse('invalid_character', i);
      }
    } else {
      refuse(c <= 0x9f ? 'control_character' : 'invalid_character', i);
    }
    i++;
  }

  const path = segments.length === 1 ? '/' + segments[0] : '/' + segments.join('/');
  if (i >= n) return { path, segments, wirePath, query: Object.create(null) as Record<string, string[]>, wireQuery: '' };
  const { query, wireQuery } = parseQuery(rawTarget, i + 1, n);
  return { path, segments, wirePath, query, wireQuery };
}

/** Decode, check and re-encode the raw segment `[start, end)`; pushes the decoded form, returns the wire form. */
function closeSegment(raw: string, start: number, end: number, hasPct: boolean, needsEncoding: boolean, last: boolean, segments: string[]): string {
  if (start === end) {
    // Only a trailing '/' (or the root '/') may leave an empty segment.
    if (!last) refuse('empty_segment', start);
    segments.push('');
    return '';
  }
  if (!hasPct) {
    const s = raw.slice(start, end);
    if (s === '.' || s === '..') refuse('dot_segment', start);
    segments.push(s);
    return needsEncoding ? encodeWire(s, PATH_WIRE_SAFE) : s;
  }
  const s = decodeComponent(raw, start, end, false, true);
  if (s === '.' || s === '..') refuse('dot_segment', start);
  // Upstreams that trim segments (String.prototype.trim, Python strip, some routers) would see another path.
  if (isEdgeWhitespace(s.charCodeAt(0)) || isEdgeWhitespace(s.charCodeAt(s.length - 1))) refuse('encoded_whitespace', start);
  if (decodedNonAscii) {
    const nfkc = s.normalize('NFKC');
    // '%' too: `％２ｅ` (fullwidth) is `%2e` to an upstream that NFKC-normalizes and then percent-decodes.
    if (nfkc !== s && (nfkc === '.' || nfkc === '..' || nfkc.includes('/') || nfkc.includes('\\') || nfkc.includes(';') || nfkc.includes('%'))) {
      refuse('unicode_confusable', start);
    }
  }
  segments.push(s);
  return encodeWire(s, PATH_WIRE_SAFE);
}

/**
 * White space as `String.prototype.trim` and Python's `str.strip` see it
 * (Unicode White_Space plus U+FEFF): the characters a trimming upstream drops.
 * C0 controls never get here (refused while decoding), except TAB..CR which
 * are refused as controls too; they are listed for completeness.
 */
function isEdgeWhitespace(c: number): boolean {
  if (c < 0xa0) return c === 0x20 || (c >= 0x09 && c <= 0x0d);
  return c === 0xa0 || c === 0x1680 || (c >= 0x2000 && c <= 0x200a) || c === 0x2028 || c === 0x2029 || c === 0x202f || c === 0x205f || c === 0x3000 || c === 0xfeff;
}

function parseQuery(raw: string, start: number, n: number): { query: Record<string, string[]>; wireQuery: string } {
  const query = Object.create(null) as Record<string, string[]>;
  let wire = '';
  let pairStart = start;
  let eq = -1;
  let nameEscaped = false; // '%' or '+' seen in the name
  let valueEscaped = false;
  for (let i = start; ; i++) {
    const c = i < n ? raw.charCodeAt(i) : END;
    if (c === AMP || c === END) {
      if (i > pairStart) {
        const nameEnd = eq < 0 ? i : eq;
        const name = nameEscaped ? decodeComponent(raw, pairStart, nameEnd, true, false) : raw.slice(pairStart, nameEnd);
        const value = eq < 0 ? '' : valueEscaped ? decodeComponent(raw, eq + 1, i, true, false) : raw.slice(eq + 1, i);
        const values = query[name];
        if (values === undefined) query[name] = [value];
        else values.push(value);
        wire += (wire === '' ? '' : '&') + encodeWire(name, QUERY_WIRE_SAFE) + '=' + encodeWire(value, QUERY_WIRE_SAFE);
      }
      if (c === END) break;
      pairStart = i + 1;
      eq = -1;
      nameEscaped = false;
      valueEscaped = false;
    } else if (c === EQUALS && eq < 0) {
      eq = i;
    } else if (c === PERCENT || c === PLUS) {
      if (eq < 0) nameEscaped = true;
      else valueEscaped = true;
    } else if (c <= 0x20 || c >= 0x7f) {
      if (c === 0x20 || c >= 0xa0) refuse('invalid_character', i);
      refuse('control_character', i);
    } else if (c === HASH) {
      refuse('fragment', i);
    }
    // Everything else printable ('/', '?', ';', '\', ...) is query data.
  }
  return { query, wireQuery: wire };
}

// Reused across calls: canonicalization is synchronous and never re-entered.
let scratch = new Uint8Array(512);
/** Set by {@link decodeComponent}: whether the last decoded value had non-ASCII bytes. */
let decodedNonAscii = false;

/**
 * Percent-decode `raw[start, end)` exactly once into a UTF-8 string. Raw
 * characters have already been checked by the caller's scan.
 */
function decodeComponent(raw: string, start: number, end: number, plusAsSpace: boolean, inPath: boolean): string {
  if (scratch.length < end - start) scratch = new Uint8Array(Math.max(end - start, scratch.length * 2));
  const buf = scratch;
  let len = 0;
  let nonAscii = false;
  for (let k = start; k < end; k++) {
    let b = raw.charCodeAt(k);
    if (b === PERCENT) {
      const hi = k + 2 < end ? HEX_VALUE[raw.charCodeAt(k + 1) & 0x7f]! : -1;
      const lo = k + 2 < end ? HEX_VALUE[raw.charCodeAt(k + 2) & 0x7f]! : -1;
      if (hi < 0 || lo < 0) refuse('invalid_percent_encoding', k);
      b = (hi << 4) | lo;
      if (b < 0x20 || b === 0x7f) refuse('control_character', k);
      if (inPath) {
        if (b === SLASH) refuse('encoded_slash', k);
        if (b === BACKSLASH) refuse('backslash', k);
        if (b === SEMICOLON) refuse('semicolon', k);
      }
      if (b >= 0x80) nonAscii = true;
      k += 2;
    } else if (b === PLUS && plusAsSpace) {
      b = 0x20;
    }
    buf[len++] = b;
  }
  decodedNonAscii = nonAscii;
  let s: string;
  try {
    s = UTF8.decode(buf.subarray(0, len));
  } catch {
    refuse('invalid_utf8', start);
  }
  if (nonAscii) {
    // C1 controls are valid UTF-8 (U+0080–U+009F); refuse them like C0.
    for (let k = 0; k < s.length; k++) {
      const u = s.charCodeAt(k);
      if (u >= 0x80 && u <= 0x9f) refuse('control_character', start);
    }
  }
  return s;
}

/** Percent-encode every UTF-8 byte of `s` that is not marked in `safe`. */
function encodeWire(s: string, safe: Uint8Array): string {
  let k = 0;
  for (; k < s.length; k++) {
    const c = s.charCodeAt(k);
    if (c >= 0x80 || safe[c] !== 1) break;
  }
  if (k === s.length) return s;
  let out = s.slice(0, k);
  for (; k < s.length; k++) {
    const c = s.charCodeAt(k);
    if (c < 0x80) {
      out += safe[c] === 1 ? s[k] : PCT_ENCODED[c];
    } else {
      // Encode the non-ASCII remainder in one go (decoded strings are well-formed UTF-16).
      for (const b of UTF8_ENCODER.encode(s.slice(k))) out += b < 0x80 && safe[b] === 1 ? String.fromCharCode(b) : PCT_ENCODED[b];
      break;
    }
  }
  return out;
}

/** Which non-origin form a target that does not start with '/' looks like (for the reason label only). */
function classifyNonOriginForm(t: string): TargetReason {
  if (t === '*') return 'asterisk_form';
  if (t.charCodeAt(0) === 0x5b) return 'authority_form'; // "[::1]:443"
  // scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":"  (RFC 3986 §3.1)
  let k = 0;
  for (; k < t.length; k++) {
    const c = t.charCodeAt(k);
    const alpha = (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
    if (!(alpha || (k > 0 && ((c >= 0x30 && c <= 0x39) || c === 0x2b || c === 0x2d || c === 0x2e)))) break;
  }
  if (k === 0 || k === t.length || t.charCodeAt(k) !== 0x3a) return 'not_origin_form';
  if (t.startsWith('//', k + 1)) return 'absolute_form';
  // "host:port" parses as scheme "host"; a digits-only rest is CONNECT's authority-form.
  let j = k + 1;
  while (j < t.length && t.charCodeAt(j) >= 0x30 && t.charCodeAt(j) <= 0x39) j++;
  return j === t.length ? 'authority_form' : 'absolute_form';
}
