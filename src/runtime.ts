import type { Logger } from 'pino';
import { createResourceCatalog, type ResourceSource } from './attributes/catalog.ts';
import { pathTemplateParams } from './attributes/template.ts';
import { createAuthenticator } from './authn/jwt.ts';
import { TokenCache } from './authn/token-cache.ts';
import type { Authenticator, Identity } from './authn/types.ts';
import { clockFrom, type Clock } from './clock.ts';
import type { Config, RouteConfig } from './config/types.ts';
import { ConfigError, ConfigErrors, PolicyError } from './errors.ts';
import { compileRoutes, type Router } from './http/router.ts';
import { TimeInputBuilder } from './input/time.ts';
import { createDecisionLog, type DecisionLog } from './observe/decision-log.ts';
import type { LogSink } from './observe/log-writer.ts';
import { createMetrics, type Metrics } from './observe/metrics.ts';
import { createObserver, type Observer } from './observe/record.ts';
import type { Bundle } from './policy/bundle.ts';
import { hostBuiltins } from './policy/builtins/index.ts';
import type { PolicyEngine } from './policy/types.ts';
import { loadPolicyEngine, type EngineReset } from './policy/wasm.ts';
import { compileHeaderPolicy, strippedNames, type HeaderPolicy } from './upstream/headers.ts';
import { createUpstream, type Upstream, type UpstreamEvents } from './upstream/forward.ts';
import { TlsMaterialError } from './tls/server-context.ts';
import { escapePointer } from './config/problems.ts';
import { identitySource, type IdentityContext } from './upstream/identity-headers.ts';
import { compileShadow, type ShadowPolicy } from './policy/shadow.ts';
import type { DestinationStream } from 'pino';
import { VERSION } from './version.ts';
import type { SpanExporter } from './observe/tracing/otlp.ts';
import { createTracer, type Tracer } from './observe/tracing/tracer.ts';
import { Credential, CredentialFile, CredentialFileError, type CredentialEvents, type SecretSource } from './upstream/credentials.ts';
import { CredentialFiles } from './lifecycle/credential-files.ts';
import { createBroker, type Broker } from './broker/broker.ts';
import { SigningKeyError } from './signing/keys.ts';

/** A route with everything the request path needs resolved at startup. */
export interface CompiledRoute {
  readonly config: RouteConfig;
  readonly entrypoint: string;
  /** `dry_run`: the policy decides and is logged, but every decision is forwarded. */
  readonly dryRun: boolean;
  /** The candidate policy evaluated beside the enforced one (`shadow`), or null. */
  readonly shadow: ShadowPolicy | null;
  readonly upstream: Upstream;
  /** The upstream's configured URL, parsed once (the `upstream` span's `server.address`). */
  readonly upstreamUrl: URL;
  /** `input.time` in the route's `timezone` (else `policy.timezone`); one builder per distinct zone. */
  readonly time: TimeInputBuilder;
  /** The route's catalog lookup (`resource`), or null. */
  readonly resource: ResourceSource | null;
  /** Longest pause between two body chunks while reading a `body` route's body: `limits.body_idle_timeout_ms`. */
  readonly bodyIdleMs: number;
  /**
   * The route's header rules, compiled once: which client fields reach the
   * upstream (and so the policy input), which names are identity headers.
   */
  readonly headerPolicy: HeaderPolicy;
  /**
   * The identity header values for a caller (`identity_headers`), config order,
   * unvalidated (src/upstream/headers.ts `checkAddedHeaders` refuses values that
   * cannot be field values). Values read from the identity alone are computed
   * once per identity; `route.id` / `decision.id` per request.
   */
  identityValues(identity: Identity | null, decisionId: string): Readonly<Record<string, string>>;
  /**
   * The credentials an allow injects (`routes[].credentials`): the route's whole list, or
   * exactly `chosen` (the decision's `credentials`) when the policy named some.
   * @throws PolicyError `invalid_decision_credential` for a name outside the route's list.
   */
  credentialsFor(chosen: readonly string[] | undefined): readonly Credential[];
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
  /** The `policy.candidate` bundle's engine (shadow evaluation only), or null. */
  readonly candidatePolicy: PolicyEngine | null;
  readonly observer: Observer;
  readonly metrics: Metrics;
  readonly clock: Clock;
  readonly time: TimeInputBuilder;
  readonly logger: Logger;
  /** `tracing`: starts each request's trace; null when tracing is off. */
  readonly tracer: Tracer | null;
  /** The token exchange broker (`broker`), or null (src/broker/). */
  readonly broker: Broker | null;
  route(id: string): CompiledRoute;
  /** Readiness: policy loaded (always, once built) and keys available for every issuer. */
  readiness(): { ready: boolean; checks: Record<string, boolean> };
  /**
   * Admission of a new request: undefined to go ahead; a promise while the
   * decision log's buffer is full under `overload: block` (src/observe/log-writer.ts).
   */
  admission(): Promise<void> | undefined;
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
  /**
   * Write decision records to this stream instead of opening `decision_log.destination`.
   * Successive runtimes share one stream per destination (src/lifecycle/log-streams.ts), so
   * records of a draining old runtime and of its successor never interleave mid-line. Not
   * closed by `Runtime.close()`: its owner ends it.
   */
  readonly decisionLogStream?: DestinationStream | LogSink;
  /** Also hand each record's event to this uploader (`decision_log.service`; src/lifecycle/decision-uploads.ts). */
  readonly decisionLogUpload?: (event: string) => void;
  /** Export spans here when `tracing` is configured (src/lifecycle/span-exporters.ts); without it nothing is traced. */
  readonly spanExporter?: SpanExporter;
  /**
   * Credential files shared by successive runtimes (src/lifecycle/credential-files.ts): an unchanged
   * file keeps its watcher and current value across a reload. Absent: the runtime opens its own.
   */
  readonly credentialFiles?: CredentialFiles;
}

