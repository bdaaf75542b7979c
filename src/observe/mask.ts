/**
 * What the decision log may not contain, removed before a record is written.
 *
 * Three steps, all on a private copy of the event (the pipeline's input is
 * shared and frozen):
 *
 * 1. {@link cloneForLog}: deep copy into plain objects, with every
 *    `bigint` turned into an exact JSON integer (`JSON.rawJSON`), so
 *    `input.time.now_ns` keeps all 19 digits and never throws in stringify.
 * 2. {@link redactCredentials}: defense in depth. `input.request.headers` is
 *    built without Authorization and Cookie, but a future change or a
 *    client-chosen header must still not put a bearer token in the log.
 *    Credential headers are erased; any JWT-shaped string in a header or
 *    query value is replaced.
 * 3. {@link applyMask}: the operator's `decision_log.mask` JSON pointers,
 *    compiled once at startup by {@link compileMask}.
 *
 * Pointers follow OPA's decision-log masking: rooted at the event
 * (`/input/...`, `/result/...`), removed values are listed in the event's
 * `erased`, replaced values in `masked`; a pointer to a missing value is a
 * no-op and is not listed. Unlike OPA (URL-escaped segments) the segments are
 * RFC 6901 JSON pointers (`~1` for `/`, `~0` for `~`), as the config documents.
 */

/** Header names erased from `input.request.headers` whatever the input builder did. */
export const CREDENTIAL_HEADERS: readonly string[] = ['authorization', 'proxy-authorization', 'cookie'];

/** What replaces a JWT-shaped substring. */
export const JWT_REPLACEMENT = '[REDACTED:jwt]';

/**
 * A JWS/JWE compact serialization: a base64url JSON header (always starts
 * `eyJ`, the encoding of `{"`) and 2–4 more dot-separated base64url parts.
 * Matched anywhere in a value (`Bearer eyJ...`, `token=eyJ...`).
 */
const JWT_PATTERN = /eyJ[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]*){2,4}/g;

/** True when `value` contains something shaped like a JWT. */
export function containsJwt(value: string): boolean {
  // Cheap pre-check first: nearly every header value is rejected without running the regex.
  if (!value.includes('eyJ')) return false;
  JWT_PATTERN.lastIndex = 0;
  return JWT_PATTERN.test(value);
}

/** Replace every JWT-shaped substring of `value`. */
export function redactJwts(value: string): string {
  return value.includes('eyJ') ? value.replace(JWT_PATTERN, JWT_REPLACEMENT) : value;
}

/** One compiled mask pointer. */
export interface MaskPointer {
  /** The pointer as configured, e.g. `/input/request/headers/x-api-key`. */
  readonly pointer: string;
  readonly root: 'input' | 'result';
  /** Unescaped reference tokens below the root; empty = the whole root document. */
  readonly tokens: readonly string[];
}

/** `decision_log.mask`, split and unescaped once at startup. */
export interface CompiledMask {
  readonly pointers: readonly MaskPointer[];
}

/**
 * Compile mask pointers. Throws TypeError for a pointer that is not an RFC
 * 6901 pointer rooted at `/input` or `/result` (the config schema should
 * have refused it already, so reaching this is a caller bug).
 */
export function compileMask(pointers: readonly string[]): CompiledMask {
  const compiled = pointers.map((pointer): MaskPointer => {
    if (!pointer.startsWith('/')) throw new TypeError(`decision_log.mask: ${JSON.stringify(pointer)} is not a JSON pointer (must start with "/")`);
    const tokens = pointer.slice(1).split('/').map((raw) => {
      if (/~(?![01])/.test(raw)) throw new TypeError(`decision_log.mask: ${JSON.stringify(pointer)} has an invalid "~" escape`);
      return raw.replaceAll('~1', '/').replaceAll('~0', '~');
    });
    const root = tokens.shift();
    if (root !== 'input' && root !== 'result') {
      throw new TypeError(`decision_log.mask: ${JSON.stringify(pointer)} must start with /input or /result`);
    }
    return { pointer, root, tokens };
  });
  return { pointers: compiled };
}

/** The part of a decision event that masking applies to. Mutated in place. */
export interface MaskableEvent {
  input?: unknown;
  result?: unknown;
}

