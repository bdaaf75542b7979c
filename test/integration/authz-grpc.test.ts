/**
 * regate as Envoy's external authorization gRPC service
 * (`envoy.service.auth.v3.Authorization/Check`): a real regate process with
 * `listen.authz.protocol: envoy_grpc`, called by a real gRPC client
 * (@grpc/grpc-js) built from the same vendored Envoy protos, with
 * CheckRequests shaped as Envoy sends them. No Envoy binary is available to
 * the tests; deploy/envoy/envoy.yaml is the matching Envoy config.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { EXTERNAL_AUTH_PROTO, PROTO_OPTIONS } from '../../src/authz/grpc.ts';
import { buildBundle } from '../helpers/opa.ts';
import { startRegate, writeConfig, type RegateProcess } from '../helpers/regate-process.ts';
import { baseClaims, generateTestKey, jwksOf, signToken, TEST_ISSUER, type TestKey } from '../helpers/tokens.ts';

const POLICY = `
package test.authz

default allow := false

allow if input.route.id == "public"

allow if input.route.id == "translate"

allow if {
	input.route.id == "reports"
	"reader" in input.subject.roles
}

allow if {
	input.route.id == "messages"
	input.request.body.ok == true
}

default headers := {}

headers := {"x-policy": "checked"} if allow

decision := {"allow": allow, "reasons": ["readers only"], "headers": headers, "response_headers": {"x-why": "regate"}}

broken := {"allow": "yes"}
`;

interface HeaderOption {
  header: { key: string; value: string };
  append_action?: string;
}

interface CheckResponse {
  status: { code: number; message?: string };
  ok_response?: { headers?: HeaderOption[]; headers_to_remove?: string[]; response_headers_to_add?: HeaderOption[] };
  denied_response?: { status: { code: string | number }; headers?: HeaderOption[]; body?: string };
  dynamic_metadata?: { fields: Record<string, { stringValue?: string }> };
}

type Client = grpc.Client & { Check(req: unknown, cb: (err: grpc.ServiceError | null, res: CheckResponse) => void): void };

let key: TestKey;
let regate: RegateProcess;
let client: Client;

before(async () => {
  key = await generateTestKey('ES256');
  const bundle = await buildBundle({ files: { 'authz.rego': POLICY }, entrypoints: ['test/authz/decision', 'test/authz/broken'] });
  const dir = mkdtempSync(join(tmpdir(), 'regate-grpc-'));
  writeFileSync(join(dir, 'jwks.json'), JSON.stringify(jwksOf(key)));
  writeFileSync(join(dir, 'translation-key'), 'grpc-secret-key\n');
  const identity = { 'x-regate-sub': 'subject.sub' };
  const file = writeConfig(
    {
      listen: { proxy: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 }, authz: { host: '127.0.0.1', port: 0, protocol: 'envoy_grpc' } },
      upstreams: { app: { url: 'http://127.0.0.1:9', credentials: { translation: { header: 'X-Api-Key', value_file: './translation-key' } } } },
      issuers: [{ id: 'idp', issuer: TEST_ISSUER, jwks_file: './jwks.json', audiences: ['regate'], algorithms: ['ES256'], claims: { roles: 'roles' } }],
      policy: { bundle, default_entrypoint: 'test/authz/decision' },
      routes: [
        { id: 'public', match: { methods: ['GET'], path: '/v1/public/{name}' }, upstream: 'app', auth: 'optional', identity_headers: identity },
        { id: 'reports', match: { methods: ['GET'], path: '/v1/reports/{id}' }, upstream: 'app', identity_headers: identity },
        { id: 'broken', match: { methods: ['GET'], path: '/v1/broken' }, upstream: 'app', auth: 'none', entrypoint: 'test/authz/broken' },
        { id: 'messages', match: { methods: ['POST'], path: '/v1/messages' }, upstream: 'app', auth: 'none', body: { max_bytes: 1024 } },
        { id: 'translate', match: { methods: ['GET'], path: '/v1/translate' }, upstream: 'app', auth: 'none', credentials: ['translation'] },
      ],
    },
    dir,
  );
  regate = await startRegate(file);
  const pkg = grpc.loadPackageDefinition(protoLoader.loadSync(EXTERNAL_AUTH_PROTO, PROTO_OPTIONS)) as unknown as {
    envoy: { service: { auth: { v3: { Authorization: new (address: string, creds: grpc.ChannelCredentials) => Client } } } };
  };
  client = new pkg.envoy.service.auth.v3.Authorization(regate.authzUrl.replace(/^grpc:\/\//, ''), grpc.credentials.createInsecure());
});

after(async () => {
  client?.close();
  await regate?.stop();
});

/** A CheckRequest as Envoy's ext_authz filter builds one (headers map, lower-case keys, pseudo-headers included). */
function checkRequest(method: string, path: string, headers: Record<string, string> = {}, extra: Record<string, unknown> = {}): unknown {
  return {
    attributes: {
      source: { address: { socket_address: { address: '203.0.113.7', port_value: 51234 } } },
      destination: { address: { socket_address: { address: '10.0.0.2', port_value: 8080 } } },
      request: {
        time: { seconds: String(Math.floor(Date.now() / 1000)) },
        http: {
          id: '1234',
          method,
          path,
          host: 'api.example.com',
          scheme: 'http',
          protocol: 'HTTP/1.1',
          headers: { ':authority': 'api.example.com', ':method': method, ':path': path, 'x-forwarded-proto': 'http', ...headers },
          ...extra,
        },
      },
    },
  };
}

