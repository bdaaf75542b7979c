/**
 * Cross-field checks of the config: rules JSON Schema cannot express (unique
 * ids, known upstreams, issuers for authenticated routes, identity headers,
 * route inputs, shadows, policy source...).
 */

import { pathTemplateParams, urlTemplateNames, urlTemplateProblem } from '../attributes/template.ts';
import { parseRfc3339Ns } from '../clock.ts';
import { validateHostPattern, validateTemplate } from '../http/router.ts';
import { checkBundleSourceConfig } from '../policy/source-config.ts';
import { compileHeaderPolicy } from '../upstream/headers.ts';
import { checkBroker } from './broker-checks.ts';
import { closest } from './closest.ts';
import { DEFAULTS } from './defaults.ts';
import { escapePointer, type Problems } from './problems.ts';
import schema from './regate.schema.json' with { type: 'json' };
import type { RouteConfig } from './types.ts';

/** Identity headers regate must not let a config overwrite, and why. */
const RESERVED_HEADERS: Readonly<Record<string, string>> = {
  ...Object.fromEntries(
    ['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-authenticate', 'proxy-authorization', 'http2-settings'].map(
      (h) => [h, 'is a hop-by-hop header (RFC 9110 §7.6.1): it describes one connection and is never forwarded'],
    ),
  ),
  host: 'is set from the upstream URL',
  authorization: 'carries the client credentials: use forward_authorization: true to forward them',
  'content-length': 'frames the request body',
  expect: 'is handled by regate itself (100-continue)',
  'x-real-ip': 'is set by regate itself',
  forwarded: 'is set by regate itself',
  'x-forwarded-for': 'is set by regate itself',
  'x-forwarded-host': 'is set by regate itself',
  'x-forwarded-proto': 'is set by regate itself',
  'x-request-id': 'is set by regate itself (to the decision id)',
};

/** Decision-log labels regate always sets. */
const RESERVED_LABELS = ['id', 'version'];

const matchSchema = schema.$defs.route.properties.match.properties;
const HOST_PATTERN = new RegExp(matchSchema.host.pattern);
const PATH_PATTERN = new RegExp(matchSchema.path.pattern);
const RESOURCE_URL_PATTERN = new RegExp(schema.$defs.route.properties.resource.properties.url.pattern);
const HEADER_NAME = new RegExp(schema.$defs.route.properties.identity_headers.propertyNames.pattern);
const SOURCE_PATTERN = new RegExp(schema.$defs.route.properties.identity_headers.additionalProperties.pattern);

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const asObj = (v: unknown): Obj => (isObj(v) ? v : {});
const asList = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/**
 * Rules JSON Schema cannot express. They run even when the schema failed, so
 * that one run reports everything; each guards the types it reads.
 */
