/**
 * Issue 14 item 5: with `Accept: application/openmetrics-text`, a real regate
 * process with tracing on answers OpenMetrics whose request-duration
 * histogram carries the trace ids of sampled requests as exemplars
 * (`# {trace_id="…"} value timestamp`), parsed strictly
 * (test/helpers/metrics.ts `parseOpenMetrics`); the text format carries none,
 * and an unsampled request adds none. The OTLP receiver is a loopback server
 * that acknowledges every export: exemplars do not depend on it.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { send } from '../helpers/http.ts';
import { parseExposition, parseOpenMetrics, type Sample } from '../helpers/metrics.ts';
import { buildBundle } from '../helpers/opa.ts';
import { startRegate, writeConfig, type RegateProcess } from '../helpers/regate-process.ts';
import { startUpstreamServer, type TestUpstream } from '../helpers/upstream-server.ts';

let upstream: TestUpstream;
let otlp: Server;
let regate: RegateProcess;
let exports = 0;

const SAMPLED = '4bf92f3577b34da6a3ce929d0e0e4736';
const UNSAMPLED = '0af7651916cd43dd8448eb211c80319c';

before(async () => {
  upstream = await startUpstreamServer();
  otlp = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      exports++;
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => otlp.listen(0, '127.0.0.1', resolve));
  const bundle = await buildBundle({ files: { 'ex.rego': 'package ex\n\ndecision := {"allow": true}\n' }, entrypoints: ['ex/decision'] });
  regate = await startRegate(
    writeConfig({
      listen: { proxy: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 } },
      upstreams: { app: { url: upstream.url } },
      policy: { bundle, default_entrypoint: 'ex/decision' },
      decision_log: { enabled: false },
      tracing: { otlp: { endpoint: `http://127.0.0.1:${(otlp.address() as AddressInfo).port}`, schedule_delay_ms: 100 }, trust_incoming_traceparent: true },
      routes: [{ id: 'models', auth: 'none', match: { methods: ['GET'], path: '/v1/models/{model}' }, upstream: 'app' }],
    }),
  );
});

after(async () => {
  await regate?.stop();
  await upstream?.close();
  await new Promise((resolve) => otlp?.close(resolve));
});

const scrape = (accept?: string) => send(`${regate.adminUrl}/metrics`, accept === undefined ? {} : { headers: { accept } });

describe('OpenMetrics exemplars from a real regate process with tracing on', () => {
  it('the sampled request’s trace id is an exemplar on its request-duration bucket; the unsampled one adds none', async () => {
    const sampled = await send(`${regate.proxyUrl}/v1/models/a`, { headers: { traceparent: `00-${SAMPLED}-00f067aa0ba902b7-01` } });
    assert.equal(sampled.status, 200);
    const unsampled = await send(`${regate.proxyUrl}/v1/models/b`, { headers: { traceparent: `00-${UNSAMPLED}-00f067aa0ba902b7-00` } });
    assert.equal(unsampled.status, 200);

    const res = await scrape('application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5');
    assert.equal(res.status, 200);
    assert.match(String(res.headers['content-type']), /^application\/openmetrics-text; version=1\.0\.0/);
    const om = parseOpenMetrics(res.text);
    const count = om.samples.find((s) => s.name === 'regate_request_duration_seconds_count' && s.labels.route === 'models');
    assert.equal(count?.value, 2);

    const exemplars = om.samples.filter((s): s is Sample & { exemplar: NonNullable<Sample['exemplar']> } => s.exemplar !== undefined);
    assert.equal(exemplars.length, 1, `one exemplar: ${JSON.stringify(exemplars)}`);
    const [bucket] = exemplars;
    assert.equal(bucket!.name, 'regate_request_duration_seconds_bucket');
    assert.equal(bucket!.labels.route, 'models');
    assert.deepEqual(bucket!.exemplar.labels, { trace_id: SAMPLED });
    // Within the bucket (parseOpenMetrics checks ≤ le) and above the one below it.
    const bounds = om.samples.filter((s) => s.name === 'regate_request_duration_seconds_bucket' && s.labels.route === 'models').map((s) => Number(s.labels.le));
    const below = bounds[bounds.indexOf(Number(bucket!.labels.le)) - 1] ?? 0;
    assert.ok(bucket!.exemplar.value > below && bucket!.exemplar.value > 0, `exemplar ${bucket!.exemplar.value} in (${below}, ${bucket!.labels.le}]`);
    const ts = bucket!.exemplar.timestamp!;
    assert.ok(Math.abs(ts - Date.now() / 1000) < 60, `timestamp ${ts} is seconds since the epoch, now`);
  });

  it('the text format stays exemplar-free and valid', async () => {
    const res = await scrape();
    assert.match(String(res.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    assert.doesNotMatch(res.text, /trace_id/);
    parseExposition(res.text);
  });

  it('spans were exported meanwhile (tracing really is on)', async () => {
    for (let i = 0; i < 50 && exports === 0; i++) await new Promise((r) => setTimeout(r, 100));
    assert.ok(exports > 0);
  });
});