/** The bundles a runtime is compiled from, as delivered by a bundle source. */
export interface PolicyBundles {
  /** The enforced bundle (`policy.bundle`). */
  readonly active: Bundle;
  /** `policy.candidate.bundle`, for shadow evaluation only; required when the config names one. */
  readonly candidate?: Bundle | undefined;
}

/** The parts of a config a bundle is checked against (`regate check` builds them from a config with other problems). */
export interface PolicyFitConfig {
  readonly source: string;
  readonly policy: Pick<Config['policy'], 'default_entrypoint'>;
  readonly routes: readonly Pick<RouteConfig, 'entrypoint' | 'shadow'>[];
  readonly broker?: { readonly entrypoint: string } | undefined;
}

/**
 * Loads a bundle's policy and checks it against the config: every entrypoint
 * the config evaluates in this bundle must be compiled in, and every builtin
 * the policy needs must be implemented. Problems are ConfigErrors naming the
 * config key. `which` says whether `bundle` is the enforced (`active`) or the
 * `candidate` bundle: each is checked for the entrypoints evaluated in it.
 */
export async function loadPolicyFor(
  config: PolicyFitConfig,
  bundle: Bundle,
  which: 'active' | 'candidate' = 'active',
  onReset?: (event: EngineReset) => void,
): Promise<PolicyEngine> {
  const engine = await loadPolicyEngine(bundle, { builtins: hostBuiltins(), ...(onReset ? { onReset } : {}) });
  const errors: ConfigError[] = [];
  const have = new Set(engine.entrypoints);
  const missing = (ep: string, key: string): void => {
    if (!have.has(ep)) {
      errors.push(
        new ConfigError(
          config.source,
          key,
          `entrypoint "${ep}" is not compiled into ${bundle.source} (it has: ${engine.entrypoints.join(', ') || 'none'}); rebuild with opa build -e ${ep}`,
        ),
      );
    }
  };
  if (which === 'active') {
    missing(config.policy.default_entrypoint, '/policy/default_entrypoint');
    config.routes.forEach((r, i) => r.entrypoint && missing(r.entrypoint, `/routes/${i}/entrypoint`));
    if (config.broker !== undefined) missing(config.broker.entrypoint, '/broker/entrypoint');
  }
  config.routes.forEach((r, i) => r.shadow?.bundle === which && missing(r.shadow.entrypoint, `/routes/${i}/shadow/entrypoint`));
  if (engine.unsupportedBuiltins.length > 0) {
    errors.push(
      new ConfigError(
        config.source,
        which === 'active' ? '/policy/bundle' : '/policy/candidate/bundle',
        `the policy uses builtins regate does not implement for wasm: ${engine.unsupportedBuiltins.join(', ')}`,
      ),
    );
  }
  if (errors.length > 0) throw new ConfigErrors(errors);
  return engine;
}

