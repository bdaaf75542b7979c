/**
 * Issue 9, points 3–8, attacked as an outsider would: raw sockets against a
 * real regate process, a real JWKS server and a real upstream that records
 * every request it receives. Every case asserts on what the upstream got
 * (nothing, for a refusal), on the bytes the client got, and on the
 * decision log.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { rawExchange, type RawExchange } from '../helpers/http.ts';
import { decodeIdentityHeader } from '../helpers/identity-headers.ts';
import { parseExposition } from '../helpers/metrics.ts';
import { buildBundle } from '../helpers/opa.ts';
import { startRegate, writeConfig, type RegateProcess } from '../helpers/regate-process.ts';
import { startJwksServer, type JwksServer } from '../helpers/jwks-server.ts';
import { baseClaims, generateTestKey, jwksOf, signToken, TEST_ISSUER, type TestKey } from '../helpers/tokens.ts';
import { startUpstreamServer, type TestUpstream } from '../helpers/upstream-server.ts';

const POLICY = `
package hostile.authz

default allow := false

allow if input.route.id == "public"

allow if {
	input.subject.authenticated
	input.route.id in {"echo", "upload", "body"}
}

decision := {"allow": allow}
`;

/** Generous against a loaded machine, small enough to keep the suite quick. */
const IDLE_MS = 1500;
const DEADLINE_MS = 4000;

let jwks: JwksServer;
let upstream: TestUpstream;
let regate: RegateProcess;
let key: TestKey;
let token: string;
let host: string;

before(async () => {
  key = await generateTestKey('ES256');
  jwks = await startJwksServer(jwksOf(key));
  upstream = await startUpstreamServer();
  const bundle = await buildBundle({ files: { 'authz.rego': POLICY }, entrypoints: ['hostile/authz/decision'] });
  const route = (id: string, path: string, extra: Record<string, unknown> = {}) => ({ id, match: { methods: ['GET', 'POST'], path }, upstream: 'app', ...extra });
  const configFile = writeConfig({
    listen: { proxy: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 } },
    upstreams: { app: { url: upstream.url, request_headers_to_remove: ['x-legacy-user'] } },
    issuers: [{ id: 'idp', issuer: TEST_ISSUER, jwks_url: jwks.url, audiences: ['regate'], algorithms: ['ES256'], claims: { roles: 'realm_access.roles' } }],
    policy: { bundle, default_entrypoint: 'hostile/authz/decision' },
    decision_log: { destination: 'stdout' },
    limits: { body_idle_timeout_ms: IDLE_MS, request_timeout_ms: DEADLINE_MS },
    request_headers_to_remove: ['x-internal-auth'],
    routes: [
      route('echo', '/echo/{rest*}', { identity_headers: { 'x-user-id': 'subject.sub', 'x-user-roles': 'subject.roles' } }),
      route('upload', '/upload/{rest*}'),
      route('body', '/body/{rest*}', { body: { max_bytes: 4096 } }),
      route('public', '/public/{rest*}', { auth: 'none' }),
      route('denied', '/denied/{rest*}'),
    ],
  });
  regate = await startRegate(configFile);
  host = new URL(regate.proxyUrl).host;
  token = await signToken(key, baseClaims({ aud: 'regate', sub: 'alice', realm_access: { roles: ['user', 'admin'] } }));
});

after(async () => {
  await regate?.stop();
  await upstream?.close();
  await jwks?.close();
});

/** Upstream requests whose path starts with `prefix`. */
const received = (prefix: string) => upstream.requests.filter((r) => r.url.startsWith(prefix));

/** Give a smuggled request every chance to arrive before asserting it did not. */
const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 300));

const auth = (): string => `Authorization: Bearer ${token}\r\n`;

function assertProblem(x: RawExchange, status: number, reason: string): Record<string, unknown> {
  assert.ok(x.responses.length >= 1, `no response; got ${JSON.stringify(x.raw.slice(0, 200))}`);
  const r = x.responses[0]!;
  assert.equal(r.status, status, x.raw.slice(0, 400));
  assert.equal(r.headers['content-type'], 'application/problem+json');
  const p = JSON.parse(r.body) as Record<string, unknown>;
  assert.equal(p.reason, reason);
  return p;
}

