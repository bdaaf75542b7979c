/**
 * Config loading: YAML text → parsed document → JSON Schema → cross-field
 * checks → defaults → deep-frozen {@link Config}.
 *
 * Every problem found is reported at once, each as a {@link LocatedConfigError}
 * naming the file, the line and column, the key path and what is wrong
 * (`regate.yaml:12:5: /routes/0/upstreem: unknown key "upstreem" (did you mean
 * "upstream"?)`), collected in one {@link ConfigErrors}. Modelled on fastify's
 * `initial-config-validation.js` (schema + freeze) and on compilers' diagnostics.
 *
 * YAML is read strictly: YAML 1.2 core schema only (`yes` is a string, not a
 * boolean), duplicate keys, merge keys (`<<`), non-core tags and multiple
 * documents are refused; aliases are allowed but capped (billion laughs).
 *
 * `${NAME}` in string values is replaced by the environment variable NAME
 * (OPA-style). Only values are substituted, after parsing, so a variable can
 * never change the document's structure; an unset variable is an error.
 */

import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { Ajv2020, type ErrorObject } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { isAlias, isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, type Document } from 'yaml';
import { parseRfc3339Ns } from '../clock.ts';
import { ConfigError, ConfigErrors } from '../errors.ts';
import { validateHostPattern, validateTemplate } from '../http/router.ts';
import { checkBundleSourceConfig } from '../policy/source-config.ts';
import { compileHeaderPolicy } from '../upstream/headers.ts';
import { pathTemplateParams, urlTemplateNames, urlTemplateProblem } from '../attributes/template.ts';
import { buildConfig, DEFAULTS, type RawConfig } from './defaults.ts';
import schema from './regate.schema.json' with { type: 'json' };
import type { Config, RouteConfig } from './types.ts';

/** The JSON Schema of the config file (also published for editors). */
export const configSchema: Readonly<Record<string, unknown>> = schema;

/** Options for {@link parseConfig}. */
export interface ParseOptions {
  /** Variables for `${NAME}` substitution. Default `process.env`. */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

/** Options for {@link loadConfig}. */
export interface LoadOptions extends ParseOptions {
  /**
   * Check that `policy.bundle` and every `jwks_file` exist and are files, so a
   * typo is reported with its key path instead of failing later. Default true.
   */
  readonly checkFiles?: boolean;
}

/** A {@link ConfigError} that knows where in the YAML file the problem is. */
export class LocatedConfigError extends ConfigError {
  /** 1-based line. */
  readonly line: number;
  /** 1-based column. */
  readonly column: number;
  constructor(file: string, keyPath: string, problem: string, line: number, column: number) {
    super(file, keyPath, problem);
    this.line = line;
    this.column = column;
    // The compiler-style `file:line:col:` prefix lets editors and terminals jump to it.
    this.message = `${file}:${line}:${column}: ${keyPath ? `${keyPath}: ` : ''}${problem}`;
  }
}

/**
 * Read, validate and freeze the config file at `file`.
 * Rejects only with {@link ConfigErrors} listing every problem found.
 */
export async function loadConfig(file: string, options: LoadOptions = {}): Promise<Config> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : (err as Error).message;
    throw new ConfigErrors([new ConfigError(file, '', `cannot read config file: ${reason}`, { cause: err })]);
  }
  const config = parseConfig(text, file, options);
  const missing = options.checkFiles ?? true ? await missingFiles(config) : [];
  if (missing.length > 0) {
    // Parse again only to point at the offending lines; the file is known to be valid YAML.
    const problems = new Problems(file);
    problems.lines = new LineCounter();
    problems.doc = parseDocument(text, { ...YAML_OPTIONS, lineCounter: problems.lines });
    for (const [keyPath, problem] of missing) problems.add(keyPath, problem);
    problems.throwIfAny();
  }
  return config;
}

/**
 * Validate config `text` read from `file` (used in messages and to resolve
 * relative paths) into a deep-frozen {@link Config}. Synchronous and
 * side-effect free except for reading `options.env`.
 * Throws only {@link ConfigErrors}, listing every problem found.
 */
