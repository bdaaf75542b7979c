/**
 * The whole enforcement path, end to end, with real components on loopback:
 * a real JWKS server, a real upstream, a policy compiled by the real opa CLI,
 * and a real regate process. Asserts on responses, on what the upstream saw,
 * on parsed decision-log records and on parsed /metrics.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { performance } from 'node:perf_hooks';
import { request } from 'undici';
import { startJwksServer, type JwksServer } from '../helpers/jwks-server.ts';
import { closedPort, rawRequest, send } from '../helpers/http.ts';
import { parseExposition, sampleValue } from '../helpers/metrics.ts';
import { buildBundle } from '../helpers/opa.ts';
import { startRegate, writeConfig, type RegateProcess } from '../helpers/regate-process.ts';
import {
  algNoneToken,
  baseClaims,
  generateTestKey,
  hs256WithPublicKey,
  jwksOf,
  nowSeconds,
  signToken,
  tamperPayload,
  TEST_ISSUER,
  type TestKey,
} from '../helpers/tokens.ts';
import { startUpstreamServer, type EchoBody, type TestUpstream } from '../helpers/upstream-server.ts';

const POLICY = `
package test.authz

role_routes := {
	"data_scientist": {"predict"},
	"ml_engineer": {"predict", "metadata"},
}

open_routes := {"stream", "echo", "slow", "down"}

default allow := false

allow if {
	some r in input.subject.roles
	input.route.id in role_routes[r]
}

allow if {
	input.route.id in open_routes
	input.subject.authenticated
}

allow if input.route.id == "public"

reasons contains sprintf("route %s is not granted to roles [%s]", [input.route.id, concat(", ", input.subject.roles)]) if not allow

decision := {"allow": allow, "reasons": reasons, "headers": {"x-policy-version": "v1"}}

# Two complete definitions that disagree at run time: an evaluation error.
broken := input.request.method

broken := input.request.path

# Not a boolean, not an object with a boolean allow.
garbage := "yes"
`;

let jwks: JwksServer;
let upstream: TestUpstream;
let regate: RegateProcess;
let es256: TestKey;
let rs256: TestKey;
let es384: TestKey;

const token = (claims: Record<string, unknown> = {}, key: TestKey = es256): Promise<string> =>
  signToken(key, baseClaims({ aud: 'regate', realm_access: { roles: ['data_scientist'] }, ...claims }));

before(async () => {
  [es256, rs256, es384] = await Promise.all([generateTestKey('ES256'), generateTestKey('RS256'), generateTestKey('ES384')]);
  jwks = await startJwksServer(jwksOf(es256, rs256, es384));
  upstream = await startUpstreamServer();
  const bundle = await buildBundle({
    files: { 'authz.rego': POLICY },
    entrypoints: ['test/authz/decision', 'test/authz/broken', 'test/authz/garbage'],
    args: ['--revision', 'it-rev-1'],
  });
  const route = (id: string, methods: string[], path: string, extra: Record<string, unknown> = {}) => ({
    id,
    match: { methods, path },
    upstream: 'app',
    ...extra,
  });
  const configFile = writeConfig({
    listen: { proxy: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 } },
    upstreams: {
      app: { url: upstream.url },
      slow: { url: upstream.url, timeouts: { headers_ms: 300 } },
      down: { url: `http://127.0.0.1:${await closedPort()}`, timeouts: { connect_ms: 500 } },
    },
    issuers: [
      {
        id: 'idp',
        issuer: TEST_ISSUER,
        jwks_url: jwks.url,
        audiences: ['regate'],
        algorithms: ['ES256', 'RS256'],
        claims: { roles: 'realm_access.roles' },
      },
    ],
    policy: { bundle, default_entrypoint: 'test/authz/decision', timezone: 'America/Los_Angeles' },
    decision_log: { destination: 'stdout', labels: { env: 'it' } },
    routes: [
      route('predict', ['POST'], '/v1/models/{model}/predict', {
        identity_headers: { 'x-regate-sub': 'subject.sub', 'x-regate-roles': 'subject.roles' },
        expose_reasons: true,
        attributes: { sensitivity: 'low' },
      }),
      route('metadata', ['GET'], '/v1/models/{model}/metadata', { expose_reasons: true }),
      route('stream', ['GET'], '/v1/stream'),
      route('echo', ['GET', 'POST'], '/echo/{rest*}', {
        identity_headers: { 'x-regate-sub': 'subject.sub', 'x-regate-tenant': 'subject.tenant' },
      }),
      route('public', ['GET'], '/public/{rest*}', { auth: 'none' }),
      route('broken', ['GET'], '/broken', { entrypoint: 'test/authz/broken' }),
      route('garbage', ['GET'], '/garbage', { entrypoint: 'test/authz/garbage' }),
      { ...route('slow', ['GET'], '/slow'), upstream: 'slow' },
      { ...route('down', ['GET'], '/down'), upstream: 'down' },
    ],
  });
  regate = await startRegate(configFile);
});

after(async () => {
  await regate?.stop();
  await upstream?.close();
  await jwks?.close();
});

/** Upstream requests seen so far; a denied request must not add one. */
const seen = (): number => upstream.requests.length;

