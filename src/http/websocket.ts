/**
 * The WebSocket opening handshake as regate accepts it (RFC 6455 §4.2.1),
 * checked before routing or authentication, like framing (src/http/framing.ts).
 *
 * A client's upgrade request must be a `GET` over HTTP/1.1 with
 * `Upgrade: websocket`, `Connection: upgrade`, one `Sec-WebSocket-Key` that is
 * the base64 of 16 bytes and `Sec-WebSocket-Version: 13`; it has no body, and
 * the client sends nothing after it until it has read the 101 (RFC 6455
 * §4.1). Anything else is refused, never forwarded: 400
 * `websocket_handshake_invalid` or `websocket_early_data`, and 426
 * `websocket_version_unsupported` with `Sec-WebSocket-Version: 13` for
 * another version (§4.4). Every answer to an upgrade request closes the
 * connection: after a refused handshake nothing on it is parsed.
 */

import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { BadRequestError, UpgradeRequiredError, type RegateError } from '../errors.ts';

/** Reasons of refused WebSocket upgrades (metric label `reason`, problem `reason`). */
export const WEBSOCKET_REASONS = ['websocket_handshake_invalid', 'websocket_version_unsupported', 'websocket_early_data', 'websocket_not_enabled'] as const;
export type WebSocketReason = (typeof WEBSOCKET_REASONS)[number];

const REASON_SET: ReadonlySet<string> = new Set(WEBSOCKET_REASONS);

/** Whether a refusal reason is a WebSocket handshake refusal (the connection closes). */
export function isWebSocketReason(reason: string): boolean {
  return REASON_SET.has(reason);
}

/** The one version RFC 6455 defines. */
export const WEBSOCKET_VERSION = '13';

/** RFC 6455 §1.3: appended to the key before hashing into `Sec-WebSocket-Accept`. */
const ACCEPT_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** base64 of exactly 16 bytes: 22 significant characters, the last one carrying 2 bits, then `==`. */
const KEY = /^[A-Za-z0-9+/]{21}[AQgw]==$/;

/** Whether `value` (an `Upgrade` or `Connection` field) lists `token`, case-insensitively. */
function listsToken(value: string | undefined, token: string): boolean {
  if (value === undefined) return false;
  for (const part of value.split(',')) if (part.trim().toLowerCase() === token) return true;
  return false;
}

/** The request asks for a WebSocket (its `Upgrade` field lists `websocket`), well formed or not. */
export function asksForWebSocket(headers: IncomingHttpHeaders): boolean {
  return listsToken(headers.upgrade, 'websocket');
}

/** How many times a field occurs in the raw header block. */
function occurrences(rawHeaders: readonly string[], lower: string): number {
  let n = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i]!.toLowerCase() === lower) n++;
  return n;
}

/**
 * Check an upgrade request and the bytes that came after its head
 * (`head`, node's `upgrade` event). Returns the refusal, or undefined.
 */
export function checkUpgradeRequest(req: IncomingMessage, head: Buffer): RegateError | undefined {
  const invalid = (why: string): RegateError => new BadRequestError('websocket_handshake_invalid', `invalid WebSocket handshake: ${why}`);
  if (req.method !== 'GET') return invalid('the method must be GET');
  if (req.httpVersion !== '1.1') return invalid('the request must be HTTP/1.1');
  const h = req.headers;
  if (!asksForWebSocket(h)) return invalid('Upgrade must name websocket');
  if (!listsToken(h.connection, 'upgrade')) return invalid('Connection must name upgrade');
  if (h['transfer-encoding'] !== undefined || (h['content-length'] !== undefined && h['content-length'] !== '0')) {
    return invalid('an upgrade request has no body');
  }
  const key = h['sec-websocket-key'];
  if (key === undefined || occurrences(req.rawHeaders, 'sec-websocket-key') !== 1 || !KEY.test(key)) {
    return invalid('Sec-WebSocket-Key must be one base64-encoded 16-byte value');
  }
  const version = h['sec-websocket-version'];
  if (version === undefined) return invalid('Sec-WebSocket-Version is missing');
  if (version !== WEBSOCKET_VERSION || occurrences(req.rawHeaders, 'sec-websocket-version') !== 1) {
    return new UpgradeRequiredError('websocket_version_unsupported', 'only WebSocket version 13 is supported');
  }
  // RFC 6455 §4.1: the client waits for the 101 before sending frames. Bytes already here
  // were sent before any answer: they are not part of an authorized connection.
  if (head.length > 0) return new BadRequestError('websocket_early_data', 'data was sent before the handshake was answered');
  return undefined;
}

/** RFC 6455 §4.2.2: the `Sec-WebSocket-Accept` a server must answer `key` with. */
export function acceptFor(key: string): string {
  return createHash('sha1').update(key + ACCEPT_GUID).digest('base64');
}
