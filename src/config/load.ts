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
 * `${NAME}` in values is replaced by the environment variable NAME
 * (OPA-style), after parsing, so a variable can never change the document's
 * structure; a value that is exactly `${NAME}` takes the type its key wants
 * (`port: ${PORT}` is an integer); an unset variable is an error (env-vars.ts).
 */

import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import { crossCheck } from './checks.ts';
import { hideVariableBraces } from './env-vars.ts';
import { buildConfig, type RawConfig } from './defaults.ts';
import { readUpstreamTls } from '../tls/client-context.ts';
import { credentialFileProblem } from '../upstream/credentials.ts';
import { readListenerTls, secureContextOptions, TlsMaterialError } from '../tls/server-context.ts';
import { escapePointer, Problems } from './problems.ts';
import schema from './regate.schema.json' with { type: 'json' };
import { schemaProblems, validate } from './schema-errors.ts';
import type { Config } from './types.ts';
import { INDEPENDENT_YAML_ERRORS, MAX_ALIAS_COUNT, prepareNodes, YAML_OPTIONS, yamlProblem } from './yaml.ts';

export { closest } from './closest.ts';
export { LocatedConfigError, type Problems } from './problems.ts';

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

/**
 * Read, validate and freeze the config file at `file`.
 * Rejects only with {@link ConfigErrors} listing every problem found.
 */
export async function loadConfig(file: string, options: LoadOptions = {}): Promise<Config> {
  const { config, problems } = await inspectConfig(file, options);
  problems.throwIfAny();
  return config!;
}

/** What {@link inspectConfig} found. */
export interface ConfigInspection {
  /** The validated, frozen config; undefined when there is any problem. */
  readonly config: Config | undefined;
  /** The document as plain data (variables substituted), when the YAML could be read at all. */
  readonly data: unknown;
  /**
   * Every problem found so far. A caller that checks more (`regate check`: the
   * bundle, entrypoints, key files) adds its findings here, by key path, so
   * they are located in the same YAML and reported in the same run.
   */
  readonly problems: Problems;
}

/**
 * Read and validate `file` without throwing: the schema, the cross-field
 * checks and (unless `checkFiles: false`) the referenced files are all
 * checked, each independently of the others' outcome, so one run names every
 * problem. Only YAML that cannot be read stops it early.
 */
export async function inspectConfig(file: string, options: LoadOptions = {}): Promise<ConfigInspection> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : (err as Error).message;
    const problems = new Problems(file);
    problems.add('', `cannot read config file: ${reason}`);
    return { config: undefined, data: undefined, problems };
  }
  const { problems, data } = analyze(text, file, options);
  if (data === undefined) return { config: undefined, data, problems };
  if (options.checkFiles ?? true) {
    for (const [keyPath, problem] of await missingFiles(data, path.dirname(path.resolve(file)))) problems.add(keyPath, problem);
  }
  return { config: problems.any ? undefined : deepFreeze(buildConfig(data as RawConfig, path.resolve(file))), data, problems };
}

/**
 * Validate config `text` read from `file` (used in messages and to resolve
 * relative paths) into a deep-frozen {@link Config}. Synchronous and
 * side-effect free except for reading `options.env`.
 * Throws only {@link ConfigErrors}, listing every problem found.
 */
export function parseConfig(text: string, file: string, options: ParseOptions = {}): Config {
  const { problems, data } = analyze(text, file, options);
  problems.throwIfAny();
  return deepFreeze(buildConfig(data as RawConfig, path.resolve(file)));
}

/**
 * YAML → data → schema and cross-field problems. `data` is undefined when the
 * YAML could not be turned into data (syntax, tags, unset variables...): those
 * problems are all there is to report.
 */
function analyze(text: string, file: string, options: ParseOptions): { problems: Problems; data: unknown } {
  const problems = new Problems(file);
  const lines = new LineCounter();
  const doc = parseDocument(hideVariableBraces(text), { ...YAML_OPTIONS, lineCounter: lines });
  problems.lines = lines;
  const stop = { problems, data: undefined };

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
  if (problems.any) return stop;
  if (doc.contents === null) {
    problems.add('', 'the file is empty: a config needs at least upstreams, policy and routes');
    return stop;
  }
  problems.doc = doc;

  prepareNodes(doc, problems, options.env ?? process.env);
  if (problems.any) return stop;

  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (err) {
    // Exponential alias expansion ("billion laughs") is the realistic cause.
    problems.add('', `YAML aliases expand too much (limit ${MAX_ALIAS_COUNT} expansions): ${(err as Error).message}`);
    return stop;
  }

  if (!validate(data)) {
    for (const p of schemaProblems(validate.errors ?? [])) problems.add(p.keyPath, p.problem, p.at);
  }
  crossCheck(data, problems);
  return { problems, data };
}

// ---------------------------------------------------------------- files

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * `[keyPath, problem]` for each referenced file that is missing or not a
 * regular file. Reads the raw data (each value guarded: the schema may have
 * refused its neighbours), so a missing file is reported with the schema's
 * problems, not after they are fixed.
 */