export function crossCheck(data: unknown, problems: Problems): void {
  const root = asObj(data);
  const add = (keyPath: string, problem: string, at: 'key' | 'value' = 'value'): void => problems.add(keyPath, problem, at);

  const listen = asObj(root.listen);
  const proxyPort = asObj(listen.proxy).port ?? DEFAULTS.listen.proxy.port;
  const adminPort = asObj(listen.admin).port ?? DEFAULTS.listen.admin.port;
  if (proxyPort === adminPort && proxyPort !== 0) {
    add(`/listen/${asObj(listen.admin).port === undefined ? 'proxy' : 'admin'}/port`, `listen.proxy and listen.admin both use port ${proxyPort}: give them different ports (0 picks a free one)`);
  }
  if (isObj(listen.authz)) {
    const authz = listen.authz;
    const authzPort = authz.port ?? DEFAULTS.listen.authz.port;
    for (const [name, port] of [['proxy', proxyPort], ['admin', adminPort]] as const) {
      if (authzPort === port && port !== 0) add('/listen/authz/port', `listen.authz and listen.${name} both use port ${port}: give them different ports (0 picks a free one)`);
    }
    if (typeof authz.path_prefix === 'string' && authz.path_prefix !== '' && authz.protocol !== 'envoy_http') {
      add('/listen/authz/path_prefix', `path_prefix is for protocol envoy_http only (this listener's protocol is ${JSON.stringify(authz.protocol)})`, 'key');
    }
  }

  checkListenerTls(asObj(listen.proxy).tls, '/listen/proxy/tls', add);
  // h2c is prior-knowledge cleartext HTTP/2; on a TLS listener HTTP/2 is negotiated by ALPN (`http2.h2`).
  if (asObj(listen.proxy).tls !== undefined && asObj(asObj(listen.proxy).http2).h2c === true) {
    add('/listen/proxy/http2/h2c', 'h2c is cleartext HTTP/2 and cannot be combined with listen.proxy.tls: on a TLS listener HTTP/2 is negotiated by ALPN (listen.proxy.http2.h2, on by default); drop h2c', 'key');
  }
  if (isObj(listen.authz)) {
    checkListenerTls(listen.authz.tls, '/listen/authz/tls', add);
    if (listen.authz.tls !== undefined && listen.authz.protocol === 'envoy_grpc') {
      add('/listen/authz/tls', 'TLS is not supported for protocol envoy_grpc (the gRPC listener is plaintext): terminate TLS in front of it or use envoy_http', 'key');
    }
  }

  const upstreams = isObj(root.upstreams) ? root.upstreams : undefined;
  for (const [id, u] of Object.entries(upstreams ?? {})) {
    const url = str(asObj(u).url);
    if (asObj(u).tls !== undefined && url !== undefined && !url.startsWith('https://')) {
      add(`/upstreams/${escapePointer(id)}/tls`, `tls settings need an https:// url (this upstream's url is ${JSON.stringify(url)})`, 'key');
    }
    checkUrl(str(asObj(u).url), `/upstreams/${escapePointer(id)}/url`, add);
    checkUpstreamProtocol(asObj(u), `/upstreams/${escapePointer(id)}`, add);
    checkRemovedHeaders(asObj(u).request_headers_to_remove, `/upstreams/${escapePointer(id)}/request_headers_to_remove`, add);
    for (const [name, c] of Object.entries(asObj(asObj(u).credentials))) {
      const header = str(asObj(c).header);
      const problem = header === undefined ? undefined : credentialHeaderProblem(header);
      if (problem !== undefined) add(`/upstreams/${escapePointer(id)}/credentials/${escapePointer(name)}/header`, `header ${header} cannot carry a credential: it ${problem}`);
    }
  }
  checkRemovedHeaders(root.request_headers_to_remove, '/request_headers_to_remove', add);

  const issuers = asList(root.issuers);
  const issuerIds = new Map<string, number>();
  const issuerValues = new Map<string, number>();
  issuers.forEach((raw, i) => {
    const issuer = asObj(raw);
    const id = str(issuer.id) ?? String(i);
    firstSeen(issuerIds, id, i, () => add(`/issuers/${i}/id`, `duplicate issuer id "${id}" (also /issuers/${issuerIds.get(id)})`));
    const iss = str(issuer.issuer);
    if (iss !== undefined) {
      firstSeen(issuerValues, iss, i, () =>
        add(`/issuers/${i}/issuer`, `issuer "${iss}" is already configured at /issuers/${issuerValues.get(iss)}: tokens are matched to an issuer by iss, so each must be unique (list several audiences instead)`),
      );
    }
    checkUrl(str(issuer.jwks_url), `/issuers/${i}/jwks_url`, add);
    checkIssuerSources(issuer, i, add);
  });
  const introspecting = issuers.flatMap((raw, i) => (asObj(raw).introspection !== undefined ? [i] : []));
  if (introspecting.length > 1) {
    add(`/issuers/${introspecting[1]}/introspection`, `only one issuer may use introspection (also /issuers/${introspecting[0]}): an opaque token names no issuer, so regate could not tell which one to ask`);
  }

  const policy = asObj(root.policy);
  const tz = str(policy.timezone);
  if (tz !== undefined && tz !== '') {
    const problem = timeZoneProblem(tz);
    if (problem) add('/policy/timezone', problem);
  }
  checkBundleSourceConfig(policy, add);

  const fixed = str(asObj(root.clock).fixed);
  if (fixed !== undefined) {
    try {
      parseRfc3339Ns(fixed);
    } catch {
      add('/clock/fixed', `not a valid instant: ${JSON.stringify(fixed)}`);
    }
  }

  for (const label of Object.keys(asObj(asObj(root.decision_log).labels))) {
    if (RESERVED_LABELS.includes(label)) add(`/decision_log/labels/${escapePointer(label)}`, `label "${label}" is reserved: regate always sets ${RESERVED_LABELS.join(' and ')}`, 'key');
  }

  checkDecisionLogService(asObj(asObj(root.decision_log).service), add);
  for (const name of Object.keys(asObj(asObj(asObj(root.tracing).otlp).headers))) {
    if (UPLOAD_RESERVED_HEADERS.has(name.toLowerCase())) add(`/tracing/otlp/headers/${escapePointer(name)}`, `header "${name}" is set by regate for every export`, 'key');
  }

  checkRoutes(asList(root.routes), upstreams, issuers.length, add);
  checkMtlsRoutes(asList(root.routes), asObj(asObj(listen.proxy).tls), add);
  checkShadows(asList(root.routes), policy, add);
  checkRouteInputs(asList(root.routes), add);
  checkBroker(root, add);
}