describe('allow and deny by role', () => {
  it('forwards an allowed call with identity headers and without the client token', async () => {
    const t = await token();
    const res = await send(`${regate.proxyUrl}/v1/models/sentiment/predict?explain=1`, {
      method: 'POST',
      headers: { authorization: `Bearer ${t}`, 'content-type': 'application/json' },
      body: '{"text":"great"}',
    });
    assert.equal(res.status, 200);
    const echo = res.json<EchoBody>();
    assert.equal(echo.method, 'POST');
    assert.equal(echo.url, '/v1/models/sentiment/predict?explain=1');
    assert.equal(echo.body, '{"text":"great"}');
    assert.equal(echo.headers['x-regate-sub'], 'alice');
    assert.equal(echo.headers['x-regate-roles'], 'data_scientist');
    assert.equal(echo.headers['x-policy-version'], 'v1', 'policy-added header reaches the upstream');
    assert.equal(echo.headers.authorization, undefined, 'the client token is not forwarded');
    assert.equal(echo.headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(echo.headers['x-forwarded-proto'], 'http');
    const id = String(echo.headers['x-request-id']);
    const rec = await regate.waitForDecision((r) => r.decision_id === id);
    assert.equal(rec.path, 'test/authz/decision');
    assert.deepEqual(rec.result, { allow: true, reasons: [], headers: { 'x-policy-version': 'v1' } });
    const custom = rec.custom as Record<string, unknown>;
    assert.equal(custom.route_id, 'predict');
    assert.equal(custom.http_status, 200);
    assert.equal(custom.decision, 'allow');
    assert.deepEqual(custom.authn, { outcome: 'verified', issuer: 'idp' });
    const input = rec.input as Record<string, any>;
    assert.equal(input.request.path, '/v1/models/sentiment/predict');
    assert.deepEqual(input.request.params, { model: 'sentiment' });
    assert.deepEqual(input.request.query, { explain: ['1'] });
    assert.equal(input.request.headers.authorization, undefined);
    assert.deepEqual(input.route, { id: 'predict', attributes: { sensitivity: 'low' } });
    assert.equal(input.subject.sub, 'alice');
    assert.deepEqual(input.subject.roles, ['data_scientist']);
    assert.equal(input.time.timezone, 'America/Los_Angeles');
    assert.equal(typeof input.time.now_ns, 'number');
    assert.deepEqual(rec.bundles, { regate: { revision: 'it-rev-1' } });
    assert.equal((rec.labels as Record<string, string>).env, 'it');
    assert.ok(!JSON.stringify(rec).includes(t), 'the raw token never appears in the decision log');
  });

  it('denies a role the policy does not grant: 403 problem with reasons, nothing forwarded', async () => {
    const before = seen();
    const res = await send(`${regate.proxyUrl}/v1/models/sentiment/metadata`, {
      headers: { authorization: `Bearer ${await token()}` },
    });
    assert.equal(res.status, 403);
    assert.match(String(res.headers['content-type']), /^application\/problem\+json/);
    const p = res.json();
    assert.equal(p.status, 403);
    assert.equal(p.reason, 'policy_denied');
    assert.deepEqual(p.reasons, ['route metadata is not granted to roles [data_scientist]']);
    assert.equal(typeof p.decision_id, 'string');
    assert.equal(seen(), before);
    const rec = await regate.waitForDecision((r) => r.decision_id === p.decision_id);
    assert.equal((rec.custom as Record<string, unknown>).decision, 'deny');
    assert.equal((rec.custom as Record<string, unknown>).http_status, 403);
  });

  it('lets an ML engineer read metadata', async () => {
    const res = await send(`${regate.proxyUrl}/v1/models/sentiment/metadata`, {
      headers: { authorization: `Bearer ${await token({ realm_access: { roles: ['ml_engineer'] } })}` },
    });
    assert.equal(res.status, 200);
  });

  it('denies a token with no roles and one with unrelated roles', async () => {
    for (const roles of [[], ['analyst']]) {
      const res = await send(`${regate.proxyUrl}/v1/models/m/predict`, {
        method: 'POST',
        headers: { authorization: `Bearer ${await token({ realm_access: { roles } })}` },
        body: '{}',
      });
      assert.equal(res.status, 403, JSON.stringify(roles));
    }
  });

  it('serves auth: none routes without a token, and still evaluates the policy', async () => {
    const res = await send(`${regate.proxyUrl}/public/docs/index.html`);
    assert.equal(res.status, 200);
    const id = String(res.json<EchoBody>().headers['x-request-id']);
    const rec = await regate.waitForDecision((r) => r.decision_id === id);
    assert.deepEqual((rec.custom as Record<string, unknown>).authn, { outcome: 'skipped' });
  });
});

describe('authentication failures → 401, nothing forwarded', () => {
  const now = nowSeconds();
  const cases: Array<[string, () => Promise<Record<string, string>>, string]> = [
    ['missing token', async () => ({}), 'missing_token'],
    ['Basic scheme', async () => ({ authorization: 'Basic YWxpY2U6cHc=' }), 'malformed_authorization'],
    ['Bearer without token', async () => ({ authorization: 'Bearer' }), 'malformed_authorization'],
    ['not a JWT', async () => ({ authorization: 'Bearer abc.def' }), 'malformed_token'],
    ['expired', async () => ({ authorization: `Bearer ${await token({ iat: now - 7200, exp: now - 3600 })}` }), 'token_expired'],
    ['not yet valid', async () => ({ authorization: `Bearer ${await token({ nbf: now + 3600 })}` }), 'token_not_yet_valid'],
    ['wrong audience', async () => ({ authorization: `Bearer ${await token({ aud: 'another-api' })}` }), 'invalid_audience'],
    ['unknown issuer', async () => ({ authorization: `Bearer ${await token({ iss: 'https://evil.example' })}` }), 'unknown_issuer'],
    ['missing exp', async () => ({ authorization: `Bearer ${await token({ exp: undefined })}` }), 'missing_claim'],
    ['alg none', async () => ({ authorization: `Bearer ${algNoneToken(baseClaims({ aud: 'regate' }), es256.kid)}` }), 'algorithm_not_allowed'],
    [
      'HS256 signed with the RSA public key',
      async () => ({ authorization: `Bearer ${await hs256WithPublicKey(rs256, baseClaims({ aud: 'regate' }))}` }),
      'algorithm_not_allowed',
    ],
    ['ES384: a real key, but not an allowed algorithm', async () => ({ authorization: `Bearer ${await token({}, es384)}` }), 'algorithm_not_allowed'],
    [
      'tampered payload (role escalation)',
      async () => ({ authorization: `Bearer ${tamperPayload(await token(), { realm_access: { roles: ['ml_engineer'] } })}` }),
      'invalid_signature',
    ],
  ];

  for (const [name, headers, reason] of cases) {
    it(`${name} → ${reason}`, async () => {
      const before = seen();
      const res = await send(`${regate.proxyUrl}/v1/models/sentiment/predict`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(await headers()) },
        body: '{}',
      });
      assert.equal(res.status, 401);
      const challenge = String(res.headers['www-authenticate']);
      assert.match(challenge, /^Bearer realm="regate"/);
      if (reason === 'missing_token') assert.doesNotMatch(challenge, /error=/);
      else assert.match(challenge, /error="invalid_(token|request)"/);
      const p = res.json();
      assert.equal(p.reason, reason);
      assert.equal(seen(), before, 'nothing forwarded');
      const rec = await regate.waitForDecision((r) => r.decision_id === p.decision_id);
      assert.deepEqual((rec.custom as Record<string, unknown>).authn, { outcome: 'failed', reason });
      assert.equal(rec.input, undefined, 'no policy input is built for an unauthenticated request');
    });
  }

  it('two Authorization headers → 401 multiple_authorization, even if both are valid', async () => {
    const t = await token();
    const res = await rawRequest(
      regate.proxyUrl,
      `POST /v1/models/m/predict HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${t}\r\nAuthorization: Bearer ${t}\r\nContent-Length: 2`,
      '{}',
    );
    assert.equal(res.status, 401);
    assert.equal(res.json().reason, 'multiple_authorization');
  });

  it('a token in the query string is never read', async () => {
    const res = await send(`${regate.proxyUrl}/v1/models/m/predict?access_token=${await token()}`, { method: 'POST', body: '{}' });
    assert.equal(res.status, 401);
    assert.equal(res.json().reason, 'missing_token');
  });
});

