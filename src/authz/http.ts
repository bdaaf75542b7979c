/**
 * The HTTP authorization service: regate's decision served to a proxy that
 * is already deployed — nginx `auth_request`, Caddy `forward_auth`, Traefik
 * `forwardAuth`, Envoy / Istio `ext_authz` with an `http_service`.
 *
 * The proxy sends one check request per client request; this front end
 * turns it into a {@link RequestView}, asks {@link check} — the very function
 * behind regate's own proxy — and answers:
 *
 * - allow → 200, no body, with the route's identity headers, the policy's
 *   upstream headers and the injected credentials (`routes[].credentials`)
 *   for the proxy to copy onto the upstream request, and
 *   `X-Regate-Decision-Id`;
 * - refusal → the verdict's status (nginx: 401 stays 401, any other refusal
 *   403 — nginx turns every other status into a 500) with the problem
 *   document, `WWW-Authenticate` and the deny's response headers.
 *
 * Which fields carry the original request is fixed per protocol and never
 * guessed: a check request without them (a misconfigured proxy, or a client
 * calling the listener directly) is refused, 400 `authz_request_incomplete`,
 * so a client can never choose the path regate judges. The carrier fields
 * themselves are removed from the view: the policy sees the client's headers.
 */

import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { AuthzListenerConfig } from '../config/types.ts';
import { BadRequestError, type RegateError } from '../errors.ts';
import { PROBLEM_CONTENT_TYPE, problemBody } from '../http/problem.ts';
import { check } from '../pipeline/check.ts';
import { record } from '../pipeline/record.ts';
import type { UpstreamAdditions, Verdict } from '../pipeline/verdict.ts';
import type { RequestView } from '../pipeline/view.ts';
import type { Runtime } from '../runtime.ts';
import { HOP_BY_HOP, type HeaderPolicy } from '../upstream/headers.ts';

/** Response field with the decision id on every answer (also the problem's `decision_id`). */
export const DECISION_ID_HEADER = 'x-regate-decision-id';

/** Where one protocol finds the original request. Lower-case field names. */
interface Carrier {
  /** null: the check request's own method. */
  readonly method: string | null;
  /** null: the check request's own target, after `path_prefix`. */
  readonly target: string | null;
  /** null: the check request's own Host. */
  readonly host: string | null;
  /** The client address; `x-forwarded-for` is read right-most (the hop the proxy added). */
  readonly client: string;
}

/** The protocols served over HTTP/1.1 here; `envoy_grpc` is src/authz/grpc.ts. */
export type HttpAuthzProtocol = Exclude<AuthzListenerConfig['protocol'], 'envoy_grpc'>;

const CARRIERS: Readonly<Record<HttpAuthzProtocol, Carrier>> = {
  nginx: { method: 'x-original-method', target: 'x-original-uri', host: 'x-original-host', client: 'x-real-ip' },
  forward_auth: { method: 'x-forwarded-method', target: 'x-forwarded-uri', host: 'x-forwarded-host', client: 'x-forwarded-for' },
  envoy_http: { method: null, target: null, host: null, client: 'x-forwarded-for' },
};

/** RFC 9110 §9.1 method = token. */
const METHOD = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** An IPv4 or IPv6 literal, as the proxy writes `$remote_addr` / X-Forwarded-For entries. */
const ADDRESS = /^(?:[0-9]{1,3}(?:\.[0-9]{1,3}){3}|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*)$/;

/** Lower-case names never treated as the client's own headers in the view, per protocol. */
function carrierNames(c: Carrier): ReadonlySet<string> {
  const names = new Set<string>([c.client, 'x-forwarded-proto', 'x-forwarded-host', 'x-forwarded-for', 'x-real-ip']);
  for (const n of [c.method, c.target, c.host]) if (n !== null) names.add(n);
  return names;
}

/** The authz front end for one listener config: compiled once. */
export interface AuthzFrontEnd {
  readonly protocol: HttpAuthzProtocol;
  /** The view of one check request (never throws: an incomplete one carries its refusal). */
  view(req: IncomingMessage): RequestView;
  /** view → check → answer → record. */
  handle(rt: Runtime, req: IncomingMessage, res: ServerResponse): Promise<void>;
}

