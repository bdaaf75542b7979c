/**
 * OpenTelemetry spans for each request: one SERVER span for the request, with
 * child spans for the pipeline stages it reached — `authn`, `attributes`,
 * `policy` (INTERNAL) and `upstream` (CLIENT) — named and attributed after the
 * HTTP semantic conventions (`http.request.method`, `url.path`, `http.route`,
 * `http.response.status_code`, `client.address`, `server.address`) plus
 * `regate.*` (route, decision, reason, decision id, upstream status).
 *
 * Propagation is W3C Trace Context. A valid incoming `traceparent` makes the
 * request span its child and decides sampling (parent-based, as
 * OpenTelemetry's default sampler) when `trust_incoming_traceparent` is on;
 * off, every request starts a new trace sampled by `sample_ratio`, so a
 * client can neither attach regate's spans to a trace of its choosing nor
 * force sampling. Either way the upstream gets regate's own `traceparent`
 * (its `upstream` span as parent) and the client's trace fields are removed
 * (src/upstream/headers.ts).
 *
 * Off (no `tracing` in the config) there is no tracer at all: the pipeline
 * checks whether the request has a trace at each stage boundary (src/pipeline/check.ts, handle.ts) and does nothing else.
 * Unsampled requests propagate a context but record nothing.
 */

import type { IncomingHttpHeaders } from 'node:http';
import type { TracingConfig } from '../../config/types.ts';
import type { RequestOutcome } from '../record.ts';
import type { SpanData, SpanExporter } from './otlp.ts';
import { formatTraceParent, newSpanId, newTraceId, parseTraceParent, parseTraceState, sampledByRatio } from './trace-context.ts';

/** The pipeline stages that get a child span. */
export type Stage = 'authn' | 'attributes' | 'policy' | 'upstream';

/** What the request span needs besides the outcome. */
export interface TraceContextInfo {
  /** The matched route's path template (`http.route`). */
  readonly route?: string;
  /** The Host the client addressed. */
  readonly host: string;
  /** The upstream origin the request was forwarded to. */
  readonly upstream?: URL;
}

export interface Tracer {
  /** Begin the trace of one request from its headers. */
  start(headers: IncomingHttpHeaders): RequestTrace;
}

export function createTracer(config: TracingConfig, exporter: SpanExporter): Tracer {
  const trust = config.trust_incoming_traceparent;
  const ratio = config.sample_ratio;
  return {
    start(headers) {
      const parent = trust ? parseTraceParent(headers.traceparent) : null;
      if (parent !== null) return new RequestTrace(exporter, parent.traceId, parent.spanId, parent.sampled, parseTraceState(headers.tracestate));
      const traceId = newTraceId();
      return new RequestTrace(exporter, traceId, undefined, sampledByRatio(traceId, ratio), undefined);
    },
  };
}

interface StageSpan {
  readonly stage: Stage;
  readonly spanId: string;
  readonly startHr: bigint;
  endHr: bigint | undefined;
}

const STAGE_KIND: Readonly<Record<Stage, 1 | 3>> = { authn: 1, attributes: 1, policy: 1, upstream: 3 };

/** One request's trace: ids, stage timings, and its spans once finished. */
export class RequestTrace {
  readonly traceId: string;
  /** The request (SERVER) span. */
  readonly spanId: string = newSpanId();
  readonly parentSpanId: string | undefined;
  readonly sampled: boolean;
  readonly traceState: string | undefined;
  readonly #exporter: SpanExporter;
  readonly #startHr = process.hrtime.bigint();
  /** Wall clock at the start, epoch ns; stage times are offsets from `#startHr` (monotonic). */
  readonly #startNs = BigInt(Math.round((performance.timeOrigin + performance.now()) * 1000)) * 1000n;
  #stages: StageSpan[] | null = null;
  #open: StageSpan | null = null;
  #upstreamSpanId: string | undefined;

  constructor(exporter: SpanExporter, traceId: string, parentSpanId: string | undefined, sampled: boolean, traceState: string | undefined) {
    this.#exporter = exporter;
    this.traceId = traceId;
    this.parentSpanId = parentSpanId;
    this.sampled = sampled;
    this.traceState = traceState;
  }

