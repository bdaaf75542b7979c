/**
 * OPA bundle reader: the `.tar.gz` written by `opa build -t wasm -e <entrypoint>`.
 *
 * A bundle holds `/policy.wasm`, `/data.json` (possibly more `data.json`
 * files in subdirectories), `/.manifest` and the `.rego` sources. regate only
 * needs the module, the data and the manifest, and reads them with gunzip
 * plus a small tar reader (ustar, GNU long names, PAX headers) rather than a
 * dependency: the format subset is small and the reader must refuse anything
 * odd rather than guess.
 *
 * The bundle is never extracted to disk, but entry names still decide where
 * data lands in `data`, so names with `..`, backslashes, drive letters or
 * empty segments are refused. A single leading `/` is OPA's bundle-root
 * convention (`opa build` writes `/policy.wasm`) and is accepted.
 *
 * Signatures (`.signatures.json`) are verified by src/policy/signatures.ts,
 * through {@link decodeBundle}'s `verify` hook, over the raw entries and before
 * anything in them is interpreted.
 */

import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { gunzip, gunzipSync } from 'node:zlib';
import { ConfigError } from '../errors.ts';
import { parseJsonPrecise } from './precise-json.ts';

const MiB = 1024 * 1024;

/** Size limits applied while reading a bundle. */
export interface BundleLimits {
  /** Uncompressed tar stream size. Default 256 MiB. */
  readonly maxTotalBytes: number;
  /** One entry's size. Default 64 MiB. */
  readonly maxEntryBytes: number;
}

export const DEFAULT_BUNDLE_LIMITS: BundleLimits = Object.freeze({ maxTotalBytes: 256 * MiB, maxEntryBytes: 64 * MiB });

/** One `wasm` entry of `.manifest`: which module implements which entrypoint. */
export interface WasmEntry {
  readonly entrypoint: string;
  readonly module: string;
}

export interface BundleManifest {
  /** '' when absent. */
  readonly revision: string;
  /** Data paths this bundle owns; `['']` (everything) when absent, as in OPA. */
  readonly roots: readonly string[];
  readonly wasm: readonly WasmEntry[];
  readonly metadata: Readonly<Record<string, unknown>>;
}

export interface Bundle {
  /** The policy module's bytes. */
  readonly wasm: Uint8Array;
  /** Bundle path of the module, e.g. `/policy.wasm` (for error messages). */
  readonly wasmPath: string;
  /**
   * Every `data.json` merged at its directory path (`/a/b/data.json` → `data.a.b`).
   * Integers beyond 2^53 are exact `bigint`s.
   */
  readonly data: Record<string, unknown>;
  readonly manifest: BundleManifest;
  /** Where the bytes came from (file path), used as `file` in ConfigErrors. */
  readonly source: string;
}

/** Read and parse a bundle file. Throws ConfigError with the file path. */
export async function readBundle(path: string, limits: BundleLimits = DEFAULT_BUNDLE_LIMITS): Promise<Bundle> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (err) {
    throw new ConfigError(path, '', `cannot read policy bundle: ${(err as Error).message}`, { cause: err });
  }
  checkGzip(bytes, path);
  // Async gunzip keeps a reload from blocking the proxy for a large bundle.
  let tar: Uint8Array;
  try {
    tar = await promisify(gunzip)(bytes, { maxOutputLength: limits.maxTotalBytes });
  } catch (err) {
    throw gunzipError(err, path, limits);
  }
  return parseTar(tar, path, limits);
}

/** Options of {@link decodeBundle}. */
export interface DecodeBundleOptions {
  readonly limits?: BundleLimits;
  /**
   * Sees every regular file (bundle path without leading slash → bytes) after
   * the archive is read and before any of it is interpreted; throw or reject
   * to refuse the bundle (signature verification).
   */
  readonly verify?: (files: ReadonlyMap<string, Uint8Array>) => Promise<void> | void;
}

/**
 * Decode bundle bytes (`.tar.gz`) without blocking the event loop on gunzip,
 * running `options.verify` on the raw files first. Throws ConfigError for a
 * malformed bundle, and whatever `verify` throws.
 */
