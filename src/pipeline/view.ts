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
import type { TLSSocket } from 'node:tls';
import type { RegateError } from '../errors.ts';
import { BadRequestError } from '../errors.ts';
import type { BodyStream } from '../http/body.ts';
import { checkFraming } from '../http/framing.ts';
import { asksForWebSocket, checkUpgradeRequest } from '../http/websocket.ts';
import { connectionTls, type ConnectionTls } from '../tls/tls-info.ts';
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
   * The TLS connection the request arrived on, when the front end terminated TLS itself
   * (src/tls/tls-info.ts `connectionTls`): `input.request.tls` and the `auth: mtls` identity.
   * Absent for plaintext and for front ends whose TLS peer is not the client (the authz
   * listener: its peer is the proxy in front).
   */
  readonly tls?: ConnectionTls;
  /**
   * Set by a front end that could not describe the request (a field that must
   * carry the original request is missing or repeated): check refuses with it
   * before anything else.
   */
  readonly refused?: RegateError;
  /**
   * The request is a WebSocket upgrade (the proxy's upgrade front end,
   * src/pipeline/websocket.ts): only a route with `websocket: true` takes it,
   * and the policy sees `input.request.websocket: true`.
   */
  readonly websocket?: boolean;
}

const NO_BYTES = Buffer.alloc(0);

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
  // `Upgrade: websocket` that node did not take as an upgrade (no `Connection: upgrade`): a
  // broken handshake, refused rather than forwarded as a plain GET.
  if (refused === undefined && asksForWebSocket(req.headers)) {
    refused = checkUpgradeRequest(req, NO_BYTES) ?? new BadRequestError('websocket_handshake_invalid', 'invalid WebSocket handshake');
  }
  return {
    method: req.method ?? 'GET',
    target: req.url ?? '',
    headers: req.headers,
    rawHeaders: req.rawHeaders,
    remoteAddr: req.socket.remoteAddress ?? '',
    body: req,
    ...((req.socket as TLSSocket).encrypted === true ? { tls: connectionTls(req.socket as TLSSocket) } : {}),
    ...(refused !== undefined ? { refused } : {}),
  };
}

/**
 * The view of a WebSocket upgrade request (node's `upgrade` event): the
 * proxy's view, refused when the handshake is not one regate relays
 * (src/http/websocket.ts) or bytes came after its head.
 */
export function viewOfUpgrade(req: IncomingMessage, head: Buffer): RequestView {
  const refused = checkUpgradeRequest(req, head);
  return {
    method: req.method ?? 'GET',
    target: req.url ?? '',
    headers: req.headers,
    rawHeaders: req.rawHeaders,
    remoteAddr: req.socket.remoteAddress ?? '',
    body: null,
    websocket: true,
    ...(refused !== undefined ? { refused } : {}),
  };
}
