/**
 * decision_log.service through a real regate process: the events a real
 * receiver gets are the records regate writes to stdout (without the console
 * fields), in OPA's protocol; a failing service delays them without touching
 * the requests; SIGTERM uploads what is left; the metrics say what happened.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startDecisionLogReceiver, type DecisionLogReceiver } from '../helpers/decision-log-receiver.ts';
import { send } from '../helpers/http.ts';
import { parseExposition, sampleValue } from '../helpers/metrics.ts';
import { buildBundle } from '../helpers/opa.ts';
import { startRegate, writeConfig, type RegateProcess } from '../helpers/regate-process.ts';
import { startUpstreamServer, type TestUpstream } from '../helpers/upstream-server.ts';

const POLICY = `
package up

decision := {"allow": input.request.path == "/ok"}
`;

let upstream: TestUpstream;
let rx: DecisionLogReceiver;
let bundle: string;
const started: RegateProcess[] = [];

before(async () => {
  upstream = await startUpstreamServer();
  rx = await startDecisionLogReceiver();
  bundle = await buildBundle({ files: { 'up.rego': POLICY }, entrypoints: ['up/decision'] });
});

after(async () => {
  for (const r of started) await r.stop();
  await upstream?.close();
  await rx?.close();
});

async function start(service: Record<string, unknown>): Promise<RegateProcess> {
  const r = await startRegate(
    writeConfig({
      listen: { proxy: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 } },
      upstreams: { app: { url: upstream.url } },
      policy: { bundle, default_entrypoint: 'up/decision' },
      decision_log: { labels: { env: 'test' }, service: { url: rx.url, min_delay_seconds: 1, max_delay_seconds: 1, ...service } },
      routes: [{ id: 'r', auth: 'none', match: { methods: ['GET'], path: '/{rest*}' }, upstream: 'app' }],
    }),
  );
  started.push(r);
  return r;
}

/** A stdout record as the service must receive it: without `level`, `time`, `type` and `msg`. */
function asUploaded(record: Record<string, unknown>): Record<string, unknown> {
  const { level: _l, time: _t, type: _ty, msg: _m, ...event } = record;
  return event;
}

const metric = async (r: RegateProcess, name: string, labels: Record<string, string> = {}): Promise<number | undefined> =>
  sampleValue(parseExposition((await send(`${r.adminUrl}/metrics`)).text), name, labels);

describe('decision-log upload from a real regate process', () => {
  it('uploads exactly the records it logs, in OPA’s protocol; a 503 delays them, requests are unaffected; SIGTERM uploads the rest', async () => {
    const r = await start({});
    rx.reply({ status: 503 });
    assert.equal((await send(`${r.proxyUrl}/ok`)).status, 200);
    assert.equal((await send(`${r.proxyUrl}/no`)).status, 403);
    // The first upload (after ~1 s) is refused; the retry delivers both, oldest first.
    await rx.waitFor(() => rx.accepted().length >= 2);
    assert.equal(rx.uploads[0]?.status, 503);
    for (const up of rx.uploads) assert.deepEqual(up.violations, []);
    await r.waitForDecision((d) => d.custom !== undefined && (d.custom as { http_path?: string }).http_path === '/no');
    assert.deepEqual(rx.accepted(), r.decisions.map(asUploaded));
    const [first] = rx.accepted();
    assert.equal((first!.labels as Record<string, string>).env, 'test');
    assert.equal(first!.path, 'up/decision');

    assert.equal(await metric(r, 'regate_decision_log_upload_requests_total', { result: 'rejected' }), 1);
    assert.ok((await metric(r, 'regate_decision_log_upload_requests_total', { result: 'success' }))! >= 1);
    assert.equal(await metric(r, 'regate_decision_log_upload_events_total'), 2);
    assert.equal(await metric(r, 'regate_decision_log_upload_buffer_bytes'), 0);
    assert.equal(await metric(r, 'regate_decision_log_upload_dropped_events_total', { reason: 'buffer_full' }), 0);

    // Records written just before SIGTERM are uploaded by the last round, not lost.
    const before = rx.accepted().length;
    assert.equal((await send(`${r.proxyUrl}/ok?last=1`)).status, 200);
    assert.equal(await r.stop(), 0);
    const last = rx.accepted().slice(before);
    assert.deepEqual(last.map((e) => (e.custom as { http_path: string }).http_path), ['/ok']);
    assert.deepEqual(last, r.decisions.slice(-1).map(asUploaded));
  });

  it('refuses a config whose delays are out of order, naming the key', async () => {
    const { runCli } = await import('../helpers/regate-process.ts');
    const file = writeConfig({
      upstreams: { app: { url: upstream.url } },
      policy: { bundle, default_entrypoint: 'up/decision' },
      decision_log: { service: { url: rx.url, min_delay_seconds: 700 } },
      routes: [{ id: 'r', auth: 'none', match: { methods: ['GET'], path: '/{rest*}' }, upstream: 'app' }],
    });
    const res = runCli(['check', '--config', file]);
    assert.notEqual(res.status, 0);
    assert.match(res.stderr + res.stdout, /\/decision_log\/service\/min_delay_seconds: min_delay_seconds \(700\) is greater than max_delay_seconds \(600\), whose default is 600/s);
  });
});