describe('canonical path first: ambiguous targets → 400, never forwarded', () => {
  const targets: Array<[string, string]> = [
    ['/v1/models/../admin/predict', 'dot_segment'],
    ['/v1/models/%2e%2e/admin/predict', 'dot_segment'],
    ['/v1/models/.%2E/predict', 'dot_segment'],
    ['/v1/models/./m/predict', 'dot_segment'],
    ['/v1/models/a%2fb/predict', 'encoded_slash'],
    ['/v1/models/a%5Cb/predict', 'backslash'],
    ['/v1/models/a\\b/predict', 'backslash'],
    ['/v1/models/a%00/predict', 'control_character'],
    ['/v1/models/a%0d%0aX-Evil:1/predict', 'control_character'],
    ['/v1/models/%ff/predict', 'invalid_utf8'],
    ['/v1/models/%zz/predict', 'invalid_percent_encoding'],
    ['/v1//models/m/predict', 'empty_segment'],
    ['http://internal.example/v1/models/m/predict', 'absolute_form'],
    ['/v1/models/m/predict#frag', 'fragment'],
    ['/v1/models/m;jsessionid=1/predict', 'semicolon'],
  ];
  for (const [target, reason] of targets) {
    it(`${target} → ${reason}`, async () => {
      const before = seen();
      const res = await rawRequest(
        regate.proxyUrl,
        `POST ${target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${await token()}\r\nContent-Length: 2`,
        '{}',
      );
      assert.equal(res.status, 400, res.text);
      assert.equal(res.json().reason, reason);
      assert.equal(seen(), before);
    });
  }

  it('forwards the canonical form: percent-encoding normalized, the upstream sees what the policy saw', async () => {
    const res = await send(`${regate.proxyUrl}/echo/caf%C3%A9/%7Euser/a+b?q=a+b&x=%41`, {
      headers: { authorization: `Bearer ${await token()}` },
    });
    assert.equal(res.status, 200);
    const echo = res.json<EchoBody>();
    assert.equal(echo.url, '/echo/caf%C3%A9/~user/a%2Bb?q=a%20b&x=A');
    const rec = await regate.waitForDecision((r) => r.decision_id === echo.headers['x-request-id']);
    const input = rec.input as Record<string, any>;
    assert.equal(input.request.path, '/echo/café/~user/a+b');
    assert.deepEqual(input.request.params, { rest: 'café/~user/a+b' });
    assert.deepEqual(input.request.query, { q: ['a b'], x: ['A'] });
  });

  it('404 for no route and 405 with Allow for a known path', async () => {
    const t = await token();
    const nf = await send(`${regate.proxyUrl}/v2/unknown`, { headers: { authorization: `Bearer ${t}` } });
    assert.equal(nf.status, 404);
    assert.equal(nf.json().reason, 'route_not_found');
    const na = await send(`${regate.proxyUrl}/v1/models/m/predict`, { method: 'DELETE', headers: { authorization: `Bearer ${t}` } });
    assert.equal(na.status, 405);
    assert.equal(na.headers.allow, 'POST');
  });
});

