/**
 * Keep-alive connections of the proxy listener, tracked so that a graceful
 * shutdown loses no request.
 *
 * Node's own shutdown helpers cannot do this: `server.close()` calls
 * `closeIdleConnections()`, which destroys every socket without a response in
 * progress, including one whose next request is already in the socket buffer
 * or on the wire (its client sees ECONNRESET for a request it had sent). And
 * a response in flight when the drain begins carries no `Connection: close`,
 * so its client sends another request on the same connection.
 *
 * So this module keeps its own per-socket state, from the server's
 * 'connection' event and each request/response pair:
 *
 * - while draining, every response whose head is not written yet says
 *   `Connection: close` — the in-flight ones at the moment the drain begins and
 *   every later one. With pipelining only the LAST request received on a
 *   socket gets it (node closes the socket after a `close` response, which
 *   would drop requests queued behind it);
 * - a socket is closed as idle only when it is truly idle: no response in
 *   progress, and not one byte read from it for {@link IDLE_QUIET_MS} (2 s) (bytes
 *   that arrived are a request being parsed, which will be answered);
 * - at the deadline, {@link ConnectionTracker.destroyAll} cuts what is left.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

/**
 * How long a socket must have been idle, with no byte read, before the drain
 * closes it. A busy keep-alive client sends its next request within
 * milliseconds of reading a response, well under a second even on a starved machine; this is longer, so the
 * close does not race a request already sent, and short enough not to hold a
 * shutdown up (a closed idle connection costs the client one reconnect).
 */
export const IDLE_QUIET_MS = 2_000;
/** How often a draining tracker looks for idle sockets. */
const SWEEP_MS = 50;

interface SocketState {
  /** Responses started on this socket and not closed yet, in request order (pipelining). */
  readonly pending: ServerResponse[];
  /** When the socket last did something: connected, or its last response ended. */
  quietSince: number;
  /** `socket.bytesRead` when last looked at. */
  bytesSeen: number;
}

/** Per-socket request state of one HTTP server, for {@link RegateServer.drain}. */
export class ConnectionTracker {
  readonly #sockets = new Map<Socket, SocketState>();
  /** Responses whose `Connection: close` this tracker set (it may move it to a later one). */
  readonly #closing = new WeakSet<ServerResponse>();
  readonly #now: () => number;
  #draining = false;
  #sweeper: NodeJS.Timeout | undefined;
  #emptyWaiters: (() => void)[] = [];

  /**
   * `secure`: the server terminates TLS (https, http2 secure). Requests then run on the
   * `TLSSocket` of `secureConnection`, not on the TCP socket of `connection`, and the
   * tracker must know the socket requests see: tracking the TCP socket would close it
   * as idle under a request in flight on the TLS one. A TLS connection that negotiated
   * `h2` (ALPN) is not tracked here: it is an HTTP/2 session (src/http2/server.ts).
   */
  constructor(server: Server | NodeJS.EventEmitter, now: () => number = () => performance.now(), secure = false) {
    this.#now = now;
    server.on(secure ? 'secureConnection' : 'connection', (socket: Socket) => {
      // A connection that negotiated HTTP/2 by ALPN is a session: src/http2/server.ts tracks and drains it.
      if ((socket as Socket & { alpnProtocol?: string | false }).alpnProtocol === 'h2') return;
      this.#add(socket);
    });
  }

  /** Open sockets right now. */
  get size(): number {
    return this.#sockets.size;
  }

  /** Call first thing for every request the server hands out. */
  onRequest(req: IncomingMessage, res: ServerResponse): void {
    const socket = req.socket;
    const state = this.#sockets.get(socket) ?? this.#add(socket);
    state.pending.push(res);
    res.once('close', () => {
      const at = state.pending.indexOf(res);
      if (at !== -1) state.pending.splice(at, 1);
      if (state.pending.length === 0) {
        state.quietSince = this.#now();
        state.bytesSeen = socket.bytesRead;
      }
    });
    if (this.#draining) this.#closeAfterLast(state);
  }

  /**
   * From now on every response not yet started says `Connection: close`, and
   * idle sockets are closed once quiet. Idempotent.
   */
  startDraining(): void {
    if (this.#draining) return;
    this.#draining = true;
    for (const state of this.#sockets.values()) this.#closeAfterLast(state);
    this.#sweep();
    this.#sweeper = setInterval(() => this.#sweep(), SWEEP_MS).unref();
  }

  /** Resolves once no socket is open (at once if none is). */
  empty(): Promise<void> {
    if (this.#sockets.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#emptyWaiters.push(resolve));
  }

  /** Cut every open socket (the drain deadline). */
  destroyAll(): void {
    for (const socket of this.#sockets.keys()) socket.destroy();
  }

  /** Stop the idle sweep (the drain is over). */
  stop(): void {
    clearInterval(this.#sweeper);
    this.#sweeper = undefined;
  }

  #add(socket: Socket): SocketState {
    const state: SocketState = { pending: [], quietSince: this.#now(), bytesSeen: socket.bytesRead };
    this.#sockets.set(socket, state);
    socket.once('close', () => {
      this.#sockets.delete(socket);
      if (this.#sockets.size > 0) return;
      const waiters = this.#emptyWaiters;
      this.#emptyWaiters = [];
      for (const w of waiters) w();
    });
    return state;
  }

  /** `Connection: close` on the socket's last response not yet started, and on no earlier one. */
  #closeAfterLast(state: SocketState): void {
    const { pending } = state;
    for (let i = 0; i < pending.length - 1; i++) {
      const res = pending[i]!;
      if (this.#closing.has(res) && !res.headersSent) {
        res.removeHeader('connection');
        this.#closing.delete(res);
      }
    }
    const last = pending[pending.length - 1];
    if (last !== undefined && !last.headersSent) {
      last.setHeader('connection', 'close');
      this.#closing.add(last);
    }
  }

  #sweep(): void {
    const now = this.#now();
    for (const [socket, state] of this.#sockets) {
      if (state.pending.length > 0) continue;
      const read = socket.bytesRead;
      if (read !== state.bytesSeen) {
        // A request is arriving: it will be answered (with Connection: close).
        state.bytesSeen = read;
        state.quietSince = now;
        continue;
      }
      if (now - state.quietSince >= IDLE_QUIET_MS) socket.destroy();
    }
  }
}
