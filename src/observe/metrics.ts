/**
 * Prometheus metrics (prom-client), derived from one {@link RequestOutcome} per request.
 *
 * Every label value is bounded: routes come from the configured ids (anything
 * else is `_unmatched`), reasons and issuers from fixed vocabularies (anything
 * else is `other` / `_other`), statuses are collapsed to classes. A client can
 * never mint a new series. Known series are pre-initialised at 0 so that
 * `rate()` and absence alerts work from the first scrape (Prometheus
 * instrumentation practice: "avoid missing metrics").
 *
 * The registry is our own, never prom-client's global one, so two runtimes in
 * one process (tests) do not collide.
 *
 * Two kinds of metric live in it:
 *
 * - **per-request metrics** (everything {@link Metrics.observe} and the
 *   token-cache and attribute-lookup hooks count) are families from
 *   src/observe/series.ts: each series is resolved once to an object owning
 *   its numbers, counting is an indexed add with no allocation, and values
 *   are built only at scrape time (issue 11: prom-client's `inc`/`observe`
 *   cost a label hash and garbage per call). The request histogram keeps a
 *   trace-id exemplar per bucket for sampled requests (OpenMetrics only).
 * - **everything else** (reloads, bundles, JWKS, uploads, spans: events far
 *   rarer than requests) stays on prom-client's `Counter` / `Gauge`.
 *
 * Adding a metric: a rare event → a prom-client metric with `registers`, as
 * below. Something counted per request → `new CounterFamily({ name, help,
 * labelNames, registers })` or `new HistogramFamily({ ..., buckets })`;
 * resolve its series with `.series({ label: value })` once (at creation, in
 * `addRoute`, or lazily into a cache the first time a label value is seen)
 * and call `inc()` / `observe(seconds)` on the series. Either kind is
 * exported in text and OpenMetrics and aggregated across workers by its
 * `aggregator` (`sum` for families). Document it in README (docs test).
 */

import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { INTROSPECTION_RESULTS, type IntrospectionCacheKind, type IntrospectionResult } from '../authn/introspection.ts';
import { AUTHN_REASONS, BUNDLE_REASONS, RESOURCE_REASONS, type BundleReason } from '../errors.ts';
import { TARGET_REASONS } from '../http/canonicalize.ts';
import { FRAMING_REASONS } from '../http/framing.ts';
import type { TokenCacheResult } from '../authn/token-cache.ts';
import type { DecisionOutcome, RequestOutcome, ShadowAgreement } from './record.ts';
import { CounterFamily, HistogramFamily, type CounterSeries, type HistogramSeries } from './series.ts';
import { UPLOAD_DROP_REASONS, UPLOAD_RESULTS, type UploadObserver } from './decision-upload.ts';
import { SPAN_DROP_REASONS, type ExportObserver } from './tracing/otlp.ts';
import { WEBSOCKET_REASONS } from '../http/websocket.ts';
import { createWebSocketMetrics, type WebSocketMetrics } from './websocket-metrics.ts';
import { createCredentialMetrics, type CredentialMetrics } from './credential-metrics.ts';

/** Route label for requests that matched no route (and for route ids not configured). */
export const UNMATCHED_ROUTE = '_unmatched';
/** Issuer label for an issuer id that is not configured. */
export const OTHER_ISSUER = '_other';
/** Reason label for a reason outside the fixed vocabulary. */
export const OTHER_REASON = 'other';
/** Reasons of requests refused by node's HTTP parser (`src/server.ts`). */
export const PARSER_REFUSAL_REASONS = ['malformed_request', 'header_too_large', 'request_timeout'] as const;
export type ParserRefusalReason = (typeof PARSER_REFUSAL_REASONS)[number];

/** Why regate sent an HTTP/2 GOAWAY (`regate_http2_goaway_total{reason}`), or why a session ended on an error. */
export const HTTP2_GOAWAY_REASONS = ['rapid_reset', 'idle', 'shutdown', 'protocol_error'] as const;
export type Http2GoawayReason = (typeof HTTP2_GOAWAY_REASONS)[number];

/** HTTP/2 connection events (src/http2/server.ts). */
export interface Http2Observer {
  /** A client cancelled a stream (RST_STREAM) before its response ended. */
  streamReset(): void;
  /** regate ended an HTTP/2 connection with GOAWAY, or it failed with a protocol error. */
  goaway(reason: Http2GoawayReason): void;
}

/** Values of the `decision` label. */
export const DECISIONS = ['allow', 'deny', 'error'] as const satisfies readonly DecisionOutcome[];

/** Values of the `status_class` label; a status outside 100–599 is `other`. */
export const STATUS_CLASSES = ['other', '1xx', '2xx', '3xx', '4xx', '5xx'] as const;

/** Values of `regate_jwks_refresh_total{result}`. */
export const JWKS_REFRESH_RESULTS = ['success', 'not_modified', 'error'] as const;
/** Outcome of one JWKS fetch. */
export type JwksRefreshResult = (typeof JWKS_REFRESH_RESULTS)[number];

/** Values of `regate_bundle_requests_total{result}` (OPA's bundle download outcomes). */
export const BUNDLE_REQUEST_RESULTS = ['modified', 'not_modified', 'error'] as const;
export type BundleRequestResult = (typeof BUNDLE_REQUEST_RESULTS)[number];
/** Values of `regate_bundle_activations_total{result}`. */
export const BUNDLE_ACTIVATION_RESULTS = ['success', 'error'] as const;
export type BundleActivationResult = (typeof BUNDLE_ACTIVATION_RESULTS)[number];

/** Values of `regate_bundle_source_info{kind}`: a watched file (`policy.bundle`) or a polled server (`policy.service`). */
export const BUNDLE_SOURCE_KINDS = ['file', 'service'] as const;
export type BundleSourceKind = (typeof BUNDLE_SOURCE_KINDS)[number];