/**
 * Apply compiled pointers to `event` (a private copy from {@link cloneForLog}),
 * removing each target that exists. Returns the pointers that removed something,
 * in order (the event's `erased`). Array elements are spliced out, as OPA does,
 * so a later pointer into the same array sees the shifted indices.
 */
export function applyMask(event: MaskableEvent, mask: CompiledMask): string[] {
  const erased: string[] = [];
  for (const p of mask.pointers) {
    if (!(p.root in event) || event[p.root] === undefined) continue;
    if (p.tokens.length === 0) {
      delete event[p.root];
      erased.push(p.pointer);
      continue;
    }
    if (removeAt(event[p.root], p.tokens)) erased.push(p.pointer);
  }
  return erased;
}

/** Remove the value at `tokens` below `doc`; false when there is nothing there. */
function removeAt(doc: unknown, tokens: readonly string[]): boolean {
  let node: unknown = doc;
  const last = tokens.length - 1;
  for (let i = 0; i < last; i++) {
    node = child(node, tokens[i]!);
    if (node === undefined) return false;
  }
  const key = tokens[last]!;
  if (Array.isArray(node)) {
    const index = arrayIndex(key, node.length);
    if (index === undefined) return false;
    node.splice(index, 1);
    return true;
  }
  if (isRecord(node) && Object.hasOwn(node, key)) {
    delete node[key];
    return true;
  }
  return false;
}

function child(node: unknown, key: string): unknown {
  if (Array.isArray(node)) {
    const index = arrayIndex(key, node.length);
    return index === undefined ? undefined : node[index];
  }
  if (isRecord(node) && Object.hasOwn(node, key)) return node[key];
  return undefined;
}

