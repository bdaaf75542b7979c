#!/usr/bin/env node
// npm run build:policy — compiles each example's Rego into an OPA wasm bundle.
//
// The entrypoints come from the example's own regate.yaml (policy.default_entrypoint
// plus every route's entrypoint, shadow entrypoint included), so the bundle always
// carries exactly what the config asks for. The bundle revision is a content hash of
// the sources, so decision logs name the policy version that decided.
//
// Usage: node scripts/build-policy.mjs [example-dir ...]   (default: all examples)
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, renameSync, statSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { parse } from 'yaml';
import { examples, opaBin, root, run } from './lib.mjs';

function regoFiles(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...regoFiles(p));
    else if (/\.(rego|json)$/.test(name) && !name.endsWith('_test.rego')) out.push(p);
  }
  return out;
}

export function entrypointsOf(config) {
  const eps = new Set();
  if (config.policy?.default_entrypoint) eps.add(config.policy.default_entrypoint);
  for (const r of config.routes ?? []) {
    if (r.entrypoint) eps.add(r.entrypoint);
    if (r.shadow?.entrypoint) eps.add(r.shadow.entrypoint);
  }
  if (config.broker?.entrypoint) eps.add(config.broker.entrypoint);
  return [...eps];
}

export function buildExample(dir) {
  const configFile = join(dir, 'regate.yaml');
  const config = parse(readFileSync(configFile, 'utf8'));
  const out = resolve(dir, config.policy.bundle);
  const sources = [join(dir, 'policy'), join(root, 'rego')];
  const hash = createHash('sha256');
  for (const src of sources) for (const f of regoFiles(src)) hash.update(relative(root, f)).update(readFileSync(f));
  // Named from the folder, wherever it is (examples/quickstart and ~/mine/quickstart alike give quickstart-…).
  const revision = `${basename(dir)}-${hash.digest('hex').slice(0, 12)}`;
  mkdirSync(dirname(out), { recursive: true });
  // Build beside the bundle and rename over it: a regate (or `regate eval`) reading the
  // bundle meanwhile sees the old file or the new one, never a half-written gzip.
  const tmp = `${out}.${process.pid}.tmp`;
  const args = ['build', '-t', 'wasm', '--ignore', '*_test.rego', '--revision', revision, '-o', tmp];
  for (const ep of entrypointsOf(config)) args.push('-e', ep);
  run(opaBin(), [...args, ...sources]);
  renameSync(tmp, out);
  console.log(`built ${relative(root, out)} (revision ${revision})`);
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const dirs = process.argv.length > 2 ? process.argv.slice(2).map((d) => resolve(d)) : examples();
  for (const dir of dirs) buildExample(dir);
}
