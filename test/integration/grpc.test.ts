/**
 * gRPC proxying end to end over HTTP/2 with prior knowledge (h2c), real
 * components on loopback: a @grpc/grpc-js client → a real regate process →
 * a real @grpc/grpc-js KServe-v2-style inference server; a real JWKS server
 * and a policy compiled by the opa CLI. Unary and server-streaming calls,
 * denials and upstream failures as gRPC status, metadata and trailers intact.
 */
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { after, before, describe, it } from 'node:test';
import { inferenceClient, grpc, startInferenceServer, type InferenceClient, type InferenceServer, type InferResponse } from '../helpers/grpc-inference.ts';
import { closedPort } from '../helpers/http.ts';
import { startJwksServer, type JwksServer } from '../helpers/jwks-server.ts';
import { buildBundle } from '../helpers/opa.ts';
import { startRegate, writeConfig, type RegateProcess } from '../helpers/regate-process.ts';
import { baseClaims, generateTestKey, jwksOf, signToken, TEST_ISSUER, type TestKey } from '../helpers/tokens.ts';
import { startUpstreamServer, type TestUpstream } from '../helpers/upstream-server.ts';

const POLICY = `
package test.authz

default allow := false

# Callers with the "inference" scope may call any method of the inference service,
# except models named "secret".
allow if {
	input.request.grpc.service == "inference.GRPCInferenceService"
	"inference" in input.subject.scopes
	not input.request.headers["x-model"] == "secret"
}

allow if input.route.id in {"rest", "down"}

decision := {"allow": allow}
`;

let jwks: JwksServer;
let model: InferenceServer;
let rest: TestUpstream;
let regate: RegateProcess;
let key: TestKey;
let client: InferenceClient;
let address: string;

const token = (scope = 'inference'): Promise<string> => signToken(key, baseClaims({ aud: 'regate', scope }));
const md = async (extra: Record<string, string> = {}, scope?: string): Promise<grpc.Metadata> => {
  const m = new grpc.Metadata();
  m.set('authorization', `Bearer ${await token(scope)}`);
  for (const [k, v] of Object.entries(extra)) m.set(k, v);
  return m;
};

before(async () => {
  key = await generateTestKey('ES256');
  jwks = await startJwksServer(jwksOf(key));
  model = await startInferenceServer();
  rest = await startUpstreamServer();
  const bundle = await buildBundle({ files: { 'authz.rego': POLICY }, entrypoints: ['test/authz/decision'] });
  const configFile = writeConfig({
    listen: { proxy: { host: '127.0.0.1', port: 0, http2: { h2c: true } }, admin: { host: '127.0.0.1', port: 0 } },
    upstreams: {
      model: { url: `http://${model.address}`, protocol: 'h2c' },
      down: { url: `http://127.0.0.1:${await closedPort()}`, protocol: 'h2c', timeouts: { connect_ms: 500 } },
      rest: { url: rest.url },
    },
    issuers: [{ id: 'idp', issuer: TEST_ISSUER, jwks_url: jwks.url, audiences: ['regate'], algorithms: ['ES256'] }],
    policy: { bundle, default_entrypoint: 'test/authz/decision' },
    routes: [
      { id: 'infer', match: { methods: ['POST'], path: '/inference.GRPCInferenceService/{method}' }, upstream: 'model', grpc: true, identity_headers: { 'x-regate-sub': 'subject.sub' } },
      { id: 'down', match: { methods: ['POST'], path: '/down.Service/{method}' }, upstream: 'down', grpc: true },
      { id: 'rest', match: { methods: ['GET', 'POST'], path: '/rest/{rest*}' }, upstream: 'rest' },
    ],
  });
  regate = await startRegate(configFile);
  address = regate.proxyUrl.replace('http://', '');
  client = inferenceClient(address);
});

after(async () => {
  client?.close();
  await regate?.stop();
  await model?.close();
  await rest?.close();
  await jwks?.close();
});

function unary(c: InferenceClient, req: Parameters<InferenceClient['ModelInfer']>[0], m: grpc.Metadata): Promise<{ err: grpc.ServiceError | null; res?: InferResponse; headers: grpc.Metadata | null; trailers: grpc.Metadata | null }> {
  return new Promise((resolve) => {
    let headers: grpc.Metadata | null = null;
    let trailers: grpc.Metadata | null = null;
    const call = c.ModelInfer(req, m, (err, res) => setImmediate(() => resolve({ err, res, headers, trailers })));
    call.on('metadata', (h) => (headers = h));
    call.on('status', (s) => (trailers = s.metadata));
  });
}

const REQUEST = { model_name: 'sum', id: 'r1', inputs: [{ name: 'x', datatype: 'FP32', shape: [3], fp32_contents: [1, 2, 3.5] }] };

