/**
 * Graceful shutdown, in the order that loses nothing:
 *
 * 1. stop reloading (no version is swapped in while draining);
 * 2. /readyz turns 503; after `shutdown.drain_delay_ms` the proxy listener
 *    closes (new connections are refused); in-flight requests get
 *    `shutdown.grace_ms` to finish, then whatever still runs (an SSE stream)
 *    is cut — the pipeline still writes its decision-log record;
 * 3. every runtime closes: upstream pools, JWKS timers, and the decision logs,
 *    flushed to their destination;
 * 4. the admin listener closes.
 *
 * The `shutdown` settings are read from the running config, so they are
 * hot-reloadable like the rest.
 */

import type { Logger } from 'pino';
import type { RegateServer } from '../server.ts';
import type { ReloadManager } from './reload.ts';

export interface ShutdownParts {
  readonly server: RegateServer;
  readonly reloader: ReloadManager;
  readonly logger: Logger;
}

/** Run the shutdown sequence; resolves when everything is closed and flushed (then exit 0). */
export async function gracefulShutdown(parts: ShutdownParts, signal: NodeJS.Signals): Promise<void> {
  const { server, reloader, logger } = parts;
  const { grace_ms: graceMs, drain_delay_ms: drainDelayMs } = reloader.config.shutdown;
  logger.info({ signal, grace_ms: graceMs, drain_delay_ms: drainDelayMs }, 'shutting down: readiness is false, draining in-flight requests');
  await reloader.stop();
  await server.drain({ graceMs, drainDelayMs });
  await reloader.close();
  await server.closeAdmin();
  logger.info('stopped');
}
