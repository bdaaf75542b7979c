/**
 * The validated configuration, defaults applied, deep-frozen.
 *
 * Produced once by `loadConfig()` from a YAML file that has passed the JSON
 * Schema in `regate.schema.json`. Nothing on the request path reads YAML or
 * validates anything: stages are compiled from this at startup.
 *
 * Relative file paths (`jwks_file`, `policy.bundle`, `decision_log.destination`
 * when a path) are resolved against the config file's directory by the loader.
 */

export interface ListenerConfig {
  readonly host: string;
  /** 0 picks a free port (tests). */
  readonly port: number;
}

/** Lowest TLS version accepted (`min_version`). */
export type TlsVersion = 'TLSv1.2' | 'TLSv1.3';

/** Whether a TLS listener asks for client certificates (`client_auth`). */
export type ClientAuth = 'none' | 'optional' | 'required';

/** `listen.proxy.tls` / `listen.authz.tls`: terminate TLS on the listener (src/tls/server-context.ts). */
export interface ListenerTlsConfig {
  /** PEM certificate chain (leaf first). Absolute once loaded; watched. */
  readonly cert_file: string;
  /** PEM private key of `cert_file`. Absolute once loaded; watched. */
  readonly key_file: string;
  /** PEM CA certificates client certificates are verified against; required unless `client_auth: none`. */
  readonly ca_file?: string;
  /** `none`: no client certificate asked. `optional`: asked, verified if sent. `required`: handshake refused without a verified one. Default `none`. */
  readonly client_auth: ClientAuth;
  /** Default `TLSv1.2`. */
  readonly min_version: TlsVersion;
}

/** A proxy or authz listener: an address, optionally with TLS. */
export interface ServingListenerConfig extends ListenerConfig {
  /** Absent: plaintext HTTP. */
  readonly tls?: ListenerTlsConfig;
}

/** `upstreams.<id>.tls`: how regate verifies (and authenticates to) an https upstream (src/tls/client-context.ts). */
export interface UpstreamTlsConfig {
  /** PEM CA certificates the upstream's certificate is verified against; absent: Node's bundled public CAs. */
  readonly ca_file?: string;
  /** Client certificate (PEM chain) presented to the upstream; set with `key_file`. */
  readonly cert_file?: string;
  readonly key_file?: string;
  /** SNI and the name the upstream's certificate must match; absent: the URL's host. */
  readonly servername?: string;
  /** Default `TLSv1.2`. */
  readonly min_version: TlsVersion;
}
/** `listen.proxy.http2`: HTTP/2 on the proxy listener (src/http2/). */
export interface Http2Config {
  /** Accept cleartext HTTP/2 with prior knowledge beside HTTP/1.1. Default false. */
  readonly h2c: boolean;
  /** With `listen.proxy.tls`: offer `h2` by ALPN beside `http/1.1`. Default true. */
  readonly h2: boolean;
  /** SETTINGS_MAX_CONCURRENT_STREAMS. Default 100. */
  readonly max_concurrent_streams: number;
  /** SETTINGS_MAX_HEADER_LIST_SIZE, bytes. Default 16384. */
  readonly max_header_list_bytes: number;
  /** Client stream resets allowed per connection within `reset_window_ms` (rapid reset). Default 200. */
  readonly max_resets: number;
  /** Default 10000. */
  readonly reset_window_ms: number;
  /** A connection without open streams for this long is closed. Default 65000. */
  readonly idle_timeout_ms: number;
}

/** `listen.proxy`: the API listener. */
export interface ProxyListenerConfig extends ServingListenerConfig {
  readonly http2: Http2Config;
}

/** `upstreams.<id>.protocol`. */
export type UpstreamProtocol = 'http1' | 'h2c' | 'h2';

/** Which header fields carry the original request to the authz listener (src/authz/http.ts). */
export type AuthzProtocol = 'nginx' | 'forward_auth' | 'envoy_http' | 'envoy_grpc';

export interface AuthzListenerConfig extends ServingListenerConfig {
  readonly protocol: AuthzProtocol;
  /** `envoy_http`: the http_service `path_prefix`, stripped from the check request's path. '' for none. */
  readonly path_prefix: string;
}

