/**
 * Catalog URL templates: `http://catalog.internal/files/{file}?fields=tags`.
 *
 * A template is checked once by the config loader ({@link urlTemplateProblem})
 * and compiled once at startup ({@link compileUrlTemplate}); filling it on the
 * request path is a concatenation of precomputed literals and encoded values.
 *
 * Safety rules, so that a request path parameter can only ever name a
 * resource, never redirect the lookup:
 *
 * - parameters may appear only after the authority (in the path or the
 *   query): the scheme, user info, host and port are literal, so a caller can
 *   never choose which server regate asks (SSRF);
 * - every value is encoded with `encodeURIComponent`, so `/`, `?`, `#`, `&`,
 *   `=` and `%` in a value are data (`a/b?c#d` → `a%2Fb%3Fc%23d`), never a new
 *   segment, query or fragment;
 * - a value made only of dots (`.`, `..`) is encoded as `%2E`s, so a catalog
 *   that resolves dot segments cannot be walked up its own tree (the
 *   canonicalizer already refuses dot segments in request paths: defense in
 *   depth);
 * - the filled path is sent as is (undici does not normalize it).
 */

/** A compiled catalog URL template. */
export interface UrlTemplate {
  /** The template as configured. */
  readonly source: string;
  /** `http://host:port`: the pool the lookups go to. */
  readonly origin: string;
  /** Parameter names used, in order of appearance (may repeat). */
  readonly params: readonly string[];
  /**
   * The origin-relative request target (`/files/a%2Fb?fields=tags`) for these
   * route params. A param the template names but `params` lacks fills as ''
   * (the loader guarantees every name is a route parameter).
   */
  fill(params: Readonly<Record<string, string>>): string;
  /** The absolute URL for these params: origin + {@link fill}. */
  url(params: Readonly<Record<string, string>>): string;
}

const PLACEHOLDER = /\{([^{}]*)\}/g;
const PARAM_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const ONLY_DOTS = /^\.+$/;

/**
 * Parameter names of a route path template (`/files/{dir}/{path*}` →
 * `['dir', 'path']`). A trailing `/*` has no name a URL template could use.
 */
export function pathTemplateParams(pathTemplate: string): string[] {
  const names: string[] = [];
  for (const seg of pathTemplate.split('/')) {
    if (seg.length > 2 && seg.startsWith('{') && seg.endsWith('}')) names.push(seg.slice(1, seg.endsWith('*}') ? -2 : -1));
  }
  return names;
}

/** The `{name}`s a URL template uses (no validation). */
export function urlTemplateNames(template: string): string[] {
  return [...template.matchAll(PLACEHOLDER)].map((m) => m[1]!);
}

interface Parsed {
  /** Literal pieces; `literals.length === names.length + 1`. */
  readonly literals: string[];
  readonly names: string[];
  /** Index in the template where the path (or query) starts. */
  readonly authorityEnd: number;
}

function parse(template: string): Parsed | string {
  const scheme = /^https?:\/\//i.exec(template);
  if (!scheme) return 'must start with http:// or https://';
  for (let i = 0; i < template.length; i++) {
    const c = template.charCodeAt(i);
    if (c <= 0x20 || c >= 0x7f) return 'must be printable ASCII without spaces (percent-encode anything else)';
  }
  if (template.includes('#')) return 'must not contain a fragment (#)';
  let authorityEnd = template.length;
  for (let i = scheme[0].length; i < template.length; i++) {
    const ch = template[i];
    if (ch === '/' || ch === '?') {
      authorityEnd = i;
      break;
    }
  }
  const literals: string[] = [];
  const names: string[] = [];
  let last = 0;
  for (const m of template.matchAll(PLACEHOLDER)) {
    literals.push(template.slice(last, m.index));
    names.push(m[1]!);
    last = m.index + m[0].length;
  }
  literals.push(template.slice(last));
  for (const lit of literals) {
    if (lit.includes('{') || lit.includes('}')) return "unbalanced '{' or '}': write a parameter as {name}";
  }
  return { literals, names, authorityEnd };
}

/**
 * What is wrong with `template` for a route whose path parameters are
 * `allowed`, or `null` when it is valid. Used by the config loader (with the
 * key path) and by {@link compileUrlTemplate}.
 */
export function urlTemplateProblem(template: string, allowed: readonly string[]): string | null {
  const p = parse(template);
  if (typeof p === 'string') return p;
  const firstParam = p.names.length > 0 ? p.literals[0]!.length : -1;
  if (firstParam !== -1 && firstParam < p.authorityEnd) {
    return 'parameters may only appear in the path or the query, not in the scheme, host or port (the catalog server must not depend on the request)';
  }
  for (const name of p.names) {
    if (!PARAM_NAME.test(name)) return `invalid parameter {${name}}: use letters, digits and '_', not starting with a digit`;
    if (!allowed.includes(name)) {
      return `{${name}} is not a path parameter of this route (match.path has ${allowed.length > 0 ? allowed.map((n) => `{${n}}`).join(', ') : 'none'})`;
    }
  }
  let url: URL;
  try {
    url = new URL(p.literals.join('x'));
  } catch {
    return 'is not a valid URL';
  }
  if (url.username || url.password) return 'must not contain credentials (user:password@): use headers';
  return null;
}

/**
 * Compile a template once. Throws TypeError for an invalid template (the
 * config loader reports those first with their key path, so this is a bug).
 */
export function compileUrlTemplate(template: string, allowed: readonly string[]): UrlTemplate {
  const problem = urlTemplateProblem(template, allowed);
  if (problem !== null) throw new TypeError(`invalid resource URL template ${JSON.stringify(template)}: ${problem}`);
  const p = parse(template) as Parsed;
  const origin = new URL(template.slice(0, p.authorityEnd)).origin;
  // The origin-relative part: the first literal minus the authority, then the rest as is.
  const literals = [...p.literals];
  literals[0] = literals[0]!.slice(p.authorityEnd);
  if (!literals[0].startsWith('/')) literals[0] = `/${literals[0]}`;
  const names = p.names;
  const fill = (params: Readonly<Record<string, string>>): string => {
    let out = literals[0]!;
    for (let i = 0; i < names.length; i++) out += encodeParam(params[names[i]!] ?? '') + literals[i + 1]!;
    return out;
  };
  return Object.freeze({
    source: template,
    origin,
    params: Object.freeze([...names]),
    fill,
    url: (params: Readonly<Record<string, string>>) => origin + fill(params),
  });
}

/** `encodeURIComponent`, plus dots-only values as `%2E`s (see the module comment). */
export function encodeParam(value: string): string {
  if (ONLY_DOTS.test(value)) return '%2E'.repeat(value.length);
  return encodeURIComponent(value);
}