/** Values of `regate_shadow_decisions_total{agreement}`. */
export const SHADOW_AGREEMENTS = ['agree', 'disagree', 'error'] as const satisfies readonly ShadowAgreement[];

/** What started a reload: the config file changed, SIGHUP, or a bundle source delivered (or refused) a bundle. */
export const RELOAD_TRIGGERS = ['file', 'signal', 'bundle'] as const;
export type ReloadTrigger = (typeof RELOAD_TRIGGERS)[number];
/** Values of `regate_reloads_total{result}`. */
export const RELOAD_RESULTS = ['success', 'error'] as const;
export type ReloadResult = (typeof RELOAD_RESULTS)[number];

/**
 * Values of the `reason` label of `regate_denials_total` and
 * `regate_forward_failures_total`: every reason the pipeline's stages can
 * give (src/errors.ts, src/http/canonicalize.ts, src/upstream/, src/policy/).
 * A reason outside this list is counted as `other`: add it here when a stage
 * gains one.
 */
export const REQUEST_REASONS = [
  'policy_denied',
  // The request target or framing was refused before routing.
  ...TARGET_REASONS,
  'uri_too_long',
  'bad_request',
  'duplicate_host',
  'invalid_host',
  // Framing refused before authentication (src/http/framing.ts); the connection was closed.
  ...FRAMING_REASONS,
  'payload_too_large',
  // A route's body (`routes[].body`) could not be read.
  'body_too_large',
  'body_malformed',
  'unsupported_content_encoding',
  'body_timeout',
  // The whole request was not received within limits.request_timeout_ms (src/http/body-gate.ts).
  'request_timeout',
  'route_not_found',
  'method_not_allowed',
  ...AUTHN_REASONS,
  // The policy could not produce a usable decision (fail closed).
  'policy_eval_error',
  'policy_invalid_result',
  'policy_undefined',
  'policy_unknown_entrypoint',
  'invalid_decision_header',
  // A decision's `credentials` named one the route does not list (src/runtime.ts credentialsFor).
  'invalid_decision_credential',
  'attribute_source_error',
  // The resource catalog (`routes[].resource`) could not give the attributes (fail closed).
  ...RESOURCE_REASONS,
  // A WebSocket upgrade was refused before routing or on a route without `websocket: true`.
  ...WEBSOCKET_REASONS,
  // Forwarding failed before or during the response.
  'upstream_unavailable',
  'upstream_connect_timeout',
  'upstream_timeout',
  'upstream_closed',
  'upstream_error',
  'upstream_body_timeout',
  'upstream_reset',
  'upstream_aborted',
  'client_closed',
  'not_ready',
  'internal_error',
] as const;

/** Request latency (whole exchange, streamed body included): 1 ms … 60 s. */
const REQUEST_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
/** Policy evaluation is wasm on a small input: microseconds, so 5 µs … 50 ms. */
const DECISION_BUCKETS = [5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05];
/** Upstream time to response headers: 1 ms … 30 s (the default headers timeout). */
const UPSTREAM_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/**
 * Which status classes get a 0-valued series up front, per decision: the
 * plausible ones only. The pipeline reports a refusal below 500 (401, 404, a
 * policy 403) as `deny`, one from 500 up as `error`, and keeps `allow` when
 * forwarding fails after an allow (the upstream's or regate's 5xx).
 */
const PREINIT: Readonly<Record<DecisionOutcome, readonly number[]>> = { allow: [2, 3, 4, 5], deny: [4], error: [5] };

/** Options of {@link createMetrics}. */
export interface MetricsOptions {
  /** Configured route ids: the only values the `route` label takes besides `_unmatched`. */
  readonly routeIds: readonly string[];
  /** Configured issuer ids (`regate_jwks_refresh_total{issuer}`); others become `_other`. */
  readonly issuerIds?: readonly string[];
  /** Registry to register into; a fresh one by default (never prom-client's global). */
  readonly registry?: Registry;
  /** The loaded policy bundle (`regate_policy_bundle_info`). */
  readonly bundle: { readonly name: string; readonly revision: string };
  /** regate's version (`regate_build_info{version}`). Default `unknown`. */
  readonly version?: string;
  /** Register prom-client's default `process_*` / `nodejs_*` metrics. Default true. */
  readonly defaultMetrics?: boolean;
}

