/**
 * Build OPA wasm bundles from Rego in tests, with the real `opa` CLI.
 * Artifacts go to a temp directory; nothing built is ever committed.
 */

import { execFile } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { cp, mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);

// Temp directories made by buildBundle, removed when the test process exits.
const workDirs = new Set<string>();
function cleanUpLater(dir: string): void {
  if (workDirs.size === 0) {
    process.once('exit', () => {
      for (const d of workDirs) rmSync(d, { recursive: true, force: true });
    });
  }
  workDirs.add(dir);
}

/** The repository root (this file is test/helpers/opa.ts). */
export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

/** The opa binary: `$OPA_BIN`, else `<repo>/.tools/bin/opa`, else `opa` on PATH. */
export function opaBin(): string {
  if (process.env.OPA_BIN) return process.env.OPA_BIN;
  const local = join(repoRoot, '.tools', 'bin', 'opa');
  return existsSync(local) ? local : 'opa';
}

export interface BuildBundleOptions {
  /** Files to write (relative path → content), e.g. `{ 'authz.rego': '...', 'x/data.json': '{}' }`. */
  files?: Record<string, string>;
  /** Or an existing directory to build (copied first, so opa never writes beside fixtures). */
  dir?: string;
  /** Entrypoints in path form, e.g. `regate/authz/decision`. At least one. */
  entrypoints: string[];
  /** Output path; default `bundle.tar.gz` in a fresh temp directory. */
  out?: string;
  /** Extra `opa build` arguments (e.g. `--revision`, `v1`). */
  args?: string[];
}

/**
 * Run `opa build -t wasm -e ... -o out` and return the bundle path. The temp
 * directory (sources, and the bundle unless `out` is given) is removed when
 * the process exits.
 */
export async function buildBundle(options: BuildBundleOptions): Promise<string> {
  if (options.entrypoints.length === 0) throw new TypeError('buildBundle: at least one entrypoint');
  if ((options.files === undefined) === (options.dir === undefined)) throw new TypeError('buildBundle: exactly one of files / dir');
  const work = await mkdtemp(join(tmpdir(), 'regate-opa-'));
  cleanUpLater(work);
  const src = join(work, 'src');
  if (options.dir !== undefined) {
    await cp(options.dir, src, { recursive: true });
  } else {
    for (const [path, content] of Object.entries(options.files ?? {})) {
      const file = join(src, path);
      await mkdir(dirname(file), { recursive: true });
      await writeFile(file, content);
    }
  }
  const out = options.out ?? join(work, 'bundle.tar.gz');
  const args = ['build', '-t', 'wasm', ...options.entrypoints.flatMap((e) => ['-e', e]), ...(options.args ?? []), '-o', out, '.'];
  try {
    await run(opaBin(), args, { cwd: src, maxBuffer: 16 * 1024 * 1024 });
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string; message: string };
    throw new Error(`opa build failed: ${e.stderr || e.stdout || e.message}`, { cause: err });
  }
  return out;
}
