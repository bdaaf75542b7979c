/**
 * HTTP/2 upstreams (`upstreams.<id>.protocol: h2c | h2`): pooled node:http2
 * client sessions, and the relay of one exchange between a client (HTTP/1.1
 * or HTTP/2, through a {@link ResponseSink}) and an upstream stream.
 *
 * - Up to `pool.connections` sessions per upstream; a request takes the
 *   session with the fewest open streams, opening a new one while every
 *   session is busy and the pool has room. A session that sends GOAWAY,
 *   errors or closes leaves the pool at once: the next request opens a fresh
 *   one (streams already running on it finish, as GOAWAY allows).
 * - Idle sessions close after `pool.keepalive_timeout_ms` without streams.
 * - `timeouts.connect_ms` bounds the connection (504 `upstream_connect_timeout`),
 *   `timeouts.headers_ms` the response head (504 `upstream_timeout`),
 *   `timeouts.body_ms` the silence between two frames either way (cut).
 * - `protocol: h2` with `tls`: each new session uses the upstream's TLS material
 *   (src/tls/client-context.ts `watchUpstreamTls`: CA, client certificate,
 *   `servername`, `min_version`, verification always on), reloaded on file change
 *   (sessions already open keep theirs until they close). A certificate that does
 *   not verify fails the request with 502 `upstream_tls_error`, nothing sent.
 * - Trailers are relayed (gRPC status travels in them); the upstream's
 *   connection-specific and pseudo-header fields are not.
 * - The client gone → the upstream stream is cancelled (RST_STREAM CANCEL).
 */

import http2, { constants, type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders, type IncomingHttpStatusHeader } from 'node:http2';
import { performance } from 'node:perf_hooks';
import type { Readable } from 'node:stream';
import type { UpstreamConfig } from '../config/types.ts';
import { UpstreamError } from '../errors.ts';
import { admitBody } from '../http/body-gate.ts';
import { hasBody } from '../http/framing.ts';
import type { ForwardAbortReason, ForwardRequest, ForwardResult, Upstream } from './forward.ts';
import { toUpstreamError } from './forward.ts';
import { checkResponseHeaders, filterResponseHeaders, type HeaderFields } from './headers.ts';
import { responseSink, type ResponseSink } from './sink.ts';
import type { UpstreamTlsSource } from '../tls/client-context.ts';

/** A pool of HTTP/2 client sessions to one origin. */
export class H2SessionPool {
  readonly #origin: string;
  readonly #max: number;
  readonly #config: UpstreamConfig;
  readonly #sessions = new Set<ClientHttp2Session>();
  #closed = false;

  readonly #tls: UpstreamTlsSource | null;

  /** `tls`: the upstream's TLS material (`upstreams.<id>.tls`), read at each new session; null: Node's public CAs. */
  constructor(config: UpstreamConfig, origin: string, tls: UpstreamTlsSource | null = null) {
    this.#config = config;
    this.#tls = tls;
    this.#origin = origin;
    this.#max = config.pool.connections;
  }

  /** Sessions open now (tests, metrics). */
  get size(): number {
    return this.#sessions.size;
  }

