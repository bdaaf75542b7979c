/**
 * The messages a cluster primary and its workers exchange over the node:cluster
 * IPC channel (`workers` > 1). Three questions and one announcement:
 *
 * - primary → worker `regate:metrics?` → worker `regate:metrics`: the worker's
 *   registry as `getMetricsAsJSON()`, for the primary to aggregate on /metrics;
 * - primary → worker `regate:ready?` → worker `regate:ready`: the worker's
 *   /readyz verdict, for the primary's /readyz;
 * - worker → primary `regate:listening`: the worker accepts proxy traffic (and
 *   answers the two questions from now on).
 *
 * Every question carries an `id` echoed in the answer, so a late answer to an
 * abandoned question is recognized and dropped.
 */
import type { Readiness } from '../observe/admin.ts';

/** A question from the primary. */
export type PrimaryMessage = { readonly type: 'regate:metrics?'; readonly id: number } | { readonly type: 'regate:ready?'; readonly id: number };

/** An answer or announcement from a worker. */
export type WorkerMessage =
  | { readonly type: 'regate:metrics'; readonly id: number; readonly metrics?: readonly unknown[]; readonly error?: string }
  | { readonly type: 'regate:ready'; readonly id: number; readonly readiness: Readiness }
  | { readonly type: 'regate:listening'; readonly proxy: string };

const WORKER_TYPES: ReadonlySet<string> = new Set(['regate:metrics', 'regate:ready', 'regate:listening']);
const PRIMARY_TYPES: ReadonlySet<string> = new Set(['regate:metrics?', 'regate:ready?']);

function typeOf(message: unknown): string | undefined {
  if (typeof message !== 'object' || message === null) return undefined;
  const type = (message as { type?: unknown }).type;
  return typeof type === 'string' ? type : undefined;
}

/** A message of ours from a worker (other libraries share the channel: prom-client, node's own). */
export function isWorkerMessage(message: unknown): message is WorkerMessage {
  const type = typeOf(message);
  return type !== undefined && WORKER_TYPES.has(type);
}

/** A question of ours from the primary. */
export function isPrimaryMessage(message: unknown): message is PrimaryMessage {
  const type = typeOf(message);
  return type !== undefined && PRIMARY_TYPES.has(type) && typeof (message as { id?: unknown }).id === 'number';
}
