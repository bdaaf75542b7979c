/**
 * The request body's gate: when a client may send its body, and how long it
 * may take (issue 9).
 *
 * - **100-continue after authorization.** The server listens for
 *   `checkContinue`, so node no longer answers `Expect: 100-continue` by
 *   itself. `100 Continue` is sent by {@link admitBody}, which is called only
 *   where the body is about to be read: by the forwarder once the policy
 *   allowed, or on a `body` route (whose policy judges the body) once the
 *   route matched and the caller authenticated. A refused request gets its
 *   final status instead and the connection closes (the body never came).
 * - **Body idle timeout** (`limits.body_idle_timeout_ms`, nginx's
 *   `client_body_timeout`): no body byte for that long → 408 `body_timeout`.
 *   Measured on the socket's `bytesRead`, so it covers a body streamed to the
 *   upstream (read by undici) as well as one read by regate, without adding
 *   a `data` listener that would change who reads the stream. It starts when
 *   the head arrived, or when `100 Continue` was sent.
 * - **Request deadline** (`limits.request_timeout_ms`): the whole request,
 *   head to last body byte, within that time → else 408 `request_timeout`.
 *
 * A timeout aborts the {@link AbortSignal} that {@link admitBody} returns; the
 * body's reader (src/http/body.ts, src/upstream/forward.ts) rejects with the
 * signal's reason, a {@link RequestTimeoutError}, and the pipeline answers
 * 408 with `Connection: close`, logged and counted. A gate exists only for a
 * request with a body still to come; bodiless requests cost nothing.
 */

import type { IncomingMessage, ServerResponse } from 'node:http';
import { RequestTimeoutError } from '../errors.ts';
import { bodyPending } from './framing.ts';

/** The gate's timing (config `limits`). */
export interface BodyTimeouts {
  /** Longest pause between two body bytes. */
  readonly body_idle_timeout_ms: number;
  /** Longest time from the request head to the body's last byte. */
  readonly request_timeout_ms: number;
}

/** What a {@link Gate} watches: how far the body got, and whether all of it arrived. */
export interface BodyProgress {
  /** A count that grows with every body byte received (HTTP/1.1: the socket's `bytesRead`). */
  readonly bytes: number;
  /** The whole body was received. */
  readonly complete: boolean;
}

class Gate {
  readonly key: object;
  readonly progress: BodyProgress;
  /** HTTP/1.1: write `100 Continue`; null where the protocol has none to send (HTTP/2). */
  readonly sendContinue: (() => void) | null;
  readonly controller = new AbortController();
  readonly idleMs: number;
  /** Waiting for `100 Continue` (or, on HTTP/2, for the body to be admitted): the idle clock has not started. */
  awaitingContinue: boolean;
  lastBytes = -1;
  lastProgressAt = 0;
  idleTimer: NodeJS.Timeout | undefined;
  deadlineTimer: NodeJS.Timeout | undefined;
  closed = false;

  constructor(key: object, progress: BodyProgress, sendContinue: (() => void) | null, awaitingContinue: boolean, timeouts: BodyTimeouts) {
    this.key = key;
    this.progress = progress;
    this.sendContinue = sendContinue;
    this.idleMs = timeouts.body_idle_timeout_ms;
    this.awaitingContinue = awaitingContinue;
    this.deadlineTimer = setTimeout(expireDeadline, timeouts.request_timeout_ms, this).unref();
    if (!this.awaitingContinue) this.startIdle();
  }

  startIdle(): void {
    this.lastBytes = this.progress.bytes;
    this.lastProgressAt = performance.now();
    // A quarter of the limit between checks: a stall is seen within 1.25 × the limit.
    this.idleTimer = setTimeout(checkIdle, Math.max(1, Math.ceil(this.idleMs / 4)), this).unref();
  }

  expire(reason: 'body_timeout' | 'request_timeout'): void {
    if (this.closed) return;
    const message = reason === 'body_timeout' ? `no request body bytes for ${this.idleMs} ms` : 'the request was not received in time';
    this.close();
    this.controller.abort(new RequestTimeoutError(reason, message));
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.idleTimer);
    clearTimeout(this.deadlineTimer);
    gates.delete(this.key);
  }
}

function checkIdle(gate: Gate): void {
  if (gate.closed) return;
  if (gate.progress.complete) return gate.close();
  const now = performance.now();
  const bytes = gate.progress.bytes;
  if (bytes !== gate.lastBytes) {
    gate.lastBytes = bytes;
    gate.lastProgressAt = now;
  } else if (now - gate.lastProgressAt >= gate.idleMs) {
    return gate.expire('body_timeout');
  }
  gate.idleTimer!.refresh();
}

function expireDeadline(gate: Gate): void {
  if (gate.progress.complete) gate.close();
  else gate.expire('request_timeout');
}

/** Gates by what the body is read from: the `IncomingMessage`, or an HTTP/2 front end's body object. */
const gates = new WeakMap<object, Gate>();

function expectsContinue(req: IncomingMessage): boolean {
  const expect = req.headers.expect;
  return expect !== undefined && expect.toLowerCase() === '100-continue';
}

/** Start watching `req`'s body, if it has one still to come. Called by the server on arrival. */
export function openBodyGate(req: IncomingMessage, res: ServerResponse, timeouts: BodyTimeouts): void {
  if (!bodyPending(req)) return;
  const socket = req.socket;
  const progress: BodyProgress = {
    get bytes() {
      return socket.bytesRead;
    },
    get complete() {
      return req.complete;
    },
  };
  const sendContinue = (): void => {
    if (!res.headersSent && !res.writableEnded) res.writeContinue();
  };
  gates.set(req, new Gate(req, progress, sendContinue, expectsContinue(req), timeouts));
}

/**
 * Start watching an HTTP/2 request stream's body (src/http2/body.ts), keyed by the
 * object its readers pass to {@link admitBody}. The request deadline runs from now;
 * the idle clock from admission (nothing reads an HTTP/2 body before, and flow
 * control stops a client that sent a window's worth).
 */
export function openStreamBodyGate(key: object, progress: BodyProgress, timeouts: BodyTimeouts): void {
  gates.set(key, new Gate(key, progress, null, true, timeouts));
}

/**
 * The body is about to be read: send `100 Continue` if the client waits for
 * it, start the idle clock, and return the signal that aborts on a timeout.
 * Undefined when no gate watches `req` (no body to come, or a request built
 * outside the server, as in tests and `regate eval`).
 */
export function admitBody(req: object): AbortSignal | undefined {
  const gate = gates.get(req);
  if (gate === undefined) return undefined;
  if (gate.awaitingContinue) {
    gate.awaitingContinue = false;
    gate.sendContinue?.();
    gate.startIdle();
  }
  return gate.controller.signal;
}

/** Whether `req` still waits for a `100 Continue` that was never sent. */
export function awaitingContinue(req: IncomingMessage): boolean {
  return gates.get(req)?.awaitingContinue === true;
}

/** Stop watching (the request's handling ended). */
export function closeBodyGate(req: object): void {
  gates.get(req)?.close();
}
