import { pino } from 'pino';
import { loadConfig } from '../config/load.ts';
import type { Config } from '../config/types.ts';
import { BundleError, ConfigError } from '../errors.ts';
import type { Bundle } from '../policy/bundle.ts';
import { NO_REVISION_WARNING } from '../policy/intake.ts';
import { loadPolicyBundle } from '../policy/source.ts';
import { createRuntime, type PolicyBundles } from '../runtime.ts';
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
    const rt = await createRuntime(config, await readBundles(config), { logger: pino({ level: 'silent' }), offline: true });
    const entrypoints = new Set([config.policy.default_entrypoint, ...config.routes.map((r) => r.entrypoint).filter(Boolean)]);
    process.stdout.write(
      `ok: ${config.source}\n` +
        `  routes: ${config.routes.length} (${config.routes.map((r) => r.id).join(', ')})\n` +
        `  issuers: ${config.issuers.length}\n` +
        `  policy: ${config.policy.bundle ?? config.policy.service?.url} (revision ${rt.policy.revision || 'none'}), entrypoints: ${[...entrypoints].join(', ')}\n` +
        (rt.candidatePolicy ? `  candidate: ${config.policy.candidate?.bundle} (revision ${rt.candidatePolicy.revision || 'none'})\n` : ''),
    );
    if (rt.policy.revision === '' || rt.candidatePolicy?.revision === '') process.stderr.write(`warning: ${NO_REVISION_WARNING}\n`);
    await rt.close();
    return 0;
  } catch (err) {
    return reportConfigErrors(err);
  }
}

/**
 * The bundles the config names, read and verified as `serve` would (`policy.signing`
 * included): the file, or one download from `policy.service`; and the candidate file.
 */
async function readBundles(config: Config): Promise<PolicyBundles> {
  const load = async (policy: Config['policy'], keyPath: string): Promise<Bundle> => {
    try {
      return await loadPolicyBundle(policy, { configFile: config.source });
    } catch (err) {
      if (err instanceof BundleError) throw new ConfigError(config.source, keyPath, err.message, { cause: err });
      throw err;
    }
  };
  const active = await load(config.policy, config.policy.service ? '/policy/service' : '/policy/bundle');
  const c = config.policy.candidate;
  const candidate = c === undefined ? undefined : await load({ ...config.policy, bundle: c.bundle, service: undefined }, '/policy/candidate/bundle');
  return { active, candidate };
}
