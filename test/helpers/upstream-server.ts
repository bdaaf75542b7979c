/**
 * A real node:http upstream for tests, on 127.0.0.1, port 0.
 *
 * Every request is recorded ({@link RecordedRequest}) and answered according
 * to its query string, so a test — unit or integration, through regate or
 * not — picks a behaviour with the URL alone:
 *
 * | query                                            | behaviour                                                        |
 * |--------------------------------------------------|------------------------------------------------------------------|
 * | (none) / `mode=echo`                             | 200 JSON {@link EchoBody}: method, raw url, raw headers, body     |
 * | `mode=status&code=204`                           | that status, no body (`etag: "v1"`, `x-mode: status`)            |
 * | `mode=sse&events=N&interval=MS`                  | `text/event-stream`, N events `id: i` / `data: {"i":i}` MS apart |
 * | `mode=slow-headers&delay=MS`                     | waits MS before answering like echo                              |
 * | `mode=slow-body&chunks=N&interval=MS&size=B`     | headers at once, then N chunks of B bytes MS apart               |
 * | `mode=big&bytes=N`                               | N bytes of {@link patternBytes} with Content-Length, backpressured |
 * | `mode=close-mid-stream&bytes=N`                  | chunked, N bytes, then the socket is destroyed                   |
 * | `mode=early-hints`                               | `103 Early Hints` first, then echo                               |
 * | `mode=hold`                                      | never answers (until the client leaves or the server closes)     |
 *
 * Any other status for echo: add `status=NNN`. Extra response headers:
 * `header=name:value` (repeatable). A test can also replace the behaviour
 * entirely with {@link TestUpstream.setHandler}; requests are still recorded.
 *
 * Timestamps are `performance.now()` in this process, so a test running the
 * client in the same process can compare them causally (event i reached the
 * client before event i+1 was sent), never as speed assertions.
 */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type ServerOptions as HttpsServerOptions } from 'node:https';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';

/** The JSON an echo response carries. */
export interface EchoBody {
  readonly method: string;
  /** The request target exactly as received (path + query). */
  readonly url: string;
  /** `req.rawHeaders`: original casing, order and repeats. */
  readonly rawHeaders: readonly string[];
  readonly headers: IncomingHttpHeaders;
  readonly bodyBytes: number;
  readonly bodySha256: string;
  /** The body as UTF-8, only when at most 1 MiB. */
  readonly body?: string;
}

/** One request as the upstream saw it. Mutable fields fill in as the exchange progresses. */
export interface RecordedRequest {
  /** 1-based arrival order. */
  readonly seq: number;
  readonly method: string;
  readonly url: string;
  readonly rawHeaders: readonly string[];
  readonly headers: IncomingHttpHeaders;
  readonly receivedAt: number;
  /** Resolves at the first request-body byte (never, for a bodiless request). */
  readonly bodyStarted: Promise<void>;
  /** Request-body bytes received so far. */
  bodyBytes: number;
  /** performance.now() when each SSE event / slow-body chunk was written. */
  readonly sentAt: number[];
  /** True when the peer (regate) closed the connection before the response finished. */
  aborted: boolean;
  /** Resolves once the response finished or the connection closed, whichever first. */
  readonly done: Promise<RecordedRequest>;
}

/** A custom behaviour: answer `res` however the test needs. */
export type UpstreamHandler = (req: IncomingMessage, res: ServerResponse, record: RecordedRequest) => void;

export interface TestUpstream {
  /** `http://127.0.0.1:<port>` (`https://` with `tls`) */
  readonly url: string;
  readonly port: number;
  /** The underlying server (an `https.Server` with `tls`: `setSecureContext` works on it). */
  readonly server: Server;
  /** Every request so far, in arrival order. */
  readonly requests: readonly RecordedRequest[];
  /**
   * The first request (already recorded or yet to arrive) matching `match`:
   * a pathname (`/upload`, query ignored) or a predicate. Use unique paths per test.
   */
  waitForRequest(match: string | ((r: RecordedRequest) => boolean)): Promise<RecordedRequest>;
  /** Replace the query-driven behaviour; `null` restores it. */
  setHandler(handler: UpstreamHandler | null): void;
  /** Close the server and every open connection. */
  close(): Promise<void>;
}