export function parseConfig(text: string, file: string, options: ParseOptions = {}): Config {
  const problems = new Problems(file);
  const lines = new LineCounter();
  const doc = parseDocument(text, { ...YAML_OPTIONS, lineCounter: lines });
  problems.lines = lines;

  // After a syntax error the parser resynchronizes badly and the next errors are
  // mostly echoes of the first: report that one, plus every independent problem.
  const syntax = doc.errors.find((e) => !INDEPENDENT_YAML_ERRORS.has(e.code));
  for (const e of [...doc.errors, ...doc.warnings]) {
    if (e === syntax || INDEPENDENT_YAML_ERRORS.has(e.code)) problems.addAt(e.pos[0], '', yamlProblem(e.code, e.message, text, e.pos));
  }
  if (doc.directives?.yaml.explicit && doc.directives.yaml.version !== '1.2') {
    // YAML 1.1 turns `yes`/`on` into booleans and enables `<<` merges: one meaning only.
    problems.addAt(0, '', `%YAML ${doc.directives.yaml.version} is not supported: regate reads YAML 1.2 (remove the directive)`);
  }
  problems.throwIfAny();
  if (doc.contents === null) {
    problems.add('', 'the file is empty: a config needs at least upstreams, policy and routes');
    problems.throwIfAny();
  }
  problems.doc = doc;

  prepareNodes(doc, problems, options.env ?? process.env);
  problems.throwIfAny();

  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (err) {
    // Exponential alias expansion ("billion laughs") is the realistic cause.
    problems.add('', `YAML aliases expand too much (limit ${MAX_ALIAS_COUNT} expansions): ${(err as Error).message}`);
    problems.throwIfAny();
  }

  if (!validate(data)) {
    for (const p of schemaProblems(validate.errors ?? [])) problems.add(p.keyPath, p.problem, p.at);
  }
  crossCheck(data, problems);
  problems.throwIfAny();

  return deepFreeze(buildConfig(data as RawConfig, path.resolve(file)));
}

// ---------------------------------------------------------------- YAML

const YAML_OPTIONS = { prettyErrors: false, uniqueKeys: true, strict: true, merge: false, version: '1.2' } as const;

/** Max alias expansions: plenty for shared `timeouts` blocks, far from a billion laughs. */
const MAX_ALIAS_COUNT = 100;

/** Tags that only restate what YAML 1.2 core already infers. Others (`!!binary`, `!!set`, custom) are refused. */
const CORE_TAGS = new Set(['str', 'int', 'float', 'bool', 'null', 'map', 'seq'].map((t) => `tag:yaml.org,2002:${t}`));

/** YAML errors that do not derail the parser, so each is worth reporting. */
const INDEPENDENT_YAML_ERRORS = new Set(['DUPLICATE_KEY', 'TAG_RESOLVE_FAILED', 'MULTIPLE_DOCS']);

function yamlProblem(code: string, message: string, text: string, pos: [number, number]): string {
  if (code === 'DUPLICATE_KEY') {
    // The error points at the key's first character; read the key itself from the source.
    const m = /^(?:"([^"\n]*)"|'([^'\n]*)'|([^\n:,{}[\]]+?))\s*:/.exec(text.slice(pos[0]));
    const key = m ? (m[1] ?? m[2] ?? m[3]) : undefined;
    return `duplicate key${key ? ` "${key}"` : ''}: YAML keys must be unique in a mapping`;
  }
  if (code === 'MULTIPLE_DOCS') return 'the file contains several YAML documents (`---`); put the whole config in one';
  return `YAML ${code === 'TAG_RESOLVE_FAILED' ? 'tag' : 'syntax'} error: ${message}`;
}

/**
 * One pass over the YAML nodes, before they become plain data: refuse what
 * plain data would hide (complex keys, merge keys, tags, dangling aliases) and
 * substitute `${NAME}` in string values.
 */
function prepareNodes(doc: Document, problems: Problems, env: Readonly<Record<string, string | undefined>>): void {
  const walk = (node: unknown, at: string): void => {
    if (isAlias(node)) {
      if (!node.resolve(doc)) problems.addNode(node, at, `unknown YAML alias *${node.source}: the anchor &${node.source} must come before it`);
      return; // the anchored node is walked where it is defined
    }
    if (!isScalar(node) && !isMap(node) && !isSeq(node)) return;
    if (node.tag !== undefined && !CORE_TAGS.has(node.tag)) {
      problems.addNode(node, at, `YAML tag ${node.tag.replace('tag:yaml.org,2002:', '!!')} is not supported`);
      return;
    }
    if (isMap(node)) {
      for (const pair of node.items) {
        if (!isScalar(pair.key)) {
          problems.addNode(pair.key ?? node, at, 'mapping keys must be plain strings');
          continue;
        }
        const key = String(pair.key.value);
        const keyPath = `${at}/${escapePointer(key)}`;
        if (key === '<<') {
          problems.addNode(pair.key, keyPath, 'YAML merge keys (<<) are not supported: repeat the keys, or alias a whole mapping (key: *anchor)');
          continue;
        }
        walk(pair.value, keyPath);
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, i) => walk(item, `${at}/${i}`));
    } else if (typeof node.value === 'string' && node.value.includes('$')) {
      const result = interpolate(node.value, env);
      if (typeof result === 'object') problems.addNode(node, at, result.problem);
      else if (node.type === 'PLAIN' && WHOLE_VAR.test(node.value)) node.value = coerce(result);
      else node.value = result;
    }
  };
  walk(doc.contents, '');
}

const VAR = /\$\$\{|\$\{([^}]*)\}?/g;
const WHOLE_VAR = /^\$\{[A-Z_][A-Z0-9_]*\}$/;
const VAR_NAME = /^[A-Z_][A-Z0-9_]*$/;

