/**
 * The README's "Using Ory Hydra" walkthrough, run as written against the real
 * Hydra in .tools/bin: its sh blocks in one bash, in order, with its YAML block
 * saved where it says (`hydra-demo/regate.yaml`), in a scratch directory
 * standing in for the repository root (`.tools` linked in). Two substitutions
 * only: `npm run -s regate --` / `npm run -s build` run regate from source
 * (`node src/cli/main.ts`, what the built script ends up running), and the
 * walkthrough's fixed loopback ports are replaced by free ones, so the test
 * never collides with anything else on the machine. Every `# expected` line
 * the walkthrough shows is checked against what the commands print.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { cliPath, repoRoot } from '../helpers/regate-process.ts';
import { freePort } from '../helpers/ports.ts';
import { fencedBlocks, readmeSection } from '../helpers/readme.ts';

const run = promisify(execFile);
const section = (): string => readmeSection('### Using Ory Hydra\n');

const dir = mkdtempSync(join(tmpdir(), 'regate-readme-hydra-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('README: Using Ory Hydra', () => {
  it('discovery-verified JWT and introspected opaque token reach the model API; the revoked token is refused', async () => {
    symlinkSync(join(repoRoot, '.tools'), join(dir, '.tools'));
    const text = section();
    const sh = fencedBlocks(text, 'sh');
    const yaml = fencedBlocks(text, 'yaml');
    assert.equal(sh.length, 2, 'two command blocks: Hydra + clients + policy, then regate + calls');
    assert.equal(yaml.length, 1);
    const [configPath] = /^# (\S+)\n/.exec(yaml[0]!)!.slice(1);
    const ports = new Map<string, string>();
    for (const p of ['4444', '4445', '8000', '8080', '9090']) ports.set(p, String(await freePort()));
    const local = (s: string): string => s.replace(/\b(4444|4445|8000|8080|9090)\b/g, (p) => ports.get(p)!);
    const regate = `${JSON.stringify(process.execPath)} ${JSON.stringify(cliPath)}`;
    const cmd = (s: string): string => local(s).replaceAll('npm run -s regate --', regate).replace(/^npm run -s build.*$/m, ':');
    const script = [
      'set -euo pipefail',
      // Whatever happens, nothing the walkthrough started outlives it.
      'trap \'kill $(jobs -p) 2>/dev/null || true\' EXIT',
      cmd(sh[0]!),
      `cat > ${configPath} <<'YAML'\n${local(yaml[0]!)}YAML`,
      cmd(sh[1]!),
    ].join('\n');
    const { stdout } = await run('bash', ['-c', script], { cwd: dir, timeout: 150_000, maxBuffer: 4 * 1024 * 1024 });
    const lines = stdout.split('\n');
    assert.equal(lines.filter((l) => l === 'model API got GET /v1/models/sentiment').length, 2, stdout);
    const refused = lines.find((l) => l.startsWith('{"type":"urn:regate:problem:token_inactive"'));
    assert.ok(refused, stdout);
    assert.equal(JSON.parse(refused).status, 401);
    assert.match(stdout, /^regate_oidc_discovery_total\{issuer="hydra",result="success"\} 1$/m);
    assert.match(stdout, /^regate_introspection_requests_total\{issuer="hydra",result="inactive"\} 1$/m);
  });
});