/** A listener's `tls`: client certificates are verified against a CA, and a CA is only given to be used. */
function checkListenerTls(raw: unknown, keyPath: string, add: (keyPath: string, problem: string, at?: 'key' | 'value') => void): void {
  if (!isObj(raw)) return;
  const clientAuth = raw.client_auth ?? DEFAULTS.tls.client_auth;
  if (clientAuth !== 'none' && raw.ca_file === undefined) {
    add(`${keyPath}/client_auth`, `client_auth: ${String(clientAuth)} verifies client certificates against ca_file, which is not set`);
  }
  if (clientAuth === 'none' && raw.ca_file !== undefined) {
    add(`${keyPath}/ca_file`, 'is only used to verify client certificates, but client_auth is none: set client_auth: optional or required, or remove ca_file', 'key');
  }
}

/** `auth: mtls` needs the proxy listener to verify client certificates. */
function checkMtlsRoutes(routes: unknown[], proxyTls: Obj, add: (keyPath: string, problem: string) => void): void {
  const clientAuth = proxyTls.client_auth ?? DEFAULTS.tls.client_auth;
  routes.forEach((raw, i) => {
    if (asObj(raw).auth !== 'mtls') return;
    if (Object.keys(proxyTls).length === 0) add(`/routes/${i}/auth`, 'auth: mtls needs a verified client certificate, but listen.proxy has no tls: configure listen.proxy.tls with client_auth: optional or required');
    else if (clientAuth === 'none') add(`/routes/${i}/auth`, 'auth: mtls needs a verified client certificate, but listen.proxy.tls.client_auth is none: set optional or required (with ca_file)');
  });
}

/** Upload request headers regate sets itself: the protocol's and the framing ones. */
const UPLOAD_RESERVED_HEADERS = new Set(['host', 'content-type', 'content-encoding', 'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade', 'te', 'trailer', 'expect']);

