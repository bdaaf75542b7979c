/**
 * Header hygiene between the client, regate and the upstream.
 *
 * regate forwards exactly what was authorized. On the way up, everything a
 * client must not control is removed before regate sets its own values:
 *
 * - hop-by-hop fields (RFC 9110 §7.6.1), including every field the client
 *   nominated in `Connection`;
 * - `Host` (the upstream gets its own origin's host; the client's goes into
 *   `X-Forwarded-Host`), `Expect`, `Authorization` unless the route opts in;
 * - client-sent `X-Forwarded-*`, `Forwarded`, `X-Real-IP`, `X-Request-Id` and
 *   anything in the reserved `x-regate-` namespace;
 * - client-sent copies of the identity headers of *every* route of the config
 *   (the upstream cannot tell which route a request came by, so an `auth:
 *   none` route must not let `X-User-Id: admin` through to an upstream that
 *   another route feeds verified identities), of the names listed in
 *   `request_headers_to_remove` (global and per upstream, Envoy's name), and of
 *   the headers the policy adds to this request, and of the headers of the
 *   credentials the route may inject (`routes[].credentials`) — in every spelling: names are compared case-insensitively
 *   *and* with `_` folded to `-`, because nginx (`underscores_in_headers`),
 *   CGI, WSGI and Rack all map `X_Regate_Sub` onto the same variable as
 *   `X-Regate-Sub`. A client header whose name contains `_` and folds onto any
 *   field regate treats specially is dropped outright.
 *
 * Everything that can be decided once per route is compiled by
 * {@link compileHeaderPolicy} at startup; {@link buildUpstreamHeaders} is one
 * pass over `req.rawHeaders` with map lookups.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Config, RouteConfig } from '../config/types.ts';
import { AuthnError, BadRequestError, PolicyError } from '../errors.ts';

/** Upstream request / client response header fields: lower-case name → value, repeated fields as arrays. */
export type HeaderFields = Record<string, string | string[]>;

/**
 * What to do with one client-sent field (by lower-case name); a field with no
 * entry is kept, repeated values and all. Numeric constants, not an `enum`:
 * erasable syntax only.
 */
const DROP = 1;
/** Keep the first occurrence only (node's `req.headers` discards later duplicates). */
const FIRST = 2;
const AUTHORIZATION = 3;
const CONTENT_LENGTH = 4;
const HOST = 5;
/** One of the route's identity headers: dropped from the client, set by regate. */
const IDENTITY = 6;
/** The header of a credential the route may inject: dropped from the client, set by regate (src/upstream/credentials.ts). */
const CREDENTIAL = 7;
type Disposition = typeof DROP | typeof FIRST | typeof AUTHORIZATION | typeof CONTENT_LENGTH | typeof HOST | typeof IDENTITY | typeof CREDENTIAL;

/**
 * Hop-by-hop fields, meaningful for one connection only (RFC 9110 §7.6.1),
 * plus the non-standard `keep-alive`/`proxy-connection` and h2c's
 * `http2-settings` (RFC 9113 §8.2.2 lists it among connection-specific fields).
 * Never forwarded in either direction.
 */
export const HOP_BY_HOP: readonly string[] = Object.freeze([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'proxy-authorization',
  'proxy-authenticate',
  'http2-settings',
]);
const HOP_SET: ReadonlySet<string> = new Set(HOP_BY_HOP);

/**
 * Client-sent fields regate always replaces with its own: the forwarding
 * chain is spoofable, so a client's `X-Forwarded-For` is dropped, not appended
 * to (regate is the trust boundary; the upstream sees exactly one hop).
 * `x-forwarded-*` and `x-regate-*` are matched as prefixes as well.
 */
const REPLACED = ['forwarded', 'x-real-ip', 'x-request-id', 'x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto'];
const RESERVED_PREFIXES = ['x-forwarded-', 'x-regate-'];
const OVERRIDES = ['x-http-method-override', 'x-http-method', 'x-method-override', 'x-original-url', 'x-rewrite-url', 'x-original-method'];

/**
 * Trace-context fields of every common propagation format. With `tracing` on,
 * regate is the trace's source of truth for the upstream: the client's are
 * removed (an untrusted `traceparent` is not continued, and a client must not
 * smuggle another format past it) and regate sets its own `traceparent` and
 * `tracestate` (src/observe/tracing/tracer.ts). With tracing off they pass
 * unchanged, like any end-to-end field. `baggage` is application data, not
 * trace context, and passes either way.
 */
