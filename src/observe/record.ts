/**
 * The per-request outcome, and the observer that records it.
 *
 * The pipeline builds exactly one {@link RequestOutcome} per request, in its
 * `finally` block — also when the client went away or a stage threw — and
 * hands it to {@link Observer.record}. Metrics and the decision log are both
 * derived from this one value, so they can never disagree about what happened
 * (opa-envoy-plugin does the same: one closing step logs and counts).
 */

import type { AuthzProtocol } from '../config/types.ts';
import type { PolicyInput } from '../input/types.ts';

/** The three ext_authz-style outcomes: allowed, denied by policy, or failed (and denied). */
export type DecisionOutcome = 'allow' | 'deny' | 'error';

/** How the authentication stage ended. */
export interface AuthnOutcome {
  /**
   * `verified`: a token was verified. `anonymous`: no token on an `optional` route,
   * or an `auth: none` route. `failed`: a token was required or present and rejected.
   * `skipped`: the request never reached authentication (refused earlier).
   */
  readonly outcome: 'verified' | 'anonymous' | 'failed' | 'skipped';
  /** For `failed`: one of `AUTHN_REASONS` (src/errors.ts). */
  readonly reason?: string;
  /** Config id of the issuer that verified (or was selected for) the token. */
  readonly issuer?: string;
}

/**
 * A dry-run route's policy decision: what would have been enforced. The request
 * was forwarded whatever it says (`routes[].dry_run`).
 */
export interface DryRunOutcome {
  readonly decision: DecisionOutcome;
  /** `allowed`, `policy_denied`, or the policy error's reason (`policy_eval_error`, ...). */
  readonly reason: string;
}

/** Values of `agreement` for a shadow evaluation. */
export type ShadowAgreement = 'agree' | 'disagree' | 'error';

/** A shadow (candidate) policy evaluated beside the enforced one; it never decides. */
export interface ShadowOutcome {
  /** The candidate entrypoint, OPA path form. */
  readonly path: string;
  /** The bundle it was evaluated in: the enforced one, or `policy.candidate`. */
  readonly bundle: 'active' | 'candidate';
  /** The raw result document; `undefined` when the evaluation failed. */
  readonly result: unknown;
  /** The candidate's allow; null when it could not decide. */
  readonly allow: boolean | null;
  /**
   * `agree`: same allow as the enforced policy's decision (an enforced policy
   * error counts as a deny, as it is enforced); `disagree`; `error`: the
   * candidate could not decide (undefined, garbage, eval error).
   */
  readonly agreement: ShadowAgreement;
  /** For `error`: the PolicyError reason (`policy_undefined`, ...). */
  readonly reason?: string;
  /** Candidate evaluation time, nanoseconds; absent when it failed. */
  readonly evalNs?: number;
}

