// Per-request allocation from alloc-probe.mjs snapshots: node bench/lib/alloc-report.mjs <ALLOC_PROBE_DIR> [warmup s]
// For each process: from the first snapshot `warmup` seconds after its first request to the last
// snapshot at which it still served requests.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const [dir, warmupArg = '2'] = process.argv.slice(2);
const warmupMs = Number(warmupArg) * 1000;
for (const file of readdirSync(dir).filter((f) => f.endsWith('.json')).sort()) {
  const snaps = readFileSync(join(dir, file), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const first = snaps.find((s) => s.requests > 0);
  if (!first) continue;
  const from = snaps.find((s) => s.t >= first.t + warmupMs);
  let to = snaps.at(-1);
  for (let i = snaps.length - 1; i > 0; i--) if (snaps[i].requests !== snaps[i - 1].requests) { to = snaps[i]; break; }
  if (!from || to.requests - from.requests < 100) continue;
  const n = to.requests - from.requests;
  const per = (k) => (to[k] - from[k]) / n;
  console.log(JSON.stringify({
    pid: file.replace('.json', ''),
    requests: n,
    seconds: (to.t - from.t) / 1000,
    alloc_kb_per_req: +(per('allocated') / 1024).toFixed(2),
    promoted_kb_per_req: +(per('promoted') / 1024).toFixed(3),
    scavenges_per_1k: +(per('scavenges') * 1000).toFixed(2),
    mark_compacts_per_10k: +(per('markCompacts') * 10000).toFixed(2),
    rss_mb_max: +(Math.max(...snaps.filter((s) => s.t >= from.t && s.t <= to.t).map((s) => s.rss)) / 2 ** 20).toFixed(1),
  }));
}