/** regate's metrics. One instance lives as long as the process: a reload reconfigures it. */
export interface Metrics {
  /** Registry to expose on the admin `/metrics` endpoint. */
  readonly registry: Registry;
  /** Count and time one finished request. */
  observe(outcome: RequestOutcome): void;
  /** Count one JWKS fetch for the issuer with config id `issuer`. */
  jwksRefresh(issuer: string, result: JwksRefreshResult): void;
  /** Count one OIDC discovery fetch (`discovery: true`). */
  discovery(issuer: string, result: 'success' | 'error'): void;
  /** Count one RFC 7662 introspection call (src/authn/introspection.ts). */
  introspectionRequest(issuer: string, result: IntrospectionResult): void;
  /** Count one introspection answered from the cache. */
  introspectionCacheHit(issuer: string, kind: IntrospectionCacheKind): void;
  /** Replace the bundle info series (a reload loaded another bundle revision). */
  setBundle(bundle: { readonly name: string; readonly revision: string }): void;
  /**
   * Admit the route and issuer ids of a reloaded config. Additive: ids of the
   * previous config stay valid, so in-flight requests on the old runtime are
   * still labelled correctly and existing counters never vanish mid-life.
   */
  configure(ids: MetricIds): void;
  /** Count one decision-log write failure (wire to `createDecisionLog`'s `onError`). */
  decisionLogError(): void;
  /** Count one rebuild of a policy engine's wasm instance after a failed evaluation (src/policy/wasm.ts). */
  policyEngineReset(bundle: PolicyEngineBundle): void;
  /** Count one decision-log record dropped because its buffer was full (`decision_log.overload: drop`). */
  decisionLogDropped(): void;
  /** `decision_log.service` uploads (src/observe/decision-upload.ts). */
  readonly decisionLogUpload: UploadObserver;
  /** `tracing` span exports (src/observe/tracing/otlp.ts). */
  readonly spanExport: ExportObserver;
  /** Where `regate_decision_log_buffer_bytes` reads from at scrape time (bytes buffered, every destination). */
  decisionLogBuffered(source: () => number): void;
  /** Count one request node's HTTP parser refused before the pipeline (no decision, no log line). */
  parserRefusal(reason: ParserRefusalReason): void;
  /** HTTP/2 connections: client stream resets, GOAWAYs. */
  readonly http2: Http2Observer;
  /** Count one verified-token cache lookup (src/authn/token-cache.ts). */
  tokenCacheLookup(result: TokenCacheResult): void;
  /** Count one bundle server request (`policy.service`). */
  bundleRequest(result: BundleRequestResult): void;
  /**
   * Count one new bundle handed over by a bundle source (`success`) or refused
   * by it (`error`: unreadable, invalid, bad signature).
   */
  bundleActivation(result: BundleActivationResult): void;
  /** Count one bundle source failure by its stable reason (download or refusal). */
  bundleError(reason: BundleReason): void;
  /** The newest bundle is active as of `nowSeconds`: a fresh one was handed over, or the server answered 304. */
  bundleUpToDate(nowSeconds?: number): void;
  /**
   * The source was looked at and its newest bundle is the active one, as of
   * `nowSeconds`: every successful poll (200 or 304), every file check that
   * found the active content. Freshness alerts use this, not the activation time.
   */
  bundleChecked(nowSeconds?: number): void;
  /** Which kind of source delivers the bundle (`regate_bundle_source_info{kind}`); replaces the previous one. */
  bundleSource(kind: BundleSourceKind): void;
  /**
   * Count one reload attempt. `success` also sets the last-success timestamp;
   * either sets `regate_config_reload_success` to 1 or 0 (Prometheus-operator style).
   */
  reloaded(trigger: ReloadTrigger, result: ReloadResult, nowSeconds?: number): void;
  /** A first version became active at startup: the success gauges start at 1 / now, no reload counted. */
  activated(nowSeconds?: number): void;
  /** Count one resource-attribute lookup of `route` by how it ended (see {@link ATTRIBUTE_LOOKUP_RESULTS}). */
  attributeLookup(route: string, result: string): void;
  /** Time one request to a resource catalog (made for `route`), success or not. */
  attributeFetched(route: string, seconds: number): void;
  /** WebSocket upgrades, open connections and relayed bytes (src/observe/websocket-metrics.ts). */
  readonly websocket: WebSocketMetrics;
  /** Credential-file reloads (src/observe/credential-metrics.ts). */
  readonly credentials: CredentialMetrics;
  /** Count one certificate reload attempt of a TLS listener (`listen.<listener>.tls`). */
  tlsReload(listener: TlsListener, result: TlsReloadResult): void;
  /** Count one TLS handshake a listener's TLS layer refused (before any HTTP). */
  tlsHandshakeFailure(listener: TlsListener): void;
  /** Count one reload attempt of an upstream's TLS files (`upstreams.<id>.tls`); `upstream` is a config id. */
  upstreamTlsReload(upstream: string, result: TlsReloadResult): void;
}

/** Listeners that can terminate TLS (`regate_tls_reloads_total{listener}`). */
export const TLS_LISTENERS = ['proxy', 'authz'] as const;
export type TlsListener = (typeof TLS_LISTENERS)[number];
/** Values of `regate_tls_reloads_total{result}` and `regate_upstream_tls_reloads_total{result}`. */
export const TLS_RELOAD_RESULTS = ['success', 'failure'] as const;
export type TlsReloadResult = (typeof TLS_RELOAD_RESULTS)[number];

/**
 * Values of `regate_attribute_lookups_total{result}`: `hit` (fresh cache
 * entry), `coalesced` (joined a lookup of the same URL in flight), `miss` (a
 * catalog request that succeeded), or the failure reason.
 */
export const ATTRIBUTE_LOOKUP_RESULTS = ['hit', 'coalesced', 'miss', ...RESOURCE_REASONS] as const;

/** Catalog request time: 1 ms … 10 s (lookups time out at `timeout_ms`, 1 s by default). */
const ATTRIBUTE_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Values of `regate_policy_engine_resets_total{bundle}`: the enforced or the `policy.candidate` bundle's engine. */
export const POLICY_ENGINE_BUNDLES = ['active', 'candidate'] as const;
export type PolicyEngineBundle = (typeof POLICY_ENGINE_BUNDLES)[number];

/** The ids a config admits as label values; see {@link Metrics.configure}. */
export interface MetricIds {
  readonly routeIds: readonly string[];
  readonly issuerIds?: readonly string[];
  /** Routes with `dry_run: true`: their `regate_dry_run_decisions_total` series start at 0. */
  readonly dryRunRouteIds?: readonly string[];
  /** Routes with a `shadow`: their `regate_shadow_decisions_total` series start at 0. */
  readonly shadowRouteIds?: readonly string[];
  /** Routes with a `resource`: their `regate_attribute_lookups_total` series start at 0. */
  readonly resourceRouteIds?: readonly string[];
  /** Routes with `websocket: true`: their `regate_websocket_*` series start at 0. */
  readonly websocketRouteIds?: readonly string[];
}

type CounterChild = CounterSeries;
type HistogramChild = HistogramSeries;

/** Cached children for one route label value. */
interface RouteSeries {
  /** `requests[decision][statusClassIndex]`, filled lazily past the pre-initialised ones. */
  readonly requests: Record<DecisionOutcome, (CounterChild | undefined)[]>;
  readonly duration: HistogramChild;
  readonly upstream: HistogramChild | undefined;
  readonly denials: Map<string, CounterChild>;
  readonly forwardFailures: Map<string, CounterChild>;
}

