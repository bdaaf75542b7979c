/**
 * The decision function. Every front end — the proxy (handle.ts), the authz
 * services (src/authz/) and `regate eval` (explain.ts) — describes a request
 * as a {@link RequestView} and gets a {@link Verdict} from exactly these
 * stages, in this order:
 *
 * ```
 * canonicalizeTarget(view.target)       → 400 on path confusion           (src/http/canonicalize.ts)
 * hostOf + router.match(method, host)   → 400 / 404 / 405                  (src/http/router.ts)
 * authenticator.authenticate(view)      → 401 (auth: mtls → certificateIdentity(view.tls)) (src/authn/)
 * gatherAttributes(...)                 → catalog ‖ body: 403/503, 413/415 (attributes.ts)
 * buildInput(...)                       → the documented policy input      (src/input/build.ts)
 * decide(...)                           → 403 deny / 500 error; dry-run    (decide.ts)
 * identity + policy headers, validated  → 401 invalid_claim / 500          (src/upstream/headers.ts)
 * credentials the allow injects          → 500 invalid_decision_credential  (src/runtime.ts credentialsFor)
 * ```
 *
 * Any failure is a typed error that denies (fail closed): `check` never
 * rejects, and a bug becomes a 500 `internal_error` verdict, logged for
 * operators with the decision id.
 */

import { randomUUID } from 'node:crypto';
import { certificateIdentity } from '../authn/mtls.ts';
import type { Identity } from '../authn/types.ts';
import { AuthnError, isClientCertReason, BadRequestError, InternalError, MethodNotAllowedError, PayloadTooLargeError, RegateError, RequestTimeoutError, UnsupportedMediaTypeError, UpgradeRequiredError } from '../errors.ts';
import type { BodyStatus } from '../http/body.ts';
import { canonicalizeTarget, type CanonicalTarget } from '../http/canonicalize.ts';
import { isFramingReason } from '../http/framing.ts';
import { isWebSocketReason, WEBSOCKET_VERSION } from '../http/websocket.ts';
import { grpcCallOf, isGrpcContentType, type GrpcCall } from '../http2/grpc.ts';
import { buildInput, hostOf } from '../input/build.ts';
import type { PolicyInput } from '../input/types.ts';
import type { DryRunOutcome } from '../observe/record.ts';
import type { Decision } from '../policy/types.ts';
import type { CompiledRoute, Runtime } from '../runtime.ts';
import { checkAddedHeaders } from '../upstream/headers.ts';
import { gatherAttributes, type AttributeSink, type RequestAttributes, type ResourceStatus } from './attributes.ts';
import { decide, type PolicyStage } from './decide.ts';
import type { Answer, UpstreamAdditions, Verdict } from './verdict.ts';
import type { RequestView } from './view.ts';
import type { RequestTrace } from '../observe/tracing/tracer.ts';

/** What `regate eval` supplies instead of asking; the proxy and the authz services pass none. */
export interface CheckOptions {
  /**
   * Stands in for authentication on a route that authenticates (`auth` other
   * than `none`): claims taken as verified. Return `undefined` to authenticate
   * as usual.
   */
  readonly identity?: (route: CompiledRoute) => Identity | undefined;
  /** Resource attributes instead of asking the catalog. */
  readonly resource?: Readonly<Record<string, unknown>>;
  /** Enforce the policy on a `dry_run` route too (`regate eval` reports what the policy decided). */
  readonly enforceDryRun?: boolean;
  /** `tracing` (the proxy): a child span per stage reached. A stage that throws stays open; `finish` ends it as failed. */
  readonly trace?: Pick<RequestTrace, 'begin' | 'end'>;
}

const NO_OPTIONS: CheckOptions = Object.freeze({});
const NO_PARAMS: Readonly<Record<string, string>> = Object.freeze({});
const NO_ATTRIBUTES: RequestAttributes = Object.freeze({});
const NO_REASONS: readonly string[] = Object.freeze([]);

