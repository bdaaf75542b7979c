/**
 * JSON Schema validation of the config document, and the translation of ajv
 * errors into precise, located messages (unknown keys get a did-you-mean or
 * the place they belong).
 */

import { Ajv2020, type ErrorObject } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { closest } from './closest.ts';
import { escapePointer } from './problems.ts';
import schema from './regate.schema.json' with { type: 'json' };

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
export const validate = ajv.compile<unknown>(schema);

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

/** One schema problem, located at its key or at its value. */
export interface SchemaProblem {
  keyPath: string;
  problem: string;
  at: 'key' | 'value';
}

/** Keywords about a single value: one message per value is enough. */
const VALUE_KEYWORDS = ['type', 'const', 'enum', 'pattern', 'format', 'minLength', 'maxLength', 'minimum', 'maximum'];

/** Translate ajv errors into one precise sentence each, YAML vocabulary, no schema jargon. */
export function schemaProblems(errors: readonly ErrorObject[]): SchemaProblem[] {
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
      const branches = (parent.oneOf ?? []) as { required?: string[] }[];
      const keys = branches.flatMap((b) => b.required ?? []);
      const passing = e.params.passingSchemas as unknown;
      // Name only the branches that matched together (`jwks_url` and `jwks_file`, not every key source).
      const both = Array.isArray(passing) ? passing.flatMap((i) => branches[i as number]?.required ?? []) : undefined;
      return { keyPath: here, problem: both ? `set only one of ${both.join(', ')}, not both` : `set one of ${keys.join(', ')}`, at: 'value' };
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