/** Load the active and (when configured) candidate policies; every problem of both is reported at once. */
async function loadPolicies(
  config: Config,
  bundles: PolicyBundles,
  onReset: (which: 'active' | 'candidate', event: EngineReset) => void,
): Promise<{ policy: PolicyEngine; candidate: PolicyEngine | null }> {
  if (config.policy.candidate !== undefined && bundles.candidate === undefined) {
    throw new TypeError('createRuntime: the config names policy.candidate but no candidate bundle was given');
  }
  const [active, candidate] = await Promise.allSettled([
    loadPolicyFor(config, bundles.active, 'active', (e) => onReset('active', e)),
    config.policy.candidate !== undefined && bundles.candidate !== undefined ? loadPolicyFor(config, bundles.candidate, 'candidate', (e) => onReset('candidate', e)) : null,
  ]);
  const errors = [active, candidate].flatMap((r) => (r.status === 'rejected' ? configErrorsOf(r.reason) : []));
  if (errors.length > 0) throw new ConfigErrors(errors);
  return { policy: (active as PromiseFulfilledResult<PolicyEngine>).value, candidate: (candidate as PromiseFulfilledResult<PolicyEngine | null>).value };
}

/** The ConfigErrors inside a rejection; anything else is rethrown (a bug is not a config problem). */
function configErrorsOf(err: unknown): readonly ConfigError[] {
  if (err instanceof ConfigErrors) return err.errors;
  if (err instanceof ConfigError) return [err];
  throw err;
}

/**
 * Compile a validated config and its bundles into a runtime. Throws ConfigError(s)
 * for a policy that does not fit. Nothing is read from disk here: the bundles come
 * from a bundle source (startup, hot reload) or from the caller (`regate check`).
 */
