/**
 * Defaults, normalization and path resolution: validated YAML data → {@link Config}.
 *
 * The same defaults are written as `default` in `regate.schema.json`, where
 * editors show them; a unit test keeps the two in step. They are applied here,
 * explicitly, rather than by ajv's `useDefaults`, so that validation never
 * mutates its input and the produced object has exactly the `Config` shape.
 */

import path from 'node:path';
import type {
  BrokerClientAuth,
  BrokerConfig,
  UpstreamTokenConfig,
  AuthzListenerConfig,
  AuthzProtocol,
  AuthMode,
  BundleServiceConfig,
  BundleSigningAlgorithm,
  BundleSigningConfig,
  ClaimMapping,
  Config,
  Http2Config,
  DecisionLogConfig,
  DecisionLogServiceConfig,
  IntrospectionConfig,
  IssuerConfig,
  LimitsConfig,
  ListenerConfig,
  ListenerTlsConfig,
  PolicyConfig,
  ReloadConfig,
  ResourceSourceConfig,
  RouteConfig,
  ShadowConfig,
  ShutdownConfig,
  TokenCacheConfig,
  TracingConfig,
  ServingListenerConfig,
  UpstreamConfig,
  UpstreamTlsConfig,
  UpstreamProtocol,
} from './types.ts';