export async function decodeBundle(bytes: Uint8Array, source: string, options: DecodeBundleOptions = {}): Promise<Bundle> {
  const limits = options.limits ?? DEFAULT_BUNDLE_LIMITS;
  checkGzip(bytes, source);
  let tar: Uint8Array;
  try {
    tar = await promisify(gunzip)(bytes, { maxOutputLength: limits.maxTotalBytes });
  } catch (err) {
    throw gunzipError(err, source, limits);
  }
  const files = readTar(tar, source, limits);
  if (options.verify !== undefined) await options.verify(new Map([...files].map(([path, entry]) => [path, entry.data])));
  return bundleFromFiles(files, source);
}

/** Parse bundle bytes (`.tar.gz`). `source` names them in errors. Throws ConfigError. */
export function parseBundle(bytes: Uint8Array, source: string, limits: BundleLimits = DEFAULT_BUNDLE_LIMITS): Bundle {
  checkGzip(bytes, source);
  let tar: Uint8Array;
  try {
    tar = gunzipSync(bytes, { maxOutputLength: limits.maxTotalBytes });
  } catch (err) {
    throw gunzipError(err, source, limits);
  }
  return parseTar(tar, source, limits);
}

function checkGzip(bytes: Uint8Array, source: string): void {
  if (bytes.length < 2 || bytes[0] !== 0x1f || bytes[1] !== 0x8b) {
    throw new ConfigError(source, '', 'not a gzip file (expected an OPA bundle .tar.gz built with `opa build -t wasm`)');
  }
}

function gunzipError(err: unknown, source: string, limits: BundleLimits): ConfigError {
  const e = err as NodeJS.ErrnoException;
  if (e.code === 'ERR_BUFFER_TOO_LARGE' || e instanceof RangeError) {
    return new ConfigError(source, '', `uncompressed bundle exceeds ${limits.maxTotalBytes} bytes`, { cause: err });
  }
  return new ConfigError(source, '', `corrupt gzip data: ${e.message}`, { cause: err });
}

// ---------------------------------------------------------------------------
// tar

const BLOCK = 512;
const latin1 = new TextDecoder('latin1');
const utf8 = new TextDecoder('utf-8', { fatal: true });

interface TarEntry {
  readonly path: string;
  readonly data: Uint8Array;
}

function isZeroBlock(tar: Uint8Array, at: number): boolean {
  for (let i = at; i < at + BLOCK; i++) if (tar[i] !== 0) return false;
  return true;
}

/** A NUL-terminated header field. Names are UTF-8 in practice (Go's archive/tar writes them so). */
function field(tar: Uint8Array, at: number, len: number): Uint8Array {
  const bytes = tar.subarray(at, at + len);
  const nul = bytes.indexOf(0);
  return nul < 0 ? bytes : bytes.subarray(0, nul);
}

function decodeName(bytes: Uint8Array, source: string): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw new ConfigError(source, '', `tar entry name is not valid UTF-8`);
  }
}

/** Numeric header field: octal ASCII, or GNU base-256 when the high bit of the first byte is set. */
function numeric(tar: Uint8Array, at: number, len: number, what: string, source: string): number {
  const first = tar[at] as number;
  if (first & 0x80) {
    if (first & 0x40) throw new ConfigError(source, '', `tar header: negative ${what}`);
    let n = first & 0x3f;
    for (let i = 1; i < len; i++) {
      n = n * 256 + (tar[at + i] as number);
      if (n > Number.MAX_SAFE_INTEGER) throw new ConfigError(source, '', `tar header: ${what} too large`);
    }
    return n;
  }
  const text = latin1.decode(field(tar, at, len)).trim();
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw new ConfigError(source, '', `tar header: ${what} is not an octal number: ${JSON.stringify(text)}`);
  return parseInt(text, 8);
}

function verifyChecksum(tar: Uint8Array, at: number, source: string): void {
  const stored = numeric(tar, at + 148, 8, 'checksum', source);
  // Unsigned per POSIX; some old writers summed signed bytes, and Go's reader accepts both.
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : (tar[at + i] as number);
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  if (stored !== unsigned && stored !== signed) throw new ConfigError(source, '', `tar header checksum mismatch at offset ${at} (corrupt or tampered bundle)`);
}

