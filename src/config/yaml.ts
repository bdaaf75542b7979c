/**
 * YAML reading for the config loader.
 *
 * YAML is read strictly: YAML 1.2 core schema only (`yes` is a string, not a
 * boolean), duplicate keys, merge keys (`<<`), non-core tags and multiple
 * documents are refused; aliases are allowed but capped (billion laughs).
 *
 * `${NAME}` in string values is replaced by the environment variable NAME
 * (OPA-style). Only values are substituted, after parsing, so a variable can
 * never change the document's structure; an unset variable is an error.
 */

import { isAlias, isMap, isScalar, isSeq, type Document } from 'yaml';
import { escapePointer, type Problems } from './problems.ts';

/** Strict YAML 1.2: unique keys, no merge keys. */
export const YAML_OPTIONS = { prettyErrors: false, uniqueKeys: true, strict: true, merge: false, version: '1.2' } as const;

/** Max alias expansions: plenty for shared `timeouts` blocks, far from a billion laughs. */
export const MAX_ALIAS_COUNT = 100;

/** Tags that only restate what YAML 1.2 core already infers. Others (`!!binary`, `!!set`, custom) are refused. */
const CORE_TAGS = new Set(['str', 'int', 'float', 'bool', 'null', 'map', 'seq'].map((t) => `tag:yaml.org,2002:${t}`));

/** YAML errors that do not derail the parser, so each is worth reporting. */
export const INDEPENDENT_YAML_ERRORS = new Set(['DUPLICATE_KEY', 'TAG_RESOLVE_FAILED', 'MULTIPLE_DOCS']);

/** One sentence for a YAML parser error or warning. */
export function yamlProblem(code: string, message: string, text: string, pos: [number, number]): string {
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
export function prepareNodes(doc: Document, problems: Problems, env: Readonly<Record<string, string | undefined>>): void {
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
