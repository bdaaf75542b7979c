import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { atLeast, NODE_FLOOR } from '../../../src/cli/node-floor.ts';
import { repoRoot } from '../../helpers/opa.ts';

const read = (rel: string) => readFileSync(join(repoRoot, rel), 'utf8');

describe('Node version floor', () => {
  it('compares dotted versions part by part, numerically', () => {
    assert.equal(atLeast('22.19.0', '22.19.0'), true);
    assert.equal(atLeast('22.19.1', '22.19.0'), true);
    assert.equal(atLeast('22.20.0', '22.19.0'), true);
    assert.equal(atLeast('24.0.0', '22.19.0'), true);
    assert.equal(atLeast('100.0.0', '22.19.0'), true);
    assert.equal(atLeast('22.18.9', '22.19.0'), false);
    assert.equal(atLeast('22.9.0', '22.19.0'), false, 'numeric, not lexicographic');
    assert.equal(atLeast('22.12.0', '22.19.0'), false);
    assert.equal(atLeast('20.20.2', '22.19.0'), false);
    assert.equal(atLeast('3.0.0', '22.19.0'), false);
  });

  it('is the highest engines.node floor among the runtime dependencies', () => {
    const lock = JSON.parse(read('package-lock.json')) as { packages: Record<string, { dev?: boolean; engines?: { node?: string } }> };
    let highest = '0.0.0';
    for (const [path, pkg] of Object.entries(lock.packages)) {
      if (path === '' || pkg.dev) continue;
      // Floors are written ">=22.19.0", ">= 14.6", "^16 || ^18 || >=20": the last alternative's lower bound.
      const range = pkg.engines?.node?.split('||').pop()?.trim();
      const m = range && /^(?:>=|\^)?\s*(\d+(?:\.\d+)*)/.exec(range);
      if (m && !atLeast(highest, m[1]!)) highest = m[1]!;
    }
    assert.ok(atLeast(NODE_FLOOR, highest), `a dependency needs Node >= ${highest}, above NODE_FLOOR ${NODE_FLOOR}`);
  });

  it('is stated identically in package.json, the scripts, README and architecture.md', () => {
    const pkg = JSON.parse(read('package.json')) as { engines: { node: string } };
    assert.equal(pkg.engines.node, `>=${NODE_FLOOR}`);
    const [major, minor] = NODE_FLOOR.split('.');
    assert.match(read('scripts/install-tools.sh'), new RegExp(`"\\$major" -gt ${major} \\] \\|\\| \\{ \\[ "\\$major" -eq ${major} \\] && \\[ "\\$minor" -ge ${minor} \\]`));
    assert.ok(read('scripts/install-tools.sh').includes(`>= ${NODE_FLOOR}`), 'install-tools.sh comment');
    assert.ok(read('scripts/regate.sh').includes(NODE_FLOOR), 'regate.sh comment');
    assert.ok(read('README.md').includes(`Node.js ≥ ${NODE_FLOOR}`), 'README Requirements');
    assert.ok(read('docs/architecture.md').includes(`Node ≥ ${NODE_FLOOR}`), 'architecture.md conventions');
    for (const [file, text] of [['README.md', read('README.md')], ['docs/architecture.md', read('docs/architecture.md')]] as const) {
      assert.doesNotMatch(text, /22\.12/, `${file} still names the old floor`);
    }
  });
});
