/**
 * Shadow evaluation: a candidate policy run beside the enforced one on live
 * traffic, so an operator can see where a stricter (or rewritten) policy would
 * decide differently before promoting it (`routes[].shadow`).
 *
 * The candidate never decides. Its evaluation cannot throw into the request
 * path: every failure becomes an `error` agreement with the PolicyError's
 * reason. Every front end calls it after its answer is complete (the closing
 * step, src/pipeline/record.ts), so it adds no latency and cannot change what
 * the client received.
 */

import type { ShadowConfig } from '../config/types.ts';
import { RegateError } from '../errors.ts';
import type { ShadowOutcome } from '../observe/record.ts';
import type { PolicyEngine } from './types.ts';

/** A route's compiled shadow policy. */
export interface ShadowPolicy {
  /** The candidate entrypoint, OPA path form. */
  readonly entrypoint: string;
  readonly bundle: ShadowConfig['bundle'];
  /**
   * Evaluate the candidate on the same input and instant as the enforced policy
   * and compare with `enforcedAllow` (the enforced policy's decision, an
   * evaluation error counting as a deny). Never throws.
   */
  evaluate(input: unknown, nowNs: bigint, enforcedAllow: boolean): ShadowOutcome;
}

/** Compile `shadow` against the engine of the bundle it names (checked at load time). */
export function compileShadow(engine: PolicyEngine, shadow: ShadowConfig): ShadowPolicy {
  const { entrypoint, bundle } = shadow;
  return {
    entrypoint,
    bundle,
    evaluate(input, nowNs, enforcedAllow) {
      try {
        const { decision, evalNs } = engine.evaluate(entrypoint, input, nowNs);
        return {
          path: entrypoint,
          bundle,
          result: decision.raw,
          allow: decision.allow,
          agreement: decision.allow === enforcedAllow ? 'agree' : 'disagree',
          evalNs,
        };
      } catch (err) {
        // A bug (TypeError) in the candidate's path is still only the candidate's failure.
        const reason = err instanceof RegateError ? err.reason : 'internal_error';
        return { path: entrypoint, bundle, result: undefined, allow: null, agreement: 'error', reason };
      }
    },
  };
}
