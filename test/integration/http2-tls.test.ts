/**
 * Issue 13: HTTP/2 over TLS (ALPN h2) on the proxy listener, TLS to HTTP/2
 * upstreams (`protocol: h2` with `tls`) and the body timeouts on HTTP/2
 * streams, against a real regate process: node:http2 and @grpc/grpc-js
 * clients negotiating h2, an HTTP/1.1 client on the same port, mTLS identity
 * over h2, hand-written hostile frames over TLS, real gRPC model servers over
 * h2c and TLS (one with a certificate from a CA regate does not trust), and
 * upstreams that stall.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import http2 from 'node:http2';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import { connectRaw, ERROR, errorCode, FLAG, frame, FRAME, headerBlock, rapidReset } from '../helpers/h2-frames.ts';
import { inferenceClient, grpc, startInferenceServer, type InferenceClient, type InferenceServer, type InferResponse } from '../helpers/grpc-inference.ts';
import { rawExchange } from '../helpers/http.ts';
import { decodeIdentityHeader } from '../helpers/identity-headers.ts';
import { parseExposition, sampleValue } from '../helpers/metrics.ts';
import { buildBundle } from '../helpers/opa.ts';
import { repoRoot, startRegate, writeConfig, type RegateProcess } from '../helpers/regate-process.ts';
import { startUpstreamServer, type TestUpstream } from '../helpers/upstream-server.ts';
import { startWsUpstream, type WsUpstream } from '../helpers/ws-upstream.ts';
import { WebSocket } from 'ws';

const FIXTURES = join(repoRoot, 'test/fixtures/tls');
const pem = (name: string): Buffer => readFileSync(join(FIXTURES, name));
const CA = pem('ca.pem');

const POLICY = `
package h2tls.authz

default allow := false

allow if input.route.id in {"open", "judged", "slow", "ws", "infer", "infer_tls", "infer_wrong", "stall"}

# auth: mtls over HTTP/2: the certificate identity and input.request.tls.
allow if {
	input.route.id == "agents"
	startswith(input.subject.sub, "spiffe://regate.test/")
	input.request.tls.client_cert.issuer == "CN=regate test CA,O=regate test"
	input.request.tls.version in {"TLSv1.2", "TLSv1.3"}
}

decision := {"allow": allow}
`;

let upstream: TestUpstream;
let wsUpstream: WsUpstream;
let model: InferenceServer;
let modelTls: InferenceServer;
let modelWrongCa: InferenceServer;
let stallServer: http2.Http2Server;
let regate: RegateProcess;
let port: number;

before(async () => {
  upstream = await startUpstreamServer();
  wsUpstream = await startWsUpstream();
  model = await startInferenceServer();
  modelTls = await startInferenceServer({ tls: { cert: pem('server.pem'), key: pem('server-key.pem') } });
  modelWrongCa = await startInferenceServer({ tls: { cert: pem('server-other-ca.pem'), key: pem('server-other-ca-key.pem') } });
  // An HTTP/2 upstream that answers /stall/head never and /stall/body with a head and then silence.
  stallServer = http2.createServer();
  stallServer.on('stream', (stream, headers) => {
    stream.on('error', () => {});
    if (headers[':path'] === '/stall/body') {
      stream.respond({ ':status': 200, 'content-type': 'text/plain' });
      stream.write('first bytes');
    }
  });
  await new Promise<void>((resolve) => stallServer.listen(0, '127.0.0.1', resolve));
  const stallPort = (stallServer.address() as { port: number }).port;
  const bundle = await buildBundle({ files: { 'authz.rego': POLICY }, entrypoints: ['h2tls/authz/decision'] });
  const grpcRoute = (id: string, host: string, up: string) => ({ id, match: { methods: ['POST'], path: '/inference.GRPCInferenceService/{method}', host }, upstream: up, auth: 'none', grpc: true });
  const configFile = writeConfig({
    listen: {
      proxy: {
        host: '127.0.0.1',
        port: 0,
        tls: { cert_file: join(FIXTURES, 'server.pem'), key_file: join(FIXTURES, 'server-key.pem'), ca_file: join(FIXTURES, 'ca.pem'), client_auth: 'optional' },
        http2: { max_header_list_bytes: 4096, max_resets: 20, reset_window_ms: 60_000 },
      },
      admin: { host: '127.0.0.1', port: 0 },
    },
    limits: { body_idle_timeout_ms: 600, request_timeout_ms: 2500 },
    upstreams: {
      app: { url: upstream.url },
      ws: { url: wsUpstream.url },
      slow: { url: upstream.url, timeouts: { headers_ms: 800, body_ms: 800 } },
      model: { url: `http://${model.address}`, protocol: 'h2c' },
      model_tls: { url: `https://${modelTls.address}`, protocol: 'h2', tls: { ca_file: join(FIXTURES, 'ca.pem'), servername: 'localhost' } },
      model_wrong: { url: `https://${modelWrongCa.address}`, protocol: 'h2', tls: { ca_file: join(FIXTURES, 'ca.pem'), servername: 'localhost' } },
      stall: { url: `http://127.0.0.1:${stallPort}`, protocol: 'h2c', timeouts: { headers_ms: 800, body_ms: 800 } },
    },
    policy: { bundle, default_entrypoint: 'h2tls/authz/decision' },
    decision_log: { destination: 'stdout' },
    shutdown: { grace_ms: 5000 },
    routes: [
      { id: 'open', match: { methods: ['GET', 'POST'], path: '/open/{rest*}' }, upstream: 'app', auth: 'none' },
      { id: 'agents', match: { methods: ['GET'], path: '/agents/{rest*}' }, upstream: 'app', auth: 'mtls', identity_headers: { 'x-client-id': 'subject.sub' } },
      { id: 'judged', match: { methods: ['POST'], path: '/judged/{rest*}' }, upstream: 'app', auth: 'none', body: {} },
      { id: 'slow', match: { methods: ['GET'], path: '/slow/{rest*}' }, upstream: 'slow', auth: 'none' },
      { id: 'ws', match: { methods: ['GET'], path: '/ws' }, upstream: 'ws', auth: 'none', websocket: true },
      { id: 'stall', match: { methods: ['GET', 'POST'], path: '/stall/{rest*}' }, upstream: 'stall', auth: 'none' },
      grpcRoute('infer', 'localhost', 'model'),
      grpcRoute('infer_tls', 'tls.model.test', 'model_tls'),
      grpcRoute('infer_wrong', 'wrong.model.test', 'model_wrong'),
    ],
  });
  regate = await startRegate(configFile);
  port = Number(new URL(regate.proxyUrl).port);
});

after(async () => {
  await regate?.stop();
  await upstream?.close();
  await wsUpstream?.close();
  await model?.close();
  await modelTls?.close();
  await modelWrongCa?.close();
  await new Promise<void>((resolve) => (stallServer ? stallServer.close(() => resolve()) : resolve()));
});

interface H2Reply {
  readonly status: number;
  readonly headers: http2.IncomingHttpHeaders;
  readonly body: string;
  readonly alpn: string | false | null | undefined;
}

/** One HTTP/2 request over TLS (ALPN h2) with node's client. */
async function h2(path: string, options: { headers?: Record<string, string>; client?: string; body?: string } = {}): Promise<H2Reply> {
  const cert = options.client === undefined ? {} : { cert: pem(`${options.client}.pem`), key: pem(`${options.client}-key.pem`) };
  const session = http2.connect(regate.proxyUrl, { ca: CA, servername: 'localhost', ...cert });
  session.on('error', () => {});
  try {
    await new Promise<void>((resolve, reject) => session.once('connect', () => resolve()).once('error', reject));
    const alpn = (session.socket as tls.TLSSocket).alpnProtocol;
    return await new Promise((resolve, reject) => {
      const s = session.request({ ':method': options.body === undefined ? 'GET' : 'POST', ':path': path, ...options.headers }, { endStream: options.body === undefined });
      if (options.body !== undefined) s.end(options.body);
      let status = 0;
      let headers: http2.IncomingHttpHeaders = {};
      let body = '';
      s.setEncoding('utf8');
      s.on('response', (h) => {
        headers = h;
        status = Number(h[':status']);
      });
      s.on('data', (c: string) => (body += c));
      s.on('end', () => resolve({ status, headers, body, alpn }));
      s.on('error', reject);
    });
  } finally {
    session.close();
  }
}