/** Every default value of the config file, by section. */
export const DEFAULTS = {
  listen: {
    proxy: { host: '0.0.0.0', port: 8080 },
    // Envoy's max_concurrent_streams is 100 too; header list = limits.max_header_bytes' default;
    // 200 resets per 10 s is far above what a browser or gRPC client cancels, far below a rapid-reset flood.
    http2: { h2c: false, h2: true, max_concurrent_streams: 100, max_header_list_bytes: 16_384, max_resets: 200, reset_window_ms: 10_000, idle_timeout_ms: 65_000 } satisfies Http2Config,
    // Loopback on purpose: metrics and health endpoints are not for the internet.
    admin: { host: '127.0.0.1', port: 9090 },
    // Loopback: whoever reaches the authz listener chooses the request it judges.
    authz: { host: '127.0.0.1', port: 9191, path_prefix: '' },
  },
  upstream: {
    protocol: 'http1' as UpstreamProtocol,
    // headers_ms 30 s, not Envoy's 15 s: a non-streaming inference call often needs more before its
    // first byte; Envoy's 15 s covers the whole response and model-serving users raise it (schema doc).
    timeouts: { connect_ms: 2000, headers_ms: 30_000, body_ms: 300_000 },
    pool: { connections: 128, keepalive_timeout_ms: 4000 },
    request_headers_to_remove: [] as readonly string[],
  },
  request_headers_to_remove: [] as readonly string[],
  // TLS 1.2 as the floor, as Node's own default; no client certificate unless asked for.
  tls: { client_auth: 'none' as ListenerTlsConfig['client_auth'], min_version: 'TLSv1.2' as ListenerTlsConfig['min_version'] },
  issuer: {
    clock_tolerance_s: 30,
    required_claims: [] as readonly string[],
    jwks: { timeout_ms: 5000, cache_max_age_s: 300, cooldown_s: 30 },
    introspection: { timeout_ms: 3000, cache: { max_entries: 10_000, negative_ttl_s: 10, max_ttl_s: 60 } },
    claims: { roles: 'roles', groups: 'groups', scopes: 'scope', tenant: 'tenant' } satisfies ClaimMapping,
  },
  policy: {
    timezone: 'UTC',
    // OPA's polling defaults (download.Config), so a bundle server sized for OPA fleets fits regate too.
    service: { polling: { min_delay_seconds: 60, max_delay_seconds: 120 }, timeout_ms: 10_000, headers: {}, max_download_bytes: 64 * 1024 * 1024 },
    signing: { exclude_files: [] as readonly string[] },
  },
  // 4 MiB: seconds of records at full speed, small beside a sidecar's memory limit; block: an audit trail loses nothing.
  decision_log: { enabled: true, destination: 'stdout', mask: [] as readonly string[], labels: {}, max_buffer_bytes: 4 * 1024 * 1024, overload: 'block' as 'block' | 'drop' },
  // OPA's `decision_logs.reporting` defaults, except the buffer: OPA's is unbounded.
  decision_log_service: {
    resource: '/logs',
    headers: {} as Readonly<Record<string, string>>,
    scheme: 'Bearer',
    min_delay_seconds: 300,
    max_delay_seconds: 600,
    upload_size_limit_bytes: 32_768,
    buffer_size_limit_bytes: 16 * 1024 * 1024,
    timeout_ms: 10_000,
  },
  // OpenTelemetry's defaults (OTEL_EXPORTER_OTLP_TIMEOUT, OTEL_BSP_*; parent-based always-on sampling).
  tracing: {
    otlp: { headers: {} as Readonly<Record<string, string>>, timeout_ms: 10_000, max_queue_size: 2048, max_export_batch_size: 512, schedule_delay_ms: 5000 },
    sample_ratio: 1,
    trust_incoming_traceparent: true,
    service_name: 'regate',
  },
  // Body timeouts in the spirit of nginx's client_body_timeout 60s; the whole request within node's default requestTimeout.
  limits: {
    max_url_bytes: 8192,
    max_header_bytes: 16_384,
    body_idle_timeout_ms: 60_000,
    request_timeout_ms: 300_000,
    // Envoy's default stream idle timeout; an hour's lifetime bounds how long one authorization lasts.
    websocket: { idle_timeout_ms: 300_000, max_lifetime_ms: 3_600_000 },
  } satisfies LimitsConfig,
  reload: { watch: true, debounce_ms: 300 } satisfies ReloadConfig,
  // No drain delay by default: only a load balancer that polls /readyz needs one, and it must be sized to its period.
  shutdown: { grace_ms: 10_000, drain_delay_ms: 0 } satisfies ShutdownConfig,
  // One process unless asked: a sidecar shares its node with the service it guards.
  workers: 1 as number | 'auto',
  token_cache: { max_entries: 10_000 } satisfies TokenCacheConfig,
  route: {
    // Secure default: a route must opt out of authentication explicitly.
    auth: 'required' as AuthMode,
    forward_authorization: false,
    grpc: false,
    expose_reasons: false,
    websocket: false,
    dry_run: false,
    shadow_bundle: 'active' as ShadowConfig['bundle'],
  },
  resource: { timeout_ms: 1000, ttl_s: 30, max_bytes: 65_536, headers: {} as Readonly<Record<string, string>> },
  body: { max_bytes: 65_536 },
  // Minutes-long tokens: a step of a workflow needs one call's worth of time, not a session.
  broker: {
    path: '/oauth2/token',
    default_ttl_s: 300,
    max_ttl_s: 900,
    actor_token: 'optional' as BrokerConfig['actor_token'],
    client_auth: ['private_key_jwt', 'actor_token'] as readonly BrokerClientAuth[],
    single_use_subject_tokens: false,
    replay: { max_entries: 100_000 },
    max_body_bytes: 16_384,
    max_concurrent: 64,
    token_type: 'at+jwt' as BrokerConfig['token_type'],
    upstream_token_cache: { max_entries: 10_000 },
  },
  upstream_token: { scopes: [] as readonly string[], ttl_s: 300 },
} as const;

/** Decision-log destinations that are streams, not file paths. */
export const LOG_STREAMS: readonly string[] = ['stdout', 'stderr'];

/** A listener as written in YAML: every key optional. */
export interface RawListener {
  host?: string;
  port?: number;
}

/** `listen.proxy.tls` / `listen.authz.tls` as written in YAML. */
export interface RawListenerTls {
  cert_file: string;
  key_file: string;
  ca_file?: string;
  client_auth?: ListenerTlsConfig['client_auth'];
  min_version?: ListenerTlsConfig['min_version'];
}

/** A proxy or authz listener as written in YAML. */
export interface RawServingListener extends RawListener {
  tls?: RawListenerTls;
}

/** An upstream as written in YAML. */
export interface RawUpstream {
  url: string;
  protocol?: UpstreamProtocol;
  timeouts?: Partial<UpstreamConfig['timeouts']>;
  pool?: Partial<UpstreamConfig['pool']>;
  request_headers_to_remove?: string[];
  tls?: { ca_file?: string; cert_file?: string; key_file?: string; servername?: string; min_version?: UpstreamTlsConfig['min_version'] };
  credentials?: Record<string, { header: string; scheme?: string; value_file: string }>;
}