/** `decision_log.service`: delays in order, no header regate sets, one source of the authorization. */
function checkDecisionLogService(service: Obj, add: (keyPath: string, problem: string, at?: 'key' | 'value') => void): void {
  const d = DEFAULTS.decision_log_service;
  const min = typeof service.min_delay_seconds === 'number' ? service.min_delay_seconds : d.min_delay_seconds;
  const max = typeof service.max_delay_seconds === 'number' ? service.max_delay_seconds : d.max_delay_seconds;
  if (min > max) {
    const at = service.min_delay_seconds !== undefined ? 'min_delay_seconds' : 'max_delay_seconds';
    add(`/decision_log/service/${at}`, `min_delay_seconds (${min}) is greater than max_delay_seconds (${max})${service.max_delay_seconds === undefined ? `, whose default is ${d.max_delay_seconds}` : ''}`);
  }
  const bearer = isObj(service.credentials) && service.credentials.bearer !== undefined;
  for (const name of Object.keys(asObj(service.headers))) {
    const lower = name.toLowerCase();
    if (UPLOAD_RESERVED_HEADERS.has(lower)) add(`/decision_log/service/headers/${escapePointer(name)}`, `header "${name}" is set by regate for every upload`, 'key');
    else if (lower === 'authorization' && bearer) add(`/decision_log/service/headers/${escapePointer(name)}`, 'authorization is also set by credentials.bearer: configure one of them', 'key');
  }
}

/** Catalog request headers regate (undici) sets itself or that frame the exchange. */
const CATALOG_RESERVED_HEADERS = new Set(['host', 'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade', 'te', 'trailer', 'expect', 'accept']);

/**
 * `routes[].timezone`, `routes[].resource`: a real IANA zone; a catalog URL
 * whose parameters are this route's path parameters (and only in the path or
 * query); no catalog on `auth: none` routes, where anonymous traffic would
 * drive catalog requests; no `forward_authorization` without verification.
 */
function checkRouteInputs(routes: unknown[], add: (keyPath: string, problem: string, at?: 'key' | 'value') => void): void {
  routes.forEach((raw, i) => {
    const route = asObj(raw);
    const at = `/routes/${i}`;
    const tz = str(route.timezone);
    if (tz !== undefined && tz !== '') {
      const problem = timeZoneProblem(tz);
      if (problem) add(`${at}/timezone`, problem);
    }
    if (route.forward_authorization === true && (route.auth ?? DEFAULTS.route.auth) === 'none') {
      // The token would reach the upstream unverified: regate would vouch for a credential it never checked.
      add(`${at}/forward_authorization`, 'forwards the client\'s Authorization header, but this route has auth: none, so the token would reach the upstream unverified: use auth: required or optional');
    }
    if (!isObj(route.resource)) return;
    const resource = route.resource;
    const url = str(resource.url);
    const template = str(asObj(route.match).path);
    if (url !== undefined && RESOURCE_URL_PATTERN.test(url)) {
      const params = template !== undefined && PATH_PATTERN.test(template) && validateTemplate(template) === null ? pathTemplateParams(template) : undefined;
      // Without a valid match.path (reported there) only the parameter names cannot be checked.
      const problem = urlTemplateProblem(url, params ?? urlTemplateNames(url));
      if (problem !== null) add(`${at}/resource/url`, problem);
    }
    if ((route.auth ?? DEFAULTS.route.auth) === 'none') {
      add(`${at}/resource`, 'needs an authenticated caller, but this route has auth: none (anonymous traffic must not drive catalog requests): use auth: required or optional');
    }
    for (const name of Object.keys(asObj(resource.headers))) {
      if (CATALOG_RESERVED_HEADERS.has(name.toLowerCase())) add(`${at}/resource/headers/${escapePointer(name)}`, `header ${name} is set by regate for the catalog request`, 'key');
    }
  });
}

/**
 * `routes[].shadow`: a candidate bundle must be configured to be named, and a
 * shadow of the enforced entrypoint itself (same bundle) could never disagree.
 */
