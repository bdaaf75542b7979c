/**
 * The policy stage: evaluate the route's entrypoint, enforce the decision —
 * or, on a `dry_run` route, record it and forward regardless — and, after the
 * response, evaluate the route's shadow policy beside it.
 *
 * Dry-run covers the policy stage only, and all of it: a deny and a policy
 * evaluation error (undefined, garbage, eval error) both forward, because the
 * point of dry-run is that the route's availability must not depend on a
 * policy that is still being watched. Everything before the policy (path
 * refusals, routing, authentication, attribute lookups) is enforced as usual.
 * Dry-run is an explicit per-route opt-out, marked in every decision-log
 * record (`custom.dry_run`) and counted (`regate_dry_run_decisions_total`).
 */

import { RegateError } from '../errors.ts';
import type { Decision } from '../policy/types.ts';
import type { CompiledRoute, Runtime } from '../runtime.ts';
import type { Exchange } from './exchange.ts';

/**
 * What a dry-run route forwards with when the policy denied or failed: no
 * policy headers upstream, none to the client. A deny's headers were never
 * meant to be applied, and a failed evaluation has none.
 */
const PASS_THROUGH: Decision = Object.freeze({
  allow: true,
  reasons: Object.freeze([]) as readonly string[],
  headers: Object.freeze({}),
  responseHeaders: Object.freeze({}),
  raw: undefined,
});

/**
 * Evaluate the policy for `ex` (its input is built) and return the decision to
 * enforce. Enforcing routes: undefined, garbage or an evaluation error throws
 * (→ 500, denied). Dry-run routes: never throws; the policy's own decision is
 * recorded on `ex` and an allowing decision is returned.
 */
export function decide(rt: Runtime, route: CompiledRoute, ex: Exchange): Decision {
  ex.evaluated = true;
  if (!route.dryRun) {
    const { decision, evalNs } = rt.policy.evaluate(route.entrypoint, ex.input, ex.nowNs);
    ex.decided(decision, evalNs);
    return decision;
  }
  let evaluation;
  try {
    evaluation = rt.policy.evaluate(route.entrypoint, ex.input, ex.nowNs);
  } catch (err) {
    // A bug is still logged for operators; the dry-run route forwards regardless.
    if (!(err instanceof RegateError)) ex.internalError(err);
    ex.dryRunForwarded({ decision: 'error', reason: err instanceof RegateError ? err.reason : 'internal_error' });
    return PASS_THROUGH;
  }
  const { decision, evalNs } = evaluation;
  ex.decided(decision, evalNs);
  ex.dryRunForwarded(decision.allow ? { decision: 'allow', reason: 'allowed' } : { decision: 'deny', reason: 'policy_denied' });
  return decision.allow ? decision : PASS_THROUGH;
}

/**
 * Evaluate the route's shadow policy, if it has one and the enforced policy was
 * evaluated. Runs in handle()'s `finally`, after the response: it costs the
 * client nothing and can never change what it received. Never throws.
 */
export function evaluateShadow(ex: Exchange): void {
  const shadow = ex.route?.shadow;
  if (!shadow || !ex.evaluated || ex.input === null) return;
  // Compare with what the enforced policy decided (on a dry-run route, what it would have enforced).
  const enforced = ex.dryRun?.decision ?? ex.decision;
  ex.shadow = shadow.evaluate(ex.input, ex.nowNs, enforced === 'allow');
}
