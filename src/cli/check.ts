import { pino } from 'pino';
import { loadConfig } from '../config/load.ts';
import { createRuntime } from '../runtime.ts';
import { parse, reportConfigErrors, UsageError } from './common.ts';

const USAGE = 'usage: regate check --config FILE';

/**
 * `regate check`: everything `serve` validates before it listens — schema,
 * cross references, policy bundle, entrypoints, builtins, JWKS files — without
 * serving. Remote JWKS endpoints are not contacted (they may be unreachable
 * from CI); readiness covers them at runtime.
 */
export async function runCheck(argv: string[]): Promise<number> {
  try {
    const { values } = parse(argv, { config: { type: 'string', short: 'c' } }, USAGE);
    if (!values.config) throw new UsageError(`--config is required\n\n${USAGE}`);
    const config = await loadConfig(values.config);
    const rt = await createRuntime(config, { logger: pino({ level: 'silent' }), offline: true });
    const entrypoints = new Set([config.policy.default_entrypoint, ...config.routes.map((r) => r.entrypoint).filter(Boolean)]);
    process.stdout.write(
      `ok: ${config.source}\n` +
        `  routes: ${config.routes.length} (${config.routes.map((r) => r.id).join(', ')})\n` +
        `  issuers: ${config.issuers.length}\n` +
        `  policy: ${config.policy.bundle} (revision ${rt.policy.revision || 'none'}), entrypoints: ${[...entrypoints].join(', ')}\n`,
    );
    await rt.close();
    return 0;
  } catch (err) {
    return reportConfigErrors(err);
  }
}
