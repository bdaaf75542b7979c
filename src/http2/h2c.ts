/**
 * Cleartext HTTP/2 with prior knowledge beside HTTP/1.1 on one port
 * (`listen.proxy.http2.h2c: true`). A connection is told apart by its first
 * bytes: the 24-byte HTTP/2 connection preface (RFC 9113 §3.4,
 * `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`) goes to the HTTP/2 server, anything
 * else to the HTTP/1.1 server, as soon as a byte differs from the preface.
 * No byte is consumed: what was read is put back before the hand-over.
 * A connection that sends nothing decisive within `timeoutMs` is closed.
 */

import type { Server as HttpServer } from 'node:http';
import type { Http2Server } from 'node:http2';
import net, { type Socket } from 'node:net';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** Which server a connection's first bytes belong to; null: not decided yet (a prefix of the preface). */
export function sniffProtocol(head: Buffer): 'h2' | 'http1' | null {
  const n = Math.min(head.length, PREFACE.length);
  for (let i = 0; i < n; i++) if (head[i] !== PREFACE[i]) return 'http1';
  return head.length >= PREFACE.length ? 'h2' : null;
}

/** The listening socket of an h2c-enabled proxy port: it hands each connection to `http1` or `h2`. */
export function createH2cListener(http1: HttpServer, h2: Http2Server, timeoutMs: number): net.Server {
  return net.createServer({ noDelay: true }, (socket: Socket) => {
    let head: Buffer = Buffer.alloc(0);
    const timer = setTimeout(() => socket.destroy(), timeoutMs);
    const onError = (): void => {
      clearTimeout(timer);
      socket.destroy();
    };
    const onData = (chunk: Buffer): void => {
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      const kind = sniffProtocol(head);
      if (kind === null) return;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', onError);
      socket.pause();
      socket.unshift(head);
      (kind === 'h2' ? h2 : http1).emit('connection', socket);
      // The server's own reader takes over from the bytes put back.
      process.nextTick(() => socket.resume());
    };
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('close', () => clearTimeout(timer));
  });
}