export function createAuthzFrontEnd(listener: AuthzListenerConfig & { readonly protocol: HttpAuthzProtocol }): AuthzFrontEnd {
  const carrier = CARRIERS[listener.protocol];
  const hidden = carrierNames(carrier);
  const prefix = listener.path_prefix;

  const view = (req: IncomingMessage): RequestView => {
    const raw = req.rawHeaders;
    let refused: RegateError | undefined;
    const one = (name: string): string => {
      let value: string | undefined;
      for (let i = 0; i < raw.length; i += 2) {
        if (raw[i]!.toLowerCase() !== name) continue;
        if (value !== undefined) refused ??= incomplete(`${name} appears more than once`);
        value = raw[i + 1]!;
      }
      if (value === undefined || value === '') refused ??= incomplete(`the check request has no ${name}`);
      return value ?? '';
    };
    const method = carrier.method === null ? (req.method ?? 'GET') : one(carrier.method);
    if (!refused && !METHOD.test(method)) refused = incomplete(`${carrier.method} is not a method`);
    const target = carrier.target === null ? strip(req.url ?? '', prefix) : one(carrier.target);
    if (!refused && target === null) refused = incomplete(`the check request's path does not start with path_prefix ${prefix}/`);
    const host = carrier.host === null ? one('host') : one(carrier.host);
    const client = clientAddress(one(carrier.client));
    if (!refused && client === null) refused = incomplete(`${carrier.client} is not an IP address`);

    // The client's headers as the proxy relayed them, Host set to the original one.
    const headers: IncomingHttpHeaders = Object.create(null) as IncomingHttpHeaders;
    const rawHeaders: string[] = ['Host', host];
    for (let i = 0; i < raw.length; i += 2) {
      const lower = raw[i]!.toLowerCase();
      if (lower === 'host' || hidden.has(lower)) continue;
      rawHeaders.push(raw[i]!, raw[i + 1]!);
    }
    for (const name in req.headers) {
      if (name === 'host' || hidden.has(name)) continue;
      headers[name] = req.headers[name];
    }
    headers.host = host;
    return {
      method,
      target: target ?? '',
      headers,
      rawHeaders,
      remoteAddr: client ?? '',
      // No protocol here relays the client's body to the check request (Envoy's
      // with_request_body is for the gRPC service).
      body: null,
      ...(refused !== undefined ? { refused } : {}),
    };
  };

  return {
    protocol: listener.protocol,
    view,
    async handle(rt, req, res) {
      const verdict = await check(rt, view(req));
      try {
        answer(listener.protocol, verdict, res);
      } finally {
        record(rt, verdict, { status: res.headersSent ? res.statusCode : 499, clientClosed: !res.writableFinished && res.destroyed, frontEnd: listener.protocol });
      }
    },
  };
}

function incomplete(detail: string): BadRequestError {
  return new BadRequestError('authz_request_incomplete', `not a check request from the configured proxy: ${detail}`);
}

/** `/authz/v1/x` with prefix `/authz` → `/v1/x`; null when the path is not under the prefix. */
function strip(url: string, prefix: string): string | null {
  if (prefix === '') return url;
  if (!url.startsWith(prefix)) return null;
  const rest = url.slice(prefix.length);
  return rest.startsWith('/') ? rest : null;
}

/** The right-most entry of a comma-separated list (the hop the trusted proxy appended), if an IP literal. */
function clientAddress(value: string): string | null {
  const comma = value.lastIndexOf(',');
  const last = (comma === -1 ? value : value.slice(comma + 1)).trim();
  return ADDRESS.test(last) ? last : null;
}

const HOP: ReadonlySet<string> = new Set(HOP_BY_HOP);

/** Identity and credential headers of the route regate sets no value for on this allow. */
export function unsetHeaders(policy: HeaderPolicy, up: UpstreamAdditions): string[] {
  const unset = policy.identityHeaders.filter((n) => up.identity[n] === undefined);
  for (const h of policy.credentialHeaders) if (!up.credentials.some((c) => c.header === h)) unset.push(h);
  return unset;
}

function answer(protocol: HttpAuthzProtocol, verdict: Verdict, res: ServerResponse): void {
  res.setHeader(DECISION_ID_HEADER, verdict.id);
  res.setHeader('cache-control', 'no-store');
  const up = verdict.upstream;
  if (up !== null) {
    for (const name in up.identity) res.setHeader(name, up.identity[name]!);
    for (const name in up.headers) res.setHeader(name, up.headers[name]!);
    // Credentials: the front proxy copies them onto the upstream request like identity headers
    // (the authz answer goes to the proxy, never to the client).
    for (const c of up.credentials) res.setHeader(c.header, c.value);
    // A proxy copies only what an answer carries: a client's copy of an identity header
    // regate did not set (anonymous caller, absent claim) would otherwise reach the upstream,
    // and so would a client's copy of a credential header the policy chose not to inject.
    const unset = unsetHeaders(verdict.route!.headerPolicy, up);
    if (unset.length > 0) {
      // Envoy removes what this field names; nginx (proxy_set_header with an empty variable) and
      // Caddy / Traefik (copy_headers, authResponseHeaders) overwrite with the empty value.
      if (protocol === 'envoy_http') res.setHeader('x-envoy-auth-headers-to-remove', unset.join(','));
      else for (const name of unset) res.setHeader(name, '');
    }
    res.statusCode = 200;
    res.setHeader('content-length', 0);
    res.end();
    return;
  }
  const a = verdict.answer!;
  for (const name in a.headers) if (!HOP.has(name.toLowerCase())) res.setHeader(name, a.headers[name]!);
  // nginx auth_request honours 401 and 403 only; anything else becomes its own 500.
  const status = protocol === 'nginx' && a.status !== 401 && a.status < 500 ? 403 : a.status;
  const body = problemBody(status, a.problem);
  res.statusCode = status;
  res.setHeader('content-type', PROBLEM_CONTENT_TYPE);
  res.setHeader('content-length', Buffer.byteLength(body));
  res.end(body);
}