/** An issuer as written in YAML. */
export interface RawIssuer {
  id?: string;
  issuer: string;
  jwks_url?: string;
  jwks_file?: string;
  discovery?: true;
  introspection?: {
    url?: string;
    client_id?: string;
    client_secret_file?: string;
    private_key_jwt?: { key_file: string; alg?: string; kid?: string };
    timeout_ms?: number;
    cache?: Partial<IntrospectionConfig['cache']>;
  };
  audiences: string[];
  algorithms?: string[];
  clock_tolerance_s?: number;
  required_claims?: string[];
  jwks?: Partial<IssuerConfig['jwks']>;
  claims?: Partial<ClaimMapping>;
}

/** A route as written in YAML. */
export interface RawRoute {
  id: string;
  match: { methods: string[]; path: string; host?: string };
  upstream: string;
  auth?: AuthMode;
  entrypoint?: string;
  attributes?: Record<string, unknown>;
  timezone?: string;
  resource?: { url: string; timeout_ms?: number; ttl_s?: number; max_bytes?: number; headers?: Record<string, string> };
  body?: { max_bytes?: number };
  identity_headers?: Record<string, string>;
  forward_authorization?: boolean;
  credentials?: string[];
  grpc?: boolean;
  expose_reasons?: boolean;
  websocket?: boolean;
  dry_run?: boolean;
  shadow?: { entrypoint: string; bundle?: ShadowConfig['bundle'] };
  upstream_token?: { audience: string; scopes?: string[] | 'decision'; ttl_s?: number };
}

/** `broker` as written in YAML. */
export interface RawBroker {
  path?: string;
  issuer: string;
  signing_keys: { file: string; use: 'active' | 'next' | 'retired' }[];
  entrypoint: string;
  audiences: string[];
  default_ttl_s?: number;
  max_ttl_s?: number;
  actor_token?: BrokerConfig['actor_token'];
  client_auth?: BrokerClientAuth[];
  clients?: { id: string; jwks_file: string; algorithms: string[] }[];
  single_use_subject_tokens?: boolean;
  replay?: { max_entries?: number };
  max_body_bytes?: number;
  max_concurrent?: number;
  token_type?: BrokerConfig['token_type'];
  upstream_token_cache?: { max_entries?: number };
}

/** `policy.service` as written in YAML. */
export interface RawBundleService {
  url: string;
  polling?: Partial<BundleServiceConfig['polling']>;
  timeout_ms?: number;
  headers?: Record<string, string>;
  max_download_bytes?: number;
}

/** `policy.signing` as written in YAML. */
export interface RawBundleSigning {
  public_key_file: string;
  algorithm: BundleSigningAlgorithm;
  keyid?: string;
  scope?: string;
  exclude_files?: string[];
}

/**
 * The config file's data once it has passed `regate.schema.json`: optional
 * keys may be absent, nothing is normalized yet.
 */
export interface RawConfig {
  version?: 1;
  listen?: { proxy?: RawServingListener & { http2?: Partial<Http2Config> }; admin?: RawListener; authz?: RawServingListener & { protocol: AuthzProtocol; path_prefix?: string } };
  upstreams: Record<string, RawUpstream>;
  issuers?: RawIssuer[];
  policy: {
    bundle?: string;
    service?: RawBundleService;
    signing?: RawBundleSigning;
    default_entrypoint: string;
    timezone?: string;
    candidate?: { bundle: string };
  };
  decision_log?: Partial<Omit<DecisionLogConfig, 'mask' | 'labels' | 'service'>> & { mask?: string[]; labels?: Record<string, string>; service?: RawDecisionLogService };
  tracing?: RawTracing;
  limits?: Partial<Omit<LimitsConfig, 'websocket'>> & { websocket?: Partial<LimitsConfig['websocket']> };
  reload?: Partial<ReloadConfig>;
  shutdown?: Partial<ShutdownConfig>;
  workers?: number | 'auto';
  token_cache?: Partial<TokenCacheConfig>;
  clock?: { fixed?: string };
  request_headers_to_remove?: string[];
  routes: RawRoute[];
  broker?: RawBroker;
}

