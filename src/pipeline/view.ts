/**
 * The request as every front end describes it to {@link check}: transport
 * neutral, so the proxy, the authz services (nginx `auth_request`, Caddy /
 * Traefik forward auth, Envoy ext_authz) and `regate eval` hand the same
 * shape to the same decision function.
 *
 * A front end only *describes*: it never canonicalizes, routes or trusts a
 * field on its own. Which fields carry the original request is the front
 * end's one job (the proxy: its own request line; nginx: `X-Original-URI`;
 * Envoy: the attribute context), and it refuses a request where they are
 * missing rather than letting a client choose what is judged.
 */

import type { IncomingMessage } from 'node:http';
import type { RegateError } from '../errors.ts';
import type { BodyStream } from '../http/body.ts';
import { checkFraming } from '../http/framing.ts';
import type { ClientFields } from '../upstream/headers.ts';

/** Where the body comes from: a live stream (read, bounded) or bytes at hand (`regate eval`, Envoy's `with_request_body`). */
export type BodySource = BodyStream | Buffer;

export interface RequestView extends ClientFields {
  /** Request method as sent (upper case for HTTP/1.1 and h2). */
  readonly method: string;
  /**
   * The request target exactly as the client sent it: origin-form path and
   * query. {@link check} canonicalizes it (400 on anything ambiguous), so every
   * front end refuses the same confusions.
   */
  readonly target: string;
  /** The client's address (decision log `requested_by`, `X-Forwarded-For` upstream); '' when unknown. */
  readonly remoteAddr: string;
  /**
   * Read only on a route with `body`. Null: this front end never sees the body
   * (nginx `auth_request`, forward auth), and a `body` route is refused (500
   * `body_unavailable`) rather than judged on an empty one.
   */
  readonly body: BodySource | null;
  /**
   * Set by a front end that could not describe the request (a field that must
   * carry the original request is missing or repeated): check refuses with it
   * before anything else.
   */
  readonly refused?: RegateError;
}

/**
 * The proxy's view: its own request line, header block and TCP peer. Framing
 * regate will not forward (src/http/framing.ts) is the first refusal, before
 * routing or authentication.
 */
export function viewOfRequest(req: IncomingMessage): RequestView {
  let refused: RegateError | undefined;
  try {
    checkFraming(req);
  } catch (err) {
    refused = err as RegateError;
  }
  return {
    method: req.method ?? 'GET',
    target: req.url ?? '',
    headers: req.headers,
    rawHeaders: req.rawHeaders,
    remoteAddr: req.socket.remoteAddress ?? '',
    body: req,
    ...(refused !== undefined ? { refused } : {}),
  };
}