function checkShadows(routes: unknown[], policy: Obj, add: (keyPath: string, problem: string) => void): void {
  routes.forEach((raw, i) => {
    const route = asObj(raw);
    if (!isObj(route.shadow)) return;
    const shadow = route.shadow;
    const bundle = shadow.bundle ?? DEFAULTS.route.shadow_bundle;
    if (bundle === 'candidate' && policy.candidate === undefined) {
      add(`/routes/${i}/shadow/bundle`, 'names the candidate bundle, but policy.candidate is not configured (add policy.candidate.bundle, or use bundle: active)');
    }
    const enforced = str(route.entrypoint) ?? str(policy.default_entrypoint);
    if (bundle === 'active' && enforced !== undefined && shadow.entrypoint === enforced) {
      add(`/routes/${i}/shadow/entrypoint`, `is the entrypoint this route enforces (${enforced}): a shadow of itself always agrees; name the candidate entrypoint, or use bundle: candidate`);
    }
  });
}

function checkRoutes(routes: unknown[], upstreams: Obj | undefined, issuerCount: number, add: (keyPath: string, problem: string, at?: 'key' | 'value') => void): void {
  const ids = new Map<string, number>();
  const matches = new Map<string, { index: number; methods: unknown[] }[]>();
  const authenticated: string[] = [];
  routes.forEach((raw, i) => {
    const route = asObj(raw);
    const at = `/routes/${i}`;
    const id = str(route.id);
    if (id !== undefined) firstSeen(ids, id, i, () => add(`${at}/id`, `duplicate route id "${id}" (also /routes/${ids.get(id)})`));

    const upstream = str(route.upstream);
    if (upstream !== undefined && upstreams !== undefined && !Object.hasOwn(upstreams, upstream)) {
      const known = Object.keys(upstreams);
      const guess = closest(upstream, known);
      add(`${at}/upstream`, `unknown upstream "${upstream}"${guess ? ` (did you mean "${guess}"?)` : known.length ? ` (defined: ${known.join(', ')})` : ''}`);
    }

    const match = asObj(route.match);
    const host = str(match.host);
    // Only values the schema's pattern accepted: the rest already has a message.
    if (host !== undefined && HOST_PATTERN.test(host)) {
      const problem = validateHostPattern(host);
      if (problem !== null) add(`${at}/match/host`, `invalid host ${JSON.stringify(host)}: ${problem}`);
    }
    const template = str(match.path);
    if (template !== undefined && PATH_PATTERN.test(template)) {
      const problem = validateTemplate(template);
      if (problem !== null) add(`${at}/match/path`, `invalid path template ${JSON.stringify(template)}: ${problem}`);
      // Same template, same host, a shared method: the second route could never match.
      const key = `${host?.toLowerCase() ?? ''} ${template}`;
      const methods = asList(match.methods);
      for (const other of matches.get(key) ?? []) {
        const shared = methods.find((m) => other.methods.includes(m));
        if (shared !== undefined) add(`${at}/match`, `matches the same requests as /routes/${other.index} (same path, host and method ${String(shared)})`);
      }
      matches.set(key, [...(matches.get(key) ?? []), { index: i, methods }]);
    }

    if (route.websocket === true && upstream !== undefined && upstreams !== undefined && ['h2c', 'h2'].includes(String(asObj(upstreams[upstream]).protocol))) {
      add(`${at}/websocket`, 'a websocket route needs an HTTP/1.1 upstream (protocol: http1): the upgrade is an HTTP/1.1 exchange');
    }
    if (route.grpc === true) checkGrpcRoute(match, upstream !== undefined && upstreams !== undefined ? asObj(upstreams[upstream]) : undefined, at, add);

    const auth = route.auth ?? DEFAULTS.route.auth;
    if ((auth === 'required' || auth === 'optional') && id !== undefined) authenticated.push(id);
    checkRouteCredentials(route, at, upstream !== undefined && upstreams !== undefined && Object.hasOwn(upstreams, upstream) ? [upstream, asObj(upstreams[upstream])] : undefined, add);
    const seenHeaders = new Map<string, string>();
    for (const [name, source] of Object.entries(asObj(route.identity_headers))) {
      const headerPath = `${at}/identity_headers/${escapePointer(name)}`;
      const problem = identityHeaderProblem(name);
      if (problem !== undefined) add(headerPath, `header ${name} ${problem}`, 'key');
      // `x_user` and `X-User` reach many upstreams as the same field (CGI, nginx, ...).
      const folded = name.toLowerCase().replaceAll('_', '-');
      const dup = seenHeaders.get(folded);
      if (dup !== undefined) add(headerPath, `header ${name} is also set as ${dup} (names are case-insensitive and '_' is read as '-')`, 'key');
      else seenHeaders.set(folded, name);
      if (auth === 'none' && typeof source === 'string' && SOURCE_PATTERN.test(source) && /^(subject|token)\./.test(source)) {
        add(headerPath, `source ${source} needs a verified token, but this route has auth: none (use auth: optional or required, or route.id / decision.id)`);
      }
    }
  });
  if (issuerCount === 0 && authenticated.length > 0) {
    add('/issuers', `no issuers are configured, but routes ${authenticated.map((id) => `"${id}"`).join(', ')} verify tokens (auth: required or optional)`);
  }
}