/** RFC 6901 array index: `0` or digits without a leading zero, in range. `-` never exists yet. */
function arrayIndex(token: string, length: number): number | undefined {
  if (!/^(?:0|[1-9][0-9]*)$/.test(token)) return undefined;
  const index = Number(token);
  return index < length ? index : undefined;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

/** Pointers touched by {@link redactCredentials}, in OPA's vocabulary. */
export interface Redaction {
  readonly erased: string[];
  readonly masked: string[];
}

/**
 * Defense in depth on a cloned input: erase credential headers, and replace
 * JWT-shaped substrings anywhere under `input.request` — header values, the
 * path and its parameters (`/verify/{token}`), query keys and values
 * (RFC 6750 §2.3 allows `?access_token=`), and string leaves and keys of a
 * parsed body (a token-exchange `subject_token`). Mutates `input`.
 */
export function redactCredentials(input: unknown): Redaction {
  const erased: string[] = [];
  const masked: string[] = [];
  if (!isRecord(input) || !isRecord(input['request'])) return { erased, masked };
  const request = input['request'];
  const headers = request['headers'];
  if (isRecord(headers)) {
    for (const name of Object.keys(headers)) {
      // Header names are lower-case in the input; compare lower-case anyway, it costs nothing.
      if (CREDENTIAL_HEADERS.includes(name.toLowerCase())) {
        delete headers[name];
        erased.push(`/input/request/headers/${escapeToken(name)}`);
      }
    }
    redactTree(headers, '/input/request/headers', masked);
  }
  redactTree(request, '/input/request', masked, 'headers');
  return { erased, masked };
}

/** Replace JWT-shaped substrings in every string leaf and key under `node`; record pointers. */
function redactTree(node: Record<string, unknown> | unknown[], pointer: string, masked: string[], skip?: string): void {
  if (Array.isArray(node)) {
    for (let i = 0; i < node.length; i++) {
      const value: unknown = node[i];
      if (typeof value === 'string') {
        if (containsJwt(value)) {
          node[i] = redactJwts(value);
          masked.push(`${pointer}/${i}`);
        }
      } else if (isRecord(value)) {
        redactTree(value, `${pointer}/${i}`, masked);
      }
    }
    return;
  }
  for (const key of Object.keys(node)) {
    if (key === skip) continue;
    let name = key;
    if (containsJwt(key)) {
      // A token as a key (`?eyJ...`): rename it; the value moves with it.
      name = redactJwts(key);
      const value = node[key];
      delete node[key];
      node[name] = value;
      masked.push(`${pointer}/${escapeToken(name)}`);
    }
    const value = node[name];
    if (typeof value === 'string') {
      if (containsJwt(value)) {
        node[name] = redactJwts(value);
        masked.push(`${pointer}/${escapeToken(name)}`);
      }
    } else if (isRecord(value)) {
      redactTree(value, `${pointer}/${escapeToken(name)}`, masked);
    }
  }
}

/**
 * Would {@link redactCredentials} change anything in `input`? Read-only: when
 * not (and no mask pointer is configured) the decision log serializes the
 * input itself instead of a copy — the copy was the largest allocation of a
 * request, and so the largest share of its garbage-collection cost.
 */
export function hasCredentials(input: unknown): boolean {
  if (!isRecord(input) || !isRecord(input['request'])) return false;
  const request = input['request'];
  const headers = request['headers'];
  if (isRecord(headers)) {
    for (const name of Object.keys(headers)) if (CREDENTIAL_HEADERS.includes(name.toLowerCase())) return true;
  }
  return treeContainsJwt(request);
}

function treeContainsJwt(node: Record<string, unknown> | unknown[]): boolean {
  if (Array.isArray(node)) {
    for (const value of node) {
      if (typeof value === 'string' ? containsJwt(value) : isRecord(value) && treeContainsJwt(value)) return true;
    }
    return false;
  }
  for (const key in node) {
    if (containsJwt(key)) return true;
    const value = node[key];
    if (typeof value === 'string' ? containsJwt(value) : isRecord(value) && treeContainsJwt(value)) return true;
  }
  return false;
}

/** RFC 6901 escaping of one reference token. */
export function escapeToken(token: string): string {
  return token.replaceAll('~', '~0').replaceAll('/', '~1');
}

type RawJson = (text: string) => unknown;
/**
 * `JSON.rawJSON` (Node ≥ 21): an object JSON.stringify emits verbatim. It is
 * the only way to put a 64-bit integer into JSON from JavaScript without
 * going through a lossy double. Not in TypeScript's ES2023 lib yet.
 */
const rawJSON: RawJson | undefined = (JSON as unknown as { rawJSON?: RawJson }).rawJSON;
const isRawJson: ((value: unknown) => boolean) | undefined = (JSON as unknown as { isRawJSON?: (value: unknown) => boolean }).isRawJSON;

/** How a bigint is written: an exact JSON integer, or (no rawJSON) its decimal string. */
export function bigintForJson(value: bigint): unknown {
  return rawJSON === undefined ? value.toString() : rawJSON(value.toString());
}

/**
 * Deep copy of a JSON-like value for logging: objects become plain objects
 * (a `__proto__` key stays an own key), arrays stay arrays,
 * bigints become exact JSON integers. Functions and symbols are dropped as
 * JSON.stringify would drop them; objects with `toJSON` (Date) are converted.
 */
export function cloneForLog(value: unknown): unknown {
  switch (typeof value) {
    case 'bigint':
      return bigintForJson(value);
    case 'object': {
      if (value === null) return null;
      if (Array.isArray(value)) return value.map(cloneForLog);
      // Already exact JSON (a bigint converted earlier, `input.time`'s now_ns): keep it.
      if (isRawJson?.(value)) return value;
      const withToJson = value as { toJSON?: unknown };
      if (typeof withToJson.toJSON === 'function') return cloneForLog((withToJson.toJSON as () => unknown)());
      // A plain object, not Object.create(null): V8 keeps null-prototype objects in
      // dictionary mode, which made every write and the JSON.stringify of the
      // record several times slower. `__proto__` is defined, never assigned, so it
      // stays an own key and never changes the prototype.
      const out: Record<string, unknown> = {};
      for (const key of Object.keys(value)) {
        const v = cloneForLog((value as Record<string, unknown>)[key]);
        if (key === '__proto__') Object.defineProperty(out, key, { value: v, enumerable: true, writable: true, configurable: true });
        else out[key] = v;
      }
      return out;
    }
    case 'function':
    case 'symbol':
      return undefined;
    default:
      return value;
  }
}
