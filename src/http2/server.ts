/**
 * HTTP/2 on any node:http2 server: cleartext (the h2c listener, src/http2/h2c.ts)
 * or TLS (`http2.createSecureServer({ allowHTTP1: true, ALPNProtocols: ['h2', 'http/1.1'] })`).
 * {@link attachHttp2} installs the stream handler (src/http2/handle.ts) and
 * the per-connection bounds, and tracks sessions for the drain.
 *
 * Bounds (listen.proxy.http2):
 * - SETTINGS_MAX_CONCURRENT_STREAMS: nghttp2 refuses a stream over it
 *   (REFUSED_STREAM); node destroys a session after 100 refused streams.
 * - SETTINGS_MAX_HEADER_LIST_SIZE: node resets a stream whose decoded header
 *   list is larger (ENHANCE_YOUR_CALM), CONTINUATION frames included;
 *   nghttp2 ends a connection that floods CONTINUATION frames (GOAWAY).
 * - Rapid reset (CVE-2023-44487): more than `max_resets` client-cancelled
 *   streams within `reset_window_ms` on one connection → GOAWAY
 *   ENHANCE_YOUR_CALM and the connection is destroyed: the work a client can
 *   start and abandon per connection is bounded, whatever it pipelines.
 * - No open stream for `idle_timeout_ms` → GOAWAY, closed.
 *
 * With `allowHTTP1` on a TLS server, pass the HTTP/1.1 handler as `http1`:
 * node delivers HTTP/1.1 requests through the server's 'request' event, and
 * adding a 'request' listener would also wrap every HTTP/2 stream in node's
 * compatibility layer (which reads the stream); {@link attachHttp2} removes
 * that wrapper so each HTTP/2 stream is read once, here.
 */

import { constants, type Http2SecureServer, type Http2Server, type Http2Session, type ServerHttp2Stream } from 'node:http2';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Http2Config } from '../config/types.ts';
import type { Http2Observer } from '../observe/metrics.ts';
import type { Runtime } from '../runtime.ts';
import { answer, handleStream } from './handle.ts';
import { isGrpcContentType } from './grpc.ts';
import { randomUUID } from 'node:crypto';

export interface Http2FrontEndOptions {
  readonly settings: Http2Config;
  /** `X-Forwarded-Proto` upstream: `http` for h2c, `https` behind TLS. */
  readonly proto: 'http' | 'https';
  readonly metrics: Http2Observer;
  readonly logger: Logger;
  /**
   * Run one request's work on the active runtime (in-flight count, admission,
   * drain: the server's own accounting). False when no runtime is active yet.
   */
  readonly run: (work: (rt: Runtime) => Promise<void>) => boolean;
  /** The HTTP/1.1 handler of an `allowHTTP1` TLS server. */
  readonly http1?: (req: IncomingMessage, res: ServerResponse) => void;
}

/** The sessions of one HTTP/2 server, for the drain. */
export interface Http2Sessions {
  /** Open sessions now. */
  readonly size: number;
  /** GOAWAY to every session (running streams finish, no new ones), and to each new one after its first stream. */
  startDraining(): void;
  /** Resolves once no session is open. */
  empty(): Promise<void>;
  /** Cut every session (the drain deadline). */
  destroyAll(): void;
}

type AnyHttp2Server = Http2Server | Http2SecureServer;

/** Serve HTTP/2 streams of `server` through check(); returns its session tracker. */
export function attachHttp2(server: AnyHttp2Server, options: Http2FrontEndOptions): Http2Sessions {
  const { settings, metrics, logger } = options;
  const sessions = new Set<Http2Session>();
  let draining = false;
  let waiters: (() => void)[] = [];

  server.updateSettings({
    maxConcurrentStreams: settings.max_concurrent_streams,
    maxHeaderListSize: settings.max_header_list_bytes,
    enablePush: false,
  });

  const onStream = (stream: ServerHttp2Stream, headers: Record<string, string | string[] | undefined>, flags: number, rawHeaders: string[]): void => {
    const endStream = (flags & constants.NGHTTP2_FLAG_END_STREAM) !== 0;
    stream.on('error', () => {
      // A reset or failed stream: its handler sees the close and records it.
    });
    const accepted = options.run((rt) => handleStream(rt, stream, headers, rawHeaders, endStream, options.proto, settings.max_header_list_bytes));
    if (!accepted) notReady(stream, headers);
    if (draining) stream.session?.close();
  };
  server.on('stream', onStream);

  if (options.http1 !== undefined) {
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      // Only HTTP/1.1 requests reach here: HTTP/2 streams go to onStream alone (see below).
      options.http1!(req, res);
    });
    // Adding a 'request' listener made node add its compatibility 'stream' listener: drop it.
    for (const l of server.listeners('stream')) if (l !== onStream) server.off('stream', l as (...args: unknown[]) => void);
  }

  server.on('session', (session: Http2Session) => {
    sessions.add(session);
    let resets = 0;
    let calmed = false;
    let windowStart = performance.now();
    let open = 0;
    session.on('stream', (stream: ServerHttp2Stream) => {
      open++;
      stream.once('close', () => {
        open--;
      });
      // 'aborted': the client reset the stream before its response ended.
      stream.once('aborted', () => {
        metrics.streamReset();
        const now = performance.now();
        if (now - windowStart > settings.reset_window_ms) {
          windowStart = now;
          resets = 0;
        }
        if (++resets > settings.max_resets && !calmed && !session.destroyed) {
          calmed = true;
          metrics.goaway('rapid_reset');
          logger.warn({ remote_addr: session.socket?.remoteAddress, resets, window_ms: settings.reset_window_ms }, 'HTTP/2 rapid reset: connection closed');
          session.goaway(constants.NGHTTP2_ENHANCE_YOUR_CALM);
          // The GOAWAY is flushed, then the connection and every stream on it are cut.
          setImmediate(() => session.destroy());
        }
      });
    });
    session.setTimeout(settings.idle_timeout_ms, () => {
      if (open === 0 && !session.closed) {
        metrics.goaway('idle');
        session.close();
      }
    });
    session.on('error', () => {
      metrics.goaway('protocol_error');
    });
    session.on('frameError', () => {
      // A frame nghttp2 could not send (the stream is already gone): nothing to do.
    });
    session.once('close', () => {
      sessions.delete(session);
      if (sessions.size === 0) {
        const w = waiters;
        waiters = [];
        for (const resolve of w) resolve();
      }
    });
    if (draining) session.close();
  });
  // A session nghttp2 ended (GOAWAY on a protocol violation: CONTINUATION flood, bad frames) reports here.
  server.on('sessionError', () => {});

  return {
    get size() {
      return sessions.size;
    },
    startDraining() {
      if (draining) return;
      draining = true;
      for (const s of sessions) {
        if (s.closed || s.destroyed) continue;
        metrics.goaway('shutdown');
        s.close();
      }
    },
    empty() {
      if (sessions.size === 0) return Promise.resolve();
      return new Promise((resolve) => waiters.push(resolve));
    },
    destroyAll() {
      for (const s of sessions) s.destroy();
    },
  };
}

/** No runtime yet: 503 `not_ready` (gRPC: UNAVAILABLE), as the HTTP/1.1 listener answers. */
function notReady(stream: ServerHttp2Stream, headers: Record<string, string | string[] | undefined>): void {
  answer(
    stream,
    { status: 503, headers: { 'retry-after': '1' }, problem: { reason: 'not_ready', detail: 'no policy is active yet; retry shortly', decisionId: randomUUID() } },
    isGrpcContentType(headers['content-type']),
  );
}