export interface UpstreamConfig {
  readonly id: string;
  /** Origin plus optional base path, e.g. `http://127.0.0.1:8000` or `http://svc:80/api`. */
  readonly url: string;
  /** HTTP/1.1, cleartext HTTP/2 with prior knowledge, or HTTP/2 over TLS. Default `http1`. */
  readonly protocol: UpstreamProtocol;
  readonly timeouts: {
    /** TCP/TLS connect timeout. Exceeded → 504. Default 2000. */
    readonly connect_ms: number;
    /** Time to the upstream's response headers. Exceeded → 504. Default 30000. */
    readonly headers_ms: number;
    /** Max idle time between body chunks (either direction). Default 300000 (SSE-friendly). */
    readonly body_ms: number;
  };
  readonly pool: {
    /** Max connections to this upstream. Default 128. */
    readonly connections: number;
    /** Keep-alive idle timeout. Default 4000. */
    readonly keepalive_timeout_ms: number;
  };
  /** Client request headers (any spelling) never forwarded to this upstream, on any route. Default []. */
  readonly request_headers_to_remove: readonly string[];
  /** TLS settings for an `https://` upstream; absent: Node's defaults (public CAs, URL host). */
  readonly tls?: UpstreamTlsConfig;
  /**
   * Named secrets regate injects into allowed requests (`routes[].credentials`, the decision's
   * `credentials`). The loader always sets it (default {}); optional for configs built in code.
   */
  readonly credentials?: Readonly<Record<string, UpstreamCredentialConfig>>;
}

/** `upstreams.<id>.credentials.<name>`: a secret header regate sets on allowed requests (src/upstream/credentials.ts). */
export interface UpstreamCredentialConfig {
  /** The header the upstream reads the credential from, e.g. `Authorization`, `X-Api-Key`. */
  readonly header: string;
  /** Sent before the secret and a space (`Bearer`); absent: the secret alone. */
  readonly scheme?: string;
  /** File holding the secret (trailing newline removed). Absolute once loaded; watched. */
  readonly value_file: string;
}

export interface ClaimMapping {
  /** Dot path into the verified claims, e.g. `realm_access.roles`. Default `roles`. */
  readonly roles: string;
  /** Default `groups`. */
  readonly groups: string;
  /** Default `scope` (a space-separated string per RFC 8693 §4.2, or an array). */
  readonly scopes: string;
  /** Default `tenant`. */
  readonly tenant: string;
}

export interface IssuerConfig {
  /** Short name used in logs and metrics; defaults to the index. */
  readonly id: string;
  /** Exact `iss` value expected. */
  readonly issuer: string;
  /**
   * The key source: at most one of jwks_url / jwks_file / discovery; none only for an
   * introspection-only issuer (`introspection` set).
   */
  readonly jwks_url?: string;
  readonly jwks_file?: string;
  /** OIDC discovery: `<issuer>/.well-known/openid-configuration` names the `jwks_uri` (and `introspection_endpoint`). */
  readonly discovery?: true;
  /** RFC 7662 token introspection for opaque tokens. */
  readonly introspection?: IntrospectionConfig;
  /** At least one; a token's `aud` must contain one of them. */
  readonly audiences: readonly string[];
  /** Allowlist, e.g. [ES256]; required with a key source, [] for an introspection-only issuer. `none` and HS* are refused by the schema. */
  readonly algorithms: readonly string[];
  /** Seconds of leeway for exp/nbf/iat. Default 30. */
  readonly clock_tolerance_s: number;
  /** Claims that must be present besides exp (e.g. sub). Default [] */
  readonly required_claims: readonly string[];
  readonly jwks: {
    /** Fetch timeout. Default 5000. */
    readonly timeout_ms: number;
    /** How long fetched keys are considered fresh. Default 300. */
    readonly cache_max_age_s: number;
    /** Minimum time between two refetches triggered by an unknown kid. Default 30. */
    readonly cooldown_s: number;
  };
  readonly claims: ClaimMapping;
}

