/**
 * The README's "Bring your own keys/issuer" section, run as written: its sh
 * blocks in one bash, in order, with its YAML block saved where it says
 * (`mine/regate.yaml`), in a scratch directory standing in for the repository
 * root (`examples/` linked in). `npm run -s regate --` runs as `node
 * src/cli/main.ts`, what that npm script ends up running. The token it mints
 * must verify against the JWKS it generated, under the kid it chose.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { cliPath, repoRoot } from '../helpers/regate-process.ts';
import { fencedBlocks, readmeSection } from '../helpers/readme.ts';

const run = promisify(execFile);
const section = (): string => readmeSection('### Bring your own keys/issuer\n');

const dir = mkdtempSync(join(tmpdir(), 'regate-readme-keys-'));
after(() => rmSync(dir, { recursive: true, force: true }));

before(async () => {
  // What `npm run build:policy` leaves behind, which the section's config points at.
  await run(process.execPath, [join(repoRoot, 'scripts', 'build-policy.mjs'), 'examples/quickstart'], { cwd: repoRoot, maxBuffer: 16 * 1024 * 1024 });
  symlinkSync(join(repoRoot, 'examples'), join(dir, 'examples'));
});

describe('README: Bring your own keys/issuer', () => {
  it('generates keys, passes check and mints a token that verifies with the generated JWKS', async () => {
    const text = section();
    const sh = fencedBlocks(text, 'sh');
    const yaml = fencedBlocks(text, 'yaml');
    assert.equal(sh.length, 2, 'two command blocks: generate, then check + token');
    assert.equal(yaml.length, 1);
    const [configPath] = /^# (\S+)\n/.exec(yaml[0]!)!.slice(1);
    const regate = `${JSON.stringify(process.execPath)} ${JSON.stringify(cliPath)}`;
    const script = [
      'set -euo pipefail',
      sh[0]!.replaceAll('npm run -s regate --', regate),
      `cat > ${configPath} <<'YAML'\n${yaml[0]}YAML`,
      sh[1]!.replaceAll('npm run -s regate --', regate),
      'printf %s "$TOKEN" > token.txt',
    ].join('\n');
    const { stdout } = await run('bash', ['-c', script], { cwd: dir, timeout: 120_000 });
    assert.match(stdout, /^ok: /m, 'regate check passed');

    const token = readFileSync(join(dir, 'token.txt'), 'utf8');
    const kid = /--kid (\S+)/.exec(sh[0]!)![1];
    assert.equal(decodeProtectedHeader(token).kid, kid);
    const jwks = JSON.parse(readFileSync(join(dir, 'mine', 'jwks.json'), 'utf8'));
    const { payload } = await jwtVerify(token, createLocalJWKSet(jwks), { issuer: 'https://issuer.mine.example', audience: 'sentiment-api' });
    assert.equal(payload.sub, 'alice');
    assert.deepEqual(payload.realm_access, { roles: ['data_scientist'] });
  });
});
