import type { ServerResponse } from 'node:http';
import { AuthnError, InternalError, MethodNotAllowedError, PayloadTooLargeError, RegateError, RequestTimeoutError, UnsupportedMediaTypeError } from '../errors.ts';
import { isFramingReason } from '../http/framing.ts';
import { sendProblem } from '../http/problem.ts';
import type { Decision } from '../policy/types.ts';
import type { Exchange } from './exchange.ts';

/** A policy deny: 403 (or the policy's 4xx), reasons only where the route opts in. */
export function sendDeny(res: ServerResponse, ex: Exchange, decision: Decision): void {
  const status = decision.status ?? 403;
  sendProblem(
    res,
    status,
    {
      reason: 'policy_denied',
      detail: 'the policy denied this request',
      decisionId: ex.id,
      reasons: ex.route?.config.expose_reasons ? decision.reasons : undefined,
    },
    decision.responseHeaders,
  );
}

/** Internal failures are not described to clients: the decision log has the detail. */
const OPAQUE_DETAIL: Record<string, string> = {
  REGATE_ERR_POLICY: 'the policy could not decide; the request was denied',
  REGATE_ERR_UPSTREAM: 'the upstream service did not answer',
  REGATE_ERR_ATTRIBUTE_SOURCE: 'resource attributes could not be loaded; the request was denied',
};

/**
 * Any error on the request path becomes a problem response. Typed errors carry
 * their status and reason; anything else is a bug and answers 500 — never a
 * forward. If the response already started (upstream died mid-stream), the
 * only honest signal left is to cut the connection.
 */
export function sendError(res: ServerResponse, ex: Exchange, err: unknown): void {
  const e = err instanceof RegateError ? err : internalError(ex, err);
  ex.failed(e);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const headers: Record<string, string> = {};
  if (e instanceof AuthnError) headers['www-authenticate'] = bearerChallenge(e);
  if (e instanceof MethodNotAllowedError) headers.allow = e.allow.join(', ');
  // The rest of an oversized or stalled body is never read: close rather than parse it as a next request.
  // After a framing doubt nothing more on the connection is parsed (issue 9).
  if (e instanceof PayloadTooLargeError || e instanceof RequestTimeoutError || e instanceof UnsupportedMediaTypeError || isFramingReason(e.reason)) headers.connection = 'close';
  sendProblem(
    res,
    e.status,
    { reason: e.reason, detail: OPAQUE_DETAIL[e.code] ?? e.message, decisionId: ex.id },
    headers,
  );
}

/** RFC 6750 §3: a bare challenge for a missing token, `error=` for a bad one. */
function bearerChallenge(e: AuthnError): string {
  if (!e.bearerError) return 'Bearer realm="regate"';
  return `Bearer realm="regate", error="${e.bearerError}", error_description="${e.reason}"`;
}

function internalError(ex: Exchange, err: unknown): RegateError {
  const e = new InternalError('internal_error', 'internal error', { cause: err });
  ex.internalError(err);
  return e;
}