/** Create the metrics, register them into a (fresh) registry and pre-initialise known series. */
export function createMetrics(options: MetricsOptions): Metrics {
  const registry = options.registry ?? new Registry();
  const registers = [registry];
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry });

  const requests = new CounterFamily({
    name: 'regate_requests_total',
    help: 'Requests handled, by route, decision (allow|deny|error) and response status class.',
    labelNames: ['route', 'decision', 'status_class'] as const,
    registers,
  });
  const requestDuration = new HistogramFamily({
    name: 'regate_request_duration_seconds',
    help: 'Time from receiving a request to the end of its response (streamed bodies included), by route.',
    labelNames: ['route'] as const,
    buckets: REQUEST_BUCKETS,
    registers,
  });
  const decisionDuration = new HistogramFamily({
    name: 'regate_decision_duration_seconds',
    help: 'Policy evaluation time (wasm), per evaluated request.',
    buckets: DECISION_BUCKETS,
    registers,
  });
  const decisionSeries = decisionDuration.series();
  const upstreamDuration = new HistogramFamily({
    name: 'regate_upstream_duration_seconds',
    help: 'Time from forwarding a request to the upstream response headers, by route.',
    labelNames: ['route'] as const,
    buckets: UPSTREAM_BUCKETS,
    registers,
  });
  const authnFailures = new CounterFamily({
    name: 'regate_authn_failures_total',
    help: 'Rejected authentications, by reason.',
    labelNames: ['reason'] as const,
    registers,
  });
  const denials = new CounterFamily({
    name: 'regate_denials_total',
    help: 'Requests not allowed (denied by policy or refused by an error), by route and reason.',
    labelNames: ['route', 'reason'] as const,
    registers,
  });
  const forwardFailures = new CounterFamily({
    name: 'regate_forward_failures_total',
    help: 'Allowed requests whose forwarding failed or ended early (upstream error or timeout, client gone), by route and reason.',
    labelNames: ['route', 'reason'] as const,
    registers,
  });
  const authzRequests = new CounterFamily({
    name: 'regate_authz_requests_total',
    help: 'Of regate_requests_total: the check requests a proxy in front sent to the authz listener (listen.authz), by route, protocol (nginx|forward_auth|envoy_http) and decision.',
    labelNames: ['route', 'protocol', 'decision'] as const,
    registers,
  });
  const bundleInfo = new Gauge({
    name: 'regate_policy_bundle_info',
    help: 'The loaded policy bundle; always 1.',
    labelNames: ['name', 'revision'] as const,
    // Cluster (`workers`): 1 per revision any worker runs, not the number of workers.
    aggregator: 'max',
    registers,
  });
  const jwksRefreshes = new Counter({
    name: 'regate_jwks_refresh_total',
    help: 'JWKS fetches, by issuer id and result (success|not_modified|error).',
    labelNames: ['issuer', 'result'] as const,
    registers,
  });
  const discoveries = new Counter({
    name: 'regate_oidc_discovery_total',
    help: 'OIDC discovery document fetches (issuers[].discovery), by issuer id and result (success|error).',
    labelNames: ['issuer', 'result'] as const,
    registers,
  });
  const introspections = new Counter({
    name: 'regate_introspection_requests_total',
    help: 'RFC 7662 introspection calls, by issuer id and result (active|inactive|refused|error); cache hits are not calls.',
    labelNames: ['issuer', 'result'] as const,
    registers,
  });
  const introspectionHits = new Counter({
    name: 'regate_introspection_cache_hits_total',
    help: 'Introspections answered from the cache, by issuer id and kind (positive: an active token; negative: an inactive or refused one).',
    labelNames: ['issuer', 'kind'] as const,
    registers,
  });
  const decisionLogErrors = new Counter({
    name: 'regate_decision_log_errors_total',
    help: 'Decision-log records that could not be written.',
    registers,
  });
  const decisionLogDropped = new Counter({
    name: 'regate_decision_log_dropped_total',
    help: 'Decision-log records dropped because the write buffer was full (decision_log.overload: drop).',
    registers,
  });
  const uploadRequests = new Counter({
    name: 'regate_decision_log_upload_requests_total',
    help: 'Decision-log upload requests to decision_log.service, by result (success: 2xx; rejected: another status, retried; too_large: 413, split or dropped; failed: no response, retried).',
    labelNames: ['result'] as const,
    registers,
  });
  for (const result of UPLOAD_RESULTS) uploadRequests.labels({ result }).inc(0);
  const uploadEvents = new Counter({
    name: 'regate_decision_log_upload_events_total',
    help: 'Decision-log events delivered to decision_log.service (acknowledged with a 2xx).',
    registers,
  });
  const uploadBytes = new Counter({
    name: 'regate_decision_log_upload_bytes_total',
    help: 'Compressed request-body bytes delivered to decision_log.service (acknowledged with a 2xx).',
    registers,
  });
  const uploadBuffer = new Gauge({
    name: 'regate_decision_log_upload_buffer_bytes',
    help: 'Uncompressed bytes of decision-log events waiting for upload (including a chunk being sent); at most buffer_size_limit_bytes per process.',
    registers,
  });
  const uploadDropped = new Counter({
    name: 'regate_decision_log_upload_dropped_events_total',
    help: 'Decision-log events never delivered to decision_log.service, by reason (buffer_full: oldest dropped for a new one; too_large: one event over upload_size_limit_bytes; shutdown: left when the last upload attempt ended).',
    labelNames: ['reason'] as const,
    registers,
  });
  for (const reason of UPLOAD_DROP_REASONS) uploadDropped.labels({ reason }).inc(0);
  const decisionLogUpload: UploadObserver = {
    upload(result, events, bytes) {
      uploadRequests.labels({ result }).inc();
      if (result === 'success') {
        uploadEvents.inc(events);
        uploadBytes.inc(bytes);
      }
    },
    dropped(reason, count) {
      uploadDropped.labels({ reason }).inc(count);
    },
    buffered(bytes) {
      uploadBuffer.set(bytes);
    },
  };
  const spansExported = new Counter({
    name: 'regate_tracing_spans_exported_total',
    help: 'Spans the OTLP receiver (tracing.otlp) acknowledged.',
    registers,
  });
  const spansDropped = new Counter({
    name: 'regate_tracing_spans_dropped_total',
    help: 'Spans never exported, by reason (queue_full: the export queue was full; export_failed: the export request failed; shutdown: left at exit).',
    labelNames: ['reason'] as const,
    registers,
  });
  for (const reason of SPAN_DROP_REASONS) spansDropped.labels({ reason }).inc(0);
  const spanExport: ExportObserver = {
    exported: (n) => spansExported.inc(n),
    dropped: (reason, n) => spansDropped.labels({ reason }).inc(n),
  };
  let bufferedSource: () => number = () => 0;
  new Gauge({
    name: 'regate_decision_log_buffer_bytes',
    help: 'Decision-log bytes accepted and not yet written to their destination, every destination (bounded by decision_log.max_buffer_bytes each).',
    registers,
    collect() {
      this.set(bufferedSource());
    },
  });
  const tlsReloads = new Counter({
    name: 'regate_tls_reloads_total',
    help: 'Certificate reloads of a TLS listener after its cert_file, key_file or ca_file changed, by listener and result (failure: the files were refused and the previous certificate keeps serving).',
    labelNames: ['listener', 'result'] as const,
    registers,
  });
  const tlsHandshakeFailures = new Counter({
    name: 'regate_tls_handshake_errors_total',
    help: "TLS handshakes a listener's TLS layer failed before any HTTP (no client certificate under client_auth: required, a protocol version below min_version, not TLS at all, handshake timeout), by listener.",
    labelNames: ['listener'] as const,
    registers,
  });
  const upstreamTlsReloads = new Counter({
    name: 'regate_upstream_tls_reloads_total',
    help: "Reloads of an upstream's TLS files (upstreams.<id>.tls) after they changed, by upstream and result (failure: refused, the previous material stays in use).",
    labelNames: ['upstream', 'result'] as const,
    registers,
  });
  const parserRefusals = new Counter({
    name: 'regate_parser_refusals_total',
    help: "Requests node's HTTP parser refused before routing (malformed syntax incl. Content-Length with Transfer-Encoding, oversized header block, head timeout), by reason. They get a problem response but no decision and no decision-log line.",
    labelNames: ['reason'] as const,
    registers,
  });
  for (const reason of PARSER_REFUSAL_REASONS) parserRefusals.labels({ reason }).inc(0);
  const http2Resets = new Counter({
    name: 'regate_http2_streams_reset_total',
    help: 'HTTP/2 streams the client cancelled (RST_STREAM) before their response ended. A surge is the "rapid reset" pattern (CVE-2023-44487), bounded per connection by listen.proxy.http2.max_resets.',
    registers,
  });
  const http2Goaways = new Counter({
    name: 'regate_http2_goaway_total',
    help: 'HTTP/2 connections regate ended with GOAWAY, by reason: rapid_reset (more client resets than listen.proxy.http2.max_resets in reset_window_ms), idle (idle_timeout_ms), shutdown (drain), protocol_error (the connection failed on a frame nghttp2 refused: oversized or flooding header blocks, bad frames).',
    labelNames: ['reason'] as const,
    registers,
  });
  for (const reason of HTTP2_GOAWAY_REASONS) http2Goaways.labels({ reason }).inc(0);
  const tokenCacheLookups = new CounterFamily({
    name: 'regate_token_cache_lookups_total',
    help: 'Verified-token cache lookups, by result (hit: verification skipped, miss: the token was verified).',
    labelNames: ['result'] as const,
    registers,
  });
  // Resolved once: the request path only calls inc() on a cached child.
  const tokenCacheHit = tokenCacheLookups.series({ result: 'hit' });
  const tokenCacheMiss = tokenCacheLookups.series({ result: 'miss' });
  tokenCacheHit.inc(0);
  tokenCacheMiss.inc(0);
  const bundleRequests = new Counter({
    name: 'regate_bundle_requests_total',
    help: 'Requests to the bundle server (policy.service), by result (modified: a new bundle was downloaded, not_modified: 304, error).',
    labelNames: ['result'] as const,
    registers,
  });
  for (const result of BUNDLE_REQUEST_RESULTS) bundleRequests.labels({ result }).inc(0);
  const bundleActivations = new Counter({
    name: 'regate_bundle_activations_total',
    help: 'New policy bundles read by the bundle source, by result (success: verified and handed over for activation, error: refused).',
    labelNames: ['result'] as const,
    registers,
  });
  for (const result of BUNDLE_ACTIVATION_RESULTS) bundleActivations.labels({ result }).inc(0);
  const bundleErrors = new Counter({
    name: 'regate_bundle_errors_total',
    help: 'Bundle source failures (download errors and refused bundles), by reason.',
    labelNames: ['reason'] as const,
    registers,
  });
  for (const reason of BUNDLE_REASONS) bundleErrors.labels({ reason }).inc(0);
  const bundleLastSuccess = new Gauge({
    name: 'regate_bundle_last_success_timestamp_seconds',
    help: 'When the bundle source last confirmed the newest bundle is active (new bundle handed over, or 304 from the server), seconds since the epoch; 0 before the first.',
    // Cluster: the stalest worker, so a staleness alert fires if any worker is behind.
    aggregator: 'min',
    registers,
  });
  const bundleLastCheck = new Gauge({
    name: 'regate_bundle_last_check_timestamp_seconds',
    help: 'When the bundle source last confirmed that the active bundle is its newest (a successful poll, 200 or 304; a file check that found the active content), seconds since the epoch; 0 before the first. A file source checks every few seconds, a service at every poll.',
    // Cluster: the stalest worker.
    aggregator: 'min',
    registers,
  });
  const bundleSourceInfo = new Gauge({
    name: 'regate_bundle_source_info',
    help: 'The kind of policy bundle source (file: policy.bundle, watched; service: policy.service, polled); always 1.',
    labelNames: ['kind'] as const,
    aggregator: 'max',
    registers,
  });
  const dryRunDecisions = new CounterFamily({
    name: 'regate_dry_run_decisions_total',
    help: 'Policy decisions on dry_run routes, which were forwarded whatever they said, by route and would-be decision (allow|deny|error).',
    labelNames: ['route', 'decision'] as const,
    registers,
  });
  const engineResets = new Counter({
    name: 'regate_policy_engine_resets_total',
    help: 'Rebuilds of a policy engine\'s wasm instance after a failed evaluation had grown its memory, by bundle (active|candidate); other failed evaluations are repaired in place.',
    labelNames: ['bundle'] as const,
    registers,
  });
  for (const bundle of POLICY_ENGINE_BUNDLES) engineResets.labels({ bundle }).inc(0);
  const shadowDecisions = new CounterFamily({
    name: 'regate_shadow_decisions_total',
    help: 'Shadow (candidate) policy evaluations, by route and agreement with the enforced decision (agree|disagree|error).',
    labelNames: ['route', 'agreement'] as const,
    registers,
  });
  const reloads = new Counter({
    name: 'regate_reloads_total',
    help: 'Reload attempts of config or policy bundle, by trigger (file|signal|bundle) and result (success|error).',
    labelNames: ['trigger', 'result'] as const,
    registers,
  });
  for (const trigger of RELOAD_TRIGGERS) for (const result of RELOAD_RESULTS) reloads.labels({ trigger, result }).inc(0);
  const lastReloadSuccess = new Gauge({
    name: 'regate_config_last_reload_success_timestamp_seconds',
    help: 'When the running config and bundles became active (startup or last successful reload), seconds since the epoch.',
    // Cluster: the oldest worker's.
    aggregator: 'min',
    registers,
  });
  const reloadSuccess = new Gauge({
    name: 'regate_config_reload_success',
    help: 'Whether the last reload attempt succeeded (1) or was refused (0); the last good version keeps serving.',
    // Cluster: 0 as soon as one worker refused its last reload.
    aggregator: 'min',
    registers,
  });
  const attributeLookups = new CounterFamily({
    name: 'regate_attribute_lookups_total',
    help: 'Resource-attribute lookups (routes[].resource), by route and result (hit|coalesced|miss or the failure reason).',
    labelNames: ['route', 'result'] as const,
    registers,
  });
  const attributeFetchDuration = new HistogramFamily({
    name: 'regate_attribute_fetch_duration_seconds',
    help: 'Time of requests to a resource catalog (cache misses only), by route.',
    labelNames: ['route'] as const,
    buckets: ATTRIBUTE_BUCKETS,
    registers,
  });
  const lookupResults = new Set<string>(ATTRIBUTE_LOOKUP_RESULTS);
  // Keyed `${route}\0${result}`; the fetch histogram by route.
  const lookupChildren = new Map<string, CounterChild>();
  const fetchChildren = new Map<string, HistogramChild>();
  const lookupChild = (route: string, result: string): CounterChild => {
    const key = `${route}\0${result}`;
    let c = lookupChildren.get(key);
    if (c === undefined) {
      c = attributeLookups.series({ route, result });
      lookupChildren.set(key, c);
    }
    return c;
  };
  const fetchChild = (route: string): HistogramChild => {
    let h = fetchChildren.get(route);
    if (h === undefined) {
      h = attributeFetchDuration.series({ route });
      fetchChildren.set(route, h);
    }
    return h;
  };
  const buildInfo = new Gauge({
    name: 'regate_build_info',
    help: 'regate build information; always 1.',
    labelNames: ['version', 'node'] as const,
    aggregator: 'max',
    registers,
  });
  buildInfo.set({ version: options.version ?? 'unknown', node: process.version }, 1);

  const authnReasons = new Set<string>(AUTHN_REASONS);
  const authnChildren = new Map<string, CounterChild>();
  for (const reason of [...AUTHN_REASONS, OTHER_REASON]) {
    const child = authnFailures.series({ reason });
    child.inc(0);
    authnChildren.set(reason, child);
  }
  const reasons = new Set<string>(REQUEST_REASONS);
  // Keyed `${route}\0${protocol}\0${decision}`.
  const authzChildren = new Map<string, CounterChild>();
  const authzChild = (route: string, protocol: string, decision: string): CounterChild => {
    const key = `${route}\0${protocol}\0${decision}`;
    let c = authzChildren.get(key);
    if (c === undefined) {
      c = authzRequests.series({ route, protocol, decision });
      authzChildren.set(key, c);
    }
    return c;
  };

  const routes = new Map<string, RouteSeries>();
  const addRoute = (route: string): void => {
    if (routes.has(route)) return;
    const series: RouteSeries = {
      requests: { allow: [], deny: [], error: [] },
      duration: requestDuration.series({ route }),
      // Nothing unmatched is forwarded: no upstream series for it.
      upstream: route === UNMATCHED_ROUTE ? undefined : upstreamDuration.series({ route }),
      denials: new Map(),
      forwardFailures: new Map(),
    };
    for (const decision of DECISIONS) {
      // Nothing unmatched is ever allowed: it is refused (400/404/405) or fails (503 not ready).
      if (route === UNMATCHED_ROUTE && decision === 'allow') continue;
      for (const cls of PREINIT[decision]) {
        const child = requests.series({ route, decision, status_class: STATUS_CLASSES[cls]! });
        child.inc(0);
        series.requests[decision][cls] = child;
      }
    }
    if (route !== UNMATCHED_ROUTE) {
      const denied = denials.series({ route, reason: 'policy_denied' });
      denied.inc(0);
      series.denials.set('policy_denied', denied);
      // The two upstream failures worth an alert per route exist from the start.
      for (const reason of ['upstream_unavailable', 'upstream_timeout']) {
        const failed = forwardFailures.series({ route, reason });
        failed.inc(0);
        series.forwardFailures.set(reason, failed);
      }
    }
    routes.set(route, series);
  };

  const issuers = new Set<string>();
  const addIssuer = (issuer: string): void => {
    if (issuers.has(issuer)) return;
    issuers.add(issuer);
    for (const result of JWKS_REFRESH_RESULTS) jwksRefreshes.labels({ issuer, result }).inc(0);
  };

  // Keyed `${route}\0${value}`: one cached child per series, created on first use or configure().
  const dryRunChildren = new Map<string, CounterChild>();
  const shadowChildren = new Map<string, CounterChild>();
  const child = (cache: Map<string, CounterChild>, counter: CounterFamily, route: string, label: 'decision' | 'agreement', value: string): CounterChild => {
    const key = `${route}\0${value}`;
    let c = cache.get(key);
    if (c === undefined) {
      c = counter.series({ route, [label]: value });
      cache.set(key, c);
    }
    return c;
  };

  const websocket = createWebSocketMetrics(registry, (id) => (id !== null && routes.has(id) ? id : UNMATCHED_ROUTE));
  const configure = (ids: MetricIds): void => {
    for (const id of ids.routeIds) {
      if (id === UNMATCHED_ROUTE) throw new TypeError(`route id ${UNMATCHED_ROUTE} is reserved for unmatched requests`);
      addRoute(id);
    }
    for (const id of ids.issuerIds ?? []) {
      if (id === OTHER_ISSUER) throw new TypeError(`issuer id ${OTHER_ISSUER} is reserved`);
      addIssuer(id);
    }
    for (const route of ids.dryRunRouteIds ?? []) for (const d of DECISIONS) child(dryRunChildren, dryRunDecisions, route, 'decision', d).inc(0);
    for (const route of ids.shadowRouteIds ?? []) for (const a of SHADOW_AGREEMENTS) child(shadowChildren, shadowDecisions, route, 'agreement', a).inc(0);
    for (const route of ids.resourceRouteIds ?? []) {
      for (const result of ATTRIBUTE_LOOKUP_RESULTS) lookupChild(route, result).inc(0);
      fetchChild(route);
    }
    websocket.configure(ids.websocketRouteIds ?? []);
  };
  addRoute(UNMATCHED_ROUTE);
  configure(options);
  const unmatched = routes.get(UNMATCHED_ROUTE)!;

  const setBundle = (bundle: { readonly name: string; readonly revision: string }): void => {
    // An info metric carries exactly one series: drop the previous revision.
    bundleInfo.reset();
    bundleInfo.set({ name: bundle.name, revision: bundle.revision }, 1);
  };
  setBundle(options.bundle);

  const countReason = (cache: Map<string, CounterChild>, counter: CounterFamily, route: string, raw: string): void => {
    const reason = reasons.has(raw) ? raw : OTHER_REASON;
    let child = cache.get(reason);
    if (child === undefined) {
      child = counter.series({ route, reason });
      cache.set(reason, child);
    }
    child.inc();
  };

  return {
    registry,
    websocket,
    credentials: createCredentialMetrics(registry),
    observe(o: RequestOutcome): void {
      const series = (o.routeId === null ? undefined : routes.get(o.routeId)) ?? unmatched;
      const route = series === unmatched ? UNMATCHED_ROUTE : (o.routeId as string);
      const cls = o.status >= 100 && o.status < 600 ? Math.floor(o.status / 100) : 0;
      const byClass = series.requests[o.decision];
      if (byClass === undefined) throw new TypeError(`unknown decision ${JSON.stringify(o.decision)}`);
      let counter = byClass[cls];
      if (counter === undefined) {
        counter = requests.series({ route, decision: o.decision, status_class: STATUS_CLASSES[cls]! });
        byClass[cls] = counter;
      }
      counter.inc();
      if (o.frontEnd !== undefined) authzChild(route, o.frontEnd, o.decision).inc();

      const seconds = nsToSeconds(o.durationNs);
      // A sampled request's trace id becomes its bucket's exemplar (OpenMetrics).
      if (seconds !== undefined) series.duration.observe(seconds, o.traceId);
      const evalSeconds = nsToSeconds(o.evalNs);
      if (evalSeconds !== undefined) decisionSeries.observe(evalSeconds);
      // The forwarder reports 0 when no response headers ever arrived: not a 0 s answer.
      const upstreamSeconds = o.upstreamNs === 0 ? undefined : nsToSeconds(o.upstreamNs);
      if (upstreamSeconds !== undefined) (series.upstream ?? upstreamDuration.series({ route })).observe(upstreamSeconds);

      if (o.authn.outcome === 'failed') {
        const reason = o.authn.reason !== undefined && authnReasons.has(o.authn.reason) ? o.authn.reason : OTHER_REASON;
        authnChildren.get(reason)!.inc();
      }

      if (o.decision !== 'allow') {
        countReason(series.denials, denials, route, o.reason);
      } else if (o.reason !== 'allowed') {
        countReason(series.forwardFailures, forwardFailures, route, o.reason);
      }

      // Both come from the pipeline's fixed vocabularies (DECISIONS, SHADOW_AGREEMENTS): bounded.
      if (o.dryRun !== undefined) child(dryRunChildren, dryRunDecisions, route, 'decision', o.dryRun.decision).inc();
      if (o.shadow !== undefined) child(shadowChildren, shadowDecisions, route, 'agreement', o.shadow.agreement).inc();
    },
    jwksRefresh(issuer: string, result: JwksRefreshResult): void {
      if (!(JWKS_REFRESH_RESULTS as readonly string[]).includes(result)) {
        throw new TypeError(`unknown JWKS refresh result ${JSON.stringify(result)}`);
      }
      jwksRefreshes.inc({ issuer: issuers.has(issuer) ? issuer : OTHER_ISSUER, result });
    },
    discovery(issuer: string, result: 'success' | 'error'): void {
      discoveries.inc({ issuer: issuers.has(issuer) ? issuer : OTHER_ISSUER, result: result === 'success' ? 'success' : 'error' });
    },
    introspectionRequest(issuer: string, result: IntrospectionResult): void {
      if (!(INTROSPECTION_RESULTS as readonly string[]).includes(result)) throw new TypeError(`unknown introspection result ${JSON.stringify(result)}`);
      introspections.inc({ issuer: issuers.has(issuer) ? issuer : OTHER_ISSUER, result });
    },
    introspectionCacheHit(issuer: string, kind: IntrospectionCacheKind): void {
      introspectionHits.inc({ issuer: issuers.has(issuer) ? issuer : OTHER_ISSUER, kind: kind === 'positive' ? 'positive' : 'negative' });
    },
    setBundle,
    configure,
    decisionLogUpload,
    spanExport,
    decisionLogError(): void {
      decisionLogErrors.inc();
    },
    policyEngineReset(bundle: PolicyEngineBundle): void {
      if (!POLICY_ENGINE_BUNDLES.includes(bundle)) throw new TypeError(`unknown policy engine bundle ${JSON.stringify(bundle)}`);
      engineResets.inc({ bundle });
    },
    decisionLogDropped(): void {
      decisionLogDropped.inc();
    },
    decisionLogBuffered(source: () => number): void {
      bufferedSource = source;
    },
    parserRefusal(reason: ParserRefusalReason): void {
      parserRefusals.labels({ reason }).inc();
    },
    http2: {
      streamReset(): void {
        http2Resets.inc();
      },
      goaway(reason: Http2GoawayReason): void {
        http2Goaways.labels({ reason }).inc();
      },
    },
    tokenCacheLookup(result: TokenCacheResult): void {
      (result === 'hit' ? tokenCacheHit : tokenCacheMiss).inc();
    },
    bundleRequest(result: BundleRequestResult): void {
      if (!BUNDLE_REQUEST_RESULTS.includes(result)) throw new TypeError(`unknown bundle request result ${JSON.stringify(result)}`);
      bundleRequests.inc({ result });
    },
    bundleActivation(result: BundleActivationResult): void {
      if (!BUNDLE_ACTIVATION_RESULTS.includes(result)) throw new TypeError(`unknown bundle activation result ${JSON.stringify(result)}`);
      bundleActivations.inc({ result });
    },
    bundleError(reason: BundleReason): void {
      if (!BUNDLE_REASONS.includes(reason)) throw new TypeError(`unknown bundle error reason ${JSON.stringify(reason)}`);
      bundleErrors.inc({ reason });
    },
    bundleUpToDate(nowSeconds = Date.now() / 1000): void {
      bundleLastSuccess.set(nowSeconds);
    },
    bundleChecked(nowSeconds = Date.now() / 1000): void {
      bundleLastCheck.set(nowSeconds);
    },
    bundleSource(kind: BundleSourceKind): void {
      if (!BUNDLE_SOURCE_KINDS.includes(kind)) throw new TypeError(`unknown bundle source kind ${JSON.stringify(kind)}`);
      bundleSourceInfo.reset();
      bundleSourceInfo.set({ kind }, 1);
    },
    reloaded(trigger: ReloadTrigger, result: ReloadResult, nowSeconds = Date.now() / 1000): void {
      if (!RELOAD_TRIGGERS.includes(trigger) || !RELOAD_RESULTS.includes(result)) {
        throw new TypeError(`unknown reload trigger/result ${JSON.stringify([trigger, result])}`);
      }
      reloads.inc({ trigger, result });
      reloadSuccess.set(result === 'success' ? 1 : 0);
      if (result === 'success') lastReloadSuccess.set(nowSeconds);
    },
    activated(nowSeconds = Date.now() / 1000): void {
      reloadSuccess.set(1);
      lastReloadSuccess.set(nowSeconds);
    },
    attributeLookup(route: string, result: string): void {
      // Route ids come from the config; results from the catalog's fixed vocabulary.
      lookupChild(routes.has(route) ? route : UNMATCHED_ROUTE, lookupResults.has(result) ? result : OTHER_REASON).inc();
    },
    attributeFetched(route: string, seconds: number): void {
      if (Number.isFinite(seconds) && seconds >= 0) fetchChild(routes.has(route) ? route : UNMATCHED_ROUTE).observe(seconds);
    },
    tlsReload(listener: TlsListener, result: TlsReloadResult): void {
      if (!TLS_LISTENERS.includes(listener) || !TLS_RELOAD_RESULTS.includes(result)) throw new TypeError(`unknown TLS reload ${JSON.stringify([listener, result])}`);
      tlsReloads.inc({ listener, result });
    },
    tlsHandshakeFailure(listener: TlsListener): void {
      if (!TLS_LISTENERS.includes(listener)) throw new TypeError(`unknown TLS listener ${JSON.stringify(listener)}`);
      tlsHandshakeFailures.inc({ listener });
    },
    upstreamTlsReload(upstream: string, result: TlsReloadResult): void {
      if (!TLS_RELOAD_RESULTS.includes(result)) throw new TypeError(`unknown TLS reload result ${JSON.stringify(result)}`);
      upstreamTlsReloads.inc({ upstream, result });
    },
  };
}

/** ns → s for a histogram; undefined for absent or nonsensical values (never throw on the request path). */
function nsToSeconds(ns: number | undefined): number | undefined {
  if (ns === undefined || !Number.isFinite(ns) || ns < 0) return undefined;
  return ns / 1e9;
}
