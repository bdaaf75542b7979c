/**
 * regate as the authorization service of real proxies: nginx `auth_request`
 * and Caddy `forward_auth` (Debian packages), each started on loopback with
 * the config the README documents, in front of a real upstream, with a real
 * regate process (`listen.authz`) deciding. Allowed, denied, path-confusion
 * and spoofed-header requests go to nginx / Caddy; the assertions are on
 * what the upstream received and on regate's decision log.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startCaddy, startNginx, type FrontProxy } from '../helpers/front-proxies.ts';
import { rawRequest, send } from '../helpers/http.ts';
import { buildBundle } from '../helpers/opa.ts';
import { startRegate, writeConfig, type RegateProcess } from '../helpers/regate-process.ts';
import { baseClaims, generateTestKey, jwksOf, signToken, TEST_ISSUER, type TestKey } from '../helpers/tokens.ts';
import { startUpstreamServer, type TestUpstream } from '../helpers/upstream-server.ts';

const POLICY = `
package test.authz

default allow := false

allow if input.route.id == "public"

allow if {
	input.route.id == "reports"
	"reader" in input.subject.roles
}

decision := {"allow": allow, "reasons": ["readers only"]}
`;

let upstream: TestUpstream;
let key: TestKey;
let bundle: string;
let jwksDir: string;

before(async () => {
  key = await generateTestKey('ES256');
  [upstream, bundle] = await Promise.all([startUpstreamServer(), buildBundle({ files: { 'authz.rego': POLICY }, entrypoints: ['test/authz/decision'] })]);
  jwksDir = mkdtempSync(join(tmpdir(), 'regate-authz-'));
  writeFileSync(join(jwksDir, 'jwks.json'), JSON.stringify(jwksOf(key)));
});

after(async () => {
  await upstream?.close();
});

/** A regate whose authz listener speaks `protocol`; its proxy listener is unused. */
function startAuthz(protocol: 'nginx' | 'forward_auth'): Promise<RegateProcess> {
  const identity = { 'x-regate-sub': 'subject.sub' };
  const file = writeConfig(
    {
      listen: { proxy: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 }, authz: { host: '127.0.0.1', port: 0, protocol } },
      upstreams: { app: { url: upstream.url } },
      issuers: [{ id: 'idp', issuer: TEST_ISSUER, jwks_file: './jwks.json', audiences: ['regate'], algorithms: ['ES256'], claims: { roles: 'roles' } }],
      policy: { bundle, default_entrypoint: 'test/authz/decision' },
      routes: [
        { id: 'public', match: { methods: ['GET'], path: '/v1/public/{name}' }, upstream: 'app', auth: 'optional', identity_headers: identity },
        { id: 'reports', match: { methods: ['GET'], path: '/v1/reports/{id}' }, upstream: 'app', identity_headers: identity },
        { id: 'admin', match: { methods: ['GET', 'DELETE'], path: '/v1/admin' }, upstream: 'app', identity_headers: identity },
      ],
    },
    jwksDir,
  );
  return startRegate(file);
}

const token = (roles: string[], sub = 'alice'): Promise<string> => signToken(key, baseClaims({ aud: 'regate', sub, roles }));
const bearer = async (roles: string[], sub?: string): Promise<Record<string, string>> => ({ authorization: `Bearer ${await token(roles, sub)}` });

/** Upstream requests whose path starts with `prefix`: unique per test. */
const reached = (prefix: string): number => upstream.requests.filter((r) => r.url.startsWith(prefix)).length;

interface Rig {
  proxy: FrontProxy;
  regate: RegateProcess;
  /** The header that carries the original target for this protocol (a client must not control it). */
  targetHeader: string;
  methodHeader: string;
  /** Status a refusal other than 401 reaches the client with. */
  refusal: (status: number) => number;
}