function call(req: unknown): Promise<CheckResponse> {
  return new Promise((resolve, reject) => client.Check(req, (err, res) => (err ? reject(err) : resolve(res))));
}

const header = (list: HeaderOption[] | undefined, name: string): string | undefined => list?.find((h) => h.header.key === name)?.header.value;
const bearer = async (roles: string[], sub = 'alice'): Promise<Record<string, string>> => ({ authorization: `Bearer ${await signToken(key, baseClaims({ aud: 'regate', sub, roles }))}` });

describe('ext_authz gRPC: allow', () => {
  it('OK with identity and policy headers to overwrite, response headers, the decision id in dynamic metadata', async () => {
    const res = await call(checkRequest('GET', '/v1/reports/r1?x=1', await bearer(['reader'])));
    assert.equal(res.status.code, 0);
    const ok = res.ok_response!;
    assert.equal(header(ok.headers, 'x-regate-sub'), 'alice');
    assert.equal(header(ok.headers, 'x-policy'), 'checked');
    assert.ok(ok.headers!.every((h) => h.append_action === 'OVERWRITE_IF_EXISTS_OR_ADD'), 'a client copy is overwritten, never appended to');
    assert.deepEqual(ok.headers_to_remove ?? [], []);
    assert.equal(header(ok.response_headers_to_add, 'x-why'), 'regate');
    const id = res.dynamic_metadata!.fields.decision_id!.stringValue!;
    assert.equal(header(ok.response_headers_to_add, 'x-regate-decision-id'), id);
    assert.equal(res.dynamic_metadata!.fields.route_id!.stringValue, 'reports');
    const d = await regate.waitForDecision((r) => r.decision_id === id);
    assert.equal((d.custom as { front_end: string }).front_end, 'envoy_grpc');
    assert.equal(d.requested_by, '203.0.113.7', 'the source address, not the gRPC peer');
    assert.deepEqual((d.input as { request: { query: unknown } }).request.query, { x: ['1'] });
  });

  it('an anonymous caller: the identity header is in headers_to_remove (a client copy never reaches the upstream)', async () => {
    const res = await call(checkRequest('GET', '/v1/public/p', { 'x-regate-sub': 'root' }));
    assert.equal(res.status.code, 0);
    assert.deepEqual(res.ok_response!.headers_to_remove, ['x-regate-sub']);
    assert.equal(header(res.ok_response!.headers, 'x-regate-sub'), undefined);
  });

  it('the raw header list (encode_raw_headers) is read like the map', async () => {
    const token = (await bearer(['reader'])).authorization!;
    const res = await call(
      checkRequest('GET', '/v1/reports/raw', {}, { headers: {}, header_map: { headers: [{ key: ':path', raw_value: Buffer.from('/v1/reports/raw') }, { key: 'authorization', raw_value: Buffer.from(token) }] } }),
    );
    assert.equal(res.status.code, 0);
    assert.equal(header(res.ok_response!.headers, 'x-regate-sub'), 'alice');
  });

  it('the body Envoy buffered (with_request_body) is the body the policy judges', async () => {
    const allowed = await call(checkRequest('POST', '/v1/messages', { 'content-type': 'application/json', 'content-length': '11' }, { raw_body: Buffer.from('{"ok":true}') }));
    assert.equal(allowed.status.code, 0);
    const denied = await call(checkRequest('POST', '/v1/messages', { 'content-type': 'application/json', 'content-length': '12' }, { raw_body: Buffer.from('{"ok":false}') }));
    assert.equal(denied.status.code, 7);
  });
});

