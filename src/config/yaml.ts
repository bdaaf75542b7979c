/**
 * YAML reading for the config loader.
 *
 * YAML is read strictly: YAML 1.2 core schema only (`yes` is a string, not a
 * boolean), duplicate keys, merge keys (`<<`), non-core tags and multiple
 * documents are refused; aliases are allowed but capped (billion laughs).
 *
 * `${NAME}` in values is replaced by the environment variable NAME
 * (OPA-style), typed by the schema: see env-vars.ts.
 */

import { isAlias, isMap, isScalar, isSeq, type Document } from 'yaml';
import { interpolate, restoreBraces, typedVariable } from './env-vars.ts';
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
        if (typeof pair.key.value === 'string') pair.key.value = restoreBraces(pair.key.value);
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
    } else if (typeof node.value === 'string') {
      const text = restoreBraces(node.value);
      node.value = text;
      if (!text.includes('$')) return;
      const result = interpolate(text, env);
      const typed = typeof result === 'object' ? result : typedVariable(text, result, at);
      if (typeof typed === 'object') problems.addNode(node, at, typed.problem);
      else node.value = typed;
    }
  };
  walk(doc.contents, '');
}