/** `issuers[].introspection`: RFC 7662 introspection of opaque tokens. */
export interface IntrospectionConfig {
  /** The introspection endpoint; absent: the discovered `introspection_endpoint` (needs `discovery: true`). */
  readonly url?: string;
  /** The client regate authenticates as (RFC 7662 §2.1); required with a credential. */
  readonly client_id?: string;
  /** File holding the client secret (HTTP Basic, RFC 6749 §2.3.1); re-read on every reload. */
  readonly client_secret_file?: string;
  /** A signed client assertion instead of a secret (RFC 7523 `private_key_jwt`). */
  readonly private_key_jwt?: { readonly key_file: string; readonly alg: string; readonly kid?: string };
  /** One introspection call, connect to body. Default 3000. */
  readonly timeout_ms: number;
  readonly cache: {
    /** Bounded LRU (0: no cache). Default 10000. */
    readonly max_entries: number;
    /** How long an inactive or refused token is remembered. Default 10. */
    readonly negative_ttl_s: number;
    /** Upper bound for an active token (also bounded by its `exp`): revocation is seen after at most this long. Default 60. */
    readonly max_ttl_s: number;
  };
}

export interface PolicyConfig {
  /**
   * Path to an OPA bundle (.tar.gz built with `opa build -t wasm`), watched for
   * changes. Exactly one of `bundle` / `service` is set.
   */
  readonly bundle?: string;
  /** An OPA-bundle-protocol HTTP server to poll for the bundle. Exactly one of `bundle` / `service` is set. */
  readonly service?: BundleServiceConfig;
  /** Verify OPA bundle signatures (`.signatures.json`) of every bundle, whatever its source. */
  readonly signing?: BundleSigningConfig;
  /** Entrypoint used by routes that name none, in OPA path form: `regate/authz/decision`. */
  readonly default_entrypoint: string;
  /** IANA timezone for `input.time.local`. Default `UTC`. */
  readonly timezone: string;
  /** A second bundle for shadow evaluation only (`routes[].shadow.bundle: candidate`); never enforced. */
  readonly candidate?: { readonly bundle: string };
}

/** `policy.service`: where and how often to fetch the bundle (OPA's bundle service protocol). */
export interface BundleServiceConfig {
  /** http(s) URL of the bundle, e.g. `https://bundles.example.com/bundles/authz.tar.gz`. */
  readonly url: string;
  /** Delay between two successful polls, uniformly random in [min, max] seconds. Defaults 60 / 120 (OPA's). */
  readonly polling: { readonly min_delay_seconds: number; readonly max_delay_seconds: number };
  /** Deadline for one request, response body included. Default 10000. */
  readonly timeout_ms: number;
  /** Extra request headers (e.g. authorization). Default {}. Names lower-case. */
  readonly headers: Readonly<Record<string, string>>;
  /** Largest response body accepted (the compressed bundle). Default 67108864 (64 MiB). */
  readonly max_download_bytes: number;
}

/** JWS algorithms accepted for bundle signatures: asymmetric only. */
export type BundleSigningAlgorithm = 'RS256' | 'RS384' | 'RS512' | 'PS256' | 'PS384' | 'PS512' | 'ES256' | 'ES384' | 'ES512';

/** `policy.signing`: OPA bundle signature verification. */
export interface BundleSigningConfig {
  /** PEM public key / certificate, or a JWKS file (keys chosen by `kid`). Absolute once loaded. */
  readonly public_key_file: string;
  /** The only JWS `alg` accepted. */
  readonly algorithm: BundleSigningAlgorithm;
  /** When set, the signature's key id (JWS `kid`, else the `keyid` claim) must equal it. */
  readonly keyid?: string;
  /** The signature's `scope` claim must equal this; absent = the signature must carry no scope (OPA). */
  readonly scope?: string;
  /** Bundle file globs (Go `path.Match` syntax) not verified, as OPA's `exclude_files`. Default []. */
  readonly exclude_files: readonly string[];
}

/**
 * `required` / `optional`: a bearer token (src/authn/jwt.ts). `mtls`: the verified client
 * certificate of a TLS listener is the identity (src/authn/mtls.ts). `none`: anonymous.
 */
export type AuthMode = 'required' | 'optional' | 'none' | 'mtls';

export interface RouteMatch {
  /** Upper-case HTTP methods. */
  readonly methods: readonly string[];
  /** Path template: `/v1/models/{model}/predict`, `/files/{path*}` or `/static/*`. */
  readonly path: string;
  /** Optional exact host (`api.example.com`) or a one-label wildcard (`*.example.com`). Port ignored. */
  readonly host?: string;
}

