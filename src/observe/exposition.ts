/**
 * /metrics content negotiation: the Prometheus text format (0.0.4) or
 * OpenMetrics 1.0 (`application/openmetrics-text`), whichever the scraper's
 * `Accept` prefers. Prometheus itself asks for OpenMetrics first.
 *
 * prom-client renders OpenMetrics only from a registry whose content type is
 * set to it, and doing so renames the registry's counters in place (it strips
 * `_total` from `metric.name`), which would break every later text-format
 * scrape of the same registry. So OpenMetrics is rendered from a snapshot:
 * the registry's values (`getMetricsAsJSON`) wrapped in throwaway metric
 * objects registered into a fresh OpenMetrics registry. prom-client's own
 * formatter writes it; nothing live is touched.
 *
 * Exemplars: a value that carries `exemplar: { labelSet, value, timestamp }`
 * keeps it in the snapshot and is written with it in OpenMetrics
 * (prom-client's format: `# {trace_id="…"} value timestamp`). The request
 * histogram's buckets carry the trace id of the latest sampled request that
 * fell into them (src/observe/series.ts); the text format never prints
 * exemplars (prom-client's formatter writes them for OpenMetrics only).
 * Through a cluster primary (src/cluster/aggregate.ts) exemplars are not
 * kept: prom-client's aggregation sums values and drops them.
 */

import { Registry, type MetricObjectWithValues, type MetricValue, type OpenMetricsContentType } from 'prom-client';

export type ExpositionFormat = 'text' | 'openmetrics';

/** The text format's media type (the default, and what an Accept without a usable preference gets). */
export const TEXT_CONTENT_TYPE = Registry.PROMETHEUS_CONTENT_TYPE;
/** OpenMetrics 1.0.0. */
export const OPENMETRICS_CONTENT_TYPE = Registry.OPENMETRICS_CONTENT_TYPE;

/**
 * The format `accept` prefers (RFC 9110 §12.5.1 q-values). OpenMetrics only
 * when it is named explicitly (version absent, 1.0.0 or 0.0.1) with a q at
 * least that of the text format (`text/plain`, `text/*`, `*\/*`); no header,
 * or anything unparseable, is the text format.
 */
export function negotiateExposition(accept: string | undefined): ExpositionFormat {
  if (accept === undefined || accept === '') return 'text';
  let om = 0;
  let text = 0;
  for (const range of accept.split(',')) {
    const [typePart, ...params] = range.split(';');
    const type = typePart!.trim().toLowerCase();
    let q = 1;
    let version: string | undefined;
    for (const p of params) {
      const eq = p.indexOf('=');
      if (eq === -1) continue;
      const key = p.slice(0, eq).trim().toLowerCase();
      const value = p.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1');
      if (key === 'q') {
        const n = Number(value);
        q = /^(0(\.\d{0,3})?|1(\.0{0,3})?)$/.test(value) && Number.isFinite(n) ? n : 0;
      } else if (key === 'version') version = value;
    }
    if (type === 'application/openmetrics-text') {
      if (version === undefined || version === '1.0.0' || version === '0.0.1') om = Math.max(om, q);
    } else if (type === 'text/plain' || type === 'text/*' || type === '*/*') {
      if (type !== 'text/plain' || version === undefined || version === '0.0.4') text = Math.max(text, q);
    }
  }
  return om > 0 && om >= text ? 'openmetrics' : 'text';
}

/** The exposition of `registry` in `format`, and its Content-Type. */
export async function renderExposition(registry: Registry, format: ExpositionFormat): Promise<{ contentType: string; body: string }> {
  if (format === 'text') return { contentType: registry.contentType, body: await registry.metrics() };
  const snapshot = new Registry<OpenMetricsContentType>();
  snapshot.setContentType(OPENMETRICS_CONTENT_TYPE);
  for (const metric of await registry.getMetricsAsJSON()) snapshot.registerMetric(frozen(metric) as never);
  return { contentType: OPENMETRICS_CONTENT_TYPE, body: await snapshot.metrics() };
}

/** A stand-in metric with fixed values: all prom-client's formatter reads (`name`, `type`, `get()`). */
function frozen(metric: MetricObjectWithValues<MetricValue<string>>): { name: string; type: string; help: string; get(): Promise<unknown> } {
  const stub = {
    name: metric.name,
    type: String(metric.type),
    help: metric.help,
    // The formatter may rename `stub.name` (counters lose `_total`) before it calls get().
    get: async () => ({ ...metric, name: stub.name }),
  };
  return stub;
}
