/**
 * Builds one of the repository's Go tools (tools/<name>, each its own module)
 * into .tools/bin, unless the binary there is newer than every source file.
 * Go is a hard requirement of the suite (CI has it in /usr/local/go); module
 * downloads come from the Go module proxy.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './regate-process.ts';

export function findGo(): string {
  if (spawnSync('go', ['version'], { encoding: 'utf8' }).status === 0) return 'go';
  if (existsSync('/usr/local/go/bin/go')) return '/usr/local/go/bin/go';
  throw new Error('the Go toolchain is required (tools/* are Go programs); put `go` on PATH or install it in /usr/local/go');
}

/** Path of the built tools/<name> binary (built first when stale). */
export function buildGoTool(name: string): string {
  const dir = join(repoRoot, 'tools', name);
  const binary = join(repoRoot, '.tools', 'bin', `regate-${name}`);
  const sources = readdirSync(dir).filter((f) => f.endsWith('.go') || f === 'go.mod' || f === 'go.sum');
  const newest = Math.max(...sources.map((f) => statSync(join(dir, f)).mtimeMs));
  if (existsSync(binary) && statSync(binary).mtimeMs > newest) return binary;
  mkdirSync(join(repoRoot, '.tools', 'bin'), { recursive: true });
  // Built to a temp name and renamed: two test files building at once never run a half-written binary.
  const tmp = `${binary}.${process.pid}.tmp`;
  execFileSync(findGo(), ['build', '-trimpath', '-o', tmp, '.'], {
    cwd: dir,
    env: { ...process.env, CGO_ENABLED: '0', GOFLAGS: '-mod=mod' },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  execFileSync('mv', ['-f', tmp, binary]);
  return binary;
}
