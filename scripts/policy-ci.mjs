#!/usr/bin/env node
// npm run lint:policy — what CI runs on every policy directory:
//   opa fmt --list (must print nothing), opa check --strict, opa test.
import { spawnSync } from 'node:child_process';
import { relative } from 'node:path';
import { opaBin, policyDirs, root, run } from './lib.mjs';

const opa = opaBin();
for (const { name, dirs } of policyDirs()) {
  const unformatted = spawnSync(opa, ['fmt', '--list', ...dirs], { cwd: root, encoding: 'utf8' });
  if (unformatted.status !== 0 || unformatted.stdout.trim()) {
    console.error(`${name}: not formatted (run: opa fmt -w ${dirs.map((d) => relative(root, d)).join(' ')})\n${unformatted.stdout}${unformatted.stderr}`);
    process.exit(1);
  }
  run(opa, ['check', '--strict', ...dirs]);
  console.log(`# opa test ${name}`);
  run(opa, ['test', ...dirs]);
}
console.log('policy checks passed');
