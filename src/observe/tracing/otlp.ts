/**
 * A small OTLP/HTTP span exporter, JSON encoding
 * (https://opentelemetry.io/docs/specs/otlp/#otlphttp): spans are `POST`ed to
 * `<endpoint>/v1/traces` as an `ExportTraceServiceRequest` in OTLP's JSON
 * mapping — trace and span ids as hex strings, 64-bit integers as decimal
 * strings, enums as integers — with `Content-Type: application/json`.
 *
 * Batching follows OpenTelemetry's BatchSpanProcessor and its defaults
 * (OTEL_BSP_*): a bounded queue (a span that does not fit is dropped and
 * counted, the request never waits), an export every `schedule_delay_ms` or as
 * soon as a full batch is queued, one export in flight at a time, each bounded
 * by `timeout_ms`. A failed export is dropped and counted, as the
 * BatchSpanProcessor does: spans are diagnostics, not records (the decision
 * log is the record).
 */

import { request } from '../../upstream/undici.ts';
import { VERSION } from '../../version.ts';

/** One finished span. */
export interface SpanData {
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId?: string;
  readonly traceState?: string;
  readonly name: string;
  /** OTLP `SpanKind`: 1 internal, 2 server, 3 client. */
  readonly kind: 1 | 2 | 3;
  /** Epoch nanoseconds. */
  readonly startNs: bigint;
  readonly endNs: bigint;
  readonly attributes: Readonly<Record<string, string | number | boolean>>;
  /** Set → OTLP status ERROR with this message. */
  readonly error?: string;
}

/** Values of `regate_tracing_spans_dropped_total{reason}`. */
export const SPAN_DROP_REASONS = ['queue_full', 'export_failed', 'shutdown'] as const;
export type SpanDropReason = (typeof SPAN_DROP_REASONS)[number];

/** What the exporter reports (metrics). */
export interface ExportObserver {
  exported(spans: number): void;
  dropped(reason: SpanDropReason, spans: number): void;
}

export interface OtlpExporterConfig {
  /** Base URL; `/v1/traces` is appended (OTEL_EXPORTER_OTLP_ENDPOINT semantics). */
  readonly endpoint: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly timeout_ms: number;
  readonly max_queue_size: number;
  readonly max_export_batch_size: number;
  readonly schedule_delay_ms: number;
  /** `service.name` resource attribute. */
  readonly service_name: string;
}

export interface SpanExporter {
  /** Queue finished spans (one request's); never blocks, never throws. */
  export(spans: readonly SpanData[]): void;
  /** Export everything queued now; resolves when done (tests, shutdown). */
  flush(): Promise<void>;
  /** Flush (bounded by `timeout_ms`) and stop. */
  close(): Promise<void>;
}

/** `<endpoint>/v1/traces`, with exactly one slash. */
export function tracesUrl(endpoint: string): string {
  return `${endpoint.replace(/\/+$/, '')}/v1/traces`;
}

export function createOtlpExporter(config: OtlpExporterConfig, observer: ExportObserver, logger: { warn(obj: object, msg: string): void }): SpanExporter {
  const url = tracesUrl(config.endpoint);
  const resource = { attributes: [attr('service.name', config.service_name), attr('service.version', VERSION), attr('telemetry.sdk.name', 'regate'), attr('telemetry.sdk.language', 'nodejs')] };
  const scope = { name: 'regate', version: VERSION };
  let queue: SpanData[] = [];
  let inFlight: Promise<void> | null = null;
  let closed = false;
  let warned = false;
  const abort = new AbortController();
  const timer = setInterval(() => void drain(), config.schedule_delay_ms);
  timer.unref();

  async function send(batch: SpanData[]): Promise<void> {
    const body = JSON.stringify({ resourceSpans: [{ resource, scopeSpans: [{ scope, spans: batch.map(encodeSpan) }] }] });
    try {
      const signal = AbortSignal.any([abort.signal, AbortSignal.timeout(config.timeout_ms)]);
      const res = await request(url, {
        method: 'POST',
        headers: { ...config.headers, 'content-type': 'application/json', 'user-agent': `regate/${VERSION}` },
        body,
        signal,
        headersTimeout: config.timeout_ms,
        bodyTimeout: config.timeout_ms,
      });
      await res.body.dump({ signal, limit: 65_536 });
      if (res.statusCode < 200 || res.statusCode >= 300) throw new Error(`the collector answered ${res.statusCode}`);
      observer.exported(batch.length);
      warned = false;
    } catch (err) {
      observer.dropped('export_failed', batch.length);
      if (!warned) {
        // Once per outage: a collector down must not flood the operational log.
        warned = true;
        logger.warn({ err: err instanceof Error ? err.message : String(err), url }, 'span export failed; spans are being dropped');
      }
    }
  }

  async function exportAll(): Promise<void> {
    while (queue.length > 0) {
      const batch = queue.length <= config.max_export_batch_size ? queue : queue.slice(0, config.max_export_batch_size);
      queue = batch === queue ? [] : queue.slice(batch.length);
      await send(batch);
    }
  }

  /** Export batches until the queue is empty; one export at a time. */
  function drain(): Promise<void> {
    if (inFlight !== null) return inFlight;
    if (queue.length === 0) return Promise.resolve();
    // `.finally` runs on a later tick, after the assignment: an export that finished
    // synchronously could otherwise leave `inFlight` set forever and wedge the loop.
    inFlight = exportAll().finally(() => {
      inFlight = null;
    });
    return inFlight;
  }

  return {
    export(spans) {
      if (closed) {
        observer.dropped('shutdown', spans.length);
        return;
      }
      const room = config.max_queue_size - queue.length;
      if (room < spans.length) {
        if (room > 0) queue.push(...spans.slice(0, room));
        observer.dropped('queue_full', spans.length - Math.max(0, room));
      } else {
        queue.push(...spans);
      }
      if (queue.length >= config.max_export_batch_size && inFlight === null) void drain();
    },
    flush: () => drain(),
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(timer);
      const deadline = setTimeout(() => abort.abort(), config.timeout_ms);
      try {
        await inFlight;
        await drain();
      } finally {
        clearTimeout(deadline);
      }
      if (queue.length > 0) observer.dropped('shutdown', queue.length);
      queue = [];
    },
  };
}

type AnyValue = { stringValue: string } | { intValue: string } | { doubleValue: number } | { boolValue: boolean };

function attr(key: string, value: string | number | boolean): { key: string; value: AnyValue } {
  if (typeof value === 'string') return { key, value: { stringValue: value } };
  if (typeof value === 'boolean') return { key, value: { boolValue: value } };
  return { key, value: Number.isInteger(value) ? { intValue: String(value) } : { doubleValue: value } };
}

/** One span in OTLP's JSON mapping. */
export function encodeSpan(s: SpanData): Record<string, unknown> {
  const out: Record<string, unknown> = {
    traceId: s.traceId,
    spanId: s.spanId,
    name: s.name,
    kind: s.kind,
    startTimeUnixNano: String(s.startNs),
    endTimeUnixNano: String(s.endNs),
    attributes: Object.entries(s.attributes).map(([k, v]) => attr(k, v)),
    // STATUS_CODE_ERROR = 2; UNSET (0) otherwise: OK is for an explicit application verdict.
    status: s.error !== undefined ? { code: 2, message: s.error } : {},
  };
  if (s.parentSpanId !== undefined) out.parentSpanId = s.parentSpanId;
  if (s.traceState !== undefined) out.traceState = s.traceState;
  return out;
}
