/** Config of issuers[].discovery and issuers[].introspection: shapes, defaults, cross-field checks. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LocatedConfigError, parseConfig } from '../../../src/config/load.ts';
import { ConfigErrors } from '../../../src/errors.ts';

const FILE = '/etc/regate/regate.yaml';

const BASE = `upstreams:
  app:
    url: http://127.0.0.1:3000
policy:
  bundle: bundle.tar.gz
  default_entrypoint: regate/authz/decision
routes:
  - id: public
    match:
      methods: [GET]
      path: /
    upstream: app
    auth: none
issuers:
`;

const withIssuer = (issuer: string, more = ''): string => `${BASE}  - ${issuer.trim().split('\n').join('\n    ')}\n${more}`;

function errorsOf(text: string): LocatedConfigError[] {
  try {
    parseConfig(text, FILE, { env: {} });
  } catch (err) {
    assert.ok(err instanceof ConfigErrors, `expected ConfigErrors, got ${String(err)}`);
    return err.errors as LocatedConfigError[];
  }
  assert.fail('expected the config to be refused');
}

const messages = (errors: readonly LocatedConfigError[]): string => errors.map((e) => `${e.keyPath}: ${e.message}`).join('\n');

describe('issuers[].discovery', () => {
  it('loads discovery: true with algorithms', () => {
    const config = parseConfig(withIssuer('issuer: https://idp.example\ndiscovery: true\naudiences: [api]\nalgorithms: [RS256]'), FILE, { env: {} });
    assert.equal(config.issuers[0]!.discovery, true);
    assert.equal(config.issuers[0]!.jwks_url, undefined);
  });

  it('refuses discovery together with jwks_url, naming both', () => {
    const errors = errorsOf(withIssuer('issuer: https://idp.example\ndiscovery: true\njwks_url: https://idp.example/keys\naudiences: [api]\nalgorithms: [RS256]'));
    assert.match(messages(errors), /\/issuers\/0: .*set only one of jwks_url, discovery, not both/);
  });

  it('requires algorithms with a key source', () => {
    const errors = errorsOf(withIssuer('issuer: https://idp.example\ndiscovery: true\naudiences: [api]'));
    assert.match(messages(errors), /\/issuers\/0\/algorithms: .*missing required key "algorithms".*discovery/);
  });

  it('refuses discovery: false and an http issuer off loopback', () => {
    assert.match(messages(errorsOf(withIssuer('issuer: https://idp.example\ndiscovery: false\naudiences: [api]\nalgorithms: [RS256]'))), /\/issuers\/0\/discovery/);
    assert.match(messages(errorsOf(withIssuer('issuer: http://idp.example\ndiscovery: true\naudiences: [api]\nalgorithms: [RS256]'))), /\/issuers\/0\/issuer: .*must be https/);
    parseConfig(withIssuer('issuer: http://127.0.0.1:4444\ndiscovery: true\naudiences: [api]\nalgorithms: [RS256]'), FILE, { env: {} });
  });
});

describe('issuers[].introspection', () => {
  it('loads an introspection-only issuer with defaults, paths resolved against the config file', () => {
    const config = parseConfig(
      withIssuer('issuer: https://idp.example\naudiences: [api]\nintrospection:\n  url: https://idp.example/introspect\n  client_id: regate\n  client_secret_file: secrets/introspection'),
      FILE,
      { env: {} },
    );
    const issuer = config.issuers[0]!;
    assert.deepEqual(issuer.algorithms, []);
    assert.deepEqual(issuer.introspection, {
      url: 'https://idp.example/introspect',
      client_id: 'regate',
      client_secret_file: '/etc/regate/secrets/introspection',
      timeout_ms: 3000,
      cache: { max_entries: 10000, negative_ttl_s: 10, max_ttl_s: 60 },
    });
  });

  it('refuses an inline secret (secrets only from files)', () => {
    const errors = errorsOf(withIssuer('issuer: https://idp.example\naudiences: [api]\nintrospection:\n  url: https://idp.example/introspect\n  client_id: regate\n  client_secret: hunter2'));
    assert.match(messages(errors), /\/issuers\/0\/introspection\/client_secret: .*unknown key "client_secret"/);
  });

  it('needs a url unless discovery supplies the endpoint', () => {
    assert.match(messages(errorsOf(withIssuer('issuer: https://idp.example\naudiences: [api]\nintrospection:\n  timeout_ms: 1000'))), /\/issuers\/0\/introspection\/url: .*missing required key "url"/);
    parseConfig(withIssuer('issuer: https://idp.example\ndiscovery: true\naudiences: [api]\nalgorithms: [RS256]\nintrospection:\n  timeout_ms: 1000'), FILE, { env: {} });
  });

  it('refuses an http url off loopback, a credential without client_id, and both credentials', () => {
    assert.match(messages(errorsOf(withIssuer('issuer: https://idp.example\naudiences: [api]\nintrospection:\n  url: http://idp.example/introspect'))), /introspection\/url: .*must be https/);
    assert.match(messages(errorsOf(withIssuer('issuer: https://idp.example\naudiences: [api]\nintrospection:\n  url: https://idp.example/i\n  client_secret_file: s'))), /introspection\/client_id: .*missing required key "client_id"/);
    assert.match(
      messages(errorsOf(withIssuer('issuer: https://idp.example\naudiences: [api]\nintrospection:\n  url: https://idp.example/i\n  client_id: r\n  client_secret_file: s\n  private_key_jwt:\n    key_file: k.pem'))),
      /\/issuers\/0\/introspection/,
    );
  });

  it('refuses a second introspecting issuer', () => {
    const second = `  - issuer: https://b.example\n    audiences: [api]\n    introspection:\n      url: https://b.example/i\n`;
    const errors = errorsOf(withIssuer('issuer: https://idp.example\naudiences: [api]\nintrospection:\n  url: https://idp.example/i', second));
    assert.match(messages(errors), /\/issuers\/1\/introspection: .*only one issuer may use introspection/);
  });

  it('an issuer with neither a key source nor introspection is refused', () => {
    assert.match(messages(errorsOf(withIssuer('issuer: https://idp.example\naudiences: [api]\nalgorithms: [RS256]'))), /set one of jwks_url, jwks_file, discovery, introspection/);
  });
});