/** Decide one request. Never rejects: every refusal, and every bug, is a deny in the verdict. */
export async function check(rt: Runtime, view: RequestView, options: CheckOptions = NO_OPTIONS): Promise<Verdict> {
  const startedHr = process.hrtime.bigint();
  const id = randomUUID();
  const nowNs = rt.clock.nowNs();
  const method = view.method;
  // Until canonicalization succeeds, log a bounded prefix of the raw target.
  let path = view.target.slice(0, 256);
  let target: CanonicalTarget | null = null;
  let host = '';
  let route: CompiledRoute | null = null;
  let params = NO_PARAMS;
  let identity: Identity | null = null;
  let input: PolicyInput | null = null;
  let stage: PolicyStage | null = null;
  const sink: AttributeSink = { resourceStatus: undefined, bodyStatus: undefined };
  let attributes = NO_ATTRIBUTES;
  try {
    // 0. A front end that could not describe the request has said why.
    if (view.refused !== undefined) throw view.refused;

    // 1. Canonical path first: refuse anything ambiguous (400), route on the decoded form.
    target = canonicalizeTarget(view.target, rt.config.limits.max_url_bytes);
    path = target.path;
    host = hostOf(view.headers);

    // 2. Route: 404 for no route, 405 for a known path with another method.
    const match = rt.router.match(method, host, target.segments);
    route = rt.route(match.route.id);
    params = match.params;
    // An upgrade only where the route opted in; other routes keep refusing it (never a plain GET upstream).
    if (view.websocket === true && !route.config.websocket) {
      throw new BadRequestError('websocket_not_enabled', 'this route does not accept WebSocket upgrades');
    }

    // A gRPC route takes gRPC calls only: its answers, its upstream and `input.request.grpc` assume one.
    let grpc: GrpcCall | null = null;
    if (route.config.grpc) {
      grpc = grpcCallOf(target.segments);
      if (grpc === null || !isGrpcContentType(view.headers['content-type'])) {
        throw new UnsupportedMediaTypeError('grpc_required', 'this route takes gRPC calls only (content-type: application/grpc over HTTP/2)');
      }
    }

    // 3. Authenticate: a verified identity, null for anonymous, or a 401.
    const supplied = route.config.auth === 'none' ? undefined : options.identity?.(route);
    const trace = options.trace;
    trace?.begin('authn');
    // `auth: mtls`: the verified client certificate of the connection, never a token.
    // A token-cache hit comes back as the identity itself: no await, no microtask.
    if (supplied !== undefined) identity = supplied;
    else if (route.config.auth === 'mtls') identity = certificateIdentity(view.tls);
    else {
      const authn = rt.authenticator.authenticate(view, route.config.auth);
      identity = authn instanceof Promise ? await authn : authn;
    }
    trace?.end();

    // 4. What the route asks for, in parallel: catalog attributes (authenticated callers
    //    only; a failed lookup denies) and the JSON body (413 over the limit).
    //    Most routes ask for neither: no promise, no extra turn of the event loop.
    if (route.resource !== null || route.config.body !== undefined) {
      trace?.begin('attributes');
      attributes = await gatherAttributes(route, params, identity, view.headers, view.body, sink, options.resource);
      trace?.end();
    }
    // A JSON body the policy cannot judge as the upstream will read it (a syntax error, a
    // duplicate key, nesting over 64 levels, a lone surrogate escape) is refused before the
    // policy: nothing is forwarded on doubt, whatever a policy would say without the body.
    if (attributes.body?.status === 'body_malformed') {
      throw new BadRequestError('body_malformed', 'the JSON body is malformed or ambiguous (a syntax error, a duplicate object key, nesting deeper than 64 levels, or a lone UTF-16 surrogate escape)');
    }

    // 5. Policy input: request (and body), route attributes, resource, subject, token, time.
    input = buildInput({
      requestId: id,
      method,
      path: target.path,
      params,
      query: target.query,
      headers: view.headers,
      host,
      remoteAddr: view.remoteAddr,
      ...(view.tls !== undefined ? { tls: view.tls.input } : {}),
      route: route.config,
      headerPolicy: route.headerPolicy,
      identity,
      time: route.time.build(nowNs),
      ...(attributes.resource !== undefined ? { resource: attributes.resource } : {}),
      ...(attributes.body?.status === 'parsed' ? { body: attributes.body.value } : {}),
      ...(view.websocket === true ? { websocket: true } : {}),
      ...(grpc !== null ? { grpc } : {}),
    });

    // 6. Decide: undefined, garbage or an evaluation error throws → 500, denied.
    //    A dry-run route records the policy's decision and allows whatever it is.
    const r = route;
    trace?.begin('policy');
    stage = decide(rt, route, input, nowNs, options.enforceDryRun === true, (err) => logBug(rt, id, r, err));
    trace?.end();
    const decision = stage.enforce;
    if (!decision.allow) {
      const answer = denyAnswer(id, route, decision);
      return verdictOf('deny', 'policy_denied', null, null, answer);
    }

    // 7. What the allow adds upstream, refused here if it cannot be sent: every front end
    //    fails the same way before anything is forwarded or answered.
    const upstream: UpstreamAdditions = {
      identity: route.identityValues(identity, id),
      headers: decision.headers,
      responseHeaders: decision.responseHeaders,
      // Only names the route lists: anything else is a policy error (500), never forwarded.
      credentials: route.credentialsFor(decision.credentials),
    };
    checkAddedHeaders(route.headerPolicy, upstream.identity, upstream.headers);
    return verdictOf('allow', 'allowed', null, upstream, null);
  } catch (err) {
    const e = err instanceof RegateError ? err : internal(rt, id, route, err);
    // Past the policy stage on a dry-run route (invalid headers of an allow) the decision stands as logged.
    return verdictOf(e.status >= 500 ? 'error' : 'deny', e.reason, e, null, errorAnswer(id, e));
  }

  function verdictOf(decision: Verdict['decision'], reason: string, error: RegateError | null, upstream: UpstreamAdditions | null, answer: Answer | null): Verdict {
    const s = stage as PolicyStage | null;
    const dryRun: DryRunOutcome | undefined = s?.dryRun;
    const resource: ResourceStatus | undefined = sink.resourceStatus;
    const body: BodyStatus | undefined = sink.bodyStatus;
    return {
      id,
      nowNs,
      startedHr,
      method,
      path,
      target,
      host,
      remoteAddr: view.remoteAddr,
      route,
      params,
      identity,
      input,
      // Nothing runs between building the input and the policy: a built input was evaluated
      // (a decision, or an evaluation error).
      evaluated: input !== null,
      result: s?.result,
      evalNs: s?.evalNs,
      decision,
      reason,
      reasons: s?.reasons ?? NO_REASONS,
      error,
      dryRun,
      resource,
      body,
      bodyBytes: attributes.bodyBytes,
      upstream,
      answer,
    };
  }
}