async function metric(name: string, labels: Record<string, string> = {}): Promise<number> {
  const res = await fetch(`${regate.adminUrl}/metrics`);
  return sampleValue(parseExposition(await res.text()), name, labels) ?? 0;
}

function unary(c: InferenceClient, req: { model_name: string }): Promise<{ err: grpc.ServiceError | null; res?: InferResponse; trailers?: grpc.Metadata }> {
  return new Promise((resolve) => {
    let trailers: grpc.Metadata | undefined;
    const call = c.ModelInfer({ model_name: req.model_name, inputs: [{ name: 'x', datatype: 'FP32', shape: [2], fp32_contents: [1.5, 2] }] } as never, new grpc.Metadata(), (err, res) => {
      setImmediate(() => resolve({ err, ...(res !== undefined ? { res } : {}), ...(trailers !== undefined ? { trailers } : {}) }));
    });
    call.on('status', (s: grpc.StatusObject) => (trailers = s.metadata));
  });
}

/** A gRPC client to regate's TLS port, verifying its certificate with the test CA, for the route of `authority`. */
function tlsClient(authority: string): InferenceClient {
  return inferenceClient(`127.0.0.1:${port}`, grpc.credentials.createSsl(CA), { 'grpc.ssl_target_name_override': 'localhost', 'grpc.default_authority': authority });
}