/** `protocol: h2c` is cleartext HTTP/2 (http://), `h2` is HTTP/2 negotiated over TLS (https://). */
function checkUpstreamProtocol(upstream: Obj, at: string, add: (keyPath: string, problem: string) => void): void {
  const url = str(upstream.url);
  if (url === undefined) return;
  if (upstream.protocol === 'h2c' && !url.startsWith('http://')) add(`${at}/protocol`, 'protocol h2c is cleartext HTTP/2: the url must be http:// (for HTTP/2 over TLS use protocol: h2)');
  if (upstream.protocol === 'h2' && !url.startsWith('https://')) add(`${at}/protocol`, 'protocol h2 is HTTP/2 over TLS: the url must be https:// (for cleartext HTTP/2 use protocol: h2c)');
}

/**
 * A gRPC route: POST only, a path of exactly two segments (`/{package.Service}/{Method}`, the
 * gRPC wire path), and an HTTP/2 upstream (gRPC's status travels in trailers, which HTTP/1.1 forwarding drops).
 */
function checkGrpcRoute(match: Obj, upstream: Obj | undefined, at: string, add: (keyPath: string, problem: string) => void): void {
  const methods = asList(match.methods);
  if (methods.length !== 1 || methods[0] !== 'POST') add(`${at}/match/methods`, 'a grpc route matches POST only (every gRPC call is a POST): set methods: [POST]');
  const template = str(match.path);
  if (template !== undefined && (template.split('/').length !== 3 || template.endsWith('*}') || template.endsWith('/*'))) {
    add(`${at}/match/path`, `a grpc route's path is /{package.Service}/{Method}: exactly two segments without a rest wildcard (found ${JSON.stringify(template)})`);
  }
  if (upstream !== undefined && upstream.protocol !== 'h2c' && upstream.protocol !== 'h2') {
    add(`${at}/grpc`, 'a grpc route needs an HTTP/2 upstream (protocol: h2c or h2): gRPC status travels in trailers');
  }
}

/**
 * Why `name` cannot be an identity header, if it cannot. The upstream header
 * stage is the authority (it refuses such names at startup with a TypeError);
 * the table above only words the common cases better.
 */
function identityHeaderProblem(name: string): string | undefined {
  if (!HEADER_NAME.test(name)) return undefined; // the schema reports it
  const folded = name.toLowerCase().replaceAll('_', '-');
  const reason = RESERVED_HEADERS[folded] ?? (folded.startsWith('x-forwarded-') ? 'is set by regate itself' : undefined);
  if (reason !== undefined) return reason;
  try {
    compileHeaderPolicy({ id: 'check', identity_headers: { [name]: 'route.id' } } as unknown as RouteConfig);
    return undefined;
  } catch {
    return 'names a field regate controls (framing, forwarding, or a single-valued client field the policy saw)';
  }
}