  /** A stage starts (and the one still open, if any, ends). */
  begin(stage: Stage): void {
    const now = process.hrtime.bigint();
    if (this.#open !== null) this.#open.endHr = now;
    const spanId = stage === 'upstream' ? this.#upstreamSpan() : newSpanId();
    this.#open = { stage, spanId, startHr: now, endHr: undefined };
    (this.#stages ??= []).push(this.#open);
  }

  /** The open stage ends. */
  end(): void {
    if (this.#open === null) return;
    this.#open.endHr = process.hrtime.bigint();
    this.#open = null;
  }

  /** The `traceparent` (and `tracestate`) the upstream request carries: the `upstream` span as parent. */
  propagation(): { readonly traceparent: string; readonly tracestate?: string } {
    const traceparent = formatTraceParent(this.traceId, this.#upstreamSpan(), this.sampled);
    return this.traceState !== undefined ? { traceparent, tracestate: this.traceState } : { traceparent };
  }

  #upstreamSpan(): string {
    return (this.#upstreamSpanId ??= newSpanId());
  }

  /** The request is over: build its spans and queue them for export (sampled traces only). Never throws. */
  finish(o: RequestOutcome, info: TraceContextInfo): void {
    if (!this.sampled) return;
    try {
      this.#exporter.export(this.#spans(o, info));
    } catch {
      // Diagnostics only: a span that cannot be built is not worth a failed request.
    }
  }

  #spans(o: RequestOutcome, info: TraceContextInfo): SpanData[] {
    const endHr = process.hrtime.bigint();
    const at = (hr: bigint): bigint => this.#startNs + (hr - this.#startHr);
    const failed = o.status >= 500 ? o.reason : undefined;
    const attributes: Record<string, string | number | boolean> = {
      'http.request.method': o.method,
      'url.path': o.path,
      'url.scheme': 'http',
      'http.response.status_code': o.status,
      'regate.decision_id': o.decisionId,
      'regate.decision': o.decision,
      'regate.reason': o.reason,
      'regate.authn.outcome': o.authn.outcome,
    };
    if (o.remoteAddr) attributes['client.address'] = o.remoteAddr;
    if (info.host !== '') attributes['server.address'] = info.host;
    if (info.route !== undefined) attributes['http.route'] = info.route;
    if (o.routeId !== null) attributes['regate.route_id'] = o.routeId;
    if (o.upstreamStatus !== undefined) attributes['regate.upstream_status'] = o.upstreamStatus;
    if (failed !== undefined) attributes['error.type'] = failed;
    const spans: SpanData[] = [
      {
        traceId: this.traceId,
        spanId: this.spanId,
        ...(this.parentSpanId !== undefined ? { parentSpanId: this.parentSpanId } : {}),
        ...(this.traceState !== undefined ? { traceState: this.traceState } : {}),
        // HTTP semconv: `{method} {http.route}`, or the method alone when no route matched.
        name: info.route !== undefined ? `${o.method} ${info.route}` : o.method,
        kind: 2,
        startNs: this.#startNs,
        endNs: at(endHr),
        attributes,
        ...(failed !== undefined ? { error: failed } : {}),
      },
    ];
    for (const s of this.#stages ?? []) {
      // The stage still open when the request ended is where it stopped.
      const stopped = s.endHr === undefined;
      spans.push({
        traceId: this.traceId,
        spanId: s.spanId,
        parentSpanId: this.spanId,
        name: s.stage,
        kind: STAGE_KIND[s.stage],
        startNs: at(s.startHr),
        endNs: at(s.endHr ?? endHr),
        attributes: stageAttributes(s.stage, o, info, stopped),
        ...(stopped && failed !== undefined ? { error: failed } : {}),
      });
    }
    return spans;
  }
}

function stageAttributes(stage: Stage, o: RequestOutcome, info: TraceContextInfo, stopped: boolean): Record<string, string | number | boolean> {
  const a: Record<string, string | number | boolean> = {};
  if (stopped) a['regate.reason'] = o.reason;
  switch (stage) {
    case 'authn':
      a['regate.authn.outcome'] = o.authn.outcome;
      if (o.authn.issuer !== undefined) a['regate.authn.issuer'] = o.authn.issuer;
      if (o.authn.reason !== undefined) a['regate.authn.reason'] = o.authn.reason;
      break;
    case 'attributes':
      if (o.resource !== undefined) a['regate.resource'] = o.resource;
      if (o.body !== undefined) a['regate.body'] = o.body;
      break;
    case 'policy':
      if (o.entrypoint !== null) a['regate.policy.entrypoint'] = o.entrypoint;
      a['regate.decision'] = o.dryRun?.decision ?? o.decision;
      if (o.dryRun !== undefined) a['regate.dry_run'] = true;
      break;
    case 'upstream':
      a['http.request.method'] = o.method;
      a['url.path'] = o.path;
      if (info.upstream !== undefined) {
        a['server.address'] = info.upstream.hostname;
        a['server.port'] = Number(info.upstream.port || (info.upstream.protocol === 'https:' ? 443 : 80));
      }
      if (o.upstreamStatus !== undefined) a['http.response.status_code'] = o.upstreamStatus;
      break;
  }
  return a;
}
