/**
 * scripts/build-policy.mjs on a policy folder outside examples/: the bundle is
 * built where its regate.yaml says, and its revision is named from the folder.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { readBundle } from '../../../src/policy/bundle.ts';
import { repoRoot } from '../../helpers/opa.ts';

const parent = mkdtempSync(join(tmpdir(), 'regate-build-policy-'));
after(() => rmSync(parent, { recursive: true, force: true }));

describe('scripts/build-policy.mjs', () => {
  it('names the revision of a folder outside examples/ from the folder, not from a relative path', async () => {
    const mine = join(parent, 'mine');
    cpSync(join(repoRoot, 'examples', 'quickstart', 'regate.yaml'), join(mine, 'regate.yaml'));
    cpSync(join(repoRoot, 'examples', 'quickstart', 'policy'), join(mine, 'policy'), { recursive: true });
    const r = spawnSync(process.execPath, [join(repoRoot, 'scripts', 'build-policy.mjs'), mine], { cwd: repoRoot, encoding: 'utf8', timeout: 120_000 });
    assert.equal(r.status, 0, r.stderr);
    const bundle = await readBundle(join(mine, 'build', 'bundle.tar.gz'));
    assert.match(bundle.manifest.revision, /^mine-[0-9a-f]{12}$/);
    assert.ok(r.stdout.includes(`(revision ${bundle.manifest.revision})`), r.stdout);
  });
});
