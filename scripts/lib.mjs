// Shared helpers for the build scripts: locate tools, list policy directories.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';

export const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** The opa CLI: $OPA_BIN, the pinned one in .tools/bin, or opa on PATH. */
export function opaBin() {
  if (process.env.OPA_BIN) return process.env.OPA_BIN;
  const pinned = join(root, '.tools', 'bin', 'opa');
  return existsSync(pinned) ? pinned : 'opa';
}

/** Runs a command, inheriting stdio; exits the process with its status on failure. */
export function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: root, ...opts });
  if (r.error) {
    console.error(`${cmd}: ${r.error.message}`);
    process.exit(1);
  }
  if (r.status !== 0) process.exit(r.status ?? 1);
}

/** Example directories that carry a regate.yaml and a policy/ folder. */
export function examples() {
  const dir = join(root, 'examples');
  return readdirSync(dir)
    .map((name) => join(dir, name))
    .filter((p) => statSync(p).isDirectory() && existsSync(join(p, 'regate.yaml')) && existsSync(join(p, 'policy')));
}

/** Every directory holding Rego that CI lints and tests, each with the roots it compiles with. */
export function policyDirs() {
  const shared = join(root, 'rego');
  return [
    { name: 'rego', dirs: [shared] },
    ...examples().map((ex) => ({ name: ex.slice(root.length + 1), dirs: [join(ex, 'policy'), shared] })),
  ];
}
