/**
 * Forwarding an authorized request to its upstream, streaming both ways.
 *
 * One undici `Pool` per upstream, created at startup. Each request is one
 * `pool.dispatch()` with a small handler object: undici's parser callbacks
 * write straight into the client's `ServerResponse`, so there is no
 * intermediate Readable/Writable layer, and backpressure goes through
 * `controller.pause()/resume()`. The request body is `req` itself (or the
 * buffer the pipeline already read), never buffered here.
 *
 * Failure handling, by when it happens:
 *
 * - before upstream response headers → the promise rejects with an
 *   {@link UpstreamError} (502/503/504) and the pipeline sends a problem
 *   document (see {@link toUpstreamError});
 * - after the response started (body timeout, upstream reset) → the client
 *   connection is destroyed — a second status line is impossible and a clean
 *   end would pass a truncated body off as complete — and the promise
 *   resolves with `aborted: true` and a reason for the decision log;
 * - the client goes away → the upstream request is aborted (its socket is
 *   closed, so the upstream sees the cancel) and the promise resolves with
 *   `reason: 'client_closed'`.
 *
 * Protocol decisions:
 *
 * - HTTP/1.1 to the upstream (`allowH2: false`): hop-by-hop semantics, 1xx
 *   handling and per-chunk flushing are the ones tested here.
 * - `Expect` is not forwarded (see headers.ts): regate answers
 *   `100 Continue` itself, once the request is authorized (src/http/body-gate.ts),
 *   and undici does not implement 100-continue on HTTP/1.1.
 * - The request body is streamed under the client body timeouts
 *   (`limits.body_idle_timeout_ms`, `limits.request_timeout_ms`): a stall
 *   aborts the upstream request and the client gets 408, connection closed.
 * - Requests with both Content-Length and Transfer-Encoding, repeated
 *   Content-Length, or a Transfer-Encoding other than chunked never get here:
 *   node's parser answers 400 (test/unit/upstream/forward.test.ts proves it)
 *   and buildUpstreamHeaders() refuses `gzip, chunked`, which node accepts.
 * - Interim 1xx responses from the upstream (e.g. 103 Early Hints) are not
 *   relayed; the final response is. Response trailers are dropped.
 * - The upstream's reason phrase is not relayed: node writes the standard
 *   one for the status (RFC 9112 §4: clients ignore it).
 * - Server-Sent Events: every upstream chunk is written to the client as it
 *   arrives; node's server sockets have Nagle disabled (`noDelay` defaults to
 *   true), and when the upstream sends headers without a body chunk in the
 *   same read, the headers are flushed on the next tick so a stream that
 *   starts quiet is still visibly open.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Dispatcher } from 'undici';
import { Pool } from './undici.ts';
import type { UpstreamConfig } from '../config/types.ts';
import { RequestTimeoutError, UpstreamError } from '../errors.ts';
import { admitBody } from '../http/body-gate.ts';
import { hasBody } from '../http/framing.ts';
import { createUpstreamConnector, watchUpstreamTls, type UpstreamConnector } from '../tls/client-context.ts';
import type { TlsReloadResult } from '../tls/server-context.ts';
import { checkResponseHeaders, filterResponseHeaders, type HeaderFields } from './headers.ts';
import { dispatchUpgrade, type UpgradeRequest, type UpgradeResult } from './upgrade.ts';

/** What an upstream reports besides its exchanges (`tls` only). */
export interface UpstreamEvents {
  /** Its TLS files changed: reloaded, or refused (the previous material stays). */
  tlsReloaded?(result: TlsReloadResult, err?: Error): void;
  /** A connection failed in TLS (verification, handshake): the request got 502 `upstream_tls_error`. */
  tlsFailed?(err: UpstreamError): void;
}
import type { Readable } from 'node:stream';
import { createH2Upstream } from './h2.ts';
import type { ResponseSink } from './sink.ts';
import { dispatchToSink } from './to-stream.ts';

/** What the pipeline hands to {@link Upstream.forward}. */
export interface ForwardRequest {
  /** Upper-case method. */
  readonly method: string;
  /** Canonical wire path plus `?` + wire query if any; the upstream's base path is prefixed. */
  readonly path: string;
  /** From `buildUpstreamHeaders()`. */
  readonly headers: HeaderFields;
  /** The body when the pipeline already read it; otherwise `req` is streamed. */
  readonly body?: Buffer;
  /** Policy-added response headers; they override the upstream's fields of the same name. */
  readonly responseHeaders?: Readonly<Record<string, string>>;
}

