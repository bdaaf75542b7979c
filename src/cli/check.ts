import { pino } from 'pino';
import { Discovery } from '../authn/discovery.ts';
import { Introspector } from '../authn/introspection.ts';
import { createKeySource } from '../authn/jwks.ts';
import { buildIssuerConfig, buildPolicyConfig, type RawConfig } from '../config/defaults.ts';
import { inspectConfig, type Problems } from '../config/load.ts';
import type { Config, PolicyConfig } from '../config/types.ts';
import { BundleError, ConfigError, ConfigErrors } from '../errors.ts';
import type { Bundle } from '../policy/bundle.ts';
import { NO_REVISION_WARNING } from '../policy/intake.ts';
import { loadPolicyBundle } from '../policy/source.ts';
import { createRuntime, loadPolicyFor, type PolicyBundles, type PolicyFitConfig } from '../runtime.ts';
import { parse, reportConfigErrors, UsageError } from './common.ts';

const USAGE = 'usage: regate check --config FILE';

/**
 * `regate check`: everything `serve` validates before it listens — schema,
 * cross references, referenced files, policy bundle, entrypoints, builtins,
 * JWKS files — without serving, and every independent problem in one run,
 * each located in the YAML (`file:line:col: /key/path: problem`). Remote JWKS
 * endpoints are not contacted (they may be unreachable from CI); readiness
 * covers them at runtime.
 *
 * Stages depend on each other only where they must: YAML that cannot be read
 * stops everything; schema problems elsewhere do not stop the bundle from
 * being read and its entrypoints from being checked against the routes, as
 * long as the `policy` section itself is sound.
 */
export async function runCheck(argv: string[]): Promise<number> {
  try {
    const { values } = parse(argv, { config: { type: 'string', short: 'c' } }, USAGE);
    if (!values.config) throw new UsageError(`--config is required\n\n${USAGE}`);
    const { config, data, problems } = await inspectConfig(values.config);
    if (config !== undefined) {
      const summary = await checkRuntime(config, problems);
      if (summary !== undefined && !problems.any) {
        process.stdout.write(summary.text);
        if (summary.unrevisioned) process.stderr.write(`warning: ${NO_REVISION_WARNING}\n`);
        return 0;
      }
    } else if (data !== undefined) {
      await checkBundleDespiteProblems(values.config, data, problems);
    }
    problems.throwIfAny();
    return 0; // unreachable: no config means problems
  } catch (err) {
    return reportConfigErrors(err);
  }
}

/** Build the runtime `serve` would; its problems go into `problems`. The summary when it builds. */
async function checkRuntime(config: Config, problems: Problems): Promise<{ text: string; unrevisioned: boolean } | undefined> {
  try {
    const rt = await createRuntime(config, await readBundles(config), { logger: pino({ level: 'silent' }), offline: true });
    const entrypoints = new Set([config.policy.default_entrypoint, ...config.routes.map((r) => r.entrypoint).filter(Boolean)]);
    const text =
      `ok: ${config.source}\n` +
      `  routes: ${config.routes.length} (${config.routes.map((r) => r.id).join(', ')})\n` +
      `  issuers: ${config.issuers.length}\n` +
      `  policy: ${config.policy.bundle ?? config.policy.service?.url} (revision ${rt.policy.revision || 'none'}), entrypoints: ${[...entrypoints].join(', ')}\n` +
      (rt.candidatePolicy ? `  candidate: ${config.policy.candidate?.bundle} (revision ${rt.candidatePolicy.revision || 'none'})\n` : '');
    const unrevisioned = rt.policy.revision === '' || rt.candidatePolicy?.revision === '';
    await rt.close();
    return { text, unrevisioned };
  } catch (err) {
    addAll(problems, err, config.source, referencingKeys(config.issuers.map((i) => i.jwks_file)));
    return undefined;
  }
}

/** `file → /issuers/i/jwks_file`, to locate a problem inside a JWKS file at the key that names it. */
function referencingKeys(jwksFiles: readonly (string | undefined)[]): ReadonlyMap<string, string> {
  const keys = new Map<string, string>();
  jwksFiles.forEach((f, i) => f !== undefined && !keys.has(f) && keys.set(f, `/issuers/${i}/jwks_file`));
  return keys;
}

/**
 * The config has problems, but its `policy` section may be sound: then read
 * the local bundle (verified, as `serve` would) and check that every
 * entrypoint the routes name is compiled in, so those problems are reported
 * now rather than after the others are fixed. A bundle server is not
 * contacted for a config that cannot run anyway.
 */