/**
 * Apply defaults, normalize and resolve relative paths. `raw` must have passed
 * the schema and the loader's cross-field checks; `source` is the absolute
 * path of the config file. Returns a fresh object that shares nothing with
 * `raw` (YAML aliases make `raw` share subtrees); the caller freezes it.
 */
export function buildConfig(raw: RawConfig, source: string): Config {
  const dir = path.dirname(source);
  const resolve = (p: string): string => path.resolve(dir, p);
  const log = raw.decision_log ?? {};
  const destination = log.destination ?? DEFAULTS.decision_log.destination;
  return {
    source,
    listen: {
      proxy: { ...servingListener(raw.listen?.proxy, DEFAULTS.listen.proxy, resolve), http2: { ...DEFAULTS.listen.http2, ...raw.listen?.proxy?.http2 } },
      admin: listener(raw.listen?.admin, DEFAULTS.listen.admin),
      ...(raw.listen?.authz !== undefined ? { authz: authzListener(raw.listen.authz, resolve) } : {}),
    },
    upstreams: Object.fromEntries(Object.entries(raw.upstreams).map(([id, u]) => [id, upstream(id, u, resolve)])),
    issuers: (raw.issuers ?? []).map((issuer, i) => buildIssuer(issuer, i, resolve)),
    policy: buildPolicyConfig(raw.policy, source),
    decision_log: {
      enabled: log.enabled ?? DEFAULTS.decision_log.enabled,
      destination: LOG_STREAMS.includes(destination) ? destination : resolve(destination),
      mask: [...(log.mask ?? DEFAULTS.decision_log.mask)],
      labels: { ...(log.labels ?? DEFAULTS.decision_log.labels) },
      max_buffer_bytes: log.max_buffer_bytes ?? DEFAULTS.decision_log.max_buffer_bytes,
      overload: log.overload ?? DEFAULTS.decision_log.overload,
      ...(log.service !== undefined ? { service: decisionLogService(log.service, resolve) } : {}),
    },
    ...(raw.tracing !== undefined ? { tracing: tracing(raw.tracing) } : {}),
    limits: { ...DEFAULTS.limits, ...raw.limits, websocket: { ...DEFAULTS.limits.websocket, ...raw.limits?.websocket } },
    reload: { ...DEFAULTS.reload, ...raw.reload },
    shutdown: { ...DEFAULTS.shutdown, ...raw.shutdown },
    workers: raw.workers ?? DEFAULTS.workers,
    token_cache: { ...DEFAULTS.token_cache, ...raw.token_cache },
    clock: raw.clock?.fixed === undefined ? {} : { fixed: raw.clock.fixed },
    request_headers_to_remove: [...(raw.request_headers_to_remove ?? DEFAULTS.request_headers_to_remove)],
    routes: raw.routes.map(route),
    ...(raw.broker !== undefined ? { broker: broker(raw.broker, resolve) } : {}),
  };
}

function broker(raw: RawBroker, resolve: (p: string) => string): BrokerConfig {
  const d = DEFAULTS.broker;
  return {
    path: raw.path ?? d.path,
    issuer: raw.issuer,
    signing_keys: raw.signing_keys.map((k) => ({ file: resolve(k.file), use: k.use })),
    entrypoint: raw.entrypoint,
    audiences: [...raw.audiences],
    default_ttl_s: raw.default_ttl_s ?? d.default_ttl_s,
    max_ttl_s: raw.max_ttl_s ?? d.max_ttl_s,
    actor_token: raw.actor_token ?? d.actor_token,
    client_auth: [...(raw.client_auth ?? d.client_auth)],
    clients: (raw.clients ?? []).map((c) => ({ id: c.id, jwks_file: resolve(c.jwks_file), algorithms: [...c.algorithms] })),
    single_use_subject_tokens: raw.single_use_subject_tokens ?? d.single_use_subject_tokens,
    replay: { ...d.replay, ...raw.replay },
    max_body_bytes: raw.max_body_bytes ?? d.max_body_bytes,
    max_concurrent: raw.max_concurrent ?? d.max_concurrent,
    token_type: raw.token_type ?? d.token_type,
    upstream_token_cache: { ...d.upstream_token_cache, ...raw.upstream_token_cache },
  };
}

