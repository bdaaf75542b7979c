/**
 * A real WebSocket upstream (the `ws` package) on loopback for the WebSocket
 * tests. By path:
 *
 * - `/refuse…`: answers the upgrade with a plain 403 and a body (no 101);
 * - `/bad101…`: answers 101 without a valid `Sec-WebSocket-Accept`;
 * - anything else: accepts and echoes every message back, text as text and
 *   binary as binary; `?pause=1` stops reading the connection until
 *   {@link WsUpstream.resumeAll} (a slow reader: backpressure).
 *
 * With `tls` it serves HTTPS: a wss upstream.
 *
 * Every upgrade request's headers are recorded, and every accepted
 * connection's close code as the upstream saw it.
 */
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';

export interface WsUpgradeRecord {
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly rawHeaders: readonly string[];
}

export interface WsConnectionRecord {
  readonly url: string;
  readonly ws: WebSocket;
  /** Resolves with the close code and reason the upstream received (1005/1006 for none). */
  readonly closed: Promise<{ code: number; reason: string }>;
}

export interface WsUpstream {
  readonly url: string;
  /** Upgrade requests received, in order (refused ones included). */
  readonly upgrades: WsUpgradeRecord[];
  readonly connections: WsConnectionRecord[];
  /** Resolves with the next accepted connection (or one already accepted at index `index`). */
  connection(index: number): Promise<WsConnectionRecord>;
  resumeAll(): void;
  close(): Promise<void>;
}

/** `tls`: serve HTTPS (a wss upstream) with this PEM certificate and key. */
export async function startWsUpstream(options: { readonly tls?: { readonly cert: string; readonly key: string } } = {}): Promise<WsUpstream> {
  const plain = (_req: IncomingMessage, res: ServerResponse): void => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('plain');
  };
  const server: Server = options.tls === undefined ? createServer(plain) : (createTlsServer(options.tls, plain) as unknown as Server);
  const wss = new WebSocketServer({ noServer: true, maxPayload: 256 * 1024 * 1024 });
  const upgrades: WsUpgradeRecord[] = [];
  const connections: WsConnectionRecord[] = [];
  const waiters: (() => void)[] = [];
  const paused = new Set<Socket>();
  const sockets = new Set<Socket>();

  server.on('upgrade', (req, socket: Socket, head: Buffer) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    const url = req.url ?? '';
    upgrades.push({ url, headers: { ...req.headers }, rawHeaders: [...req.rawHeaders] });
    if (url.startsWith('/refuse')) {
      const body = 'upstream says no';
      socket.end(`HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\nx-upstream: refused\r\n\r\n${body}`);
      return;
    }
    if (url.startsWith('/bad101')) {
      socket.end('HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: bm90IHRoZSByaWdodCB2YWx1ZQ==\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
      ws.on('error', () => {});
      ws.on('message', (data, isBinary) => ws.send(data as Buffer, { binary: isBinary }));
      if (url.includes('pause=1')) {
        socket.pause();
        paused.add(socket);
      }
      connections.push({ url, ws, closed });
      for (const w of waiters.splice(0)) w();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  return {
    url: `${options.tls === undefined ? 'http' : 'https'}://127.0.0.1:${port}`,
    upgrades,
    connections,
    async connection(index) {
      while (connections[index] === undefined) await new Promise<void>((resolve) => waiters.push(resolve));
      return connections[index]!;
    },
    resumeAll() {
      for (const s of paused) s.resume();
      paused.clear();
    },
    async close() {
      for (const s of sockets) s.destroy();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