/** A policy deny: 403 (or the policy's 4xx), reasons only where the route opts in. */
function denyAnswer(id: string, route: CompiledRoute, decision: Decision): Answer {
  return {
    status: decision.status ?? 403,
    headers: decision.responseHeaders,
    problem: {
      reason: 'policy_denied',
      detail: 'the policy denied this request',
      decisionId: id,
      reasons: route.config.expose_reasons ? decision.reasons : undefined,
    },
  };
}

/** Internal failures are not described to clients: the decision log has the detail. */
const OPAQUE_DETAIL: Record<string, string> = {
  REGATE_ERR_POLICY: 'the policy could not decide; the request was denied',
  REGATE_ERR_UPSTREAM: 'the upstream service did not answer',
  REGATE_ERR_ATTRIBUTE_SOURCE: 'resource attributes could not be loaded; the request was denied',
};

/**
 * A typed error's answer: its status and reason, `WWW-Authenticate` for a
 * 401, `Allow` for a 405, `Connection: close` where the rest of the request
 * body is never read (it must not be parsed as a next request).
 */
export function errorAnswer(id: string, e: RegateError): Answer {
  const headers: Record<string, string> = {};
  if (e instanceof AuthnError) headers['www-authenticate'] = bearerChallenge(e);
  if (e instanceof MethodNotAllowedError) headers.allow = e.allow.join(', ');
  // RFC 6455 §4.4: the versions regate speaks; RFC 9110 §15.5.22: a 426 names the protocol to upgrade to.
  if (e instanceof UpgradeRequiredError) {
    headers['sec-websocket-version'] = WEBSOCKET_VERSION;
    headers.upgrade = 'websocket';
  }
  // After a framing doubt nothing more on the connection is parsed (issue 9).
  // A refused WebSocket handshake too: its client may already be sending frames.
  if (e instanceof PayloadTooLargeError || e instanceof RequestTimeoutError || e instanceof UnsupportedMediaTypeError || isFramingReason(e.reason) || isWebSocketReason(e.reason)) headers.connection = 'close';
  return { status: e.status, headers, problem: { reason: e.reason, detail: OPAQUE_DETAIL[e.code] ?? e.message, decisionId: id } };
}

/**
 * RFC 6750 §3: a bare challenge for a missing token, `error=` for a bad one. An `auth: mtls`
 * route gets `ClientCertificate realm="regate"` (no registered scheme exists for TLS client
 * authentication; RFC 9110 §15.5.2 wants a challenge, and a Bearer one would mislead).
 */
function bearerChallenge(e: AuthnError): string {
  if (isClientCertReason(e.reason)) return 'ClientCertificate realm="regate"';
  if (!e.bearerError) return 'Bearer realm="regate"';
  return `Bearer realm="regate", error="${e.bearerError}", error_description="${e.reason}"`;
}

/** A bug, not a client mistake: logged for operators with the decision id, answered 500. */
export function internal(rt: Runtime, id: string, route: CompiledRoute | null, err: unknown): RegateError {
  logBug(rt, id, route, err);
  return new InternalError('internal_error', 'internal error', { cause: err });
}

function logBug(rt: Runtime, id: string, route: CompiledRoute | null, err: unknown): void {
  rt.logger.error({ err, decision_id: id, route_id: route?.config.id }, 'internal error on the request path');
}
