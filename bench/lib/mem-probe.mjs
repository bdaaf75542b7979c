// Memory probe: preload into a process under test (`--import`) to see where its
// RSS goes, at idle and under load:
//
//   BENCH_NODE_OPTIONS="--max-semi-space-size=16 --import=./bench/lib/mem-probe.mjs" \
//   MEM_PROBE_DIR=/tmp/mem npm run bench -- --only=c --duration=6
//   node bench/lib/mem-report.mjs /tmp/mem
//
// Every second (and once right after startup) it appends to MEM_PROBE_DIR/<pid>.json:
// the requests seen so far (diagnostics channel `http.server.request.start`),
// process.memoryUsage() (rss, heapTotal, heapUsed, external, arrayBuffers), V8's
// heap spaces (committed size of each), the threads of the process, and
// /proc/self/smaps_rollup (Rss, Anonymous, file-backed) — all in bytes.
import { subscribe } from 'node:diagnostics_channel';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { getHeapSpaceStatistics, getHeapCodeStatistics } from 'node:v8';
import { isMainThread } from 'node:worker_threads';

const dir = isMainThread ? process.env.MEM_PROBE_DIR : undefined;
if (dir) {
  mkdirSync(dir, { recursive: true });
  let requests = 0;
  subscribe('http.server.request.start', () => {
    requests++;
  });
  const rollup = () => {
    const out = {};
    try {
      for (const line of readFileSync('/proc/self/smaps_rollup', 'utf8').split('\n')) {
        const m = /^(\w+):\s+(\d+) kB/.exec(line);
        if (m) out[m[1]] = Number(m[2]) * 1024;
      }
    } catch {
      // not Linux
    }
    return out;
  };
  const threads = () => {
    try {
      return readdirSync('/proc/self/task').map((t) => readFileSync(`/proc/self/task/${t}/comm`, 'utf8').trim());
    } catch {
      return [];
    }
  };
  const sample = (label) => {
    const mu = process.memoryUsage();
    const spaces = Object.fromEntries(getHeapSpaceStatistics().map((s) => [s.space_name, { size: s.space_size, used: s.space_used_size }]));
    const code = getHeapCodeStatistics();
    const snap = { t: Date.now(), label, requests, ...mu, spaces, code, smaps: rollup(), threads: threads() };
    writeFileSync(join(dir, `${process.pid}.json`), `${JSON.stringify(snap)}\n`, { flag: 'a' });
  };
  setTimeout(() => sample('startup'), 1500).unref();
  setInterval(() => sample('tick'), 1000).unref();
}