export async function createRuntime(config: Config, bundles: PolicyBundles, options: RuntimeOptions): Promise<Runtime> {
  // Engine rebuilds are reported to the metrics and logger made below (none can happen before the first evaluation).
  let reportReset = (_which: 'active' | 'candidate', _event: EngineReset): void => {};
  const { policy, candidate } = await loadPolicies(config, bundles, (which, event) => reportReset(which, event));
  const routeIds = config.routes.map((r) => r.id);
  const issuerIds = config.issuers.map((i) => i.id);
  const bundle = { name: 'regate', revision: policy.revision };
  const metrics = options.metrics ?? createMetrics({ routeIds, issuerIds, bundle, version: VERSION, defaultMetrics: false });
  metrics.configure({
    routeIds,
    issuerIds,
    dryRunRouteIds: config.routes.filter((r) => r.dry_run).map((r) => r.id),
    websocketRouteIds: config.routes.filter((r) => r.websocket).map((r) => r.id),
    shadowRouteIds: config.routes.filter((r) => r.shadow !== undefined).map((r) => r.id),
    resourceRouteIds: config.routes.filter((r) => r.resource !== undefined).map((r) => r.id),
  });
  reportReset = (which, event) => {
    metrics.policyEngineReset(which);
    options.logger.warn({ bundle: which, revision: which === 'active' ? policy.revision : candidate?.revision, err: event.error, memory_bytes_before: event.memoryBytesBefore, memory_bytes_after: event.memoryBytesAfter }, 'policy engine rebuilt after a failed evaluation');
  };
  // Not metrics.setBundle here: this version may still be refused (src/lifecycle/reload.ts sets it on activation).
  const clock = options.clock ?? clockFrom(config.clock.fixed);
  // The same clock decides token expiry and `input.time`: a frozen test clock freezes both.
  const nowSeconds = (): number => Number(clock.nowNs() / 1_000_000n) / 1000;
  // One cache per runtime: a reload (other issuers, audiences, keys) starts empty.
  const tokenCache =
    config.token_cache.max_entries > 0
      ? new TokenCache({ maxEntries: config.token_cache.max_entries, now: nowSeconds, onLookup: (result) => metrics.tokenCacheLookup(result) })
      : undefined;
  const authenticator = createAuthenticator(config.issuers, {
    source: config.source,
    now: nowSeconds,
    cache: tokenCache,
    onJwksRefresh: (issuer, result, err) => {
      metrics.jwksRefresh(issuer, result);
      if (err) options.logger.warn({ issuer, err: String(err) }, 'JWKS refresh failed; serving cached keys if any');
    },
    onDiscovery: (issuer, result, err) => {
      metrics.discovery(issuer, result);
      if (err) options.logger.warn({ issuer, err: String(err) }, 'OIDC discovery failed; tokens of this issuer are refused until it succeeds (retried with backoff)');
    },
    // Never the token: `err` comes from the HTTP exchange or the answer's shape.
    onIntrospection: (issuer, result, err) => {
      metrics.introspectionRequest(issuer, result);
      if (err) options.logger.warn({ issuer, err: String(err) }, 'token introspection failed; the request is refused');
    },
    onIntrospectionCacheHit: (issuer, kind) => metrics.introspectionCacheHit(issuer, kind),
    onJwksKeysRemoved: (issuer, keys, evicted) =>
      options.logger.info({ issuer, keys, evicted }, 'JWKS refresh removed keys: cached tokens they verified are evicted'),
  });
  // OPA's `bundles`: every loaded bundle by name; the candidate only decides shadows.
  const loadedBundles: Record<string, { revision: string }> = { regate: { revision: policy.revision } };
  if (candidate !== null) loadedBundles['regate-candidate'] = { revision: candidate.revision };
  const decisionLog: DecisionLog | null = options.offline
    ? null
    : createDecisionLog(config.decision_log, {
        bundles: () => loadedBundles,
        version: VERSION,
        instanceId,
      }, { onError: () => metrics.decisionLogError(), ...(options.decisionLogStream ? { stream: options.decisionLogStream } : {}), ...(options.decisionLogUpload ? { upload: options.decisionLogUpload } : {}) });
  const upstreams = new Map<string, Upstream>();
  if (!options.offline) {
    const tlsErrors: ConfigError[] = [];
    for (const [id, u] of Object.entries(config.upstreams)) {
      try {
        upstreams.set(id, createUpstream(u, upstreamEvents(id, metrics, options.logger)));
      } catch (err) {
        if (!(err instanceof TlsMaterialError)) throw err;
        tlsErrors.push(new ConfigError(config.source, `/upstreams/${escapePointer(id)}/tls/${err.key}`, err.message, { cause: err }));
      }
    }
    if (tlsErrors.length > 0) {
      await Promise.allSettled([...upstreams.values()].map((u) => u.close()));
      authenticator.close();
      throw new ConfigErrors(tlsErrors);
    }
  }
  const credentials = openCredentials(config, options, metrics);
  if (credentials instanceof ConfigErrors) {
    await Promise.allSettled([...upstreams.values()].map((u) => u.close()));
    authenticator.close();
    throw credentials;
  }
  let broker: Broker | null = null;
  if (config.broker !== undefined) {
    try {
      broker = await createBroker(config.broker, {
        source: config.source,
        verifyToken: (token) => authenticator.verifyToken(token),
        policy,
        clock,
        time: new TimeInputBuilder(config.policy.timezone),
        registry: metrics.registry,
        decisionLog: decisionLog ?? { writeEvent() {} },
        logger: options.logger,
        bodyIdleMs: config.limits.body_idle_timeout_ms,
        watchKeys: !options.offline,
      });
    } catch (err) {
      if (!(err instanceof SigningKeyError) && !(err instanceof ConfigError)) throw err;
      await Promise.allSettled([...upstreams.values()].map((u) => u.close()));
      authenticator.close();
      credentials.close();
      throw new ConfigErrors([err instanceof ConfigError ? err : new ConfigError(config.source, `/broker/signing_keys/${err.index}/file`, err.message, { cause: err })]);
    }
  }
  // One catalog client per runtime (pools per origin, cache, single flight): a reload starts cold.
  const catalog = createResourceCatalog({
    observer: {
      lookup: (route, result) => metrics.attributeLookup(route, result),
      fetched: (route, seconds) => metrics.attributeFetched(route, seconds),
    },
  });
  const times = new Map<string, TimeInputBuilder>();
  const timeFor = (zone: string): TimeInputBuilder => {
    let t = times.get(zone);
    if (t === undefined) times.set(zone, (t = new TimeInputBuilder(zone)));
    return t;
  };
  const routes = new Map<string, CompiledRoute>();
  for (const r of config.routes) {
    const parts = {
      time: timeFor(r.timezone ?? config.policy.timezone),
      resource: r.resource ? catalog.source(r.id, r.resource, pathTemplateParams(r.match.path)) : null,
    };
    routes.set(r.id, compileRoute(config, r, upstreams, { active: policy, candidate }, parts, credentials.byUpstream.get(r.upstream)));
  }

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
    candidatePolicy: candidate,
    observer,
    metrics,
    clock,
    time: timeFor(config.policy.timezone),
    logger: options.logger,
    tracer: config.tracing !== undefined && options.spanExporter !== undefined ? createTracer(config.tracing, options.spanExporter) : null,
    broker,
    route(id) {
      const r = routes.get(id);
      if (!r) throw new TypeError(`route ${id} was not compiled`);
      return r;
    },
    admission: decisionLog === null ? () => undefined : () => decisionLog.whenWritable(),
    readiness() {
      const keys = authenticator.ready();
      return { ready: keys, checks: { config: true, policy: true, keys } };
    },
    async close() {
      broker?.close();
      authenticator.close();
      await Promise.allSettled([...upstreams.values()].map((u) => u.close()));
      await catalog.close();
      credentials.close();
      await decisionLog?.close();
    },
  };
}

