/**
 * A relayed WebSocket connection after the 101: bytes piped both ways with
 * backpressure (a side that cannot keep up pauses the other's reads), byte
 * counts, the idle timeout and the max lifetime (`limits.websocket`), and a
 * clean close when regate ends it itself.
 *
 * When one end closes (a TCP FIN after its Close frame, or a reset), the
 * other end is ended too: a half-open tunnel is never left behind. When
 * regate closes (idle, lifetime, shutdown) it stops relaying, sends each end a
 * Close frame 1001 "going away" — only at a frame boundary
 * ({@link FrameBoundary}): a Close frame inside a half-sent frame would
 * corrupt the stream, so an end mid-frame just sees the connection end — then
 * ends both connections and destroys them {@link CLOSE_GRACE_MS} later if they
 * are still open.
 */

import type { Duplex } from 'node:stream';
import { CLOSE_GOING_AWAY, closeFrame, FrameBoundary } from './websocket-frames.ts';

/** Why a tunnel ended (closing record `close_reason`). */
export const CLOSE_REASONS = ['client_closed', 'upstream_closed', 'client_reset', 'upstream_reset', 'idle_timeout', 'max_lifetime', 'shutdown'] as const;
export type CloseReason = (typeof CLOSE_REASONS)[number];
/** What regate closes a tunnel for. */
export type RegateCloseReason = 'idle_timeout' | 'max_lifetime' | 'shutdown';

/** After regate's Close frames, how long both ends get to close before they are destroyed. */
export const CLOSE_GRACE_MS = 1_000;

export interface TunnelLimits {
  readonly idleTimeoutMs: number;
  readonly maxLifetimeMs: number;
}

/** Hears about relayed bytes as they go (metrics). */
export interface TunnelObserver {
  toUpstream(bytes: number): void;
  toClient(bytes: number): void;
}

/** How a tunnel ended. */
export interface TunnelResult {
  readonly reason: CloseReason;
  /** From the 101 to the end, nanoseconds. */
  readonly durationNs: number;
  readonly bytesToUpstream: number;
  readonly bytesToClient: number;
}

const CLOSE_TEXT: Readonly<Record<RegateCloseReason, string>> = { idle_timeout: 'idle timeout', max_lifetime: 'max lifetime reached', shutdown: 'shutting down' };

export class Tunnel {
  readonly #client: Duplex;
  readonly #upstream: Duplex;
  readonly #observer: TunnelObserver;
  readonly #startedHr = process.hrtime.bigint();
  readonly #toUpstream = new FrameBoundary();
  readonly #toClient = new FrameBoundary();
  readonly #idle: NodeJS.Timeout;
  readonly #lifetime: NodeJS.Timeout;
  #grace: NodeJS.Timeout | undefined;
  #bytesToUpstream = 0;
  #bytesToClient = 0;
  #reason: CloseReason | null = null;
  /** regate sent its Close frames. */
  #closing = false;
  #open = 2;
  #resolve!: (r: TunnelResult) => void;
  /** Resolves once both connections are closed. */
  readonly closed: Promise<TunnelResult>;

  /** Start relaying. `client` must be paused (nothing read yet); `upstream` may hold bytes sent after its 101. */
  constructor(client: Duplex, upstream: Duplex, limits: TunnelLimits, observer: TunnelObserver) {
    this.#client = client;
    this.#upstream = upstream;
    this.#observer = observer;
    this.closed = new Promise((resolve) => (this.#resolve = resolve));
    this.#idle = setTimeout(() => this.close('idle_timeout'), limits.idleTimeoutMs);
    this.#lifetime = setTimeout(() => this.close('max_lifetime'), limits.maxLifetimeMs);
    this.#relay(client, upstream, true);
    this.#relay(upstream, client, false);
    client.resume();
    upstream.resume();
  }

  /** Bytes relayed so far: client → upstream, upstream → client. */
  get bytes(): { readonly toUpstream: number; readonly toClient: number } {
    return { toUpstream: this.#bytesToUpstream, toClient: this.#bytesToClient };
  }

  /**
   * regate ends the connection: Close 1001 to each end at a frame boundary,
   * then both are ended, and destroyed after {@link CLOSE_GRACE_MS}. Idempotent;
   * a tunnel that one end already closed keeps that reason.
   */
  close(reason: RegateCloseReason): void {
    if (this.#closing) return;
    this.#closing = true;
    this.#reason ??= reason;
    this.#stopTimers();
    const text = CLOSE_TEXT[reason];
    for (const [socket, boundary, masked] of [
      [this.#client, this.#toClient, false],
      [this.#upstream, this.#toUpstream, true],
    ] as const) {
      socket.pause();
      if (!socket.writable) continue;
      if (boundary.atBoundary) socket.write(closeFrame(CLOSE_GOING_AWAY, text, masked));
      socket.end();
    }
    this.#graceThenDestroy();
  }

  /** Pipe `from` into `to`, counted, paced by `to`'s buffer. */
  #relay(from: Duplex, to: Duplex, toUpstream: boolean): void {
    const boundary = toUpstream ? this.#toUpstream : this.#toClient;
    from.on('data', (chunk: Buffer) => {
      // After regate's Close frame nothing more is relayed.
      if (this.#closing) return;
      boundary.feed(chunk);
      if (toUpstream) {
        this.#bytesToUpstream += chunk.length;
        this.#observer.toUpstream(chunk.length);
      } else {
        this.#bytesToClient += chunk.length;
        this.#observer.toClient(chunk.length);
      }
      this.#idle.refresh();
      if (!to.write(chunk)) {
        from.pause();
        to.once('drain', () => {
          if (!this.#closing) from.resume();
        });
      }
    });
    // A FIN from one end (its Close handshake done, or it went away): end the other.
    from.once('end', () => {
      this.#ended(toUpstream ? 'client_closed' : 'upstream_closed');
      to.end();
    });
    from.on('error', () => {
      this.#ended(toUpstream ? 'client_reset' : 'upstream_reset');
      from.destroy();
      to.destroy();
    });
    from.once('close', () => {
      this.#ended(toUpstream ? 'client_closed' : 'upstream_closed');
      // The other end must not outlive this one (a reset has no 'end').
      if (!to.destroyed) to.end();
      this.#graceThenDestroy();
      if (--this.#open === 0) this.#finish();
    });
  }

  /** The first end to finish names the reason. */
  #ended(reason: CloseReason): void {
    if (this.#reason !== null) return;
    this.#reason = reason;
    this.#stopTimers();
  }

  #graceThenDestroy(): void {
    if (this.#grace !== undefined) return;
    this.#grace = setTimeout(() => {
      this.#client.destroy();
      this.#upstream.destroy();
    }, CLOSE_GRACE_MS);
    this.#grace.unref();
  }

  #stopTimers(): void {
    clearTimeout(this.#idle);
    clearTimeout(this.#lifetime);
  }

  #finish(): void {
    clearTimeout(this.#grace);
    this.#stopTimers();
    this.#resolve({
      reason: this.#reason ?? 'client_closed',
      durationNs: Number(process.hrtime.bigint() - this.#startedHr),
      bytesToUpstream: this.#bytesToUpstream,
      bytesToClient: this.#bytesToClient,
    });
  }
}
