/**
 * A tiny OPA-bundle-protocol server on 127.0.0.1:0 whose behaviour tests
 * control: serve a bundle with an ETag and honour If-None-Match (304), swap
 * the bundle, fail with a status, hang, serve garbage or an oversized body,
 * demand a bearer token, and count 200s vs 304s. Real node:http, no mocking:
 * regate's download path is exercised for real.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** What the server answers with. */
export type BundleServerMode =
  /** 200 with the current bundle (or 304 when If-None-Match matches its ETag). */
  | 'ok'
  /** `failStatus` (default 500) with a short text body. */
  | 'fail'
  /** Accepts the request and never answers (until the mode changes or the server closes). */
  | 'hang'
  /** 200 with bytes that are not a bundle, and a fresh ETag. */
  | 'garbage'
  /** 200, streamed without Content-Length, `hugeBytes` long (default 4 MiB). */
  | 'huge'
  /** 302 to the same URL. */
  | 'redirect';

export interface BundleServerRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  /** What was answered: 200, 304, 401, 500, ... (-1 while hanging). */
  status: number;
}

export interface BundleServer {
  /** `http://127.0.0.1:<port>/bundles/authz.tar.gz` */
  readonly url: string;
  /** Every request so far, oldest first. */
  readonly requests: readonly BundleServerRequest[];
  /** 200 responses that carried a bundle (the current one, in `ok` mode). */
  readonly served: number;
  /** 304 responses. */
  readonly notModified: number;
  mode: BundleServerMode;
  /** Status in `fail` mode. Default 500. */
  failStatus: number;
  /** Body size in `huge` mode. Default 4 MiB. */
  hugeBytes: number;
  /** Send ETags (and honour If-None-Match). Default true. */
  etags: boolean;
  /** When set, requests without `authorization: <this>` get 401. */
  requireAuthorization: string | undefined;
  /** The ETag of the bundle being served (quoted, derived from its bytes). */
  readonly etag: string;
  /** Replace the served bundle; its ETag changes with its bytes. */
  serve(bytes: Uint8Array): void;
  /** Resolve when at least `n` requests have arrived (bounded wait). */
  waitForRequests(n: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

const etagOf = (bytes: Uint8Array): string => `"${createHash('sha256').update(bytes).digest('hex').slice(0, 32)}"`;

/** Start a bundle server serving `bundle` at `path` (default `/bundles/authz.tar.gz`). */
export async function startBundleServer(bundle: Uint8Array, path = '/bundles/authz.tar.gz'): Promise<BundleServer> {
  let body = bundle;
  let etag = etagOf(body);
  let served = 0;
  let notModified = 0;
  let garbageVersion = 0;
  const requests: BundleServerRequest[] = [];
  const waiters = new Set<() => void>();
  const hanging = new Set<ServerResponse>();
  const sockets = new Set<Socket>();
  const state = {
    mode: 'ok' as BundleServerMode,
    failStatus: 500,
    hugeBytes: 4 * 1024 * 1024,
    etags: true,
    requireAuthorization: undefined as string | undefined,
  };

  const server = createServer((req, res) => {
    const record: BundleServerRequest = { method: req.method ?? '', path: req.url ?? '', headers: req.headers, status: -1 };
    requests.push(record);
    for (const w of waiters) w();
    const answer = (status: number, headers: Record<string, string | number> = {}, payload?: Uint8Array | string): void => {
      record.status = status;
      res.writeHead(status, headers);
      res.end(payload);
    };
    if (req.url !== path) return answer(404, { 'content-type': 'text/plain' }, 'no such bundle');
    if (req.method !== 'GET') return answer(405, { allow: 'GET' });
    if (state.requireAuthorization !== undefined && req.headers.authorization !== state.requireAuthorization) {
      return answer(401, { 'content-type': 'text/plain' }, 'unauthorized');
    }
    switch (state.mode) {
      case 'fail':
        return answer(state.failStatus, { 'content-type': 'text/plain' }, 'bundle server failure');
      case 'hang':
        hanging.add(res);
        res.on('close', () => hanging.delete(res));
        return;
      case 'redirect':
        return answer(302, { location: path });
      case 'garbage': {
        garbageVersion++;
        return answer(200, { 'content-type': 'application/gzip', etag: `"garbage-${garbageVersion}"` }, `this is not a bundle (${garbageVersion})`);
      }
      case 'huge': {
        record.status = 200;
        res.writeHead(200, { 'content-type': 'application/gzip' });
        const chunk = Buffer.alloc(64 * 1024, 0x41);
        let left = state.hugeBytes;
        const pump = (): void => {
          while (left > 0) {
            const n = Math.min(left, chunk.length);
            left -= n;
            if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n))) {
              res.once('drain', pump);
              return;
            }
          }
          res.end();
        };
        res.on('error', () => {});
        pump();
        return;
      }
      case 'ok': {
        const inm = req.headers['if-none-match'];
        if (state.etags && inm !== undefined && inm.split(',').map((t) => t.trim()).includes(etag)) {
          notModified++;
          return answer(304, { etag });
        }
        served++;
        return answer(200, { 'content-type': 'application/vnd.openpolicyagent.bundles', 'content-length': body.length, ...(state.etags ? { etag } : {}) }, body);
      }
    }
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}${path}`,
    requests,
    get served() {
      return served;
    },
    get notModified() {
      return notModified;
    },
    get mode() {
      return state.mode;
    },
    set mode(m: BundleServerMode) {
      state.mode = m;
      if (m !== 'hang') for (const res of hanging) res.destroy();
    },
    get failStatus() {
      return state.failStatus;
    },
    set failStatus(s: number) {
      state.failStatus = s;
    },
    get hugeBytes() {
      return state.hugeBytes;
    },
    set hugeBytes(n: number) {
      state.hugeBytes = n;
    },
    get etags() {
      return state.etags;
    },
    set etags(on: boolean) {
      state.etags = on;
    },
    get requireAuthorization() {
      return state.requireAuthorization;
    },
    set requireAuthorization(v: string | undefined) {
      state.requireAuthorization = v;
    },
    get etag() {
      return etag;
    },
    serve(bytes: Uint8Array) {
      body = bytes;
      etag = etagOf(bytes);
    },
    waitForRequests(n: number, timeoutMs = 10_000) {
      return new Promise<void>((resolve, reject) => {
        const check = (): void => {
          if (requests.length >= n) {
            clearTimeout(timer);
            waiters.delete(check);
            resolve();
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`bundle server: ${requests.length} requests within ${timeoutMs} ms, wanted ${n}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    async close() {
      for (const res of hanging) res.destroy();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}