const instanceId = `regate-${process.pid}-${Date.now().toString(36)}`;

/** Minimum time between two logged TLS failures of one upstream: a broken CA fails every connection. */
const TLS_FAILURE_LOG_INTERVAL_MS = 10_000;

/** An upstream's TLS reloads and failures → metrics and operational log. */
function upstreamEvents(id: string, metrics: Metrics, logger: Logger): UpstreamEvents {
  let lastLogged = -Infinity;
  let suppressed = 0;
  return {
    tlsReloaded(result, err) {
      metrics.upstreamTlsReload(id, result);
      if (result === 'success') logger.info({ upstream: id }, 'upstream TLS files reloaded: new connections use them');
      else logger.error({ upstream: id, err: err?.message }, 'upstream TLS files refused: the previous ones stay in use');
    },
    tlsFailed(err) {
      const now = performance.now();
      if (now - lastLogged < TLS_FAILURE_LOG_INTERVAL_MS) {
        suppressed++;
        return;
      }
      lastLogged = now;
      const cause = err.cause as NodeJS.ErrnoException | undefined;
      logger.warn({ upstream: id, code: err.detail, err: cause?.message ?? err.message, suppressed }, 'TLS to the upstream failed: requests answered 502 upstream_tls_error');
      suppressed = 0;
    },
  };
}

/** The credentials of every upstream, by upstream id and name; `close` releases their files. */
interface OpenCredentials {
  readonly byUpstream: ReadonlyMap<string, ReadonlyMap<string, Credential>>;
  close(): void;
}

/** Credential file reloads → metrics and the operational log (never a value). */
export function credentialEvents(metrics: Metrics, logger: Logger): CredentialEvents {
  return {
    reloaded(upstream, credential, result, problem) {
      metrics.credentials.reloaded(upstream, credential, result);
      if (result === 'success') logger.info({ upstream, credential }, 'credential file reloaded: the new value is injected from now on');
      else logger.error({ upstream, credential, problem }, 'credential file refused: the previous value stays in use');
    },
  };
}

/**
 * Read (and, unless offline, watch) every declared credential's file. A file that cannot be
 * used is a ConfigError at its `value_file` key; what was acquired is released again.
 */
function openCredentials(config: Config, options: RuntimeOptions, metrics: Metrics): OpenCredentials | ConfigErrors {
  const declared = Object.entries(config.upstreams).flatMap(([id, u]) => Object.entries(u.credentials ?? {}).map(([name, c]) => ({ id, name, c })));
  const own = declared.length > 0 && !options.offline && options.credentialFiles === undefined ? new CredentialFiles(credentialEvents(metrics, options.logger)) : null;
  const files = options.credentialFiles ?? own;
  const keys: string[] = [];
  const errors: ConfigError[] = [];
  const byUpstream = new Map<string, Map<string, Credential>>();
  for (const { id, name, c } of declared) {
    let source: SecretSource;
    try {
      if (options.offline || files === null) {
        source = new CredentialFile(id, name, c.value_file, { reloaded() {} }, { watch: false });
      } else {
        const acquired = files.acquire(id, name, c.value_file);
        keys.push(acquired.key);
        source = acquired.file;
      }
    } catch (err) {
      if (!(err instanceof CredentialFileError)) throw err;
      errors.push(new ConfigError(config.source, `/upstreams/${escapePointer(id)}/credentials/${escapePointer(name)}/value_file`, err.message, { cause: err }));
      continue;
    }
    let m = byUpstream.get(id);
    if (m === undefined) byUpstream.set(id, (m = new Map()));
    m.set(name, new Credential(id, name, c, source));
  }
  const close = (): void => {
    for (const key of keys) files?.release(key);
    own?.closeAll();
  };
  if (errors.length > 0) {
    close();
    return new ConfigErrors(errors);
  }
  if (!options.offline) metrics.credentials.configure(declared.map(({ id, name }) => ({ upstream: id, credential: name })));
  return { byUpstream, close };
}

