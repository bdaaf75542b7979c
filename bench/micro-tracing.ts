/**
 * Micro-benchmark of tracing's per-request cost: what src/pipeline/handle.ts
 * does for tracing around one forwarded request — start the trace from the
 * request headers, four stage boundaries, the upstream `traceparent`, and
 * finish (build five spans and queue them) — plus the export-side encoding of
 * those spans to OTLP JSON, which runs off the request path but costs the
 * same CPU. Compared with tracing off (the `ex.trace === null` checks only)
 * and on but unsampled (context propagated, nothing recorded).
 *
 * Per-request median / p99 in µs after a warm-up; every iteration timed alone.
 *
 *   node bench/micro-tracing.ts [--iterations N] [--json]
 */
import { parseArgs } from 'node:util';
import type { TracingConfig } from '../src/config/types.ts';
import type { RequestOutcome } from '../src/observe/record.ts';
import { encodeSpan, type SpanData, type SpanExporter } from '../src/observe/tracing/otlp.ts';
import { createTracer, type RequestTrace } from '../src/observe/tracing/tracer.ts';

const { values } = parseArgs({ options: { iterations: { type: 'string', default: '100000' }, json: { type: 'boolean', default: false } } });
const ITERATIONS = Number(values.iterations);
const WARMUP = Math.min(20_000, ITERATIONS);

let sink = 0;
/** Queue-and-encode: the exporter's CPU work per span, without the network. */
const exporter: SpanExporter = {
  export(spans: readonly SpanData[]) {
    for (const s of spans) sink += JSON.stringify(encodeSpan(s)).length;
  },
  flush: async () => {},
  close: async () => {},
};
const config = (ratio: number): TracingConfig => ({
  otlp: { endpoint: 'http://127.0.0.1:4318', headers: {}, timeout_ms: 10_000, max_queue_size: 2048, max_export_batch_size: 512, schedule_delay_ms: 5000 },
  sample_ratio: ratio,
  trust_incoming_traceparent: true,
  service_name: 'regate',
});

const headers = { host: 'api.example.com', authorization: 'Bearer x', 'user-agent': 'bench' };
const outcome: RequestOutcome = {
  decisionId: '6f1c1d7e-8a5b-4b53-9d0e-1f3f0b8a2c11',
  startedAtNs: 0n,
  durationNs: 1_000_000,
  routeId: 'predict',
  entrypoint: 'regate/authz/decision',
  input: null,
  result: { allow: true },
  decision: 'allow',
  status: 200,
  reason: 'allowed',
  authn: { outcome: 'verified', issuer: 'quickstart' },
  scopes: [],
  upstreamStatus: 200,
  method: 'POST',
  path: '/v1/models/sentiment/predict',
  remoteAddr: '127.0.0.1',
};
const info = { route: '/v1/models/{model}/predict', host: 'api.example.com', upstream: new URL('http://127.0.0.1:8000') };

/** The tracing calls of one request, as handle.ts makes them. */
function request(trace: RequestTrace | null): void {
  trace?.begin('authn');
  trace?.end();
  trace?.begin('policy');
  trace?.end();
  trace?.begin('upstream');
  if (trace !== null) sink += trace.propagation().traceparent.length;
  trace?.end();
  if (trace?.sampled === true) trace.finish(outcome, info);
}

function measure(start: () => RequestTrace | null): { median: number; p99: number } {
  for (let i = 0; i < WARMUP; i++) request(start());
  const times = new Float64Array(ITERATIONS);
  for (let i = 0; i < ITERATIONS; i++) {
    const t0 = process.hrtime.bigint();
    request(start());
    times[i] = Number(process.hrtime.bigint() - t0) / 1000;
  }
  times.sort();
  return { median: times[Math.floor(ITERATIONS / 2)]!, p99: times[Math.floor(ITERATIONS * 0.99)]! };
}

const sampled = createTracer(config(1), exporter);
const unsampled = createTracer(config(0), exporter);
const results = {
  off: measure(() => null),
  unsampled: measure(() => unsampled.start(headers)),
  sampled: measure(() => sampled.start(headers)),
  sampled_with_parent: measure(() => sampled.start({ ...headers, traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' })),
};
if (values.json) console.log(JSON.stringify({ iterations: ITERATIONS, results }));
else {
  console.log(`tracing cost per request (${ITERATIONS} iterations, µs):`);
  for (const [name, r] of Object.entries(results)) console.log(`  ${name.padEnd(20)} median ${r.median.toFixed(2).padStart(6)}   p99 ${r.p99.toFixed(2).padStart(6)}`);
}
if (sink === -1) console.log('unreachable');