export interface RouteConfig {
  readonly id: string;
  readonly match: RouteMatch;
  /** Id of an entry in `upstreams`. */
  readonly upstream: string;
  readonly auth: AuthMode;
  /** Overrides `policy.default_entrypoint`. */
  readonly entrypoint?: string;
  /** Static resource attributes, exposed as `input.route.attributes`. */
  readonly attributes: Readonly<Record<string, unknown>>;
  /** IANA zone for `input.time.local` on this route; absent → `policy.timezone`. */
  readonly timezone?: string;
  /** Resource attributes fetched from an HTTP catalog → `input.resource`. Absent: no lookup. */
  readonly resource?: ResourceSourceConfig;
  /** Read the body into `input.request.body`. Absent: the body streams through unread. */
  readonly body?: BodyConfig;
  /**
   * Headers regate sets on the upstream request, name → source:
   * `subject.sub`, `subject.iss`, `subject.tenant`, `subject.roles`, `subject.groups`,
   * `subject.scopes` (arrays joined with ","), `token.<claim path>`, `route.id`, `decision.id`.
   * Any client-sent copy is removed in every spelling.
   */
  readonly identity_headers: Readonly<Record<string, string>>;
  /** Forward the client's Authorization header upstream. Default false. */
  readonly forward_authorization: boolean;
  /**
   * Names of the upstream's `credentials` injected into allowed requests; when the
   * policy's decision has a `credentials` field, the set it may choose from. The loader
   * always sets it (default []); optional for configs built in code.
   */
  readonly credentials?: readonly string[];
  /** A gRPC route: gRPC requests only, `input.request.grpc`, refusals as gRPC status. Default false. */
  readonly grpc: boolean;
  /** Put the policy's `reasons` into 403 problem documents. Default false. */
  readonly expose_reasons: boolean;
  /** Accept WebSocket upgrades, checked like any request, then relayed (src/pipeline/websocket.ts). Default false. */
  readonly websocket: boolean;
  /**
   * Evaluate and log, but forward whatever the policy decided (deny and policy
   * errors included). Authentication and routing are still enforced. Default false.
   */
  readonly dry_run: boolean;
  /** A candidate policy evaluated beside the enforced one, logged and counted, never enforced. */
  readonly shadow?: ShadowConfig;
  /** regate mints the upstream's token (signed by `broker`) instead of forwarding the caller's (src/broker/upstream-token.ts). */
  readonly upstream_token?: UpstreamTokenConfig;
}

/** `routes[].upstream_token`: a downscoped token for the upstream. */
export interface UpstreamTokenConfig {
  /** `aud` of the minted token; one of `broker.audiences`. */
  readonly audience: string;
  /** Fixed scopes, or `decision`: the route policy result's `upstream_scopes`. Intersected with the caller's scopes. Default []. */
  readonly scopes: readonly string[] | 'decision';
  /** Default 300; capped by `broker.max_ttl_s` and the caller token's `exp`. */
  readonly ttl_s: number;
}

/** `broker.signing_keys[]`: one private key file and its rotation state. */
export interface SigningKeyConfig {
  /** Absolute once loaded. JWK JSON or PKCS#8 PEM; P-256 (ES256) or Ed25519 (EdDSA). */
  readonly file: string;
  readonly use: 'active' | 'next' | 'retired';
}

/** How the token endpoint's caller is authenticated (`broker.client_auth`). */
export type BrokerClientAuth = 'private_key_jwt' | 'actor_token' | 'subject_token';

/** `broker.clients[]`: a `private_key_jwt` client. */
export interface BrokerClientConfig {
  readonly id: string;
  /** Absolute once loaded. */
  readonly jwks_file: string;
  readonly algorithms: readonly string[];
}

