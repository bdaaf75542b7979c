/**
 * WebSocket metrics (routes with `websocket: true`, src/pipeline/websocket.ts),
 * registered by `createMetrics` beside the request metrics:
 *
 * - `regate_websocket_connections{route}`: relayed connections open now;
 * - `regate_websocket_connections_total{route,result}`: upgrade attempts by
 *   outcome ({@link WEBSOCKET_RESULTS});
 * - `regate_websocket_bytes_total{route,direction}`: bytes relayed, counted as
 *   they go (`to_upstream`, `to_client`).
 *
 * The upgrade request itself is also a request (`regate_requests_total`, its
 * decision-log line). Labels are bounded: `route` is a configured id or
 * `_unmatched`, `result` and `direction` come from fixed lists.
 */

import { Counter, Gauge, type Registry } from 'prom-client';

/**
 * Values of `regate_websocket_connections_total{result}`: `upgraded` (the
 * upstream's 101 was relayed), `refused` (regate answered: invalid handshake,
 * denied, route without `websocket`), `upstream_refused` (the upstream
 * answered without a 101; its response was relayed), `upstream_failed` (no
 * usable answer: 502/503/504), `client_closed` (the client left first).
 */
export const WEBSOCKET_RESULTS = ['upgraded', 'refused', 'upstream_refused', 'upstream_failed', 'client_closed'] as const;
export type WebSocketResult = (typeof WEBSOCKET_RESULTS)[number];

/** One open connection's series. */
export interface WebSocketSeries {
  toUpstream(bytes: number): void;
  toClient(bytes: number): void;
  /** The connection closed: the open gauge goes down. Call once. */
  closed(): void;
}

export interface WebSocketMetrics {
  /** Count one upgrade attempt of `route` (null: none matched). */
  attempt(route: string | null, result: WebSocketResult): void;
  /** A connection of `route` was upgraded: the gauge goes up; its byte counters. */
  opened(route: string): WebSocketSeries;
  /** Routes with `websocket: true`: their series start at 0. */
  configure(routeIds: readonly string[]): void;
}

/** Register the WebSocket metrics into `registry`. `label` maps a route id to its label value (`_unmatched` for unknown ones). */
export function createWebSocketMetrics(registry: Registry, label: (route: string | null) => string): WebSocketMetrics {
  const registers = [registry];
  const open = new Gauge({
    name: 'regate_websocket_connections',
    help: 'Relayed WebSocket connections open now, by route.',
    labelNames: ['route'] as const,
    registers,
  });
  const attempts = new Counter({
    name: 'regate_websocket_connections_total',
    help: 'WebSocket upgrade requests, by route and result (upgraded|refused|upstream_refused|upstream_failed|client_closed).',
    labelNames: ['route', 'result'] as const,
    registers,
  });
  const bytes = new Counter({
    name: 'regate_websocket_bytes_total',
    help: 'Bytes relayed on WebSocket connections after the upgrade, by route and direction (to_upstream|to_client).',
    labelNames: ['route', 'direction'] as const,
    registers,
  });
  return {
    attempt(route, result) {
      attempts.labels({ route: label(route), result }).inc();
    },
    opened(id) {
      const route = label(id);
      const gauge = open.labels({ route });
      const up = bytes.labels({ route, direction: 'to_upstream' });
      const down = bytes.labels({ route, direction: 'to_client' });
      gauge.inc();
      let done = false;
      return {
        toUpstream: (n) => up.inc(n),
        toClient: (n) => down.inc(n),
        closed() {
          if (done) return;
          done = true;
          gauge.dec();
        },
      };
    },
    configure(routeIds) {
      for (const route of routeIds) {
        open.labels({ route }).set(0);
        for (const result of WEBSOCKET_RESULTS) attempts.labels({ route, result }).inc(0);
        for (const direction of ['to_upstream', 'to_client']) bytes.labels({ route, direction }).inc(0);
      }
    },
  };
}