/** One GET on `session`, followed to the stream's close: status, body, RST code, whether it ended cleanly. */
function untilClosed(session: http2.ClientHttp2Session, path: string): Promise<{ status: number; body: string; rst: number; ended: boolean }> {
  return new Promise((resolve) => {
    const st = session.request({ ':path': path });
    let status = 0;
    let body = '';
    let ended = false;
    st.setEncoding('utf8');
    st.on('response', (h) => (status = Number(h[':status'])));
    st.on('data', (c: string) => (body += c));
    st.on('end', () => (ended = true));
    st.on('error', () => {});
    st.on('close', () => resolve({ status, body, rst: st.rstCode, ended }));
  });
}

describe('HTTP/2 over TLS on the proxy listener (ALPN)', () => {
  it('negotiates h2 by ALPN and forwards the request judged like any other (X-Forwarded-Proto https)', async () => {
    const r = await h2('/open/alpn');
    assert.equal(r.alpn, 'h2');
    assert.equal(r.status, 200);
    const seen = upstream.requests.find((q) => q.url === '/open/alpn');
    assert.ok(seen);
    assert.equal(seen.headers['x-forwarded-proto'], 'https');
    // Path confusion is refused over h2 as over HTTP/1.1.
    assert.equal((await h2('/open/%2e%2e/admin')).status, 400);
  });

  it('serves HTTP/1.1 clients on the same port with the whole HTTP/1.1 path (framing refusals included)', async () => {
    const res = await new Promise<{ status: number; alpn: string | false | null | undefined }>((resolve, reject) => {
      const options: https.RequestOptions & tls.ConnectionOptions = { host: '127.0.0.1', port, path: '/open/h1', ca: CA, servername: 'localhost', ALPNProtocols: ['http/1.1'], agent: false };
      const req = https.request(options, (r) => {
        r.resume();
        r.on('end', () => resolve({ status: r.statusCode ?? 0, alpn: (r.socket as tls.TLSSocket).alpnProtocol }));
      });
      req.on('error', reject);
      req.end();
    });
    assert.deepEqual(res, { status: 200, alpn: 'http/1.1' });
    // A client offering no ALPN at all speaks HTTP/1.1; Transfer-Encoding other than chunked is refused before anything is forwarded.
    const x = await rawExchange(regate.proxyUrl, ['POST /open/te HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n'], 5_000, { ca: CA });
    assert.equal(x.responses[0]!.status, 400);
    assert.equal(upstream.requests.some((q) => q.url === '/open/te'), false);
  });

  it('HTTP/1.1 on the TLS port keeps pipelining order and WebSocket upgrades', async () => {
    const x = await rawExchange(regate.proxyUrl, ['GET /open/p1 HTTP/1.1\r\nHost: localhost\r\n\r\nGET /open/p2 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n'], 5_000, { ca: CA });
    assert.deepEqual(x.responses.map((r) => r.status), [200, 200]);
    assert.deepEqual(x.responses.map((r) => (JSON.parse(r.body) as { url: string }).url), ['/open/p1', '/open/p2']);
    const wsOptions: tls.ConnectionOptions = { ca: CA, servername: 'localhost' };
    const ws = new WebSocket(`wss://127.0.0.1:${port}/ws`, wsOptions as ConstructorParameters<typeof WebSocket>[1]);
    try {
      await new Promise<void>((resolve, reject) => ws.once('open', () => resolve()).once('error', reject));
      const echoed = new Promise<string>((resolve) => ws.once('message', (d) => resolve(String(d))));
      ws.send('over tls');
      assert.equal(await echoed, 'over tls');
    } finally {
      ws.close();
    }
  });

  it('auth: mtls over h2: the verified client certificate is the identity, input.request.tls is set', async () => {
    const ok = await h2('/agents/who', { client: 'client' });
    assert.equal(ok.alpn, 'h2');
    assert.equal(ok.status, 200);
    const seen = upstream.requests.find((q) => q.url === '/agents/who');
    assert.deepEqual(decodeIdentityHeader(String(seen?.headers['x-client-id'])), ['spiffe://regate.test/ns/ml/sa/agent-a']);
    // No certificate, or one from a CA nobody trusts: no identity (401), nothing forwarded.
    assert.equal((await h2('/agents/anon')).status, 401);
    assert.equal((await h2('/agents/other', { client: 'client-other-ca' })).status, 401);
    assert.equal(upstream.requests.some((q) => q.url === '/agents/anon' || q.url === '/agents/other'), false);
  });

  it('gRPC over TLS with @grpc/grpc-js: unary call to an h2c model server, trailers intact', async () => {
    const c = tlsClient('localhost');
    try {
      const r = await unary(c, { model_name: 'resnet' });
      assert.equal(r.err, null);
      assert.deepEqual(r.res?.outputs[0]?.fp32_contents, [3.5]);
      assert.deepEqual(r.trailers?.get('x-model-latency-ms'), ['3']);
    } finally {
      c.close();
    }
  });
});