/** `broker`: the RFC 8693 token exchange endpoint (src/broker/). */
export interface BrokerConfig {
  /** Default `/oauth2/token`. */
  readonly path: string;
  /** `iss` of issued tokens, an http(s) URL. */
  readonly issuer: string;
  /** Exactly one `active`. */
  readonly signing_keys: readonly SigningKeyConfig[];
  /** OPA path form. */
  readonly entrypoint: string;
  readonly audiences: readonly string[];
  /** Default 300. */
  readonly default_ttl_s: number;
  /** Default 900. */
  readonly max_ttl_s: number;
  /** Default `optional`. */
  readonly actor_token: 'required' | 'optional';
  /** Default [private_key_jwt, actor_token]. */
  readonly client_auth: readonly BrokerClientAuth[];
  /** Default []. */
  readonly clients: readonly BrokerClientConfig[];
  /** Default false. */
  readonly single_use_subject_tokens: boolean;
  readonly replay: { readonly max_entries: number };
  /** Default 16384. */
  readonly max_body_bytes: number;
  /** Default 64. */
  readonly max_concurrent: number;
  /** Default `at+jwt`. */
  readonly token_type: 'at+jwt' | 'JWT';
  readonly upstream_token_cache: { readonly max_entries: number };
}

/** `routes[].shadow`: which candidate entrypoint to evaluate, and from which bundle. */
export interface ShadowConfig {
  /** OPA path form, e.g. `regate/authz/decision_v2`. */
  readonly entrypoint: string;
  /** `active`: the enforced bundle; `candidate`: `policy.candidate.bundle`. Default `active`. */
  readonly bundle: 'active' | 'candidate';
}

/** `reload`: picking up a changed config file (SIGHUP always reloads). */
export interface ReloadConfig {
  /** Watch the config file and reload when its content changes. Default true. */
  readonly watch: boolean;
  /** Quiet period after the last file event before reloading. Default 300. */
  readonly debounce_ms: number;
}

/** `shutdown`: SIGTERM / SIGINT handling. */
export interface ShutdownConfig {
  /** Time in-flight requests get once the listener is closed; then they are cut. Default 10000. */
  readonly grace_ms: number;
  /** Time between readiness turning false and the listener closing. Default 0. */
  readonly drain_delay_ms: number;
}

/** `token_cache`: identities of verified tokens, by exact token string (src/authn/token-cache.ts). */
export interface TokenCacheConfig {
  /** Most entries kept per process, LRU-evicted; 0 disables the cache. Default 10000. */
  readonly max_entries: number;
}

/** `routes[].resource`: where a route's resource attributes come from. */
export interface ResourceSourceConfig {
  /**
   * URL template; `{name}` is the route path parameter `name`, encoded with
   * `encodeURIComponent`. Validated at load: only parameters of `match.path`,
   * none in the scheme or authority.
   */
  readonly url: string;
  /** Whole-lookup timeout. Default 1000. */
  readonly timeout_ms: number;
  /** Lifetime of a cached successful lookup, seconds; 0 = no cache. Default 30. */
  readonly ttl_s: number;
  /** Catalog response size cap. Default 65536. */
  readonly max_bytes: number;
  /** Static request headers for the catalog, names lower-case. Default {}. */
  readonly headers: Readonly<Record<string, string>>;
}

/** `routes[].body`: read the request body into the policy input. */
export interface BodyConfig {
  /** Larger bodies → 413 `body_too_large`. Default 65536. */
  readonly max_bytes: number;
}

export interface DecisionLogConfig {
  readonly enabled: boolean;
  /** `stdout`, `stderr`, or a file path. Default `stdout`. */
  readonly destination: string;
  /**
   * JSON pointers removed from each record before it is written, OPA-style:
   * `/input/request/headers/cookie`. `/input/request/headers/authorization` is never logged anyway.
   */
  readonly mask: readonly string[];
  /** Static labels (OPA `labels`), e.g. {env: prod}. `id` and `version` are always set. */
  readonly labels: Readonly<Record<string, string>>;
  /** Bytes of records accepted and not yet written, at most (per destination). */
  readonly max_buffer_bytes: number;
  /** When the buffer is full: `block` (requests wait for room; nothing dropped) or `drop` (counted). */
  readonly overload: 'block' | 'drop';
  /** Also upload every record in OPA's decision-log service protocol. */
  readonly service?: DecisionLogServiceConfig;
}

