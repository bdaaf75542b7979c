// Per-process resource accounting from /proc (Linux): CPU time (utime + stime)
// and resident memory, for the processes under test, sampled by the
// orchestrator around the load generator's measured window.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/** Clock ticks per second for /proc/<pid>/stat (almost always 100). */
export const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** utime + stime of `pid`, in µs; null once the process is gone. */
export function cpuMicros(pid) {
  let stat;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // The command name is in parentheses and may contain spaces: split after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // After the name: state is field 3 → index 0; utime is field 14 → index 11, stime 15 → 12.
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks * 1e6) / CLK_TCK;
}

/**
 * CPU µs of each thread of `pid`, summed by thread name (`node` is the main
 * thread; `V8Worker`, `libuv-worker`, ... are GC, compiler and I/O helpers).
 */
export function threadCpuMicros(pid) {
  const out = {};
  let tids;
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const name = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const key = tid === String(pid) ? 'main' : name.replace(/[0-9]+$/, '').trim() || name;
      out[key] = (out[key] ?? 0) + ((Number(fields[11]) + Number(fields[12])) * 1e6) / CLK_TCK;
    } catch {
      // thread exited between readdir and read
    }
  }
  return out;
}

/** Resident set size and its high-water mark of `pid`, in MiB; null once gone. */
export function rssMiB(pid) {
  let status;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return null;
  }
  const kb = (key) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  // RssAnon is the process's own memory; RssFile is mostly the node binary's pages, shared between processes.
  return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024, anon: kb('RssAnon') / 1024, file: kb('RssFile') / 1024 };
}

/** Direct children of `pid` (cluster workers of a primary). */
export function childPids(pid) {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** The machine, for the results file. */
export function machineInfo() {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? 'unknown';
  const nproc = Number(execFileSync('nproc', { encoding: 'utf8' }).trim());
  const mhz = /^cpu MHz\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim();
  const kernel = readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
  const loadavg = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).map(Number);
  return { nproc, cpu_model: model, cpu_mhz: mhz ? Number(mhz) : null, kernel, loadavg_before: loadavg };
}

/**
 * Samples RSS of a changing set of pids every `intervalMs`. `pids()` is called
 * on each tick, so restarted or late-forked workers are followed.
 */
export class RssSampler {
  constructor(pids, intervalMs = 250) {
    this.pids = pids;
    this.samples = []; // [{t, total, byPid}]
    this.t0 = Date.now();
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.sample();
  }
  sample() {
    const byPid = {};
    let total = 0;
    let anon = 0;
    for (const pid of this.pids()) {
      const m = rssMiB(pid);
      if (m === null) continue;
      byPid[pid] = m.rss;
      total += m.rss;
      anon += m.anon;
    }
    this.samples.push({ t: (Date.now() - this.t0) / 1000, total, anon, byPid });
  }
  stop() {
    clearInterval(this.timer);
    this.sample();
    const totals = this.samples.map((s) => s.total);
    const anons = this.samples.map((s) => s.anon);
    // Steady: median over the second half of the window, once warm.
    const steady = (xs) => {
      const second = xs.slice(Math.floor(xs.length / 2)).sort((a, b) => a - b);
      return round1(second[Math.floor(second.length / 2)] ?? NaN);
    };
    return {
      peak_mb: round1(Math.max(...totals)),
      steady_mb: steady(totals),
      anon_peak_mb: round1(Math.max(...anons)),
      anon_steady_mb: steady(anons),
      samples: this.samples.length,
    };
  }
}

export function round1(x) {
  return Math.round(x * 10) / 10;
}
