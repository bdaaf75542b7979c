/**
 * Message framing checks: the first thing regate does with a request, before
 * routing or authentication (issue 9).
 *
 * node's parser (llhttp, strict mode) already refuses the worst — both
 * `Content-Length` and `Transfer-Encoding`, repeated `Content-Length`, bad
 * chunk sizes, obs-fold, bare CR — and those never reach the pipeline
 * (src/server.ts `clientError`). What it accepts but an upstream or another
 * hop may frame differently is refused here, and the connection is closed,
 * because after a framing doubt nothing that follows on the connection can be
 * trusted to be the request the client meant (RFC 9112 §6.1, §11.2):
 *
 * - a `Transfer-Encoding` other than exactly `chunked` (`gzip, chunked`,
 *   `identity, chunked`, `chunked, chunked`, two fields): node strips only the
 *   chunked framing; `unsupported_transfer_coding`;
 * - `Transfer-Encoding` in an HTTP/1.0 request: RFC 9112 §6.1 says to treat
 *   the framing as faulty; `invalid_framing`;
 * - `CONNECT`: regate does not tunnel; `connect_not_supported`.
 *
 * {@link bodyPending} is the other half of the rule: a response to a request
 * whose body was not read to its end closes the connection (src/http/problem.ts),
 * so the unread rest is never parsed as a next request.
 */

import type { IncomingMessage } from 'node:http';
import { BadRequestError } from '../errors.ts';

/** Reasons of {@link checkFraming}: a refusal with one of them always closes the connection. */
export const FRAMING_REASONS = ['unsupported_transfer_coding', 'invalid_framing', 'connect_not_supported'] as const;
export type FramingReason = (typeof FRAMING_REASONS)[number];
const FRAMING_SET: ReadonlySet<string> = new Set(FRAMING_REASONS);

/** Whether a refusal reason is a framing refusal (the connection must close). */
export function isFramingReason(reason: string): boolean {
  return FRAMING_SET.has(reason);
}

/**
 * Refuse framing regate will not forward. Synchronous, no allocation on the
 * common path (no Transfer-Encoding, not CONNECT).
 *
 * @throws BadRequestError with a {@link FRAMING_REASONS} reason.
 */
export function checkFraming(req: IncomingMessage): void {
  if (req.method === 'CONNECT') throw new BadRequestError('connect_not_supported', 'CONNECT is not supported: regate does not tunnel');
  const te = req.headers['transfer-encoding'];
  if (te === undefined) return;
  if (req.httpVersionMajor !== 1 || req.httpVersionMinor !== 1) {
    throw new BadRequestError('invalid_framing', 'Transfer-Encoding is not allowed in an HTTP/1.0 request');
  }
  // node joins repeated Transfer-Encoding fields with ', ': two fields are refused as a list.
  if (te.length !== 7 || te.toLowerCase() !== 'chunked') {
    throw new BadRequestError('unsupported_transfer_coding', 'only the chunked transfer coding is supported');
  }
  if (req.headers['content-length'] !== undefined) {
    // node refuses this itself; kept so the rule does not depend on a parser flag.
    throw new BadRequestError('invalid_framing', 'Content-Length together with Transfer-Encoding');
  }
}

/** RFC 9112 §6.3: a request has a body iff it has Transfer-Encoding or a non-zero Content-Length. */
export function hasBody(req: IncomingMessage): boolean {
  const cl = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (cl !== undefined && cl !== '0');
}

/** The request has a body that has not been received to its end. */
export function bodyPending(req: IncomingMessage): boolean {
  return !req.complete && hasBody(req);
}
