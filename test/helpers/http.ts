/**
 * Client helpers for integration tests: ordinary requests (undici) and raw
 * HTTP/1.1 over a socket, for request targets and header shapes that a
 * well-behaved client would normalize away (dot segments, CL+TE, duplicates).
 */
import net from 'node:net';
import tls from 'node:tls';
import { request as undiciRequest } from 'undici';

/** A loopback port that was free a moment ago and has nothing listening: "upstream down". */
export async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export interface Reply {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly text: string;
  json<T = Record<string, unknown>>(): T;
}

/** An ordinary request through undici; the body is read fully. */
export async function send(
  url: string,
  init: { method?: string; headers?: Record<string, string>; body?: string | Buffer } = {},
): Promise<Reply> {
  const res = await undiciRequest(url, {
    method: (init.method ?? 'GET') as 'GET',
    headers: init.headers,
    body: init.body,
  });
  const text = await res.body.text();
  return reply(res.statusCode, res.headers as Record<string, string | string[] | undefined>, text);
}

/**
 * Sends `head` (request line + headers, CRLF-separated, without the final blank
 * line) plus `body` on a fresh socket and parses the one response.
 */
export function rawRequest(baseUrl: string, head: string, body = ''): Promise<Reply> {
  const { hostname, port } = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname);
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`raw request timed out: ${head.split('\r\n')[0]}`));
    }, 10_000);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', (err) => {
      clearTimeout(timer);
      // A reset after a complete response is fine; without one it is a failure.
      if (chunks.length) finish();
      else reject(err);
    });
    socket.on('end', finish);
    socket.write(`${head}\r\nConnection: close\r\n\r\n${body}`);

    function finish(): void {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('utf8');
      const split = text.indexOf('\r\n\r\n');
      const headLines = text.slice(0, split === -1 ? text.length : split).split('\r\n');
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(headLines[0] ?? '')?.[1] ?? 0);
      const headers: Record<string, string> = {};
      for (const line of headLines.slice(1)) {
        const c = line.indexOf(':');
        if (c > 0) headers[line.slice(0, c).toLowerCase()] = line.slice(c + 1).trim();
      }
      let bodyText = split === -1 ? '' : text.slice(split + 4);
      if (headers['transfer-encoding'] === 'chunked') bodyText = dechunk(bodyText);
      resolve(reply(status, headers, bodyText));
    }
  });
}

function dechunk(s: string): string {
  let out = '';
  let i = 0;
  for (;;) {
    const nl = s.indexOf('\r\n', i);
    if (nl === -1) return out;
    const size = parseInt(s.slice(i, nl), 16);
    if (!size) return out;
    out += s.slice(nl + 2, nl + 2 + size);
    i = nl + 2 + size + 2;
  }
}

function reply(status: number, headers: Record<string, string | string[] | undefined>, text: string): Reply {
  return {
    status,
    headers,
    text,
    json<T>() {
      return JSON.parse(text) as T;
    },
  };
}

/** One response parsed out of a raw byte stream. */
export interface RawResponse {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: string;
}

/** What a raw connection received: every response in order, and whether the server closed it. */
export interface RawExchange {
  readonly responses: RawResponse[];
  /** Interim (1xx) status lines, in order. */
  readonly interim: number[];
  /** The server ended or reset the connection before `timeoutMs`. */
  readonly closed: boolean;
  /** Milliseconds from the first write until the server closed (or the timeout). */
  readonly elapsedMs: number;
  readonly raw: string;
}

/**
 * Write `parts` to a fresh socket (strings or Buffers; a number is a pause in
 * ms between writes) and collect everything until the server closes the
 * connection or `timeoutMs` passes. Never sends anything implicitly: no
 * `Connection: close`, no final blank line.
 */
export function rawExchange(baseUrl: string, parts: readonly (string | Buffer | number)[], timeoutMs = 5_000, tlsOptions?: tls.ConnectionOptions): Promise<RawExchange> {
  const { hostname, port } = new URL(baseUrl);
  return new Promise((resolve) => {
    // `tlsOptions` (or an https:// URL): the same exchange inside a TLS connection, written once the handshake is done.
    const secure = tlsOptions !== undefined || baseUrl.startsWith('https:');
    const socket = secure ? tls.connect({ port: Number(port), host: hostname, ...tlsOptions }) : net.connect(Number(port), hostname);
    const chunks: Buffer[] = [];
    const started = performance.now();
    let done = false;
    const finish = (closed: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      const raw = Buffer.concat(chunks).toString('latin1');
      resolve({ ...parseRawResponses(raw), closed, elapsedMs: performance.now() - started, raw });
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => finish(true));
    socket.on('end', () => finish(true));
    socket.on('close', () => finish(true));
    socket.once(secure ? 'secureConnect' : 'connect', async () => {
      for (const p of parts) {
        if (done) return;
        if (typeof p === 'number') await new Promise((r) => setTimeout(r, p));
        else if (!socket.destroyed) socket.write(p);
      }
    });
  });
}

/** Split a byte stream into HTTP/1.1 responses (Content-Length or chunked bodies). */
export function parseRawResponses(raw: string): { responses: RawResponse[]; interim: number[] } {
  const responses: RawResponse[] = [];
  const interim: number[] = [];
  let i = 0;
  while (i < raw.length) {
    const end = raw.indexOf('\r\n\r\n', i);
    if (end === -1) break;
    const lines = raw.slice(i, end).split('\r\n');
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '')?.[1] ?? 0);
    const headers: Record<string, string> = {};
    for (const line of lines.slice(1)) {
      const c = line.indexOf(':');
      if (c > 0) headers[line.slice(0, c).toLowerCase()] = line.slice(c + 1).trim();
    }
    i = end + 4;
    if (status >= 100 && status < 200) {
      interim.push(status);
      continue;
    }
    let body = '';
    if (headers['transfer-encoding'] === 'chunked') {
      for (;;) {
        const nl = raw.indexOf('\r\n', i);
        if (nl === -1) break;
        const size = parseInt(raw.slice(i, nl), 16);
        i = nl + 2;
        if (!size) {
          i = raw.indexOf('\r\n', i) + 2;
          break;
        }
        body += raw.slice(i, i + size);
        i += size + 2;
      }
    } else {
      const n = Number(headers['content-length'] ?? 0);
      body = raw.slice(i, i + n);
      i += n;
    }
    responses.push({ status, headers, body });
    if (status === 0) break;
  }
  return { responses, interim };
}
