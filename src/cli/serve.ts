import { pino } from 'pino';
import { loadConfig } from '../config/load.ts';
import { createMetrics } from '../observe/metrics.ts';
import { createRuntime } from '../runtime.ts';
import { VERSION } from '../version.ts';
import { RegateServer } from '../server.ts';
import { parse, reportConfigErrors, UsageError } from './common.ts';

const USAGE = 'usage: regate serve --config FILE';

/**
 * `regate serve`: validate everything, load keys, then listen. Operational logs
 * (startup, errors) go to stderr as JSON; decision logs go where
 * `decision_log.destination` says (stdout by default), one line per request.
 */
export async function runServe(argv: string[]): Promise<number> {
  const logger = pino({ name: 'regate', level: process.env.REGATE_LOG_LEVEL ?? 'info' }, pino.destination(2));
  let server: RegateServer;
  try {
    const { values } = parse(argv, { config: { type: 'string', short: 'c' } }, USAGE);
    if (!values.config) throw new UsageError(`--config is required\n\n${USAGE}`);
    const config = await loadConfig(values.config);
    // One metrics registry for the life of the process: reloads reconfigure it, never reset it.
    const metrics = createMetrics({ routeIds: [], bundle: { name: 'regate', revision: '' }, version: VERSION });
    const runtime = await createRuntime(config, { logger, metrics });
    // Fetch remote keys before accepting traffic; failures leave /readyz false, not a crash.
    await runtime.authenticator.prefetch();
    server = new RegateServer(runtime, logger);
    await server.listen();
  } catch (err) {
    return reportConfigErrors(err);
  }

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down: draining in-flight requests');
    server.close().then(
      () => {
        logger.info('stopped');
        logger.flush();
        process.exit(0);
      },
      (err: unknown) => {
        logger.error({ err }, 'error while stopping');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  return 0;
}
