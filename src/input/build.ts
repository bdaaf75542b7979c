import type { IncomingHttpHeaders } from 'node:http';
import type { Identity } from '../authn/types.ts';
import type { RouteConfig } from '../config/types.ts';
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
  };
}

/** Lower-case names (node already lower-cases), arrays joined with ", ", credentials removed. */
export function policyHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name in headers) {
    if (HIDDEN_HEADERS.has(name)) continue;
    const v = headers[name];
    if (v === undefined) continue;
    out[name] = typeof v === 'string' ? v : v.join(', ');
  }
  return out;
}

/**
 * The request's host, lower-case, without port: from the Host header (HTTP/1.1
 * requires exactly one; node refuses requests without it for 1.1).
 * `[::1]:8080` → `[::1]`.
 */
export function hostOf(headers: IncomingHttpHeaders): string {
  const raw = headers.host;
  if (!raw) return '';
  const h = raw.toLowerCase();
  if (h.startsWith('[')) {
    const end = h.indexOf(']');
    return end === -1 ? h : h.slice(0, end + 1);
  }
  const colon = h.indexOf(':');
  return colon === -1 ? h : h.slice(0, colon);
}