/** `${NAME}` → env value; `$${` → literal `${`. Returns the problem instead when a name is bad or unset. */
function interpolate(value: string, env: Readonly<Record<string, string | undefined>>): string | { problem: string } {
  let problem: string | undefined;
  const out = value.replace(VAR, (match, name: string | undefined) => {
    if (match === '$${') return '${';
    if (!match.endsWith('}') || name === undefined || !VAR_NAME.test(name)) {
      problem ??= `invalid variable reference ${JSON.stringify(match)}: use \${NAME} with NAME of A-Z, 0-9, _ (write $\${ for a literal \${)`;
      return match;
    }
    const v = env[name];
    if (v === undefined) problem ??= `environment variable ${name} is not set`;
    return v ?? '';
  });
  return problem === undefined ? out : { problem };
}

/**
 * An unquoted value that is exactly `${NAME}` takes the type YAML would give
 * the text (`port: ${PORT}` is a number); quote it to keep a string. Only
 * integers and booleans: the substituted text can never become a collection.
 */
function coerce(value: string): string | number | boolean {
  if (/^-?(0|[1-9][0-9]*)$/.test(value) && Number.isSafeInteger(Number(value))) return Number(value);
  if (value === 'true' || value === 'false') return value === 'true';
  return value;
}

// ---------------------------------------------------------------- schema

const ajv = new Ajv2020({
  allErrors: true,
  verbose: true, // parentSchema and data in errors, for precise messages
  strictSchema: true,
  strictNumbers: true,
  strictTypes: true,
  strictTuples: true,
  // `oneOf: [{required: [jwks_url]}, {required: [jwks_file]}]` names properties defined outside the branch.
  strictRequired: false,
});
addFormats.default(ajv, ['uri']);
// VS Code / yaml-language-server annotations, reused for our own messages.
ajv.addKeyword({ keyword: 'patternErrorMessage', schemaType: 'string' });
ajv.addKeyword({ keyword: 'errorMessage', schemaType: 'string' });
/** Compiled once at module load; nothing validates per request. */
const validate = ajv.compile<unknown>(schema);

/**
 * Where each key of the schema may appear (`max_url_bytes` → `limits`), for
 * the commonest YAML mistake: a right key at the wrong indentation.
 */
const KEY_HOMES: ReadonlyMap<string, readonly string[]> = (() => {
  const homes = new Map<string, string[]>();
  const defs = schema.$defs as Record<string, Record<string, unknown>>;
  // The schema is not recursive, so this terminates.
  const walk = (node: Record<string, unknown>, where: string): void => {
    const ref = node.$ref;
    const s = typeof ref === 'string' ? { ...defs[ref.replace('#/$defs/', '')], ...node } : node;
    for (const [key, sub] of Object.entries((s.properties ?? {}) as Record<string, Record<string, unknown>>)) {
      homes.set(key, [...(homes.get(key) ?? []), where || 'the top level']);
      walk(sub, where ? `${where}.${key}` : key);
    }
    if (typeof s.additionalProperties === 'object') walk(s.additionalProperties as Record<string, unknown>, `${where}.<id>`);
    if (typeof s.items === 'object') walk(s.items as Record<string, unknown>, `${where}[]`);
  };
  walk(schema, '');
  return homes;
})();

interface SchemaProblem {
  keyPath: string;
  problem: string;
  at: 'key' | 'value';
}

/** Keywords about a single value: one message per value is enough. */
const VALUE_KEYWORDS = ['type', 'const', 'enum', 'pattern', 'format', 'minLength', 'maxLength', 'minimum', 'maximum'];

/** Translate ajv errors into one precise sentence each, YAML vocabulary, no schema jargon. */
function schemaProblems(errors: readonly ErrorObject[]): SchemaProblem[] {
  const oneOfs = errors.filter((e) => e.keyword === 'oneOf');
  const seen = new Set<string>();
  const out: SchemaProblem[] = [];
  for (const e of errors) {
    // Branch failures of a oneOf are explained by the oneOf message itself.
    if (oneOfs.some((o) => o !== e && o.instancePath === e.instancePath && e.schemaPath.startsWith(`${o.schemaPath}/`))) continue;
    if (e.keyword === 'propertyNames') continue; // the failing name's own error follows
    if (e.keyword === 'additionalProperties' && e.params.additionalProperty === '<<') continue; // reported from YAML
    const p = describe(e);
    const dedupe = VALUE_KEYWORDS.includes(e.keyword) ? `${p.keyPath}\0${p.at}` : `${p.keyPath}\0${p.problem}`;
    if (seen.has(dedupe)) continue;
    seen.add(dedupe);
    out.push(p);
  }
  return out;
}

