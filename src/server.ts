import http, { type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Logger } from 'pino';
import { createAdminServer } from './observe/admin.ts';
import { handle } from './pipeline/handle.ts';
import type { Runtime } from './runtime.ts';

/**
 * The proxy and admin listeners around a swappable {@link Runtime}.
 *
 * `current` is replaced atomically by `swap()`; each request reads it once on
 * arrival, so in-flight requests finish on the runtime they started with.
 */
export class RegateServer {
  #current: Runtime;
  #draining = false;
  readonly proxy: Server;
  readonly admin: Server;
  readonly #logger: Logger;

  constructor(runtime: Runtime, logger: Logger) {
    this.#current = runtime;
    this.#logger = logger;
    const limits = runtime.config.limits;
    this.proxy = http.createServer(
      {
        maxHeaderSize: limits.max_header_bytes,
        // Slow-loris bounds: the whole request head within 30 s; idle keep-alive 65 s
        // (longer than common LB idle timeouts, so the LB closes first).
        headersTimeout: 30_000,
        requestTimeout: 0,
        keepAliveTimeout: 65_000,
        requireHostHeader: true,
        joinDuplicateHeaders: false,
      },
      (req: IncomingMessage, res: ServerResponse) => {
        void handle(this.#current, req, res);
      },
    );
    this.proxy.on('clientError', onClientError);
    this.admin = createAdminServer({
      registry: () => this.#current.metrics.registry,
      ready: () => {
        if (this.#draining) return { ready: false, checks: { draining: false } };
        return this.#current.readiness();
      },
    });
  }

  get runtime(): Runtime {
    return this.#current;
  }

  /** Swap in a new runtime; returns the old one (to close once its requests drain). */
  swap(next: Runtime): Runtime {
    const old = this.#current;
    this.#current = next;
    return old;
  }

  async listen(): Promise<{ proxy: string; admin: string }> {
    const { proxy, admin } = this.#current.config.listen;
    await listen(this.proxy, proxy.port, proxy.host);
    await listen(this.admin, admin.port, admin.host);
    const urls = { proxy: url(this.proxy), admin: url(this.admin) };
    this.#logger.info(urls, 'listening');
    return urls;
  }

  /**
   * Graceful stop: readiness turns false first, the listeners stop accepting,
   * in-flight requests get `graceMs` to finish, then remaining sockets are cut.
   */
  async close(graceMs = 10_000): Promise<void> {
    this.#draining = true;
    const closed = new Promise<void>((resolve) => this.proxy.close(() => resolve()));
    this.proxy.closeIdleConnections();
    const timer = setTimeout(() => this.proxy.closeAllConnections(), graceMs);
    await closed;
    clearTimeout(timer);
    await new Promise<void>((resolve) => this.admin.close(() => resolve()));
    this.admin.closeAllConnections();
    await this.#current.close();
  }
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function url(server: Server): string {
  const a = server.address() as AddressInfo;
  const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
  return `http://${host}:${a.port}`;
}

/**
 * Requests node's parser refuses (smuggling attempts such as Content-Length with
 * Transfer-Encoding, oversized heads, bad syntax) never reach the pipeline; answer
 * them with a problem document instead of node's bare 400, then close.
 */
function onClientError(err: NodeJS.ErrnoException, socket: Socket): void {
  if (!socket.writable || (err as { code?: string }).code === 'ECONNRESET') {
    socket.destroy();
    return;
  }
  const tooLarge = err.code === 'HPE_HEADER_OVERFLOW';
  const timeout = err.code === 'ERR_HTTP_REQUEST_TIMEOUT';
  const status = tooLarge ? 431 : timeout ? 408 : 400;
  const title = tooLarge ? 'Request Header Fields Too Large' : timeout ? 'Request Timeout' : 'Bad Request';
  const reason = tooLarge ? 'header_too_large' : timeout ? 'request_timeout' : 'malformed_request';
  const body = JSON.stringify({ type: `urn:regate:problem:${reason}`, title, status, detail: 'the request could not be parsed', reason });
  socket.end(
    `HTTP/1.1 ${status} ${title}\r\ncontent-type: application/problem+json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}