describe('framing: a refused request never smuggles its follower (point 3)', () => {
  const follower = (tag: string): string => `GET /public/smuggled-${tag} HTTP/1.1\r\nHost: ${host}\r\n\r\n`;
  const cases: [string, string, string][] = [
    ['identity, chunked', `POST /echo/te1 HTTP/1.1\r\nHost: ${host}\r\nTransfer-Encoding: identity, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`, 'unsupported_transfer_coding'],
    ['identity, chunked without a token', `POST /echo/te2 HTTP/1.1\r\nHost: ${host}\r\nTransfer-Encoding: identity, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`, 'unsupported_transfer_coding'],
    ['gzip, chunked', `POST /echo/te3 HTTP/1.1\r\nHost: ${host}\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`, 'unsupported_transfer_coding'],
    ['two Transfer-Encoding fields', `POST /echo/te4 HTTP/1.1\r\nHost: ${host}\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`, 'unsupported_transfer_coding'],
    ['HTTP/1.0 with chunked', `POST /echo/te5 HTTP/1.0\r\nHost: ${host}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`, 'invalid_framing'],
    ['HTTP/1.0 keep-alive with chunked', `POST /public/te6 HTTP/1.0\r\nHost: ${host}\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`, 'invalid_framing'],
  ];
  for (const [name, first, reason] of cases) {
    it(`${name} → 400 ${reason}, connection closed, follower never parsed`, async () => {
      const tag = name.replace(/\W+/g, '-');
      const withToken = !name.includes('without');
      const req = withToken ? first.replace('\r\n\r\n', `\r\n${auth()}\r\n`) : first;
      const x = await rawExchange(regate.proxyUrl, [req + follower(tag)]);
      const p = assertProblem(x, 400, reason);
      assert.equal(x.responses[0]!.headers.connection, 'close');
      assert.equal(x.responses.length, 1, 'exactly one response: the follower was not handled');
      assert.ok(x.closed, 'the connection was closed');
      await settle();
      assert.equal(received('/public/smuggled-' + tag).length, 0, 'the follower never reached the upstream');
      assert.equal(received('/echo/te').length, 0, 'the refused request never reached the upstream');
      const rec = await regate.waitForDecision((r) => r.decision_id === p.decision_id);
      assert.equal((rec.custom as Record<string, unknown>).reason, reason);
    });
  }

  it('a refusal with an unread body closes: a 401 and a 403 with Content-Length bodies, followers dropped', async () => {
    for (const [path, token, status] of [['/echo/unauth', '', 401], ['/denied/x', auth(), 403]] as const) {
      const body = 'GET /public/smuggled-clbody HTTP/1.1\r\nHost: x\r\n\r\n';
      const first = `POST ${path} HTTP/1.1\r\nHost: ${host}\r\n${token}Content-Length: ${body.length}\r\n\r\n`;
      // The body would come only after a long pause: the refusal happens while it is unread, and
      // once regate closed the connection, the exchange ends without sending it at all.
      const x = await rawExchange(regate.proxyUrl, [first, 4_000, body + follower('cl')], 8_000);
      assert.equal(x.responses[0]?.status, status, x.raw.slice(0, 300));
      assert.equal(x.responses[0]!.headers.connection, 'close');
      assert.equal(x.responses.length, 1);
      assert.ok(x.closed);
    }
    await settle();
    assert.equal(received('/public/smuggled-cl').length, 0);
  });

  it('well-framed pipelined requests are still answered, in order, each forwarded once', async () => {
    const one = (n: number): string => `GET /echo/pipe-${n} HTTP/1.1\r\nHost: ${host}\r\n${auth()}\r\n`;
    const x = await rawExchange(regate.proxyUrl, [one(1) + one(2) + `GET /echo/pipe-3 HTTP/1.1\r\nHost: ${host}\r\n${auth()}Connection: close\r\n\r\n`]);
    assert.deepEqual(
      x.responses.map((r) => r.status),
      [200, 200, 200],
    );
    assert.deepEqual(
      x.responses.map((r) => (JSON.parse(r.body) as { url: string }).url),
      ['/echo/pipe-1', '/echo/pipe-2', '/echo/pipe-3'],
    );
    assert.equal(received('/echo/pipe-').length, 3);
  });
});