describe('gRPC through regate (h2c)', () => {
  it('forwards an allowed unary call; metadata and trailers arrive intact', async () => {
    const before = model.calls.length;
    const r = await unary(client, REQUEST, await md({ 'x-custom': 'kept' }));
    assert.equal(r.err, null);
    assert.equal(r.res!.outputs[0]!.fp32_contents[0], 6.5);
    assert.deepEqual(r.headers!.get('x-served-by'), ['test-model-server']);
    assert.deepEqual(r.trailers!.get('x-model-latency-ms'), ['3']);
    const seen = model.calls[before]!;
    assert.equal(seen.method, 'ModelInfer');
    // What the upstream received: no token (forward_authorization is off), identity set, client metadata kept.
    assert.equal(seen.metadata.authorization, undefined);
    assert.deepEqual(seen.metadata['x-regate-sub'], ['alice']);
    assert.deepEqual(seen.metadata['x-custom'], ['kept']);
    assert.ok(seen.metadata['x-request-id']?.[0]);
    const rec = await regate.waitForDecision((d) => (d.input as { request?: { id?: string } } | undefined)?.request?.id === seen.metadata['x-request-id']![0]);
    assert.deepEqual((rec.input as { request: { grpc: unknown } }).request.grpc, { service: 'inference.GRPCInferenceService', method: 'ModelInfer' });
  });

  it('relays the upstream gRPC error status, message and trailers', async () => {
    const r = await unary(client, { model_name: 'fail' }, await md());
    assert.equal(r.err?.code, grpc.status.NOT_FOUND);
    assert.equal(r.err?.details, 'model "fail" is not loaded');
    assert.deepEqual(r.err?.metadata.get('x-model-latency-ms'), ['3']);
  });

  it('streams a server-streaming call through, with its trailers', async () => {
    const stream = client.ModelStreamInfer({ model_name: 'gen' }, await md());
    const got: InferResponse[] = [];
    const status = await new Promise<grpc.StatusObject>((resolve, reject) => {
      stream.on('data', (d: InferResponse) => got.push(d));
      stream.on('status', resolve);
      stream.on('error', (e: grpc.ServiceError) => (e.code === grpc.status.OK ? undefined : reject(e)));
    });
    assert.equal(status.code, grpc.status.OK);
    assert.deepEqual(got.map((g) => g.id), ['chunk-0', 'chunk-1', 'chunk-2']);
    assert.deepEqual(status.metadata.get('x-model-latency-ms'), ['3']);
  });

  it('no token → UNAUTHENTICATED (16), nothing forwarded', async () => {
    const before = model.calls.length;
    const r = await unary(client, REQUEST, new grpc.Metadata());
    assert.equal(r.err?.code, grpc.status.UNAUTHENTICATED);
    assert.match(r.err!.details, /token/);
    assert.equal(model.calls.length, before);
  });

  it('policy deny → PERMISSION_DENIED (7), with regate-reason metadata; nothing forwarded', async () => {
    const before = model.calls.length;
    const r = await unary(client, REQUEST, await md({}, 'other'));
    assert.equal(r.err?.code, grpc.status.PERMISSION_DENIED);
    assert.deepEqual(r.err?.metadata.get('regate-reason'), ['policy_denied']);
    assert.equal(model.calls.length, before);
    const denied = await unary(client, REQUEST, await md({ 'x-model': 'secret' }));
    assert.equal(denied.err?.code, grpc.status.PERMISSION_DENIED);
    assert.equal(model.calls.length, before);
  });

  it('upstream down → UNAVAILABLE (14)', async () => {
    const r = await new Promise<grpc.ServiceError | null>(async (resolve) => {
      const c = new grpc.Client(address, grpc.credentials.createInsecure());
      c.makeUnaryRequest('/down.Service/Call', (x: Buffer) => x, (x: Buffer) => x, Buffer.alloc(0), await md(), (err) => {
        c.close();
        resolve(err);
      });
    });
    assert.equal(r?.code, grpc.status.UNAVAILABLE);
  });

  it('unknown service → UNIMPLEMENTED (12), as trailers-only HTTP 200 with a percent-encoded grpc-message', async () => {
    const session = http2.connect(regate.proxyUrl);
    try {
      const { headers, flags } = await new Promise<{ headers: http2.IncomingHttpHeaders; flags: number }>((resolve, reject) => {
        const s = session.request({ ':method': 'POST', ':path': '/nope.Service/Call', 'content-type': 'application/grpc', te: 'trailers' });
        s.on('response', (h, f) => resolve({ headers: h, flags: f }));
        s.on('error', reject);
        s.end(Buffer.from([0, 0, 0, 0, 0]));
        s.resume();
      });
      assert.equal(headers[':status'], 200);
      assert.equal(headers['grpc-status'], '12');
      assert.equal(headers['content-type'], 'application/grpc');
      assert.ok((flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0, 'trailers-only: END_STREAM on the HEADERS frame');
      assert.match(String(headers['grpc-message']), /^[\x20-\x7e]*$/);
    } finally {
      session.close();
    }
  });

  it('a non-gRPC request on a gRPC route is refused (415 grpc_required) as a problem document', async () => {
    const session = http2.connect(regate.proxyUrl);
    try {
      const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const s = session.request({ ':method': 'POST', ':path': '/inference.GRPCInferenceService/ModelInfer', 'content-type': 'application/json', authorization: 'Bearer x' });
        let status = 0;
        let body = '';
        s.on('response', (h) => (status = Number(h[':status'])));
        s.setEncoding('utf8');
        s.on('data', (c: string) => (body += c));
        s.on('end', () => resolve({ status, body }));
        s.on('error', reject);
        s.end('{}');
      });
      assert.equal(status, 415);
      assert.equal(JSON.parse(body).reason, 'grpc_required');
    } finally {
      session.close();
    }
  });

  it('plain HTTP/2 and HTTP/1.1 share the port: an h2c REST request reaches an HTTP/1.1 upstream', async () => {
    const bearer = `Bearer ${await token()}`;
    const session = http2.connect(regate.proxyUrl);
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const s = session.request({ ':method': 'GET', ':path': '/rest/a', authorization: bearer });
        s.on('response', (h) => resolve(Number(h[':status'])));
        s.on('error', reject);
        s.resume();
      });
      assert.equal(status, 200);
      const last = rest.requests.at(-1)!;
      assert.equal(last.url, '/rest/a');
      assert.equal(last.headers.authorization, undefined);
      assert.equal(last.headers['x-forwarded-proto'], 'http');
    } finally {
      session.close();
    }
    const h1 = await fetch(`${regate.proxyUrl}/rest/b`, { headers: { authorization: bearer } });
    assert.equal(h1.status, 200);
    await h1.arrayBuffer();
  });
});
