/**
 * Where a forwarded response goes, whatever the client speaks: an HTTP/1.1
 * `ServerResponse` or an HTTP/2 server stream. The HTTP/2 forwarders
 * (src/upstream/h2.ts, src/upstream/to-stream.ts) write through this one
 * narrow interface; the HTTP/1.1 → HTTP/1.1 path keeps its own tuned handler
 * (src/upstream/forward.ts).
 */

import { constants, type ServerHttp2Stream } from 'node:http2';
import type { ServerResponse } from 'node:http';
import type { HeaderFields } from './headers.ts';

export interface ResponseSink {
  /** The response head was written (a second one is impossible). */
  readonly headersSent: boolean;
  /** The client went away before the response finished. */
  readonly gone: boolean;
  /** Write the response head; `end`: nothing follows (no body, no trailers). */
  respond(status: number, headers: HeaderFields, end: boolean): void;
  /** False: wait for {@link onDrain}. */
  write(chunk: Buffer): boolean;
  onDrain(listener: () => void): void;
  /** End the response, with trailers where the protocol carries them (HTTP/2). */
  end(trailers: HeaderFields | null): void;
  /** Cut the response: a truncated body must never look complete. */
  cut(): void;
  /** Called once when the client goes away before the response finished. */
  onGone(listener: () => void): void;
}

/** An HTTP/2 server stream as a sink: trailers are sent as a trailing HEADERS frame. */
export function streamSink(stream: ServerHttp2Stream): ResponseSink {
  let headersSent = false;
  let ended = false;
  return {
    get headersSent() {
      return headersSent || stream.headersSent;
    },
    get gone() {
      return !ended && (stream.destroyed || stream.closed);
    },
    respond(status, headers, end) {
      headersSent = true;
      if (end) ended = true;
      stream.respond({ ...headers, ':status': status }, { endStream: end, waitForTrailers: !end });
    },
    write(chunk) {
      return stream.write(chunk);
    },
    onDrain(listener) {
      stream.on('drain', listener);
    },
    end(trailers) {
      ended = true;
      if (stream.destroyed) return;
      stream.once('wantTrailers', () => {
        if (stream.destroyed) return;
        // An empty trailer block still ends the stream cleanly.
        stream.sendTrailers(trailers ?? {});
      });
      stream.end();
    },
    cut() {
      if (!stream.destroyed) stream.close(constants.NGHTTP2_INTERNAL_ERROR);
    },
    onGone(listener) {
      stream.once('close', () => {
        if (!ended) listener();
      });
    },
  };
}

/** An HTTP/1.1 response as a sink: trailers are dropped (HTTP/1.1 forwarding never relays them). */
export function responseSink(res: ServerResponse): ResponseSink {
  return {
    get headersSent() {
      return res.headersSent;
    },
    get gone() {
      return !res.writableFinished && res.destroyed;
    },
    respond(status, headers, end) {
      res.writeHead(status, headers);
      if (end) res.end();
    },
    write(chunk) {
      return res.write(chunk);
    },
    onDrain(listener) {
      res.on('drain', listener);
    },
    end() {
      res.end();
    },
    cut() {
      res.destroy();
    },
    onGone(listener) {
      res.once('close', () => {
        if (!res.writableFinished) listener();
      });
    },
  };
}
