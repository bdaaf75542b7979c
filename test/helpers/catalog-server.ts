/**
 * A real resource catalog on 127.0.0.1:0 for tests (`routes[].resource`).
 *
 * Answers are keyed by the request target exactly as received (path + query,
 * still percent-encoded), so a test can assert how regate filled a URL
 * template. Unknown targets answer 404. Every request is recorded, so a test
 * can count catalog hits (cache, single flight) without timing anything.
 */
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** How the catalog answers one target. */
export interface CatalogAnswer {
  /** Default 200. */
  readonly status?: number;
  /** Sent as JSON (content-type application/json). */
  readonly json?: unknown;
  /** Sent as is instead of `json`. */
  readonly body?: string | Buffer;
  /** Wait this long before answering (timeouts, single flight). */
  readonly delayMs?: number;
  /** Chunked instead of Content-Length (size caps without a declared length). */
  readonly chunked?: boolean;
  readonly headers?: Readonly<Record<string, string>>;
}

export interface CatalogRequest {
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
}

export interface CatalogServer {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  readonly port: number;
  /** Every request, in arrival order. */
  readonly requests: readonly CatalogRequest[];
  /** Requests for `target` (exact), or all of them. */
  hits(target?: string): number;
  /** Answer `target` (exact request target, e.g. `/files/a%2Fb`) like this from now on. */
  set(target: string, answer: CatalogAnswer): void;
  /** Release every request held by a `delayMs` answer now. */
  releaseAll(): void;
  close(): Promise<void>;
}

export async function startCatalogServer(answers: Record<string, CatalogAnswer> = {}): Promise<CatalogServer> {
  const table = new Map(Object.entries(answers));
  const requests: CatalogRequest[] = [];
  const held = new Set<() => void>();
  const server: Server = createServer((req, res) => {
    const url = req.url ?? '';
    requests.push({ url, headers: { ...req.headers } });
    req.resume();
    const answer = table.get(url) ?? { status: 404, json: { error: 'not found' } };
    const send = (): void => {
      held.delete(send);
      if (res.destroyed) return;
      const body = answer.body ?? (answer.json !== undefined ? JSON.stringify(answer.json) : '');
      const headers: Record<string, string> = { 'content-type': 'application/json', ...answer.headers };
      if (!answer.chunked) headers['content-length'] = String(Buffer.byteLength(body));
      res.writeHead(answer.status ?? 200, headers);
      if (answer.chunked) {
        // Several writes so the size cap is crossed mid-stream.
        const bytes = Buffer.from(body);
        for (let off = 0; off < bytes.length; off += 1024) res.write(bytes.subarray(off, off + 1024));
        res.end();
      } else {
        res.end(body);
      }
    };
    if (answer.delayMs) {
      held.add(send);
      const t = setTimeout(send, answer.delayMs);
      res.on('close', () => {
        clearTimeout(t);
        held.delete(send);
      });
    } else {
      send();
    }
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    hits: (target) => (target === undefined ? requests.length : requests.filter((r) => r.url === target).length),
    set: (target, answer) => void table.set(target, answer),
    releaseAll: () => {
      for (const send of [...held]) send();
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