/** Deterministic body bytes for `mode=big` (byte i = i mod 251), so a test can hash what it expects. */
export function patternBytes(length: number, offset = 0): Buffer {
  const b = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) b[i] = (offset + i) % 251;
  return b;
}

/** SHA-256 hex of `patternBytes(length)`, computed in 1 MiB slices. */
export function patternSha256(length: number): string {
  const h = createHash('sha256');
  for (let off = 0; off < length; off += 1 << 20) h.update(patternBytes(Math.min(1 << 20, length - off), off));
  return h.digest('hex');
}

function intParam(q: URLSearchParams, name: string, fallback: number): number {
  const v = q.get(name);
  const n = v === null ? NaN : Number(v);
  return Number.isInteger(n) && n >= 0 ? n : fallback;
}

/** Start an upstream on 127.0.0.1:0; HTTPS with `options.tls` (certificate, key, client CA...). */
export async function startUpstreamServer(options: { tls?: HttpsServerOptions } = {}): Promise<TestUpstream> {
  const requests: RecordedRequest[] = [];
  let handler: UpstreamHandler | null = null;
  const waiters: { test: (r: RecordedRequest) => boolean; resolve: (r: RecordedRequest) => void }[] = [];
  const timers = new Set<NodeJS.Timeout>();

  const later = (ms: number, fn: () => void): void => {
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, ms);
    timers.add(t);
  };

  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    let resolveStarted!: () => void;
    let resolveDone!: (r: RecordedRequest) => void;
    const record: RecordedRequest = {
      seq: requests.length + 1,
      method: req.method ?? '',
      url: req.url ?? '',
      rawHeaders: [...req.rawHeaders],
      headers: { ...req.headers },
      receivedAt: performance.now(),
      bodyStarted: new Promise<void>((r) => (resolveStarted = r)),
      bodyBytes: 0,
      sentAt: [],
      aborted: false,
      done: new Promise<RecordedRequest>((r) => (resolveDone = r)),
    };
    requests.push(record);
    req.on('data', (c: Buffer) => {
      if (record.bodyBytes === 0) resolveStarted();
      record.bodyBytes += c.length;
    });
    res.on('close', () => {
      if (!res.writableFinished) record.aborted = true;
      resolveDone(record);
    });
    for (let i = 0; i < waiters.length; i++) {
      const w = waiters[i]!;
      if (w.test(record)) {
        waiters.splice(i--, 1);
        w.resolve(record);
      }
    }
    // Errors on a connection the other side reset are expected in these tests.
    req.on('error', () => {});
    res.on('error', () => {});
    if (handler) handler(req, res, record);
    else respond(req, res, record, later);
  };
  const server: Server = options.tls === undefined ? createServer(onRequest) : (createHttpsServer(options.tls, onRequest) as unknown as Server);
  server.on('clientError', (_err, socket) => socket.destroy());
  // A refused handshake (regate's client certificate, its CA check) must not crash the test.
  server.on('tlsClientError', () => {});
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;

  return {
    url: `${options.tls === undefined ? 'http' : 'https'}://127.0.0.1:${port}`,
    port,
    server,
    requests,
    waitForRequest(match) {
      const test = typeof match === 'function' ? match : (r: RecordedRequest) => r.url.split('?', 1)[0] === match;
      const found = requests.find(test);
      if (found) return Promise.resolve(found);
      return new Promise((resolve) => waiters.push({ test, resolve }));
    },
    setHandler(h) {
      handler = h;
    },
    async close() {
      for (const t of timers) clearTimeout(t);
      timers.clear();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

function respond(req: IncomingMessage, res: ServerResponse, record: RecordedRequest, later: (ms: number, fn: () => void) => void): void {
  const q = new URL(req.url ?? '/', 'http://upstream').searchParams;
  for (const h of q.getAll('header')) {
    const i = h.indexOf(':');
    if (i > 0) res.appendHeader(h.slice(0, i), h.slice(i + 1));
  }
  switch (q.get('mode') ?? 'echo') {
    case 'status': {
      req.resume();
      res.writeHead(intParam(q, 'code', 204), { etag: '"v1"', 'x-mode': 'status' });
      res.end();
      return;
    }
    case 'sse': {
      req.resume();
      const events = intParam(q, 'events', 3);
      const interval = intParam(q, 'interval', 50);
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.flushHeaders();
      let i = 0;
      const next = (): void => {
        if (res.destroyed) return;
        if (i === events) {
          res.end();
          return;
        }
        record.sentAt.push(performance.now());
        res.write(`id: ${i}\ndata: {"i":${i}}\n\n`);
        i++;
        later(interval, next);
      };
      later(interval, next);
      return;
    }
    case 'slow-headers': {
      // Read the request now (the recorder's 'data' listener already has it flowing, so a
      // listener attached later would miss 'end'); answer after the delay.
      const delay = intParam(q, 'delay', 1000);
      echo(req, res, q, (write) => later(delay, write));
      return;
    }
    case 'slow-body': {
      req.resume();
      const chunks = intParam(q, 'chunks', 3);
      const interval = intParam(q, 'interval', 50);
      const size = intParam(q, 'size', 16);
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.flushHeaders();
      let i = 0;
      const next = (): void => {
        if (res.destroyed) return;
        if (i === chunks) {
          res.end();
          return;
        }
        record.sentAt.push(performance.now());
        res.write(Buffer.alloc(size, 97 + (i % 26)));
        i++;
        later(interval, next);
      };
      later(interval, next);
      return;
    }
    case 'big': {
      req.resume();
      const total = intParam(q, 'bytes', 1 << 20);
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(total) });
      let off = 0;
      const pump = (): void => {
        while (off < total) {
          const n = Math.min(64 * 1024, total - off);
          const ok = res.write(patternBytes(n, off));
          off += n;
          if (!ok) {
            res.once('drain', pump);
            return;
          }
        }
        res.end();
      };
      pump();
      return;
    }
    case 'close-mid-stream': {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.write(Buffer.alloc(intParam(q, 'bytes', 1024), 120));
      // Let the bytes leave before the reset.
      later(20, () => res.socket?.destroy());
      return;
    }
    case 'early-hints': {
      res.writeEarlyHints({ link: '</style.css>; rel=preload; as=style' });
      echo(req, res, q);
      return;
    }
    case 'hold':
      req.resume();
      return;
    default:
      echo(req, res, q);
  }
}

function echo(req: IncomingMessage, res: ServerResponse, q: URLSearchParams, schedule: (write: () => void) => void = (write) => write()): void {
  const hash = createHash('sha256');
  let bytes = 0;
  let kept: Buffer[] | null = [];
  req.on('data', (c: Buffer) => {
    hash.update(c);
    bytes += c.length;
    if (kept && bytes <= 1 << 20) kept.push(c);
    else kept = null;
  });
  req.on('end', () => schedule(() => {
    if (res.destroyed) return;
    const body: EchoBody = {
      method: req.method ?? '',
      url: req.url ?? '',
      rawHeaders: req.rawHeaders,
      headers: req.headers,
      bodyBytes: bytes,
      bodySha256: hash.digest('hex'),
      ...(kept ? { body: Buffer.concat(kept).toString('utf8') } : {}),
    };
    const json = JSON.stringify(body);
    res.writeHead(intParam(q, 'status', 200), { 'content-type': 'application/json', 'content-length': Buffer.byteLength(json) });
    res.end(json);
  }));
}
