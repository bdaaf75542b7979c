// Top allocation sites of a sampling heap profile: node bench/lib/heapprof-top.mjs <file.heapprofile> [n]
import { readFileSync } from 'node:fs';

const [file, nArg = '30'] = process.argv.slice(2);
const profile = JSON.parse(readFileSync(file, 'utf8'));
const bySite = new Map();
let total = 0;
const walk = (node, stack) => {
  const f = node.callFrame;
  const here = `${f.functionName || '(anon)'} ${f.url.replace(/^.*\/(node_modules|src|dist)\//, '$1/')}:${f.lineNumber + 1}`;
  const next = [...stack, here];
  if (node.selfSize > 0) {
    total += node.selfSize;
    const key = next.slice(-4).reverse().join(' < ');
    bySite.set(key, (bySite.get(key) ?? 0) + node.selfSize);
  }
  for (const c of node.children) walk(c, next);
};
walk(profile.head, []);
console.log(`total sampled ${(total / 2 ** 20).toFixed(1)} MiB`);
for (const [k, v] of [...bySite].sort((a, b) => b[1] - a[1]).slice(0, Number(nArg))) console.log(`${((v / total) * 100).toFixed(1).padStart(5)}%  ${k}`);
