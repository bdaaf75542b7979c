// Allocation probe: preload into a process under test (`--import`) to count,
// deterministically whatever the machine's load, what it allocates and
// promotes per HTTP request:
//
//   BENCH_NODE_OPTIONS="--max-semi-space-size=16 --import=./bench/lib/alloc-probe.mjs" \
//   ALLOC_PROBE_DIR=/tmp/probe npm run bench -- --only=b,c --quick
//
// Every second it writes ALLOC_PROBE_DIR/<pid>.json with cumulative counters:
// requests (diagnostics channel `http.server.request.start`), bytes allocated
// on the JS heap (from V8's GC profiler: what each GC found used minus what the
// previous one left, plus the growth since), bytes promoted to old space by
// scavenges, and the number of scavenges and mark-compacts. Rates are the
// difference of two snapshots (bench/lib/alloc-report.mjs); the warm-up is
// excluded by taking the first snapshot after it.
import { subscribe } from 'node:diagnostics_channel';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GCProfiler, getHeapStatistics } from 'node:v8';
import { isMainThread } from 'node:worker_threads';

// NODE_OPTIONS reach worker threads too (the decision log's writer): measure the main thread only.
const dir = isMainThread ? process.env.ALLOC_PROBE_DIR : undefined;
if (dir) {
  mkdirSync(dir, { recursive: true });
  let requests = 0;
  subscribe('http.server.request.start', () => {
    requests++;
  });
  const totals = { allocated: 0, promoted: 0, scavenges: 0, markCompacts: 0 };
  let lastUsed = getHeapStatistics().used_heap_size;
  const oldUsed = (spaces) => spaces.filter((s) => s.spaceName === 'old_space' || s.spaceName === 'large_object_space').reduce((n, s) => n + s.spaceUsedSize, 0);
  let profiler = new GCProfiler();
  profiler.start();
  const sample = () => {
    const data = profiler.stop();
    profiler = new GCProfiler();
    profiler.start();
    for (const gc of data?.statistics ?? []) {
      totals.allocated += Math.max(0, gc.beforeGC.heapStatistics.usedHeapSize - lastUsed);
      lastUsed = gc.afterGC.heapStatistics.usedHeapSize;
      if (gc.gcType === 'Scavenge' || gc.gcType === 'MinorMarkSweep') {
        totals.scavenges++;
        totals.promoted += Math.max(0, oldUsed(gc.afterGC.heapSpaceStatistics) - oldUsed(gc.beforeGC.heapSpaceStatistics));
      } else if (gc.gcType === 'MarkSweepCompact') totals.markCompacts++;
    }
    const used = getHeapStatistics().used_heap_size;
    const snap = { t: Date.now(), requests, ...totals, allocated: totals.allocated + Math.max(0, used - lastUsed), rss: process.memoryUsage.rss() };
    writeFileSync(join(dir, `${process.pid}.json`), `${JSON.stringify(snap)}\n`, { flag: 'a' });
  };
  setInterval(sample, 1000).unref();
}

// ALLOC_PROBE_HEAPPROF=<file>: sample allocations (every 4 KiB) of the objects that survived the
// young generation — kept by the profile when a mark-compact collects them, dropped when a
// scavenge does — from 3 s to 8 s after the process's first request, into <file> (a
// .heapprofile, readable by Chrome DevTools or bench/lib/heapprof-top.mjs).
const heapProf = isMainThread ? process.env.ALLOC_PROBE_HEAPPROF : undefined;
if (heapProf) {
  const { Session } = await import('node:inspector/promises');
  const session = new Session();
  session.connect();
  let started = false;
  subscribe('http.server.request.start', () => {
    if (started) return;
    started = true;
    setTimeout(async () => {
      await session.post('HeapProfiler.startSampling', { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: false });
      setTimeout(async () => {
        const { profile } = await session.post('HeapProfiler.stopSampling');
        writeFileSync(heapProf, JSON.stringify(profile));
      }, 5000).unref();
    }, 3000).unref();
  });
}