describe('identity headers cannot be spoofed on any route (point 4)', () => {
  it('an auth: none route to the same upstream drops X-User-Id in every spelling, and the configured removals', async () => {
    const x = await rawExchange(regate.proxyUrl, [
      `GET /public/spoof HTTP/1.1\r\nHost: ${host}\r\nX-User-Id: admin\r\nx_user_id: admin\r\nX-USER-ROLES: admin\r\nX-Internal-Auth: yes\r\nx_legacy_user: root\r\nX-Kept: 1\r\nConnection: close\r\n\r\n`,
    ]);
    assert.equal(x.responses[0]?.status, 200, x.raw.slice(0, 300));
    const seen = await upstream.waitForRequest('/public/spoof');
    const names = seen.rawHeaders.filter((_v, i) => i % 2 === 0).map((n) => n.toLowerCase().replaceAll('_', '-'));
    for (const n of ['x-user-id', 'x-user-roles', 'x-internal-auth', 'x-legacy-user']) assert.ok(!names.includes(n), `${n} reached the upstream`);
    assert.equal(seen.headers['x-kept'], '1');
    const p = JSON.parse(x.responses[0]!.body) as { headers: Record<string, string> };
    assert.equal(p.headers['x-user-id'], undefined);
  });

  it('the route that sets it sends only its own, unambiguously encoded (point 7)', async () => {
    const x = await rawExchange(regate.proxyUrl, [`GET /echo/identity HTTP/1.1\r\nHost: ${host}\r\n${auth()}X-User-Id: mallory\r\nConnection: close\r\n\r\n`]);
    assert.equal(x.responses[0]?.status, 200);
    const seen = await upstream.waitForRequest('/echo/identity');
    assert.equal(seen.headers['x-user-id'], 'alice');
    assert.deepEqual(decodeIdentityHeader(String(seen.headers['x-user-roles'])), ['user', 'admin']);
  });
});

describe('two copies of a header: the policy and the upstream see the same value (point 8)', () => {
  it('X-Tenant twice → one field "acme, globex" upstream, and the same in input.request.headers', async () => {
    const x = await rawExchange(regate.proxyUrl, [`GET /echo/tenant HTTP/1.1\r\nHost: ${host}\r\n${auth()}X-Tenant: acme\r\nX-Tenant: globex\r\nConnection: close\r\n\r\n`]);
    assert.equal(x.responses[0]?.status, 200);
    const seen = await upstream.waitForRequest('/echo/tenant');
    const values = seen.rawHeaders.filter((_v, i, a) => i % 2 === 1 && a[i - 1]!.toLowerCase() === 'x-tenant');
    assert.deepEqual(values, ['acme, globex']);
    const id = seen.headers['x-request-id'];
    const rec = await regate.waitForDecision((r) => r.decision_id === id);
    const input = rec.input as { request: { headers: Record<string, string> } };
    assert.equal(input.request.headers['x-tenant'], 'acme, globex');
  });
});

describe('slow bodies time out: 408 and close, logged (point 5)', () => {
  it('a streamed body that stalls → 408 body_timeout, the upstream request is cancelled', async () => {
    const x = await rawExchange(regate.proxyUrl, [`POST /upload/stall HTTP/1.1\r\nHost: ${host}\r\n${auth()}Content-Length: 10\r\n\r\nab`], 20_000);
    const p = assertProblem(x, 408, 'body_timeout');
    assert.equal(x.responses[0]!.headers.connection, 'close');
    assert.ok(x.closed, 'closed by regate, not by the test timeout');
    const seen = await upstream.waitForRequest('/upload/stall');
    await seen.done;
    assert.ok(seen.bodyBytes < 10, 'the upstream never got a complete body');
    const rec = await regate.waitForDecision((r) => r.decision_id === p.decision_id);
    assert.equal((rec.custom as Record<string, unknown>).reason, 'body_timeout');
    assert.equal((rec.custom as Record<string, unknown>).http_status, 408);
  });

  it('a body route body that never comes → 408 body_timeout, nothing forwarded', async () => {
    const x = await rawExchange(regate.proxyUrl, [`POST /body/stall HTTP/1.1\r\nHost: ${host}\r\n${auth()}Content-Type: application/json\r\nContent-Length: 20\r\n\r\n{"a"`], 20_000);
    assertProblem(x, 408, 'body_timeout');
    assert.ok(x.closed);
    await settle();
    assert.equal(received('/body/stall').length, 0);
  });

  it('a body dripping one byte at a time, steadily, still ends at the request deadline → 408 request_timeout', async () => {
    const drip: (string | number)[] = [`POST /upload/drip HTTP/1.1\r\nHost: ${host}\r\n${auth()}Content-Length: 200\r\n\r\n`];
    for (let i = 0; i < 200; i++) drip.push(200, 'x');
    const x = await rawExchange(regate.proxyUrl, drip, 30_000);
    const p = assertProblem(x, 408, 'request_timeout');
    assert.ok(x.closed);
    assert.ok(x.elapsedMs < 25_000, `closed after ${x.elapsedMs} ms`);
    const rec = await regate.waitForDecision((r) => r.decision_id === p.decision_id);
    assert.equal((rec.custom as Record<string, unknown>).reason, 'request_timeout');
  });

  it('both are counted in the metrics', async () => {
    const text = await (await fetch(`${regate.adminUrl}/metrics`)).text();
    const exp = parseExposition(text);
    let body = 0;
    let deadline = 0;
    for (const s of exp.samples) {
      if (!s.name.startsWith('regate_') || s.name.endsWith('_bucket')) continue;
      if (s.labels.reason === 'body_timeout') body += s.value;
      if (s.labels.reason === 'request_timeout') deadline += s.value;
    }
    assert.ok(body >= 2, `body_timeout counted ${body}`);
    assert.ok(deadline >= 1, `request_timeout counted ${deadline}`);
  });
});