export const TRACE_CONTEXT_FIELDS: readonly string[] = Object.freeze([
  'traceparent',
  'tracestate',
  'b3',
  'x-b3-traceid',
  'x-b3-spanid',
  'x-b3-parentspanid',
  'x-b3-sampled',
  'x-b3-flags',
  'uber-trace-id',
  'x-cloud-trace-context',
  'x-amzn-trace-id',
  'grpc-trace-bin',
  'sw8',
  'x-datadog-trace-id',
  'x-datadog-parent-id',
  'x-datadog-sampling-priority',
  'x-datadog-origin',
  'ot-tracer-traceid',
  'ot-tracer-spanid',
  'ot-tracer-sampled',
]);
const TRACE_SET: ReadonlySet<string> = new Set(TRACE_CONTEXT_FIELDS);

/**
 * Fields node's parser keeps only the first of in `req.headers` (see the
 * `IncomingMessage.headers` docs). authn and the policy input see that first
 * value, so the upstream must see the same one and not a later duplicate.
 */
const SINGLETONS = [
  'age',
  'content-type',
  'etag',
  'expires',
  'from',
  'if-modified-since',
  'if-unmodified-since',
  'last-modified',
  'location',
  'max-forwards',
  'referer',
  'retry-after',
  'server',
  'user-agent',
];

/** Dispositions shared by every route; routes add their identity names on top. */
const BASE: ReadonlyMap<string, Disposition> = (() => {
  const m = new Map<string, Disposition>();
  for (const n of SINGLETONS) m.set(n, FIRST);
  for (const n of HOP_BY_HOP) m.set(n, DROP);
  for (const n of REPLACED) m.set(n, DROP);
  // undici refuses `Expect` (HTTP/1.1 100-continue is not implemented); regate
  // answers `100 Continue` itself once the body may be read (src/http/body-gate.ts).
  m.set('expect', DROP);
  // Method and URL overrides: frameworks (Rails, Express method-override, IIS URL
  // Rewrite, Symfony) act on these instead of the request line, so the upstream
  // would run another method or path than the one the policy judged.
  for (const n of OVERRIDES) m.set(n, DROP);
  m.set('host', HOST);
  m.set('authorization', AUTHORIZATION);
  m.set('content-length', CONTENT_LENGTH);
  return m;
})();

/**
 * Names a policy may not set on the upstream request or the client response:
 * they carry framing, routing or credentials that regate owns.
 */
const FORBIDDEN_ADDED = new Set<string>([...HOP_BY_HOP, ...REPLACED, 'host', 'expect', 'content-length', 'authorization']);
const FORBIDDEN_RESPONSE_ADDED = new Set<string>([...HOP_BY_HOP, 'content-length']);

/** RFC 9110 §5.6.2 token. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** RFC 9110 §5.5 field-value characters: HTAB, visible ASCII, SP, obs-text. No CR, LF, NUL or other CTLs. */
const INVALID_VALUE = /[^\t\x20-\x7e\x80-\xff]/;

/** The compiled, per-route header policy. Build with {@link compileHeaderPolicy}. */
export interface HeaderPolicy {
  readonly routeId: string;
  /** Lower-case identity header names, in config order. */
  readonly identityHeaders: readonly string[];
  /** Lower-case header names of the credentials the route may inject (`routes[].credentials`), in config order. */
  readonly credentialHeaders: readonly string[];
  /** Lower-case name (with `_` folded to `-`) → disposition for client-sent fields. */
  readonly dispositions: ReadonlyMap<string, Disposition>;
  /** `tracing` is on: client trace-context fields are dropped, regate sets its own. */
  readonly tracing: boolean;
}

/** Per-request inputs to {@link buildUpstreamHeaders}. */
export interface UpstreamHeaderOptions {
  readonly policy: HeaderPolicy;
  /** Identity header name (any case, as configured) → value, computed by the pipeline. Absent → not sent. */
  readonly identityValues: Readonly<Record<string, string>>;
  /** Headers the policy adds to the upstream request. */
  readonly decisionHeaders: Readonly<Record<string, string>>;
  /** Credentials injected into this request (set last); their headers must be the route's `credentialHeaders`. */
  readonly credentials?: readonly InjectedCredential[] | undefined;
  /** Sent as `X-Request-Id` (the decision id). */
  readonly requestId: string;
  /** The TCP peer's address, sent as `X-Forwarded-For`. */
  readonly clientIp: string;
  readonly proto: 'http' | 'https';
  /** The Host the client addressed, sent as `X-Forwarded-Host`. */
  readonly host: string;
  readonly forwardAuthorization: boolean;
  /** With tracing on: regate's `traceparent` / `tracestate` for this request. */
  readonly trace?: { readonly traceparent: string; readonly tracestate?: string } | undefined;
}