async function checkBundleDespiteProblems(file: string, data: unknown, problems: Problems): Promise<void> {
  const raw = data as Partial<RawConfig>;
  checkKeyFilesDespiteProblems(file, raw, problems);
  const policyProblem = problems.errors().some((e) => e.keyPath === '/policy' || e.keyPath.startsWith('/policy/') || e.keyPath === '');
  if (policyProblem || typeof raw.policy !== 'object' || raw.policy === null || typeof raw.policy.bundle !== 'string') return;
  const routes = Array.isArray(raw.routes) ? raw.routes : [];
  // Routes whose entrypoint or shadow has a problem of its own are left out: that problem is already reported.
  const sound = (i: number, key: string): boolean => !problems.errors().some((e) => e.keyPath === `/routes/${i}/${key}` || e.keyPath.startsWith(`/routes/${i}/${key}/`));
  const fit: PolicyFitConfig = {
    source: file,
    policy: { default_entrypoint: raw.policy.default_entrypoint },
    routes: routes.map((r, i) => {
      const route = (typeof r === 'object' && r !== null ? r : {}) as Partial<Config['routes'][number]>;
      return {
        entrypoint: sound(i, 'entrypoint') && typeof route.entrypoint === 'string' ? route.entrypoint : undefined,
        shadow:
          sound(i, 'shadow') && typeof route.shadow?.entrypoint === 'string' ? { entrypoint: route.shadow.entrypoint, bundle: route.shadow.bundle ?? 'active' } : undefined,
      };
    }),
  };
  const policy: PolicyConfig = buildPolicyConfig(raw.policy, file);
  try {
    const active = await readBundle(file, policy, '/policy/bundle');
    const candidate = policy.candidate ? await readBundle(file, { ...policy, bundle: policy.candidate.bundle, service: undefined }, '/policy/candidate/bundle') : undefined;
    const checks = [loadPolicyFor(fit, active, 'active'), ...(candidate ? [loadPolicyFor(fit, candidate, 'candidate')] : [])];
    for (const r of await Promise.allSettled(checks)) if (r.status === 'rejected') addAll(problems, r.reason, file);
  } catch (err) {
    addAll(problems, err, file);
  }
}

/** The `jwks_file` and introspection credential file of every issuer without problems of its own are read and checked, as `serve` would. */
function checkKeyFilesDespiteProblems(file: string, raw: Partial<RawConfig>, problems: Problems): void {
  const issuers = Array.isArray(raw.issuers) ? raw.issuers : [];
  const known = problems.errors();
  issuers.forEach((issuer, i) => {
    const at = `/issuers/${i}`;
    if (known.some((e) => e.keyPath === at || e.keyPath.startsWith(`${at}/`))) return;
    if (typeof issuer?.jwks_file === 'string') {
      const config = buildIssuerConfig(issuer, i, file);
      try {
        createKeySource(config).close();
      } catch (err) {
        addAll(problems, err, file, new Map([[config.jwks_file!, `${at}/jwks_file`]]));
      }
    }
    // The introspection client's secret or key file: read and parsed as `serve` would (never printed).
    if (issuer?.introspection !== undefined && typeof issuer.introspection === 'object') {
      const config = buildIssuerConfig(issuer, i, file);
      try {
        new Introspector(config, { source: file, index: i, ...(config.discovery === true ? { discovery: new Discovery(config) } : {}) }).close();
      } catch (err) {
        addAll(problems, err, file);
      }
    }
  });
}

/**
 * Add the config problems in `err` (located by key path); rethrow anything
 * else. A problem in another file (a JWKS) is put at the config key that names
 * that file, its own location kept in the text.
 */
function addAll(problems: Problems, err: unknown, source: string, others: ReadonlyMap<string, string> = new Map()): void {
  const errors = err instanceof ConfigErrors ? err.errors : err instanceof ConfigError ? [err] : undefined;
  if (errors === undefined) throw err;
  for (const e of errors) {
    const at = e.file === source ? undefined : others.get(e.file);
    if (at !== undefined) problems.add(at, `${e.file}${e.keyPath ? `: ${e.keyPath}` : ''}: ${e.problem}`);
    else if (e.file === source || e.file === problems.file) problems.add(e.keyPath, e.problem);
    else problems.add('', e.message);
  }
}

/** One bundle, read and verified as `serve` would; a refusal is a problem at `keyPath`. */
async function readBundle(file: string, policy: PolicyConfig, keyPath: string): Promise<Bundle> {
  try {
    return await loadPolicyBundle(policy, { configFile: file });
  } catch (err) {
    if (err instanceof BundleError) throw new ConfigError(file, keyPath, err.message, { cause: err });
    throw err;
  }
}

/**
 * The bundles the config names, read and verified as `serve` would (`policy.signing`
 * included): the file, or one download from `policy.service`; and the candidate file.
 */
async function readBundles(config: Config): Promise<PolicyBundles> {
  const active = await readBundle(config.source, config.policy, config.policy.service ? '/policy/service' : '/policy/bundle');
  const c = config.policy.candidate;
  const candidate = c === undefined ? undefined : await readBundle(config.source, { ...config.policy, bundle: c.bundle, service: undefined }, '/policy/candidate/bundle');
  return { active, candidate };
}
