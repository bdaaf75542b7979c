/**
 * The policy stage: evaluate the route's entrypoint, enforce the decision —
 * or, on a `dry_run` route, record it and allow regardless — and, once the
 * front end has answered, evaluate the route's shadow policy beside it.
 *
 * Dry-run covers the policy stage only, and all of it: a deny and a policy
 * evaluation error (undefined, garbage, eval error) both allow, because the
 * point of dry-run is that the route's availability must not depend on a
 * policy that is still being watched. Everything before the policy (path
 * refusals, routing, authentication, attribute lookups) is enforced as usual.
 * Dry-run is an explicit per-route opt-out, marked in every decision-log
 * record (`custom.dry_run`) and counted (`regate_dry_run_decisions_total`).
 */

import { RegateError } from '../errors.ts';
import type { DryRunOutcome, ShadowOutcome } from '../observe/record.ts';
import type { Decision } from '../policy/types.ts';
import type { CompiledRoute, Runtime } from '../runtime.ts';
import type { Verdict } from './verdict.ts';

/**
 * What a dry-run route allows with when the policy denied or failed: no
 * policy headers upstream, none to the client. A deny's headers were never
 * meant to be applied, and a failed evaluation has none.
 */
export const PASS_THROUGH: Decision = Object.freeze({
  allow: true,
  reasons: Object.freeze([]) as readonly string[],
  headers: Object.freeze({}),
  responseHeaders: Object.freeze({}),
  raw: undefined,
});

/** How the policy stage ended, when it did not throw. */
export interface PolicyStage {
  /** The decision to enforce: the policy's own, or {@link PASS_THROUGH} on a dry-run deny / error. */
  readonly enforce: Decision;
  /** The raw result document; `undefined` when the (dry-run) evaluation failed. */
  readonly result: unknown;
  readonly evalNs: number | undefined;
  /** The policy's reasons (empty when it failed). */
  readonly reasons: readonly string[];
  /** On a dry-run route: what would have been enforced. */
  readonly dryRun: DryRunOutcome | undefined;
}

/**
 * Evaluate the policy on `input` and return what to enforce. Enforcing
 * routes (and every route when `enforceDryRun`, for `regate eval`):
 * undefined, garbage or an evaluation error throws (→ 500, denied). Dry-run
 * routes: never throws for a policy failure; `onBug` hears about a bug.
 */
export function decide(rt: Runtime, route: CompiledRoute, input: unknown, nowNs: bigint, enforceDryRun: boolean, onBug: (err: unknown) => void): PolicyStage {
  if (!route.dryRun || enforceDryRun) {
    const { decision, evalNs } = rt.policy.evaluate(route.entrypoint, input, nowNs);
    return { enforce: decision, result: decision.raw, evalNs, reasons: decision.reasons, dryRun: undefined };
  }
  let evaluation;
  try {
    evaluation = rt.policy.evaluate(route.entrypoint, input, nowNs);
  } catch (err) {
    // A bug is still logged for operators; the dry-run route allows regardless.
    if (!(err instanceof RegateError)) onBug(err);
    const dryRun: DryRunOutcome = { decision: 'error', reason: err instanceof RegateError ? err.reason : 'internal_error' };
    return { enforce: PASS_THROUGH, result: undefined, evalNs: undefined, reasons: PASS_THROUGH.reasons, dryRun };
  }
  const { decision, evalNs } = evaluation;
  const dryRun: DryRunOutcome = decision.allow ? { decision: 'allow', reason: 'allowed' } : { decision: 'deny', reason: 'policy_denied' };
  return { enforce: decision.allow ? decision : PASS_THROUGH, result: decision.raw, evalNs, reasons: decision.reasons, dryRun };
}

/**
 * The route's shadow policy on the verdict's input, if it has one and the
 * enforced policy was evaluated. Front ends call it after answering (the
 * closing step, src/pipeline/record.ts): it costs the client nothing and can
 * never change what it received. Never throws.
 */
export function shadowOf(verdict: Verdict): ShadowOutcome | undefined {
  const shadow = verdict.route?.shadow;
  if (!shadow || !verdict.evaluated || verdict.input === null) return undefined;
  // Compare with what the enforced policy decided (on a dry-run route, what it would have enforced).
  const enforced = verdict.dryRun?.decision ?? verdict.decision;
  return shadow.evaluate(verdict.input, verdict.nowNs, enforced === 'allow');
}