async function missingFiles(data: unknown, dir: string): Promise<[string, string][]> {
  const root = isObj(data) ? data : {};
  const policy = isObj(root.policy) ? root.policy : {};
  const wanted: [string, unknown][] = [
    ['/policy/bundle', policy.bundle],
    ['/policy/signing/public_key_file', isObj(policy.signing) ? policy.signing.public_key_file : undefined],
    ['/policy/candidate/bundle', isObj(policy.candidate) ? policy.candidate.bundle : undefined],
  ];
  if (Array.isArray(root.issuers)) root.issuers.forEach((issuer, i) => wanted.push([`/issuers/${i}/jwks_file`, isObj(issuer) ? issuer.jwks_file : undefined]));
  for (const [keyPath, tls] of tlsSections(root)) {
    for (const key of ['cert_file', 'key_file', 'ca_file']) wanted.push([`${keyPath}/${key}`, tls[key]]);
  }
  const credentials: [string, unknown][] = [];
  if (isObj(root.upstreams)) {
    for (const [id, u] of Object.entries(root.upstreams)) {
      if (!isObj(u) || !isObj(u.credentials)) continue;
      for (const [name, c] of Object.entries(u.credentials)) credentials.push([`/upstreams/${escapePointer(id)}/credentials/${escapePointer(name)}/value_file`, isObj(c) ? c.value_file : undefined]);
    }
  }
  wanted.push(...credentials);
  const problems: [string, string][] = [];
  for (const [keyPath, value] of wanted) {
    // A URL is the schema's to refuse (policy.bundle must be a path); only plain paths are looked up.
    if (typeof value !== 'string' || value === '' || /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(value)) continue;
    const p = path.resolve(dir, value);
    try {
      if (!(await stat(p)).isFile()) problems.push([keyPath, `not a file: ${p}`]);
    } catch (err) {
      problems.push([keyPath, `cannot read ${p}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : (err as Error).message}`]);
    }
  }
  // Credential files that exist but hold no valid header value (the content is never quoted).
  for (const [keyPath, value] of credentials) {
    if (typeof value !== 'string' || value === '' || problems.some(([p]) => p === keyPath)) continue;
    const p = path.resolve(dir, value);
    const bytes = await readFile(p).catch((err: Error) => err);
    const problem = bytes instanceof Error ? `cannot read: ${bytes.message}` : credentialFileProblem(bytes);
    if (problem !== undefined) problems.push([keyPath, `${p}: ${problem}`]);
  }
  // Files that exist but cannot serve TLS together (not PEM, key not matching the certificate).
  for (const [keyPath, tls] of tlsSections(root)) {
    if (problems.some(([p]) => p.startsWith(`${keyPath}/`))) continue;
    const problem = tlsMaterialProblem(keyPath, tls, dir);
    if (problem !== undefined) problems.push(problem);
  }
  return problems;
}

/** `[keyPath, section]` of every `tls` section that names files: listeners and upstreams. */
function tlsSections(root: Obj): [string, Obj][] {
  const out: [string, Obj][] = [];
  const listen = isObj(root.listen) ? root.listen : {};
  for (const name of ['proxy', 'authz']) {
    const l = listen[name];
    if (isObj(l) && isObj(l.tls)) out.push([`/listen/${name}/tls`, l.tls]);
  }
  if (isObj(root.upstreams)) {
    for (const [id, u] of Object.entries(root.upstreams)) if (isObj(u) && isObj(u.tls)) out.push([`/upstreams/${escapePointer(id)}/tls`, u.tls]);
  }
  return out;
}

/** Whether a `tls` section's files build a secure context; the file at fault when not. */
function tlsMaterialProblem(keyPath: string, tls: Obj, dir: string): [string, string] | undefined {
  const file = (key: string): string | undefined => (typeof tls[key] === 'string' && tls[key] !== '' ? path.resolve(dir, tls[key] as string) : undefined);
  const version = tls.min_version === 'TLSv1.3' ? 'TLSv1.3' : 'TLSv1.2';
  try {
    if (keyPath.startsWith('/listen/')) {
      const cert = file('cert_file');
      const key = file('key_file');
      if (cert === undefined || key === undefined) return undefined; // the schema reports it
      const ca = file('ca_file');
      const config = { cert_file: cert, key_file: key, ...(ca !== undefined ? { ca_file: ca } : {}), client_auth: 'none' as const, min_version: version as 'TLSv1.2' };
      secureContextOptions(config, readListenerTls(config));
    } else {
      const config = {
        ...(file('ca_file') !== undefined ? { ca_file: file('ca_file')! } : {}),
        ...(file('cert_file') !== undefined ? { cert_file: file('cert_file')! } : {}),
        ...(file('key_file') !== undefined ? { key_file: file('key_file')! } : {}),
        min_version: version as 'TLSv1.2',
      };
      readUpstreamTls(config);
    }
  } catch (err) {
    if (err instanceof TlsMaterialError) return [`${keyPath}${err.key === '' ? '' : `/${err.key}`}`, err.message];
    throw err;
  }
  return undefined;
}

/** Freeze `value` and everything reachable from it. */
function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
