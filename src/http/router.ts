/**
 * Route matching on the canonical, decoded path segments.
 *
 * Templates (validated by {@link validateTemplate}, compiled once by
 * {@link compileRoutes}):
 *
 * - a literal segment matches that exact decoded segment (case-sensitive, as
 *   RFC 3986 paths are; write literals decoded: `sent iment`, not `sent%20iment`);
 * - `{name}` matches exactly one non-empty segment;
 * - `{name*}` (last only) matches the rest: zero or more segments, the param
 *   value is them joined with `/` (`/files/{p*}` on `/files/a/b/` gives
 *   `p = 'a/b/'`; on `/files` and on `/files/` it gives `''`);
 * - a final `/*` is the same as `{*}`: its param is named `*`
 *   ({@link WILDCARD_PARAM}), like fastify's `params['*']`; `*` can never
 *   collide with a `{name}` because names are identifiers.
 * - A trailing `/` is significant, as in the canonicalizer: `/a/` matches
 *   `/a/` only, not `/a`. The template `/` matches only the root.
 *
 * Selection, independent of config order except for exact ties:
 *
 * 1. only routes whose host, path **and method** match are candidates;
 * 2. host first: an exact host beats a `*.example.com` host, which beats a
 *    route without host (the per-host route is the more specific statement);
 * 3. then path shape, compared segment by segment from the left: literal >
 *    `{param}` > end of template > rest wildcard;
 * 4. then config order.
 *
 * If no route matches but some match host and path with another method, 405
 * with `Allow` = the union of their methods (sorted); otherwise 404. HEAD is
 * **not** implied by GET, nor OPTIONS by anything: least privilege, and the
 * policy sees the method the upstream will see; list `HEAD` explicitly.
 *
 * All of this is static per route, so {@link compileRoutes} sorts the routes
 * once by (host kind, shape, config order) and indexes them by first literal
 * segment; `match` walks a short sorted list and returns the first hit. No
 * regular expressions, no allocation except the params of the winner.
 */

import type { RouteConfig } from '../config/types.ts';
import { MethodNotAllowedError, RouteNotFoundError } from '../errors.ts';

/** A matched route and its decoded template parameters. */
export interface RouteMatchResult {
  readonly route: RouteConfig;
  /** Template parameters by name (`*` for a trailing `/*`). Null-prototype object. */
  readonly params: Record<string, string>;
}

/** The compiled, immutable route table of one runtime. */
export interface Router {
  /**
   * Find the route for a request.
   *
   * @param method - the request method, compared case-sensitively (RFC 9110 §9.1).
   * @param host - the `Host` value; lower-cased, port and one trailing dot removed by {@link normalizeHost}.
   * @param segments - `CanonicalTarget.segments`.
   * @throws {RouteNotFoundError} when no route matches host and path.
   * @throws {MethodNotAllowedError} when some do, but none with this method.
   */
  match(method: string, host: string, segments: readonly string[]): RouteMatchResult;
}

/** Param name of a trailing `/*` wildcard. */
export const WILDCARD_PARAM = '*';

const LITERAL = 0;
const PARAM = 1;
/** Shape rank of "template ends here": beats a rest wildcard that matches zero segments. */
const TEMPLATE_END = 2;
const REST = 3;

const HOST_EXACT = 0;
const HOST_WILDCARD = 1;
const HOST_ANY = 2;

interface CompiledSegment {
  readonly kind: typeof LITERAL | typeof PARAM;
  /** Literal text or param name. */
  readonly value: string;
}

interface CompiledRoute {
  readonly route: RouteConfig;
  readonly index: number;
  /** Segments before the rest wildcard (or all of them). */
  readonly fixed: readonly CompiledSegment[];
  /** Param name of the rest wildcard, or null when the template has none. */
  readonly rest: string | null;
  readonly methods: ReadonlySet<string>;
  readonly hostKind: typeof HOST_EXACT | typeof HOST_WILDCARD | typeof HOST_ANY;
  /** Exact host, or the suffix `.example.com` of `*.example.com`; '' for any host. */
  readonly host: string;
  /** Precedence key: fixed kinds, then TEMPLATE_END or REST. */
  readonly shape: readonly number[];
}

const PARAM_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const HOST_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * Check a path template. Used by the config loader to refuse bad templates
 * with a precise message, and by {@link compileRoutes}.
 *
 * @returns what is wrong with the template, or `null` when it is valid.
 */
