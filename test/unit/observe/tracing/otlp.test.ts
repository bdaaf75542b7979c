/**
 * The OTLP/HTTP JSON exporter against a real receiver on 127.0.0.1: request
 * shape per the OTLP spec, batching, the bounded queue, failures and shutdown.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, it } from 'node:test';
import { createOtlpExporter, tracesUrl, type SpanData, type SpanDropReason, type SpanExporter } from '../../../../src/observe/tracing/otlp.ts';

interface Received {
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: { resourceSpans: { resource: { attributes: unknown[] }; scopeSpans: { scope: unknown; spans: Record<string, unknown>[] }[] }[] };
}

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

async function collector(status = 200): Promise<{ url: string; received: Received[]; setStatus(s: number): void }> {
  const received: Received[] = [];
  let current = status;
  const server: Server = createServer((req, res) => {
    let text = '';
    req.setEncoding('utf8').on('data', (c: string) => (text += c));
    req.on('end', () => {
      received.push({ path: req.url ?? '', headers: req.headers, body: JSON.parse(text) as Received['body'] });
      res.writeHead(current, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanup.push(() => new Promise((r) => server.close(() => r())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, received, setStatus: (s) => (current = s) };
}

function exporter(endpoint: string, extra: Partial<Parameters<typeof createOtlpExporter>[0]> = {}) {
  const counts = { exported: 0, dropped: { queue_full: 0, export_failed: 0, shutdown: 0 } as Record<SpanDropReason, number> };
  const e: SpanExporter = createOtlpExporter(
    { endpoint, headers: { 'x-api-key': 'k' }, timeout_ms: 2000, max_queue_size: 100, max_export_batch_size: 10, schedule_delay_ms: 3_600_000, service_name: 'regate-test', ...extra },
    { exported: (n) => (counts.exported += n), dropped: (r, n) => (counts.dropped[r] += n) },
    { warn: () => {} },
  );
  cleanup.push(() => e.close());
  return { e, counts };
}

function span(n: number, extra: Partial<SpanData> = {}): SpanData {
  return {
    traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
    spanId: n.toString(16).padStart(16, '0'),
    name: `GET /r${n}`,
    kind: 2,
    startNs: 1_764_000_000_123_456_789n,
    endNs: 1_764_000_000_223_456_789n,
    attributes: { 'http.response.status_code': 200, 'regate.decision': 'allow', ok: true, ratio: 0.5 },
    ...extra,
  };
}

describe('OTLP/HTTP JSON exporter', () => {
  it('POSTs an ExportTraceServiceRequest to <endpoint>/v1/traces in OTLP’s JSON mapping', async () => {
    const c = await collector();
    const { e, counts } = exporter(`${c.url}/`);
    e.export([span(1, { parentSpanId: '00f067aa0ba902b7', traceState: 'rojo=1' }), span(2, { kind: 3, error: 'upstream_timeout' })]);
    await e.flush();
    assert.equal(c.received.length, 1);
    const { path, headers, body } = c.received[0]!;
    assert.equal(path, '/v1/traces');
    assert.equal(headers['content-type'], 'application/json');
    assert.equal(headers['x-api-key'], 'k');
    const rs = body.resourceSpans[0]!;
    assert.deepEqual(rs.resource.attributes[0], { key: 'service.name', value: { stringValue: 'regate-test' } });
    assert.equal((rs.scopeSpans[0]!.scope as { name: string }).name, 'regate');
    const [a, b] = rs.scopeSpans[0]!.spans;
    assert.deepEqual(a, {
      traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
      spanId: '0000000000000001',
      parentSpanId: '00f067aa0ba902b7',
      traceState: 'rojo=1',
      name: 'GET /r1',
      kind: 2,
      // 64-bit integers are decimal strings in OTLP JSON, exact to the nanosecond.
      startTimeUnixNano: '1764000000123456789',
      endTimeUnixNano: '1764000000223456789',
      attributes: [
        { key: 'http.response.status_code', value: { intValue: '200' } },
        { key: 'regate.decision', value: { stringValue: 'allow' } },
        { key: 'ok', value: { boolValue: true } },
        { key: 'ratio', value: { doubleValue: 0.5 } },
      ],
      status: {},
    });
    assert.equal(b!.kind, 3);
    assert.deepEqual(b!.status, { code: 2, message: 'upstream_timeout' });
    assert.equal(counts.exported, 2);
    assert.equal(tracesUrl('http://c:4318'), 'http://c:4318/v1/traces');
  });

  it('exports a full batch at once and splits the queue into batches of at most max_export_batch_size', async () => {
    const c = await collector();
    const { e, counts } = exporter(c.url);
    for (let i = 0; i < 25; i++) e.export([span(i)]);
    await e.flush();
    assert.deepEqual(c.received.map((r) => r.body.resourceSpans[0]!.scopeSpans[0]!.spans.length), [10, 10, 5]);
    assert.equal(counts.exported, 25);
  });

  it('exports on the schedule without a flush, also after ticks that found nothing to export', async () => {
    const c = await collector();
    const { e } = exporter(c.url, { schedule_delay_ms: 50 });
    // Several empty ticks first (a regression: an empty drain once wedged the loop for good).
    await new Promise((r) => setTimeout(r, 300));
    e.export([span(1)]);
    for (let i = 0; i < 200 && c.received.length === 0; i++) await new Promise((r) => setTimeout(r, 25));
    assert.equal(c.received.length, 1);
  });

  it('bounds the queue: spans that do not fit are dropped and counted, the request side never waits', async () => {
    const c = await collector();
    const { e, counts } = exporter(c.url, { max_queue_size: 5, max_export_batch_size: 100 });
    e.export([span(1), span(2), span(3)]);
    e.export([span(4), span(5), span(6), span(7)]);
    assert.equal(counts.dropped.queue_full, 2);
    await e.flush();
    assert.equal(counts.exported, 5);
  });

  it('drops and counts a batch the collector refuses or that cannot be sent', async () => {
    const c = await collector(503);
    const { e, counts } = exporter(c.url);
    e.export([span(1), span(2)]);
    await e.flush();
    assert.equal(counts.dropped.export_failed, 2);
    const down = exporter('http://127.0.0.1:9');
    down.e.export([span(3)]);
    await down.e.flush();
    assert.equal(down.counts.dropped.export_failed, 1);
  });

  it('close() exports what is queued; spans after it are counted as dropped', async () => {
    const c = await collector();
    const { e, counts } = exporter(c.url);
    e.export([span(1)]);
    await e.close();
    assert.equal(c.received.length, 1);
    e.export([span(2)]);
    assert.equal(counts.dropped.shutdown, 1);
  });
});