describe('TLS to HTTP/2 upstreams (protocol: h2 with tls)', () => {
  it('a server-streaming call over TLS on both sides: every message, then the trailers', async () => {
    const c = tlsClient('tls.model.test');
    try {
      const got: string[] = [];
      const status = await new Promise<grpc.StatusObject>((resolve) => {
        const call = c.ModelStreamInfer({ model_name: 'stream' } as never, new grpc.Metadata());
        call.on('data', (m: InferResponse) => got.push(m.id));
        call.on('error', () => {});
        call.on('status', resolve);
      });
      assert.equal(status.code, grpc.status.OK);
      assert.deepEqual(got, ['chunk-0', 'chunk-1', 'chunk-2']);
      assert.deepEqual(status.metadata.get('x-model-latency-ms'), ['3']);
    } finally {
      c.close();
    }
  });

  it('verifies the model server with the configured CA and servername, and relays the call', async () => {
    const c = tlsClient('tls.model.test');
    try {
      const r = await unary(c, { model_name: 'over-tls' });
      assert.equal(r.err, null);
      assert.equal(r.res?.model_name, 'over-tls');
      assert.deepEqual(r.trailers?.get('x-model-latency-ms'), ['3']);
    } finally {
      c.close();
    }
  });

  it('a model server whose certificate does not verify: UNAVAILABLE (502 upstream_tls_error), nothing reaches it', async () => {
    const before = modelWrongCa.calls.length;
    const c = tlsClient('wrong.model.test');
    try {
      const r = await unary(c, { model_name: 'leak' });
      assert.equal(r.err?.code, grpc.status.UNAVAILABLE);
      assert.equal(r.res, undefined);
    } finally {
      c.close();
    }
    assert.equal(modelWrongCa.calls.length, before);
    const rec = await regate.waitForDecision((d) => (d.custom as { http_path?: string; reason?: string } | undefined)?.reason === 'upstream_tls_error');
    assert.equal((rec.custom as { http_status: number }).http_status, 502);
  });
});