function upstreamToken(raw: NonNullable<RawRoute['upstream_token']>): UpstreamTokenConfig {
  const d = DEFAULTS.upstream_token;
  return { audience: raw.audience, scopes: raw.scopes === 'decision' ? 'decision' : [...(raw.scopes ?? d.scopes)], ttl_s: raw.ttl_s ?? d.ttl_s };
}

/**
 * The `policy` section alone, defaults applied and paths resolved against the
 * config file at `source` (`regate check` reads the bundle with it even when
 * other sections have problems). `raw` must have passed the schema.
 */
export function buildPolicyConfig(raw: RawConfig['policy'], source: string): PolicyConfig {
  const resolve = (p: string): string => path.resolve(path.dirname(source), p);
  return {
    ...(raw.bundle !== undefined ? { bundle: resolve(raw.bundle) } : {}),
    ...(raw.service !== undefined ? { service: bundleService(raw.service) } : {}),
    ...(raw.signing !== undefined ? { signing: bundleSigning(raw.signing, resolve) } : {}),
    default_entrypoint: raw.default_entrypoint,
    // Kept as written: Intl accepts any valid spelling, and the policy sees what the operator configured.
    timezone: raw.timezone ?? DEFAULTS.policy.timezone,
    ...(raw.candidate !== undefined ? { candidate: { bundle: resolve(raw.candidate.bundle) } } : {}),
  };
}

function listener(raw: RawListener | undefined, defaults: ListenerConfig): ListenerConfig {
  return { host: raw?.host ?? defaults.host, port: raw?.port ?? defaults.port };
}

function servingListener(raw: RawServingListener | undefined, defaults: ListenerConfig, resolve: (p: string) => string): ServingListenerConfig {
  return { ...listener(raw, defaults), ...(raw?.tls !== undefined ? { tls: listenerTls(raw.tls, resolve) } : {}) };
}

function listenerTls(raw: RawListenerTls, resolve: (p: string) => string): ListenerTlsConfig {
  return {
    cert_file: resolve(raw.cert_file),
    key_file: resolve(raw.key_file),
    ...(raw.ca_file !== undefined ? { ca_file: resolve(raw.ca_file) } : {}),
    client_auth: raw.client_auth ?? DEFAULTS.tls.client_auth,
    min_version: raw.min_version ?? DEFAULTS.tls.min_version,
  };
}

function authzListener(raw: RawServingListener & { protocol: AuthzProtocol; path_prefix?: string }, resolve: (p: string) => string): AuthzListenerConfig {
  return { ...servingListener(raw, DEFAULTS.listen.authz, resolve), protocol: raw.protocol, path_prefix: raw.path_prefix ?? DEFAULTS.listen.authz.path_prefix };
}

function upstream(id: string, raw: RawUpstream, resolve: (p: string) => string): UpstreamConfig {
  const tls = raw.tls;
  return {
    id,
    url: raw.url,
    protocol: raw.protocol ?? DEFAULTS.upstream.protocol,
    timeouts: { ...DEFAULTS.upstream.timeouts, ...raw.timeouts },
    pool: { ...DEFAULTS.upstream.pool, ...raw.pool },
    request_headers_to_remove: [...(raw.request_headers_to_remove ?? DEFAULTS.upstream.request_headers_to_remove)],
    credentials: Object.fromEntries(
      Object.entries(raw.credentials ?? {}).map(([name, c]) => [name, { header: c.header, ...(c.scheme !== undefined ? { scheme: c.scheme } : {}), value_file: resolve(c.value_file) }]),
    ),
    ...(tls !== undefined
      ? {
          tls: {
            ...(tls.ca_file !== undefined ? { ca_file: resolve(tls.ca_file) } : {}),
            ...(tls.cert_file !== undefined ? { cert_file: resolve(tls.cert_file) } : {}),
            ...(tls.key_file !== undefined ? { key_file: resolve(tls.key_file) } : {}),
            ...(tls.servername !== undefined ? { servername: tls.servername } : {}),
            min_version: tls.min_version ?? DEFAULTS.tls.min_version,
          } satisfies UpstreamTlsConfig,
        }
      : {}),
  };
}