/** A credential to inject: its lower-case header and current value (src/upstream/credentials.ts `Credential`). */
export interface InjectedCredential {
  readonly header: string;
  readonly value: string;
}

/** A request's header fields as node parses them; any front end's request view has them. */
export interface ClientFields {
  readonly headers: IncomingHttpHeaders;
  /** Names as sent, values alternating: the only place repeated fields are all visible. */
  readonly rawHeaders: readonly string[];
}

/** Lower-case, `_` → `-`: the spelling every server in the chain may reduce a name to. */
function fold(lowerName: string): string {
  return lowerName.includes('_') ? lowerName.replaceAll('_', '-') : lowerName;
}

function hasReservedPrefix(folded: string): boolean {
  return folded.startsWith(RESERVED_PREFIXES[0]!) || folded.startsWith(RESERVED_PREFIXES[1]!);
}

/**
 * Compile a route's header policy once, at startup. Identity header names
 * must be tokens and must not name a field regate owns (framing, hop-by-hop,
 * `Host`, `Authorization`, `X-Forwarded-*`, ...): the schema should have
 * refused those already, so a violation here is a `TypeError`.
 */
export function compileHeaderPolicy(
  route: RouteConfig,
  strip: readonly string[] = [],
  options: { readonly tracing?: boolean; readonly credentialHeaders?: readonly string[] } = {},
): HeaderPolicy {
  const dispositions = new Map(BASE);
  for (const name of strip) {
    const folded = fold(name.toLowerCase());
    const d = BASE.get(folded);
    if (d === HOST || d === CONTENT_LENGTH || d === AUTHORIZATION || folded === 'transfer-encoding') throw new TypeError(`route ${route.id}: header ${name} cannot be removed: regate controls it`);
    dispositions.set(folded, DROP);
  }
  const tracing = options.tracing === true;
  if (tracing) for (const n of TRACE_CONTEXT_FIELDS) dispositions.set(n, DROP);
  const identityHeaders: string[] = [];
  for (const name of Object.keys(route.identity_headers)) {
    if (!TOKEN.test(name)) throw new TypeError(`route ${route.id}: identity header ${JSON.stringify(name)} is not a valid header name`);
    const lower = name.toLowerCase();
    const folded = fold(lower);
    if (BASE.has(folded) || folded.startsWith('x-forwarded-')) {
      throw new TypeError(`route ${route.id}: identity header ${name} names a field regate controls`);
    }
    if (identityHeaders.some((h) => fold(h) === folded)) {
      throw new TypeError(`route ${route.id}: identity header ${name} collides with another identity header`);
    }
    dispositions.set(folded, IDENTITY);
    identityHeaders.push(lower);
  }
  // Credential headers last: `Authorization` among them is dropped from the client whatever
  // forward_authorization says (the config check refuses the combination anyway).
  const credentialHeaders: string[] = [];
  for (const name of options.credentialHeaders ?? []) {
    if (!TOKEN.test(name)) throw new TypeError(`route ${route.id}: credential header ${JSON.stringify(name)} is not a valid header name`);
    const lower = name.toLowerCase();
    const folded = fold(lower);
    const d = BASE.get(folded);
    if ((d !== undefined && d !== AUTHORIZATION) || folded === 'cookie' || hasReservedPrefix(folded)) throw new TypeError(`route ${route.id}: credential header ${name} names a field regate controls`);
    if (dispositions.get(folded) === IDENTITY || credentialHeaders.some((h) => fold(h) === folded)) {
      throw new TypeError(`route ${route.id}: credential header ${name} collides with another header regate sets on this route`);
    }
    dispositions.set(folded, CREDENTIAL);
    credentialHeaders.push(lower);
  }
  return Object.freeze({ routeId: route.id, identityHeaders: Object.freeze(identityHeaders), credentialHeaders: Object.freeze(credentialHeaders), dispositions, tracing });
}

