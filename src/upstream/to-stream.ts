/**
 * An HTTP/1.1 upstream's response into a {@link ResponseSink} (an HTTP/2
 * client): one undici dispatch, backpressure through the controller, the
 * same failure rules as src/upstream/forward.ts (before the head: reject
 * with an UpstreamError; after: cut the client's stream).
 */

import { performance } from 'node:perf_hooks';
import type { Readable } from 'node:stream';
import type { Dispatcher, Pool } from 'undici';
import type { ForwardAbortReason, ForwardRequest, ForwardResult } from './forward.ts';
import { toUpstreamError } from './forward.ts';
import { filterResponseHeaders } from './headers.ts';
import type { ResponseSink } from './sink.ts';

/** Forward over `pool` (HTTP/1.1) and stream the response into `sink`. */
export function dispatchToSink(pool: Pool, path: string, request: ForwardRequest, body: Readable | null, sink: ResponseSink): Promise<ForwardResult> {
  return new Promise<ForwardResult>((resolve, reject) => {
    const started = performance.now();
    let status = 0;
    let upstreamNs = 0;
    let bytesOut = 0;
    let settled = false;
    let controller: Dispatcher.DispatchController | null = null;
    const finish = (reason: ForwardAbortReason | undefined, error?: unknown): void => {
      if (settled) return;
      settled = true;
      resolve(reason === undefined ? { status, upstreamNs, bytesOut, aborted: false } : { status, upstreamNs, bytesOut, aborted: true, reason, error });
    };
    sink.onGone(() => {
      finish('client_closed');
      controller?.abort(Object.assign(new Error('the client closed the stream'), { code: 'REGATE_CLIENT_CLOSED' }));
    });
    sink.onDrain(() => controller?.resume());
    const handler: Dispatcher.DispatchHandler = {
      onRequestStart(c) {
        controller = c;
        if (settled) c.abort(new Error('the client closed the stream'));
      },
      onResponseStart(c, statusCode, headers) {
        if (statusCode < 200 || settled) return;
        status = statusCode;
        upstreamNs = Math.round((performance.now() - started) * 1e6);
        const fields = filterResponseHeaders(headers);
        if (request.responseHeaders !== undefined) Object.assign(fields, request.responseHeaders);
        sink.respond(statusCode, fields, false);
      },
      onResponseData(c, chunk) {
        if (settled) return;
        bytesOut += chunk.length;
        if (!sink.write(chunk)) c.pause();
      },
      onResponseEnd() {
        if (settled) return;
        sink.end(null);
        finish(undefined);
      },
      onResponseError(_c, err) {
        if (settled) return;
        if (!sink.headersSent) {
          settled = true;
          reject(toUpstreamError(err));
          return;
        }
        sink.cut();
        finish('upstream_reset', err);
      },
    };
    pool.dispatch({ path, method: request.method, headers: request.headers, body: request.body ?? body }, handler);
  });
}
