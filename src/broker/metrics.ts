/**
 * The broker's metrics, registered once per registry (the process-wide
 * registry outlives runtime versions, so a reload reuses them):
 *
 * - `regate_broker_grants_total{result,reason}`: every token request, `result`
 *   `granted` / `refused` / `error` (5xx), `reason` `granted` or the refusal's.
 * - `regate_broker_grant_duration_seconds{result}`: body read to response.
 * - `regate_broker_upstream_tokens_total{result}`: `routes[].upstream_token`
 *   tokens, `minted` or `cached`.
 */

import type { Registry } from 'prom-client';
import { CounterFamily, HistogramFamily, type CounterSeries, type HistogramSeries } from '../observe/series.ts';

export type GrantResult = 'granted' | 'refused' | 'error';

export interface BrokerMetrics {
  grant(result: GrantResult, reason: string, seconds: number): void;
  upstreamToken(result: 'minted' | 'cached'): void;
}

const byRegistry = new WeakMap<Registry, BrokerMetrics>();

export function brokerMetrics(registry: Registry): BrokerMetrics {
  let m = byRegistry.get(registry);
  if (m === undefined) byRegistry.set(registry, (m = create(registry)));
  return m;
}

function create(registry: Registry): BrokerMetrics {
  const registers = [registry];
  const grants = new CounterFamily({
    name: 'regate_broker_grants_total',
    help: 'Token exchange requests (broker), by result (granted, refused: a 4xx/503 OAuth error, error: 500) and reason (granted, or the refusal reason).',
    labelNames: ['result', 'reason'],
    registers,
  });
  const duration = new HistogramFamily({
    name: 'regate_broker_grant_duration_seconds',
    help: 'Token exchange request duration (body read to response written), by result.',
    labelNames: ['result'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    registers,
  });
  const minted = new CounterFamily({
    name: 'regate_broker_upstream_tokens_total',
    help: 'Tokens for routes[].upstream_token, by result (minted: signed now, cached: reused).',
    labelNames: ['result'],
    registers,
  });
  const series = new Map<string, CounterSeries>();
  const durations = new Map<GrantResult, HistogramSeries>();
  for (const r of ['granted', 'refused', 'error'] as const) durations.set(r, duration.series({ result: r }));
  grants.series({ result: 'granted', reason: 'granted' });
  const mintedSeries = { minted: minted.series({ result: 'minted' }), cached: minted.series({ result: 'cached' }) };
  return {
    grant(result, reason, seconds) {
      const key = `${result}\u0000${reason}`;
      let s = series.get(key);
      // Reasons are regate's own stable strings (a bounded set): one series each.
      if (s === undefined) series.set(key, (s = grants.series({ result, reason })));
      s.inc();
      durations.get(result)!.observe(seconds);
    },
    upstreamToken(result) {
      mintedSeries[result].inc();
    },
  };
}