/** Why a forwarded exchange ended early (decision-log `reason`). */
export type ForwardAbortReason = 'client_closed' | 'upstream_body_timeout' | 'upstream_reset' | 'upstream_error' | 'body_timeout' | 'request_timeout';

/** How a forward ended, once the response started or the client went away. */
export interface ForwardResult {
  /** Upstream status relayed to the client; 0 when none was received. */
  readonly status: number;
  /** Nanoseconds from dispatch to the upstream's response headers; 0 when none were received. */
  readonly upstreamNs: number;
  /** Response body bytes written to the client. */
  readonly bytesOut: number;
  /** True when the exchange did not complete (client gone, upstream failed mid-stream). */
  readonly aborted: boolean;
  readonly reason?: ForwardAbortReason;
  /** The underlying error for an aborted exchange, for the operator log. */
  readonly error?: unknown;
}

/** One upstream: a pool of connections to one origin. */
export interface Upstream {
  readonly id: string;
  /** `http://host:port` */
  readonly origin: string;
  /** Path prefix from the configured URL, without trailing slash; '' for none. */
  readonly basePath: string;
  /**
   * Forward `req` upstream and stream the response into `res`.
   *
   * @returns resolves when the response ended or was abandoned (see {@link ForwardResult}).
   * @throws (rejects) UpstreamError before the response started (502/503/504),
   *   PolicyError for invalid policy response headers (before anything is sent),
   *   TypeError for a malformed path or headers (a bug in the caller).
   */
  forward(req: IncomingMessage, res: ServerResponse, request: ForwardRequest): Promise<ForwardResult>;
  /**
   * Forward an authorized WebSocket upgrade through the same pool (src/upstream/upgrade.ts):
   * the upstream's socket after its 101, or its refusal relayed into `res`.
   */
  upgrade(request: UpgradeRequest, res: ServerResponse, signal: AbortSignal): Promise<UpgradeResult>;
  /**
   * Forward for a client that is not an HTTP/1.1 `ServerResponse` (the HTTP/2 front end,
   * src/http2/): the response goes into `sink`, trailers too where both sides carry them.
   * `body` is streamed when `request.body` is absent (null: none). `grpc`: send `te: trailers`.
   */
  forwardTo(sink: ResponseSink, body: Readable | null, request: ForwardRequest, grpc: boolean): Promise<ForwardResult>;
  /** Stop accepting requests and close connections once in-flight exchanges finish. */
  close(): Promise<void>;
}

/**
 * Create the pool for one upstream. Called once per upstream at startup.
 *
 * @throws TypeError for a URL that is not `http(s)://host[:port][/base]`
 *   (credentials, query and fragment are refused: they would be silently lost).
 */
