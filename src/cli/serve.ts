import cluster from 'node:cluster';
import { pino, type Logger } from 'pino';
import { resolveWorkers, runPrimary } from '../cluster/primary.ts';
import { serveWorkerChannel, workerSignals } from '../cluster/worker.ts';
import { loadConfig } from '../config/load.ts';
import type { Config } from '../config/types.ts';
import { handleSignals, ignoreHangupDuringStartup } from '../lifecycle/signals.ts';
import { ReloadManager } from '../lifecycle/reload.ts';
import { gracefulShutdown } from '../lifecycle/shutdown.ts';
import { createMetrics, type Metrics } from '../observe/metrics.ts';
import { VERSION } from '../version.ts';
import { RegateServer } from '../server.ts';
import { compactHeap } from '../lifecycle/compact.ts';
import { parse, reportConfigErrors, UsageError } from './common.ts';

const USAGE = 'usage: regate serve --config FILE';

/**
 * `regate serve`: validate everything, load the policy and keys, then listen.
 * Operational logs (startup, reloads, errors) go to stderr as JSON; decision
 * logs go where `decision_log.destination` says (stdout by default), one line
 * per request. SIGHUP reloads; SIGTERM / SIGINT shut down gracefully (exit 0).
 */
export async function runServe(argv: string[]): Promise<number> {
  const root = pino({ name: 'regate', level: process.env.REGATE_LOG_LEVEL ?? 'info' }, pino.destination(2));
  // Cluster mode (`workers` > 1): this process is either the primary or one of its workers.
  const worker = cluster.isWorker;
  const logger = worker ? root.child({ worker: cluster.worker?.id }) : root;
  ignoreHangupDuringStartup(() => logger.warn('SIGHUP during startup ignored: the configuration is being loaded now'));
  let serving: Serving;
  try {
    const { values } = parse(argv, { config: { type: 'string', short: 'c' } }, USAGE);
    if (!values.config) throw new UsageError(`--config is required\n\n${USAGE}`);
    const config = await loadConfig(values.config);
    const workers = worker ? 1 : resolveWorkers(config.workers);
    if (workers > 1) {
      // The primary serves no traffic: what loading the config left behind need not stay.
      compactHeap();
      return await runPrimary({ config, workers, logger });
    }
    serving = await startServing(values.config, logger, { config, worker });
  } catch (err) {
    if (!worker) return reportConfigErrors(err);
    // A worker exits itself (its IPC channel would keep it alive); the primary sees the exit.
    try {
      process.exitCode = reportConfigErrors(err);
    } catch (unexpected) {
      process.stderr.write(`regate: ${unexpected instanceof Error ? unexpected.message : String(unexpected)}\n`);
      process.exitCode = 1;
    }
    process.exit();
  }
  if (worker) serveWorkerChannel({ registry: serving.metrics.registry, readiness: () => serving.server.readiness() }, serving.proxyUrl);

  handleSignals({
    reload: () => void serving.reloader.reload('signal'),
    shutdown: (signal) => {
      gracefulShutdown({ ...serving, logger }, signal).then(
        () => {
          logger.flush();
          process.exit(0);
        },
        (err: unknown) => {
          logger.error({ err }, 'error while stopping');
          logger.flush();
          process.exit(1);
        },
      );
    },
    forceExit: (signal) => {
      logger.warn({ signal }, 'second stop signal: exiting without waiting for in-flight requests');
      logger.flush();
      process.exit(1);
    },
  }, worker ? workerSignals() : process);
  return 0;
}

/** A running regate: what signals act on. */
export interface Serving {
  readonly server: RegateServer;
  readonly reloader: ReloadManager;
  /** Process-wide metrics (a cluster worker hands its registry to the primary). */
  readonly metrics: Metrics;
  /** The proxy listener's URL. */
  readonly proxyUrl: string;
}

/** Options of {@link startServing}. */
export interface StartOptions {
  /** The config already loaded from `configFile` (else it is loaded here). */
  readonly config?: Config;
  /** A cluster worker: no admin listener (the primary serves it). Default false. */
  readonly worker?: boolean;
}

/**
 * One complete regate in this process: config, metrics, bundle sources, the
 * first runtime (with local bundles; a remote bundle may arrive after
 * listening starts, until then the proxy answers 503), then the listeners.
 * Rejects with ConfigErrors for a broken startup version, with nothing left running.
 */
export async function startServing(configFile: string, logger: Logger, options: StartOptions = {}): Promise<Serving> {
  const config = options.config ?? (await loadConfig(configFile));
  // One metrics registry for the life of the process: reloads reconfigure it, never reset it.
  const metrics = createMetrics({ routeIds: [], bundle: { name: 'regate', revision: '' }, version: VERSION });
  const server = new RegateServer({ config, metrics, logger, adminListener: !options.worker });
  let proxyUrl = '';
  const reloader = new ReloadManager({ configFile, config, server, logger, metrics });
  try {
    await reloader.start();
    // Startup's garbage and grown young generation, gone before the first request (~20 MB idle RSS).
    compactHeap();
    proxyUrl = (await server.listen()).proxy;
  } catch (err) {
    await reloader.stop();
    await reloader.close();
    server.proxy.close();
    server.admin.close();
    throw err;
  }
  return { server, reloader, metrics, proxyUrl };
}
