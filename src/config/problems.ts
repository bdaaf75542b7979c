/**
 * Reporting for the config loader: problems are collected with their source
 * position (a JSON Pointer key path located in the YAML document) and thrown
 * all at once, in file order, as one {@link ConfigErrors}.
 */

import { isAlias, isMap, isPair, isScalar, isSeq, type Document, type LineCounter } from 'yaml';
import { ConfigError, ConfigErrors } from '../errors.ts';

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

/** `segment` escaped for a JSON Pointer (RFC 6901: `~` → `~0`, `/` → `~1`). */
export function escapePointer(segment: string): string {
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
export class Problems {
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

  /** Whether any problem was added. */
  get any(): boolean {
    return this.list.length > 0;
  }

  /** Every problem as an error, in file order, duplicates removed. */
  errors(): ConfigError[] {
    const seen = new Set<string>();
    return [...this.list]
      .sort((a, b) => (a.offset ?? Infinity) - (b.offset ?? Infinity) || a.order - b.order)
      .filter((p) => !seen.has(`${p.keyPath}\0${p.problem}`) && seen.add(`${p.keyPath}\0${p.problem}`))
      .map((p) => {
        const pos = p.offset !== undefined ? this.lines?.linePos(p.offset) : undefined;
        return pos ? new LocatedConfigError(this.file, p.keyPath, p.problem, pos.line, pos.col) : new ConfigError(this.file, p.keyPath, p.problem);
      });
  }

  throwIfAny(): void {
    if (this.list.length > 0) throw new ConfigErrors(this.errors());
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
