import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Identity } from '../authn/types.ts';
import { AuthnError, RegateError } from '../errors.ts';
import type { PolicyInput } from '../input/types.ts';
import type { DryRunOutcome, RequestOutcome, ShadowOutcome } from '../observe/record.ts';
import type { Decision } from '../policy/types.ts';
import type { CompiledRoute, Runtime } from '../runtime.ts';
import type { ForwardResult } from '../upstream/forward.ts';
import type { BodyStatus } from '../http/body.ts';
import type { ResourceStatus } from './attributes.ts';
import type { RequestTrace } from '../observe/tracing/tracer.ts';

/**
 * What one request has gathered on its way through the pipeline. Each stage
 * fills in its part; `outcome()` turns it into the record that metrics and
 * the decision log consume, whatever point the request reached.
 */
export class Exchange {
  /** Decision id: decision log `decision_id`, problem `decision_id`, upstream `X-Request-Id`. */
  readonly id: string = randomUUID();
  readonly method: string;
  /** Set by the pipeline once the Host header is validated ('' until then). */
  host = '';
  readonly remoteAddr: string;
  /** One instant per request: `input.time` and `time.now_ns()` agree. */
  readonly nowNs: bigint;
  readonly #startHr = process.hrtime.bigint();

  path: string;
  route: CompiledRoute | null = null;
  identity: Identity | null = null;
  input: PolicyInput | null = null;
  result: unknown = undefined;
  evalNs: number | undefined;
  decision: 'allow' | 'deny' | 'error' = 'deny';
  reason = '';
  error: RegateError | null = null;
  upstreamNs: number | undefined;
  upstreamStatus: number | undefined;
  /** The policy stage was reached (decide.ts): the enforced decision, or its error, is known. */
  evaluated = false;
  /** On a dry-run route: the policy's own decision, not enforced. */
  dryRun: DryRunOutcome | undefined;
  /** On a route with a shadow policy: the candidate's evaluation. */
  shadow: ShadowOutcome | undefined;
  /** On a route with `resource`: how the catalog lookup went (attributes.ts). */
  resourceStatus: ResourceStatus | undefined;
  /** On a route with `body`: whether the body became `input.request.body`, or why not. */
  bodyStatus: BodyStatus | undefined;
  /** `tracing`: this request's trace (stage spans, upstream traceparent); null when tracing is off. */
  readonly trace: RequestTrace | null;
  readonly #rt: Runtime;

  constructor(rt: Runtime, req: IncomingMessage) {
    this.#rt = rt;
    this.trace = rt.tracer == null ? null : rt.tracer.start(req.headers);
    this.method = req.method ?? 'GET';
    this.remoteAddr = req.socket.remoteAddress ?? '';
    this.nowNs = rt.clock.nowNs();
    // Until canonicalization succeeds, log a bounded prefix of the raw target.
    this.path = (req.url ?? '').slice(0, 256);
  }

  decided(decision: Decision, evalNs: number): void {
    this.result = decision.raw;
    this.evalNs = evalNs;
    this.decision = decision.allow ? 'allow' : 'deny';
    this.reason = decision.allow ? 'allowed' : 'policy_denied';
  }

  /** A dry-run route forwards whatever the policy said: the request's outcome is an allow. */
  dryRunForwarded(wouldBe: DryRunOutcome): void {
    this.dryRun = wouldBe;
    this.decision = 'allow';
    this.reason = 'allowed';
  }

  forwarded(result: ForwardResult): void {
    this.upstreamNs = result.upstreamNs;
    this.upstreamStatus = result.status;
    if (result.aborted) this.reason = result.reason ?? 'upstream_aborted';
  }

  failed(err: RegateError): void {
    this.error = err;
    this.reason = err.reason;
    // A failure after an allow (upstream down) keeps decision=allow: the policy allowed it.
    if (this.decision !== 'allow') this.decision = err.status >= 500 ? 'error' : 'deny';
  }

  /** A bug, not a client mistake: logged for operators with the decision id, answered 500. */
  internalError(err: unknown): void {
    this.#rt.logger.error({ err, decision_id: this.id, route_id: this.route?.config.id }, 'internal error on the request path');
  }

  outcome(res: ServerResponse): RequestOutcome {
    const clientClosed = !res.writableFinished && res.destroyed;
    let status = res.headersSent ? res.statusCode : 499;
    if (clientClosed && !res.headersSent) status = 499;
    return {
      decisionId: this.id,
      startedAtNs: this.nowNs,
      durationNs: Number(process.hrtime.bigint() - this.#startHr),
      routeId: this.route?.config.id ?? null,
      entrypoint: this.input ? (this.route?.entrypoint ?? null) : null,
      input: this.input,
      result: this.result,
      decision: this.decision,
      status,
      reason: clientClosed && (this.reason === 'allowed' || this.reason === '') ? 'client_closed' : this.reason,
      authn: this.#authn(),
      scopes: this.identity?.scopes ?? [],
      evalNs: this.evalNs,
      upstreamNs: this.upstreamNs,
      upstreamStatus: this.upstreamStatus,
      method: this.method,
      path: this.path,
      remoteAddr: this.remoteAddr,
      ...(this.dryRun !== undefined ? { dryRun: this.dryRun } : {}),
      ...(this.shadow !== undefined ? { shadow: this.shadow } : {}),
      ...(this.resourceStatus !== undefined ? { resource: this.resourceStatus } : {}),
      ...(this.bodyStatus !== undefined ? { body: this.bodyStatus } : {}),
    };
  }

  #authn(): RequestOutcome['authn'] {
    if (this.error instanceof AuthnError) return { outcome: 'failed', reason: this.error.reason };
    if (this.identity) return { outcome: 'verified', issuer: this.identity.issuerId };
    if (this.route && this.route.config.auth !== 'none' && this.input) return { outcome: 'anonymous' };
    return { outcome: 'skipped' };
  }
}