/** The same cases through each proxy. */
function behavesAsAuthzService(name: string, rig: () => Rig): void {
  describe(`${name}: allowed requests`, () => {
    it('forwards with the identity header and the decision id; the upstream sees the path regate judged', async () => {
      const { proxy, regate } = rig();
      const res = await send(`${proxy.url}/v1/reports/${name}-ok?x=1`, { headers: await bearer(['reader']) });
      assert.equal(res.status, 200, proxy.log());
      const seen = await upstream.waitForRequest(`/v1/reports/${name}-ok`);
      assert.equal(seen.url, `/v1/reports/${name}-ok?x=1`);
      assert.equal(seen.headers['x-regate-sub'], 'alice');
      const decision = await regate.waitForDecision((r) => (r.custom as { http_path?: string })?.http_path === `/v1/reports/${name}-ok`);
      assert.equal(seen.headers['x-request-id'], decision.decision_id, 'the upstream joins the decision log');
      assert.equal((decision.result as { allow: boolean }).allow, true);
      assert.equal((decision.custom as { front_end: string }).front_end, name === 'nginx' ? 'nginx' : 'forward_auth');
      assert.equal((decision.input as { request: { query: unknown } }).request.query !== undefined, true);
    });

    it('an anonymous caller on an optional route: a client-sent identity header never reaches the upstream', async () => {
      const { proxy } = rig();
      const res = await send(`${proxy.url}/v1/public/${name}-spoof-sub`, { headers: { 'x-regate-sub': 'root', 'X-Regate-Sub': 'root' } });
      assert.equal(res.status, 200, proxy.log());
      const seen = await upstream.waitForRequest(`/v1/public/${name}-spoof-sub`);
      // nginx drops a field set to an empty value; Caddy sends it empty. Never the client's.
      assert.ok(seen.headers['x-regate-sub'] === undefined || seen.headers['x-regate-sub'] === '', JSON.stringify(seen.rawHeaders));
    });

    it('a verified caller’s identity header replaces a client-sent one', async () => {
      const { proxy } = rig();
      const res = await send(`${proxy.url}/v1/public/${name}-spoof-sub2`, { headers: { ...(await bearer([], 'bob')), 'x-regate-sub': 'root' } });
      assert.equal(res.status, 200, proxy.log());
      const seen = await upstream.waitForRequest(`/v1/public/${name}-spoof-sub2`);
      assert.equal(seen.headers['x-regate-sub'], 'bob');
    });
  });

  describe(`${name}: refusals never reach the upstream`, () => {
    it('a policy deny', async () => {
      const { proxy, regate, refusal } = rig();
      const res = await send(`${proxy.url}/v1/reports/${name}-deny`, { headers: await bearer(['guest']) });
      assert.equal(res.status, refusal(403));
      assert.equal(reached(`/v1/reports/${name}-deny`), 0);
      const d = await regate.waitForDecision((r) => (r.custom as { http_path?: string })?.http_path === `/v1/reports/${name}-deny`);
      assert.equal((d.custom as { reason: string }).reason, 'policy_denied');
      const metrics = await send(`${regate.adminUrl}/metrics`);
      const protocol = name === 'nginx' ? 'nginx' : 'forward_auth';
      assert.match(metrics.text, new RegExp(`regate_authz_requests_total\\{route="reports",protocol="${protocol}",decision="deny"\\} [1-9]`));
    });

    it('no token: 401 with the Bearer challenge', async () => {
      const { proxy } = rig();
      const res = await send(`${proxy.url}/v1/reports/${name}-anon`);
      assert.equal(res.status, 401);
      assert.match(String(res.headers['www-authenticate']), /^Bearer realm="regate"/);
      assert.equal(reached(`/v1/reports/${name}-anon`), 0);
    });

    for (const confusing of ['/v1/public/..%2fadmin', '/v1/public/%2e%2e/admin', '/v1/public/x%00', '/v1/public//admin']) {
      it(`path confusion: ${confusing}`, async () => {
        const { proxy, refusal } = rig();
        const before = upstream.requests.length;
        const res = await rawRequest(proxy.url, `GET ${confusing} HTTP/1.1\r\nHost: 127.0.0.1`);
        assert.ok(res.status === refusal(400) || res.status === 400 || res.status === 404, `${res.status}\n${proxy.log()}`);
        assert.equal(upstream.requests.length, before, 'nothing reached the upstream');
      });
    }

    it('a client-sent carrier header cannot choose the path regate judges', async () => {
      const { proxy, targetHeader, methodHeader, refusal } = rig();
      const before = upstream.requests.length;
      const res = await send(`${proxy.url}/v1/admin`, {
        headers: { ...(await bearer(['reader'])), [targetHeader]: `/v1/reports/${name}-spoofed`, [methodHeader]: 'GET' },
      });
      assert.equal(res.status, refusal(403), 'judged as /v1/admin (no rule allows it)');
      assert.equal(upstream.requests.length, before);
    });

    it('a client-sent method header cannot choose the method regate judges', async () => {
      const { proxy, methodHeader, refusal } = rig();
      const before = upstream.requests.length;
      const res = await send(`${proxy.url}/v1/admin`, { method: 'DELETE', headers: { ...(await bearer(['reader'])), [methodHeader]: 'GET' } });
      assert.equal(res.status, refusal(403));
      assert.equal(upstream.requests.length, before);
    });
  });
}

