import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Discovery, discoveryUrl, parseDiscovery } from '../../../src/authn/discovery.ts';
import { createAuthenticator } from '../../../src/authn/jwt.ts';
import { AuthnError } from '../../../src/errors.ts';
import { startIdpServer, type IdpServer } from '../../helpers/idp-server.ts';
import { baseClaims, generateTestKey, issuerConfig, jwksOf, signToken, type TestKey } from '../../helpers/tokens.ts';

const DOC = '/.well-known/openid-configuration';

describe('parseDiscovery', () => {
  const issuer = 'https://idp.example';
  it('takes jwks_uri and introspection_endpoint', () => {
    const m = parseDiscovery({ issuer, jwks_uri: 'https://idp.example/keys', introspection_endpoint: 'https://idp.example/introspect' }, issuer);
    assert.deepEqual(m, { issuer, jwks_uri: 'https://idp.example/keys', introspection_endpoint: 'https://idp.example/introspect' });
  });
  it('refuses a document for another issuer, even one differing by a trailing slash', () => {
    assert.throws(() => parseDiscovery({ issuer: 'https://evil.example', jwks_uri: 'https://evil.example/keys' }, issuer), /names issuer "https:\/\/evil.example", not the configured/);
    assert.throws(() => parseDiscovery({ issuer: `${issuer}/`, jwks_uri: 'https://idp.example/keys' }, issuer), /must be equal exactly/);
  });
  it('requires jwks_uri, https (or loopback http), no credentials', () => {
    assert.throws(() => parseDiscovery({ issuer }, issuer), /no "jwks_uri"/);
    assert.throws(() => parseDiscovery({ issuer, jwks_uri: 'http://idp.example/keys' }, issuer), /must be https/);
    assert.throws(() => parseDiscovery({ issuer, jwks_uri: 'https://u:p@idp.example/keys' }, issuer), /credentials/);
    assert.throws(() => parseDiscovery({ issuer, jwks_uri: 'https://idp.example/keys', introspection_endpoint: 'http://10.0.0.1/i' }, issuer), /introspection_endpoint" must be https/);
    assert.equal(parseDiscovery({ issuer, jwks_uri: 'http://127.0.0.1:9/keys' }, issuer).jwks_uri, 'http://127.0.0.1:9/keys');
    assert.throws(() => parseDiscovery([], issuer), /not a JSON object/);
  });
  it('builds the document URL without doubling a trailing slash', () => {
    assert.equal(discoveryUrl('https://a.example/realms/x/'), 'https://a.example/realms/x/.well-known/openid-configuration');
    assert.equal(discoveryUrl('https://a.example'), 'https://a.example/.well-known/openid-configuration');
  });
});

describe('discovery: true against a real loopback server', () => {
  let idp: IdpServer;
  let key: TestKey;
  before(async () => {
    idp = await startIdpServer();
    key = await generateTestKey('ES256');
    idp.on('/jwks', () => ({ json: jwksOf(key) }));
  });
  after(() => idp.close());

  const issuer = () => issuerConfig({ issuer: idp.url, discovery: true, jwks: { timeout_ms: 1000, cache_max_age_s: 300, cooldown_s: 1 } });

  it('verifies a token with the keys at the discovered jwks_uri', async () => {
    idp.on(DOC, () => ({ json: idp.discoveryDocument() }));
    const results: string[] = [];
    const auth = createAuthenticator([issuer()], { onDiscovery: (_id, r) => results.push(r) });
    try {
      assert.deepEqual(await auth.prefetch(), [{ issuerId: 'idp', ready: true }]);
      assert.equal(auth.ready(), true);
      const id = await auth.verifyToken(await signToken(key, baseClaims({ iss: idp.url, aud: 'regate', scope: 'a b' })));
      assert.deepEqual(id.scopes, ['a', 'b']);
      assert.deepEqual(results, ['success']);
    } finally {
      auth.close();
    }
  });

  for (const [name, answer, pattern] of [
    ['a mismatched issuer', () => ({ json: idp.discoveryDocument({ issuer: 'https://other.example' }) }), /not the configured/],
    ['bad JSON', () => ({ text: '{not json' }), /not JSON/],
    ['a 500', () => ({ status: 500, json: { error: 'boom' } }), /expected 200/],
    ['a slow answer (past the timeout)', () => ({ delayMs: 3000, json: idp.discoveryDocument() }), /discovery at .* failed/],
    ['an insecure jwks_uri', () => ({ json: idp.discoveryDocument({ jwks_uri: 'http://example.com/keys' }) }), /must be https/],
  ] as const) {
    it(`fails closed on ${name}: not ready, tokens refused with jwks_unavailable, counted`, async () => {
      idp.on(DOC, answer);
      const errors: unknown[] = [];
      const auth = createAuthenticator([issuer()], { onDiscovery: (_id, r, e) => r === 'error' && errors.push(e) });
      try {
        assert.deepEqual(await auth.prefetch(), [{ issuerId: 'idp', ready: false }]);
        assert.equal(auth.ready(), false);
        const token = await signToken(key, baseClaims({ iss: idp.url, aud: 'regate' }));
        await assert.rejects(auth.verifyToken(token), (e: unknown) => e instanceof AuthnError && e.reason === 'jwks_unavailable' && e.status === 401);
        assert.ok(errors.length >= 1);
        assert.match(String(errors[0]), pattern);
      } finally {
        auth.close();
      }
    });
  }

  it('recovers: retried with backoff until the document is served', async () => {
    let broken = true;
    idp.on(DOC, () => (broken ? { status: 503, json: {} } : { json: idp.discoveryDocument() }));
    const d = new Discovery(issuer());
    try {
      await assert.rejects(d.get(), /expected 200/);
      const before = idp.count(DOC);
      // Inside the backoff: no new fetch, the last error again.
      await assert.rejects(d.get(), /retrying with backoff/);
      assert.equal(idp.count(DOC), before);
      broken = false;
      // The retry timer (1 s after the first failure) fetches again by itself.
      for (let i = 0; i < 50 && d.current() === undefined; i++) await new Promise((r) => setTimeout(r, 100));
      assert.equal(d.current()?.jwks_uri, `${idp.url}/jwks`);
    } finally {
      d.close();
    }
  });
});
