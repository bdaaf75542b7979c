/**
 * Signed OPA bundles for tests, made by the real `opa` CLI
 * (`opa build -b --signing-key ...`, `opa sign`), plus a way to take a
 * bundle apart and put it back together (tamper with one file, add or drop
 * one) without touching its signature.
 */

import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { rmSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { decodeBundle } from '../../src/policy/bundle.ts';
import { opaBin } from './opa.ts';

const run = promisify(execFile);

const workDirs = new Set<string>();
/** A temp directory removed when the test process exits. */
export async function tempDir(prefix = 'regate-sign-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  if (workDirs.size === 0) {
    process.once('exit', () => {
      for (const d of workDirs) rmSync(d, { recursive: true, force: true });
    });
  }
  workDirs.add(dir);
  return dir;
}

/** A signing key pair as PEM files. */
export interface KeyFiles {
  readonly privateKey: string;
  readonly publicKey: string;
  /** The public key as a JWK (for JWKS files). */
  readonly jwk: Record<string, unknown>;
}

/** Generate an RSA-2048 (RS256 ... PS512) or EC (ES256 / ES384 / ES512) key pair into `dir`. */
export async function makeKeys(dir: string, name: string, kind: 'rsa' | 'P-256' | 'P-384' | 'P-521' = 'rsa'): Promise<KeyFiles> {
  const pair =
    kind === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ec', { namedCurve: kind });
  const privateKey = join(dir, `${name}.key.pem`);
  const publicKey = join(dir, `${name}.pub.pem`);
  // opa reads PKCS#1 / SEC1 / PKCS#8 private keys alike.
  await writeFile(privateKey, pair.privateKey.export({ type: 'pkcs8', format: 'pem' }));
  await writeFile(publicKey, pair.publicKey.export({ type: 'spki', format: 'pem' }));
  return { privateKey, publicKey, jwk: pair.publicKey.export({ format: 'jwk' }) as Record<string, unknown> };
}

export interface SignedBuildOptions {
  /** Source files (path → content). */
  readonly files: Record<string, string>;
  readonly entrypoints: readonly string[];
  /** Private key PEM file; omit for an unsigned bundle (built with -b all the same). */
  readonly signingKey?: string;
  readonly alg?: string;
  /** `--verification-key-id`: becomes the JWS `kid` (opa's default is `default`). */
  readonly keyId?: string;
  /** Extra claims (`--claims-file`), e.g. `{scope: 'write'}`. */
  readonly claims?: Record<string, unknown>;
  readonly revision?: string;
}

/** `opa build -b -t wasm ... [--signing-key ...]` → the bundle bytes. */
export async function opaBuildSigned(options: SignedBuildOptions): Promise<Uint8Array> {
  const work = await tempDir('regate-opa-signed-');
  const src = join(work, 'src');
  for (const [path, content] of Object.entries(options.files)) {
    const file = join(src, path);
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, content);
  }
  const out = join(work, 'bundle.tar.gz');
  const args = ['build', '-b', '-t', 'wasm', ...options.entrypoints.flatMap((e) => ['-e', e])];
  if (options.revision !== undefined) args.push('--revision', options.revision);
  if (options.signingKey !== undefined) {
    args.push('--signing-key', options.signingKey, '--signing-alg', options.alg ?? 'RS256');
    if (options.keyId !== undefined) args.push('--verification-key-id', options.keyId);
    if (options.claims !== undefined) {
      const claims = join(work, 'claims.json');
      await writeFile(claims, JSON.stringify(options.claims));
      args.push('--claims-file', claims);
    }
  }
  args.push('-o', out, '.');
  await opa(args, src);
  return readFile(out);
}

/**
 * `opa sign` over a bundle's files (unpacked into a directory), then packed
 * again with the new `.signatures.json`: the "build unsigned, sign later" workflow.
 */
export async function opaSign(bundle: Uint8Array, signingKey: string, extra: readonly string[] = []): Promise<Uint8Array> {
  const files = await bundleFiles(bundle);
  files.delete('.signatures.json');
  const work = await tempDir('regate-opa-sign-');
  const dir = join(work, 'bundle');
  for (const [path, bytes] of files) {
    await mkdir(dirname(join(dir, path)), { recursive: true });
    await writeFile(join(dir, path), bytes);
  }
  // Run inside the bundle directory: opa names the signed files by the path it was given.
  await opa(['sign', '--signing-key', signingKey, ...extra, '--bundle', '.'], dir);
  files.set('.signatures.json', await readFile(join(dir, '.signatures.json')));
  return packBundle(files);
}

async function opa(args: string[], cwd: string): Promise<void> {
  try {
    await run(opaBin(), args, { cwd, maxBuffer: 16 * 1024 * 1024 });
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string; message: string };
    throw new Error(`opa ${args[0]} failed: ${e.stderr || e.stdout || e.message}`, { cause: err });
  }
}

/** The regular files of a bundle (path without leading slash → bytes), read with regate's own tar reader. */
export async function bundleFiles(bundle: Uint8Array): Promise<Map<string, Uint8Array>> {
  let files: Map<string, Uint8Array> | undefined;
  const stop = new Error('captured');
  try {
    await decodeBundle(bundle, 'test', {
      verify: (f) => {
        files = new Map(f);
        throw stop; // no need to interpret the contents
      },
    });
  } catch (err) {
    if (err !== stop) throw err;
  }
  if (files === undefined) throw new Error('bundleFiles: not captured');
  return files;
}

/** Pack files into a `.tar.gz` as `opa build` lays them out (leading `/`, ustar). */
export function packBundle(files: ReadonlyMap<string, Uint8Array | string>): Uint8Array {
  const blocks: Buffer[] = [];
  for (const [path, content] of files) {
    const data = typeof content === 'string' ? Buffer.from(content) : Buffer.from(content);
    const name = `/${path}`;
    if (Buffer.byteLength(name) > 99) throw new TypeError(`packBundle: name too long for a plain ustar header: ${name}`);
    const header = Buffer.alloc(512, 0);
    header.write(name, 0, 'utf8');
    header.write('0000600\0', 100, 'latin1');
    header.write('0000000\0', 108, 'latin1');
    header.write('0000000\0', 116, 'latin1');
    header.write(`${data.length.toString(8).padStart(11, '0')}\0`, 124, 'latin1');
    header.write('00000000000\0', 136, 'latin1');
    header.write('        ', 148, 'latin1');
    header.write('0', 156, 'latin1');
    header.write('ustar\0', 257, 'latin1');
    header.write('00', 263, 'latin1');
    let sum = 0;
    for (const b of header) sum += b;
    header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
    blocks.push(header, data, Buffer.alloc((512 - (data.length % 512)) % 512, 0));
  }
  blocks.push(Buffer.alloc(1024, 0));
  return gzipSync(Buffer.concat(blocks));
}