export function validateTemplate(path: string): string | null {
  if (typeof path !== 'string' || path === '') return 'must be a non-empty string';
  if (path.charCodeAt(0) !== 0x2f) return "must start with '/'";
  const parts = path.slice(1).split('/');
  const names = new Set<string>();
  for (let i = 0; i < parts.length; i++) {
    const seg = parts[i]!;
    const last = i === parts.length - 1;
    const where = `segment ${i + 1} ('${seg}')`;
    if (seg === '') {
      // A trailing '/' (and the root '/') is a meaningful empty last segment.
      if (last) continue;
      return `empty segment at position ${i + 1} ('//'): such paths are refused before routing, so it could never match`;
    }
    if (seg === '.' || seg === '..') return `${where} is a dot segment: such paths are refused before routing, so it could never match`;
    if (seg === '*') {
      if (!last) return `wildcard '*' must be the last segment, found at position ${i + 1}`;
      continue;
    }
    const open = countChar(seg, '{');
    const close = countChar(seg, '}');
    if (open !== 0 || close !== 0) {
      if (open !== close) return `unbalanced braces in ${where}`;
      if (open !== 1 || seg[0] !== '{' || seg[seg.length - 1] !== '}') {
        return `${where}: a parameter must be a whole segment ('{name}' or '{name*}')`;
      }
      const rest = seg.endsWith('*}');
      const name = seg.slice(1, rest ? -2 : -1);
      if (!PARAM_NAME.test(name)) return `invalid parameter name '${name}' in ${where}: use letters, digits and '_', not starting with a digit`;
      if (names.has(name)) return `duplicate parameter name '${name}'`;
      if (rest && !last) return `rest parameter '${seg}' must be the last segment, found at position ${i + 1}`;
      names.add(name);
      continue;
    }
    for (let k = 0; k < seg.length; k++) {
      const c = seg.charCodeAt(k);
      if (c === 0x2a) return `${where}: '*' is only allowed as the whole last segment`;
      if (c === 0x25) return `${where}: write literal segments decoded (e.g. 'a b', not 'a%20b'); '%' is not allowed`;
      if (c === 0x3b) return `${where}: ';' is refused in request paths, so it could never match`;
      if (c === 0x5c) return `${where}: '\\' is refused in request paths, so it could never match`;
      if (c === 0x3f || c === 0x23) return `${where}: a template must not contain a query or fragment`;
      if (c < 0x20 || (c >= 0x7f && c <= 0x9f)) return `${where}: control characters are not allowed`;
    }
  }
  return null;
}

/**
 * Check a route host pattern: an exact host name (`api.example.com`) or a
 * one-label wildcard (`*.example.com`), without port or trailing dot.
 * Case-insensitive.
 *
 * @returns what is wrong with the pattern, or `null` when it is valid.
 */
export function validateHostPattern(host: string): string | null {
  if (typeof host !== 'string' || host === '') return 'must be a non-empty string';
  const h = host.toLowerCase();
  if (h.startsWith('[')) return 'IPv6 literals are not supported as route hosts';
  if (h.includes(':')) return 'must not include a port (ports are ignored when matching)';
  if (h.endsWith('.')) return 'must not end with a dot';
  const name = h.startsWith('*.') ? h.slice(2) : h;
  if (name.includes('*')) return "'*' is only allowed as the whole first label ('*.example.com')";
  for (const label of name.split('.')) {
    if (!HOST_LABEL.test(label)) return `invalid host label '${label}': letters, digits and '-', 1-63 characters, not starting or ending with '-'`;
  }
  return null;
}

/**
 * Normalize a `Host` header value for matching: ASCII lower-case, port
 * removed (`[::1]:8080` → `[::1]`), one trailing dot removed, because
 * `api.example.com.` names the same host and upstream virtual hosting treats
 * it so: without this a client could step around a host-specific route.
 */
export function normalizeHost(host: string): string {
  let end = host.length;
  if (host.charCodeAt(0) === 0x5b) {
    const close = host.indexOf(']');
    if (close >= 0) end = close + 1;
  } else {
    const colon = host.indexOf(':');
    if (colon >= 0) end = colon;
  }
  if (end > 0 && host.charCodeAt(end - 1) === 0x2e) end--;
  let upper = false;
  for (let k = 0; k < end; k++) {
    const c = host.charCodeAt(k);
    if (c >= 0x41 && c <= 0x5a) {
      upper = true;
      break;
    }
  }
  const h = end === host.length ? host : host.slice(0, end);
  // ASCII only: a Unicode lower-casing could map a non-ASCII character onto an ASCII one.
  return upper ? h.replace(ASCII_UPPER, (ch) => String.fromCharCode(ch.charCodeAt(0) | 0x20)) : h;
}
const ASCII_UPPER = /[A-Z]/g;

/**
 * Compile the route table once, at startup or reload.
 *
 * @throws {TypeError} when a route has an invalid template, host or empty
 *   method list: the config loader validates these first, so this is a bug.
 */
