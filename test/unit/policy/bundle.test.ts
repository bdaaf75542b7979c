import assert from 'node:assert/strict';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { gunzipSync, gzipSync } from 'node:zlib';
import { ConfigError } from '../../../src/errors.ts';
import { normalizeEntryName, parseBundle, readBundle } from '../../../src/policy/bundle.ts';
import { buildBundle, repoRoot } from '../../helpers/opa.ts';

// --- a minimal tar writer, to craft the archives opa build never makes ---

const enc = new TextEncoder();
const WASM = new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]);

interface EntrySpec {
  name: string;
  data?: string | Uint8Array;
  type?: string;
  /** Size written in the header (default: the data length). */
  size?: number;
  prefix?: string;
}

function header(spec: EntrySpec, length: number): Uint8Array {
  const h = new Uint8Array(512);
  const put = (at: number, text: string): void => h.set(enc.encode(text), at);
  put(0, spec.name);
  put(100, '0000644\0');
  put(108, '0000000\0');
  put(116, '0000000\0');
  put(124, `${(spec.size ?? length).toString(8).padStart(11, '0')}\0`);
  put(136, '00000000000\0');
  put(156, spec.type ?? '0');
  put(257, 'ustar\0');
  put(263, '00');
  if (spec.prefix) put(345, spec.prefix);
  put(148, '        ');
  let sum = 0;
  for (const b of h) sum += b;
  put(148, `${sum.toString(8).padStart(6, '0')}\0 `);
  return h;
}

function entry(spec: EntrySpec): Uint8Array[] {
  const data = typeof spec.data === 'string' ? enc.encode(spec.data) : (spec.data ?? new Uint8Array(0));
  const padded = new Uint8Array(Math.ceil(data.length / 512) * 512);
  padded.set(data);
  return [header(spec, data.length), padded];
}

function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  const bytes = (s: string): number => enc.encode(s).length;
  let len = bytes(body) + 1;
  while (bytes(`${len}${body}`) !== len) len++;
  return `${len}${body}`;
}

function tar(specs: EntrySpec[], options: { end?: boolean } = {}): Uint8Array {
  const parts = specs.flatMap(entry);
  if (options.end !== false) parts.push(new Uint8Array(1024));
  return Buffer.concat(parts);
}

const tgz = (specs: EntrySpec[], options?: { end?: boolean }): Uint8Array => gzipSync(tar(specs, options));

const minimal = (...extra: EntrySpec[]): EntrySpec[] => [{ name: '/policy.wasm', data: WASM }, ...extra];

function refused(bytes: Uint8Array, message: RegExp, keyPath?: string): void {
  assert.throws(
    () => parseBundle(bytes, 'test.tar.gz'),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
      assert.equal(err.file, 'test.tar.gz');
      assert.match(err.message, message);
      if (keyPath !== undefined) assert.equal(err.keyPath, keyPath);
      return true;
    },
  );
}

// --- bundles from the real opa CLI ---

describe('parseBundle on opa build output', () => {
  let path: string;
  before(async () => {
    path = await buildBundle({
      dir: join(repoRoot, 'test/fixtures/policy/basic'),
      entrypoints: ['fixtures/allow_bool', 'fixtures/decision'],
      args: ['--revision', 'rev-42'],
    });
  });

  it('reads module, manifest and merged data', async () => {
    const bundle = await readBundle(path);
    assert.equal(bundle.source, path);
    assert.deepEqual([...bundle.wasm.subarray(0, 4)], [0x00, 0x61, 0x73, 0x6d]);
    assert.equal(bundle.wasmPath, '/policy.wasm');
    assert.equal(bundle.manifest.revision, 'rev-42');
    assert.deepEqual(bundle.manifest.roots, ['']);
    assert.deepEqual(bundle.manifest.wasm, [
      { entrypoint: 'fixtures/allow_bool', module: '/policy.wasm' },
      { entrypoint: 'fixtures/decision', module: '/policy.wasm' },
    ]);
    assert.deepEqual(bundle.data, {
      allowed_teams: ['platform'],
      teams: { security: ['mallory'], platform: ['alice', 'bob'] },
      big: 9223372036854775807n,
    });
  });

  it('parseBundle and readBundle agree', async () => {
    const bytes = await readFile(path);
    const a = parseBundle(bytes, path);
    const b = await readBundle(path);
    assert.deepEqual(a, b);
  });

  it('refuses a truncated .tar.gz', async () => {
    const bytes = await readFile(path);
    refused(bytes.subarray(0, bytes.length - 20), /corrupt gzip data/, '');
  });

  it('refuses a .tar.gz with a flipped byte', async () => {
    const bytes = new Uint8Array(await readFile(path));
    const at = Math.floor(bytes.length / 2);
    bytes[at] = (bytes[at] as number) ^ 0xff;
    refused(bytes, /corrupt gzip data|checksum mismatch|invalid/);
  });

  it('refuses a tampered tar header', async () => {
    const raw = new Uint8Array(gunzipSync(await readFile(path)));
    raw[10] = (raw[10] as number) ^ 0x01; // inside the first entry's name
    refused(gzipSync(raw), /checksum mismatch at offset 0 \(corrupt or tampered bundle\)/);
  });

  it('reads a missing file as a ConfigError', async () => {
    await assert.rejects(readBundle(join(repoRoot, 'no/such/bundle.tar.gz')), (err: unknown) => err instanceof ConfigError && /cannot read policy bundle/.test(err.message));
  });
});