describe('hostile HTTP/2 frames over TLS are bounded as on h2c', () => {
  const fields = (path: string): [string, string][] => [
    [':method', 'GET'],
    [':scheme', 'https'],
    [':path', path],
    [':authority', 'localhost'],
  ];

  it('an oversized header list is refused; nothing forwarded', async () => {
    const raw = await connectRaw(port, { ca: CA });
    try {
      raw.send(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, headerBlock([...fields('/open/big'), ['x-big', 'a'.repeat(8000)]])));
      const f = await raw.waitFor((x) => (x.streamId === 1 && (x.type === FRAME.RST_STREAM || x.type === FRAME.DATA)) || x.type === FRAME.GOAWAY);
      if (f.type === FRAME.DATA) assert.equal(JSON.parse(f.payload.toString()).status, 431);
      assert.equal(upstream.requests.some((q) => q.url === '/open/big'), false);
    } finally {
      raw.destroy();
    }
  });

  it('a CONTINUATION flood over TLS ends the connection; nothing forwarded', async () => {
    const raw = await connectRaw(port, { ca: CA });
    try {
      raw.send(frame(FRAME.HEADERS, 0, 1, headerBlock(fields('/open/flood'))));
      const piece = headerBlock([['x-flood', 'b'.repeat(200)]]);
      for (let i = 0; i < 200 && !raw.frames.some((f) => f.type === FRAME.GOAWAY); i++) {
        raw.send(frame(FRAME.CONTINUATION, 0, 1, piece));
        if (i % 20 === 19) await new Promise((r) => setTimeout(r, 5));
      }
      await Promise.race([raw.waitFor((x) => x.type === FRAME.GOAWAY || (x.type === FRAME.RST_STREAM && x.streamId === 1)), raw.closed]);
      assert.equal(upstream.requests.some((q) => q.url === '/open/flood'), false);
    } finally {
      raw.destroy();
    }
  });

  it('rapid reset over TLS → GOAWAY ENHANCE_YOUR_CALM, counted; the port still serves', async () => {
    const goawaysBefore = await metric('regate_http2_goaway_total', { reason: 'rapid_reset' });
    upstream.setHandler((_req, res) => {
      setTimeout(() => {
        if (!res.destroyed) res.end('late');
      }, 2000);
    });
    const raw = await connectRaw(port, { ca: CA });
    try {
      await rapidReset(raw, (i) => fields(`/open/rr-${i}`));
      const goaway = await raw.waitFor((x) => x.type === FRAME.GOAWAY);
      assert.equal(errorCode(goaway), ERROR.ENHANCE_YOUR_CALM);
      await raw.closed;
    } finally {
      raw.destroy();
      upstream.setHandler(null);
    }
    assert.equal(await metric('regate_http2_goaway_total', { reason: 'rapid_reset' }), goawaysBefore + 1);
    assert.equal((await h2('/open/after-rr')).status, 200);
  });
});

