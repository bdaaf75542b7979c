/**
 * RFC 9457 problem details (`application/problem+json`) for every response
 * regate produces itself (400/401/403/404/405/414/5xx).
 *
 * Shape, in this member order:
 *
 * ```json
 * {"type":"urn:regate:problem:route_not_found","title":"Not Found","status":404,
 *  "detail":"...","instance":"...","decision_id":"…","reason":"route_not_found","reasons":["…"]}
 * ```
 *
 * - `type` defaults to `urn:regate:problem:<reason>`: a stable identifier that
 *   needs no web server to stay valid (RFC 9457 §3.1.1 allows non-resolvable
 *   URIs) and that clients can switch on.
 * - `title` defaults to the standard status text (node's `STATUS_CODES`).
 * - `decision_id` and `reason` are extension members: the id joins the client's
 *   view to the decision log, the reason is the metric label.
 * - `reasons` (the policy's own reasons) appears only when given, i.e. only for
 *   routes that opted in with `expose_reasons`.
 */

import { STATUS_CODES, type ServerResponse } from 'node:http';
import { bodyPending } from './framing.ts';

/** Members of a problem document; `status` and `title` are derived from the status code. */
export interface ProblemFields {
  /** Problem type URI; default `urn:regate:problem:<reason>`. */
  readonly type?: string;
  /** Default: the standard status text, e.g. `Forbidden`. */
  readonly title?: string;
  /** Human-readable, client-safe explanation. Never secrets, tokens or internals. */
  readonly detail?: string;
  readonly instance?: string;
  /** Decision id (`decision_id` member), also in the decision log. */
  readonly decisionId: string;
  /** Stable snake_case reason (`reason` member), e.g. `policy_denied`. */
  readonly reason: string;
  /** Policy reasons; the member is omitted when `undefined`. */
  readonly reasons?: readonly string[] | undefined;
}

/** Media type of every body written by {@link sendProblem}. */
export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

/**
 * Serialize a problem document.
 *
 * @param status - an HTTP error status (400–599).
 * @throws {TypeError} for any other status (a bug: problems are for errors only).
 */
export function problemBody(status: number, fields: ProblemFields): string {
  if (!Number.isInteger(status) || status < 400 || status > 599) throw new TypeError(`problemBody: not an error status: ${status}`);
  const doc: Record<string, unknown> = {
    type: fields.type ?? `urn:regate:problem:${fields.reason}`,
    title: fields.title ?? STATUS_CODES[status] ?? (status < 500 ? 'Client Error' : 'Server Error'),
    status,
  };
  if (fields.detail !== undefined) doc.detail = fields.detail;
  if (fields.instance !== undefined) doc.instance = fields.instance;
  doc.decision_id = fields.decisionId;
  doc.reason = fields.reason;
  if (fields.reasons !== undefined) doc.reasons = fields.reasons;
  return JSON.stringify(doc);
}

/**
 * Write a complete problem response and end it.
 *
 * `extraHeaders` (e.g. `Allow`, `WWW-Authenticate`, policy response headers)
 * are applied first; `Content-Type`, `Content-Length` and
 * `Cache-Control: no-store` always win, because a cached or mis-typed deny is a
 * deny served to the wrong request. Response bodies are omitted for HEAD by
 * node itself; the headers still describe the body a GET would have had.
 *
 * Never throws because of the response's state: if the headers were already
 * sent (the upstream died mid-stream), a problem can no longer be written and
 * ending normally would make a truncated body look complete, so the
 * connection is destroyed instead. A response that already ended is left alone.
 * A refusal of a request whose body has not been received to its end closes
 * the connection (`Connection: close`).
 */
export function sendProblem(
  res: ServerResponse,
  status: number,
  fields: ProblemFields,
  extraHeaders?: Readonly<Record<string, string | number | readonly string[]>>,
): void {
  if (res.headersSent) {
    if (!res.writableEnded) res.destroy();
    return;
  }
  if (res.writableEnded || res.destroyed) return;
  const body = problemBody(status, fields);
  if (extraHeaders !== undefined) {
    for (const name of Object.keys(extraHeaders)) res.setHeader(name, extraHeaders[name] as string | number | string[]);
  }
  res.setHeader('content-type', PROBLEM_CONTENT_TYPE);
  res.setHeader('content-length', Buffer.byteLength(body));
  res.setHeader('cache-control', 'no-store');
  // The body was not (fully) read: the rest must never be parsed as a next request (issue 9).
  // `Connection: close` makes node end the socket once this response is written.
  if (res.req !== undefined && bodyPending(res.req)) res.setHeader('connection', 'close');
  res.statusCode = status;
  res.end(body);
}
