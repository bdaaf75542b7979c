import type { IncomingHttpHeaders } from 'node:http';
import type { Identity } from '../authn/types.ts';
import type { RouteConfig } from '../config/types.ts';
import { BadRequestError } from '../errors.ts';
import { normalizeHost } from '../http/router.ts';
import { isForwardedClientField, nominatedFields, type HeaderPolicy } from '../upstream/headers.ts';
import type { TlsInfo } from '../tls/tls-info.ts';
import type { GrpcCall } from '../http2/grpc.ts';
import type { PolicyInput, TimeInput } from './types.ts';

/**
 * Request headers never shown to the policy: credentials. The bearer token is
 * already verified and its claims are in `input.token`; passing it raw would
 * copy it into every decision-log record.
 */
const HIDDEN_HEADERS = new Set(['authorization', 'proxy-authorization', 'cookie']);

const ANONYMOUS: PolicyInput['subject'] = Object.freeze({
  authenticated: false,
  sub: '',
  iss: '',
  roles: Object.freeze([]) as readonly string[],
  groups: Object.freeze([]) as readonly string[],
  scopes: Object.freeze([]) as readonly string[],
  tenant: '',
});
const NO_CLAIMS: Readonly<Record<string, unknown>> = Object.freeze({});

/** What the pipeline knows about a request when it builds the policy input. */
export interface InputParts {
  readonly requestId: string;
  readonly method: string;
  readonly path: string;
  readonly params: Readonly<Record<string, string>>;
  readonly query: Readonly<Record<string, readonly string[]>>;
  readonly headers: IncomingHttpHeaders;
  readonly host: string;
  readonly remoteAddr: string;
  /** The connection's TLS (src/tls/tls-info.ts) → `input.request.tls`; absent for plaintext. */
  readonly tls?: TlsInfo;
  readonly route: RouteConfig;
  /** The route's compiled header rules (`CompiledRoute.headerPolicy`): the input shows what the upstream gets. */
  readonly headerPolicy: HeaderPolicy;
  readonly identity: Identity | null;
  readonly time: TimeInput;
  /** Catalog attributes (`routes[].resource`) → `input.resource`; absent when not looked up. */
  readonly resource?: Readonly<Record<string, unknown>>;
  /** The parsed JSON body (`routes[].body`) → `input.request.body`; absent when not read or not JSON. */
  readonly body?: unknown;
  /** A WebSocket upgrade → `input.request.websocket: true`; absent otherwise. */
  readonly websocket?: boolean;
  /** A gRPC route's call (`routes[].grpc`) → `input.request.grpc`. */
  readonly grpc?: GrpcCall;
}

/** Request + identity + time → the documented policy input (see README "Policy input"). */
export function buildInput(p: InputParts): PolicyInput {
  const id = p.identity;
  return {
    request: {
      id: p.requestId,
      method: p.method,
      path: p.path,
      params: p.params,
      query: p.query,
      headers: policyHeaders(p.headers, p.headerPolicy),
      host: p.host,
      remote_addr: p.remoteAddr,
      ...(p.tls !== undefined ? { tls: p.tls } : {}),
      // Absent rather than null: `not input.request.body` reads naturally in Rego.
      ...(p.body !== undefined ? { body: p.body } : {}),
      ...(p.websocket === true ? { websocket: true } : {}),
      ...(p.grpc !== undefined ? { grpc: p.grpc } : {}),
    },
    route: { id: p.route.id, attributes: p.route.attributes },
    subject: id
      ? {
          authenticated: true,
          sub: id.sub,
          iss: id.iss,
          roles: id.roles,
          groups: id.groups,
          scopes: id.scopes,
          tenant: id.tenant,
        }
      : ANONYMOUS,
    token: id ? id.claims : NO_CLAIMS,
    time: p.time,
    ...(p.resource !== undefined ? { resource: p.resource } : {}),
  };
}

/**
 * The client's header fields as the upstream receives them: lower-case names
 * (node already lower-cases), repeated fields joined with ", ", credentials
 * removed, and everything regate drops or replaces removed by the very rules
 * the forwarder applies (`isForwardedClientField`): hop-by-hop fields and those
 * named in `Connection`, a client's `X-Forwarded-*`/`Forwarded`/`X-Real-IP`/
 * `X-Request-Id`, `x-regate-*`, every route's identity headers and the
 * configured `request_headers_to_remove`, in any spelling.
 * A policy can therefore never allow on a value the upstream will not see.
 */
export function policyHeaders(headers: IncomingHttpHeaders, policy: HeaderPolicy): Record<string, string> {
  const connection = headers.connection;
  const nominated = nominatedFields(Array.isArray(connection) ? connection.join(',') : connection);
  const out: Record<string, string> = {};
  for (const name in headers) {
    if (HIDDEN_HEADERS.has(name) || !isForwardedClientField(name, policy, nominated)) continue;
    const v = headers[name];
    if (v === undefined) continue;
    out[name] = typeof v === 'string' ? v : v.join(', ');
  }
  return out;
}

/**
 * The request's host exactly as the router matches it: lower-case, without
 * port or trailing dot (see `normalizeHost`); '' without a Host header
 * (HTTP/1.0 — node refuses HTTP/1.1 requests without one).
 *
 * @throws BadRequestError `invalid_host` for a Host that is not a DNS-style
 *   name or an IP literal with an optional port. Anything else (`a.com,b.com`,
 *   `a.com@b`, spaces) would be read differently by regate's router and by an
 *   upstream that splits or parses it, which is a route bypass.
 */
export function hostOf(headers: IncomingHttpHeaders): string {
  const raw = headers.host;
  if (!raw) return '';
  if (!HOST_SYNTAX.test(raw)) throw new BadRequestError('invalid_host', 'the Host header is not a host name or IP literal with an optional port');
  return normalizeHost(raw);
}

/** reg-name restricted to DNS-style labels (plus `_`), or a bracketed IPv6 literal; optional `:port`. */
const HOST_SYNTAX = /^(?:[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,252})|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?$/;