describe('body timeouts on HTTP/2 streams', () => {
  /** A POST whose body starts and then stalls, or trickles a byte every `trickleMs`; resolves with the answer or the reset. */
  async function stalledPost(path: string, trickleMs?: number): Promise<{ status: number; body: string; rst?: number }> {
    const session = http2.connect(regate.proxyUrl, { ca: CA, servername: 'localhost' });
    session.on('error', () => {});
    let timer: NodeJS.Timeout | undefined;
    try {
      return await new Promise((resolve) => {
        const s = session.request({ ':method': 'POST', ':path': path, 'content-type': 'text/plain' }, { endStream: false });
        s.write('abc');
        if (trickleMs !== undefined) timer = setInterval(() => s.write('.'), trickleMs);
        let status = 0;
        let body = '';
        s.setEncoding('utf8');
        s.on('response', (h) => (status = Number(h[':status'])));
        s.on('data', (c: string) => (body += c));
        s.on('error', () => {});
        s.on('close', () => resolve({ status, body, ...(s.rstCode !== http2.constants.NGHTTP2_NO_ERROR ? { rst: s.rstCode } : {}) }));
      });
    } finally {
      clearInterval(timer);
      session.destroy();
    }
  }

  it('a client body that stalls is answered 408 body_timeout and the upstream request is cancelled', async () => {
    const r = await stalledPost('/open/stalled-body');
    assert.equal(r.status, 408);
    assert.equal((JSON.parse(r.body) as { reason: string }).reason, 'body_timeout');
    const rec = await regate.waitForDecision((d) => (d.custom as { http_path?: string } | undefined)?.http_path === '/open/stalled-body');
    assert.equal((rec.custom as { reason: string }).reason, 'body_timeout');
    // Allowed, then the body failed: counted as a forward failure with its reason, as on HTTP/1.1.
    assert.ok((await metric('regate_forward_failures_total', { route: 'open', reason: 'body_timeout' })) >= 1);
  });

  it('on a body route (the policy reads the body), a stalled body is 408 body_timeout too; nothing forwarded', async () => {
    const r = await stalledPost('/judged/stalled');
    assert.equal(r.status, 408);
    assert.equal((JSON.parse(r.body) as { reason: string }).reason, 'body_timeout');
    assert.equal(upstream.requests.some((q) => q.url === '/judged/stalled'), false);
  });

  it('a body that trickles past the request deadline is answered 408 request_timeout', async () => {
    const r = await stalledPost('/open/slow-body', 200);
    assert.equal(r.status, 408);
    assert.equal((JSON.parse(r.body) as { reason: string }).reason, 'request_timeout');
  });

  it('an HTTP/1.1 upstream that stalls, for an HTTP/2 client: 504 before the head, a reset after it', async () => {
    upstream.setHandler((req, res) => {
      if (req.url === '/slow/body') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('first bytes');
      }
    });
    try {
      const head = await h2('/slow/head');
      assert.equal(head.status, 504);
      assert.equal((JSON.parse(head.body) as { reason: string }).reason, 'upstream_timeout');
      const session = http2.connect(regate.proxyUrl, { ca: CA, servername: 'localhost' });
      session.on('error', () => {});
      try {
        const r = await untilClosed(session, '/slow/body');
        assert.equal(r.status, 200);
        assert.equal(r.body, 'first bytes');
        assert.notEqual(r.rst, http2.constants.NGHTTP2_NO_ERROR);
        assert.equal(r.ended, false);
      } finally {
        session.destroy();
      }
    } finally {
      upstream.setHandler(null);
    }
  });

  it('an HTTP/2 upstream that never answers: 504 upstream_timeout (headers_ms)', async () => {
    const r = await h2('/stall/head');
    assert.equal(r.status, 504);
    assert.equal((JSON.parse(r.body) as { reason: string }).reason, 'upstream_timeout');
  });

  it('an HTTP/2 upstream that stalls mid-body: the client stream is reset (body_ms), never ended as if complete', async () => {
    const session = http2.connect(regate.proxyUrl, { ca: CA, servername: 'localhost' });
    session.on('error', () => {});
    try {
      const r = await untilClosed(session, '/stall/body');
      assert.equal(r.status, 200);
      assert.equal(r.body, 'first bytes');
      assert.notEqual(r.rst, http2.constants.NGHTTP2_NO_ERROR);
      assert.equal(r.ended, false);
    } finally {
      session.destroy();
    }
    const rec = await regate.waitForDecision((d) => (d.custom as { http_path?: string } | undefined)?.http_path === '/stall/body');
    assert.ok(rec);
  });
});

