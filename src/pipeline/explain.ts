/**
 * Offline decisions: a request *description* through `check()`, the proxy's
 * own decision function (src/pipeline/check.ts), without a socket, an
 * upstream or a decision log. `regate eval` prints the result.
 *
 * Two things differ from the proxy, on purpose and visibly in the report:
 *
 * - identity may be *supplied* as claims (copied from a decision log's
 *   `input.token`): they are mapped exactly as verified claims would be, but
 *   nothing was verified, and the report says so;
 * - resource attributes may be *supplied* (copied from `input.resource`)
 *   instead of asking the catalog.
 *
 * A refusal before the policy (400, 404, 405, 401, 413, 503 ...) is a deny
 * with its status and reason, as the proxy would answer it.
 */

import type { IncomingHttpHeaders } from 'node:http';
import { deepFreeze, mapIdentity } from '../authn/claims.ts';
import type { Identity } from '../authn/types.ts';
import type { IssuerConfig } from '../config/types.ts';
import { DEFAULTS } from '../config/defaults.ts';
import { AuthnError } from '../errors.ts';
import type { BodyStatus } from '../http/body.ts';
import type { PolicyInput } from '../input/types.ts';
import type { Runtime } from '../runtime.ts';
import type { ResourceStatus } from './attributes.ts';
import { check } from './check.ts';

/** One request to explain. Headers as a client would send them. */
export interface RequestDescription {
  readonly method: string;
  /** Request target: path and query, e.g. `/v1/files/a.csv?x=1`. */
  readonly path: string;
  /** In order; names in any case. A missing Host becomes `localhost`. */
  readonly headers: readonly (readonly [string, string])[];
  /** A JWT, verified for real against the configured issuers (sent as `Authorization: Bearer`). */
  readonly token?: string;
  /** Claims taken as verified (not verified!): mapped to the subject like a verified token's. */
  readonly claims?: Readonly<Record<string, unknown>>;
  /** Body bytes. Adds Content-Length (and Content-Type: application/json) unless given. */
  readonly body?: Buffer;
  /** Resource attributes to use instead of asking the catalog. */
  readonly resource?: Readonly<Record<string, unknown>>;
  /** Default `127.0.0.1`. */
  readonly remoteAddr?: string;
}

/** How the subject was established. */
export type IdentitySource =
  | { readonly source: 'token'; readonly verified: true; readonly issuer: string }
  | { readonly source: 'claims'; readonly verified: 'unverified (supplied claims)'; readonly issuer: string | null }
  | { readonly source: 'none' };

/** What `regate eval` prints. */
export interface Explanation {
  readonly route: { readonly id: string; readonly entrypoint: string } | null;
  readonly params: Readonly<Record<string, string>>;
  readonly identity: IdentitySource;
  readonly input: PolicyInput | null;
  /** The raw policy result; absent when the policy was not evaluated. */
  readonly result?: unknown;
  readonly decision: {
    readonly allow: boolean;
    /** What the proxy would answer for a deny; null for an allow (the upstream answers). */
    readonly status: number | null;
    /** `allowed`, `policy_denied`, or the refusal's reason (`route_not_found`, `token_expired`, ...). */
    readonly reason: string;
    /** The policy's reasons (empty when it gave none or was not evaluated). */
    readonly reasons: readonly string[];
  };
  /** Names of the credentials an allow would inject (`routes[].credentials`), as the decision log's `custom.credentials`; never values. */
  readonly credentials?: readonly string[];
  /** As the decision log's `custom.resource` / `custom.body`. */
  readonly resource?: ResourceStatus;
  readonly body?: BodyStatus;
  readonly bundle: { readonly revision: string };
  /** The instant evaluated (`input.time`, token expiry). */
  readonly time: string;
  /** Where this differs from what the proxy would do, or what was ignored. */
  readonly notes: readonly string[];
}

/**
 * Explain one request: the description as a {@link RequestView}, through
 * {@link check} — the proxy's own decision function — then reported.
 * Rejects only for a bug; every refusal the proxy would make is a deny.
 */