function describe(e: ErrorObject): SchemaProblem {
  const parent = (e.parentSchema ?? {}) as Record<string, unknown>;
  const data: unknown = e.data;
  const here = e.instancePath;
  // propertyNames: the error is about a key, not a value.
  const propertyName = (e as ErrorObject & { propertyName?: string }).propertyName;
  if (propertyName !== undefined) {
    return { keyPath: `${here}/${escapePointer(propertyName)}`, problem: `invalid key ${JSON.stringify(propertyName)}: ${valueProblem(e, parent, undefined, here)}`, at: 'key' };
  }
  switch (e.keyword) {
    case 'additionalProperties': {
      const key = String(e.params.additionalProperty);
      const allowed = Object.keys((parent.properties ?? {}) as object);
      const guess = closest(key, allowed);
      const elsewhere = KEY_HOMES.get(key);
      const hint = guess
        ? ` (did you mean "${guess}"?)`
        : elsewhere
          ? ` (it belongs in ${elsewhere.join(' or ')}: check the indentation)`
          : allowed.length
            ? ` (allowed: ${allowed.join(', ')})`
            : '';
      return { keyPath: `${here}/${escapePointer(key)}`, problem: `unknown key "${key}"${hint}`, at: 'key' };
    }
    case 'required':
      return { keyPath: `${here}/${escapePointer(String(e.params.missingProperty))}`, problem: `missing required key "${e.params.missingProperty}"`, at: 'value' };
    case 'oneOf': {
      // A value that may take one of several shapes (`workers: 4 | auto`) says so in its own words.
      if (typeof parent.errorMessage === 'string') return { keyPath: here, problem: `${parent.errorMessage}, got ${show(data)}`, at: 'value' };
      const keys = ((parent.oneOf ?? []) as { required?: string[] }[]).flatMap((b) => b.required ?? []);
      const both = Array.isArray(e.params.passingSchemas);
      return { keyPath: here, problem: both ? `set only one of ${keys.join(', ')}, not both` : `set one of ${keys.join(', ')}`, at: 'value' };
    }
    case 'minItems':
      return { keyPath: here, problem: e.params.limit === 1 ? 'must list at least one item' : `must list at least ${e.params.limit} items`, at: 'value' };
    case 'uniqueItems': {
      const { i, j } = e.params as { i: number; j: number };
      return { keyPath: `${here}/${i}`, problem: `duplicate item ${show((data as unknown[])[i])} (also item ${j})`, at: 'value' };
    }
    case 'minProperties':
      return { keyPath: here, problem: 'must define at least one entry', at: 'value' };
    default:
      return { keyPath: here, problem: valueProblem(e, parent, data, here), at: 'value' };
  }
}

/** `data` undefined: the problem is about a key, already quoted by the caller. */
function valueProblem(e: ErrorObject, parent: Record<string, unknown>, data: unknown, keyPath: string): string {
  const got = data === undefined ? '' : `, got ${show(data)}`;
  if (typeof parent.errorMessage === 'string') return `${parent.errorMessage}${got}`;
  switch (e.keyword) {
    case 'type':
      return `must be ${TYPE_NAMES[String(e.params.type)] ?? e.params.type}${got}${typeHint(String(e.params.type), data)}`;
    case 'enum': {
      const allowed = (e.params.allowedValues as unknown[]).map(String);
      const refused = /\/algorithms\/\d+$/.test(keyPath) && typeof data === 'string' ? refusedAlgorithm(data) : undefined;
      if (refused) return refused;
      const guess = typeof data === 'string' ? closest(data, allowed) : undefined;
      return `must be one of ${allowed.join(', ')}${got}${guess ? ` (did you mean "${guess}"?)` : ''}`;
    }
    case 'const':
      return `must be ${JSON.stringify(e.params.allowedValue)}${got}`;
    case 'pattern': {
      const what = typeof parent.patternErrorMessage === 'string' ? parent.patternErrorMessage : `must match ${e.params.pattern}`;
      return `${what}${got}${entrypointHint(keyPath, data)}`;
    }
    case 'format':
      return `must be a valid ${String(e.params.format).toUpperCase()}${got}`;
    case 'minimum':
    case 'maximum': {
      const { minimum, maximum } = parent as { minimum?: number; maximum?: number };
      const range = minimum !== undefined && maximum !== undefined ? `between ${minimum} and ${maximum}` : minimum !== undefined ? `at least ${minimum}` : `at most ${maximum}`;
      return `must be ${range}${got}`;
    }
    case 'minLength':
      return e.params.limit === 1 ? 'must not be empty' : `must be at least ${e.params.limit} characters${got}`;
    case 'maxLength':
      return `must be at most ${e.params.limit} characters${got}`;
    default:
      return `${e.message ?? 'is invalid'}${got}`;
  }
}

const TYPE_NAMES: Record<string, string> = {
  object: 'a mapping',
  array: 'a list',
  string: 'a string',
  integer: 'an integer',
  number: 'a number',
  boolean: 'true or false',
};

function typeHint(expected: string, data: unknown): string {
  if (expected === 'boolean' && typeof data === 'string' && /^(y|n|yes|no|on|off)$/i.test(data)) return ' (YAML 1.2 booleans are only true and false)';
  if ((expected === 'integer' || expected === 'number') && typeof data === 'string' && /^-?\d+$/.test(data)) return ' (remove the quotes)';
  return '';
}

/** Why an algorithm people do try is refused, rather than just "not allowed". */
function refusedAlgorithm(alg: string): string | undefined {
  if (alg.toLowerCase() === 'none') return `algorithm "${alg}" is refused: it means an unsigned token, which anyone can forge`;
  if (/^HS(256|384|512)$/i.test(alg)) {
    return `algorithm "${alg}" is refused: HMAC needs a shared secret, and regate verifies tokens only with public keys from a JWKS (anyone holding the secret could mint tokens); use RS*, PS*, ES* or EdDSA`;
  }
  return undefined;
}

