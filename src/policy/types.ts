/** A normalized policy decision. See `normalizeDecision()` for the accepted result shapes. */
export interface Decision {
  readonly allow: boolean;
  /** Human-readable reasons from the policy (`reasons` array of strings), possibly empty. */
  readonly reasons: readonly string[];
  /** Status override for a deny (4xx only); absent → 403. */
  readonly status?: number;
  /** Headers the policy asks regate to add to the upstream request (allow only). */
  readonly headers: Readonly<Record<string, string>>;
  /**
   * Credential names the policy chose (allow only; `credentials` in the result): exactly these of the
   * route's `credentials` are injected. Absent: the route's whole list.
   */
  readonly credentials?: readonly string[];
  /** Headers the policy asks regate to add to the client response. */
  readonly responseHeaders: Readonly<Record<string, string>>;
  /** The raw result document, exactly as the policy returned it (decision log `result`). */
  readonly raw: unknown;
}

export interface Evaluation {
  readonly decision: Decision;
  /** Wall time spent in evaluation, nanoseconds (decision log `metrics.timer_rego_query_eval_ns`). */
  readonly evalNs: number;
}

/** The decision stage: input → decision, over one loaded bundle. */
export interface PolicyEngine {
  /** Bundle revision from `.manifest` (or '' when absent). */
  readonly revision: string;
  /** Entrypoint names compiled into the bundle (`regate/authz/decision`, ...). */
  readonly entrypoints: readonly string[];
  /** Builtins the wasm module needs from the host that regate does not implement. Empty = runnable. */
  readonly unsupportedBuiltins: readonly string[];
  /**
   * Evaluate `entrypoint` against `input`. `nowNs` is what `time.now_ns()` returns
   * throughout this one evaluation. Throws PolicyError for an eval error or an
   * unusable result (undefined, non-boolean allow, ...): the caller denies.
   */
  evaluate(entrypoint: string, input: unknown, nowNs: bigint): Evaluation;
}
