/**
 * Forwarding an authorized WebSocket upgrade to its upstream, through the
 * upstream's undici pool (its connect timeout and TLS settings; an `https`
 * upstream is wss). undici writes the request line, `Host` (the upstream's
 * origin), `Connection: upgrade` and `Upgrade: websocket`; everything else
 * comes from `buildUpstreamHeaders` — the same header rules as any forwarded
 * request.
 *
 * Three outcomes:
 *
 * - the upstream answers 101 with `Upgrade: websocket` and the right
 *   `Sec-WebSocket-Accept` → `upgraded`: its socket, detached from the pool
 *   (a long-lived connection does not hold a pool slot), and its header
 *   fields for the client's 101;
 * - the upstream answers anything else → `refused`: that response is relayed
 *   to the client as it is (hop-by-hop fields dropped), body streamed;
 * - no answer (refused, unreachable, timed out) or a 101 that is not a
 *   WebSocket handshake → the promise rejects with an {@link UpstreamError}
 *   (502/503/504), and the client gets a problem response.
 */

import type { ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { performance } from 'node:perf_hooks';
import type { Dispatcher } from 'undici';
import { UpstreamError } from '../errors.ts';
import { acceptFor } from '../http/websocket.ts';
import { toUpstreamError } from './forward.ts';
import { filterResponseHeaders, type HeaderFields } from './headers.ts';

/** What the WebSocket front end hands to {@link Upstream.upgrade}. */
export interface UpgradeRequest {
  /** Canonical wire path plus `?` + wire query; the upstream's base path is prefixed. */
  readonly path: string;
  /** From `buildUpstreamHeaders()`: `sec-websocket-*` included, hop-by-hop fields excluded. */
  readonly headers: HeaderFields;
  /** The client's `Sec-WebSocket-Key` (validated): the upstream's accept value is checked against it. */
  readonly key: string;
}

export type UpgradeResult =
  | {
      readonly kind: 'upgraded';
      /** The upstream connection; bytes the upstream sent after its 101 are its first reads. */
      readonly socket: Duplex;
      /** The 101's end-to-end fields (`sec-websocket-accept`, `-protocol`, `-extensions`, cookies, ...). */
      readonly headers: HeaderFields;
      readonly upstreamNs: number;
    }
  | {
      readonly kind: 'refused';
      /** The upstream's status, relayed to the client. */
      readonly status: number;
      readonly upstreamNs: number;
      /** The relayed response was cut (upstream or client gone mid-body). */
      readonly aborted: boolean;
    };

/** Send the upgrade through `dispatcher`; see the module doc for the outcomes. `signal`: the client went away. */
export function dispatchUpgrade(dispatcher: Dispatcher, path: string, request: UpgradeRequest, res: ServerResponse, signal: AbortSignal): Promise<UpgradeResult> {
  const handler = new UpgradeHandler(res, acceptFor(request.key));
  if (signal.aborted) return Promise.reject(new UpstreamError(502, 'upstream_error', 'the client went away before the upgrade was forwarded'));
  signal.addEventListener('abort', () => handler.abort(), { once: true });
  dispatcher.dispatch({ path, method: 'GET', headers: request.headers, upgrade: 'websocket' }, handler);
  return handler.promise;
}

/** Header fields as undici hands them over: lower-case names, repeated fields as arrays. */
type RawFields = Record<string, string | string[] | undefined>;

class UpgradeHandler implements Dispatcher.DispatchHandler {
  readonly res: ServerResponse;
  readonly accept: string;
  readonly startedAt = performance.now();
  readonly promise: Promise<UpgradeResult>;
  resolve!: (r: UpgradeResult) => void;
  reject!: (err: unknown) => void;
  controller: Dispatcher.DispatchController | null = null;
  status = 0;
  upstreamNs = 0;
  settled = false;
  aborted = false;

  constructor(res: ServerResponse, accept: string) {
    this.res = res;
    this.accept = accept;
    this.promise = new Promise((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }

  /** The client went away: cancel the upgrade (or the relayed refusal). */
  abort(): void {
    this.aborted = true;
    this.controller?.abort(new Error('the client closed the connection'));
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.aborted) controller.abort(new Error('the client closed the connection'));
  }

  onRequestUpgrade(_controller: Dispatcher.DispatchController, statusCode: number, headers: RawFields, socket: Duplex): void {
    this.upstreamNs = Math.round((performance.now() - this.startedAt) * 1e6);
    this.settled = true;
    // undici removed its listeners: until the tunnel adds its own, an error must not be unhandled.
    socket.on('error', () => socket.destroy());
    const upgrade = headers.upgrade;
    const accept = headers['sec-websocket-accept'];
    if (statusCode !== 101 || typeof upgrade !== 'string' || upgrade.toLowerCase() !== 'websocket' || accept !== this.accept) {
      socket.destroy();
      this.reject(new UpstreamError(502, 'upstream_error', 'the upstream answered the upgrade without a valid WebSocket handshake', { detail: `status ${statusCode}` }));
      return;
    }
    if (this.aborted) {
      socket.destroy();
      this.reject(new UpstreamError(502, 'upstream_error', 'the client went away during the upgrade'));
      return;
    }
    this.resolve({ kind: 'upgraded', socket, headers: filterResponseHeaders(headers), upstreamNs: this.upstreamNs });
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number, headers: RawFields): void {
    // Interim responses other than 101 are not relayed; wait for the final one.
    if (statusCode < 200 || this.settled || this.aborted) return;
    this.upstreamNs = Math.round((performance.now() - this.startedAt) * 1e6);
    this.status = statusCode;
    // Throws on a field value node refuses; undici then aborts and the client gets 502.
    this.res.writeHead(statusCode, filterResponseHeaders(headers));
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.aborted || this.res.destroyed) return;
    if (!this.res.write(chunk)) {
      controller.pause();
      this.res.once('drain', () => controller.resume());
    }
  }

  onResponseEnd(): void {
    if (this.settled) return;
    this.settled = true;
    this.res.end();
    this.resolve({ kind: 'refused', status: this.status, upstreamNs: this.upstreamNs, aborted: this.aborted });
  }

  onResponseError(_controller: Dispatcher.DispatchController | null, err: Error): void {
    if (this.settled) return;
    this.settled = true;
    if (this.res.headersSent) {
      // Mid-body: cut the client connection so a truncated body is never taken for a complete one.
      this.res.destroy();
      this.resolve({ kind: 'refused', status: this.status, upstreamNs: this.upstreamNs, aborted: true });
      return;
    }
    this.reject(toUpstreamError(err));
  }
}