  /** A session to send one more request on. @throws UpstreamError 503 `upstream_closed` once closed. */
  session(): ClientHttp2Session {
    if (this.#closed) throw new UpstreamError(503, 'upstream_closed', 'the upstream pool is closed');
    let best: ClientHttp2Session | null = null;
    let bestLoad = Infinity;
    for (const s of this.#sessions) {
      const load = openStreams(s);
      const limit = s.remoteSettings.maxConcurrentStreams ?? 100;
      if (load < limit && load < bestLoad) {
        best = s;
        bestLoad = load;
      }
    }
    if (best !== null && (bestLoad === 0 || this.#sessions.size >= this.#max)) return best;
    if (this.#sessions.size < this.#max) return this.#open();
    // Every session is at its peer's stream limit: nghttp2 queues the stream on the least loaded one.
    return best ?? [...this.#sessions][0]!;
  }

  #open(): ClientHttp2Session {
    const c = this.#config;
    const session = http2.connect(this.#origin, {
      // The configured CA, client certificate, name and version floor; verification always on.
      ...(this.#tls !== null ? this.#tls.options : {}),
      // An h2 upstream must negotiate h2 by ALPN: node refuses the session otherwise.
      ...(c.protocol === 'h2' ? { ALPNProtocols: ['h2'], rejectUnauthorized: true } : {}),
      settings: { enablePush: false },
      maxSessionMemory: 32,
    });
    this.#sessions.add(session);
    const leave = (): void => {
      this.#sessions.delete(session);
    };
    // GOAWAY: no new streams on it; running ones finish. Next request opens a fresh session.
    session.on('goaway', leave);
    session.on('close', leave);
    session.on('error', () => {
      leave();
      session.destroy();
    });
    const connectTimer = setTimeout(() => {
      const err = Object.assign(new Error('connect timeout'), { code: 'ETIMEDOUT' });
      session.destroy(err);
    }, c.timeouts.connect_ms);
    connectTimer.unref();
    session.once('connect', () => clearTimeout(connectTimer));
    session.once('close', () => clearTimeout(connectTimer));
    session.setTimeout(c.pool.keepalive_timeout_ms, () => {
      if (openStreams(session) === 0) {
        leave();
        session.close();
      }
    });
    session.unref();
    return session;
  }

  /** Stop: running streams finish, sessions close. */
  close(): Promise<void> {
    this.#closed = true;
    this.#tls?.stop();
    const all = [...this.#sessions];
    this.#sessions.clear();
    return Promise.all(all.map((s) => new Promise<void>((resolve) => (s.closed ? resolve() : s.close(() => resolve()))))).then(() => undefined);
  }
}

/** Open streams per session: node keeps no public count. */
const streamCounts = new WeakMap<ClientHttp2Session, number>();
function openStreams(s: ClientHttp2Session): number {
  return streamCounts.get(s) ?? 0;
}
function track(s: ClientHttp2Session, stream: ClientHttp2Stream): void {
  streamCounts.set(s, openStreams(s) + 1);
  stream.once('close', () => streamCounts.set(s, openStreams(s) - 1));
}

/** What {@link relayH2} needs beyond the forward request. */
export interface H2Exchange {
  readonly pool: H2SessionPool;
  readonly config: UpstreamConfig;
  /** Upstream `:authority`. */
  readonly authority: string;
  readonly scheme: 'http' | 'https';
  /** Base path + canonical path and query. */
  readonly path: string;
  readonly request: ForwardRequest;
  /** Streamed when `request.body` is absent; null: no body. */
  readonly bodyStream: Readable | null;
  /** gRPC: send `te: trailers` (gRPC servers require it, RFC 9113 §8.2.2 allows only this value). */
  readonly grpc: boolean;
}

/**
 * Forward one request to an HTTP/2 upstream and stream the response into `sink`.
 *
 * @returns resolves when the response ended or was abandoned.
 * @throws (rejects) UpstreamError before the response started (502/503/504).
 */
export function relayH2(x: H2Exchange, sink: ResponseSink): Promise<ForwardResult> {
  return new Promise<ForwardResult>((resolve, reject) => {
    const started = performance.now();
    let status = 0;
    let upstreamNs = 0;
    let bytesOut = 0;
    let settled = false;
    let up: ClientHttp2Stream;
    const finish = (reason: ForwardAbortReason | undefined, error?: unknown): void => {
      if (settled) return;
      settled = true;
      clearTimeout(headersTimer);
      resolve(reason === undefined ? { status, upstreamNs, bytesOut, aborted: false } : { status, upstreamNs, bytesOut, aborted: true, reason, error });
    };
    const fail = (err: UpstreamError): void => {
      if (settled) return;
      settled = true;
      clearTimeout(headersTimer);
      reject(err);
    };
    try {
      const session = x.pool.session();
      const headers: HeaderFields = { ...x.request.headers };
      // HTTP/2 carries the host in :authority; connection-specific fields are not allowed (RFC 9113 §8.2.2).
      delete headers.host;
      delete headers['transfer-encoding'];
      delete headers.connection;
      delete headers['keep-alive'];
      delete headers.te;
      if (x.grpc) headers.te = 'trailers';
      const hasBody = x.request.body !== undefined ? x.request.body.length > 0 : x.bodyStream !== null;
      up = session.request(
        { ...headers, ':method': x.request.method, ':path': x.path, ':scheme': x.scheme, ':authority': x.authority },
        { endStream: !hasBody },
      );
      track(session, up);
    } catch (err) {
      fail(err instanceof UpstreamError ? err : toUpstreamError(err));
      return;
    }
    const headersTimer = setTimeout(() => {
      up.close(constants.NGHTTP2_CANCEL);
      fail(new UpstreamError(504, 'upstream_timeout', 'the upstream did not answer in time'));
    }, x.config.timeouts.headers_ms);
    headersTimer.unref();
    // Silence either way for body_ms: cut (the SSE-friendly idle bound of HTTP/1.1 upstreams).
    up.setTimeout(x.config.timeouts.body_ms, () => {
      if (!sink.headersSent) fail(new UpstreamError(504, 'upstream_timeout', 'the upstream did not answer in time'));
      else {
        sink.cut();
        finish('upstream_body_timeout');
      }
      up.close(constants.NGHTTP2_CANCEL);
    });

    sink.onGone(() => {
      finish('client_closed');
      if (!up.destroyed) up.close(constants.NGHTTP2_CANCEL);
    });

    if (x.request.body !== undefined) {
      if (x.request.body.length > 0) up.end(x.request.body);
    } else if (x.bodyStream !== null) {
      const body = x.bodyStream;
      body.pipe(up);
      body.once('error', () => up.close(constants.NGHTTP2_CANCEL));
    }

    up.on('response', (h: IncomingHttpHeaders & IncomingHttpStatusHeader, flags: number) => {
      const code = Number(h[':status']);
      // Interim responses (100, 103) are not relayed; `response` fires for the final one only.
      if (settled || sink.gone) return;
      clearTimeout(headersTimer);
      status = code;
      upstreamNs = Math.round((performance.now() - started) * 1e6);
      const fields = responseFields(h);
      if (x.request.responseHeaders !== undefined) Object.assign(fields, x.request.responseHeaders);
      // END_STREAM on the head: a trailers-only response (gRPC) or an empty body; nothing follows.
      const endOnHead = (flags & constants.NGHTTP2_FLAG_END_STREAM) !== 0;
      try {
        sink.respond(code, fields, endOnHead);
      } catch (err) {
        up.close(constants.NGHTTP2_CANCEL);
        fail(new UpstreamError(502, 'upstream_error', 'the upstream response could not be relayed', { cause: err }));
        return;
      }
      if (endOnHead) finish(undefined);
    });
    let trailers: HeaderFields | null = null;
    up.on('trailers', (t: IncomingHttpHeaders) => {
      trailers = responseFields(t);
    });
    up.on('data', (chunk: Buffer) => {
      if (settled) return;
      bytesOut += chunk.length;
      if (!sink.write(chunk)) up.pause();
    });
    sink.onDrain(() => up.resume());
    up.on('end', () => {
      if (settled || !sink.headersSent) return;
      sink.end(trailers);
      finish(undefined);
    });
    up.on('error', (err: unknown) => {
      if (!sink.headersSent) fail(toUpstreamError(rootCause(err)));
      else {
        sink.cut();
        finish('upstream_reset', err);
      }
    });
    up.on('close', () => {
      if (settled) return;
      if (!sink.headersSent) {
        fail(new UpstreamError(502, 'upstream_unavailable', 'the upstream is unavailable', { detail: `RST_STREAM ${up.rstCode}` }));
      } else if (up.rstCode !== constants.NGHTTP2_NO_ERROR) {
        sink.cut();
        finish('upstream_reset');
      }
    });
  });
}

/**
 * node wraps a session's connect failure in each pending stream's
 * ERR_HTTP2_STREAM_CANCEL; the cause (ECONNREFUSED, ETIMEDOUT) says what happened.
 */
function rootCause(err: unknown): unknown {
  const e = err as { code?: unknown; cause?: unknown } | null;
  if (e !== null && typeof e === 'object' && e.code === 'ERR_HTTP2_STREAM_CANCEL' && e.cause !== undefined) return e.cause;
  return err;
}

/** The upstream's fields minus pseudo-headers and hop-by-hop / connection-specific ones. */
function responseFields(h: IncomingHttpHeaders): HeaderFields {
  const plain: Record<string, string | string[] | undefined> = {};
  for (const name in h) if (name.charCodeAt(0) !== 58 /* : */) plain[name] = h[name];
  return filterResponseHeaders(plain);
}

/**
 * The {@link Upstream} of an HTTP/2 upstream: both front ends relay through
 * {@link relayH2}, an HTTP/1.1 client through a `ServerResponse` sink
 * (trailers dropped: HTTP/1.1 forwarding never relays them).
 */
export function createH2Upstream(config: UpstreamConfig, url: URL, basePath: string, tls: UpstreamTlsSource | null = null): Upstream {
  const pool = new H2SessionPool(config, url.origin, tls);
  const scheme = url.protocol === 'https:' ? 'https' : 'http';
  const exchange = (request: ForwardRequest, bodyStream: Readable | null, grpc: boolean): H2Exchange => ({
    pool,
    config,
    authority: url.host,
    scheme,
    path: basePath + request.path,
    request: request.responseHeaders === undefined ? request : { ...request, responseHeaders: checkResponseHeaders(request.responseHeaders) ?? {} },
    bodyStream,
    grpc,
  });
  return {
    id: config.id,
    origin: url.origin,
    basePath,
    forward(req, res, request) {
      try {
        if (request.path.charCodeAt(0) !== 47 /* / */) throw new TypeError('forward: path must start with /');
        let body: Readable | null = null;
        if (request.body === undefined && hasBody(req)) {
          // Authorized: `100 Continue` now if the client waits for it.
          const signal = admitBody(req);
          if (signal?.aborted) throw signal.reason as Error;
          body = req;
        }
        return relayH2(exchange(request, body, false), responseSink(res));
      } catch (err) {
        return Promise.reject(err);
      }
    },
    upgrade() {
      // Refused at config load (a websocket route needs an http1 upstream); never reached.
      return Promise.reject(new TypeError(`upstream ${config.id}: WebSocket upgrades need protocol http1`));
    },
    forwardTo(sink, body, request, grpc) {
      try {
        if (request.path.charCodeAt(0) !== 47 /* / */) throw new TypeError('forward: path must start with /');
        return relayH2(exchange(request, body, grpc), sink);
      } catch (err) {
        return Promise.reject(err);
      }
    },
    close() {
      return pool.close();
    },
  };
}