/** Why a header cannot carry a credential, if it cannot (`upstreams.<id>.credentials.<name>.header`). */
function credentialHeaderProblem(name: string): string | undefined {
  if (!HEADER_NAME.test(name)) return undefined; // the schema reports it
  const folded = name.toLowerCase().replaceAll('_', '-');
  if (folded === 'authorization') return undefined;
  if (folded === 'cookie') return 'carries the client\'s cookies, which regate would have to drop: use a header of its own';
  if (folded.startsWith('x-regate-')) return 'is in regate\'s reserved x-regate- namespace';
  return RESERVED_HEADERS[folded] ?? (folded.startsWith('x-forwarded-') ? 'is set by regate itself' : undefined);
}

/**
 * `routes[].credentials`: names declared on the route's upstream, no two on one header,
 * none on an identity header of the route, and no `Authorization` credential where
 * `forward_authorization` would forward the client's.
 */
function checkRouteCredentials(route: Obj, at: string, upstream: [string, Obj] | undefined, add: (keyPath: string, problem: string) => void): void {
  if (!Array.isArray(route.credentials) || upstream === undefined) return;
  const [upstreamId, u] = upstream;
  const declared = asObj(u.credentials);
  const names = Object.keys(declared);
  const headers = new Map<string, string>();
  const seen = new Set<string>();
  const identity = new Set(Object.keys(asObj(route.identity_headers)).map((h) => h.toLowerCase().replaceAll('_', '-')));
  route.credentials.forEach((name, j) => {
    if (typeof name !== 'string') return; // the schema reports it
    const keyPath = `${at}/credentials/${j}`;
    if (seen.has(name)) return; // the schema reports the duplicate
    seen.add(name);
    if (!Object.hasOwn(declared, name)) {
      const guess = closest(name, names);
      add(keyPath, `unknown credential "${name}": upstream "${upstreamId}" declares ${names.length === 0 ? 'no credentials (add upstreams.' + upstreamId + '.credentials)' : names.map((n) => `"${n}"`).join(', ')}${guess ? ` (did you mean "${guess}"?)` : ''}`);
      return;
    }
    const header = str(asObj(declared[name]).header);
    if (header === undefined) return;
    const folded = header.toLowerCase().replaceAll('_', '-');
    const other = headers.get(folded);
    if (other !== undefined) add(keyPath, `credential "${name}" sets header ${header}, as credential "${other}" of this route does: one header carries one credential`);
    else headers.set(folded, name);
    if (identity.has(folded)) add(keyPath, `credential "${name}" sets header ${header}, which is also one of this route's identity_headers`);
    if (folded === 'authorization' && route.forward_authorization === true) {
      add(keyPath, `credential "${name}" sets Authorization, but this route forwards the client's (forward_authorization: true): drop one of them`);
    }
  });
}

/** Fields regate needs from the client: removing them would change framing, routing or authentication. */
const NOT_REMOVABLE: Readonly<Record<string, string>> = {
  host: 'is needed to route the request (the upstream gets its own Host anyway)',
  'content-length': 'frames the request body',
  'transfer-encoding': 'frames the request body',
  authorization: 'carries the token regate verifies; it is not forwarded unless a route sets forward_authorization: true',
};

/** `request_headers_to_remove` (global, per upstream): names regate does not need itself. */
function checkRemovedHeaders(list: unknown, keyPath: string, add: (keyPath: string, problem: string) => void): void {
  asList(list).forEach((name, i) => {
    if (typeof name !== 'string') return; // the schema reports it
    const reason = NOT_REMOVABLE[name.toLowerCase().replaceAll('_', '-')];
    if (reason !== undefined) add(`${keyPath}/${i}`, `header ${name} cannot be removed: it ${reason}`);
  });
}