/** PAX extended header records: `<len> <key>=<value>\n`. */
function parsePax(data: Uint8Array, source: string): Map<string, string> {
  const records = new Map<string, string>();
  let at = 0;
  while (at < data.length) {
    const space = data.indexOf(0x20, at);
    const lenText = space < 0 ? '' : latin1.decode(data.subarray(at, space));
    const len = /^[1-9][0-9]*$/.test(lenText) ? Number(lenText) : NaN;
    if (!(len > 0) || at + len > data.length || data[at + len - 1] !== 0x0a) {
      throw new ConfigError(source, '', `malformed PAX extended header record at byte ${at}`);
    }
    const record = decodeName(data.subarray(space + 1, at + len - 1), source);
    const eq = record.indexOf('=');
    if (eq <= 0) throw new ConfigError(source, '', `malformed PAX extended header record ${JSON.stringify(record)}`);
    records.set(record.slice(0, eq), record.slice(eq + 1));
    at += len;
  }
  return records;
}

/**
 * Bundle-relative path of a tar entry name, or a ConfigError. Accepts one
 * leading `./` or `/`; refuses traversal and anything ambiguous.
 */
export function normalizeEntryName(name: string, source: string): string {
  let path = name;
  if (path.startsWith('./')) path = path.slice(2);
  else if (path.startsWith('/')) path = path.slice(1);
  if (path.endsWith('/')) path = path.slice(0, -1);
  if (path === '' || path === '.') return '';
  const bad = (why: string): ConfigError => new ConfigError(source, name, `refusing tar entry: ${why}`);
  if (path.includes('\0')) throw bad('NUL in name');
  if (path.includes('\\')) throw bad('backslash in name');
  if (/^[A-Za-z]:/.test(path)) throw bad('drive-letter path');
  for (const segment of path.split('/')) {
    if (segment === '..') throw bad('".." path segment (path traversal)');
    if (segment === '' || segment === '.') throw bad('empty or "." path segment (absolute or non-canonical path)');
  }
  return path;
}

/** Walk the tar stream; return regular files by normalized path. */
function readTar(tar: Uint8Array, source: string, limits: BundleLimits): Map<string, TarEntry> {
  const files = new Map<string, TarEntry>();
  let at = 0;
  let longName: string | undefined;
  let pax: Map<string, string> | undefined;
  let ended = false;
  while (at + BLOCK <= tar.length) {
    if (isZeroBlock(tar, at)) {
      ended = true; // end-of-archive marker; anything after it is padding
      break;
    }
    verifyChecksum(tar, at, source);
    const type = String.fromCharCode(tar[at + 156] as number);
    let size = numeric(tar, at + 124, 12, 'size', source);
    const magic = latin1.decode(tar.subarray(at + 257, at + 263));
    let name = decodeName(field(tar, at, 100), source);
    if (magic === 'ustar\0') {
      const prefix = decodeName(field(tar, at + 345, 155), source);
      if (prefix !== '') name = `${prefix}/${name}`;
    }
    if (longName !== undefined) name = longName;
    const paxPath = pax?.get('path');
    if (paxPath !== undefined) name = paxPath;
    const paxSize = pax?.get('size');
    if (paxSize !== undefined) {
      if (!/^[0-9]+$/.test(paxSize)) throw new ConfigError(source, name, `malformed PAX size ${JSON.stringify(paxSize)}`);
      size = Number(paxSize);
    }
    if (size > limits.maxEntryBytes) {
      throw new ConfigError(source, name, `tar entry is ${size} bytes, more than the ${limits.maxEntryBytes}-byte limit`);
    }
    const dataStart = at + BLOCK;
    if (dataStart + size > tar.length) throw new ConfigError(source, name, 'truncated tar: entry data ends early');
    const data = tar.subarray(dataStart, dataStart + size);
    at = dataStart + Math.ceil(size / BLOCK) * BLOCK;

    // Extension headers describe the next entry.
    if (type === 'L') {
      longName = decodeName(field(data, 0, data.length), source);
      continue;
    }
    if (type === 'x') {
      pax = parsePax(data, source);
      continue;
    }
    if (type === 'g') {
      parsePax(data, source); // validated; global defaults (uid, mtime, ...) do not matter here
      continue;
    }
    longName = undefined;
    pax = undefined;
    const path = normalizeEntryName(name, source);
    if (type === '5') continue; // directory
    if (type !== '0' && type !== '\0' && type !== '7') {
      // Links and devices never appear in an OPA bundle; following or
      // ignoring them could both hide what the bundle really contains.
      throw new ConfigError(source, name, `refusing tar entry of type ${JSON.stringify(type)} (only regular files and directories are allowed)`);
    }
    if (path === '') throw new ConfigError(source, name, 'refusing tar entry: regular file with an empty name');
    if (files.has(path)) throw new ConfigError(source, name, 'duplicate tar entry');
    files.set(path, { path, data });
  }
  if (!ended) throw new ConfigError(source, '', at < tar.length ? 'truncated tar: partial header block' : 'truncated tar: no end-of-archive marker');
  if (longName !== undefined || pax !== undefined) throw new ConfigError(source, '', 'truncated tar: extension header without an entry');
  return files;
}

