/**
 * `${NAME}` environment variables in config values.
 *
 * Substitution happens after parsing, on scalar values only, so a variable
 * can never change the document's structure. Two things make it feel the way
 * YAML users expect (docker compose, Helm values):
 *
 * - The braces are hidden from the YAML parser: `{port: ${PORT}}` in a flow
 *   mapping would otherwise be a syntax error (`{` `}` are flow indicators).
 *   {@link hideVariableBraces} swaps them for two private-use characters of
 *   the same length before parsing (every offset, hence every reported
 *   line:col, stays right) and {@link restoreBraces} swaps them back.
 * - `${NAME:-default}` gives the default when NAME is unset or empty, so a
 *   shipped config can run as is and still be re-pointed from the shell.
 * - A value that is exactly one `${NAME}` (or `${NAME:-default}`), quoted or not, takes the type the
 *   schema wants at that key: `port: ${PORT}` and `port: "${PORT}"` are both
 *   the integer 8443, `enabled: ${LOG}` a boolean, `version: ${V}` under
 *   `labels` stays the string "2". Text that is not one (`"8o8o"`) is an
 *   error naming the variable.
 */

import schema from './regate.schema.json' with { type: 'json' };

const OPEN = '\uE000';
const CLOSE = '\uE001';
const HIDDEN = /\uE000|\uE001/g;
const HAS_HIDDEN = /\uE000|\uE001/;

/** `$${` (a literal `${`) or a reference `${...}`, possibly unterminated. */
const VAR = /\$\$\{|\$\{([^}]*)\}?/g;
/** NAME, or NAME:-default (the default when NAME is unset or empty, as in sh and docker compose). */
const REFERENCE = /^([A-Z_][A-Z0-9_]*)(?::-([^}]*))?$/;
const WHOLE_VAR = /^\$\{([A-Z_][A-Z0-9_]*)(?::-[^}]*)?\}$/;

/**
 * `text` with the braces of every well-formed `${NAME}` replaced by two
 * private-use characters, same length. A text that already holds those
 * characters is returned unchanged (it would not be restorable).
 */
export function hideVariableBraces(text: string): string {
  if (!text.includes('${') || HAS_HIDDEN.test(text)) return text;
  return text.replace(/\$\$\{|\$\{([A-Z_][A-Z0-9_]*(?::-[^}\n]*)?)\}/g, (match, ref: string | undefined) => (ref === undefined ? match : `$${OPEN}${ref}${CLOSE}`));
}

/** Undo {@link hideVariableBraces} in one scalar's text. */
export function restoreBraces(value: string): string {
  return value.includes(OPEN) || value.includes(CLOSE) ? value.replace(HIDDEN, (c) => (c === OPEN ? '{' : '}')) : value;
}

/** `${NAME}` → env value, `${NAME:-default}` → env value or default; `$${` → literal `${`. Returns the problem instead when a name is bad or unset. */
export function interpolate(value: string, env: Readonly<Record<string, string | undefined>>): string | { problem: string } {
  let problem: string | undefined;
  const out = value.replace(VAR, (match, inner: string | undefined) => {
    if (match === '$${') return '${';
    const ref = match.endsWith('}') && inner !== undefined ? REFERENCE.exec(inner) : null;
    if (!ref) {
      problem ??= `invalid variable reference ${JSON.stringify(match)}: use \${NAME} or \${NAME:-default} with NAME of A-Z, 0-9, _ (write $\${ for a literal \${)`;
      return match;
    }
    const [, name, fallback] = ref as unknown as [string, string, string | undefined];
    const v = env[name];
    if (fallback !== undefined && (v === undefined || v === '')) return fallback;
    if (v === undefined) problem ??= `environment variable ${name} is not set`;
    return v ?? '';
  });
  return problem === undefined ? out : { problem };
}

/**
 * The value of a scalar whose whole text is `${NAME}`, typed for the key at
 * `keyPath`: an integer or boolean where the schema wants one (and no string
 * would do), otherwise the substituted string. A problem names the variable.
 */
export function typedVariable(text: string, substituted: string, keyPath: string): string | number | boolean | { problem: string } {
  const name = WHOLE_VAR.exec(text)?.[1];
  if (name === undefined) return substituted;
  const wants = typesAt(keyPath);
  if (wants.has('string') || wants.size === 0) return substituted;
  if (wants.has('integer') || wants.has('number')) {
    if (/^-?(0|[1-9][0-9]*)$/.test(substituted.trim()) && Number.isSafeInteger(Number(substituted))) return Number(substituted);
    if (wants.has('number') && substituted.trim() !== '' && Number.isFinite(Number(substituted))) return Number(substituted);
  }
  if (wants.has('boolean') && (substituted === 'true' || substituted === 'false')) return substituted === 'true';
  if (wants.has('const')) return substituted; // e.g. workers: "auto"; the schema judges it
  const want = [...wants].map((t) => (t === 'integer' ? 'an integer' : t === 'boolean' ? 'true or false' : `a ${t}`)).join(' or ');
  return { problem: `environment variable ${name} is ${JSON.stringify(substituted)}, but this key needs ${want}` };
}

// ---------------------------------------------------------------- schema lookup

type Node = Record<string, unknown>;
const defs = (schema as { $defs: Record<string, Node> }).$defs;
const cache = new Map<string, ReadonlySet<string>>();

/** JSON types the schema allows at `keyPath` ("const" for a string constant or enum); empty when unknown. */
function typesAt(keyPath: string): ReadonlySet<string> {
  // Array indexes do not change the schema: cache by the path with indexes erased.
  const shape = keyPath.replace(/\/\d+(?=\/|$)/g, '/#');
  let types = cache.get(shape);
  if (types === undefined) {
    const segments = keyPath === '' ? [] : keyPath.slice(1).split('/').map((s) => s.replaceAll('~1', '/').replaceAll('~0', '~'));
    let nodes: Node[] = [schema as Node];
    for (const segment of segments) nodes = nodes.flatMap((n) => alternatives(n)).flatMap((n) => child(n, segment));
    const out = new Set<string>();
    for (const n of nodes.flatMap((x) => alternatives(x))) {
      const t = n.type;
      if (typeof t === 'string') out.add(t);
      else if (Array.isArray(t)) for (const x of t) out.add(String(x));
      if (n.const !== undefined || Array.isArray(n.enum)) out.add(typeof (n.const ?? (n.enum as unknown[])[0]) === 'string' ? 'const' : typeof (n.const ?? (n.enum as unknown[])[0]));
    }
    cache.set(shape, (types = out));
  }
  return types;
}

/** A schema node with `$ref` resolved, plus its oneOf/anyOf/allOf alternatives. */
function alternatives(node: Node): Node[] {
  let n = node;
  for (let i = 0; i < 10 && typeof n.$ref === 'string'; i++) {
    const { $ref, ...rest } = n;
    n = { ...defs[($ref as string).replace(/^#\/\$defs\//, '')], ...rest };
  }
  const more = ['oneOf', 'anyOf', 'allOf'].flatMap((k) => (Array.isArray(n[k]) ? (n[k] as Node[]) : []));
  return [n, ...more.flatMap((m) => alternatives(m))];
}

function child(node: Node, segment: string): Node[] {
  const props = node.properties as Record<string, Node> | undefined;
  if (props?.[segment]) return [props[segment]];
  if (/^\d+$/.test(segment) && typeof node.items === 'object' && node.items !== null) return [node.items as Node];
  if (typeof node.additionalProperties === 'object' && node.additionalProperties !== null) return [node.additionalProperties as Node];
  return [];
}
