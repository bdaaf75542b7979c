/**
 * /metrics of a cluster primary: every worker's registry, fetched over IPC at
 * scrape time, plus the primary's own, merged by prom-client's
 * `AggregatorRegistry.aggregate` series by series with each metric's
 * `aggregator`:
 *
 * - counters and histograms (buckets, sum, count): `sum` — the cluster's totals;
 * - info gauges (`regate_policy_bundle_info`, `regate_build_info`): `max` — 1
 *   for every label set any worker has (during a rolling reload, both
 *   revisions show), never the number of workers;
 * - "last success" timestamps and `regate_config_reload_success`: `min` — the
 *   stalest worker, so an alert fires when any worker is behind;
 * - prom-client's process metrics: `sum` (CPU and memory of the whole process
 *   tree), `process_start_time_seconds` omitted, event-loop lag averaged.
 *
 * A worker's counters restart at 0 when it is restarted: Prometheus' `rate()`
 * and `increase()` treat that as a counter reset.
 *
 * Only workers that announced they are listening are asked (a worker still
 * starting has served nothing). If one of them does not answer within the
 * timeout, the scrape fails (500) rather than report totals that silently
 * lack a worker, which would read as a counter reset.
 */
import type { Worker } from 'node:cluster';
import { AggregatorRegistry, Registry } from 'prom-client';
import { isWorkerMessage, type WorkerMessage } from './protocol.ts';

/** Default time a worker has to answer one question. */
export const DEFAULT_ASK_TIMEOUT_MS = 2000;

let nextId = 1;

/**
 * Ask `worker` one question and resolve with its answer, or reject after
 * `timeoutMs` / when the worker exits first.
 */
export function ask<T extends WorkerMessage['type']>(
  worker: Worker,
  question: 'regate:metrics?' | 'regate:ready?',
  answer: T,
  timeoutMs: number = DEFAULT_ASK_TIMEOUT_MS,
): Promise<Extract<WorkerMessage, { type: T }>> {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    const done = (): void => {
      clearTimeout(timer);
      worker.off('message', onMessage);
      worker.off('exit', onExit);
    };
    const onMessage = (message: unknown): void => {
      if (!isWorkerMessage(message) || message.type !== answer || (message as { id?: number }).id !== id) return;
      done();
      resolve(message as Extract<WorkerMessage, { type: T }>);
    };
    const onExit = (): void => {
      done();
      reject(new Error(`worker ${worker.id} exited before answering`));
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`worker ${worker.id} did not answer ${question} within ${timeoutMs} ms`));
    }, timeoutMs);
    worker.on('message', onMessage);
    worker.on('exit', onExit);
    try {
      worker.send({ type: question, id });
    } catch (err) {
      done();
      reject(err instanceof Error ? err : new Error(String(err)));
    }
  });
}

/** A registry whose exposition is the whole cluster's. Give it to the admin server. */
export class ClusterRegistry extends Registry {
  readonly #own: Registry;
  readonly #workers: () => readonly Worker[];
  readonly #timeoutMs: number;

  /**
   * @param own the primary's registry (its process metrics, worker restarts).
   * @param workers the workers to ask, read at every scrape.
   */
  constructor(own: Registry, workers: () => readonly Worker[], timeoutMs: number = DEFAULT_ASK_TIMEOUT_MS) {
    super();
    this.#own = own;
    this.#workers = workers;
    this.#timeoutMs = timeoutMs;
  }

  /** The merged registry of this instant (tests read values from it). */
  async collect(): Promise<Registry> {
    const answers = await Promise.all(this.#workers().map((w) => ask(w, 'regate:metrics?', 'regate:metrics', this.#timeoutMs)));
    const all: unknown[][] = [await this.#own.getMetricsAsJSON()];
    for (const a of answers) {
      if (a.error !== undefined || a.metrics === undefined) throw new Error(`a worker could not collect its metrics: ${a.error ?? 'no metrics'}`);
      all.push([...a.metrics]);
    }
    return AggregatorRegistry.aggregate(all as Parameters<typeof AggregatorRegistry.aggregate>[0]);
  }

  override async metrics(): Promise<string> {
    return (await this.collect()).metrics();
  }

  /** The merged values (what the OpenMetrics rendering of /metrics reads: src/observe/exposition.ts). */
  override async getMetricsAsJSON(): Promise<Awaited<ReturnType<Registry['getMetricsAsJSON']>>> {
    return (await this.collect()).getMetricsAsJSON();
  }
}