export function createUpstream(config: UpstreamConfig, events: UpstreamEvents = {}): Upstream {
  const url = new URL(config.url);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError(`upstream ${config.id}: unsupported protocol ${url.protocol}`);
  if (url.username || url.password || url.search || url.hash) {
    throw new TypeError(`upstream ${config.id}: the URL may not carry credentials, a query or a fragment`);
  }
  const basePath = url.pathname.replace(/\/+$/, '');
  if (config.tls !== undefined && url.protocol !== 'https:') throw new TypeError(`upstream ${config.id}: tls needs an https:// URL`);
  const tlsEvents = { reloaded: (result: TlsReloadResult, err?: Error) => events.tlsReloaded?.(result, err) };
  // HTTP/2 upstreams (h2c, h2): node:http2 sessions (src/upstream/h2.ts); `tls` material shared with the connector's.
  if (config.protocol !== 'http1') {
    const upstream = createH2Upstream(config, url, basePath, config.tls === undefined ? null : watchUpstreamTls(config, tlsEvents));
    if (events.tlsFailed === undefined) return upstream;
    return { ...upstream, forward: reportTls(upstream.forward, events.tlsFailed), forwardTo: reportTls(upstream.forwardTo, events.tlsFailed) };
  }
  // `tls`: verified TLS with the configured CA, client certificate and name, reloaded on change.
  const connector: UpstreamConnector | null =
    config.tls === undefined ? null : createUpstreamConnector(config, tlsEvents);
  // A connection undici saw close may have been refused in TLS (a TLS 1.3 alert after the handshake).
  const translate = connector === null
    ? toUpstreamError
    : (err: unknown): UpstreamError => {
        const tls = connector.tlsFailure(err);
        return tls === undefined ? toUpstreamError(err) : toUpstreamError(tls);
      };
  const pool = new Pool(url.origin, {
    ...(connector !== null ? { connect: connector.connect } : {}),
    connections: config.pool.connections,
    keepAliveTimeout: config.pool.keepalive_timeout_ms,
    // The configured idle timeout is a ceiling: an upstream's `Keep-Alive: timeout=N` hint may only shorten it.
    keepAliveMaxTimeout: config.pool.keepalive_timeout_ms,
    connectTimeout: config.timeouts.connect_ms,
    headersTimeout: config.timeouts.headers_ms,
    bodyTimeout: config.timeouts.body_ms,
    allowH2: false,
    pipelining: 1,
    // A body shorter or longer than its Content-Length fails the request instead of desynchronizing the connection.
    strictContentLength: true,
  });

  return {
    id: config.id,
    origin: url.origin,
    basePath,
    forward(req, res, request) {
      let responseHeaders: Record<string, string> | null = null;
      try {
        if (request.path.charCodeAt(0) !== 47 /* / */) throw new TypeError('forward: path must start with /');
        if (request.responseHeaders !== undefined) responseHeaders = checkResponseHeaders(request.responseHeaders);
      } catch (err) {
        return Promise.reject(err);
      }
      const handler = new ForwardHandler(req, res, responseHeaders, translate);
      if (res.destroyed || res.writableEnded) {
        handler.clientGone();
        return handler.promise;
      }
      let body: Buffer | IncomingMessage | null = null;
      if (request.body !== undefined) {
        body = request.body;
      } else if (hasBody(req)) {
        if (req.readableDidRead || req.readableEnded) {
          return Promise.reject(new TypeError('forward: the request body was already read; pass it as `body`'));
        }
        // Authorized: `100 Continue` now if the client waits for it. A body that stalls or
        // misses the request deadline aborts the upstream request (408, src/http/body-gate.ts).
        const signal = admitBody(req);
        if (signal !== undefined) {
          if (signal.aborted) return Promise.reject(signal.reason as Error);
          signal.addEventListener('abort', () => handler.bodyTimedOut(signal.reason as RequestTimeoutError), { once: true });
        }
        body = req;
      }
      pool.dispatch({ path: basePath + request.path, method: request.method, headers: request.headers, body }, handler);
      if (events.tlsFailed === undefined) return handler.promise;
      return handler.promise.catch((err: unknown) => {
        if (err instanceof UpstreamError && err.reason === 'upstream_tls_error') events.tlsFailed!(err);
        throw err;
      });
    },
    upgrade(request, res, signal) {
      if (request.path.charCodeAt(0) !== 47 /* / */) return Promise.reject(new TypeError('upgrade: path must start with /'));
      return dispatchUpgrade(pool, basePath + request.path, request, res, signal);
    },
    forwardTo(sink, body, request) {
      let responseHeaders: Record<string, string> | null = null;
      try {
        if (request.path.charCodeAt(0) !== 47 /* / */) throw new TypeError('forward: path must start with /');
        if (request.responseHeaders !== undefined) responseHeaders = checkResponseHeaders(request.responseHeaders);
      } catch (err) {
        return Promise.reject(err);
      }
      const checked = responseHeaders === null ? request : { ...request, responseHeaders };
      return dispatchToSink(pool, basePath + request.path, checked, body, sink);
    },
    close() {
      connector?.stop();
      return pool.close();
    },
  };
}

/** `fn`, reporting each `upstream_tls_error` it rejects with to `tlsFailed` (counted and logged by the runtime). */
function reportTls<A extends unknown[]>(fn: (...args: A) => Promise<ForwardResult>, tlsFailed: (err: UpstreamError) => void): (...args: A) => Promise<ForwardResult> {
  return (...args) =>
    fn(...args).catch((err: unknown) => {
      if (err instanceof UpstreamError && err.reason === 'upstream_tls_error') tlsFailed(err);
      throw err;
    });
}

/** Connection-level failures: the upstream is down, unreachable or dropped the connection. */
const UNAVAILABLE = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EAI_NONAME',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'UND_ERR_SOCKET',
]);

/**
 * OpenSSL certificate verification codes (node's `err.code` for a certificate the
 * client refused), node's own TLS codes (`ERR_TLS_CERT_ALTNAME_INVALID`) and OpenSSL
 * handshake errors and alerts (`ERR_SSL_*`).
 */