// ---------------------------------------------------------------------------
// bundle contents

function parseJsonEntry(entry: TarEntry, source: string): unknown {
  let text: string;
  try {
    text = utf8.decode(entry.data);
  } catch {
    throw new ConfigError(source, `/${entry.path}`, 'not valid UTF-8');
  }
  try {
    return parseJsonPrecise(text);
  } catch (err) {
    throw new ConfigError(source, `/${entry.path}`, `invalid JSON: ${(err as Error).message}`, { cause: err });
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  // Never plain assignment: a "__proto__" key in data must stay data.
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

/**
 * Merge `value` into `target` at `path`, as OPA's bundle loader does: objects
 * merge recursively; the same key holding anything else on either side is a
 * conflict.
 */
function insertData(target: Record<string, unknown>, path: readonly string[], value: unknown, where: string, source: string): void {
  const conflict = (at: string): ConfigError => new ConfigError(source, where, `data conflicts with another data file at /${at}`);
  let node = target;
  for (let i = 0; i < path.length - 1; i++) {
    const key = path[i] as string;
    if (!Object.hasOwn(node, key)) setOwn(node, key, {});
    const next = node[key];
    if (!isObject(next)) throw conflict(path.slice(0, i + 1).join('/'));
    node = next;
  }
  if (path.length === 0) {
    if (!isObject(value)) throw new ConfigError(source, where, 'the root data.json must hold a JSON object');
    mergeObjects(node, value, '', conflict);
    return;
  }
  const last = path[path.length - 1] as string;
  if (!Object.hasOwn(node, last)) return setOwn(node, last, value);
  const existing = node[last];
  if (!isObject(existing) || !isObject(value)) throw conflict(path.join('/'));
  mergeObjects(existing, value, path.join('/'), conflict);
}

function mergeObjects(into: Record<string, unknown>, from: Record<string, unknown>, at: string, conflict: (at: string) => ConfigError): void {
  for (const [key, value] of Object.entries(from)) {
    const here = at === '' ? key : `${at}/${key}`;
    if (!Object.hasOwn(into, key)) {
      setOwn(into, key, value);
      continue;
    }
    const existing = into[key];
    if (!isObject(existing) || !isObject(value)) throw conflict(here);
    mergeObjects(existing, value, here, conflict);
  }
}

/** OPA refuses data outside the manifest roots; so do we (same message shape). */
function checkRoots(node: unknown, path: readonly string[], roots: readonly (readonly string[])[], source: string): void {
  const within = (root: readonly string[]): boolean => root.length <= path.length && root.every((s, i) => s === path[i]);
  if (roots.some(within)) return;
  const onTheWay = roots.some((root) => root.length > path.length && path.every((s, i) => s === root[i]));
  if (onTheWay && isObject(node)) {
    for (const [key, child] of Object.entries(node)) checkRoots(child, [...path, key], roots, source);
    return;
  }
  throw new ConfigError(source, '/.manifest', `manifest roots do not permit data at /${path.join('/')}`);
}

function parseManifest(files: Map<string, TarEntry>, source: string): BundleManifest {
  const entry = files.get('.manifest');
  if (entry === undefined) return { revision: '', roots: [''], wasm: [], metadata: {} };
  const m = parseJsonEntry(entry, source);
  const bad = (key: string, why: string): ConfigError => new ConfigError(source, `/.manifest/${key}`, why);
  if (!isObject(m)) throw new ConfigError(source, '/.manifest', 'must be a JSON object');
  const revision = m.revision ?? '';
  if (typeof revision !== 'string') throw bad('revision', 'must be a string');
  const roots = m.roots ?? [''];
  if (!Array.isArray(roots) || !roots.every((r) => typeof r === 'string')) throw bad('roots', 'must be an array of strings');
  const wasm = m.wasm ?? [];
  if (!Array.isArray(wasm)) throw bad('wasm', 'must be an array');
  const entries = wasm.map((w: unknown, i): WasmEntry => {
    if (!isObject(w) || typeof w.entrypoint !== 'string' || typeof w.module !== 'string') {
      throw bad(`wasm/${i}`, 'must be an object with string "entrypoint" and "module"');
    }
    return Object.freeze({ entrypoint: w.entrypoint, module: w.module });
  });
  const metadata = m.metadata ?? {};
  if (!isObject(metadata)) throw bad('metadata', 'must be an object');
  return Object.freeze({ revision, roots: Object.freeze([...(roots as string[])]), wasm: Object.freeze(entries), metadata });
}

function findModule(files: Map<string, TarEntry>, manifest: BundleManifest, source: string): TarEntry {
  const modules = [...new Set(manifest.wasm.map((w) => w.module))];
  if (modules.length > 1) {
    throw new ConfigError(source, '/.manifest/wasm', `bundle has ${modules.length} wasm modules (${modules.join(', ')}); regate loads exactly one`);
  }
  const named = modules[0];
  const path = named === undefined ? 'policy.wasm' : normalizeEntryName(named, source);
  const entry = files.get(path);
  if (entry === undefined) {
    throw named === undefined
      ? new ConfigError(source, '', 'bundle has no wasm module (/policy.wasm); build it with `opa build -t wasm -e <entrypoint>`')
      : new ConfigError(source, '/.manifest/wasm', `manifest names wasm module ${named}, which is not in the bundle`);
  }
  const d = entry.data;
  if (d.length < 8 || d[0] !== 0x00 || d[1] !== 0x61 || d[2] !== 0x73 || d[3] !== 0x6d) {
    throw new ConfigError(source, `/${path}`, 'not a WebAssembly module (bad magic number)');
  }
  return entry;
}

function parseTar(tar: Uint8Array, source: string, limits: BundleLimits): Bundle {
  return bundleFromFiles(readTar(tar, source, limits), source);
}

function bundleFromFiles(files: Map<string, TarEntry>, source: string): Bundle {
  const manifest = parseManifest(files, source);
  const module = findModule(files, manifest, source);

  const data: Record<string, unknown> = {};
  // Sorted, so a conflict is always reported against the same file.
  for (const path of [...files.keys()].sort()) {
    const segments = path.split('/');
    const base = segments.pop() as string;
    if (base === 'data.yaml' || base === 'data.yml') {
      throw new ConfigError(source, `/${path}`, 'YAML data files are not supported; rebuild the bundle with `opa build` (it writes data.json)');
    }
    if (base === 'patch.json') throw new ConfigError(source, `/${path}`, 'delta bundles (patch.json) are not supported');
    if (base !== 'data.json') continue;
    const entry = files.get(path) as TarEntry;
    insertData(data, segments, parseJsonEntry(entry, source), `/${path}`, source);
  }
  const roots = manifest.roots.map((r) => (r === '' ? [] : r.split('/')));
  checkRoots(data, [], roots, source);
  // Copy the module out: a view would keep the whole decompressed tar alive.
  return Object.freeze({ wasm: module.data.slice(), wasmPath: `/${module.path}`, data, manifest, source });
}
