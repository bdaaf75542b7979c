import type { IncomingMessage } from 'node:http';
import type { Logger } from 'pino';
import { claimAt } from './authn/claims.ts';
import { createAuthenticator } from './authn/jwt.ts';
import type { Authenticator, Identity } from './authn/types.ts';
import { clockFrom, type Clock } from './clock.ts';
import type { Config, RouteConfig } from './config/types.ts';
import { ConfigError, ConfigErrors } from './errors.ts';
import { compileRoutes, type Router } from './http/router.ts';
import { TimeInputBuilder } from './input/time.ts';
import { createDecisionLog, type DecisionLog } from './observe/decision-log.ts';
import { createMetrics, type Metrics } from './observe/metrics.ts';
import { createObserver, type Observer } from './observe/record.ts';
import { readBundle } from './policy/bundle.ts';
import { hostBuiltins } from './policy/builtins/index.ts';
import type { Decision, PolicyEngine } from './policy/types.ts';
import { loadPolicyEngine } from './policy/wasm.ts';
import { compileHeaderPolicy, buildUpstreamHeaders } from './upstream/headers.ts';
import { createUpstream, type Upstream } from './upstream/forward.ts';
import type { Exchange } from './pipeline/exchange.ts';
import { VERSION } from './version.ts';

/** A route with everything the request path needs resolved at startup. */
export interface CompiledRoute {
  readonly config: RouteConfig;
  readonly entrypoint: string;
  readonly upstream: Upstream;
  /** The upstream request headers: scrubbed client headers + identity + policy headers. */
  upstreamHeaders(req: IncomingMessage, ex: Exchange, decision: Decision): Record<string, string | string[]>;
}

/**
 * One immutable version of everything compiled from a config + bundle.
 * The request path reads it and never changes it; a reload builds a new one.
 */
export interface Runtime {
  readonly config: Config;
  readonly router: Router;
  readonly authenticator: Authenticator;
  readonly policy: PolicyEngine;
  readonly observer: Observer;
  readonly metrics: Metrics;
  readonly clock: Clock;
  readonly time: TimeInputBuilder;
  readonly logger: Logger;
  route(id: string): CompiledRoute;
  /** Readiness: policy loaded (always, once built) and keys available for every issuer. */
  readiness(): { ready: boolean; checks: Record<string, boolean> };
  close(): Promise<void>;
}

export interface RuntimeOptions {
  readonly logger: Logger;
  /**
   * Process-wide metrics, created once and shared by every runtime version so a
   * reload never resets counters. Absent → a private registry (check / eval / tests).
   */
  readonly metrics?: Metrics;
  /** Override the clock (tests); default from config `clock.fixed` / `REGATE_CLOCK`, else system. */
  readonly clock?: Clock;
  /** Skip opening upstream pools and the decision log (`regate check` / `regate eval`). */
  readonly offline?: boolean;
}

/**
 * Loads the policy bundle and checks it against the config: every entrypoint
 * the config names must be compiled in, and every builtin the policy needs must
 * be implemented. Problems are ConfigErrors naming the config key.
 */
export async function loadPolicyFor(config: Config): Promise<PolicyEngine> {
  const bundle = await readBundle(config.policy.bundle);
  const engine = await loadPolicyEngine(bundle, { builtins: hostBuiltins() });
  const errors: ConfigError[] = [];
  const have = new Set(engine.entrypoints);
  const missing = (ep: string, key: string): void => {
    if (!have.has(ep)) {
      errors.push(
        new ConfigError(
          config.source,
          key,
          `entrypoint "${ep}" is not compiled into ${config.policy.bundle} (it has: ${engine.entrypoints.join(', ') || 'none'}); rebuild with opa build -e ${ep}`,
        ),
      );
    }
  };
  missing(config.policy.default_entrypoint, '/policy/default_entrypoint');
  config.routes.forEach((r, i) => r.entrypoint && missing(r.entrypoint, `/routes/${i}/entrypoint`));
  if (engine.unsupportedBuiltins.length > 0) {
    errors.push(
      new ConfigError(
        config.source,
        '/policy/bundle',
        `the policy uses builtins regate does not implement for wasm: ${engine.unsupportedBuiltins.join(', ')}`,
      ),
    );
  }
  if (errors.length > 0) throw new ConfigErrors(errors);
  return engine;
}

