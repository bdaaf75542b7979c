/**
 * Cluster mode (`workers: N | auto`, N > 1): the primary process.
 *
 * The primary serves no proxy traffic. It forks N workers — each a complete
 * regate that shares the proxy port through node:cluster (the primary accepts
 * connections and hands them out round-robin; with keep-alive clients that is
 * once per connection, not per request) — and it:
 *
 * - serves the admin listener: /metrics aggregates every worker
 *   (src/cluster/aggregate.ts), /readyz is ready only when all N workers are
 *   listening and each says it is ready;
 * - restarts a worker that dies, after a backoff (100 ms, doubling up to 30 s;
 *   back to 100 ms once a worker has served for 30 s), and logs it. A worker
 *   that dies before the cluster ever became ready is a broken startup
 *   (invalid policy, port in use): the primary stops and exits 1, as a single
 *   process would;
 * - forwards SIGHUP to every worker (each reloads), and on SIGTERM / SIGINT
 *   sends SIGTERM to every worker, waits until all have drained and exited,
 *   then closes the admin listener and exits 0. A second stop signal is
 *   forwarded too (workers then exit at once) and the primary exits 1.
 */
import cluster, { type Worker } from 'node:cluster';
import type { AddressInfo } from 'node:net';
import { availableParallelism } from 'node:os';
import type { Logger } from 'pino';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { Config } from '../config/types.ts';
import { handleSignals } from '../lifecycle/signals.ts';
import { createAdminServer, type Readiness } from '../observe/admin.ts';
import { ask, ClusterRegistry } from './aggregate.ts';
import { isWorkerMessage } from './protocol.ts';

/** First restart delay after a crash. */
export const RESTART_MIN_MS = 100;
/** Longest restart delay. */
export const RESTART_MAX_MS = 30_000;
/** A worker that served this long before dying restarts after {@link RESTART_MIN_MS} again. */
export const HEALTHY_AFTER_MS = 30_000;

/** `workers` as configured → the number of processes. */
export function resolveWorkers(workers: number | 'auto'): number {
  return workers === 'auto' ? Math.max(1, availableParallelism()) : workers;
}

/** Delay before restarting a worker that crashed `failures` times in a row (1 = first crash). */
export function restartDelayMs(failures: number): number {
  return Math.min(RESTART_MAX_MS, RESTART_MIN_MS * 2 ** Math.max(0, failures - 1));
}

/** Options of {@link runPrimary}. */
export interface PrimaryOptions {
  /** The validated config (listen.admin, shutdown timing). Workers load the file themselves. */
  readonly config: Config;
  /** How many workers (resolved, ≥ 2). */
  readonly workers: number;
  readonly logger: Logger;
}

/** One worker position: the current process in it and its crash history. */
interface Slot {
  readonly index: number;
  worker: Worker | null;
  listening: boolean;
  listeningSince: number;
  failures: number;
  timer: NodeJS.Timeout | null;
}

/**
 * Run the primary until it is stopped. Resolves with the process exit code
 * only for a failed startup; after a successful start it exits the process
 * itself once the workers have drained.
 */
