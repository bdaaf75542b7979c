/**
 * The HTTP authz front end: which fields of a check request describe the
 * original request, per protocol, and that a check request without them is
 * refused — then, through a real RegateServer on loopback, what each answer
 * carries (Envoy's HTTP ext_authz shape is exercised here with requests
 * shaped as Envoy sends them: no Envoy binary is available to the tests).
 */
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { createAuthzFrontEnd, type HttpAuthzProtocol } from '../../../src/authz/http.ts';
import type { AuthzListenerConfig } from '../../../src/config/types.ts';
import { parseConfig } from '../../../src/config/load.ts';
import { createMetrics } from '../../../src/observe/metrics.ts';
import { readBundle } from '../../../src/policy/bundle.ts';
import { createRuntime, type Runtime } from '../../../src/runtime.ts';
import { RegateServer } from '../../../src/server.ts';
import { send } from '../../helpers/http.ts';
import { buildBundle } from '../../helpers/opa.ts';

/** A check request as node parses one: only the fields the front end reads. */
function request(method: string, url: string, raw: string[]): IncomingMessage {
  const headers: Record<string, string> = {};
  for (let i = 0; i < raw.length; i += 2) {
    const n = raw[i]!.toLowerCase();
    headers[n] = headers[n] === undefined ? raw[i + 1]! : `${headers[n]}, ${raw[i + 1]!}`;
  }
  return { method, url, headers, rawHeaders: raw } as unknown as IncomingMessage;
}

const listener = (protocol: HttpAuthzProtocol, path_prefix = ''): AuthzListenerConfig & { protocol: HttpAuthzProtocol } => ({ host: '127.0.0.1', port: 0, protocol, path_prefix });

describe('authz view: nginx', () => {
  const fe = createAuthzFrontEnd(listener('nginx'));
  const carriers = ['X-Original-Method', 'POST', 'X-Original-URI', '/v1/x?y=1', 'X-Original-Host', 'api.example.com', 'X-Real-IP', '203.0.113.9'];

  it('takes method, target, host and client from the X-Original-* fields, never from the check request itself', () => {
    const v = fe.view(request('GET', '/_regate_authz', ['Host', '127.0.0.1:9191', ...carriers, 'Accept', 'a/b', 'Authorization', 'Bearer t']));
    assert.equal(v.refused, undefined);
    assert.equal(v.method, 'POST');
    assert.equal(v.target, '/v1/x?y=1');
    assert.equal(v.headers.host, 'api.example.com');
    assert.equal(v.remoteAddr, '203.0.113.9');
    assert.equal(v.body, null, 'auth_request never relays the body');
    assert.deepEqual(v.rawHeaders, ['Host', 'api.example.com', 'Accept', 'a/b', 'Authorization', 'Bearer t']);
    assert.equal(v.headers['x-original-uri'], undefined, 'carriers are not the client’s headers');
    assert.equal(v.headers.authorization, 'Bearer t');
  });

  for (const missing of ['X-Original-Method', 'X-Original-URI', 'X-Original-Host', 'X-Real-IP']) {
    it(`refuses a check request without ${missing}`, () => {
      const i = carriers.indexOf(missing);
      const raw = [...carriers.slice(0, i), ...carriers.slice(i + 2)];
      const v = fe.view(request('GET', '/', ['Host', 'h', ...raw]));
      assert.equal(v.refused?.reason, 'authz_request_incomplete');
      assert.match(v.refused!.message, new RegExp(missing.toLowerCase()));
    });
  }

  it('refuses a repeated carrier (which one would the proxy have meant?)', () => {
    const v = fe.view(request('GET', '/', ['Host', 'h', ...carriers, 'X-Original-URI', '/v1/other']));
    assert.equal(v.refused?.reason, 'authz_request_incomplete');
  });

  it('refuses a method that is not a token and a client address that is not an IP', () => {
    const bad = (name: string, value: string): string[] => carriers.map((x, i) => (i > 0 && carriers[i - 1] === name ? value : x));
    assert.equal(fe.view(request('GET', '/', ['Host', 'h', ...bad('X-Original-Method', 'GET /admin')])).refused?.reason, 'authz_request_incomplete');
    assert.equal(fe.view(request('GET', '/', ['Host', 'h', ...bad('X-Real-IP', 'evil.example')])).refused?.reason, 'authz_request_incomplete');
  });
});

describe('authz view: forward_auth (Caddy, Traefik)', () => {
  const fe = createAuthzFrontEnd(listener('forward_auth'));
  it('reads X-Forwarded-Method/-Uri/-Host and the right-most X-Forwarded-For', () => {
    const v = fe.view(
      request('GET', '/verify', ['Host', 'auth', 'X-Forwarded-Method', 'DELETE', 'X-Forwarded-Uri', '/v1/a', 'X-Forwarded-Host', 'api', 'X-Forwarded-Proto', 'https', 'X-Forwarded-For', '10.0.0.1, 198.51.100.4']),
    );
    assert.equal(v.refused, undefined);
    assert.equal(v.method, 'DELETE');
    assert.equal(v.target, '/v1/a');
    assert.equal(v.headers.host, 'api');
    assert.equal(v.remoteAddr, '198.51.100.4', 'the hop the trusted proxy appended, not a client-sent entry');
    assert.equal(v.headers['x-forwarded-for'], undefined);
  });

  it('refuses a check request without X-Forwarded-Uri', () => {
    const v = fe.view(request('GET', '/verify', ['Host', 'auth', 'X-Forwarded-Method', 'GET', 'X-Forwarded-Host', 'api', 'X-Forwarded-For', '198.51.100.4']));
    assert.equal(v.refused?.reason, 'authz_request_incomplete');
  });
});