const TLS_VERIFY_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_REVOKED',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_SIGNATURE_FAILURE',
  'INVALID_CA',
  'INVALID_PURPOSE',
  'HOSTNAME_MISMATCH',
]);

function isTlsFailure(code: string): boolean {
  return code.startsWith('ERR_TLS_') || code.startsWith('ERR_SSL_') || TLS_VERIFY_CODES.has(code);
}

function errorCode(err: unknown): string {
  if (typeof err !== 'object' || err === null) return '';
  const e = err as { code?: unknown; errors?: unknown };
  if (typeof e.code === 'string') return e.code;
  // net.connect with autoSelectFamily raises an AggregateError over every address tried.
  if (Array.isArray(e.errors) && e.errors.length > 0) return errorCode(e.errors[0]);
  return '';
}

/**
 * Translate an undici / socket error that happened before the response
 * started into the error the client sees. The original is kept as `cause`.
 *
 * | cause                                             | status | reason                     |
 * |---------------------------------------------------|--------|----------------------------|
 * | refused, reset, DNS failure, unreachable, socket  | 502    | `upstream_unavailable`     |
 * | `UND_ERR_CONNECT_TIMEOUT`, `ETIMEDOUT`            | 504    | `upstream_connect_timeout` |
 * | `UND_ERR_HEADERS_TIMEOUT`                         | 504    | `upstream_timeout`         |
 * | TLS: certificate not verified, name mismatch,     | 502    | `upstream_tls_error`       |
 * | handshake alert (e.g. client certificate refused) |        |                            |
 * | pool closed (reload / shutdown)                   | 503    | `upstream_closed`          |
 * | anything else (bad response, ...)                 | 502    | `upstream_error`           |
 */
export function toUpstreamError(err: unknown): UpstreamError {
  const code = errorCode(err);
  const options = { cause: err, detail: code || undefined };
  if (code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'ETIMEDOUT') {
    return new UpstreamError(504, 'upstream_connect_timeout', 'timed out connecting to the upstream', options);
  }
  if (code === 'UND_ERR_HEADERS_TIMEOUT') return new UpstreamError(504, 'upstream_timeout', 'the upstream did not answer in time', options);
  if (isTlsFailure(code)) return new UpstreamError(502, 'upstream_tls_error', `TLS to the upstream failed: ${(err as Error).message}`, options);
  if (UNAVAILABLE.has(code)) return new UpstreamError(502, 'upstream_unavailable', 'the upstream is unavailable', options);
  if (code === 'UND_ERR_CLOSED' || code === 'UND_ERR_DESTROYED') {
    return new UpstreamError(503, 'upstream_closed', 'the upstream pool is closed', options);
  }
  return new UpstreamError(502, 'upstream_error', 'the upstream request failed', options);
}