export async function runPrimary(options: PrimaryOptions): Promise<number> {
  const { config, workers: count, logger } = options;
  const slots: Slot[] = Array.from({ length: count }, (_, index) => ({ index, worker: null, listening: false, listeningSince: 0, failures: 0, timer: null }));
  let started = false;
  let stopping = false;
  let proxyUrl = '';

  const own = new Registry();
  collectDefaultMetrics({ register: own });
  const workersGauge = new Gauge({
    name: 'regate_cluster_workers',
    help: 'Worker processes currently listening on the proxy port (cluster mode).',
    registers: [own],
  });
  const restarts = new Counter({
    name: 'regate_cluster_worker_restarts_total',
    help: 'Workers restarted after they exited unexpectedly (cluster mode).',
    registers: [own],
  });
  restarts.inc(0);
  const listeningWorkers = (): Worker[] => slots.flatMap((s) => (s.listening && s.worker !== null ? [s.worker] : []));
  const updateGauge = (): void => workersGauge.set(listeningWorkers().length);
  updateGauge();

  const registry = new ClusterRegistry(own, listeningWorkers);
  const admin = createAdminServer({ registry, ready: () => clusterReadiness() });

  async function clusterReadiness(): Promise<Readiness> {
    if (stopping) return { ready: false, checks: { draining: false } };
    const up = listeningWorkers();
    const checks: Record<string, boolean> = { workers: up.length === count };
    const answers = await Promise.allSettled(up.map((w) => ask(w, 'regate:ready?', 'regate:ready')));
    for (const a of answers) {
      const r = a.status === 'fulfilled' ? a.value.readiness : false;
      if (typeof r === 'boolean') {
        checks.worker = (checks.worker ?? true) && r;
        continue;
      }
      // Every check must hold in every worker.
      for (const [name, ok] of Object.entries(r.checks)) checks[name] = (checks[name] ?? true) && ok;
      checks.worker = (checks.worker ?? true) && r.ready;
    }
    return { ready: Object.values(checks).every(Boolean), checks };
  }

  let resolveStartup!: (code: number) => void;
  const startup = new Promise<number>((resolve) => (resolveStartup = resolve));

  const fork = (slot: Slot): void => {
    slot.timer = null;
    slot.listening = false;
    const worker = cluster.fork({ REGATE_WORKER_INDEX: String(slot.index) });
    slot.worker = worker;
    worker.on('message', (message: unknown) => {
      if (!isWorkerMessage(message) || message.type !== 'regate:listening') return;
      slot.listening = true;
      slot.listeningSince = Date.now();
      proxyUrl ||= message.proxy;
      updateGauge();
      if (started) {
        logger.info({ worker: worker.id, pid: worker.process.pid, slot: slot.index }, 'worker restarted and listening');
      } else if (slots.every((s) => s.listening)) {
        started = true;
        resolveStartup(0);
      }
    });
    worker.on('exit', (code, signal) => onExit(slot, worker, code, signal));
  };

  const onExit = (slot: Slot, worker: Worker, code: number | null, signal: string | null): void => {
    if (slot.worker !== worker) return;
    const servedMs = slot.listening ? Date.now() - slot.listeningSince : 0;
    slot.worker = null;
    slot.listening = false;
    updateGauge();
    if (stopping) return;
    if (!started) {
      logger.error({ worker: worker.id, pid: worker.process.pid, code, signal }, 'a worker exited during startup: stopping');
      resolveStartup(1);
      return;
    }
    slot.failures = servedMs >= HEALTHY_AFTER_MS ? 1 : slot.failures + 1;
    const delay = restartDelayMs(slot.failures);
    restarts.inc();
    logger.error({ worker: worker.id, pid: worker.process.pid, code, signal, slot: slot.index, restart_in_ms: delay }, 'worker exited unexpectedly; restarting');
    slot.timer = setTimeout(() => fork(slot), delay);
  };

  const live = (): Worker[] => slots.flatMap((s) => (s.worker !== null && !s.worker.isDead() ? [s.worker] : []));
  const signalAll = (signal: NodeJS.Signals): void => {
    for (const w of live()) w.process.kill(signal);
  };
  const allExited = (): Promise<void> =>
    new Promise((resolve) => {
      const check = (): void => {
        if (live().length === 0) resolve();
        else setTimeout(check, 20);
      };
      check();
    });
  const stopTimers = (): void => {
    for (const s of slots) {
      if (s.timer !== null) clearTimeout(s.timer);
      s.timer = null;
    }
  };

  logger.info({ workers: count }, 'starting workers');
  const log = config.decision_log;
  if (log.enabled && (log.destination === 'stdout' || log.destination === 'stderr')) {
    // Each worker appends to the shared pipe in batches; a pipe keeps only writes of up to 4 KiB whole.
    logger.warn(
      { destination: log.destination, workers: count },
      'decision-log records of several workers share one pipe: under load a batch from one worker can split a line of another; use a file destination (appended whole by every worker) in cluster mode',
    );
  }
  for (const slot of slots) fork(slot);
  const code = await startup;
  if (code !== 0) {
    stopping = true;
    stopTimers();
    signalAll('SIGTERM');
    await Promise.race([allExited(), sleep(10_000)]);
    signalAll('SIGKILL');
    return code;
  }

  try {
    await new Promise<void>((resolve, reject) => {
      admin.once('error', reject);
      admin.listen(config.listen.admin.port, config.listen.admin.host, () => {
        admin.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    logger.error({ err: String(err) }, 'cannot listen on the admin address');
    stopping = true;
    signalAll('SIGTERM');
    await Promise.race([allExited(), sleep(config.shutdown.grace_ms + config.shutdown.drain_delay_ms + 5_000)]);
    return 1;
  }
  const a = admin.address() as AddressInfo;
  const adminUrl = `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
  logger.info({ proxy: proxyUrl, admin: adminUrl, workers: count }, 'listening');

  handleSignals({
    reload: () => {
      // Only workers that are up: SIGHUP would kill one still starting (no handler yet); it loads the file anyway.
      const up = listeningWorkers();
      logger.info({ workers: up.length }, 'SIGHUP: asking every worker to reload');
      for (const w of up) w.process.kill('SIGHUP');
    },
    shutdown: (signal) => {
      stopping = true;
      stopTimers();
      logger.info({ signal, workers: live().length }, 'shutting down: workers drain in-flight requests');
      signalAll('SIGTERM');
      // Each worker bounds its own drain (shutdown.grace_ms); this only guards against a stuck one.
      const deadline = config.shutdown.drain_delay_ms + config.shutdown.grace_ms + 10_000;
      void Promise.race([allExited().then(() => true), sleep(deadline).then(() => false)]).then(async (clean) => {
        if (!clean) {
          logger.error({ workers: live().length, deadline_ms: deadline }, 'workers did not stop in time: killing them');
          signalAll('SIGKILL');
        }
        await new Promise<void>((resolve) => admin.close(() => resolve()));
        admin.closeAllConnections();
        logger.info('stopped');
        logger.flush();
        process.exit(clean ? 0 : 1);
      });
    },
    forceExit: (signal) => {
      logger.warn({ signal }, 'second stop signal: workers exit without waiting for in-flight requests');
      signalAll('SIGTERM');
      void Promise.race([allExited(), sleep(2_000)]).then(() => {
        signalAll('SIGKILL');
        logger.flush();
        process.exit(1);
      });
    },
  });
  return 0;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