/**
 * Client header names (any spelling) removed on `route` besides its own
 * identity headers: every route's identity headers, the global and the
 * route's upstream's `request_headers_to_remove`.
 */
export function strippedNames(config: Config, route: RouteConfig): string[] {
  const names = new Set<string>();
  for (const r of config.routes) for (const name of Object.keys(r.identity_headers)) names.add(name.toLowerCase());
  for (const name of config.request_headers_to_remove) names.add(name.toLowerCase());
  for (const name of config.upstreams[route.upstream]?.request_headers_to_remove ?? []) names.add(name.toLowerCase());
  for (const name of Object.keys(route.identity_headers)) names.delete(name.toLowerCase());
  return [...names];
}

/**
 * Whether a client-sent field reaches the upstream with the client's value,
 * by exactly the rules of {@link buildUpstreamHeaders}. The policy input shows
 * only these (and `Host`, as addressed), so a policy never decides on a value
 * that regate drops or replaces — a client's `X-Forwarded-For`, an identity
 * header in any spelling, a field named in `Connection`.
 * `Authorization` is never shown: its verified content is `input.token`.
 */
export function isForwardedClientField(lower: string, policy: HeaderPolicy, nominated: ReadonlySet<string> | null): boolean {
  if (lower.includes('_')) {
    const folded = fold(lower);
    if (policy.dispositions.has(folded) || hasReservedPrefix(folded) || nominated?.has(folded)) return false;
  } else if (nominated?.has(lower)) {
    return false;
  }
  const disposition = policy.dispositions.get(lower);
  if (disposition === undefined) return !hasReservedPrefix(lower);
  return disposition === FIRST || disposition === CONTENT_LENGTH || disposition === HOST;
}

/** Comma-separated tokens of a `Connection` value, folded; `close`/`keep-alive` and `content-length` skipped. */
export function nominatedFields(connection: string | undefined): Set<string> | null {
  if (connection === undefined) return null;
  let set: Set<string> | null = null;
  for (const part of connection.split(',')) {
    const token = fold(part.trim().toLowerCase());
    // Content-Length cannot be nominated: the framing regate authorized stays the
    // framing the upstream sees. (Nominating fields a proxy relies on is the known
    // "hop-by-hop header abuse" class, cf. CVE-2022-31813 for X-Forwarded-*; regate's
    // own fields are set after this filter, so a nomination never removes them.)
    if (token === '' || token === 'close' || token === 'keep-alive' || token === 'content-length') continue;
    (set ??= new Set()).add(token);
  }
  return set;
}

/**
 * Add a client field. A repeated field is joined into one, exactly as node
 * joins it for `req.headers` — and so for the policy's `input.request.headers`
 * (`, `; `; ` for Cookie): the upstream receives the very value the policy
 * judged, not two fields of which it might read only the first or the last
 * (`X-Tenant: acme` + `X-Tenant: globex` is `acme, globex` to both; RFC 9110
 * §5.3 makes the two forms equivalent for list-valued fields).
 */
function addField(out: HeaderFields, name: string, value: string): void {
  const prev = out[name] as string | undefined;
  out[name] = prev === undefined ? value : prev + (name === 'cookie' ? '; ' : ', ') + value;
}

/**
 * Build the upstream request's header fields from the client request.
 *
 * Client fields are copied from `req.rawHeaders` (names lower-cased, a
 * repeated field joined into one as node joins it for the policy input) minus
 * everything listed in the module doc.
 * Then regate's own fields are set:
 *
 * - `X-Forwarded-For: <clientIp>` — the client's chain is dropped, not extended;
 * - `X-Forwarded-Proto`, `X-Forwarded-Host` (the client's Host: the upstream's
 *   own `Host` is set by undici from the upstream origin, like nginx's default
 *   `proxy_set_header Host $proxy_host`, so virtual hosting and TLS names
 *   match the upstream and not whatever the client typed);
 * - `X-Request-Id: <requestId>` — the client's is replaced so upstream logs join
 *   the decision log;
 * - identity headers, then policy-added headers.
 *
 * With tracing on, client trace-context fields ({@link TRACE_CONTEXT_FIELDS})
 * are dropped and `opts.trace` is set. Otherwise `traceparent`/`tracestate`,
 * cookies and all other end-to-end fields pass unchanged. `Content-Length` is kept (first value) unless the request is
 * chunked; bodies are streamed and undici re-frames chunked bodies itself.
 *
 * @throws BadRequestError `duplicate_host` (RFC 9112 §3.2) or
 *   `unsupported_transfer_coding` (anything but `chunked`, RFC 9112 §6.1).
 * @throws AuthnError `invalid_claim` when an identity value cannot be a field value.
 * @throws PolicyError `invalid_decision_header` for an invalid or reserved policy-added header.
 * @throws TypeError for an identity value whose name the route does not configure (a bug).
 */
