/**
 * The closing step every front end runs once it has answered: the route's
 * shadow policy (after the answer: no latency, no say), then one
 * {@link RequestOutcome} from the verdict and what the front end did with
 * it, handed to the runtime's observer (metrics + decision log).
 */

import type { AuthzProtocol } from '../config/types.ts';
import { AuthnError, type RegateError } from '../errors.ts';
import type { RequestOutcome } from '../observe/record.ts';
import type { Runtime } from '../runtime.ts';
import { shadowOf } from './decide.ts';
import type { Verdict } from './verdict.ts';

/** What happened after the verdict, as the front end saw it. */
export interface Delivery {
  /** Status sent (or that would have been, for a client that went away: 499 before headers). */
  readonly status: number;
  /** The client went away before the answer was complete. */
  readonly clientClosed?: boolean;
  /** Proxy: time to the upstream's response headers, nanoseconds. */
  readonly upstreamNs?: number;
  /** Proxy: the upstream's status. */
  readonly upstreamStatus?: number;
  /** Proxy: why a forwarded exchange ended early (`upstream_reset`, `client_closed`, ...). */
  readonly aborted?: string;
  /** A failure after the verdict (upstream unreachable, `duplicate_host`): its reason is logged. */
  readonly error?: RegateError;
  /** The authz listener's protocol; absent for the proxy listener. */
  readonly frontEnd?: AuthzProtocol;
  /** The trace id of a sampled request (`tracing`): the request histogram's exemplar. */
  readonly traceId?: string;
}

/** Record one finished request. Never throws (the observer isolates its parts; the shadow never throws). */
export function record(rt: Runtime, verdict: Verdict, delivery: Delivery): RequestOutcome {
  const outcome = outcomeOf(verdict, delivery, shadowOf(verdict));
  rt.observer.record(outcome);
  return outcome;
}

/** The one record metrics and the decision log are derived from. */
export function outcomeOf(v: Verdict, d: Delivery, shadow: RequestOutcome['shadow']): RequestOutcome {
  let reason = v.reason;
  if (d.aborted !== undefined) reason = d.aborted;
  if (d.error !== undefined) reason = d.error.reason;
  if (d.clientClosed === true && (reason === 'allowed' || reason === '')) reason = 'client_closed';
  // A failure after an allow (upstream down) keeps decision=allow: the policy allowed it.
  const error = v.error ?? d.error ?? null;
  return {
    decisionId: v.id,
    startedAtNs: v.nowNs,
    durationNs: Number(process.hrtime.bigint() - v.startedHr),
    routeId: v.route?.config.id ?? null,
    entrypoint: v.input ? (v.route?.entrypoint ?? null) : null,
    input: v.input,
    result: v.result,
    decision: v.decision,
    status: d.status,
    reason,
    authn: authnOf(v, error),
    scopes: v.identity?.scopes ?? [],
    evalNs: v.evalNs,
    upstreamNs: d.upstreamNs,
    upstreamStatus: d.upstreamStatus,
    method: v.method,
    path: v.path,
    remoteAddr: v.remoteAddr,
    ...(v.dryRun !== undefined ? { dryRun: v.dryRun } : {}),
    ...(shadow !== undefined ? { shadow } : {}),
    ...(v.resource !== undefined ? { resource: v.resource } : {}),
    ...(v.body !== undefined ? { body: v.body } : {}),
    ...(d.frontEnd !== undefined ? { frontEnd: d.frontEnd } : {}),
    ...(v.upstream !== null && v.upstream.credentials.length > 0 ? { credentials: v.upstream.credentials.map((c) => c.name) } : {}),
    ...(d.traceId !== undefined ? { traceId: d.traceId } : {}),
  };
}

function authnOf(v: Verdict, error: RegateError | null): RequestOutcome['authn'] {
  if (error instanceof AuthnError) return { outcome: 'failed', reason: error.reason };
  if (v.identity) return { outcome: 'verified', issuer: v.identity.issuerId };
  if (v.route && v.route.config.auth !== 'none' && v.input) return { outcome: 'anonymous' };
  return { outcome: 'skipped' };
}
