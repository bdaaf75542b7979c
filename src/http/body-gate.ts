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
import type { Socket } from 'node:net';
import { RequestTimeoutError } from '../errors.ts';
import { bodyPending } from './framing.ts';

/** The gate's timing (config `limits`). */
export interface BodyTimeouts {
  /** Longest pause between two body bytes. */
  readonly body_idle_timeout_ms: number;
  /** Longest time from the request head to the body's last byte. */
  readonly request_timeout_ms: number;
}

class Gate {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly socket: Socket;
  readonly controller = new AbortController();
  readonly idleMs: number;
  /** Waiting for `100 Continue`: the idle clock has not started. */
  awaitingContinue: boolean;
  lastBytes = -1;
  lastProgressAt = 0;
  idleTimer: NodeJS.Timeout | undefined;
  deadlineTimer: NodeJS.Timeout | undefined;
  closed = false;

  constructor(req: IncomingMessage, res: ServerResponse, timeouts: BodyTimeouts) {
    this.req = req;
    this.res = res;
    this.socket = req.socket;
    this.idleMs = timeouts.body_idle_timeout_ms;
    this.awaitingContinue = expectsContinue(req);
    this.deadlineTimer = setTimeout(expireDeadline, timeouts.request_timeout_ms, this).unref();
    if (!this.awaitingContinue) this.startIdle();
  }

  startIdle(): void {
    this.lastBytes = this.socket.bytesRead;
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
    gates.delete(this.req);
  }
}

function checkIdle(gate: Gate): void {
  if (gate.closed) return;
  if (gate.req.complete) return gate.close();
  const now = performance.now();
  const bytes = gate.socket.bytesRead;
  if (bytes !== gate.lastBytes) {
    gate.lastBytes = bytes;
    gate.lastProgressAt = now;
  } else if (now - gate.lastProgressAt >= gate.idleMs) {
    return gate.expire('body_timeout');
  }
  gate.idleTimer!.refresh();
}

function expireDeadline(gate: Gate): void {
  if (gate.req.complete) gate.close();
  else gate.expire('request_timeout');
}

const gates = new WeakMap<IncomingMessage, Gate>();

function expectsContinue(req: IncomingMessage): boolean {
  const expect = req.headers.expect;
  return expect !== undefined && expect.toLowerCase() === '100-continue';
}

/** Start watching `req`'s body, if it has one still to come. Called by the server on arrival. */
export function openBodyGate(req: IncomingMessage, res: ServerResponse, timeouts: BodyTimeouts): void {
  if (!bodyPending(req)) return;
  gates.set(req, new Gate(req, res, timeouts));
}

/**
 * The body is about to be read: send `100 Continue` if the client waits for
 * it, start the idle clock, and return the signal that aborts on a timeout.
 * Undefined when no gate watches `req` (no body to come, or a request built
 * outside the server, as in tests and `regate eval`).
 */
export function admitBody(req: IncomingMessage): AbortSignal | undefined {
  const gate = gates.get(req);
  if (gate === undefined) return undefined;
  if (gate.awaitingContinue) {
    gate.awaitingContinue = false;
    if (!gate.res.headersSent && !gate.res.writableEnded) gate.res.writeContinue();
    gate.startIdle();
  }
  return gate.controller.signal;
}

/** Whether `req` still waits for a `100 Continue` that was never sent. */
export function awaitingContinue(req: IncomingMessage): boolean {
  return gates.get(req)?.awaitingContinue === true;
}

/** Stop watching (the request's handling ended). */
export function closeBodyGate(req: IncomingMessage): void {
  gates.get(req)?.close();
}