export function compileRoutes(routes: readonly RouteConfig[]): Router {
  const compiled = routes.map(compileRoute);
  compiled.sort(comparePrecedence);

  // Index by first segment: a route whose template starts with a literal can
  // only match paths starting with that literal; the others can match any.
  const dynamicFirst = compiled.filter((r) => !startsWithLiteral(r));
  const byFirst = new Map<string, readonly CompiledRoute[]>();
  for (const r of compiled) {
    if (!startsWithLiteral(r)) continue;
    const first = r.fixed[0]!.value;
    if (!byFirst.has(first)) byFirst.set(first, compiled.filter((x) => !startsWithLiteral(x) || x.fixed[0]!.value === first));
  }

  return Object.freeze({
    match(method: string, host: string, segments: readonly string[]): RouteMatchResult {
      const h = normalizeHost(host);
      const candidates = (segments.length > 0 ? byFirst.get(segments[0]!) : undefined) ?? dynamicFirst;
      for (const r of candidates) {
        if (r.methods.has(method) && hostMatches(r, h) && pathMatches(r, segments)) {
          return { route: r.route, params: extractParams(r, segments) };
        }
      }
      // Failure path only: was it the method?
      const allow = new Set<string>();
      for (const r of candidates) {
        if (hostMatches(r, h) && pathMatches(r, segments)) for (const m of r.methods) allow.add(m);
      }
      if (allow.size === 0) throw new RouteNotFoundError();
      throw new MethodNotAllowedError([...allow].sort());
    },
  });
}

function compileRoute(route: RouteConfig, index: number): CompiledRoute {
  const { path, host, methods } = route.match;
  const problem = validateTemplate(path);
  if (problem !== null) throw new TypeError(`route '${route.id}': invalid path template '${path}': ${problem}`);
  if (host !== undefined) {
    const hostProblem = validateHostPattern(host);
    if (hostProblem !== null) throw new TypeError(`route '${route.id}': invalid host '${host}': ${hostProblem}`);
  }
  if (methods.length === 0) throw new TypeError(`route '${route.id}': no methods`);

  const parts = path.slice(1).split('/');
  const fixed: CompiledSegment[] = [];
  let rest: string | null = null;
  for (const seg of parts) {
    if (seg === '*') rest = WILDCARD_PARAM;
    else if (seg.endsWith('*}')) rest = seg.slice(1, -2);
    else if (seg.startsWith('{')) fixed.push({ kind: PARAM, value: seg.slice(1, -1) });
    else fixed.push({ kind: LITERAL, value: seg });
  }
  const lower = host?.toLowerCase();
  return {
    route,
    index,
    fixed,
    rest,
    methods: new Set(methods),
    hostKind: lower === undefined ? HOST_ANY : lower.startsWith('*.') ? HOST_WILDCARD : HOST_EXACT,
    host: lower === undefined ? '' : lower.startsWith('*.') ? lower.slice(1) : lower,
    shape: [...fixed.map((s) => s.kind), rest === null ? TEMPLATE_END : REST],
  };
}

/** Host kind, then shape left to right (lower rank = more specific), then config order. */
function comparePrecedence(a: CompiledRoute, b: CompiledRoute): number {
  if (a.hostKind !== b.hostKind) return a.hostKind - b.hostKind;
  const n = Math.min(a.shape.length, b.shape.length);
  for (let i = 0; i < n; i++) {
    if (a.shape[i] !== b.shape[i]) return a.shape[i]! - b.shape[i]!;
  }
  // Shapes end with a terminal rank, so two shapes that matched the same path
  // and are equal up to the shorter one are identical: config order decides.
  return a.shape.length - b.shape.length || a.index - b.index;
}

function startsWithLiteral(r: CompiledRoute): boolean {
  return r.fixed.length > 0 && r.fixed[0]!.kind === LITERAL;
}

function hostMatches(r: CompiledRoute, host: string): boolean {
  if (r.hostKind === HOST_ANY) return true;
  if (r.hostKind === HOST_EXACT) return host === r.host;
  // '*.example.com' (suffix '.example.com'): exactly one non-empty label before the suffix.
  const labelLength = host.length - r.host.length;
  return labelLength > 0 && host.endsWith(r.host) && host.indexOf('.') === labelLength;
}

function pathMatches(r: CompiledRoute, segments: readonly string[]): boolean {
  const fixed = r.fixed;
  if (r.rest === null ? segments.length !== fixed.length : segments.length < fixed.length) return false;
  for (let i = 0; i < fixed.length; i++) {
    const t = fixed[i]!;
    const s = segments[i]!;
    if (t.kind === LITERAL ? s !== t.value : s === '') return false;
  }
  return true;
}

function extractParams(r: CompiledRoute, segments: readonly string[]): Record<string, string> {
  // Null prototype: a param may legally be called `__proto__` or `constructor`.
  const params = Object.create(null) as Record<string, string>;
  const fixed = r.fixed;
  for (let i = 0; i < fixed.length; i++) {
    const t = fixed[i]!;
    if (t.kind === PARAM) params[t.value] = segments[i]!;
  }
  if (r.rest !== null) params[r.rest] = segments.length === fixed.length ? '' : segments.slice(fixed.length).join('/');
  return params;
}

function countChar(s: string, ch: string): number {
  let n = 0;
  for (let i = s.indexOf(ch); i >= 0; i = s.indexOf(ch, i + 1)) n++;
  return n;
}
