import type { IncomingHttpHeaders } from 'node:http';
import type { Identity } from '../authn/types.ts';
import type { RouteConfig } from '../config/types.ts';
import { normalizeHost } from '../http/router.ts';
import { HOP_BY_HOP } from '../upstream/headers.ts';
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
  readonly route: RouteConfig;
  readonly identity: Identity | null;
  readonly time: TimeInput;
  /** Catalog attributes (`routes[].resource`) → `input.resource`; absent when not looked up. */
  readonly resource?: Readonly<Record<string, unknown>>;
  /** The parsed JSON body (`routes[].body`) → `input.request.body`; absent when not read or not JSON. */
  readonly body?: unknown;
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
      headers: policyHeaders(p.headers),
      host: p.host,
      remote_addr: p.remoteAddr,
      // Absent rather than null: `not input.request.body` reads naturally in Rego.
      ...(p.body !== undefined ? { body: p.body } : {}),
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
 * Lower-case names (node already lower-cases), arrays joined with ", ",
 * credentials removed, and hop-by-hop headers removed — including every header
 * the client named in `Connection` — so the policy sees what the upstream gets.
 */
export function policyHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  const connection = headers.connection;
  const listed = connection ? connectionListed(connection) : null;
  for (const name in headers) {
    if (HIDDEN_HEADERS.has(name) || HOP_SET.has(name) || listed?.has(name)) continue;
    const v = headers[name];
    if (v === undefined) continue;
    out[name] = typeof v === 'string' ? v : v.join(', ');
  }
  return out;
}

const HOP_SET: ReadonlySet<string> = new Set(HOP_BY_HOP);

function connectionListed(value: string | string[]): Set<string> {
  const names = new Set<string>();
  for (const v of Array.isArray(value) ? value : [value]) {
    for (const n of v.split(',')) names.add(n.trim().toLowerCase());
  }
  return names;
}

/**
 * The request's host exactly as the router matched it: lower-case, without
 * port or trailing dot (see `normalizeHost`). HTTP/1.1 requires a Host header;
 * the server refuses requests without one.
 */
export function hostOf(headers: IncomingHttpHeaders): string {
  return headers.host ? normalizeHost(headers.host) : '';
}