describe('authz view: envoy_http', () => {
  const fe = createAuthzFrontEnd(listener('envoy_http', '/authz'));
  it('the original path follows path_prefix; method and Host are the check request’s own', () => {
    const v = fe.view(request('PUT', '/authz/v1/a?b=1', ['Host', 'api.example.com', 'X-Forwarded-For', '192.0.2.1']));
    assert.equal(v.refused, undefined);
    assert.equal(v.method, 'PUT');
    assert.equal(v.target, '/v1/a?b=1');
    assert.equal(v.headers.host, 'api.example.com');
    assert.equal(v.remoteAddr, '192.0.2.1');
  });

  for (const url of ['/v1/a', '/authzv1/a', '/authz']) {
    it(`refuses ${url}: not under path_prefix /authz/`, () => {
      assert.equal(fe.view(request('GET', url, ['Host', 'h', 'X-Forwarded-For', '192.0.2.1'])).refused?.reason, 'authz_request_incomplete');
    });
  }
});

describe('authz answers, through a real RegateServer', () => {
  let rt: Runtime;
  let server: RegateServer;
  let url: string;
  const records: Record<string, unknown>[] = [];

  before(async () => {
    const bundle = await buildBundle({
      files: {
        'authz.rego': `package t
default allow := false
allow if input.route.id == "open"
decision := {"allow": allow, "headers": {"x-policy": "yes"}, "response_headers": {"x-why": "t"}}
`,
      },
      entrypoints: ['t/decision'],
    });
    const config = parseConfig(
      `listen: {proxy: {host: 127.0.0.1, port: 0}, admin: {host: 127.0.0.1, port: 0}, authz: {host: 127.0.0.1, port: 0, protocol: envoy_http, path_prefix: /check}}
upstreams: {app: {url: "http://127.0.0.1:9"}}
issuers: [{id: idp, issuer: "https://idp.test", jwks_url: "http://127.0.0.1:9/jwks", audiences: [a], algorithms: [ES256]}]
policy: {bundle: ${bundle}, default_entrypoint: t/decision}
routes:
  - {id: open, match: {methods: [GET], path: /open}, upstream: app, auth: optional, identity_headers: {x-regate-route: route.id, x-regate-sub: subject.sub}}
  - {id: closed, match: {methods: [GET], path: /closed}, upstream: app, auth: none}
`,
      '/tmp/regate-authz-unit.yaml',
    );
    const logger = pino({ level: 'silent' });
    const metrics = createMetrics({ routeIds: ['open', 'closed'], issuerIds: [], bundle: { name: 'regate', revision: '' }, version: 't', defaultMetrics: false });
    rt = await createRuntime(config, { active: await readBundle(bundle) }, { logger, metrics, decisionLogStream: { write: (line: string) => void records.push(JSON.parse(line)) } as never });
    server = new RegateServer({ config, metrics, logger });
    server.swap(rt);
    const urls = await server.listen();
    url = urls.authz!;
  });

  after(async () => {
    await server?.drain({ graceMs: 1000, drainDelayMs: 0 });
    await server?.closeAdmin();
    await rt?.close();
  });

  it('an allow: 200, no body, identity and policy headers, the unset identity header named for removal, the decision id', async () => {
    const res = await send(`${url}/check/open`, { headers: { 'x-forwarded-for': '192.0.2.1', 'x-regate-sub': 'root' } });
    assert.equal(res.status, 200);
    assert.equal(res.text, '');
    assert.equal(res.headers['x-regate-route'], 'open');
    assert.equal(res.headers['x-policy'], 'yes');
    assert.equal(res.headers['x-regate-sub'], undefined, 'never echoes the client’s copy');
    assert.equal(res.headers['x-envoy-auth-headers-to-remove'], 'x-regate-sub');
    const id = res.headers['x-regate-decision-id'];
    assert.ok(typeof id === 'string' && id.length === 36);
    await waitFor(() => records.some((r) => r.decision_id === id));
    const rec = records.find((r) => r.decision_id === id)!;
    assert.equal((rec.custom as { http_path: string }).http_path, '/open');
    assert.equal(rec.requested_by, '192.0.2.1');
  });

  it('a deny: the status, the problem document and the deny’s response headers', async () => {
    const res = await send(`${url}/check/closed`, { headers: { 'x-forwarded-for': '192.0.2.1' } });
    assert.equal(res.status, 403);
    assert.equal(res.headers['content-type'], 'application/problem+json');
    assert.equal(res.headers['x-why'], 't');
    assert.equal(res.json().reason, 'policy_denied');
    assert.equal(res.json().decision_id, res.headers['x-regate-decision-id']);
  });

  it('path confusion in the original path is refused as on the proxy', async () => {
    const res = await send(`${url}/check/open/..%2fclosed`, { headers: { 'x-forwarded-for': '192.0.2.1' } });
    assert.equal(res.status, 400);
  });
});

async function waitFor(cond: () => boolean): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met within 5 s');
    await new Promise((r) => setTimeout(r, 20));
  }
}