/** `data.regate.authz.decision` or `/regate/authz/decision/` → `regate/authz/decision`. */
function entrypointHint(keyPath: string, data: unknown): string {
  if (!/entrypoint$/.test(keyPath) || typeof data !== 'string') return '';
  const fixed = data.replace(/^\/+|\/+$/g, '').replace(/^data[./]/, '').replaceAll('.', '/');
  return fixed !== data && /^[A-Za-z_][A-Za-z0-9_]*(\/[A-Za-z_][A-Za-z0-9_]*)*$/.test(fixed) ? ` (did you mean "${fixed}"?)` : '';
}

function show(value: unknown): string {
  if (value === null || value === undefined) return 'an empty value';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  return String(value);
}

/**
 * The candidate within edit distance 2 of `input` (after folding case and
 * camelCase → snake_case, so `jwksUrl` finds `jwks_url`), if any.
 */
export function closest(input: string, candidates: readonly string[]): string | undefined {
  const fold = (s: string): string => s.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase().replaceAll('-', '_');
  let best: string | undefined;
  let bestDistance = 3;
  for (const c of candidates) {
    const d = Math.min(levenshtein(input, c), levenshtein(fold(input), fold(c)));
    // A 2-letter key is 2 edits from every other 2-letter key: require a real resemblance.
    if (d < bestDistance && d < Math.max(input.length, c.length) / 2) {
      best = c;
      bestDistance = d;
    }
  }
  return best;
}

function levenshtein(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length]!;
}

// ---------------------------------------------------------------- cross-field checks

/** Identity headers regate must not let a config overwrite, and why. */
const RESERVED_HEADERS: Readonly<Record<string, string>> = {
  ...Object.fromEntries(
    ['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-authenticate', 'proxy-authorization', 'http2-settings'].map(
      (h) => [h, 'is a hop-by-hop header (RFC 9110 §7.6.1): it describes one connection and is never forwarded'],
    ),
  ),
  host: 'is set from the upstream URL',
  authorization: 'carries the client credentials: use forward_authorization: true to forward them',
  'content-length': 'frames the request body',
  expect: 'is handled by regate itself (100-continue)',
  'x-real-ip': 'is set by regate itself',
  forwarded: 'is set by regate itself',
  'x-forwarded-for': 'is set by regate itself',
  'x-forwarded-host': 'is set by regate itself',
  'x-forwarded-proto': 'is set by regate itself',
  'x-request-id': 'is set by regate itself (to the decision id)',
};

/** Decision-log labels regate always sets. */
const RESERVED_LABELS = ['id', 'version'];

const matchSchema = schema.$defs.route.properties.match.properties;
const HOST_PATTERN = new RegExp(matchSchema.host.pattern);
const PATH_PATTERN = new RegExp(matchSchema.path.pattern);
const RESOURCE_URL_PATTERN = new RegExp(schema.$defs.route.properties.resource.properties.url.pattern);
const HEADER_NAME = new RegExp(schema.$defs.route.properties.identity_headers.propertyNames.pattern);
const SOURCE_PATTERN = new RegExp(schema.$defs.route.properties.identity_headers.additionalProperties.pattern);

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const asObj = (v: unknown): Obj => (isObj(v) ? v : {});
const asList = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/**
 * Rules JSON Schema cannot express. They run even when the schema failed, so
 * that one run reports everything; each guards the types it reads.
 */
function crossCheck(data: unknown, problems: Problems): void {
  const root = asObj(data);
  const add = (keyPath: string, problem: string, at: 'key' | 'value' = 'value'): void => problems.add(keyPath, problem, at);

  const listen = asObj(root.listen);
  const proxyPort = asObj(listen.proxy).port ?? DEFAULTS.listen.proxy.port;
  const adminPort = asObj(listen.admin).port ?? DEFAULTS.listen.admin.port;
  if (proxyPort === adminPort && proxyPort !== 0) {
    add(`/listen/${asObj(listen.admin).port === undefined ? 'proxy' : 'admin'}/port`, `listen.proxy and listen.admin both use port ${proxyPort}: give them different ports (0 picks a free one)`);
  }

  const upstreams = isObj(root.upstreams) ? root.upstreams : undefined;
  for (const [id, u] of Object.entries(upstreams ?? {})) checkUrl(str(asObj(u).url), `/upstreams/${escapePointer(id)}/url`, add);

  const issuers = asList(root.issuers);
  const issuerIds = new Map<string, number>();
  const issuerValues = new Map<string, number>();
  issuers.forEach((raw, i) => {
    const issuer = asObj(raw);
    const id = str(issuer.id) ?? String(i);
    firstSeen(issuerIds, id, i, () => add(`/issuers/${i}/id`, `duplicate issuer id "${id}" (also /issuers/${issuerIds.get(id)})`));
    const iss = str(issuer.issuer);
    if (iss !== undefined) {
      firstSeen(issuerValues, iss, i, () =>
        add(`/issuers/${i}/issuer`, `issuer "${iss}" is already configured at /issuers/${issuerValues.get(iss)}: tokens are matched to an issuer by iss, so each must be unique (list several audiences instead)`),
      );
    }
    checkUrl(str(issuer.jwks_url), `/issuers/${i}/jwks_url`, add);
  });

  const policy = asObj(root.policy);
  const tz = str(policy.timezone);
  if (tz !== undefined && tz !== '') {
    const problem = timeZoneProblem(tz);
    if (problem) add('/policy/timezone', problem);
  }
  checkBundleSourceConfig(policy, add);

  const fixed = str(asObj(root.clock).fixed);
  if (fixed !== undefined) {
    try {
      parseRfc3339Ns(fixed);
    } catch {
      add('/clock/fixed', `not a valid instant: ${JSON.stringify(fixed)}`);
    }
  }

  for (const label of Object.keys(asObj(asObj(root.decision_log).labels))) {
    if (RESERVED_LABELS.includes(label)) add(`/decision_log/labels/${escapePointer(label)}`, `label "${label}" is reserved: regate always sets ${RESERVED_LABELS.join(' and ')}`, 'key');
  }

  checkRoutes(asList(root.routes), upstreams, issuers.length, add);
  checkShadows(asList(root.routes), policy, add);
  checkRouteInputs(asList(root.routes), add);
}