describe('header hygiene', () => {
  it('strips client-sent identity headers in every spelling and spoofed forwarding headers', async () => {
    const t = await token({ sub: 'alice' });
    const res = await rawRequest(
      regate.proxyUrl,
      [
        'GET /echo/x HTTP/1.1',
        'Host: api.example.com',
        `Authorization: Bearer ${t}`,
        'X-Regate-Sub: mallory',
        'x_regate_sub: mallory',
        'X-REGATE_SUB: mallory',
        'X-Regate-Tenant: other-tenant',
        'X-Regate-Admin: true',
        'X-Forwarded-For: 10.0.0.1',
        'Forwarded: for=10.0.0.1',
        'X-Real-IP: 10.0.0.1',
        'Connection: X-Custom-Hop',
        'X-Custom-Hop: secret',
        'traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
      ].join('\r\n'),
    );
    assert.equal(res.status, 200, res.text);
    const echo = res.json<EchoBody>();
    const names = echo.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase().replace(/_/g, '-'));
    assert.deepEqual(names.filter((n) => n === 'x-regate-sub'), ['x-regate-sub'], 'exactly one, ours');
    assert.equal(echo.headers['x-regate-sub'], 'alice');
    assert.equal(echo.headers['x-regate-tenant'], undefined, 'no tenant claim → no header, and the spoofed one is gone');
    assert.equal(echo.headers['x-regate-admin'], undefined);
    assert.equal(echo.headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(echo.headers.forwarded, undefined);
    assert.equal(echo.headers['x-real-ip'], undefined);
    assert.equal(echo.headers['x-custom-hop'], undefined, 'a header named in Connection is hop-by-hop');
    assert.equal(echo.headers['x-forwarded-host'], 'api.example.com');
    assert.equal(echo.headers.traceparent, '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
  });

  it('refuses a Host the upstream could read as another host (host-route bypass), nothing forwarded', async () => {
    const t = await token();
    for (const host of ['admin.example.com,x', 'x,admin.example.com', 'a@admin.example.com']) {
      const before = seen();
      const res = await rawRequest(regate.proxyUrl, `GET /echo/x HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer ${t}`);
      assert.equal(res.status, 400, host);
      assert.equal(res.json().reason, 'invalid_host');
      assert.equal(seen(), before);
    }
  });

  it('shows the policy only header values the upstream receives (no forged forwarding or identity headers)', async () => {
    const res = await rawRequest(
      regate.proxyUrl,
      `GET /echo/policy-view HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${await token()}\r\nX-Forwarded-For: 10.0.0.1\r\nX-Regate-Sub: mallory\r\nX_Regate_Tenant: evil\r\nX-Custom: kept`,
    );
    assert.equal(res.status, 200);
    const rec = await regate.waitForDecision((r) => r.decision_id === res.json<EchoBody>().headers['x-request-id']);
    const headers = (rec.input as { request: { headers: Record<string, string> } }).request.headers;
    assert.equal(headers['x-forwarded-for'], undefined);
    assert.equal(headers['x-regate-sub'], undefined);
    assert.equal(headers.x_regate_tenant, undefined);
    assert.equal(headers['x-custom'], 'kept');
  });

  it('refuses Content-Length with Transfer-Encoding (smuggling) before any routing', async () => {
    const before = seen();
    const res = await rawRequest(
      regate.proxyUrl,
      `POST /echo/x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${await token()}\r\nContent-Length: 4\r\nTransfer-Encoding: chunked`,
      '0\r\n\r\nGET /admin HTTP/1.1\r\nHost: x\r\n\r\n',
    );
    assert.equal(res.status, 400);
    assert.match(String(res.headers['content-type']), /problem\+json/);
    assert.equal(seen(), before);
  });

  it('refuses an oversized header block with 431', async () => {
    const res = await rawRequest(regate.proxyUrl, `GET /echo/x HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(40_000)}`);
    assert.equal(res.status, 431);
  });
});

describe('streaming and upstream failures', () => {
  it('delivers Server-Sent Events one by one, not buffered', async () => {
    const res = await request(`${regate.proxyUrl}/v1/stream?mode=sse&events=4&interval=200`, {
      headers: { authorization: `Bearer ${await token()}` },
    });
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers['content-type']), /text\/event-stream/);
    const rec = upstream.requests.at(-1)!;
    const arrivals: number[] = [];
    let text = '';
    for await (const chunk of res.body) {
      text += chunk.toString();
      const events = text.split('\n\n').length - 1;
      while (arrivals.length < events) arrivals.push(performance.now());
    }
    assert.equal(arrivals.length, 4);
    // Event 0 reached the client before the upstream even sent event 1.
    assert.ok(arrivals[0]! < rec.sentAt[1]!, `event 0 at ${arrivals[0]}, event 1 sent at ${rec.sentAt[1]}`);
    assert.ok(arrivals[2]! < rec.sentAt[3]!);
  });

  it('upstream down → 502, slow upstream → 504', async () => {
    const t = await token();
    const down = await send(`${regate.proxyUrl}/down`, { headers: { authorization: `Bearer ${t}` } });
    assert.equal(down.status, 502);
    assert.equal(down.json().reason, 'upstream_unavailable');
    const slow = await send(`${regate.proxyUrl}/slow?mode=slow-headers&delay=2000`, { headers: { authorization: `Bearer ${t}` } });
    assert.equal(slow.status, 504);
    assert.equal(slow.json().reason, 'upstream_timeout');
    const rec = await regate.waitForDecision((r) => r.decision_id === slow.json().decision_id);
    const custom = rec.custom as Record<string, unknown>;
    assert.equal(custom.decision, 'allow', 'the policy allowed it; the upstream failed');
    assert.equal(custom.reason, 'upstream_timeout');
  });

  it('a client that goes away aborts the upstream request', async () => {
    const ac = new AbortController();
    const pending = upstream.waitForRequest('/echo/hold-client-abort');
    const res = request(`${regate.proxyUrl}/echo/hold-client-abort?mode=hold`, {
      headers: { authorization: `Bearer ${await token()}` },
      signal: ac.signal,
    }).catch(() => null);
    const rec = await pending;
    ac.abort();
    await res;
    const done = await Promise.race([rec.done, new Promise<null>((r) => setTimeout(() => r(null), 5000))]);
    assert.ok(done && done.aborted, 'upstream saw the connection close');
  });
});