/** `http:` only to a loopback host: a discovery document, key set or introspection call decides who gets in. */
function isLoopbackHttp(parsed: URL): boolean {
  const host = parsed.hostname;
  return host === 'localhost' || host === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** Key source vs introspection (issue #15): algorithms with a key source, https for discovery and introspection, secrets from files. */
function checkIssuerSources(issuer: Obj, i: number, add: (keyPath: string, problem: string) => void): void {
  const at = `/issuers/${i}`;
  const hasKeys = issuer.jwks_url !== undefined || issuer.jwks_file !== undefined || issuer.discovery !== undefined;
  const sourceKey = issuer.jwks_url !== undefined ? 'jwks_url' : issuer.jwks_file !== undefined ? 'jwks_file' : 'discovery';
  if (hasKeys && issuer.algorithms === undefined) add(`${at}/algorithms`, `missing required key "algorithms" (the signature algorithms allowed for tokens verified with ${sourceKey})`);
  const iss = str(issuer.issuer);
  if (issuer.discovery === true && iss !== undefined) {
    let parsed: URL | undefined;
    try {
      parsed = new URL(iss);
    } catch {
      add(`${at}/issuer`, `with discovery: true the issuer must be a URL (the discovery document is at <issuer>/.well-known/openid-configuration), got ${JSON.stringify(iss)}`);
    }
    if (parsed !== undefined) {
      if (parsed.protocol !== 'https:' && !(parsed.protocol === 'http:' && isLoopbackHttp(parsed))) add(`${at}/issuer`, 'with discovery: true the issuer must be https:// (http:// only on a loopback host)');
      else if (parsed.search || parsed.hash || parsed.username || parsed.password) add(`${at}/issuer`, 'with discovery: true the issuer must have no query, fragment or credentials (OIDC Discovery 1.0 §2)');
    }
  }
  const intro = issuer.introspection;
  if (intro === undefined) return;
  const config = asObj(intro);
  const url = str(config.url);
  if (url === undefined && issuer.discovery !== true) add(`${at}/introspection/url`, 'missing required key "url" (only an issuer with discovery: true can take the discovered introspection_endpoint)');
  if (url !== undefined && /^https?:\/\//.test(url)) {
    checkUrl(url, `${at}/introspection/url`, add);
    try {
      const parsed = new URL(url);
      if (parsed.protocol !== 'https:' && !isLoopbackHttp(parsed)) add(`${at}/introspection/url`, 'must be https:// (http:// only on a loopback host): every opaque token is sent there');
    } catch {
      // checkUrl reported it
    }
  }
  if ((config.client_secret_file !== undefined || config.private_key_jwt !== undefined) && config.client_id === undefined) {
    add(`${at}/introspection/client_id`, `missing required key "client_id" (the client that ${config.client_secret_file !== undefined ? 'client_secret_file' : 'private_key_jwt'} authenticates)`);
  }
}

function checkUrl(url: string | undefined, keyPath: string, add: (keyPath: string, problem: string) => void): void {
  if (url === undefined || !/^https?:\/\//.test(url)) return; // the schema reports the rest
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    add(keyPath, `not a valid URL: ${JSON.stringify(url)}`);
    return;
  }
  // Credentials in a URL end up in logs and error messages.
  if (parsed.username || parsed.password) add(keyPath, 'must not contain credentials (user:password@)');
}

function timeZoneProblem(zone: string): string | undefined {
  // Intl accepts fixed offsets such as +01:00, but they ignore daylight saving time.
  if (/^[+-]\d/.test(zone)) return `${JSON.stringify(zone)} is a fixed offset, not an IANA time zone: use a zone name such as Europe/Paris`;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return undefined;
  } catch {
    return `unknown time zone ${JSON.stringify(zone)}: use an IANA name such as UTC, Europe/Paris or America/New_York`;
  }
}

function firstSeen(seen: Map<string, number>, key: string, index: number, onDuplicate: () => void): void {
  if (seen.has(key)) onDuplicate();
  else seen.set(key, index);
}
