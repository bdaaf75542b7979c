/**
 * Traces from a real regate process into a real Jaeger (all-in-one, in-memory
 * store, OTLP/HTTP receiver on loopback), read back through Jaeger's query
 * API: the request span and its stage children with their attributes, the W3C
 * traceparent continued (or not, when untrusted) and handed to the upstream
 * with regate's own span as parent, client trace fields stripped.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { send } from '../helpers/http.ts';
import { startJaeger, tag, type Jaeger, type JaegerSpan, type JaegerTrace } from '../helpers/jaeger.ts';
import { startJwksServer, type JwksServer } from '../helpers/jwks-server.ts';
import { parseExposition, sampleValue } from '../helpers/metrics.ts';
import { buildBundle } from '../helpers/opa.ts';
import { startRegate, writeConfig, type RegateProcess } from '../helpers/regate-process.ts';
import { baseClaims, generateTestKey, jwksOf, signToken, TEST_ISSUER, type TestKey } from '../helpers/tokens.ts';
import { startUpstreamServer, type TestUpstream } from '../helpers/upstream-server.ts';

const POLICY = `
package tr

decision := {"allow": allow}

default allow := false

allow if input.subject.authenticated

allow if input.route.id == "down"
`;

let jaeger: Jaeger;
let jwks: JwksServer;
let upstream: TestUpstream;
let bundle: string;
let key: TestKey;
let token: string;
const started: RegateProcess[] = [];

before(async () => {
  key = await generateTestKey('ES256');
  // One at a time: if Jaeger cannot start, after() still closes what did (nothing may keep the runner alive).
  jwks = await startJwksServer(jwksOf(key));
  upstream = await startUpstreamServer();
  jaeger = await startJaeger();
  token = await signToken(key, baseClaims({ aud: 'regate' }));
  bundle = await buildBundle({ files: { 'tr.rego': POLICY }, entrypoints: ['tr/decision'] });
});

after(async () => {
  for (const r of started) await r.stop();
  await upstream?.close();
  await jwks?.close();
  await jaeger?.stop();
});

async function start(tracing: Record<string, unknown>): Promise<RegateProcess> {
  const r = await startRegate(
    writeConfig({
      listen: { proxy: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 } },
      // `gone`: a port nothing listens on (the discard port), for the upstream-failure case.
      upstreams: { app: { url: upstream.url }, gone: { url: 'http://127.0.0.1:9' } },
      issuers: [{ id: 'idp', issuer: TEST_ISSUER, jwks_url: jwks.url, audiences: ['regate'], algorithms: ['ES256'] }],
      policy: { bundle, default_entrypoint: 'tr/decision' },
      decision_log: { enabled: false },
      tracing: { otlp: { endpoint: jaeger.otlpEndpoint, schedule_delay_ms: 100 }, ...tracing },
      routes: [
        { id: 'models', auth: 'optional', match: { methods: ['GET'], path: '/v1/models/{model}' }, upstream: 'app' },
        { id: 'down', auth: 'none', match: { methods: ['GET'], path: '/down' }, upstream: 'gone' },
      ],
    }),
  );
  started.push(r);
  return r;
}

const CLIENT_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const CLIENT_SPAN = '00f067aa0ba902b7';

const byName = (t: JaegerTrace, name: string): JaegerSpan => {
  const s = t.spans.find((x) => x.operationName === name);
  assert.ok(s, `span ${name} in ${t.spans.map((x) => x.operationName).join(', ')}`);
  return s;
};
const parentOf = (s: JaegerSpan): string | undefined => s.references.find((r) => r.refType === 'CHILD_OF')?.spanID;

describe('tracing into a real Jaeger', () => {
  it('continues a trusted traceparent: request span child of the caller, stage spans its children, the upstream gets regate’s span as parent', async () => {
    const r = await start({});
    const res = await send(`${r.proxyUrl}/v1/models/sentiment?x=1`, {
      headers: {
        authorization: `Bearer ${token}`,
        traceparent: `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01`,
        tracestate: 'rojo=00f067aa0ba902b7',
        'x-b3-traceid': '80f198ee56343ba864fe8b2a57d3eff7',
        'uber-trace-id': 'abc:def:0:1',
      },
    });
    assert.equal(res.status, 200);
    const seen = await upstream.waitForRequest('/v1/models/sentiment');
    const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(String(seen.headers.traceparent));
    assert.ok(m, `upstream traceparent ${String(seen.headers.traceparent)}`);
    assert.equal(m[1], CLIENT_TRACE);
    assert.notEqual(m[2], CLIENT_SPAN);
    assert.equal(seen.headers.tracestate, 'rojo=00f067aa0ba902b7');
    assert.equal(seen.headers['x-b3-traceid'], undefined);
    assert.equal(seen.headers['uber-trace-id'], undefined);

    const t = await jaeger.trace(CLIENT_TRACE, 4);
    assert.equal(t.processes[t.spans[0]!.processID]?.serviceName, 'regate');
    const server = byName(t, 'GET /v1/models/{model}');
    assert.equal(parentOf(server), CLIENT_SPAN);
    assert.equal(tag(server, 'span.kind'), 'server');
    assert.equal(tag(server, 'http.request.method'), 'GET');
    assert.equal(tag(server, 'http.route'), '/v1/models/{model}');
    assert.equal(tag(server, 'url.path'), '/v1/models/sentiment');
    assert.equal(tag(server, 'http.response.status_code'), 200);
    assert.equal(tag(server, 'regate.route_id'), 'models');
    assert.equal(tag(server, 'regate.decision'), 'allow');
    assert.equal(tag(server, 'regate.reason'), 'allowed');
    assert.equal(tag(server, 'regate.upstream_status'), 200);
    assert.equal(tag(server, 'regate.decision_id'), seen.headers['x-request-id']);

    const authn = byName(t, 'authn');
    const policy = byName(t, 'policy');
    const up = byName(t, 'upstream');
    for (const s of [authn, policy, up]) assert.equal(parentOf(s), server.spanID, s.operationName);
    assert.equal(tag(authn, 'regate.authn.outcome'), 'verified');
    assert.equal(tag(authn, 'regate.authn.issuer'), 'idp');
    assert.equal(tag(policy, 'regate.policy.entrypoint'), 'tr/decision');
    assert.equal(up.spanID, m[2]);
    assert.equal(tag(up, 'span.kind'), 'client');
    assert.equal(tag(up, 'http.response.status_code'), 200);
    assert.equal(tag(up, 'server.port'), upstream.port);
    // Stages in order, inside the request span.
    assert.ok(authn.startTime >= server.startTime && authn.startTime <= policy.startTime && policy.startTime <= up.startTime);
    assert.ok(up.startTime + up.duration <= server.startTime + server.duration + 1);
  });

  it('a denied request: request, authn and policy spans, no upstream span, the reason on the request span', async () => {
    const r = await start({});
    const trace = 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1';
    const res = await send(`${r.proxyUrl}/v1/models/denied`, { headers: { traceparent: `00-${trace}-${CLIENT_SPAN}-01` } });
    assert.equal(res.status, 403);
    const t = await jaeger.trace(trace, 3);
    const server = byName(t, 'GET /v1/models/{model}');
    assert.equal(tag(server, 'regate.decision'), 'deny');
    assert.equal(tag(server, 'regate.reason'), 'policy_denied');
    assert.equal(tag(server, 'http.response.status_code'), 403);
    assert.equal(tag(byName(t, 'authn'), 'regate.authn.outcome'), 'anonymous');
    assert.equal(t.spans.some((s) => s.operationName === 'upstream'), false);
  });

  it('an unsampled caller is followed: nothing recorded, the upstream still gets a (not sampled) traceparent', async () => {
    const r = await start({});
    const trace = 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb2';
    await send(`${r.proxyUrl}/v1/models/unsampled`, { headers: { authorization: `Bearer ${token}`, traceparent: `00-${trace}-${CLIENT_SPAN}-00` } });
    const seen = await upstream.waitForRequest('/v1/models/unsampled');
    assert.match(String(seen.headers.traceparent), new RegExp(`^00-${trace}-[0-9a-f]{16}-00$`));
    // A sampled request after it is exported: once it is in Jaeger, the unsampled one would be too.
    const marker = 'ccccccccccccccccccccccccccccccc3';
    await send(`${r.proxyUrl}/v1/models/marker`, { headers: { traceparent: `00-${marker}-${CLIENT_SPAN}-01` } });
    await jaeger.trace(marker, 3);
    const res = await fetch(`${jaeger.queryUrl}/api/traces/${trace}`);
    assert.equal(res.status, 404);
  });

  it('trust_incoming_traceparent: false starts a new trace for every request; the client cannot choose the trace', async () => {
    const r = await start({ trust_incoming_traceparent: false });
    const forged = 'dddddddddddddddddddddddddddddd04';
    assert.equal((await send(`${r.proxyUrl}/v1/models/untrusted`, { headers: { authorization: `Bearer ${token}`, traceparent: `00-${forged}-${CLIENT_SPAN}-01`, tracestate: 'evil=1' } })).status, 200);
    const seen = await upstream.waitForRequest('/v1/models/untrusted');
    const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(String(seen.headers.traceparent));
    assert.ok(m);
    assert.notEqual(m[1], forged);
    assert.equal(seen.headers.tracestate, undefined);
    const t = await jaeger.trace(m[1]!, 4);
    assert.equal(parentOf(byName(t, 'GET /v1/models/{model}')), undefined);
    assert.equal((await fetch(`${jaeger.queryUrl}/api/traces/${forged}`)).status, 404);

    const exp = parseExposition((await send(`${r.adminUrl}/metrics`)).text);
    assert.ok(sampleValue(exp, 'regate_tracing_spans_exported_total')! >= 4);
    assert.equal(sampleValue(exp, 'regate_tracing_spans_dropped_total', { reason: 'export_failed' }), 0);
  });

  it('an upstream failure marks the request and upstream spans as errors', async () => {
    const r = await start({});
    const trace = 'eeeeeeeeeeeeeeeeeeeeeeeeeeeeee05';
    const res = await send(`${r.proxyUrl}/down`, { headers: { traceparent: `00-${trace}-${CLIENT_SPAN}-01` } });
    assert.equal(res.status, 502);
    const t = await jaeger.trace(trace, 3);
    const server = byName(t, 'GET /down');
    const up = byName(t, 'upstream');
    assert.equal(tag(server, 'error'), true);
    assert.equal(tag(up, 'error'), true);
    assert.match(String(tag(server, 'error.type')), /^upstream_/);
  });
});