/** Everything observable about one finished request. Built once, never mutated. */
export interface RequestOutcome {
  /** Also `input.request.id`, the `X-Request-Id` upstream and the decision log's `decision_id`. */
  readonly decisionId: string;
  /** When the request started, nanoseconds since the epoch (decision log `timestamp`). */
  readonly startedAtNs: bigint;
  /** Wall time from the first byte handled to the end of the response, nanoseconds. */
  readonly durationNs: number;
  /** Matched route id; null when no route matched (or the target was refused first). */
  readonly routeId: string | null;
  /** Policy entrypoint in OPA path form (`regate/authz/decision`); null when not evaluated. */
  readonly entrypoint: string | null;
  /** The policy input as built; null when the request was refused before it was built. */
  readonly input: PolicyInput | null;
  /** The raw policy result document; `undefined` when the policy was not evaluated. */
  readonly result: unknown;
  readonly decision: DecisionOutcome;
  /** Status sent to the client (or that would have been, for a client that went away). */
  readonly status: number;
  /**
   * `allowed`, `policy_denied`, or the `reason` of the RegateError that stopped the
   * request (`token_expired`, `route_not_found`, `upstream_timeout`, `policy_eval_error`,
   * `client_closed`, ...).
   */
  readonly reason: string;
  readonly authn: AuthnOutcome;
  /** Scopes of the verified subject; empty when unauthenticated. */
  readonly scopes: readonly string[];
  /** Policy evaluation time, nanoseconds; absent when not evaluated. */
  readonly evalNs?: number;
  /** Time to the upstream's response headers, nanoseconds; absent (or 0) when no headers arrived. */
  readonly upstreamNs?: number;
  /** Status the upstream answered with; absent when not forwarded or no answer. */
  readonly upstreamStatus?: number;
  /** Upper-case request method. */
  readonly method: string;
  /** Canonical path; the raw target, truncated, when it was refused before canonicalization. */
  readonly path: string;
  /**
   * Client address (decision log `requested_by`). Optional: when absent the
   * log falls back to `input.request.remote_addr`.
   */
  readonly remoteAddr?: string;
  /** Present on a `dry_run` route once the policy was evaluated: the decision that was not enforced. */
  readonly dryRun?: DryRunOutcome;
  /** Present on a route with a `shadow` once the enforced policy was evaluated. */
  readonly shadow?: ShadowOutcome;
  /**
   * Present on a route with `resource` once the lookup stage ran: `hit`,
   * `coalesced`, `miss`, a failure reason (`resource_timeout`, ...), `skipped`
   * (anonymous caller) or `supplied` (`regate eval --resource`).
   */
  readonly resource?: string;
  /** Present on a route with `body` once the body was read: `parsed`, `body_empty`, `body_not_json`, `body_malformed`. */
  readonly body?: string;
  /**
   * The authz listener's protocol when a proxy in front asked (`listen.authz`):
   * regate answered and the proxy forwarded. Absent: regate's own proxy listener.
   */
  readonly frontEnd?: AuthzProtocol;
  /** Names of the credentials injected (an allow on a route with `credentials`); never values. */
  readonly credentials?: readonly string[];
  /**
   * The request's trace id (32 hex digits) when tracing is on and the request
   * was sampled: the request-duration histogram's exemplar (OpenMetrics).
   */
  readonly traceId?: string;
}

/** The closing step of the request path. */
export interface Observer {
  /** Record one finished request. Never throws: it runs in the pipeline's `finally`. */
  record(outcome: RequestOutcome): void;
}

/** The parts an {@link Observer} is composed from (see metrics.ts and decision-log.ts). */
export interface ObserverParts {
  readonly metrics: { observe(outcome: RequestOutcome): void };
  readonly decisionLog: { write(outcome: RequestOutcome): void };
  /** Hears about a part that threw. Default: one process warning for the first failure. */
  readonly onError?: (err: unknown) => void;
}

/**
 * Compose metrics and the decision log into one {@link Observer}. Each part is
 * isolated: a failure in one (a metrics bug, a log serialization error) neither
 * stops the other nor escapes into the pipeline's `finally`, where a throw
 * would replace the response the client already got.
 */
export function createObserver(parts: ObserverParts): Observer {
  const { metrics, decisionLog } = parts;
  const onError = parts.onError ?? reportOnce;
  const guard = (err: unknown): void => {
    try {
      onError(err);
    } catch {
      // The reporter itself failed; nothing safer is left to do.
    }
  };
  return {
    record(outcome: RequestOutcome): void {
      try {
        metrics.observe(outcome);
      } catch (err) {
        guard(err);
      }
      try {
        decisionLog.write(outcome);
      } catch (err) {
        guard(err);
      }
    },
  };
}

let reported = false;
/** Default: one process warning, not one per request (a broken part would flood stderr). */
function reportOnce(err: unknown): void {
  if (reported) return;
  reported = true;
  process.emitWarning(`regate observer: failed to record an outcome: ${err instanceof Error ? err.message : String(err)}`, {
    code: 'REGATE_OBSERVER_FAILED',
  });
}