/** `decision_log.service`: OPA's decision-log upload (`decision_logs` + `services[]` in OPA's config). */
export interface DecisionLogServiceConfig {
  /** http(s) base URL of the service. */
  readonly url: string;
  /** Path appended to `url`. Default `/logs` (OPA's). */
  readonly resource: string;
  /** Extra request headers. Default {}. Names lower-case. */
  readonly headers: Readonly<Record<string, string>>;
  /** `credentials.bearer`: `Authorization: <scheme> <token>`, the token read from a file (absolute once loaded). */
  readonly credentials: { readonly bearer?: { readonly token_path: string; readonly scheme: string } };
  /** Delay between two uploads after a success, uniformly random in [min, max] seconds. Defaults 300 / 600 (OPA's). */
  readonly min_delay_seconds: number;
  readonly max_delay_seconds: number;
  /** Largest compressed request body. Default 32768 (OPA's). */
  readonly upload_size_limit_bytes: number;
  /** Most uncompressed record bytes held for upload. Default 16 MiB. */
  readonly buffer_size_limit_bytes: number;
  /** Deadline for one upload request. Default 10000. */
  readonly timeout_ms: number;
}

/** `tracing`: OpenTelemetry spans over OTLP/HTTP. Absent → off. */
export interface TracingConfig {
  readonly otlp: {
    /** Base URL; `/v1/traces` is appended. */
    readonly endpoint: string;
    /** Extra request headers. Default {}. Names lower-case. */
    readonly headers: Readonly<Record<string, string>>;
    /** Deadline for one export. Default 10000. */
    readonly timeout_ms: number;
    /** Spans waiting for export, per process. Default 2048. */
    readonly max_queue_size: number;
    /** Spans per export request. Default 512. */
    readonly max_export_batch_size: number;
    /** Longest wait for a batch to fill. Default 5000. */
    readonly schedule_delay_ms: number;
  };
  /** Share of new traces recorded. Default 1. */
  readonly sample_ratio: number;
  /** Continue a valid incoming traceparent. Default true. */
  readonly trust_incoming_traceparent: boolean;
  /** `service.name`. Default `regate`. */
  readonly service_name: string;
}

export interface LimitsConfig {
  /** Max request-target length in bytes. Default 8192 → 414. */
  readonly max_url_bytes: number;
  /** Max total request header bytes (node's --max-http-header-size). Default 16384 → 431. */
  readonly max_header_bytes: number;
  /** Longest pause between two request-body bytes. Default 60000 → 408 `body_timeout`, connection closed. */
  readonly body_idle_timeout_ms: number;
  /** Longest time from the request head to its last body byte. Default 300000 → 408 `request_timeout`, connection closed. */
  readonly request_timeout_ms: number;
  /** Time limits on relayed WebSocket connections (routes with `websocket: true`). */
  readonly websocket: WebSocketLimitsConfig;
}

/** `limits.websocket`: when regate closes a relayed WebSocket connection itself (close frame 1001). */
export interface WebSocketLimitsConfig {
  /** No byte either way for this long → closed. Default 300000. */
  readonly idle_timeout_ms: number;
  /** This long after the upgrade → closed, however busy. Default 3600000. */
  readonly max_lifetime_ms: number;
}

export interface ClockConfig {
  /**
   * Freeze the clock at an RFC 3339 instant (tests, `regate eval`). Overridden
   * by the `REGATE_CLOCK` environment variable. Never set this in production.
   */
  readonly fixed?: string;
}

export interface Config {
  /** Absolute path of the file this config was loaded from. */
  readonly source: string;
  readonly listen: {
    readonly proxy: ProxyListenerConfig;
    readonly admin: ListenerConfig;
    /** The authorization service for a proxy in front (`listen.authz`); absent → none. */
    readonly authz?: AuthzListenerConfig;
  };
  readonly upstreams: Readonly<Record<string, UpstreamConfig>>;
  readonly issuers: readonly IssuerConfig[];
  readonly policy: PolicyConfig;
  readonly decision_log: DecisionLogConfig;
  /** Absent → no tracing. */
  readonly tracing?: TracingConfig;
  readonly limits: LimitsConfig;
  readonly reload: ReloadConfig;
  readonly shutdown: ShutdownConfig;
  /** Proxy processes: 1 (no cluster), N, or `auto` (one per available CPU). Startup only. Default 1. */
  readonly workers: number | 'auto';
  readonly token_cache: TokenCacheConfig;
  readonly clock: ClockConfig;
  /** Client request headers (any spelling) never forwarded, on any route. Default []. */
  readonly request_headers_to_remove: readonly string[];
  readonly routes: readonly RouteConfig[];
  /** The token exchange broker; absent → none. */
  readonly broker?: BrokerConfig;
}