/** Compile a validated config into a runtime. Throws ConfigError(s) for a policy that does not fit. */
export async function createRuntime(config: Config, options: RuntimeOptions): Promise<Runtime> {
  const policy = await loadPolicyFor(config);
  const routeIds = config.routes.map((r) => r.id);
  const issuerIds = config.issuers.map((i) => i.id);
  const bundle = { name: 'regate', revision: policy.revision };
  const metrics = options.metrics ?? createMetrics({ routeIds, issuerIds, bundle, version: VERSION, defaultMetrics: false });
  metrics.configure({ routeIds, issuerIds });
  metrics.setBundle(bundle);
  const clock = options.clock ?? clockFrom(config.clock.fixed);
  const authenticator = createAuthenticator(config.issuers, {
    source: config.source,
    // The same clock decides token expiry and `input.time`: a frozen test clock freezes both.
    now: () => Number(clock.nowNs() / 1_000_000n) / 1000,
    onJwksRefresh: (issuer, result, err) => {
      metrics.jwksRefresh(issuer, result);
      if (err) options.logger.warn({ issuer, err: String(err) }, 'JWKS refresh failed; serving cached keys if any');
    },
  });
  const decisionLog: DecisionLog | null = options.offline
    ? null
    : createDecisionLog(config.decision_log, {
        bundles: () => ({ regate: { revision: policy.revision } }),
        version: VERSION,
        instanceId,
      }, { onError: () => metrics.decisionLogError() });
  const upstreams = new Map<string, Upstream>();
  if (!options.offline) {
    for (const [id, u] of Object.entries(config.upstreams)) upstreams.set(id, createUpstream(u));
  }
  const routes = new Map<string, CompiledRoute>();
  for (const r of config.routes) routes.set(r.id, compileRoute(config, r, upstreams));

  const observer: Observer = createObserver({
    metrics,
    decisionLog: decisionLog ?? { write() {} },
    onError: (err) => options.logger.error({ err }, 'recording a request outcome failed'),
  });

  return {
    config,
    router: compileRoutes(config.routes),
    authenticator,
    policy,
    observer,
    metrics,
    clock,
    time: new TimeInputBuilder(config.policy.timezone),
    logger: options.logger,
    route(id) {
      const r = routes.get(id);
      if (!r) throw new TypeError(`route ${id} was not compiled`);
      return r;
    },
    readiness() {
      const keys = authenticator.ready();
      return { ready: keys, checks: { config: true, policy: true, keys } };
    },
    async close() {
      authenticator.close();
      await Promise.allSettled([...upstreams.values()].map((u) => u.close()));
      await decisionLog?.close();
    },
  };
}

const instanceId = `regate-${process.pid}-${Date.now().toString(36)}`;

function compileRoute(config: Config, route: RouteConfig, upstreams: Map<string, Upstream>): CompiledRoute {
  const headerPolicy = compileHeaderPolicy(route);
  const identity = Object.entries(route.identity_headers).map(([name, source]) => [name, identitySource(source)] as const);
  const upstream = upstreams.get(route.upstream) ?? offlineUpstream(route.upstream);
  return {
    config: route,
    entrypoint: route.entrypoint ?? config.policy.default_entrypoint,
    upstream,
    upstreamHeaders(req, ex, decision) {
      const identityValues: Record<string, string> = {};
      for (const [name, get] of identity) {
        const v = get(ex.identity, ex);
        if (v !== undefined) identityValues[name] = v;
      }
      return buildUpstreamHeaders(req, {
        policy: headerPolicy,
        identityValues,
        decisionHeaders: decision.headers,
        requestId: ex.id,
        clientIp: ex.remoteAddr,
        proto: 'http',
        host: req.headers.host ?? '',
        forwardAuthorization: route.forward_authorization,
      });
    },
  };
}

type IdentitySource = (identity: Identity | null, ex: Exchange) => string | undefined;

/**
 * Compile an identity-header source (`subject.roles`, `token.realm_access.roles`, ...)
 * into a getter, once. Lists are joined with ","; values outside visible ASCII are
 * percent-encoded so a claim can never smuggle CR/LF or non-Latin-1 into a header.
 */
export function identitySource(source: string): IdentitySource {
  if (source === 'route.id') return (_i, ex) => ex.route?.config.id;
  if (source === 'decision.id') return (_i, ex) => ex.id;
  if (source.startsWith('token.')) {
    const path = source.slice('token.'.length);
    return (i) => (i ? headerValue(claimAt(i.claims, path)) : undefined);
  }
  const field = source.slice('subject.'.length) as 'sub' | 'iss' | 'tenant' | 'roles' | 'groups' | 'scopes';
  return (i) => (i ? headerValue(i[field]) : undefined);
}

function headerValue(v: unknown): string | undefined {
  let s: string;
  if (typeof v === 'string') s = v;
  else if (typeof v === 'number' || typeof v === 'boolean') s = String(v);
  else if (Array.isArray(v)) s = v.filter((x) => typeof x === 'string' || typeof x === 'number').join(',');
  else return undefined;
  if (s === '') return undefined;
  return /^[\x20-\x7e]*$/.test(s) ? s : encodeURIComponent(s);
}

/** `check`/`eval` build routes without pools: forwarding is a bug there. */
function offlineUpstream(id: string): Upstream {
  return {
    forward() {
      throw new TypeError(`upstream ${id} is not open in offline mode`);
    },
    async close() {},
  } as unknown as Upstream;
}