const NO_CREDENTIALS: readonly Credential[] = Object.freeze([]);

function compileRoute(
  config: Config,
  route: RouteConfig,
  upstreams: Map<string, Upstream>,
  engines: { readonly active: PolicyEngine; readonly candidate: PolicyEngine | null },
  parts: { readonly time: TimeInputBuilder; readonly resource: ResourceSource | null },
  declared: ReadonlyMap<string, Credential> | undefined,
): CompiledRoute {
  // The route's credentials, resolved once; the config checks guarantee every name is declared.
  const selectable = new Map<string, Credential>();
  for (const name of route.credentials ?? []) {
    const c = declared?.get(name);
    if (c === undefined) throw new TypeError(`route ${route.id}: credential ${name} is not declared on upstream ${route.upstream}`);
    selectable.set(name, c);
  }
  const all: readonly Credential[] = selectable.size === 0 ? NO_CREDENTIALS : Object.freeze([...selectable.values()]);
  const credentialsFor = (chosen: readonly string[] | undefined): readonly Credential[] => {
    if (chosen === undefined) return all;
    if (chosen.length === 0) return NO_CREDENTIALS;
    const out: Credential[] = [];
    for (const name of chosen) {
      const c = selectable.get(name);
      if (c === undefined) {
        throw new PolicyError('invalid_decision_credential', `the policy named credential "${name}", which route ${route.id} does not list in credentials (it may choose from: ${[...selectable.keys()].join(', ') || 'none'})`);
      }
      out.push(c);
    }
    return out;
  };
  // Every route's identity headers and the configured request_headers_to_remove, compiled once:
  // the policy input (src/input/build.ts) and the forwarder read this same policy.
  const headerPolicy = compileHeaderPolicy(route, strippedNames(config, route), {
    tracing: config.tracing !== undefined,
    credentialHeaders: all.map((c) => c.header),
  });
  const identity = Object.entries(route.identity_headers).map(([name, source]) => [name, identitySource(source)] as const);
  const routeContext = { config: { id: route.id } };
  const fixedContext: IdentityContext = { id: '', route: routeContext };
  // Values read from the identity alone (`subject.*`, `token.*`) are the same for every request
  // with the same verified token, and the token cache hands out the same Identity object for it:
  // computed once per identity. `route.id` / `decision.id` are read per request.
  const perRequest = new Set(Object.entries(route.identity_headers).filter(([, source]) => source === 'route.id' || source === 'decision.id').map(([name]) => name));
  const fromIdentity = new WeakMap<Identity, Readonly<Record<string, string>>>();
  const identityValues = (id: Identity | null, decisionId: string): Readonly<Record<string, string>> => {
    let fixed = id === null ? undefined : fromIdentity.get(id);
    if (fixed === undefined) {
      const values: Record<string, string> = {};
      for (const [name, get] of identity) {
        if (perRequest.has(name)) continue;
        const v = get(id, fixedContext);
        if (v !== undefined) values[name] = v;
      }
      fixed = Object.freeze(values);
      if (id !== null) fromIdentity.set(id, fixed);
    }
    if (perRequest.size === 0) return fixed;
    // Config order, as before: per-identity values from the memo, the others read now.
    const values: Record<string, string> = {};
    const context: IdentityContext = { id: decisionId, route: routeContext };
    for (const [name, get] of identity) {
      const v = perRequest.has(name) ? get(id, context) : fixed[name];
      if (v !== undefined) values[name] = v;
    }
    return values;
  };
  const upstream = upstreams.get(route.upstream) ?? offlineUpstream(route.upstream);
  return {
    config: route,
    entrypoint: route.entrypoint ?? config.policy.default_entrypoint,
    dryRun: route.dry_run,
    // loadPolicies guarantees the candidate engine exists when a shadow names it.
    shadow: route.shadow ? compileShadow(route.shadow.bundle === 'candidate' ? engines.candidate! : engines.active, route.shadow) : null,
    upstream,
    upstreamUrl: new URL(config.upstreams[route.upstream]!.url),
    time: parts.time,
    resource: parts.resource,
    bodyIdleMs: config.limits.body_idle_timeout_ms,
    headerPolicy,
    identityValues,
    credentialsFor,
  };
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
