/**
 * The admin listener: `/metrics`, `/healthz`, `/readyz`. It is a separate
 * node:http server on its own address (`listen.admin`), never the proxy port,
 * so the policy cannot be bypassed through it and it can be firewalled apart.
 *
 * - `GET /metrics`: the given registry in the Prometheus text format, or in
 *   OpenMetrics when `Accept` prefers `application/openmetrics-text`
 *   (src/observe/exposition.ts); `Vary: Accept`.
 * - `GET /healthz`: 200 `{"status":"ok"}` while the process runs (liveness).
 * - `GET /readyz`:  200 or 503 with the individual checks (readiness: policy
 *   loaded, keys fetched, ...).
 * - `HEAD` on each: same status and headers, no body. Other methods: 405.
 *   Other paths: 404. The query string is ignored.
 */

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import { negotiateExposition, renderExposition } from './exposition.ts';

/** Readiness: a plain boolean, or the verdict with the checks behind it. */
export type Readiness = boolean | { readonly ready: boolean; readonly checks: Readonly<Record<string, boolean>> };

/** What the admin endpoints expose. */
export interface AdminServerOptions {
  /**
   * Registry whose metrics `/metrics` exposes, or a getter read on every scrape
   * (for a server whose runtime, and so whose registry, can be swapped).
   */
  readonly registry: Registry | (() => Registry);
  /**
   * Evaluated on every `/readyz`; must be cheap. A throw or rejection → 503.
   * May be asynchronous: a cluster primary asks its workers.
   */
  readonly ready: () => Readiness | Promise<Readiness>;
}

const JSON_TYPE = 'application/json; charset=utf-8';

/** Create the admin server (not listening: the caller listens on `listen.admin`). */
export function createAdminServer(options: AdminServerOptions): Server {
  const { registry, ready } = options;
  const currentRegistry = typeof registry === 'function' ? registry : () => registry;
  return createServer((req, res) => {
    handleAdmin(req, res, currentRegistry, ready).catch(() => {
      // Only reachable if writing the response itself failed (client gone); nothing to tell.
      if (!res.headersSent) send(res, req, 500, JSON_TYPE, '{"status":"error"}');
      else res.destroy();
    });
  });
}

async function handleAdmin(req: IncomingMessage, res: ServerResponse, currentRegistry: () => Registry, ready: () => Readiness | Promise<Readiness>): Promise<void> {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const path = q === -1 ? url : url.slice(0, q);
  if (path !== '/metrics' && path !== '/healthz' && path !== '/readyz') {
    return send(res, req, 404, JSON_TYPE, '{"status":"not_found"}');
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('Allow', 'GET, HEAD');
    return send(res, req, 405, JSON_TYPE, '{"status":"method_not_allowed"}');
  }

  switch (path) {
    case '/metrics': {
      const registry = currentRegistry();
      const format = negotiateExposition(req.headers.accept);
      res.setHeader('Vary', 'Accept');
      let out: { contentType: string; body: string };
      try {
        out = await renderExposition(registry, format);
      } catch {
        // A failing collector (default metrics read /proc) must not take the endpoint down silently.
        return send(res, req, 500, JSON_TYPE, '{"status":"error","error":"metrics collection failed"}');
      }
      return send(res, req, 200, out.contentType, out.body);
    }
    case '/healthz':
      return send(res, req, 200, JSON_TYPE, '{"status":"ok"}');
    default: {
      let readiness: Readiness;
      try {
        readiness = await ready();
      } catch {
        readiness = false;
      }
      const isReady = typeof readiness === 'boolean' ? readiness : readiness.ready;
      const doc: { status: string; checks?: Readonly<Record<string, boolean>> } = { status: isReady ? 'ready' : 'not_ready' };
      if (typeof readiness !== 'boolean') doc.checks = readiness.checks;
      return send(res, req, isReady ? 200 : 503, JSON_TYPE, JSON.stringify(doc));
    }
  }
}

function send(res: ServerResponse, req: IncomingMessage, status: number, contentType: string, body: string): void {
  res.statusCode = status;
  res.setHeader('Content-Type', contentType);
  res.setHeader('Content-Length', Buffer.byteLength(body));
  // Health and metrics are point-in-time: a cached answer is a wrong answer.
  res.setHeader('Cache-Control', 'no-store');
  res.end(req.method === 'HEAD' ? undefined : body);
}