export function buildUpstreamHeaders(req: ClientFields, opts: UpstreamHeaderOptions): HeaderFields {
  const { policy } = opts;
  const dispositions = policy.dispositions;
  const te = req.headers['transfer-encoding'];
  if (te !== undefined && te.trim().toLowerCase() !== 'chunked') {
    // node accepts `gzip, chunked` and strips only the chunked framing; forwarding
    // the rest as if it were content would change the body's meaning.
    throw new BadRequestError('unsupported_transfer_coding', 'only the chunked transfer coding is supported');
  }
  const nominated = nominatedFields(req.headers.connection);
  const decisionNames = decisionFieldNames(opts.decisionHeaders, policy);

  const out: HeaderFields = Object.create(null) as HeaderFields;
  const raw = req.rawHeaders;
  let seenHost = false;
  for (let i = 0; i < raw.length; i += 2) {
    const lower = raw[i]!.toLowerCase();
    const value = raw[i + 1]!;
    const disposition = dispositions.get(lower);
    if (disposition === HOST) {
      if (seenHost) throw new BadRequestError('duplicate_host', 'more than one Host header field');
      seenHost = true;
      continue;
    }
    if (lower.includes('_')) {
      // An ambiguous spelling of anything regate treats specially is dropped.
      const folded = fold(lower);
      if (dispositions.has(folded) || hasReservedPrefix(folded) || decisionNames?.has(folded) || nominated?.has(folded)) continue;
    } else if (nominated?.has(lower) || decisionNames?.has(lower)) {
      continue;
    }
    switch (disposition) {
      case undefined:
        // `x` first: most fields cannot be in a reserved namespace.
        if (lower.charCodeAt(0) === 120 && hasReservedPrefix(lower)) break;
        addField(out, lower, value);
        break;
      case AUTHORIZATION:
        if (opts.forwardAuthorization && out.authorization === undefined) out.authorization = value;
        break;
      case CONTENT_LENGTH:
        if (te === undefined && out['content-length'] === undefined) out['content-length'] = value;
        break;
      case FIRST:
        if (out[lower] === undefined) out[lower] = value;
        break;
      default:
        // DROP, IDENTITY, CREDENTIAL
        break;
    }
  }

  // An empty peer address (socket already gone) or Host (HTTP/1.0) is omitted, not sent empty.
  if (opts.clientIp !== '') out['x-forwarded-for'] = opts.clientIp;
  out['x-forwarded-proto'] = opts.proto;
  if (opts.host !== '') out['x-forwarded-host'] = opts.host;
  out['x-request-id'] = opts.requestId;
  if (opts.trace !== undefined) {
    out.traceparent = opts.trace.traceparent;
    if (opts.trace.tracestate !== undefined) out.tracestate = opts.trace.tracestate;
  }

  const identityValues = opts.identityValues;
  for (const name in identityValues) {
    const value = identityValues[name]!;
    const lower = name.toLowerCase();
    if (!policy.identityHeaders.includes(lower)) {
      throw new TypeError(`route ${policy.routeId}: ${name} is not a configured identity header`);
    }
    if (INVALID_VALUE.test(value)) {
      // Never echo the value: it came from a token.
      throw new AuthnError('invalid_claim', `the claim mapped to ${lower} cannot be sent as a header value`);
    }
    out[lower] = value;
  }

  const decisionHeaders = opts.decisionHeaders;
  for (const name in decisionHeaders) {
    const value = decisionHeaders[name]!;
    if (INVALID_VALUE.test(value)) throw new PolicyError('invalid_decision_header', `the policy set an invalid value for header ${name.toLowerCase()}`);
    out[name.toLowerCase()] = value;
  }

  // Credentials last, after every other rule: nothing a client or a policy sends can replace them.
  const credentials = opts.credentials;
  if (credentials !== undefined) {
    for (const c of credentials) {
      if (!policy.credentialHeaders.includes(c.header)) throw new TypeError(`route ${policy.routeId}: ${c.header} is not a credential header of this route`);
      out[c.header] = c.value;
    }
  }
  return out;
}

