/**
 * A real JWKS endpoint on 127.0.0.1:0 whose behaviour tests control:
 * serve keys (with ETag / 304), fail (500), hang, return garbage, rotate keys,
 * and count requests. No HTTP mocking: regate's fetch path is exercised for real.
 */
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** What the server answers with. */
export type JwksServerMode =
  /** 200 with the current keys (ETag + If-None-Match → 304 when `etag` is on). */
  | 'ok'
  /** 500. */
  | 'down'
  /** Accepts the request and never answers. */
  | 'hang'
  /** 200 with a body that is not JSON. */
  | 'garbage'
  /** 200 with JSON that is not a JWKS (`{"foo":1}`). */
  | 'not_jwks'
  /** 200 with `{"keys":[]}`. */
  | 'empty'
  /** 200 with a 2 MiB body (streamed, no Content-Length). */
  | 'huge'
  /** 302 to the same URL. */
  | 'redirect';

/** A running JWKS server. */
export interface JwksServer {
  /** `http://127.0.0.1:<port>/jwks.json` */
  readonly url: string;
  /** Requests received so far (every mode counts). */
  readonly requests: number;
  /** Headers of the last request. */
  readonly lastHeaders: IncomingHttpHeaders | undefined;
  mode: JwksServerMode;
  /** Send an ETag and honour If-None-Match. Default false. */
  etag: boolean;
  /** Milliseconds to wait before answering in `ok` mode. Default 0. */
  delayMs: number;
  /** Replace the served key set (rotation). */
  setKeys(jwks: { keys: readonly unknown[] }): void;
  close(): Promise<void>;
}

/** Start a JWKS server serving `jwks`. */
export async function startJwksServer(jwks: { keys: readonly unknown[] } = { keys: [] }): Promise<JwksServer> {
  let body = JSON.stringify(jwks);
  let version = 1;
  let requests = 0;
  let lastHeaders: IncomingHttpHeaders | undefined;
  const state = { mode: 'ok' as JwksServerMode, etag: false, delayMs: 0 };
  const timers = new Set<NodeJS.Timeout>();

  const answer = (res: ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(text);
  };

  const server: Server = createServer((req, res) => {
    requests++;
    lastHeaders = req.headers;
    switch (state.mode) {
      case 'down':
        return answer(res, 500, '{"error":"down"}');
      case 'hang':
        return; // never answer; close() tears the socket down
      case 'garbage':
        return answer(res, 200, '<html>not json{');
      case 'not_jwks':
        return answer(res, 200, '{"foo":1}');
      case 'empty':
        return answer(res, 200, '{"keys":[]}');
      case 'redirect':
        res.writeHead(302, { location: req.url ?? '/' });
        return res.end();
      case 'huge': {
        res.writeHead(200, { 'content-type': 'application/json' });
        const chunk = Buffer.alloc(64 * 1024, 0x20);
        let sent = 0;
        const pump = (): void => {
          while (sent < 2 * 1024 * 1024) {
            sent += chunk.length;
            if (!res.write(chunk)) return void res.once('drain', pump);
          }
          res.end();
        };
        res.on('error', () => {});
        return pump();
      }
      case 'ok': {
        const etag = `"v${version}"`;
        const send = (): void => {
          if (state.etag && req.headers['if-none-match'] === etag) {
            res.writeHead(304, { etag });
            return void res.end();
          }
          answer(res, 200, body, state.etag ? { etag } : {});
        };
        if (state.delayMs > 0) {
          const t = setTimeout(() => {
            timers.delete(t);
            send();
          }, state.delayMs);
          timers.add(t);
          return;
        }
        return send();
      }
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}/jwks.json`,
    get requests() {
      return requests;
    },
    get lastHeaders() {
      return lastHeaders;
    },
    get mode() {
      return state.mode;
    },
    set mode(mode: JwksServerMode) {
      state.mode = mode;
    },
    get etag() {
      return state.etag;
    },
    set etag(on: boolean) {
      state.etag = on;
    },
    get delayMs() {
      return state.delayMs;
    },
    set delayMs(ms: number) {
      state.delayMs = ms;
    },
    setKeys(next) {
      body = JSON.stringify(next);
      version++;
    },
    close() {
      for (const t of timers) clearTimeout(t);
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