describe('listen.proxy.http2.h2: false', () => {
  it('offers http/1.1 only by ALPN: an h2-only client is refused, HTTP/1.1 is served', async () => {
    const bundle = await buildBundle({ files: { 'authz.rego': 'package t\n\ndecision := {"allow": true}\n' }, entrypoints: ['t/decision'] });
    const h1only = await startRegate(
      writeConfig({
        listen: {
          proxy: { host: '127.0.0.1', port: 0, tls: { cert_file: join(FIXTURES, 'server.pem'), key_file: join(FIXTURES, 'server-key.pem') }, http2: { h2: false } },
          admin: { host: '127.0.0.1', port: 0 },
        },
        upstreams: { app: { url: upstream.url } },
        policy: { bundle, default_entrypoint: 't/decision' },
        routes: [{ id: 'open', match: { methods: ['GET'], path: '/open/{rest*}' }, upstream: 'app', auth: 'none' }],
      }),
    );
    try {
      const p = Number(new URL(h1only.proxyUrl).port);
      await assert.rejects(connectRaw(p, { ca: CA }));
      const x = await rawExchange(h1only.proxyUrl, ['GET /open/h1only HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n'], 5_000, { ca: CA });
      assert.equal(x.responses[0]!.status, 200);
    } finally {
      await h1only.stop();
    }
  });
});

describe('drain with HTTP/2 over TLS', () => {
  it('SIGTERM: the open h2 session gets GOAWAY, its running stream finishes with 200', async () => {
    upstream.setHandler((_req, res) => {
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end('finished');
      }, 700);
    });
    const session = http2.connect(regate.proxyUrl, { ca: CA, servername: 'localhost' });
    session.on('error', () => {});
    const goaway = new Promise<void>((resolve) => session.once('goaway', () => resolve()));
    try {
      await new Promise<void>((resolve, reject) => session.once('connect', () => resolve()).once('error', reject));
      const reply = new Promise<{ status: number; body: string }>((resolve, reject) => {
        const s = session.request({ ':path': '/open/draining' });
        let status = 0;
        let body = '';
        s.setEncoding('utf8');
        s.on('response', (h) => (status = Number(h[':status'])));
        s.on('data', (c: string) => (body += c));
        s.on('end', () => resolve({ status, body }));
        s.on('error', reject);
      });
      // The request is at the upstream (in flight) when the drain begins.
      for (let i = 0; i < 250 && !upstream.requests.some((q) => q.url === '/open/draining'); i++) await new Promise((r) => setTimeout(r, 20));
      const stopped = regate.stop();
      assert.deepEqual(await reply, { status: 200, body: 'finished' });
      await goaway;
      assert.equal(await stopped, 0);
    } finally {
      session.destroy();
      upstream.setHandler(null);
    }
  });
});
