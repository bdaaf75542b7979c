/**
 * An HTTP/2 request stream's body under the body gate (src/http/body-gate.ts):
 * `limits.body_idle_timeout_ms` and `limits.request_timeout_ms` apply to HTTP/2
 * streams as to HTTP/1.1 requests.
 *
 * Progress is counted where the body is read, never by an extra reader: the
 * policy's bounded read (src/http/body.ts, through this object's `on('data')`)
 * or the stream forwarded upstream ({@link Http2RequestBody.forwardable}: a
 * counting pass-through with backpressure). "Complete" is the client's
 * END_STREAM (`state.remoteClose`), so a body fully received but still queued
 * for a slow upstream never times out.
 *
 * The gate is keyed by this object: `admitBody(body)` starts the idle clock and
 * returns the signal that aborts on a timeout.
 */

import type { IncomingHttpHeaders } from 'node:http';
import type { ServerHttp2Stream } from 'node:http2';
import { Transform, type Readable } from 'node:stream';
import { openStreamBodyGate, type BodyProgress, type BodyTimeouts } from '../http/body-gate.ts';
import type { BodyStream } from '../http/body.ts';

export class Http2RequestBody implements BodyStream, BodyProgress {
  readonly headers: IncomingHttpHeaders;
  readonly #stream: ServerHttp2Stream;
  /** Body bytes read so far (the gate's progress). */
  bytes = 0;
  readonly #wrapped = new Map<(...args: unknown[]) => void, (...args: unknown[]) => void>();

  constructor(stream: ServerHttp2Stream, headers: IncomingHttpHeaders) {
    this.#stream = stream;
    this.headers = headers;
  }

  /** Watch this body's timing (a stream whose HEADERS did not end it). */
  gate(timeouts: BodyTimeouts): void {
    openStreamBodyGate(this, this, timeouts);
  }

  get readableEnded(): boolean {
    return this.#stream.readableEnded;
  }

  /** The client sent END_STREAM: every body byte has arrived (read or not). */
  get complete(): boolean {
    const s = this.#stream;
    if (s.readableEnded) return true;
    if (s.destroyed) return false;
    return (s.state as { remoteClose?: number } | undefined)?.remoteClose === 1;
  }

  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  on(event: string, listener: (...args: any[]) => void): this {
    if (event === 'data') {
      const counting = (chunk: Buffer): void => {
        this.bytes += chunk.length;
        listener(chunk);
      };
      this.#wrapped.set(listener, counting as (...args: unknown[]) => void);
      this.#stream.on('data', counting);
    } else this.#stream.on(event, listener);
    return this;
  }

  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  off(event: string, listener: (...args: any[]) => void): this {
    if (event === 'data') {
      const counting = this.#wrapped.get(listener);
      if (counting !== undefined) {
        this.#wrapped.delete(listener);
        this.#stream.off('data', counting);
      }
    } else this.#stream.off(event, listener);
    return this;
  }

  pause(): this {
    this.#stream.pause();
    return this;
  }

  /**
   * The body as the forwarders read it: the stream through a counting pass-through
   * (backpressure kept by `pipe`). A client that resets its stream mid-body fails it,
   * so the upstream request is cancelled rather than ended short.
   */
  forwardable(): Readable {
    const stream = this.#stream;
    const meter = new Transform({
      transform: (chunk: Buffer, _encoding, callback) => {
        this.bytes += chunk.length;
        callback(null, chunk);
      },
    });
    stream.pipe(meter);
    stream.once('close', () => {
      if (!stream.readableEnded && !meter.destroyed) meter.destroy(Object.assign(new Error('the client reset the stream before its body ended'), { code: 'REGATE_CLIENT_CLOSED' }));
    });
    return meter;
  }
}