/**
 * Validate what an allow adds to the upstream request, before anything is
 * forwarded or answered: every front end (the proxy, the authz servers that
 * tell another proxy what to set) refuses the same values, by the same rules
 * as {@link buildUpstreamHeaders}.
 *
 * @throws AuthnError `invalid_claim` when an identity value cannot be a field value.
 * @throws PolicyError `invalid_decision_header` for an invalid or reserved policy-added header.
 */
export function checkAddedHeaders(policy: HeaderPolicy, identityValues: Readonly<Record<string, string>>, decisionHeaders: Readonly<Record<string, string>>): void {
  for (const name in identityValues) {
    // Never echo the value: it came from a token.
    if (INVALID_VALUE.test(identityValues[name]!)) throw new AuthnError('invalid_claim', `the claim mapped to ${name.toLowerCase()} cannot be sent as a header value`);
  }
  decisionFieldNames(decisionHeaders, policy);
  for (const name in decisionHeaders) {
    if (INVALID_VALUE.test(decisionHeaders[name]!)) throw new PolicyError('invalid_decision_header', `the policy set an invalid value for header ${name.toLowerCase()}`);
  }
}

/**
 * Folded names of the policy-added request headers, validated: a policy may
 * not set framing, hop-by-hop, forwarding or identity fields (regate owns
 * them). Null when there are none, the common case.
 */
function decisionFieldNames(headers: Readonly<Record<string, string>>, policy: HeaderPolicy): Set<string> | null {
  let set: Set<string> | null = null;
  for (const name in headers) {
    if (!TOKEN.test(name)) throw new PolicyError('invalid_decision_header', `the policy set an invalid header name ${JSON.stringify(name.slice(0, 64))}`);
    const folded = fold(name.toLowerCase());
    const d = policy.dispositions.get(folded);
    if (FORBIDDEN_ADDED.has(folded) || folded.startsWith('x-forwarded-') || d === IDENTITY || d === CREDENTIAL || (policy.tracing && TRACE_SET.has(folded))) {
      throw new PolicyError('invalid_decision_header', `the policy may not set header ${folded}`);
    }
    (set ??= new Set()).add(folded);
  }
  return set;
}

/**
 * Validate and lower-case the headers a policy adds to the client response.
 * Framing and hop-by-hop fields are refused: they would desynchronize the
 * response from its body. Called before forwarding, so a bad decision fails
 * closed before the upstream is contacted.
 *
 * @throws PolicyError `invalid_decision_header`.
 */
export function checkResponseHeaders(headers: Readonly<Record<string, string>>): Record<string, string> | null {
  let out: Record<string, string> | null = null;
  for (const name in headers) {
    const value = headers[name]!;
    if (!TOKEN.test(name)) throw new PolicyError('invalid_decision_header', `the policy set an invalid response header name ${JSON.stringify(name.slice(0, 64))}`);
    const lower = name.toLowerCase();
    if (FORBIDDEN_RESPONSE_ADDED.has(lower)) throw new PolicyError('invalid_decision_header', `the policy may not set response header ${lower}`);
    if (INVALID_VALUE.test(value)) throw new PolicyError('invalid_decision_header', `the policy set an invalid value for response header ${lower}`);
    (out ??= Object.create(null) as Record<string, string>)[lower] = value;
  }
  return out;
}

/**
 * The upstream response's fields as the client will see them: hop-by-hop
 * fields (RFC 9110 §7.6.1) and every field the upstream nominated in
 * `Connection` removed, everything else kept — repeated fields such as
 * `Set-Cookie` stay arrays. `Content-Length` is kept (the body is relayed
 * byte for byte) unless the upstream also sent `Transfer-Encoding`, in which
 * case it is meaningless (RFC 9112 §6.3) and dropped.
 *
 * @param headers lower-case names, as undici parses them.
 */
export function filterResponseHeaders(headers: Readonly<Record<string, string | string[] | undefined>>): HeaderFields {
  const connection = headers.connection;
  const nominated = nominatedFields(Array.isArray(connection) ? connection.join(',') : connection);
  const chunked = headers['transfer-encoding'] !== undefined;
  const out: HeaderFields = Object.create(null) as HeaderFields;
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined) continue;
    if (HOP_SET.has(name)) continue;
    if (nominated?.has(name)) continue;
    if (chunked && name === 'content-length') continue;
    out[name] = value;
  }
  return out;
}
