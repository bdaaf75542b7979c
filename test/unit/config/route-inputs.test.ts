/**
 * Config keys of issue 3: routes[].resource, routes[].body, routes[].timezone.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseConfig, type LocatedConfigError } from '../../../src/config/load.ts';
import { ConfigErrors } from '../../../src/errors.ts';

const FILE = '/etc/regate/regate.yaml';

/** A config with one authenticated route; `extra` is YAML appended to the route (indented 4). */
function withRoute(extra: string, path = '/files/{file}', auth = 'required'): string {
  return `upstreams:
  app: {url: "http://127.0.0.1:3000"}
policy: {bundle: b.tar.gz, default_entrypoint: regate/authz/decision, timezone: Europe/Paris}
issuers:
  - {issuer: "https://idp", jwks_url: "https://idp/jwks", audiences: [api], algorithms: [ES256]}
routes:
  - id: files
    match: {methods: [GET, POST], path: "${path}"}
    upstream: app
    auth: ${auth}
${extra
  .split('\n')
  .filter((l) => l !== '')
  .map((l) => `    ${l}`)
  .join('\n')}
`;
}

function errorsOf(text: string): LocatedConfigError[] {
  try {
    parseConfig(text, FILE, { env: { CATALOG_KEY: 'secret-key' } });
  } catch (err) {
    assert.ok(err instanceof ConfigErrors, String(err));
    return err.errors as LocatedConfigError[];
  }
  assert.fail('expected the config to be refused');
}

function only(errors: LocatedConfigError[], keyPath: string): string {
  const at = errors.filter((e) => e.keyPath === keyPath);
  assert.equal(at.length, 1, `expected one error at ${keyPath}, got:\n${errors.map((e) => e.message).join('\n')}`);
  return at[0]!.message;
}

describe('routes[].resource', () => {
  it('applies the defaults; header names lower-case; ${ENV} substituted', () => {
    const config = parseConfig(withRoute('resource: {url: "http://127.0.0.1:7000/files/{file}", headers: {X-Api-Key: "${CATALOG_KEY}"}}'), FILE, {
      env: { CATALOG_KEY: 'secret-key' },
    });
    assert.deepEqual(config.routes[0]!.resource, {
      url: 'http://127.0.0.1:7000/files/{file}',
      timeout_ms: 1000,
      ttl_s: 30,
      max_bytes: 65_536,
      headers: { 'x-api-key': 'secret-key' },
    });
  });

  it('is absent when not configured', () => {
    const config = parseConfig(withRoute(''), FILE);
    assert.equal('resource' in config.routes[0]!, false);
    assert.equal('body' in config.routes[0]!, false);
    assert.equal('timezone' in config.routes[0]!, false);
  });

  it('refuses a template parameter that is not a path parameter, at the url key', () => {
    const message = only(errorsOf(withRoute('resource: {url: "http://c/files/{fille}"}')), '/routes/0/resource/url');
    assert.match(message, /regate\.yaml:\d+:\d+: \/routes\/0\/resource\/url: \{fille\} is not a path parameter of this route \(match.path has \{file\}\)/);
  });

  it('accepts a rest parameter', () => {
    assert.equal(parseConfig(withRoute('resource: {url: "http://c/objects/{key}"}', '/objects/{key*}'), FILE).routes[0]!.resource?.url, 'http://c/objects/{key}');
  });

  it('refuses parameters in the host, credentials and fragments', () => {
    assert.match(only(errorsOf(withRoute('resource: {url: "http://{file}.internal/x"}')), '/routes/0/resource/url'), /path or the query/);
    assert.match(only(errorsOf(withRoute('resource: {url: "http://u:p@c/{file}"}')), '/routes/0/resource/url'), /credentials/);
    assert.match(only(errorsOf(withRoute('resource: {url: "http://c/{file}#x"}')), '/routes/0/resource/url'), /fragment/);
  });

  it('refuses a catalog on an auth: none route (anonymous traffic must not drive catalog requests)', () => {
    assert.match(only(errorsOf(withRoute('resource: {url: "http://c/{file}"}', '/files/{file}', 'none')), '/routes/0/resource'), /auth: none/);
  });

  it('refuses headers regate sets itself, and out-of-range limits', () => {
    assert.match(only(errorsOf(withRoute('resource: {url: "http://c/{file}", headers: {Host: evil}}')), '/routes/0/resource/headers/Host'), /set by regate/);
    const errors = errorsOf(withRoute('resource: {url: "http://c/{file}", timeout_ms: 0, ttl_s: -1, max_bytes: 1, extra: 1}'));
    assert.match(only(errors, '/routes/0/resource/timeout_ms'), /between 1 and 60000/);
    assert.match(only(errors, '/routes/0/resource/ttl_s'), /between 0 and 86400/);
    assert.match(only(errors, '/routes/0/resource/max_bytes'), /between 2 and/);
    assert.match(only(errors, '/routes/0/resource/extra'), /unknown key "extra"/);
  });

  it('requires url', () => {
    assert.match(only(errorsOf(withRoute('resource: {ttl_s: 5}')), '/routes/0/resource/url'), /missing required key "url"/);
  });
});

describe('routes[].body', () => {
  it('defaults max_bytes to 65536', () => {
    assert.deepEqual(parseConfig(withRoute('body: {}'), FILE).routes[0]!.body, { max_bytes: 65_536 });
    assert.deepEqual(parseConfig(withRoute('body: {max_bytes: 10}'), FILE).routes[0]!.body, { max_bytes: 10 });
  });

  it('refuses a negative limit and unknown keys', () => {
    const errors = errorsOf(withRoute('body: {max_bytes: -1, maxbytes: 3}'));
    assert.match(only(errors, '/routes/0/body/max_bytes'), /between 0 and/);
    assert.match(only(errors, '/routes/0/body/maxbytes'), /did you mean "max_bytes"/);
  });
});

describe('routes[].timezone', () => {
  it('keeps an IANA zone as written', () => {
    assert.equal(parseConfig(withRoute('timezone: America/Los_Angeles'), FILE).routes[0]!.timezone, 'America/Los_Angeles');
  });

  it('refuses unknown zones and fixed offsets, like policy.timezone', () => {
    assert.match(only(errorsOf(withRoute('timezone: America/Los_Angele')), '/routes/0/timezone'), /unknown time zone/);
    assert.match(only(errorsOf(withRoute("timezone: '-08:00'")), '/routes/0/timezone'), /fixed offset/);
  });
});

describe('routes[].forward_authorization', () => {
  it('is refused on auth: none routes (the token would reach the upstream unverified)', () => {
    const message = only(errorsOf(withRoute('forward_authorization: true', '/files/{file}', 'none')), '/routes/0/forward_authorization');
    assert.match(message, /auth: none, so the token would reach the upstream unverified/);
  });

  it('is accepted where the token is verified', () => {
    const config = parseConfig(withRoute('forward_authorization: true'), FILE);
    assert.equal(config.routes[0]?.forward_authorization, true);
  });
});