export async function explain(rt: Runtime, d: RequestDescription): Promise<Explanation> {
  const notes: string[] = [];
  const { headers, rawHeaders } = requestHeaders(d);
  let suppliedIssuer: string | null = null;
  const verdict = await check(
    rt,
    { method: d.method.toUpperCase(), target: d.path, headers, rawHeaders, remoteAddr: d.remoteAddr ?? '127.0.0.1', body: d.body ?? EMPTY },
    {
      // Supplied claims are mapped like verified ones, not verified; a real token is verified as on the proxy.
      ...(d.claims !== undefined
        ? {
            identity: () => {
              const supplied = identityFromClaims(rt.config.issuers, d.claims!, notes);
              suppliedIssuer = supplied.issuer;
              return supplied.identity;
            },
          }
        : {}),
      ...(d.resource !== undefined ? { resource: d.resource } : {}),
      enforceDryRun: true,
    },
  );
  // A bug is a bug here too: `regate eval` exits non-zero rather than printing a deny.
  if (verdict.error?.code === 'REGATE_ERR_INTERNAL') throw verdict.error.cause ?? verdict.error;

  const route = verdict.route;
  let identity: IdentitySource = { source: 'none' };
  if (route !== null && route.config.auth !== 'none' && d.claims !== undefined) {
    identity = { source: 'claims', verified: 'unverified (supplied claims)', issuer: suppliedIssuer };
  } else if (verdict.identity !== null) {
    identity = { source: 'token', verified: true, issuer: verdict.identity.issuerId };
  }
  if (route !== null) {
    if (route.config.auth === 'none' && (d.claims !== undefined || d.token !== undefined)) notes.push(`route ${route.config.id} has auth: none: the token is never looked at`);
    if (verdict.input !== null || verdict.evaluated) {
      if (d.resource !== undefined && route.resource === null) notes.push(`route ${route.config.id} has no resource: --resource is ignored`);
      if (d.body !== undefined && route.config.body === undefined) {
        notes.push(`route ${route.config.id} has no body: the body would be streamed to the upstream, unseen by the policy`);
      }
    }
  }
  if (verdict.error instanceof AuthnError && d.claims === undefined && d.token === undefined && route?.config.auth === 'required') {
    notes.push('no identity given: pass --token JWT, or --claims JSON copied from a decision log');
  }
  if (route?.dryRun && verdict.evaluated && (verdict.error === null || verdict.error.code === 'REGATE_ERR_POLICY')) {
    notes.push(`route ${route.config.id} is dry_run: the proxy would forward whatever this decision is`);
  }
  const allow = verdict.decision === 'allow';
  return {
    route: route ? { id: route.config.id, entrypoint: route.entrypoint } : null,
    params: verdict.params,
    identity,
    input: verdict.input,
    ...(verdict.result !== undefined ? { result: verdict.result } : {}),
    decision: {
      allow,
      status: allow ? null : verdict.answer!.status,
      reason: verdict.reason,
      reasons: verdict.reasons,
    },
    ...(verdict.upstream !== null && verdict.upstream.credentials.length > 0 ? { credentials: verdict.upstream.credentials.map((c) => c.name) } : {}),
    ...(verdict.resource !== undefined ? { resource: verdict.resource } : {}),
    ...(verdict.body !== undefined ? { body: verdict.body } : {}),
    bundle: { revision: rt.policy.revision },
    time: new Date(Number(verdict.nowNs / 1_000_000n)).toISOString(),
    notes,
  };
}

const EMPTY = Buffer.alloc(0);

/**
 * Node-style parsed headers and the raw list: lower-case names; a repeated
 * field joined with ", " (Authorization stays visible twice in `rawHeaders`,
 * so `multiple_authorization` is detected as on the proxy).
 */
function requestHeaders(d: RequestDescription): { headers: IncomingHttpHeaders; rawHeaders: string[] } {
  const list: [string, string][] = d.headers.map(([n, v]) => [n, v]);
  const has = (name: string): boolean => list.some(([n]) => n.toLowerCase() === name);
  if (!has('host')) list.unshift(['Host', 'localhost']);
  if (d.token !== undefined) list.push(['Authorization', `Bearer ${d.token}`]);
  if (d.body !== undefined) {
    if (!has('content-length') && !has('transfer-encoding')) list.push(['Content-Length', String(d.body.length)]);
    if (!has('content-type')) list.push(['Content-Type', 'application/json']);
  }
  const headers: Record<string, string> = Object.create(null) as Record<string, string>;
  const rawHeaders: string[] = [];
  for (const [name, value] of list) {
    const lower = name.toLowerCase();
    rawHeaders.push(name, value);
    headers[lower] = headers[lower] === undefined ? value : `${headers[lower]}, ${value}`;
  }
  return { headers: headers as IncomingHttpHeaders, rawHeaders };
}

/** The issuer whose `iss` the claims carry, else the defaults of an unknown one. */
function identityFromClaims(
  issuers: readonly IssuerConfig[],
  claims: Readonly<Record<string, unknown>>,
  notes: string[],
): { identity: Identity; issuer: string | null } {
  const iss = typeof claims.iss === 'string' ? claims.iss : undefined;
  const issuer = issuers.find((i) => i.issuer === iss);
  if (issuer === undefined) {
    notes.push(`claims iss ${JSON.stringify(iss ?? null)} matches no configured issuer: the proxy would refuse such a token (unknown_issuer); default claim mapping used`);
  }
  const config: IssuerConfig = issuer ?? {
    id: '',
    issuer: iss ?? '',
    audiences: [],
    algorithms: [],
    clock_tolerance_s: DEFAULTS.issuer.clock_tolerance_s,
    required_claims: [],
    jwks: DEFAULTS.issuer.jwks,
    claims: DEFAULTS.issuer.claims,
  };
  // mapIdentity insists on a numeric exp (a verified token always has one); supplied claims may not.
  const payload = structuredClone(claims) as Record<string, unknown>;
  const exp = typeof payload.exp === 'number' ? payload.exp : Number.MAX_SAFE_INTEGER;
  const mapped = mapIdentity({ ...payload, exp }, config);
  return { identity: { ...mapped, iss: iss ?? mapped.iss, claims: deepFreeze(payload) }, issuer: issuer?.id ?? null };
}
