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
import { ConfigError, ConfigErrors } from '../errors.ts';
import { crossCheck } from './checks.ts';
import { hideVariableBraces } from './env-vars.ts';
import { buildConfig, type RawConfig } from './defaults.ts';
import { Problems } from './problems.ts';
import schema from './regate.schema.json' with { type: 'json' };
import { schemaProblems, validate } from './schema-errors.ts';
import type { Config } from './types.ts';
import { INDEPENDENT_YAML_ERRORS, MAX_ALIAS_COUNT, prepareNodes, YAML_OPTIONS, yamlProblem } from './yaml.ts';

export { closest } from './closest.ts';
export { LocatedConfigError } from './problems.ts';

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
    problems.doc = parseDocument(hideVariableBraces(text), { ...YAML_OPTIONS, lineCounter: problems.lines });
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
  const doc = parseDocument(hideVariableBraces(text), { ...YAML_OPTIONS, lineCounter: lines });
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

/** Freeze `value` and everything reachable from it. */
function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