// --- crafted archives ---

describe('parseBundle refuses', () => {
  it('bytes that are not gzip', () => {
    refused(enc.encode('policy.wasm'), /not a gzip file/, '');
    refused(tar(minimal()), /not a gzip file/);
  });

  it('a tar whose entry data ends early', () => {
    const full = tar(minimal({ name: '/data.json', data: '{"a":1}' }));
    refused(gzipSync(full.subarray(0, 3 * 512 + 3)), /truncated tar: entry data ends early/, '/data.json');
    refused(gzipSync(full.subarray(0, 2 * 512 + 100)), /truncated tar: partial header block/);
  });

  it('a tar without an end-of-archive marker', () => {
    refused(tgz(minimal(), { end: false }), /truncated tar: no end-of-archive marker/);
  });

  it('a trailing extension header with no entry', () => {
    refused(tgz([...minimal(), { name: '././@LongLink', type: 'L', data: 'x/data.json\0' }]), /extension header without an entry/);
  });

  for (const name of ['../data.json', '/a/../../data.json', 'a/..', '//etc/passwd', 'a//data.json', 'a/./data.json', 'C:/data.json', 'a\\..\\data.json']) {
    it(`the entry name ${JSON.stringify(name)}`, () => {
      refused(tgz(minimal({ name, data: '{}' })), /refusing tar entry/, name);
    });
  }

  it('traversal hidden in a GNU long name', () => {
    refused(tgz([...minimal(), { name: '././@LongLink', type: 'L', data: `${'a/'.repeat(60)}../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../data.json\0` }, { name: 'short', data: '{}' }]), /path traversal/);
  });

  it('traversal hidden in a PAX path', () => {
    refused(tgz([...minimal(), { name: 'PaxHeaders/x', type: 'x', data: paxRecord('path', '../data.json') }, { name: 'innocent', data: '{}' }]), /path traversal/, '../data.json');
  });

  it('links and devices', () => {
    refused(tgz(minimal({ name: '/data.json', type: '2' })), /type "2"/);
    refused(tgz(minimal({ name: '/data.json', type: '1' })), /type "1"/);
    refused(tgz(minimal({ name: '/dev', type: '3' })), /type "3"/);
  });

  it('duplicate entries', () => {
    refused(tgz(minimal({ name: '/data.json', data: '{"a":1}' }, { name: 'data.json', data: '{"a":2}' })), /duplicate tar entry/);
  });

  it('an entry over 64 MiB (from its header, before reading it)', () => {
    refused(tgz(minimal({ name: '/data.json', data: '{}', size: 64 * 1024 * 1024 + 1 })), /67108865 bytes, more than the 67108864-byte limit/, '/data.json');
  });

  it('an entry over a PAX size', () => {
    refused(tgz([...minimal(), { name: 'PaxHeaders/x', type: 'x', data: paxRecord('size', String(2 ** 40)) }, { name: 'data.json', data: '{}' }]), /more than the 67108864-byte limit/);
  });

  it('an uncompressed size over the total limit', () => {
    const bytes = tgz(minimal({ name: '/filler', data: new Uint8Array(8192) }));
    assert.throws(() => parseBundle(bytes, 'x', { maxTotalBytes: 4096, maxEntryBytes: 1024 * 1024 }), /uncompressed bundle exceeds 4096 bytes/);
  });

  it('an uncompressed size over the total limit (readBundle)', async () => {
    const file = join(tmpdir(), `regate-bundle-${process.pid}.tar.gz`);
    await writeFile(file, tgz(minimal({ name: '/filler', data: new Uint8Array(8192) })));
    try {
      await assert.rejects(readBundle(file, { maxTotalBytes: 4096, maxEntryBytes: 1024 * 1024 }), /uncompressed bundle exceeds 4096 bytes/);
    } finally {
      await rm(file, { force: true });
    }
  });

  it('a bundle without a wasm module', () => {
    refused(tgz([{ name: '/data.json', data: '{}' }]), /no wasm module \(\/policy.wasm\); build it with `opa build -t wasm -e <entrypoint>`/);
  });

  it('a manifest naming a module that is missing', () => {
    refused(tgz(minimal({ name: '/.manifest', data: '{"wasm":[{"entrypoint":"a/b","module":"/other.wasm"}]}' })), /manifest names wasm module \/other.wasm, which is not in the bundle/, '/.manifest/wasm');
  });

  it('a manifest naming two modules', () => {
    const manifest = '{"wasm":[{"entrypoint":"a","module":"/policy.wasm"},{"entrypoint":"b","module":"/b.wasm"}]}';
    refused(tgz(minimal({ name: '/b.wasm', data: WASM }, { name: '/.manifest', data: manifest })), /2 wasm modules .*regate loads exactly one/);
  });

  it('a module that is not WebAssembly', () => {
    refused(tgz([{ name: '/policy.wasm', data: 'not wasm at all' }]), /not a WebAssembly module/, '/policy.wasm');
  });

  it('invalid JSON in data.json, with its path', () => {
    refused(tgz(minimal({ name: '/x/y/data.json', data: '{"a":' })), /invalid JSON/, '/x/y/data.json');
  });

  it('data.json that is not UTF-8', () => {
    refused(tgz(minimal({ name: '/data.json', data: new Uint8Array([0x7b, 0xff, 0x7d]) })), /not valid UTF-8/, '/data.json');
  });

  it('a root data.json that is not an object', () => {
    refused(tgz(minimal({ name: '/data.json', data: '[1]' })), /root data.json must hold a JSON object/);
  });

  it('invalid manifests', () => {
    refused(tgz(minimal({ name: '/.manifest', data: '{' })), /invalid JSON/, '/.manifest');
    refused(tgz(minimal({ name: '/.manifest', data: '[]' })), /must be a JSON object/, '/.manifest');
    refused(tgz(minimal({ name: '/.manifest', data: '{"revision":1}' })), /must be a string/, '/.manifest/revision');
    refused(tgz(minimal({ name: '/.manifest', data: '{"roots":"a"}' })), /must be an array of strings/, '/.manifest/roots');
    refused(tgz(minimal({ name: '/.manifest', data: '{"wasm":[{"entrypoint":1}]}' })), /"entrypoint" and "module"/, '/.manifest/wasm/0');
    refused(tgz(minimal({ name: '/.manifest', data: '{"metadata":[]}' })), /must be an object/, '/.manifest/metadata');
  });

  it('conflicting data files', () => {
    refused(tgz(minimal({ name: '/data.json', data: '{"a":{"b":1}}' }, { name: '/a/b/data.json', data: '{"c":2}' })), /conflicts with another data file at \/a\/b/, '/data.json');
    refused(tgz(minimal({ name: '/data.json', data: '{"a":{"b":[1]}}' }, { name: '/a/data.json', data: '{"b":[2]}' })), /conflicts .* at \/a\/b/);
  });

  it('data outside the manifest roots', () => {
    refused(tgz(minimal({ name: '/.manifest', data: '{"roots":["a/b"]}' }, { name: '/data.json', data: '{"a":{"c":1}}' })), /manifest roots do not permit data at \/a\/c/);
    refused(tgz(minimal({ name: '/.manifest', data: '{"roots":["a/b"]}' }, { name: '/data.json', data: '{"a":1}' })), /do not permit data at \/a$/);
  });

  it('YAML data and delta bundles', () => {
    refused(tgz(minimal({ name: '/x/data.yaml', data: 'a: 1' })), /YAML data files are not supported/, '/x/data.yaml');
    refused(tgz(minimal({ name: '/patch.json', data: '{}' })), /delta bundles/);
  });
});

