import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { Introspector } from '../../../src/authn/introspection.ts';
import { createAuthenticator } from '../../../src/authn/jwt.ts';
import type { IntrospectionConfig, IssuerConfig } from '../../../src/config/types.ts';
import { AuthnError, ConfigError } from '../../../src/errors.ts';
import { startIdpServer, type IdpServer } from '../../helpers/idp-server.ts';
import { baseClaims, generateTestKey, issuerConfig, jwksOf, signToken } from '../../helpers/tokens.ts';

const NOW = 1_900_000_000;
const TOKEN = 'ory_at_opaque-token-value.with-a-dot';

let idp: IdpServer;
before(async () => {
  idp = await startIdpServer();
});
after(() => idp.close());
beforeEach(() => {
  idp.requests.length = 0;
});

function introspecting(overrides: Partial<IntrospectionConfig> = {}, issuer: Partial<IssuerConfig> = {}): IssuerConfig {
  return issuerConfig({
    issuer: idp.url,
    introspection: { url: `${idp.url}/introspect`, timeout_ms: 5000, cache: { max_entries: 100, negative_ttl_s: 10, max_ttl_s: 60 }, ...overrides },
    ...issuer,
  });
}

const active = (extra: Record<string, unknown> = {}) => ({ active: true, sub: 'agent', iss: idp.url, aud: ['regate'], scope: 'models.read models.write', exp: NOW + 3600, nbf: NOW - 10, client_id: 'agent', ...extra });

function introspector(issuer: IssuerConfig, log: string[] = [], now = () => NOW): Introspector {
  return new Introspector(issuer, { now, onRequest: (_id, r) => log.push(r), onCacheHit: (_id, k) => log.push(`hit:${k}`) });
}

const reason = (r: string) => (e: unknown) => e instanceof AuthnError && e.reason === r && e.status === 401;

