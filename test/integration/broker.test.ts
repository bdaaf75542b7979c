/**
 * The token exchange broker (RFC 8693) in a real regate process, with a real
 * JWKS server for the identity provider, a real upstream, and a second regate
 * that verifies the broker's tokens by `jwks_url` like any issuer. Adversarial
 * cases (issue 15 item 6) go through the same process.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import http2 from 'node:http2';
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { decodeJwt, decodeProtectedHeader, SignJWT } from 'jose';
import { rawRequest, send } from '../helpers/http.ts';
import { startJwksServer, type JwksServer } from '../helpers/jwks-server.ts';
import { parseExposition, sampleValue } from '../helpers/metrics.ts';
import { buildBundle } from '../helpers/opa.ts';
import { startRegate, writeConfig, type RegateProcess } from '../helpers/regate-process.ts';
import { algNoneToken, baseClaims, generateTestKey, hs256WithPublicKey, jwksOf, nowSeconds, signToken, TEST_ISSUER, type TestKey } from '../helpers/tokens.ts';
import { startUpstreamServer, type TestUpstream } from '../helpers/upstream-server.ts';

const BROKER_ISSUER = 'https://broker.test';
const GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
const JWT_TYPE = 'urn:ietf:params:oauth:token-type:jwt';

const POLICY = `
package broker

import rego.v1

scope_map := {
  "translation-api": ["translate:write"],
  "chat-api": ["chat:post"],
}

default grant := {"allow": false, "reasons": ["no scope map entry"]}

grant := {"allow": true, "scopes": granted, "ttl_s": 600, "reasons": ["scope map"], "claims": {"step": "s1"}} if {
  input.subject.sub == "alice"
  some aud in input.requested.audience
  granted := [s | some s in input.requested.scope; s in scope_map[aud]]
  count(granted) > 0
}

# Misbehaving policies: regate's limits hold whatever they say.
grant := {"allow": true, "scopes": ["admin"]} if input.subject.sub == "greedy"
grant := {"allow": true, "claims": {"sub": "mallory"}} if input.subject.sub == "overrider"
grant := {"allow": true, "audience": "billing-api"} if input.subject.sub == "wanderer"
`;

const ROUTES = `
package tc

decision := {"allow": input.subject.authenticated, "upstream_scopes": ["read", "write"]}
`;

let idp: JwksServer;
let idpKey: TestKey;
let rsaKey: TestKey;
let clientKey: TestKey;
let upstream: TestUpstream;
let bundle: string;
let dir: string;
let broker: RegateProcess;
let verifier: RegateProcess;
let brokerConfig: Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const activeKeyFile = (): string => join(dir, 'broker-active.jwk');

async function form(url: string, params: Record<string, string | string[]>, headers: Record<string, string> = {}): Promise<ReturnType<typeof send>> {
  const body = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) for (const one of [v].flat()) body.append(k, one);
  return send(`${url}/oauth2/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body: body.toString() });
}

const exchangeParams = (subject: string, extra: Record<string, string | string[]> = {}): Record<string, string | string[]> => ({
  grant_type: GRANT,
  subject_token: subject,
  subject_token_type: JWT_TYPE,
  audience: 'translation-api',
  scope: 'translate:write',
  ...extra,
});

const identityToken = (overrides: Record<string, unknown> = {}): Promise<string> => signToken(idpKey, baseClaims({ aud: 'broker', jti: crypto.randomUUID(), ...overrides }));

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'regate-broker-'));
  [idpKey, clientKey, rsaKey] = await Promise.all([generateTestKey('ES256'), generateTestKey('ES256', 'client-1'), generateTestKey('RS256')]);
  idp = await startJwksServer(jwksOf(idpKey, rsaKey));
  upstream = await startUpstreamServer();
  bundle = await buildBundle({ files: { 'broker.rego': POLICY, 'tc.rego': ROUTES }, entrypoints: ['broker/grant', 'tc/decision'] });
  const active = await generateTestKey('ES256', 'broker-1');
  const next = await generateTestKey('EdDSA', 'broker-2');
  writeFileSync(activeKeyFile(), JSON.stringify(active.privateJwk));
  writeFileSync(join(dir, 'broker-next.jwk'), JSON.stringify(next.privateJwk));
  writeFileSync(join(dir, 'client.jwks.json'), JSON.stringify(jwksOf(clientKey)));
  brokerConfig = {
        listen: { proxy: { host: '127.0.0.1', port: 0, http2: { h2c: true } }, admin: { host: '127.0.0.1', port: 0 } },
        upstreams: { app: { url: upstream.url } },
        issuers: [{ id: 'idp', issuer: TEST_ISSUER, jwks_url: idp.url, audiences: ['broker', 'regate'], algorithms: ['ES256', 'RS256'] }],
        policy: { bundle, default_entrypoint: 'tc/decision' },
        decision_log: { mask: ['/input/subject/claims/email'] },
        broker: {
          issuer: BROKER_ISSUER,
          signing_keys: [
            { file: 'broker-active.jwk', use: 'active' },
            { file: 'broker-next.jwk', use: 'next' },
          ],
          entrypoint: 'broker/grant',
          audiences: ['translation-api', 'chat-api', 'app-api'],
          max_ttl_s: 300,
          client_auth: ['private_key_jwt', 'actor_token', 'subject_token'],
          clients: [{ id: 'workflow', jwks_file: 'client.jwks.json', algorithms: ['ES256'] }],
          max_body_bytes: 4096,
        },
        routes: [{ id: 'app', match: { methods: ['GET'], path: '/app' }, upstream: 'app', upstream_token: { audience: 'app-api', scopes: 'decision', ttl_s: 120 } }],
      };
  broker = await startRegate(writeConfig(brokerConfig, dir));
  verifier = await startRegate(
    writeConfig({
      listen: { proxy: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 } },
      upstreams: { app: { url: upstream.url } },
      issuers: [{ id: 'broker', issuer: BROKER_ISSUER, jwks_url: `${broker.proxyUrl}/.well-known/jwks.json`, audiences: ['translation-api'], algorithms: ['ES256', 'EdDSA'], required_claims: ['sub'] }],
      policy: { bundle, default_entrypoint: 'tc/decision' },
      routes: [{ id: 'translate', match: { methods: ['GET'], path: '/translate' }, upstream: 'app' }],
    }),
  );
});

after(async () => {
  await verifier?.stop();
  await broker?.stop();
  await upstream?.close();
  await idp?.close();
});

describe('token exchange', () => {
  it('exchanges a verified subject token for a narrower, short-lived JWT that another regate verifies', async () => {
    const subject = await identityToken({ email: 'alice@example.com' });
    const res = await form(broker.proxyUrl, exchangeParams(subject, { scope: 'translate:write chat:post' }));
    assert.equal(res.status, 200, res.text);
    assert.equal(res.headers['cache-control'], 'no-store');
    const body = res.json<{ access_token: string; issued_token_type: string; token_type: string; expires_in: number; scope: string }>();
    assert.equal(body.token_type, 'Bearer');
    assert.equal(body.issued_token_type, 'urn:ietf:params:oauth:token-type:access_token');
    assert.equal(body.scope, 'translate:write');
    assert.equal(body.expires_in, 300, 'policy asked 600 s: capped by max_ttl_s');
    const header = decodeProtectedHeader(body.access_token);
    assert.deepEqual([header.alg, header.kid, header.typ], ['ES256', 'broker-1', 'at+jwt']);
    const claims = decodeJwt(body.access_token);
    assert.equal(claims.iss, BROKER_ISSUER);
    assert.equal(claims.sub, 'alice');
    assert.equal(claims.aud, 'translation-api');
    assert.equal(claims.scope, 'translate:write');
    assert.equal(claims.step, 's1');
    assert.equal(claims.exp! - claims.iat!, 300);
    assert.equal(typeof claims.jti, 'string');
    const ok = await send(`${verifier.proxyUrl}/translate`, { headers: { authorization: `Bearer ${body.access_token}` } });
    assert.equal(ok.status, 200, ok.text);

    const line = await broker.waitForDecision((r) => (r.custom as { broker?: { result: string } } | undefined)?.broker?.result === 'granted');
    const custom = (line.custom as { broker: Record<string, unknown> }).broker;
    assert.equal(custom.subject, 'alice');
    assert.deepEqual(custom.asked, { audience: ['translation-api'], scope: ['translate:write', 'chat:post'], resource: [] });
    assert.equal((custom.granted as { expires_in: number }).expires_in, 300);
    assert.equal(line.path, 'broker/grant');
    assert.ok(!JSON.stringify(line).includes(subject), 'never a token in the log');
    assert.ok(!JSON.stringify(line).includes('alice@example.com'), 'decision_log.mask applies');
    assert.deepEqual(line.erased, ['/input/subject/claims/email']);
  });

  it('never issues past the subject token exp', async () => {
    const subject = await identityToken({ exp: nowSeconds() + 40 });
    const res = await form(broker.proxyUrl, exchangeParams(subject));
    assert.equal(res.status, 200, res.text);
    assert.ok(res.json<{ expires_in: number }>().expires_in <= 40);
  });

  it('audience confusion: a token minted for chat-api is refused by the translation-api regate with invalid_audience', async () => {
    const res = await form(broker.proxyUrl, exchangeParams(await identityToken(), { audience: 'chat-api', scope: 'chat:post' }));
    assert.equal(res.status, 200, res.text);
    const token = res.json<{ access_token: string }>().access_token;
    const refused = await send(`${verifier.proxyUrl}/translate`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(refused.status, 401);
    const line = await verifier.waitForDecision((r) => (r.custom as { reason?: string }).reason === 'invalid_audience');
    assert.equal((line.custom as { http_status: number }).http_status, 401);
  });

  it('delegation: act names the actor and nests the subject token\'s own act chain; client-sent act is ignored', async () => {
    const subject = await identityToken({ act: { sub: 'orchestrator' } });
    const actor = await identityToken({ sub: 'agent-7' });
    const res = await form(broker.proxyUrl, exchangeParams(subject, { actor_token: actor, actor_token_type: JWT_TYPE, act: '{"sub":"root"}' }));
    assert.equal(res.status, 200, res.text);
    const claims = decodeJwt(res.json<{ access_token: string }>().access_token);
    assert.deepEqual(claims.act, { sub: 'agent-7', iss: TEST_ISSUER, act: { sub: 'orchestrator' } });
  });

  it('private_key_jwt: a client assertion authenticates once; a replay is 401 invalid_client', async () => {
    const assertion = await new SignJWT({ jti: crypto.randomUUID() })
      .setProtectedHeader({ alg: 'ES256', kid: clientKey.kid })
      .setIssuer('workflow')
      .setSubject('workflow')
      .setAudience(`${BROKER_ISSUER}/oauth2/token`)
      .setIssuedAt()
      .setExpirationTime('60s')
      .sign(clientKey.privateKey);
    const params = exchangeParams(await identityToken(), { client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: assertion });
    const first = await form(broker.proxyUrl, params);
    assert.equal(first.status, 200, first.text);
    assert.equal(decodeJwt(first.json<{ access_token: string }>().access_token).client_id, 'workflow');
    const again = await form(broker.proxyUrl, { ...params, subject_token: await identityToken() });
    assert.equal(again.status, 401);
    assert.equal(again.json().error, 'invalid_client');
    assert.match(String(again.headers['www-authenticate']), /^Bearer error="invalid_client"/);
  });

  it('publishes the active and next keys, and RFC 8414 metadata', async () => {
    const jwks = (await send(`${broker.proxyUrl}/.well-known/jwks.json`)).json<{ keys: { kid: string; d?: string; alg: string }[] }>();
    assert.deepEqual(jwks.keys.map((k) => [k.kid, k.alg]), [['broker-1', 'ES256'], ['broker-2', 'EdDSA']]);
    assert.ok(jwks.keys.every((k) => k.d === undefined), 'no private parts');
    const meta = (await send(`${broker.proxyUrl}/.well-known/oauth-authorization-server`)).json<Record<string, unknown>>();
    assert.equal(meta.issuer, BROKER_ISSUER);
    assert.equal(meta.token_endpoint, `${BROKER_ISSUER}/oauth2/token`);
    assert.equal(meta.jwks_uri, `${BROKER_ISSUER}/.well-known/jwks.json`);
    assert.deepEqual(meta.grant_types_supported, [GRANT]);
  });
});

describe('upstream_token', () => {
  it('replaces the caller\'s token with a minted, downscoped one, reused until shortly before expiry', async () => {
    const caller = await signToken(idpKey, baseClaims({ scope: 'read admin', act: { sub: 'agent-7' } }));
    const one = await send(`${broker.proxyUrl}/app`, { headers: { authorization: `Bearer ${caller}` } });
    assert.equal(one.status, 200, one.text);
    const two = await send(`${broker.proxyUrl}/app`, { headers: { authorization: `Bearer ${caller}` } });
    assert.equal(two.status, 200);
    const seen = upstream.requests.slice(-2).map((r) => String(r.headers.authorization));
    assert.ok(seen.every((a) => a !== `Bearer ${caller}`), 'the caller\'s token never reaches the upstream');
    assert.equal(seen[0], seen[1], 'cached');
    const claims = decodeJwt(seen[0]!.slice('Bearer '.length));
    assert.equal(claims.aud, 'app-api');
    assert.equal(claims.scope, 'read', 'decided scopes the caller also holds');
    assert.deepEqual(claims.act, { sub: 'agent-7' });
    assert.equal(claims.sub, 'alice');
    const metrics = parseExposition((await send(`${broker.adminUrl}/metrics`)).text);
    assert.equal(sampleValue(metrics, 'regate_broker_upstream_tokens_total', { result: 'cached' }), 1);
  });
});

describe('upstream_token over HTTP/2 (h2c)', () => {
  it('the upstream gets the minted token, not the caller\'s', async () => {
    const caller = await signToken(idpKey, baseClaims({ sub: 'bob', scope: 'write' }));
    const session = http2.connect(broker.proxyUrl);
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const req = session.request({ ':method': 'GET', ':path': '/app', authorization: `Bearer ${caller}` });
        let code = 0;
        req.on('response', (h) => (code = Number(h[':status'])));
        req.on('error', reject);
        req.resume();
        req.on('end', () => resolve(code));
        req.end();
      });
      assert.equal(status, 200);
    } finally {
      session.close();
    }
    const seen = String(upstream.requests.at(-1)!.headers.authorization);
    assert.notEqual(seen, `Bearer ${caller}`);
    const claims = decodeJwt(seen.slice('Bearer '.length));
    assert.deepEqual([claims.sub, claims.aud, claims.scope], ['bob', 'app-api', 'write']);
  });
});

describe('bad input', () => {
  const refusal = async (params: Record<string, string | string[]>, status: number, error: string, reason?: string): Promise<void> => {
    const res = await form(broker.proxyUrl, params);
    assert.equal(res.status, status, res.text);
    assert.equal(res.headers['content-type'], 'application/json');
    assert.equal(res.headers['cache-control'], 'no-store');
    assert.equal(res.json().error, error);
    if (reason !== undefined) await broker.waitForDecision((r) => (r.custom as { broker?: { reason: string } }).broker?.reason === reason);
  };

  it('scope escalation: scopes outside the scope map are not granted; a policy granting unrequested scopes is refused', async () => {
    await refusal(exchangeParams(await identityToken(), { scope: 'admin' }), 400, 'invalid_grant', 'policy_denied');
    await refusal(exchangeParams(await identityToken({ sub: 'greedy' }), { scope: 'translate:write' }), 400, 'invalid_scope', 'scope_not_requested');
  });

  it('audiences outside broker.audiences are refused invalid_target, whatever the policy says', async () => {
    await refusal(exchangeParams(await identityToken(), { audience: 'billing-api' }), 400, 'invalid_target');
    await refusal(exchangeParams(await identityToken({ sub: 'wanderer' }), { audience: [] as unknown as string, scope: [] as unknown as string }), 400, 'invalid_target', 'audience_not_allowed');
  });

  it('a policy result that overrides a registered claim is a server_error, nothing issued', async () => {
    await refusal(exchangeParams(await identityToken({ sub: 'overrider' })), 500, 'server_error', 'policy_invalid_result');
  });

  it('expired, not-yet-valid, alg none and HS256-with-the-public-key subject tokens are invalid_grant', async () => {
    const now = nowSeconds();
    await refusal(exchangeParams(await identityToken({ exp: now - 120 })), 400, 'invalid_grant', 'subject_token_expired');
    await refusal(exchangeParams(await identityToken({ nbf: now + 600 })), 400, 'invalid_grant', 'subject_token_not_yet_valid');
    await refusal(exchangeParams(algNoneToken(baseClaims({ aud: 'broker' }), idpKey.kid)), 400, 'invalid_grant');
    await refusal(exchangeParams(await hs256WithPublicKey(rsaKey, baseClaims({ aud: 'broker' }))), 400, 'invalid_grant', 'subject_algorithm_not_allowed');
  });

  it('a subject token for another audience is refused', async () => {
    await refusal(exchangeParams(await identityToken({ aud: 'someone-else' })), 400, 'invalid_grant', 'subject_invalid_audience');
  });

  it('malformed forms: duplicate parameters, bad percent-encoding, wrong grant type, missing token type, bad authorization_details', async () => {
    const subject = await identityToken();
    const dup = await send(`${broker.proxyUrl}/oauth2/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `grant_type=${encodeURIComponent(GRANT)}&subject_token=${subject}&subject_token=${subject}&subject_token_type=${encodeURIComponent(JWT_TYPE)}`,
    });
    assert.equal(dup.status, 400);
    assert.equal(dup.json().error, 'invalid_request');
    const pct = await send(`${broker.proxyUrl}/oauth2/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'grant_type=%zz' });
    assert.equal(pct.json().error, 'invalid_request');
    await refusal({ ...exchangeParams(subject), grant_type: 'client_credentials' }, 400, 'unsupported_grant_type');
    await refusal({ ...exchangeParams(subject), subject_token_type: 'urn:ietf:params:oauth:token-type:saml2' }, 400, 'invalid_request');
    await refusal(exchangeParams(subject, { authorization_details: '{"type":"x"}' }), 400, 'invalid_request', 'authorization_details_malformed');
    await refusal(exchangeParams(subject, { requested_token_type: 'urn:ietf:params:oauth:token-type:refresh_token' }), 400, 'invalid_request');
    const json = await send(`${broker.proxyUrl}/oauth2/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    assert.equal(json.status, 415);
    assert.equal(json.json().error, 'invalid_request');
    const get = await send(`${broker.proxyUrl}/oauth2/token`);
    assert.equal(get.status, 405);
  });

  it('an oversized body is 413 invalid_request and the connection is closed; later requests are served', async () => {
    const big = 'a'.repeat(8000);
    const res = await rawRequest(broker.proxyUrl, `POST /oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: ${big.length}`, big);
    assert.equal(res.status, 413);
    assert.equal(res.json().error, 'invalid_request');
    const ok = await form(broker.proxyUrl, exchangeParams(await identityToken()));
    assert.equal(ok.status, 200);
  });

  it('an unauthenticated caller is 401 invalid_client where only client assertions are accepted', async () => {
    // client_auth lists subject_token on this broker, so a client assertion that does not verify is the case here.
    await refusal(exchangeParams(await identityToken(), { client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: 'not.a.jwt' }), 401, 'invalid_client');
  });

  it('under load: every request answered, grants counted', async () => {
    const tokens = await Promise.all(Array.from({ length: 40 }, () => identityToken()));
    const results = await Promise.all(tokens.map((t) => form(broker.proxyUrl, exchangeParams(t))));
    for (const r of results) assert.ok(r.status === 200 || (r.status === 503 && r.json().error === 'temporarily_unavailable'), r.text);
    const metrics = parseExposition((await send(`${broker.adminUrl}/metrics`)).text);
    assert.ok((sampleValue(metrics, 'regate_broker_grants_total', { result: 'granted', reason: 'granted' }) ?? 0) >= 40);
  });
});

describe('bounded concurrency', () => {
  it('beyond max_concurrent token requests: 503 temporarily_unavailable with Retry-After, counted; the held request still completes', async () => {
    const config = structuredClone(brokerConfig);
    config.broker.max_concurrent = 1;
    config.broker.signing_keys = [{ file: 'broker-next.jwk', use: 'active' }];
    const dir2 = await mkdtemp(join(tmpdir(), 'regate-broker-c-'));
    for (const f of ['broker-next.jwk', 'client.jwks.json']) writeFileSync(join(dir2, f), readFileSync(join(dir, f)));
    const bounded = await startRegate(writeConfig(config, dir2));
    try {
      const body = new URLSearchParams(exchangeParams(await identityToken())).toString();
      const { port } = new URL(bounded.proxyUrl);
      // Request A holds the only slot: its head and half its body are sent, the rest waits.
      const a = connect(Number(port), '127.0.0.1');
      let aText = '';
      a.on('data', (d) => (aText += d));
      await new Promise((r) => a.once('connect', r));
      a.write(`POST /oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 10)}`);
      await new Promise((r) => setTimeout(r, 300));
      const b = await form(bounded.proxyUrl, exchangeParams(await identityToken()));
      assert.equal(b.status, 503, b.text);
      assert.equal(b.json().error, 'temporarily_unavailable');
      assert.equal(b.headers['retry-after'], '1');
      a.write(body.slice(10));
      const deadline = Date.now() + 10_000;
      while (!aText.includes('access_token') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      assert.match(aText, /^HTTP\/1\.1 200 /);
      a.destroy();
      const metrics = parseExposition((await send(`${bounded.adminUrl}/metrics`)).text);
      assert.equal(sampleValue(metrics, 'regate_broker_grants_total', { result: 'refused', reason: 'overloaded' }), 1);
    } finally {
      await bounded.stop();
    }
  });
});

describe('key rotation', () => {
  it('by config reload: the next key (published from the start) signs; the retired one stays published and its tokens still verify', async () => {
    const before = (await form(broker.proxyUrl, exchangeParams(await identityToken()))).json<{ access_token: string }>().access_token;
    assert.equal(decodeProtectedHeader(before).kid, 'broker-1');
    brokerConfig.broker.signing_keys = [
      { file: 'broker-active.jwk', use: 'retired' },
      { file: 'broker-next.jwk', use: 'active' },
    ];
    writeConfig(brokerConfig, dir);
    const deadline = Date.now() + 15_000;
    let kid: string | undefined;
    while (Date.now() < deadline) {
      const res = await form(broker.proxyUrl, exchangeParams(await identityToken()));
      kid = decodeProtectedHeader(res.json<{ access_token: string }>().access_token).kid;
      if (kid === 'broker-2') break;
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(kid, 'broker-2');
    const after = (await form(broker.proxyUrl, exchangeParams(await identityToken()))).json<{ access_token: string }>().access_token;
    assert.equal(decodeProtectedHeader(after).alg, 'EdDSA');
    for (const token of [before, after]) {
      const res = await send(`${verifier.proxyUrl}/translate`, { headers: { authorization: `Bearer ${token}` } });
      assert.equal(res.status, 200, res.text);
    }
    const kids = (await send(`${broker.proxyUrl}/.well-known/jwks.json`)).json<{ keys: { kid: string }[] }>().keys.map((k) => k.kid);
    assert.deepEqual(kids, ['broker-1', 'broker-2']);
  });

  it('a key file rewritten in place is re-read and published', async () => {
    const replacement = await generateTestKey('ES256', 'broker-1b');
    writeFileSync(activeKeyFile(), JSON.stringify(replacement.privateJwk));
    const deadline = Date.now() + 15_000;
    let kids: string[] = [];
    while (Date.now() < deadline) {
      kids = (await send(`${broker.proxyUrl}/.well-known/jwks.json`)).json<{ keys: { kid: string }[] }>().keys.map((k) => k.kid);
      if (kids.includes('broker-1b')) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.deepEqual(kids, ['broker-1b', 'broker-2']);
  });
});