/** Catalog request headers regate (undici) sets itself or that frame the exchange. */
const CATALOG_RESERVED_HEADERS = new Set(['host', 'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade', 'te', 'trailer', 'expect', 'accept']);

/**
 * `routes[].timezone`, `routes[].resource`: a real IANA zone; a catalog URL
 * whose parameters are this route's path parameters (and only in the path or
 * query); no catalog on `auth: none` routes, where anonymous traffic would
 * drive catalog requests; no `forward_authorization` without verification.
 */
function checkRouteInputs(routes: unknown[], add: (keyPath: string, problem: string, at?: 'key' | 'value') => void): void {
  routes.forEach((raw, i) => {
    const route = asObj(raw);
    const at = `/routes/${i}`;
    const tz = str(route.timezone);
    if (tz !== undefined && tz !== '') {
      const problem = timeZoneProblem(tz);
      if (problem) add(`${at}/timezone`, problem);
    }
    if (route.forward_authorization === true && (route.auth ?? DEFAULTS.route.auth) === 'none') {
      // The token would reach the upstream unverified: regate would vouch for a credential it never checked.
      add(`${at}/forward_authorization`, 'forwards the client\'s Authorization header, but this route has auth: none, so the token would reach the upstream unverified: use auth: required or optional');
    }
    if (!isObj(route.resource)) return;
    const resource = route.resource;
    const url = str(resource.url);
    const template = str(asObj(route.match).path);
    if (url !== undefined && RESOURCE_URL_PATTERN.test(url)) {
      const params = template !== undefined && PATH_PATTERN.test(template) && validateTemplate(template) === null ? pathTemplateParams(template) : undefined;
      // Without a valid match.path (reported there) only the parameter names cannot be checked.
      const problem = urlTemplateProblem(url, params ?? urlTemplateNames(url));
      if (problem !== null) add(`${at}/resource/url`, problem);
    }
    if ((route.auth ?? DEFAULTS.route.auth) === 'none') {
      add(`${at}/resource`, 'needs an authenticated caller, but this route has auth: none (anonymous traffic must not drive catalog requests): use auth: required or optional');
    }
    for (const name of Object.keys(asObj(resource.headers))) {
      if (CATALOG_RESERVED_HEADERS.has(name.toLowerCase())) add(`${at}/resource/headers/${escapePointer(name)}`, `header ${name} is set by regate for the catalog request`, 'key');
    }
  });
}

/**
 * `routes[].shadow`: a candidate bundle must be configured to be named, and a
 * shadow of the enforced entrypoint itself (same bundle) could never disagree.
 */
function checkShadows(routes: unknown[], policy: Obj, add: (keyPath: string, problem: string) => void): void {
  routes.forEach((raw, i) => {
    const route = asObj(raw);
    if (!isObj(route.shadow)) return;
    const shadow = route.shadow;
    const bundle = shadow.bundle ?? DEFAULTS.route.shadow_bundle;
    if (bundle === 'candidate' && policy.candidate === undefined) {
      add(`/routes/${i}/shadow/bundle`, 'names the candidate bundle, but policy.candidate is not configured (add policy.candidate.bundle, or use bundle: active)');
    }
    const enforced = str(route.entrypoint) ?? str(policy.default_entrypoint);
    if (bundle === 'active' && enforced !== undefined && shadow.entrypoint === enforced) {
      add(`/routes/${i}/shadow/entrypoint`, `is the entrypoint this route enforces (${enforced}): a shadow of itself always agrees; name the candidate entrypoint, or use bundle: candidate`);
    }
  });
}