describe('parseBundle accepts', () => {
  it('a bare module: defaults for manifest and data', () => {
    const b = parseBundle(tgz(minimal()), 'x');
    assert.deepEqual(b.manifest, { revision: '', roots: [''], wasm: [], metadata: {} });
    assert.deepEqual(b.data, {});
    assert.deepEqual([...b.wasm], [...WASM]);
  });

  it('names with ./ or without a leading slash, and directory entries', () => {
    const b = parseBundle(tgz([{ name: './', type: '5' }, { name: './policy.wasm', data: WASM }, { name: 'x/', type: '5' }, { name: 'x/data.json', data: '{"k":1}' }]), 'x');
    assert.deepEqual(b.data, { x: { k: 1 } });
  });

  it('merges data.json files at their directory paths, as OPA does', () => {
    const b = parseBundle(
      tgz(minimal({ name: '/data.json', data: '{"a":{"keep":true},"x":{}}' }, { name: '/a/b/data.json', data: '{"c":1}' }, { name: '/a/list/data.json', data: '[1,2]' }, { name: '/x/data.json', data: '{"k":1}' }, { name: '/x/y/z/data.json', data: '"deep"' })),
      'x',
    );
    assert.deepEqual(b.data, { a: { keep: true, b: { c: 1 }, list: [1, 2] }, x: { k: 1, y: { z: 'deep' } } });
  });

  it('data within the manifest roots', () => {
    const b = parseBundle(tgz(minimal({ name: '/.manifest', data: '{"revision":"r","roots":["a/b","c"],"metadata":{"k":"v"}}' }, { name: '/data.json', data: '{"a":{"b":{"x":1}},"c":2}' })), 'x');
    assert.deepEqual(b.data, { a: { b: { x: 1 } }, c: 2 });
    assert.deepEqual(b.manifest, { revision: 'r', roots: ['a/b', 'c'], wasm: [], metadata: { k: 'v' } });
  });

  it('GNU long names', () => {
    const long = `${'directory/'.repeat(12)}data.json`;
    const b = parseBundle(tgz([...minimal(), { name: '././@LongLink', type: 'L', data: `${long}\0` }, { name: long.slice(0, 99), data: '{"k":1}' }]), 'x');
    assert.deepEqual(Object.keys(b.data), ['directory']);
  });

  it('ustar prefix fields', () => {
    const b = parseBundle(tgz([...minimal(), { name: 'data.json', prefix: 'p/q', data: '{"k":1}' }]), 'x');
    assert.deepEqual(b.data, { p: { q: { k: 1 } } });
  });

  it('PAX path and global headers', () => {
    const b = parseBundle(tgz([{ name: 'pax_global_header', type: 'g', data: paxRecord('comment', 'hi') }, ...minimal(), { name: 'PaxHeaders/x', type: 'x', data: paxRecord('path', 'ü/data.json') }, { name: 'ignored', data: '{"k":1}' }]), 'x');
    assert.deepEqual(b.data, { ü: { k: 1 } });
  });

  it('integers beyond 2^53 exactly', () => {
    const b = parseBundle(tgz(minimal({ name: '/data.json', data: '{"ns":1670006453141828752}' })), 'x');
    assert.equal(b.data.ns, 1670006453141828752n);
  });

  it('a __proto__ key as data, without polluting prototypes', () => {
    const b = parseBundle(tgz(minimal({ name: '/data.json', data: '{"__proto__":{"polluted":true}}' }, { name: '/__proto__/x/data.json', data: '1' })), 'x');
    assert.deepEqual(Object.keys(b.data), ['__proto__']);
    assert.equal(Object.getPrototypeOf(b.data), Object.prototype);
    assert.deepEqual(Object.getOwnPropertyDescriptor(b.data, '__proto__')?.value, { polluted: true, x: 1 });
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });
});

describe('normalizeEntryName', () => {
  it('maps OPA and tar spellings to bundle paths', () => {
    assert.equal(normalizeEntryName('/policy.wasm', 's'), 'policy.wasm');
    assert.equal(normalizeEntryName('./a/data.json', 's'), 'a/data.json');
    assert.equal(normalizeEntryName('a/b/', 's'), 'a/b');
    assert.equal(normalizeEntryName('./', 's'), '');
  });
});
