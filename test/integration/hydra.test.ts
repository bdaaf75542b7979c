/**
 * regate against a real identity provider: Ory Hydra v2.3.0 (test/helpers/hydra.ts,
 * in-memory database, loopback ports). Hydra issues client_credentials access
 * tokens:
 *
 * - JWTs (RS256, scopes in `scp`): regate finds the keys by OIDC discovery
 *   (`discovery: true`) and verifies them locally; a token for another audience
 *   is refused (401 invalid_audience).
 * - opaque `ory_at_…` tokens (a client with `access_token_strategy: opaque`):
 *   regate introspects them at Hydra's admin `/admin/oauth2/introspect` (RFC 7662).
 *   With `max_ttl_s: 0` a revoked token (RFC 7009 /oauth2/revoke) is refused on
 *   the next request; with a positive cache it is still accepted until the entry
 *   expires (the documented trade-off). An unknown token is 401 and cached
 *   negatively (the second try is a cache hit, not a call).
 * - the agent's Hydra identity token exchanged at regate's broker (RFC 8693):
 *   the subject token verified through discovery, a narrower step token signed
 *   by the broker, which a second regate verifies by `jwks_url`.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { decodeJwt } from 'jose';
import { send } from '../helpers/http.ts';
import { startHydra, type Hydra, type HydraClient } from '../helpers/hydra.ts';
import { parseExposition, sampleValue } from '../helpers/metrics.ts';
import { buildBundle } from '../helpers/opa.ts';
import { startRegate, writeConfig, type RegateProcess } from '../helpers/regate-process.ts';
import { generateTestKey } from '../helpers/tokens.ts';
import { startUpstreamServer, type TestUpstream } from '../helpers/upstream-server.ts';

const POLICY = `
package idp

decision := {"allow": allow}

default allow := false

allow if "models.read" in input.subject.scopes
`;

// The broker's scope map: an agent holding models.read at the broker gets a
// step token for one model API, that scope only, one minute.
const BROKER_POLICY = `
package idp.broker

default grant := {"allow": false, "reasons": ["not in the scope map"]}

grant := {"allow": true, "scopes": ["models.read"], "ttl_s": 60, "reasons": ["agent may read models"]} if {
  "models.read" in input.subject.scopes
  input.requested.audience == ["models-api"]
  input.requested.scope == ["models.read"]
}
`;

let hydra: Hydra;
let upstream: TestUpstream;
let bundle: string;
let jwtClient: HydraClient;
let opaqueClient: HydraClient;
const started: RegateProcess[] = [];

before(async () => {
  upstream = await startUpstreamServer();
  bundle = await buildBundle({ files: { 'idp.rego': POLICY }, entrypoints: ['idp/decision'] });
  hydra = await startHydra();
  jwtClient = await hydra.createClient('agent-jwt', { scope: 'models.read models.write', audience: ['models-api', 'billing-api'] });
  opaqueClient = await hydra.createClient('agent-opaque', { scope: 'models.read', audience: ['models-api'], access_token_strategy: 'opaque' });
});

after(async () => {
  for (const r of started) await r.stop();
  await upstream?.close();
  await hydra?.stop();
});

async function start(cache: Record<string, number>): Promise<RegateProcess> {
  const r = await startRegate(
    writeConfig({
      listen: { proxy: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 } },
      upstreams: { models: { url: upstream.url } },
      issuers: [
        {
          id: 'hydra',
          issuer: hydra.issuer,
          discovery: true,
          audiences: ['models-api'],
          algorithms: ['RS256'],
          // Hydra's JWT access tokens carry scopes in `scp` (an array); its
          // introspection answers carry `scope` (a string). An array claim is
          // taken item by item, a string split on spaces: map the JWT's.
          claims: { scopes: 'scp' },
          introspection: { url: hydra.introspectionUrl, timeout_ms: 5000, cache },
        },
      ],
      policy: { bundle, default_entrypoint: 'idp/decision' },
      decision_log: { enabled: false },
      routes: [{ id: 'models', auth: 'required', match: { methods: ['GET'], path: '/v1/models/{model}' }, upstream: 'models' }],
    }),
  );
  started.push(r);
  return r;
}

const call = (r: RegateProcess, path: string, token: string) => send(`${r.proxyUrl}${path}`, { headers: { authorization: `Bearer ${token}` } });

async function metric(r: RegateProcess, name: string, labels: Record<string, string>): Promise<number> {
  const res = await send(`${r.adminUrl}/metrics`);
  return sampleValue(parseExposition(res.text), name, labels) ?? 0;
}

describe('Ory Hydra: JWT access tokens through OIDC discovery', () => {
  let regate: RegateProcess;
  before(async () => {
    regate = await start({ max_entries: 100, negative_ttl_s: 60, max_ttl_s: 0 });
  });

  it('allows a Hydra JWT with the granted scope; the upstream receives the call', async () => {
    const token = await hydra.token(jwtClient, 'models.read', 'models-api');
    assert.equal(token.split('.').length, 3, 'a JWT access token');
    const res = await call(regate, '/v1/models/jwt-ok', token);
    assert.equal(res.status, 200, res.text);
    const seen = await upstream.waitForRequest('/v1/models/jwt-ok');
    assert.equal(seen.method, 'GET');
    assert.equal(await metric(regate, 'regate_oidc_discovery_total', { issuer: 'hydra', result: 'success' }), 1);
  });

  it('denies a Hydra JWT without the scope (403) and one for another audience (401 invalid_audience)', async () => {
    const noScope = await hydra.token(jwtClient, 'models.write', 'models-api');
    assert.equal((await call(regate, '/v1/models/jwt-noscope', noScope)).status, 403);
    const otherAudience = await hydra.token(jwtClient, 'models.read', 'billing-api');
    const res = await call(regate, '/v1/models/jwt-aud', otherAudience);
    assert.equal(res.status, 401, res.text);
    assert.equal(res.json<{ reason: string }>().reason, 'invalid_audience');
    assert.ok(!upstream.requests.some((q) => q.url.startsWith('/v1/models/jwt-noscope') || q.url.startsWith('/v1/models/jwt-aud')));
  });
});

describe('Ory Hydra: opaque access tokens through RFC 7662 introspection', () => {
  it('allows an opaque token; after revocation it is refused at once with max_ttl_s: 0', async () => {
    const regate = await start({ max_entries: 100, negative_ttl_s: 60, max_ttl_s: 0 });
    const token = await hydra.token(opaqueClient, 'models.read', 'models-api');
    assert.match(token, /^ory_at_/);
    const res = await call(regate, '/v1/models/opaque-ok', token);
    assert.equal(res.status, 200, res.text);
    await upstream.waitForRequest('/v1/models/opaque-ok');
    await hydra.revoke(opaqueClient, token);
    const revoked = await call(regate, '/v1/models/opaque-revoked', token);
    assert.equal(revoked.status, 401, revoked.text);
    assert.equal(revoked.json<{ reason: string }>().reason, 'token_inactive');
    assert.equal(await metric(regate, 'regate_introspection_requests_total', { issuer: 'hydra', result: 'active' }), 1);
    assert.equal(await metric(regate, 'regate_introspection_requests_total', { issuer: 'hydra', result: 'inactive' }), 1);
  });

  it('an unknown token is 401 and cached negatively: the second try asks Hydra no more', async () => {
    const regate = await start({ max_entries: 100, negative_ttl_s: 60, max_ttl_s: 0 });
    const bogus = 'ory_at_unknown-token-regate-test.not-signed-by-hydra';
    for (let i = 0; i < 2; i++) {
      const res = await call(regate, `/v1/models/unknown-${i}`, bogus);
      assert.equal(res.status, 401, res.text);
      assert.equal(res.json<{ reason: string }>().reason, 'token_inactive');
    }
    assert.equal(await metric(regate, 'regate_introspection_requests_total', { issuer: 'hydra', result: 'inactive' }), 1);
    assert.equal(await metric(regate, 'regate_introspection_cache_hits_total', { issuer: 'hydra', kind: 'negative' }), 1);
    const logs = JSON.stringify(regate.logs);
    assert.ok(!logs.includes(bogus), 'the token never reaches the log');
  });

  it('with a positive cache a revoked token is still accepted until its entry expires (the trade-off)', async () => {
    const regate = await start({ max_entries: 100, negative_ttl_s: 10, max_ttl_s: 300 });
    const token = await hydra.token(opaqueClient, 'models.read', 'models-api');
    assert.equal((await call(regate, '/v1/models/cached-1', token)).status, 200);
    await hydra.revoke(opaqueClient, token);
    assert.equal((await call(regate, '/v1/models/cached-2', token)).status, 200);
    assert.equal(await metric(regate, 'regate_introspection_cache_hits_total', { issuer: 'hydra', kind: 'positive' }), 1);
    assert.equal(await metric(regate, 'regate_introspection_requests_total', { issuer: 'hydra', result: 'active' }), 1);
  });
});

describe('Ory Hydra: the agent identity token exchanged at the broker', () => {
  let broker: RegateProcess;
  let verifier: RegateProcess;
  let agent: HydraClient;
  before(async () => {
    agent = await hydra.createClient('agent-broker', { scope: 'models.read', audience: ['regate-broker'] });
    const dir = mkdtempSync(join(tmpdir(), 'regate-hydra-broker-'));
    const key = await generateTestKey('ES256', 'broker-1');
    writeFileSync(join(dir, 'broker.jwk'), JSON.stringify(key.privateJwk));
    const brokerBundle = await buildBundle({ files: { 'idp.rego': POLICY, 'broker.rego': BROKER_POLICY }, entrypoints: ['idp/decision', 'idp/broker/grant'] });
    broker = await startRegate(
      writeConfig(
        {
          listen: { proxy: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 } },
          upstreams: { models: { url: upstream.url } },
          issuers: [{ id: 'hydra', issuer: hydra.issuer, discovery: true, audiences: ['regate-broker'], algorithms: ['RS256'], claims: { scopes: 'scp' } }],
          policy: { bundle: brokerBundle, default_entrypoint: 'idp/decision' },
          broker: { issuer: 'https://broker.hydra.test', signing_keys: [{ file: 'broker.jwk', use: 'active' }], entrypoint: 'idp/broker/grant', audiences: ['models-api'], client_auth: ['subject_token'] },
          routes: [{ id: 'models', auth: 'required', match: { methods: ['GET'], path: '/v1/models/{model}' }, upstream: 'models' }],
        },
        dir,
      ),
    );
    started.push(broker);
    verifier = await startRegate(
      writeConfig({
        listen: { proxy: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 } },
        upstreams: { models: { url: upstream.url } },
        issuers: [{ id: 'broker', issuer: 'https://broker.hydra.test', jwks_url: `${broker.proxyUrl}/.well-known/jwks.json`, audiences: ['models-api'], algorithms: ['ES256'] }],
        policy: { bundle, default_entrypoint: 'idp/decision' },
        routes: [{ id: 'models', auth: 'required', match: { methods: ['GET'], path: '/v1/models/{model}' }, upstream: 'models' }],
      }),
    );
    started.push(verifier);
  });

  const exchange = (subject: string, scope: string) =>
    send(`${broker.proxyUrl}/oauth2/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
        subject_token: subject,
        subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
        audience: 'models-api',
        scope,
      }).toString(),
    });

  it('a Hydra JWT becomes a one-minute models-api token that another regate accepts', async () => {
    const identity = await hydra.token(agent, 'models.read', 'regate-broker');
    const res = await exchange(identity, 'models.read');
    assert.equal(res.status, 200, res.text);
    const body = res.json<{ access_token: string; expires_in: number; scope: string }>();
    assert.equal(body.scope, 'models.read');
    assert.ok(body.expires_in <= 60 && body.expires_in > 0, String(body.expires_in));
    const claims = decodeJwt(body.access_token);
    assert.equal(claims.iss, 'https://broker.hydra.test');
    assert.equal(claims.sub, decodeJwt(identity).sub, 'the subject is the Hydra client');
    assert.equal(claims.aud, 'models-api');
    // The identity token itself is not good at the model API; the step token is.
    assert.equal((await call(verifier, '/v1/models/via-identity', identity)).status, 401);
    const ok = await call(verifier, '/v1/models/via-broker', body.access_token);
    assert.equal(ok.status, 200, ok.text);
    await upstream.waitForRequest('/v1/models/via-broker');
  });

  it('a scope the agent was not given is refused with an OAuth error, nothing issued', async () => {
    const identity = await hydra.token(agent, 'models.read', 'regate-broker');
    const res = await exchange(identity, 'models.write');
    assert.equal(res.status, 400, res.text);
    assert.match(res.json<{ error: string }>().error, /^invalid_(grant|scope)$/);
  });
});