function checkRoutes(routes: unknown[], upstreams: Obj | undefined, issuerCount: number, add: (keyPath: string, problem: string, at?: 'key' | 'value') => void): void {
  const ids = new Map<string, number>();
  const matches = new Map<string, { index: number; methods: unknown[] }[]>();
  const authenticated: string[] = [];
  routes.forEach((raw, i) => {
    const route = asObj(raw);
    const at = `/routes/${i}`;
    const id = str(route.id);
    if (id !== undefined) firstSeen(ids, id, i, () => add(`${at}/id`, `duplicate route id "${id}" (also /routes/${ids.get(id)})`));

    const upstream = str(route.upstream);
    if (upstream !== undefined && upstreams !== undefined && !Object.hasOwn(upstreams, upstream)) {
      const known = Object.keys(upstreams);
      const guess = closest(upstream, known);
      add(`${at}/upstream`, `unknown upstream "${upstream}"${guess ? ` (did you mean "${guess}"?)` : known.length ? ` (defined: ${known.join(', ')})` : ''}`);
    }

    const match = asObj(route.match);
    const host = str(match.host);
    // Only values the schema's pattern accepted: the rest already has a message.
    if (host !== undefined && HOST_PATTERN.test(host)) {
      const problem = validateHostPattern(host);
      if (problem !== null) add(`${at}/match/host`, `invalid host ${JSON.stringify(host)}: ${problem}`);
    }
    const template = str(match.path);
    if (template !== undefined && PATH_PATTERN.test(template)) {
      const problem = validateTemplate(template);
      if (problem !== null) add(`${at}/match/path`, `invalid path template ${JSON.stringify(template)}: ${problem}`);
      // Same template, same host, a shared method: the second route could never match.
      const key = `${host?.toLowerCase() ?? ''} ${template}`;
      const methods = asList(match.methods);
      for (const other of matches.get(key) ?? []) {
        const shared = methods.find((m) => other.methods.includes(m));
        if (shared !== undefined) add(`${at}/match`, `matches the same requests as /routes/${other.index} (same path, host and method ${String(shared)})`);
      }
      matches.set(key, [...(matches.get(key) ?? []), { index: i, methods }]);
    }

    const auth = route.auth ?? DEFAULTS.route.auth;
    if ((auth === 'required' || auth === 'optional') && id !== undefined) authenticated.push(id);
    const seenHeaders = new Map<string, string>();
    for (const [name, source] of Object.entries(asObj(route.identity_headers))) {
      const headerPath = `${at}/identity_headers/${escapePointer(name)}`;
      const problem = identityHeaderProblem(name);
      if (problem !== undefined) add(headerPath, `header ${name} ${problem}`, 'key');
      // `x_user` and `X-User` reach many upstreams as the same field (CGI, nginx, ...).
      const folded = name.toLowerCase().replaceAll('_', '-');
      const dup = seenHeaders.get(folded);
      if (dup !== undefined) add(headerPath, `header ${name} is also set as ${dup} (names are case-insensitive and '_' is read as '-')`, 'key');
      else seenHeaders.set(folded, name);
      if (auth === 'none' && typeof source === 'string' && SOURCE_PATTERN.test(source) && /^(subject|token)\./.test(source)) {
        add(headerPath, `source ${source} needs a verified token, but this route has auth: none (use auth: optional or required, or route.id / decision.id)`);
      }
    }
  });
  if (issuerCount === 0 && authenticated.length > 0) {
    add('/issuers', `no issuers are configured, but routes ${authenticated.map((id) => `"${id}"`).join(', ')} verify tokens (auth: required or optional)`);
  }
}

/**
 * Why `name` cannot be an identity header, if it cannot. The upstream header
 * stage is the authority (it refuses such names at startup with a TypeError);
 * the table above only words the common cases better.
 */
function identityHeaderProblem(name: string): string | undefined {
  if (!HEADER_NAME.test(name)) return undefined; // the schema reports it
  const folded = name.toLowerCase().replaceAll('_', '-');
  const reason = RESERVED_HEADERS[folded] ?? (folded.startsWith('x-forwarded-') ? 'is set by regate itself' : undefined);
  if (reason !== undefined) return reason;
  try {
    compileHeaderPolicy({ id: 'check', identity_headers: { [name]: 'route.id' } } as unknown as RouteConfig);
    return undefined;
  } catch {
    return 'names a field regate controls (framing, forwarding, or a single-valued client field the policy saw)';
  }
}

function checkUrl(url: string | undefined, keyPath: string, add: (keyPath: string, problem: string) => void): void {
  if (url === undefined || !/^https?:\/\//.test(url)) return; // the schema reports the rest
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    add(keyPath, `not a valid URL: ${JSON.stringify(url)}`);
    return;
  }
  // Credentials in a URL end up in logs and error messages.
  if (parsed.username || parsed.password) add(keyPath, 'must not contain credentials (user:password@)');
}

function timeZoneProblem(zone: string): string | undefined {
  // Intl accepts fixed offsets such as +01:00, but they ignore daylight saving time.
  if (/^[+-]\d/.test(zone)) return `${JSON.stringify(zone)} is a fixed offset, not an IANA time zone: use a zone name such as Europe/Paris`;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return undefined;
  } catch {
    return `unknown time zone ${JSON.stringify(zone)}: use an IANA name such as UTC, Europe/Paris or America/New_York`;
  }
}