describe('ext_authz gRPC: refusals', () => {
  it('a policy deny: PERMISSION_DENIED, denied_response 403 with the problem document', async () => {
    const res = await call(checkRequest('GET', '/v1/reports/r2', await bearer(['guest'])));
    assert.equal(res.status.code, 7);
    const denied = res.denied_response!;
    assert.equal(Number(denied.status.code === 'Forbidden' ? 403 : denied.status.code), 403);
    assert.equal(header(denied.headers, 'content-type'), 'application/problem+json');
    assert.equal(header(denied.headers, 'x-why'), 'regate');
    const body = JSON.parse(denied.body!) as { reason: string; decision_id: string };
    assert.equal(body.reason, 'policy_denied');
    assert.equal(body.decision_id, res.dynamic_metadata!.fields.decision_id!.stringValue);
    assert.equal(res.ok_response, undefined);
  });

  it('no token: UNAUTHENTICATED, 401 with WWW-Authenticate', async () => {
    const res = await call(checkRequest('GET', '/v1/reports/r3'));
    assert.equal(res.status.code, 16);
    assert.match(header(res.denied_response!.headers, 'www-authenticate') ?? '', /^Bearer realm="regate"/);
  });

  for (const path of ['/v1/public/..%2freports', '/v1/public/%2e%2e/reports/r1', '/v1/public//x', 'http://evil/v1/public/x']) {
    it(`path confusion is refused as on the proxy: ${path}`, async () => {
      const res = await call(checkRequest('GET', path, await bearer(['reader'])));
      assert.equal(res.status.code, 7);
      assert.equal(JSON.parse(res.denied_response!.body!).status, 400);
    });
  }

  it('a CheckRequest without the HTTP attributes is refused (400 authz_request_incomplete), not allowed', async () => {
    const res = await call({ attributes: {} });
    assert.equal(res.status.code, 7);
    assert.equal(JSON.parse(res.denied_response!.body!).reason, 'authz_request_incomplete');
  });

  it('a policy error is a denial in the response (INTERNAL, 500), never a failed call: failure_mode_allow cannot let it through', async () => {
    const res = await call(checkRequest('GET', '/v1/broken'));
    assert.equal(res.status.code, 13);
    assert.equal(JSON.parse(res.denied_response!.body!).status, 500);
    // ... and the engine is as good as new.
    assert.equal((await call(checkRequest('GET', '/v1/public/after'))).status.code, 0);
  });

  it('a truncated body (x-envoy-auth-partial-body: true) is not judged: 500 body_unavailable', async () => {
    const res = await call(checkRequest('POST', '/v1/messages', { 'x-envoy-auth-partial-body': 'true', 'content-type': 'application/json' }, { raw_body: Buffer.from('{"ok":true') }));
    assert.equal(res.status.code, 13);
    assert.equal(JSON.parse(res.denied_response!.body!).reason, 'body_unavailable');
  });

  it('counts checks by protocol', async () => {
    const text = await (await fetch(`${regate.adminUrl}/metrics`)).text();
    assert.match(text, /regate_authz_requests_total\{route="reports",protocol="envoy_grpc",decision="allow"\} [1-9]/);
  });
});

describe('ext_authz gRPC: credential injection (routes[].credentials)', () => {
  it('OK carries the credential header to overwrite the client’s; a deny does not; the decision log has the name only', async () => {
    const res = await call(checkRequest('GET', '/v1/translate', { 'x-api-key': 'client-copy' }));
    assert.equal(res.status.code, 0);
    assert.equal(header(res.ok_response!.headers, 'x-api-key'), 'grpc-secret-key');
    const id = res.dynamic_metadata!.fields.decision_id!.stringValue!;
    const d = await regate.waitForDecision((r) => r.decision_id === id);
    assert.deepEqual((d.custom as { credentials: string[] }).credentials, ['translation']);
    assert.equal(JSON.stringify(d).includes('grpc-secret-key'), false);
    const denied = await call(checkRequest('POST', '/v1/translate'));
    assert.notEqual(denied.status.code, 0);
    assert.equal(JSON.stringify(denied).includes('grpc-secret-key'), false);
  });
});
