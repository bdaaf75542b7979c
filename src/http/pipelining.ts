/**
 * One request at a time per connection (issue 9, request smuggling).
 *
 * node's server emits `request` for a pipelined request as soon as its head
 * is parsed, while the previous request on the same connection is still
 * being handled. If the previous one is then refused with `Connection:
 * close` (a framing doubt, an unread body), the follower — whose bytes may be
 * the smuggled tail of the refused one — would already be on its way to the
 * upstream. So requests on one connection are handled strictly in order, as
 * Envoy's and HAProxy's HTTP/1 codecs do: a follower waits until the
 * previous request's handling ended, and is dropped unhandled when that
 * response closed the connection. The queue is bounded: a client that
 * pipelines more than {@link MAX_PIPELINED} requests ahead is disconnected.
 */

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

/** Pipelined requests that may wait behind the one being handled. */
export const MAX_PIPELINED = 32;

interface Connection {
  busy: boolean;
  /** The last response closed the connection: nothing after it is handled. */
  closing: boolean;
  readonly queue: (() => void)[];
}

const connections = new WeakMap<Socket, Connection>();

/** Whether a response ends its connection (`Connection: close`, HTTP/1.0 without keep-alive). */
function closesConnection(res: ServerResponse): boolean {
  if (!res.shouldKeepAlive) return true;
  const c = res.getHeader('connection');
  return typeof c === 'string' && c.toLowerCase() === 'close';
}

/**
 * Run `handle` for `req` once every earlier request on its connection has
 * been handled; never, if one of them closed the connection.
 */
export function inOrder(req: IncomingMessage, res: ServerResponse, handle: () => Promise<void>): void {
  const socket = req.socket;
  let conn = connections.get(socket);
  if (conn === undefined) {
    conn = { busy: false, closing: false, queue: [] };
    connections.set(socket, conn);
  }
  if (conn.closing) return; // parsed after a closing response: never handled; node ends the socket
  const c = conn;
  const start = (): void => {
    c.busy = true;
    const done = (): void => {
      c.busy = false;
      if (c.closing || closesConnection(res)) {
        c.closing = true;
        c.queue.length = 0;
        return;
      }
      c.queue.shift()?.();
    };
    let p: Promise<void>;
    try {
      p = handle();
    } catch (err) {
      done();
      throw err;
    }
    p.then(done, done);
  };
  if (!c.busy) return start();
  if (c.queue.length >= MAX_PIPELINED) {
    c.closing = true;
    c.queue.length = 0;
    socket.destroy();
    return;
  }
  c.queue.push(start);
}
