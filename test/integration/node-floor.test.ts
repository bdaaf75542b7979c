/**
 * On a Node older than the floor, every `regate` command exits 1 with one line
 * naming the running and the required version, never a stack trace. Run with
 * the machine's own older Node (the system node outside .tools); a machine
 * without one fails this test rather than skipping it.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { atLeast, NODE_FLOOR } from '../../src/cli/node-floor.ts';
import { repoRoot } from '../helpers/opa.ts';

/** A node binary outside the repository's .tools whose version is below the floor. */
function olderNode(): { bin: string; version: string } | undefined {
  const tools = join(repoRoot, '.tools');
  const candidates = [...(process.env.PATH ?? '').split(delimiter).map((d) => join(d, 'node')), '/usr/bin/node', '/usr/local/bin/node'];
  for (const bin of candidates) {
    if (!existsSync(bin)) continue;
    let real: string;
    try {
      real = realpathSync(bin);
    } catch {
      continue;
    }
    if (real.startsWith(realpathSync(tools) + '/') || real === realpathSync(process.execPath)) continue;
    const r = spawnSync(bin, ['-p', 'process.versions.node'], { encoding: 'utf8', timeout: 30_000 });
    const version = r.stdout?.trim();
    if (r.status === 0 && version && !atLeast(version, NODE_FLOOR)) return { bin, version };
  }
  return undefined;
}

// Built into build/ (git-ignored) inside the repository so dist's imports find node_modules and package.json.
mkdirSync(join(repoRoot, 'build'), { recursive: true });
const out = mkdtempSync(join(repoRoot, 'build', 'node-floor-'));
const mainJs = join(out, 'dist', 'cli', 'main.js');

before(() => {
  const tsc = spawnSync(process.execPath, [join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json', '--outDir', join(out, 'dist')], {
    cwd: repoRoot,
    encoding: 'utf8',
    timeout: 300_000,
  });
  assert.equal(tsc.status, 0, `build failed:\n${tsc.stdout}${tsc.stderr}`);
  copyFileSync(join(repoRoot, 'package.json'), join(out, 'package.json'));
});
after(() => rmSync(out, { recursive: true, force: true }));

describe(`regate on a Node older than ${NODE_FLOOR}`, () => {
  const old = olderNode();

  it('the machine has an older Node to test with', () => {
    assert.ok(old, `no node below ${NODE_FLOOR} outside .tools on PATH, /usr/bin or /usr/local/bin`);
  });

  const commands = [['version'], ['serve', '--config', 'examples/quickstart/regate.yaml'], ['check', '--config', 'examples/quickstart/regate.yaml'], ['eval', '--help'], ['token', '--help'], ['keys', 'generate', '--help'], ['--help'], [], ['no-such-command']];
  for (const args of commands) {
    it(`regate ${args.join(' ') || '(no arguments)'}: exit 1, one line naming both versions`, () => {
      assert.ok(old, 'no older node');
      const r = spawnSync(old.bin, [mainJs, ...args], { cwd: repoRoot, encoding: 'utf8', timeout: 60_000 });
      assert.equal(r.status, 1, r.stderr);
      assert.equal(r.stdout, '');
      const esc = (v: string) => v.replaceAll('.', '\\.');
      assert.match(r.stderr, new RegExp(`^regate: Node\\.js ${esc(old.version)} is not supported; regate needs Node\\.js >= ${esc(NODE_FLOOR)} \\(/.+\\)\n$`));
      assert.doesNotMatch(r.stderr, /\bat \S+:\d+|TypeError|Error/);
    });
  }

  it('the same build runs on this Node (the check, not the build, refuses the old one)', () => {
    const r = spawnSync(process.execPath, [mainJs, 'version'], { cwd: repoRoot, encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^regate \d+\.\d+\.\d+\ntz database \S+ \(ICU [\d.]+\)\n$/);
  });
});
