/**
 * The HTTP/2 front end's {@link RequestView}: an HTTP/2 request's pseudo-header
 * fields and header list described the way the HTTP/1.1 view describes a
 * request line and head, so check() canonicalizes, routes and authenticates
 * both the same way.
 *
 * - `:path` is the target (canonicalized by check, 400 on path confusion);
 *   `:authority` is the Host. A Host field beside a different `:authority`
 *   is refused (RFC 9113 §8.3.1: it must not differ), as is more than one.
 * - Connection-specific fields (`Connection`, `Keep-Alive`,
 *   `Proxy-Connection`, `Transfer-Encoding`, `Upgrade`; `TE` other than
 *   `trailers`) make a request malformed (RFC 9113 §8.2.2): refused 400
 *   `h2_connection_header`, never forwarded. (nghttp2 already resets such
 *   streams; this is the second line, so nothing depends on it.)
 * - A header list over `listen.proxy.http2.max_header_list_bytes` is refused:
 *   431 `header_too_large`, as HTTP/1.1's oversized heads are.
 * - CONNECT (and extended CONNECT) is refused: 400 `connect_not_supported`.
 * - On TLS (ALPN h2) the view carries the connection's `tls` (src/tls/tls-info.ts):
 *   `input.request.tls` and `auth: mtls` work as on HTTP/1.1.
 * - A missing `:method`, `:scheme` or `:path`, or a pseudo-header after
 *   regular fields, never gets here: nghttp2 resets the stream.
 */

import type { IncomingHttpHeaders } from 'node:http';
import type { ServerHttp2Stream } from 'node:http2';
import type { TLSSocket } from 'node:tls';
import { BadRequestError, HeaderListTooLargeError, type RegateError } from '../errors.ts';
import type { RequestView } from '../pipeline/view.ts';
import { Http2RequestBody } from './body.ts';
import { connectionTls } from '../tls/tls-info.ts';

const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']);

/** The view of one HTTP/2 request stream. `rawHeaders`: node's flat [name, value, ...] list of the header block. */
export function viewOfStream(
  stream: ServerHttp2Stream,
  headers: Readonly<Record<string, string | string[] | undefined>>,
  rawHeaders: readonly string[],
  maxHeaderListBytes: number,
): RequestView & { readonly body: Http2RequestBody } {
  let refused: RegateError | undefined;
  // SETTINGS_MAX_HEADER_LIST_SIZE as RFC 9113 §6.5.2 counts it, pseudo-headers included: checked here
  // whatever the HTTP/2 layer enforced, so no larger block is ever judged or forwarded.
  let listBytes = 0;
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) listBytes += Buffer.byteLength(rawHeaders[i]!) + Buffer.byteLength(rawHeaders[i + 1]!) + 32;
  if (listBytes > maxHeaderListBytes) {
    refused = new HeaderListTooLargeError('header_too_large', `the request's header list is larger than ${maxHeaderListBytes} bytes`);
  }
  const method = str(headers[':method']) ?? '';
  const path = str(headers[':path']) ?? '';
  const authority = str(headers[':authority']);
  const fields: IncomingHttpHeaders = {};
  const raw: string[] = [];
  let hosts = 0;
  let hostValue: string | undefined;
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase();
    const value = rawHeaders[i + 1]!;
    if (name.charCodeAt(0) === 58 /* : */) continue;
    if (CONNECTION_SPECIFIC.has(name) || (name === 'te' && value.trim().toLowerCase() !== 'trailers')) {
      refused ??= new BadRequestError('h2_connection_header', `connection-specific header field ${name} in an HTTP/2 request (RFC 9113 §8.2.2)`);
      continue;
    }
    if (name === 'host') {
      hosts++;
      hostValue = value;
      continue;
    }
    raw.push(name, value);
    const prev = fields[name];
    if (prev === undefined) fields[name] = value;
    // As node's HTTP/1.1 parser: cookies joined with '; ', set-cookie a list, others with ', '.
    else if (name === 'cookie') fields[name] = `${prev as string}; ${value}`;
    else if (Array.isArray(prev)) prev.push(value);
    else fields[name] = name === 'set-cookie' ? [prev as string, value] : `${prev as string}, ${value}`;
  }
  if (hosts > 1) refused ??= new BadRequestError('duplicate_host', 'more than one Host header field');
  if (authority !== undefined && hostValue !== undefined && authority !== hostValue) {
    refused ??= new BadRequestError('h2_authority_mismatch', 'the Host header field differs from :authority (RFC 9113 §8.3.1)');
  }
  const host = authority ?? hostValue;
  if (host !== undefined) fields.host = host;
  if (method === 'CONNECT') refused ??= new BadRequestError('connect_not_supported', 'CONNECT is not supported');
  const socket = stream.session?.socket;
  return {
    method,
    target: path,
    headers: fields,
    rawHeaders: raw,
    remoteAddr: socket?.remoteAddress ?? '',
    // HTTP/2 over TLS (ALPN h2): the connection's TLS facts, as the HTTP/1.1 view carries them.
    ...(socket !== undefined && (socket as TLSSocket).encrypted === true ? { tls: connectionTls(socket as TLSSocket) } : {}),
    body: new Http2RequestBody(stream, fields),
    ...(refused !== undefined ? { refused } : {}),
  };
}

function str(v: string | string[] | undefined): string | undefined {
  return typeof v === 'string' ? v : undefined;
}