/** One `issuers[]` entry alone, defaults applied, `jwks_file` resolved against the config file at `source`. `raw` must have passed the schema. */
export function buildIssuerConfig(raw: RawIssuer, index: number, source: string): IssuerConfig {
  return buildIssuer(raw, index, (p) => path.resolve(path.dirname(source), p));
}

function buildIssuer(raw: RawIssuer, index: number, resolve: (p: string) => string): IssuerConfig {
  const d = DEFAULTS.issuer;
  return {
    id: raw.id ?? String(index),
    issuer: raw.issuer,
    ...(raw.jwks_url !== undefined ? { jwks_url: raw.jwks_url } : {}),
    ...(raw.jwks_file !== undefined ? { jwks_file: resolve(raw.jwks_file) } : {}),
    ...(raw.discovery === true ? { discovery: true as const } : {}),
    ...(raw.introspection !== undefined ? { introspection: introspection(raw.introspection, resolve) } : {}),
    audiences: [...raw.audiences],
    algorithms: [...(raw.algorithms ?? [])],
    clock_tolerance_s: raw.clock_tolerance_s ?? d.clock_tolerance_s,
    required_claims: [...(raw.required_claims ?? d.required_claims)],
    jwks: { ...d.jwks, ...raw.jwks },
    claims: { ...d.claims, ...raw.claims },
  };
}

function introspection(raw: NonNullable<RawIssuer['introspection']>, resolve: (p: string) => string): IntrospectionConfig {
  const d = DEFAULTS.issuer.introspection;
  const key = raw.private_key_jwt;
  return {
    ...(raw.url !== undefined ? { url: raw.url } : {}),
    ...(raw.client_id !== undefined ? { client_id: raw.client_id } : {}),
    ...(raw.client_secret_file !== undefined ? { client_secret_file: resolve(raw.client_secret_file) } : {}),
    ...(key !== undefined ? { private_key_jwt: { key_file: resolve(key.key_file), alg: key.alg ?? 'ES256', ...(key.kid !== undefined ? { kid: key.kid } : {}) } } : {}),
    timeout_ms: raw.timeout_ms ?? d.timeout_ms,
    cache: { ...d.cache, ...raw.cache },
  };
}

function route(raw: RawRoute): RouteConfig {
  const d = DEFAULTS.route;
  return {
    id: raw.id,
    match: {
      methods: [...raw.match.methods],
      path: raw.match.path,
      // Host names are case-insensitive (RFC 9110 §4.2.3); the router compares lower-case.
      ...(raw.match.host !== undefined ? { host: raw.match.host.toLowerCase() } : {}),
    },
    upstream: raw.upstream,
    auth: raw.auth ?? d.auth,
    ...(raw.entrypoint !== undefined ? { entrypoint: raw.entrypoint } : {}),
    // structuredClone detaches attributes from YAML alias sharing before freezing.
    attributes: structuredClone(raw.attributes ?? {}),
    ...(raw.timezone !== undefined ? { timezone: raw.timezone } : {}),
    ...(raw.resource !== undefined ? { resource: resourceSource(raw.resource) } : {}),
    ...(raw.body !== undefined ? { body: { max_bytes: raw.body.max_bytes ?? DEFAULTS.body.max_bytes } } : {}),
    // Header names are case-insensitive; node and undici use lower-case.
    identity_headers: Object.fromEntries(
      Object.entries(raw.identity_headers ?? {}).map(([name, source]) => [name.toLowerCase(), source]),
    ),
    forward_authorization: raw.forward_authorization ?? d.forward_authorization,
    credentials: [...(raw.credentials ?? [])],
    grpc: raw.grpc ?? d.grpc,
    expose_reasons: raw.expose_reasons ?? d.expose_reasons,
    websocket: raw.websocket ?? d.websocket,
    dry_run: raw.dry_run ?? d.dry_run,
    ...(raw.shadow !== undefined ? { shadow: { entrypoint: raw.shadow.entrypoint, bundle: raw.shadow.bundle ?? d.shadow_bundle } } : {}),
    ...(raw.upstream_token !== undefined ? { upstream_token: upstreamToken(raw.upstream_token) } : {}),
  };
}