describe('policy failures fail closed', () => {
  for (const [path, reason] of [
    ['/broken', 'policy_eval_error'],
    ['/garbage', 'policy_invalid_result'],
  ] as const) {
    it(`${path} → 500 ${reason}, nothing forwarded`, async () => {
      const before = seen();
      const res = await send(`${regate.proxyUrl}${path}`, { headers: { authorization: `Bearer ${await token()}` } });
      assert.equal(res.status, 500);
      const p = res.json();
      assert.equal(p.reason, reason);
      assert.doesNotMatch(String(p.detail), /conflict|yes/, 'internals are not described to the client');
      assert.equal(seen(), before);
      const rec = await regate.waitForDecision((r) => r.decision_id === p.decision_id);
      assert.equal((rec.custom as Record<string, unknown>).decision, 'error');
    });
  }
});

describe('admin listener', () => {
  it('/healthz and /readyz answer; the proxy does not serve them', async () => {
    assert.equal((await send(`${regate.adminUrl}/healthz`)).status, 200);
    const ready = await send(`${regate.adminUrl}/readyz`);
    assert.equal(ready.status, 200, ready.text);
    assert.equal((await send(`${regate.proxyUrl}/metrics`)).status, 404);
  });

  it('/metrics counts what happened, by route, decision and status class', async () => {
    const exp = parseExposition((await send(`${regate.adminUrl}/metrics`)).text);
    const v = (name: string, labels: Record<string, string>): number => sampleValue(exp, name, labels) ?? 0;
    assert.ok(v('regate_requests_total', { route: 'predict', decision: 'allow', status_class: '2xx' }) >= 1);
    assert.ok(v('regate_requests_total', { route: 'metadata', decision: 'deny', status_class: '4xx' }) >= 1);
    assert.ok(v('regate_requests_total', { route: '_unmatched', decision: 'deny', status_class: '4xx' }) >= 1);
    assert.ok(v('regate_requests_total', { route: 'broken', decision: 'error', status_class: '5xx' }) >= 1);
    assert.equal(v('regate_authn_failures_total', { reason: 'token_expired' }), 1);
    assert.equal(v('regate_authn_failures_total', { reason: 'algorithm_not_allowed' }), 3);
    assert.equal(v('regate_policy_bundle_info', { name: 'regate', revision: 'it-rev-1' }), 1);
    assert.ok(v('regate_jwks_refresh_total', { issuer: 'idp', result: 'success' }) >= 1);
    assert.ok((sampleValue(exp, 'regate_decision_duration_seconds_count') ?? 0) >= 1);
    // Refused by node's parser before routing: no decision, but counted.
    assert.ok(v('regate_parser_refusals_total', { reason: 'malformed_request' }) >= 1, 'CL+TE smuggling attempt counted');
    assert.ok(v('regate_parser_refusals_total', { reason: 'header_too_large' }) >= 1, '431 counted');
  });
});