describe('Introspector (RFC 7662) against a real loopback server', () => {
  it('POSTs token + token_type_hint and maps an active answer like JWT claims (scopes from scope)', async () => {
    idp.on('/introspect', () => ({ json: active({ roles: ['admin'], tenant: 't1' }) }));
    const id = await introspector(introspecting()).introspect(TOKEN);
    assert.equal(id.sub, 'agent');
    assert.deepEqual(id.scopes, ['models.read', 'models.write']);
    assert.deepEqual(id.roles, ['admin']);
    assert.equal(id.tenant, 't1');
    assert.equal(id.exp, NOW + 3600);
    const [req] = idp.requests;
    assert.equal(req!.method, 'POST');
    assert.equal(req!.headers['content-type'], 'application/x-www-form-urlencoded');
    assert.equal(req!.form.get('token'), TOKEN);
    assert.equal(req!.form.get('token_type_hint'), 'access_token');
    assert.equal(req!.headers.authorization, undefined, 'no credential configured: no client authentication');
  });

  for (const [name, answer, why] of [
    ['active: false', () => ({ active: false }), 'token_inactive'],
    ['no active member', () => ({ sub: 'x' }), 'token_inactive'],
    ['another iss', () => (active({ iss: 'https://other.example' })), 'invalid_issuer'],
    ['no accepted aud', () => (active({ aud: ['other-api'] })), 'invalid_audience'],
    ['no aud at all', () => (active({ aud: undefined })), 'invalid_audience'],
    ['no exp', () => (active({ exp: undefined })), 'missing_claim'],
    ['an exp in the past (beyond tolerance)', () => (active({ exp: NOW - 31 })), 'token_expired'],
    ['an nbf in the future (beyond tolerance)', () => (active({ nbf: NOW + 100 })), 'token_not_yet_valid'],
    ['a non-string sub', () => (active({ sub: 7 })), 'invalid_claim'],
  ] as const) {
    it(`refuses ${name} (${why}) and remembers it for negative_ttl_s`, async () => {
      idp.on('/introspect', () => ({ json: answer() }));
      const log: string[] = [];
      let now = NOW;
      const i = introspector(introspecting(), log, () => now);
      await assert.rejects(i.introspect(TOKEN), reason(why));
      await assert.rejects(i.introspect(TOKEN), reason(why));
      assert.equal(idp.count('/introspect'), 1);
      now += 11;
      await assert.rejects(i.introspect(TOKEN), reason(why));
      assert.equal(idp.count('/introspect'), 2);
      assert.equal(log.filter((l) => l === 'hit:negative').length, 1);
    });
  }

  it('accepts exp and nbf within clock_tolerance_s', async () => {
    idp.on('/introspect', () => ({ json: active({ exp: NOW - 5, nbf: NOW + 5 }) }));
    assert.equal((await introspector(introspecting()).introspect(TOKEN)).sub, 'agent');
  });

  for (const [name, answer] of [
    ['a 500', { status: 500, json: { error: 'server_error' } }],
    ['a 401 (regate’s own credentials refused)', { status: 401, json: { error: 'invalid_client' } }],
    ['bad JSON', { text: '{"active": tru' }],
    ['a JSON array', { json: [true] }],
    ['a slow answer (past timeout_ms)', { delayMs: 3000, json: { active: true } }],
    ['a body over the size cap', { text: JSON.stringify({ active: true, pad: 'x'.repeat(70_000) }) }],
  ] as const) {
    it(`fails closed on ${name}: introspection_unavailable, not cached`, async () => {
      idp.on('/introspect', () => answer);
      const log: string[] = [];
      const i = introspector(introspecting({ timeout_ms: 1000 }), log);
      await assert.rejects(i.introspect(TOKEN), reason('introspection_unavailable'));
      await assert.rejects(i.introspect(TOKEN), reason('introspection_unavailable'));
      assert.equal(idp.count('/introspect'), 2, 'an outage is not remembered');
      assert.deepEqual(log, ['error', 'error']);
      assert.equal(i.size, 0);
    });
  }

  it('caches an active token until min(exp, now + max_ttl_s); max_ttl_s: 0 never caches', async () => {
    idp.on('/introspect', () => ({ json: active({ exp: NOW + 30 }) }));
    const log: string[] = [];
    let now = NOW;
    const i = introspector(introspecting(), log, () => now);
    await i.introspect(TOKEN);
    await i.introspect(TOKEN);
    assert.equal(idp.count('/introspect'), 1);
    now += 31; // past exp (30) before max_ttl_s (60)
    idp.on('/introspect', () => ({ json: active({ exp: NOW + 3600 }) }));
    await i.introspect(TOKEN);
    assert.equal(idp.count('/introspect'), 2);
    assert.deepEqual(log, ['active', 'hit:positive', 'active']);

    const none = introspector(introspecting({ cache: { max_entries: 100, negative_ttl_s: 10, max_ttl_s: 0 } }));
    await none.introspect(TOKEN);
    await none.introspect(TOKEN);
    assert.equal(idp.count('/introspect'), 4);
  });

  it('keys the cache by a hash of the token, bounded by max_entries (LRU)', async () => {
    idp.on('/introspect', () => ({ json: active() }));
    const i = introspector(introspecting({ cache: { max_entries: 2, negative_ttl_s: 10, max_ttl_s: 60 } }));
    for (const t of ['t-one', 't-two', 't-three']) await i.introspect(t);
    assert.equal(i.size, 2);
    const keys = [...(i as unknown as { cache: Map<string, unknown> }).cache.keys()];
    assert.ok(keys.every((k) => /^[A-Za-z0-9_-]{43}$/.test(k) && !k.includes('t-')), 'SHA-256 keys, never the token');
    await i.introspect('t-one'); // evicted first: asks again
    assert.equal(idp.count('/introspect'), 4);
  });

  it('single flight: concurrent requests with the same token share one call', async () => {
    idp.on('/introspect', () => ({ delayMs: 100, json: active() }));
    const i = introspector(introspecting());
    const ids = await Promise.all(Array.from({ length: 10 }, () => i.introspect(TOKEN)));
    assert.equal(idp.count('/introspect'), 1);
    assert.ok(ids.every((id) => id === ids[0]));
  });

  it('authenticates with a client secret from a file (HTTP Basic, form-encoded)', async () => {
    idp.on('/introspect', () => ({ json: active() }));
    const dir = mkdtempSync(join(tmpdir(), 'regate-introspect-'));
    writeFileSync(join(dir, 'secret'), 's3cr:et +/\n');
    await introspector(introspecting({ client_id: 'regate gw', client_secret_file: join(dir, 'secret') })).introspect(TOKEN);
    const header = idp.requests[0]!.headers.authorization!;
    assert.equal(Buffer.from(header.replace(/^Basic /, ''), 'base64').toString(), 'regate+gw:s3cr%3Aet+%2B%2F');
  });

  it('authenticates with private_key_jwt: a fresh assertion for this endpoint', async () => {
    idp.on('/introspect', () => ({ json: active() }));
    const key = await generateTestKey('ES256');
    const dir = mkdtempSync(join(tmpdir(), 'regate-introspect-'));
    writeFileSync(join(dir, 'key.jwk'), JSON.stringify(key.privateJwk));
    const url = `${idp.url}/introspect`;
    const i = new Introspector(introspecting({ client_id: 'regate', private_key_jwt: { key_file: join(dir, 'key.jwk'), alg: 'ES256', kid: key.kid } }), { now: () => NOW });
    await i.introspect(TOKEN);
    await i.introspect('another-token');
    const forms = idp.requests.map((r) => r.form);
    assert.equal(forms[0]!.get('client_assertion_type'), 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer');
    assert.equal(forms[0]!.get('client_id'), 'regate');
    const { payload, protectedHeader } = await jwtVerify(forms[0]!.get('client_assertion')!, createLocalJWKSet(jwksOf(key)), { issuer: 'regate', subject: 'regate', audience: url });
    assert.equal(protectedHeader.kid, key.kid);
    assert.ok(typeof payload.jti === 'string' && typeof payload.exp === 'number');
    const second = await jwtVerify(forms[1]!.get('client_assertion')!, createLocalJWKSet(jwksOf(key)));
    assert.notEqual(second.payload.jti, payload.jti);
  });

  it('refuses an unreadable secret or key file at startup, naming the key path', () => {
    assert.throws(
      () => new Introspector(introspecting({ client_id: 'x', client_secret_file: '/nonexistent/secret' }), { source: 'regate.yaml', index: 2 }),
      (e: unknown) => e instanceof ConfigError && e.keyPath === '/issuers/2/introspection/client_secret_file' && /cannot read the client secret file/.test(e.message),
    );
    const dir = mkdtempSync(join(tmpdir(), 'regate-introspect-'));
    writeFileSync(join(dir, 'bad.pem'), 'not a key');
    assert.throws(
      () => new Introspector(introspecting({ client_id: 'x', private_key_jwt: { key_file: join(dir, 'bad.pem'), alg: 'ES256' } }), { source: 'regate.yaml' }),
      (e: unknown) => e instanceof ConfigError && e.keyPath === '/issuers/0/introspection/private_key_jwt/key_file',
    );
  });

  it('takes introspection_endpoint from discovery when no url is set', async () => {
    idp.on('/.well-known/openid-configuration', () => ({ json: idp.discoveryDocument() }));
    idp.on('/introspect', () => ({ json: active() }));
    const key = await generateTestKey('ES256');
    idp.on('/jwks', () => ({ json: jwksOf(key) }));
    const issuer = issuerConfig({ issuer: idp.url, discovery: true, algorithms: ['ES256'], introspection: { timeout_ms: 5000, cache: { max_entries: 10, negative_ttl_s: 1, max_ttl_s: 1 } } });
    const auth = createAuthenticator([issuer], { now: () => NOW });
    try {
      assert.equal((await auth.verifyToken(TOKEN)).sub, 'agent', 'opaque: introspected at the discovered endpoint');
      assert.equal((await auth.verifyToken(await signToken(key, baseClaims({ iss: idp.url, aud: 'regate', sub: 'jwt-user' }, NOW)))).sub, 'jwt-user', 'JWT: verified locally');
      assert.equal(idp.count('/introspect'), 1);
    } finally {
      auth.close();
    }
  });
});

describe('authenticator routing with introspection', () => {
  it('an introspection-only issuer introspects every token, JWT-shaped or not', async () => {
    idp.on('/introspect', () => ({ json: active() }));
    const key = await generateTestKey('ES256');
    const auth = createAuthenticator([introspecting({}, { algorithms: [] })], { now: () => NOW });
    try {
      await auth.verifyToken(TOKEN);
      await auth.verifyToken(await signToken(key, baseClaims({ iss: idp.url, aud: 'regate' })));
      await auth.verifyToken('a.b.c');
      assert.equal(idp.count('/introspect'), 3);
    } finally {
      auth.close();
    }
  });

  it('without introspection an opaque token stays malformed_token; a JWT of another issuer is never sent to the introspection endpoint', async () => {
    const plain = createAuthenticator([issuerConfig({ jwks_file: undefined, jwks_url: 'https://idp.test/jwks' })]);
    await assert.rejects(plain.verifyToken(TOKEN), reason('malformed_token'));
    plain.close();
    const key = await generateTestKey('ES256');
    const auth = createAuthenticator([introspecting()], { now: () => NOW });
    try {
      await assert.rejects(auth.verifyToken(await signToken(key, baseClaims({ iss: 'https://stranger.example', aud: 'regate' }))), reason('unknown_issuer'));
      assert.equal(idp.count('/introspect'), 0);
    } finally {
      auth.close();
    }
  });

  it('refuses two issuers with introspection', () => {
    assert.throws(
      () => createAuthenticator([introspecting(), introspecting({}, { id: 'b', issuer: 'https://b.example' })], { source: 'regate.yaml' }),
      (e: unknown) => e instanceof ConfigError && e.keyPath === '/issuers/1/introspection',
    );
  });
});