describe('Expect: 100-continue only after authorization (point 6)', () => {
  const expect = (path: string, withToken: boolean, extra = ''): string =>
    `POST ${path} HTTP/1.1\r\nHost: ${host}\r\n${withToken ? auth() : ''}Content-Type: application/json\r\nContent-Length: 11\r\nExpect: 100-continue\r\n${extra}\r\n`;

  for (const [name, path, withToken, status] of [
    ['no token → 401', '/upload/e1', false, 401],
    ['denied by the policy → 403', '/denied/e2', true, 403],
    ['no token on a body route → 401', '/body/e3', false, 401],
  ] as const) {
    it(`${name}, no 100 Continue, connection closed`, async () => {
      const x = await rawExchange(regate.proxyUrl, [expect(path, withToken)]);
      assert.deepEqual(x.interim, [], 'no interim response');
      assert.equal(x.responses[0]?.status, status, x.raw.slice(0, 300));
      assert.equal(x.responses[0]!.headers.connection, 'close');
      assert.ok(x.closed);
      assert.equal(received(path).length, 0);
    });
  }

  for (const path of ['/upload/e4', '/body/e5']) {
    it(`allowed (${path}) → 100 Continue, then the body is forwarded`, async () => {
      const x = await rawExchange(regate.proxyUrl, [expect(path, true, 'Connection: close\r\n'), 300, '{"a":"b"}\r\n'], 10_000);
      assert.deepEqual(x.interim, [100], x.raw.slice(0, 300));
      assert.equal(x.responses[0]?.status, 200, x.raw.slice(0, 300));
      const seen = await upstream.waitForRequest(path);
      assert.equal(seen.bodyBytes, 11);
      assert.equal(seen.headers.expect, undefined);
    });
  }
});

describe('CONNECT and path edges (point 8)', () => {
  it('CONNECT → 400 connect_not_supported problem, logged and counted, closed', async () => {
    const x = await rawExchange(regate.proxyUrl, [`CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n`]);
    const p = assertProblem(x, 400, 'connect_not_supported');
    assert.ok(x.closed);
    const rec = await regate.waitForDecision((r) => r.decision_id === p.decision_id);
    assert.equal((rec.custom as Record<string, unknown>).reason, 'connect_not_supported');
    const exp = parseExposition(await (await fetch(`${regate.adminUrl}/metrics`)).text());
    assert.ok(exp.samples.some((s) => s.labels.reason === 'connect_not_supported' && s.value >= 1));
  });

  const targets: [string, string][] = [
    ['/echo/admin%20', 'encoded_whitespace'],
    ['/echo/%20admin/x', 'encoded_whitespace'],
    ['/echo/%EF%BC%85%EF%BC%92%EF%BD%85%EF%BC%85%EF%BC%92%EF%BD%85/x', 'unicode_confusable'],
  ];
  for (const [target, reason] of targets) {
    it(`${target} → 400 ${reason}, never forwarded`, async () => {
      const x = await rawExchange(regate.proxyUrl, [`GET ${target} HTTP/1.1\r\nHost: ${host}\r\n${auth()}Connection: close\r\n\r\n`]);
      assertProblem(x, 400, reason);
      await settle();
      assert.equal(upstream.requests.filter((r) => r.url === target).length, 0);
    });
  }
});
