// Summarize bench/lib/mem-probe.mjs output: `node bench/lib/mem-report.mjs <dir>`.
// For each process: the idle sample (the first, before any request) and the
// peak-RSS sample taken while requests were arriving (under load), in MB.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.argv[2];
if (!dir) {
  process.stderr.write('usage: node bench/lib/mem-report.mjs <MEM_PROBE_DIR>\n');
  process.exit(2);
}
const mb = (n) => (n === undefined ? '-' : (n / 1048576).toFixed(1));
const row = (s) => {
  const sp = s.spaces;
  const size = (n) => sp[n]?.size;
  return [
    mb(s.rss),
    mb(s.smaps.Anonymous),
    mb(s.rss - (s.smaps.Anonymous ?? 0)),
    mb(s.heapTotal),
    mb(s.heapUsed),
    mb(size('new_space')),
    mb(size('old_space')),
    mb(size('code_space')),
    mb((size('large_object_space') ?? 0) + (size('code_large_object_space') ?? 0)),
    mb(s.external),
    mb(s.arrayBuffers),
    String(s.threads.length),
  ];
};
const head = ['rss', 'anon', 'file', 'heapTotal', 'heapUsed', 'new', 'old', 'code', 'large', 'external', 'arrayBuf', 'threads'];
for (const f of readdirSync(dir).filter((n) => n.endsWith('.json'))) {
  const samples = readFileSync(join(dir, f), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const idle = samples[0];
  const loaded = samples.filter((s, i) => i > 0 && s.requests > samples[i - 1].requests);
  const peak = loaded.reduce((a, s) => (a === undefined || s.rss > a.rss ? s : a), undefined);
  process.stdout.write(`${f} (${samples.length} samples, ${samples.at(-1).requests} requests)\n`);
  process.stdout.write(`| | ${head.join(' | ')} |\n|---|${head.map(() => '---:').join('|')}|\n`);
  process.stdout.write(`| idle | ${row(idle).join(' | ')} |\n`);
  if (peak) process.stdout.write(`| load (peak rss) | ${row(peak).join(' | ')} |\n`);
  process.stdout.write(`threads: ${idle.threads.join(', ')}\n\n`);
}
