/**
 * A small real authorization server on 127.0.0.1:0 for the edge cases a real
 * IdP will not produce on demand: its discovery document, JWKS and RFC 7662
 * introspection endpoint are each answered by a handler the test sets (a
 * mismatched issuer, bad JSON, 500, slow or hanging answers). Every request
 * is recorded (method, path, headers, form body). No HTTP mocking: regate's
 * fetch path is exercised for real.
 */
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface IdpRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  /** The form body, parsed (POST). */
  readonly form: URLSearchParams;
}

/** An answer: status, JSON (or raw text) body, optional delay (ms; `Infinity` hangs). */
export interface IdpAnswer {
  readonly status?: number;
  readonly json?: unknown;
  readonly text?: string;
  readonly delayMs?: number;
}

export type IdpHandler = (req: IdpRequest) => IdpAnswer;

export interface IdpServer {
  /** `http://127.0.0.1:<port>`: the issuer, when the discovery document says so. */
  readonly url: string;
  readonly requests: IdpRequest[];
  /** Handlers by path: `/.well-known/openid-configuration`, `/jwks`, `/introspect`, … (404 otherwise). */
  on(path: string, handler: IdpHandler): void;
  /** A discovery document for this server: issuer = url, jwks_uri = url/jwks, introspection_endpoint = url/introspect. */
  discoveryDocument(overrides?: Record<string, unknown>): Record<string, unknown>;
  count(path: string): number;
  close(): Promise<void>;
}

export async function startIdpServer(): Promise<IdpServer> {
  const handlers = new Map<string, IdpHandler>();
  const requests: IdpRequest[] = [];
  const timers = new Set<NodeJS.Timeout>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = (req.url ?? '/').split('?')[0]!;
      const record: IdpRequest = { method: req.method ?? 'GET', path, headers: req.headers, form: new URLSearchParams(Buffer.concat(chunks).toString('utf8')) };
      requests.push(record);
      const handler = handlers.get(path);
      const answer: IdpAnswer = handler === undefined ? { status: 404, json: { error: 'not_found' } } : handler(record);
      const write = (r: ServerResponse): void => {
        const text = answer.text ?? JSON.stringify(answer.json ?? {});
        r.writeHead(answer.status ?? 200, { 'content-type': 'application/json' });
        r.end(text);
      };
      if (answer.delayMs === undefined || answer.delayMs === 0) write(res);
      else if (answer.delayMs !== Infinity) {
        const t = setTimeout(() => {
          timers.delete(t);
          write(res);
        }, answer.delayMs);
        timers.add(t);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    requests,
    on(path, handler) {
      handlers.set(path, handler);
    },
    discoveryDocument(overrides = {}) {
      return { issuer: url, jwks_uri: `${url}/jwks`, introspection_endpoint: `${url}/introspect`, token_endpoint: `${url}/token`, ...overrides };
    },
    count(path) {
      return requests.filter((r) => r.path === path).length;
    },
    async close() {
      for (const t of timers) clearTimeout(t);
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