function firstSeen(seen: Map<string, number>, key: string, index: number, onDuplicate: () => void): void {
  if (seen.has(key)) onDuplicate();
  else seen.set(key, index);
}

// ---------------------------------------------------------------- files

/** `[keyPath, problem]` for each referenced file that is missing or not a regular file. */
async function missingFiles(config: Config): Promise<[string, string][]> {
  const wanted: [string, string][] = [];
  if (config.policy.bundle !== undefined) wanted.push(['/policy/bundle', config.policy.bundle]);
  if (config.policy.signing !== undefined) wanted.push(['/policy/signing/public_key_file', config.policy.signing.public_key_file]);
  if (config.policy.candidate !== undefined) wanted.push(['/policy/candidate/bundle', config.policy.candidate.bundle]);
  config.issuers.forEach((issuer, i) => {
    if (issuer.jwks_file !== undefined) wanted.push([`/issuers/${i}/jwks_file`, issuer.jwks_file]);
  });
  const problems: [string, string][] = [];
  for (const [keyPath, p] of wanted) {
    try {
      if (!(await stat(p)).isFile()) problems.push([keyPath, `not a file: ${p}`]);
    } catch (err) {
      problems.push([keyPath, `cannot read ${p}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : (err as Error).message}`]);
    }
  }
  return problems;
}

// ---------------------------------------------------------------- reporting

function escapePointer(segment: string): string {
  return segment.replaceAll('~', '~0').replaceAll('/', '~1');
}

function pointerSegments(keyPath: string): string[] {
  return keyPath === '' ? [] : keyPath.slice(1).split('/').map((s) => s.replaceAll('~1', '/').replaceAll('~0', '~'));
}

interface Problem {
  keyPath: string;
  problem: string;
  /** Source offset, when known. */
  offset: number | undefined;
  order: number;
}

/** Collects problems with their source position; throws them all, in file order. */
class Problems {
  readonly file: string;
  lines: LineCounter | undefined;
  doc: Document | undefined;
  readonly list: Problem[] = [];
  constructor(file: string) {
    this.file = file;
  }

  /** A problem at a key path; located in the YAML document when it exists there. */
  add(keyPath: string, problem: string, at: 'key' | 'value' = 'value'): void {
    this.list.push({ keyPath, problem, offset: this.doc ? locate(this.doc, keyPath, at) : undefined, order: this.list.length });
  }

  addAt(offset: number, keyPath: string, problem: string): void {
    this.list.push({ keyPath, problem, offset, order: this.list.length });
  }

  addNode(node: { range?: [number, number, number] | null } | null, keyPath: string, problem: string): void {
    this.list.push({ keyPath, problem, offset: node?.range?.[0], order: this.list.length });
  }

  throwIfAny(): void {
    if (this.list.length === 0) return;
    const seen = new Set<string>();
    const errors = this.list
      .sort((a, b) => (a.offset ?? Infinity) - (b.offset ?? Infinity) || a.order - b.order)
      .filter((p) => !seen.has(`${p.keyPath}\0${p.problem}`) && seen.add(`${p.keyPath}\0${p.problem}`))
      .map((p) => {
        const pos = p.offset !== undefined ? this.lines?.linePos(p.offset) : undefined;
        return pos ? new LocatedConfigError(this.file, p.keyPath, p.problem, pos.line, pos.col) : new ConfigError(this.file, p.keyPath, p.problem);
      });
    throw new ConfigErrors(errors);
  }
}

/**
 * Source offset of the node at `keyPath` (its key when `at` is 'key'). A path
 * that does not exist in the file (a missing key) resolves to its deepest
 * existing ancestor, which is where the key has to be added.
 */
function locate(doc: Document, keyPath: string, at: 'key' | 'value'): number | undefined {
  let node: unknown = doc.contents;
  let offset = rangeStart(node);
  const segments = pointerSegments(keyPath);
  for (const [i, segment] of segments.entries()) {
    if (isAlias(node)) node = node.resolve(doc);
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === segment);
      if (!pair) break;
      const keyStart = rangeStart(pair.key);
      if (at === 'key' && i === segments.length - 1) return keyStart ?? offset;
      node = pair.value;
      // `key:` with nothing after it: point at the key, not at the empty value.
      const empty = isScalar(node) && node.value === null && node.range?.[0] === node.range?.[1];
      offset = (empty ? keyStart : rangeStart(node)) ?? keyStart ?? offset;
    } else if (isSeq(node) && /^\d+$/.test(segment) && Number(segment) < node.items.length) {
      node = node.items[Number(segment)];
      offset = rangeStart(node) ?? offset;
    } else {
      break;
    }
  }
  return offset;
}

function rangeStart(node: unknown): number | undefined {
  const range = (node as { range?: [number, number, number] | null } | null)?.range;
  return range ? range[0] : undefined;
}

/** Freeze `value` and everything reachable from it. */
function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