describe('nginx auth_request', () => {
  let proxy: FrontProxy;
  let regate: RegateProcess;
  before(async () => {
    regate = await startAuthz('nginx');
    const authz = new URL(regate.authzUrl);
    const up = new URL(upstream.url);
    // The README's nginx configuration, with test ports.
    proxy = await startNginx(
      () => `
    location = /_regate_authz {
      internal;
      proxy_pass http://${authz.host};
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-Method $request_method;
      proxy_set_header X-Original-URI $request_uri;
      proxy_set_header X-Original-Host $host;
      proxy_set_header X-Real-IP $remote_addr;
    }
    location / {
      auth_request /_regate_authz;
      auth_request_set $regate_sub $upstream_http_x_regate_sub;
      auth_request_set $regate_decision $upstream_http_x_regate_decision_id;
      proxy_set_header X-Regate-Sub $regate_sub;
      proxy_set_header X-Request-Id $regate_decision;
      proxy_pass http://${up.host};
    }`,
    );
  });
  after(async () => {
    await proxy?.stop();
    await regate?.stop();
  });

  behavesAsAuthzService('nginx', () => ({
    proxy,
    regate,
    targetHeader: 'X-Original-URI',
    methodHeader: 'X-Original-Method',
    refusal: (status) => (status === 401 || status >= 500 ? status : 403),
  }));

  it('a check request without the carrier headers (a direct call) is refused: 400 authz_request_incomplete', async () => {
    const res = await send(`${regate.authzUrl}/v1/public/direct`);
    assert.equal(res.status, 403, 'nginx mode answers non-401 refusals 403');
    assert.equal(res.json().reason, 'authz_request_incomplete');
  });
});

describe('Caddy forward_auth', () => {
  let proxy: FrontProxy;
  let regate: RegateProcess;
  before(async () => {
    regate = await startAuthz('forward_auth');
    const authz = new URL(regate.authzUrl);
    const up = new URL(upstream.url);
    // The README's Caddyfile, with test ports.
    proxy = await startCaddy(
      () => `	route {
		request_header -X-Regate-Sub
		forward_auth ${authz.host} {
			uri /_regate_authz
			copy_headers X-Regate-Sub X-Regate-Decision-Id>X-Request-Id
		}
		reverse_proxy ${up.host}
	}`,
    );
  });
  after(async () => {
    await proxy?.stop();
    await regate?.stop();
  });

  behavesAsAuthzService('caddy', () => ({
    proxy,
    regate,
    targetHeader: 'X-Forwarded-Uri',
    methodHeader: 'X-Forwarded-Method',
    refusal: (status) => status,
  }));

  it('a check request without the carrier headers (a direct call) is refused with 400 authz_request_incomplete', async () => {
    const res = await send(`${regate.authzUrl}/v1/public/direct`);
    assert.equal(res.status, 400);
    assert.equal(res.json().reason, 'authz_request_incomplete');
    assert.equal(res.headers['content-type'], 'application/problem+json');
    assert.ok(res.headers['x-regate-decision-id']);
  });
});