/** Why an exchange that had already started its response ended early. */
function midStreamReason(err: unknown): ForwardAbortReason {
  const code = errorCode(err);
  if (code === 'UND_ERR_BODY_TIMEOUT') return 'upstream_body_timeout';
  if (UNAVAILABLE.has(code) || code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH') return 'upstream_reset';
  return 'upstream_error';
}

/** Our own misuse of undici (invalid header, path or method): a bug, not an upstream failure. */
function isCallerError(err: unknown): boolean {
  const code = errorCode(err);
  return code === 'UND_ERR_INVALID_ARG' || code === 'UND_ERR_NOT_SUPPORTED';
}

const kHandler = Symbol('regate.forward');
type TaggedResponse = ServerResponse & { [kHandler]?: ForwardHandler };

/** The abort reason given to undici when the client went away. */
class ClientClosedError extends Error {
  readonly code = 'REGATE_CLIENT_CLOSED';
  constructor() {
    super('the client closed the connection');
    this.name = 'ClientClosedError';
  }
}

/*
 * `res` listeners are module-level functions (EventEmitter calls them with
 * `this === res`) that find their handler through a symbol: no closures are
 * allocated per request.
 */
function onResponseClose(this: TaggedResponse): void {
  // 'close' also follows a normal 'finish'; only an unfinished response means the client left.
  if (!this.writableFinished) this[kHandler]?.clientGone();
}

function onResponseDrain(this: TaggedResponse): void {
  this[kHandler]?.controller?.resume();
}

function flushHeadersIfIdle(handler: ForwardHandler): void {
  const res = handler.res;
  if (handler.bytesOut === 0 && !res.writableEnded && !res.destroyed) res.flushHeaders();
}

/** One forwarded exchange: an undici dispatch handler writing into `res`. */
class ForwardHandler implements Dispatcher.DispatchHandler {
  readonly req: IncomingMessage;
  readonly res: TaggedResponse;
  readonly responseHeaders: Record<string, string> | null;
  readonly startedAt = performance.now();
  readonly promise: Promise<ForwardResult>;
  resolve!: (result: ForwardResult) => void;
  reject!: (err: unknown) => void;
  controller: Dispatcher.DispatchController | null = null;
  status = 0;
  upstreamNs = 0;
  bytesOut = 0;
  settled = false;
  clientClosed = false;
  timedOut: RequestTimeoutError | null = null;
  drainListening = false;

  readonly translate: (err: unknown) => UpstreamError;

  constructor(req: IncomingMessage, res: ServerResponse, responseHeaders: Record<string, string> | null, translate: (err: unknown) => UpstreamError) {
    this.translate = translate;
    this.req = req;
    this.res = res;
    this.responseHeaders = responseHeaders;
    this.promise = new Promise<ForwardResult>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    this.res[kHandler] = this;
    res.on('close', onResponseClose);
  }

  /** The client disconnected before the response finished: settle now, cancel upstream. */
  clientGone(): void {
    if (this.clientClosed) return;
    this.clientClosed = true;
    if (!this.settled) this.finish('client_closed', undefined);
    this.controller?.abort(new ClientClosedError());
  }

  /**
   * The client's body stalled or missed the request deadline: cancel the upstream
   * request. Before the response started the promise rejects with `err` (408 to the
   * client, connection closed); after, the client connection is cut.
   */
  bodyTimedOut(err: RequestTimeoutError): void {
    if (this.settled || this.clientClosed) return;
    this.timedOut = err;
    if (!this.res.headersSent) {
      this.settled = true;
      this.reject(err);
    } else {
      this.res.destroy();
      this.finish(err.reason as ForwardAbortReason, err);
    }
    this.controller?.abort(err);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    // Still queued when the client left (or its body timed out): cancel before anything is written upstream.
    if (this.clientClosed) controller.abort(new ClientClosedError());
    else if (this.timedOut !== null) controller.abort(this.timedOut);
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>): void {
    // Interim responses (103 Early Hints, ...) are not relayed; wait for the final one.
    if (statusCode < 200 || this.clientClosed || this.settled) return;
    this.upstreamNs = Math.round((performance.now() - this.startedAt) * 1e6);
    this.status = statusCode;
    const fields = filterResponseHeaders(headers);
    if (this.responseHeaders !== null) Object.assign(fields, this.responseHeaders);
    // Throws on a field value node refuses; undici then aborts and we answer 502.
    this.res.writeHead(statusCode, fields);
    process.nextTick(flushHeadersIfIdle, this);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.clientClosed || this.timedOut !== null) return;
    this.bytesOut += chunk.length;
    if (!this.res.write(chunk)) {
      controller.pause();
      if (!this.drainListening) {
        this.drainListening = true;
        this.res.on('drain', onResponseDrain);
      }
    }
  }

  onResponseEnd(): void {
    if (this.clientClosed || this.timedOut !== null) return;
    this.res.end();
    this.finish(undefined, undefined);
  }

  onResponseError(_controller: Dispatcher.DispatchController | null, err: Error): void {
    if (this.settled) return;
    // A client that left also errors its request body (node destroys `req` on
    // socket close, after res 'close'): that is the client, not the upstream.
    if (this.clientClosed || this.res.destroyed) {
      this.clientGone();
      return;
    }
    if (!this.res.headersSent) {
      this.settled = true;
      this.reject(isCallerError(err) ? new TypeError(`forward: ${err.message}`, { cause: err }) : this.translate(err));
      return;
    }
    // Mid-stream: cut the client connection so a truncated body is never mistaken for a complete one.
    this.res.destroy();
    this.finish(midStreamReason(err), err);
  }

  finish(reason: ForwardAbortReason | undefined, error: unknown): void {
    this.settled = true;
    if (reason === undefined) {
      this.resolve({ status: this.status, upstreamNs: this.upstreamNs, bytesOut: this.bytesOut, aborted: false });
    } else {
      this.resolve({ status: this.status, upstreamNs: this.upstreamNs, bytesOut: this.bytesOut, aborted: true, reason, error });
    }
  }
}