function resourceSource(raw: NonNullable<RawRoute['resource']>): ResourceSourceConfig {
  const d = DEFAULTS.resource;
  return {
    url: raw.url,
    timeout_ms: raw.timeout_ms ?? d.timeout_ms,
    ttl_s: raw.ttl_s ?? d.ttl_s,
    max_bytes: raw.max_bytes ?? d.max_bytes,
    // Header names are case-insensitive; undici sends what it is given.
    headers: Object.fromEntries(Object.entries<string>(raw.headers ?? d.headers).map(([name, value]) => [name.toLowerCase(), value])),
  };
}

/** `tracing` as written in YAML. */
export interface RawTracing {
  otlp: { endpoint: string; headers?: Record<string, string>; timeout_ms?: number; max_queue_size?: number; max_export_batch_size?: number; schedule_delay_ms?: number };
  sample_ratio?: number;
  trust_incoming_traceparent?: boolean;
  service_name?: string;
}

function tracing(raw: RawTracing): TracingConfig {
  const d = DEFAULTS.tracing;
  const { headers, ...otlp } = raw.otlp;
  return {
    otlp: {
      ...d.otlp,
      ...otlp,
      headers: Object.fromEntries(Object.entries<string>(headers ?? d.otlp.headers).map(([name, value]) => [name.toLowerCase(), value])),
    },
    sample_ratio: raw.sample_ratio ?? d.sample_ratio,
    trust_incoming_traceparent: raw.trust_incoming_traceparent ?? d.trust_incoming_traceparent,
    service_name: raw.service_name ?? d.service_name,
  };
}

/** `decision_log.service` as written in YAML. */
export interface RawDecisionLogService {
  url: string;
  resource?: string;
  headers?: Record<string, string>;
  credentials?: { bearer?: { token_path: string; scheme?: string } };
  min_delay_seconds?: number;
  max_delay_seconds?: number;
  upload_size_limit_bytes?: number;
  buffer_size_limit_bytes?: number;
  timeout_ms?: number;
}

function decisionLogService(raw: RawDecisionLogService, resolve: (p: string) => string): DecisionLogServiceConfig {
  const d = DEFAULTS.decision_log_service;
  const bearer = raw.credentials?.bearer;
  return {
    url: raw.url,
    resource: raw.resource ?? d.resource,
    // Header names are case-insensitive; one spelling, so a later lookup cannot miss a duplicate.
    headers: Object.fromEntries(Object.entries<string>(raw.headers ?? d.headers).map(([name, value]) => [name.toLowerCase(), value])),
    credentials: bearer !== undefined ? { bearer: { token_path: resolve(bearer.token_path), scheme: bearer.scheme ?? d.scheme } } : {},
    min_delay_seconds: raw.min_delay_seconds ?? d.min_delay_seconds,
    max_delay_seconds: raw.max_delay_seconds ?? d.max_delay_seconds,
    upload_size_limit_bytes: raw.upload_size_limit_bytes ?? d.upload_size_limit_bytes,
    buffer_size_limit_bytes: raw.buffer_size_limit_bytes ?? d.buffer_size_limit_bytes,
    timeout_ms: raw.timeout_ms ?? d.timeout_ms,
  };
}

function bundleService(raw: RawBundleService): BundleServiceConfig {
  const d = DEFAULTS.policy.service;
  return {
    url: raw.url,
    polling: { ...d.polling, ...raw.polling },
    timeout_ms: raw.timeout_ms ?? d.timeout_ms,
    // Header names are case-insensitive; one spelling, so a later lookup cannot miss a duplicate.
    headers: Object.fromEntries(Object.entries<string>(raw.headers ?? d.headers).map(([name, value]) => [name.toLowerCase(), value])),
    max_download_bytes: raw.max_download_bytes ?? d.max_download_bytes,
  };
}

function bundleSigning(raw: RawBundleSigning, resolve: (p: string) => string): BundleSigningConfig {
  return {
    public_key_file: resolve(raw.public_key_file),
    algorithm: raw.algorithm,
    ...(raw.keyid !== undefined ? { keyid: raw.keyid } : {}),
    ...(raw.scope !== undefined ? { scope: raw.scope } : {}),
    exclude_files: [...(raw.exclude_files ?? DEFAULTS.policy.signing.exclude_files)],
  };
}
