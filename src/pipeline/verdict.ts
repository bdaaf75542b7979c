/**
 * What {@link check} decided about one request: an immutable record every
 * front end turns into its own answer (the proxy forwards or writes a problem
 * document; the authz services tell nginx / Caddy / Envoy what to do) and the
 * closing step turns into metrics and one decision-log line.
 */

import type { Identity } from '../authn/types.ts';
import type { RegateError } from '../errors.ts';
import type { BodyStatus } from '../http/body.ts';
import type { CanonicalTarget } from '../http/canonicalize.ts';
import type { ProblemFields } from '../http/problem.ts';
import type { PolicyInput } from '../input/types.ts';
import type { DecisionOutcome, DryRunOutcome } from '../observe/record.ts';
import type { CompiledRoute } from '../runtime.ts';
import type { ResourceStatus } from './attributes.ts';
import type { Credential } from '../upstream/credentials.ts';

/** What an allow adds on the way to the upstream. Validated (src/upstream/headers.ts `checkAddedHeaders`). */
export interface UpstreamAdditions {
  /** The route's `identity_headers` for this caller: lower-case name → value. */
  readonly identity: Readonly<Record<string, string>>;
  /** Headers the policy adds to the upstream request (`decision.headers`). */
  readonly headers: Readonly<Record<string, string>>;
  /** Headers the policy adds to the client's response (`decision.response_headers`). */
  readonly responseHeaders: Readonly<Record<string, string>>;
  /**
   * Credentials to inject (`routes[].credentials`, narrowed by the decision's `credentials`).
   * Each reads its current value when the front end sends it; it serializes to its name only.
   */
  readonly credentials: readonly Credential[];
}

/** What a refusal answers: status, extra fields, problem document (RFC 9457). */
export interface Answer {
  readonly status: number;
  /**
   * `WWW-Authenticate` (401), `Allow` (405), a deny's policy response headers,
   * `Connection: close` where the rest of the request is unread (proxy only:
   * other front ends drop hop-by-hop fields).
   */
  readonly headers: Readonly<Record<string, string>>;
  readonly problem: ProblemFields;
}

export interface Verdict {
  /** Decision id: decision log `decision_id`, problem `decision_id`, upstream `X-Request-Id`, `input.request.id`. */
  readonly id: string;
  /** The request's one instant: `input.time`, `time.now_ns()`, decision log `timestamp`. */
  readonly nowNs: bigint;
  /** `process.hrtime` when the check began: the closing step measures the duration from it. */
  readonly startedHr: bigint;
  readonly method: string;
  /** Canonical path; a bounded prefix of the raw target when it was refused before canonicalization. */
  readonly path: string;
  /** Canonical target (path, query, wire forms); null when refused. */
  readonly target: CanonicalTarget | null;
  /** The Host the router matched on ('' until validated). */
  readonly host: string;
  readonly remoteAddr: string;
  readonly route: CompiledRoute | null;
  readonly params: Readonly<Record<string, string>>;
  /** The verified (or, for `regate eval --claims`, supplied) caller; null for anonymous or refused. */
  readonly identity: Identity | null;
  readonly input: PolicyInput | null;
  /** The policy stage was reached: its decision, or its error, is known. */
  readonly evaluated: boolean;
  /** The raw policy result document; `undefined` when not evaluated or the evaluation failed. */
  readonly result: unknown;
  readonly evalNs: number | undefined;
  /** allow | deny | error: what was enforced (a dry-run route's would-be decision is in `dryRun`). */
  readonly decision: DecisionOutcome;
  /** `allowed`, `policy_denied`, or the typed error's reason. */
  readonly reason: string;
  /** The policy's reasons (empty when it gave none or was not evaluated). */
  readonly reasons: readonly string[];
  /** The typed error that refused the request; null for an allow or a policy deny. */
  readonly error: RegateError | null;
  readonly dryRun: DryRunOutcome | undefined;
  /** As the decision log's `custom.resource` / `custom.body`, when the route asks for them. */
  readonly resource: ResourceStatus | undefined;
  readonly body: BodyStatus | undefined;
  /** The body bytes the policy judged (a `body` route): the proxy forwards exactly these. */
  readonly bodyBytes: Buffer | undefined;
  /** For an allow: what to add upstream. Null otherwise. */
  readonly upstream: UpstreamAdditions | null;
  /** For a refusal: what to answer. Null for an allow. */
  readonly answer: Answer | null;
}
