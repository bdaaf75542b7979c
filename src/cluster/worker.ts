/**
 * The worker side of cluster mode (`workers` > 1): each worker is a complete
 * regate (its own runtime, reloads, token cache, decision log and graceful
 * shutdown) that binds only the proxy port, shared through node:cluster, and
 * answers its primary's questions about metrics and readiness.
 */
import cluster from 'node:cluster';
import { EventEmitter } from 'node:events';
import type { Registry } from 'prom-client';
import type { Readiness } from '../observe/admin.ts';
import { isPrimaryMessage, type WorkerMessage } from './protocol.ts';

/** True in a process forked by a regate cluster primary. */
export function isClusterWorker(): boolean {
  return cluster.isWorker;
}

/** What a worker exposes to its primary. */
export interface WorkerChannelOptions {
  /** The worker's process-wide registry (aggregated by the primary on /metrics). */
  readonly registry: Registry;
  /** The worker's /readyz verdict. */
  readiness(): Readiness;
}

function send(message: WorkerMessage): void {
  // The primary may be gone (it is exiting, or was killed): then so are we, soon.
  if (process.connected) process.send?.(message);
}

/**
 * Answer the primary's questions from now on, then announce that the proxy
 * listener is up. Returns a function that stops answering.
 */
export function serveWorkerChannel(options: WorkerChannelOptions, proxyUrl: string): () => void {
  const onMessage = (message: unknown): void => {
    if (!isPrimaryMessage(message)) return;
    if (message.type === 'regate:ready?') {
      let readiness: Readiness;
      try {
        readiness = options.readiness();
      } catch {
        readiness = false;
      }
      send({ type: 'regate:ready', id: message.id, readiness });
      return;
    }
    options.registry.getMetricsAsJSON().then(
      (metrics) => send({ type: 'regate:metrics', id: message.id, metrics }),
      (err: unknown) => send({ type: 'regate:metrics', id: message.id, error: err instanceof Error ? err.message : String(err) }),
    );
  };
  process.on('message', onMessage);
  send({ type: 'regate:listening', proxy: proxyUrl });
  return () => process.off('message', onMessage);
}

/**
 * The signals a worker acts on. Ctrl-C in a terminal sends SIGINT to the whole
 * process group, primary and workers alike; if workers acted on it, the
 * primary's forwarded SIGTERM would be their second stop signal and cut their
 * drain short. So a worker ignores SIGINT and stops on the SIGTERM its primary
 * forwards (for SIGTERM and SIGINT alike); SIGHUP reloads as in a single process.
 *
 * Returns an emitter to give `handleSignals` in place of `process`.
 */
export function workerSignals(proc: NodeJS.Process = process): NodeJS.Process {
  const signals = new EventEmitter();
  proc.on('SIGINT', () => {});
  proc.on('SIGTERM', () => signals.emit('SIGTERM', 'SIGTERM'));
  proc.on('SIGHUP', () => signals.emit('SIGHUP', 'SIGHUP'));
  return signals as unknown as NodeJS.Process;
}
