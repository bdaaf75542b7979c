import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { closest, loadConfig, LocatedConfigError, parseConfig } from '../../../src/config/load.ts';
import { ConfigError, ConfigErrors } from '../../../src/errors.ts';

const fixtures = fileURLToPath(new URL('../../fixtures/config/', import.meta.url));
const FILE = '/etc/regate/regate.yaml';

const MINIMAL = `upstreams:
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
`;

/** MINIMAL plus one issuer, so routes may authenticate. */
const WITH_ISSUER = `${MINIMAL}issuers:
  - issuer: https://auth.example.com
    jwks_url: https://auth.example.com/jwks
    audiences: [api]
    algorithms: [ES256]
`;

/** MINIMAL with `from` replaced by `to` (which must exist once). */
function variant(from: string, to: string, base = MINIMAL): string {
  assert.ok(base.includes(from), `fixture does not contain ${JSON.stringify(from)}`);
  return base.replace(from, to);
}

/** Every error of parsing `text`; fails when it parses. */
function errorsOf(text: string, env: Record<string, string> = {}): LocatedConfigError[] {
  try {
    parseConfig(text, FILE, { env });
  } catch (err) {
    assert.ok(err instanceof ConfigErrors, `expected ConfigErrors, got ${String(err)}`);
    for (const e of err.errors) assert.ok(e instanceof ConfigError);
    return err.errors as LocatedConfigError[];
  }
  assert.fail('expected the config to be refused');
}

/** The single error at `keyPath`, asserting there is exactly one there. */
function errorAt(errors: readonly LocatedConfigError[], keyPath: string): LocatedConfigError {
  const found = errors.filter((e) => e.keyPath === keyPath);
  assert.equal(found.length, 1, `expected one error at ${keyPath}, got:\n${errors.map((e) => e.message).join('\n')}`);
  return found[0]!;
}

/** 1-based line of the first line of `text` containing `needle`. */
function lineOf(text: string, needle: string): number {
  const i = text.split('\n').findIndex((l) => l.includes(needle));
  assert.ok(i >= 0, `no line contains ${needle}`);
  return i + 1;
}

function assertDeepFrozen(value: unknown, where = 'config'): void {
  if (typeof value !== 'object' || value === null) return;
  assert.ok(Object.isFrozen(value), `${where} is not frozen`);
  for (const [k, v] of Object.entries(value)) assertDeepFrozen(v, `${where}.${k}`);
}

describe('loadConfig: valid files', () => {
  it('loads the full example with every value, normalized and resolved', async () => {
    const file = path.join(fixtures, 'full.yaml');
    const config = await loadConfig(file, { checkFiles: false });
    assert.equal(config.source, file);
    assert.deepEqual(config.listen, { proxy: { host: '0.0.0.0', port: 8080, http2: { h2c: false, h2: true, max_concurrent_streams: 100, max_header_list_bytes: 16_384, max_resets: 200, reset_window_ms: 10_000, idle_timeout_ms: 65_000 } }, admin: { host: '127.0.0.1', port: 9090 } });
    assert.deepEqual(Object.keys(config.upstreams), ['models', 'files']);
    assert.equal(config.upstreams.files!.id, 'files');
    // Unset keys of a partly written section still get their defaults.
    assert.deepEqual(config.upstreams.files!.timeouts, { connect_ms: 2000, headers_ms: 30_000, body_ms: 300_000 });

    const [corp, ci] = config.issuers;
    assert.equal(corp!.id, 'corp');
    assert.equal(corp!.claims.roles, 'realm_access.roles');
    assert.equal(ci!.id, '1', 'issuer id defaults to its position');
    assert.equal(ci!.jwks_file, path.join(fixtures, 'keys/ci-jwks.json'));
    assert.equal(ci!.jwks_url, undefined);
    assert.equal(ci!.clock_tolerance_s, 30);

    assert.equal(config.policy.bundle, path.join(fixtures, 'policy/bundle.tar.gz'));
    assert.equal(config.policy.timezone, 'Europe/Paris');
    assert.equal(config.decision_log.destination, 'stdout');
    assert.deepEqual(config.decision_log.labels, { env: 'prod' });
    assert.equal(config.clock.fixed, '2026-03-08T09:30:00-08:00');

    const predict = config.routes[0]!;
    assert.equal(predict.match.host, 'api.example.com', 'host is lower-cased');
    assert.deepEqual(Object.keys(predict.identity_headers), ['x-user-id', 'x-tenant', 'x-roles', 'x-email', 'x-route']);
    assert.equal(predict.entrypoint, 'regate/models/decision');
    assert.deepEqual(predict.attributes, { classification: 'confidential', owners: ['ml-platform'] });
    assert.equal(predict.expose_reasons, true);

    const files = config.routes[1]!;
    assert.equal(files.auth, 'required', 'auth defaults to required');
    assert.equal(files.entrypoint, undefined);
    assert.equal('host' in files.match, false);
    assert.deepEqual(files.identity_headers, {});
    assert.equal(files.forward_authorization, false);
  });

  it('deep-freezes the result', async () => {
    const config = await loadConfig(path.join(fixtures, 'full.yaml'), { checkFiles: false });
    assertDeepFrozen(config);
    assert.throws(() => {
      (config.routes[0]!.attributes as Record<string, unknown>).classification = 'public';
    }, TypeError);
  });

  it('loads the minimal file with every default', async () => {
    const config = await loadConfig(path.join(fixtures, 'minimal.yaml'), { checkFiles: false });
    assert.deepEqual(config, {
      source: path.join(fixtures, 'minimal.yaml'),
      listen: { proxy: { host: '0.0.0.0', port: 8080, http2: { h2c: false, h2: true, max_concurrent_streams: 100, max_header_list_bytes: 16_384, max_resets: 200, reset_window_ms: 10_000, idle_timeout_ms: 65_000 } }, admin: { host: '127.0.0.1', port: 9090 } },
      upstreams: {
        app: {
          id: 'app',
          url: 'http://127.0.0.1:3000',
          protocol: 'http1',
          timeouts: { connect_ms: 2000, headers_ms: 30_000, body_ms: 300_000 },
          pool: { connections: 128, keepalive_timeout_ms: 4000 },
          request_headers_to_remove: [],
          credentials: {},
        },
      },
      issuers: [],
      policy: { bundle: path.join(fixtures, 'bundle.tar.gz'), default_entrypoint: 'regate/authz/decision', timezone: 'UTC' },
      decision_log: { enabled: true, destination: 'stdout', mask: [], labels: {}, max_buffer_bytes: 4194304, overload: 'block' },
      limits: {
        max_url_bytes: 8192,
        max_header_bytes: 16_384,
        body_idle_timeout_ms: 60_000,
        request_timeout_ms: 300_000,
        websocket: { idle_timeout_ms: 300_000, max_lifetime_ms: 3_600_000 },
      },
      reload: { watch: true, debounce_ms: 300 },
      shutdown: { grace_ms: 10_000, drain_delay_ms: 0 },
      workers: 1,
      token_cache: { max_entries: 10_000 },
      clock: {},
      request_headers_to_remove: [],
      routes: [
        {
          id: 'public',
          match: { methods: ['GET'], path: '/' },
          upstream: 'app',
          auth: 'none',
          attributes: {},
          identity_headers: {},
          forward_authorization: false,
          credentials: [],
          grpc: false,
          expose_reasons: false,
          websocket: false,
          dry_run: false,
        },
      ],
    });
  });

  it('resolves relative paths against the config file, not the working directory', () => {
    const text = variant('  bundle: bundle.tar.gz', '  bundle: ../policy/b.tar.gz', `${MINIMAL}decision_log:\n  destination: logs/decisions.log\n`);
    const config = parseConfig(text, 'conf/regate.yaml');
    assert.equal(config.source, path.resolve('conf/regate.yaml'));
    assert.equal(config.policy.bundle, path.resolve('policy/b.tar.gz'));
    assert.equal(config.decision_log.destination, path.resolve('conf/logs/decisions.log'));
    assert.equal(parseConfig(`${MINIMAL}decision_log: {destination: stderr}\n`, FILE).decision_log.destination, 'stderr');
  });

  it('allows both ports 0 and accepts YAML aliases for shared blocks', () => {
    const text = `listen: {proxy: {port: 0}, admin: {port: 0}}
upstreams:
  a: {url: "http://a", timeouts: &t {connect_ms: 100}}
  b: {url: "http://b", timeouts: *t}
policy: {bundle: b.tgz, default_entrypoint: x}
routes:
  - {id: r, match: {methods: [GET], path: /}, upstream: a, auth: none, attributes: &attrs {tier: gold}}
  - {id: s, match: {methods: [GET], path: /s}, upstream: b, auth: none, attributes: *attrs}
`;
    const config = parseConfig(text, FILE);
    assert.equal(config.upstreams.b!.timeouts.connect_ms, 100);
    assert.deepEqual(config.routes[1]!.attributes, { tier: 'gold' });
    assert.notEqual(config.routes[0]!.attributes, config.routes[1]!.attributes, 'aliased data is copied, not shared');
  });

  it('accepts every identity header source', () => {
    const text = variant(
      '    auth: none\n',
      `    auth: optional
    identity_headers:
      x-sub: subject.sub
      x-iss: subject.iss
      x-tenant: subject.tenant
      x-roles: subject.roles
      x-groups: subject.groups
      x-scopes: subject.scopes
      x-email: token.email
      x-org: token.org.id
      x-route: route.id
      x-decision: decision.id
`,
      WITH_ISSUER,
    );
    assert.equal(Object.keys(parseConfig(text, FILE).routes[0]!.identity_headers).length, 10);
  });
});

describe('parseConfig: error reports', () => {
  it('reports an unknown key with a suggestion, its key path, line and column', () => {
    const text = variant('    upstream: app', '    upstreem: app');
    const errors = errorsOf(text);
    const e = errorAt(errors, '/routes/0/upstreem');
    assert.ok(e instanceof LocatedConfigError);
    assert.equal(e.file, FILE);
    assert.equal(e.line, lineOf(text, 'upstreem'));
    assert.equal(e.column, 5);
    assert.equal(e.message, `${FILE}:${e.line}:5: /routes/0/upstreem: unknown key "upstreem" (did you mean "upstream"?)`);
    // ... and, in the same run, the consequence: the real key is missing.
    assert.match(errorAt(errors, '/routes/0/upstream').message, /missing required key "upstream"/);
  });

  it('suggests snake_case keys for camelCase ones, lists the keys when nothing is close', () => {
    const text = variant('    url: http://127.0.0.1:3000', '    url: http://127.0.0.1:3000\n    keepAlive: 1');
    assert.match(errorAt(errorsOf(text), '/upstreams/app/keepAlive').message, /unknown key "keepAlive" \(allowed: url, protocol, timeouts, pool, request_headers_to_remove, tls, credentials\)/);
    const camel = variant('    auth: none', '    auth: none\n    exposeReasons: true');
    assert.match(errorAt(errorsOf(camel), '/routes/0/exposeReasons').message, /did you mean "expose_reasons"/);
  });

  it('points a right key at the wrong indentation to where it belongs', () => {
    const text = variant('      path: /\n', '      path: /\n    methods: [GET]\n');
    assert.match(errorAt(errorsOf(text), '/routes/0/methods').message, /unknown key "methods" \(it belongs in routes\[\]\.match: check the indentation\)/);
    const limits = `${MINIMAL}decision_log:\n  max_url_bytes: 1024\n`;
    assert.match(errorAt(errorsOf(limits), '/decision_log/max_url_bytes').message, /it belongs in limits/);
  });

  it('reports a wrong type in YAML terms, with a hint for common slips', () => {
    const text = `${MINIMAL}listen:\n  proxy:\n    port: "8080"\n`;
    const e = errorAt(errorsOf(text), '/listen/proxy/port');
    assert.match(e.message, /must be an integer, got "8080" \(remove the quotes\)/);
    assert.equal(e.line, lineOf(text, 'port: "8080"'));
    const yes = variant('    auth: none', '    auth: none\n    forward_authorization: yes');
    assert.match(errorAt(errorsOf(yes), '/routes/0/forward_authorization').message, /must be true or false, got "yes" \(YAML 1\.2 booleans are only true and false\)/);
    assert.match(errorAt(errorsOf(variant('routes:\n', 'routes:\n  x: 1\n', 'routes:\n')), '/routes').message, /must be a list, got a mapping/);
  });

  it('names a missing required key and points at the mapping it belongs in', () => {
    const text = variant('  default_entrypoint: regate/authz/decision\n', '');
    const e = errorAt(errorsOf(text), '/policy/default_entrypoint');
    assert.match(e.message, /missing required key "default_entrypoint"/);
    assert.equal(e.line, lineOf(text, 'bundle:'));
  });

  it('lists allowed values for a bad enum', () => {
    const text = variant('    auth: none', '    auth: maybe');
    const e = errorAt(errorsOf(text), '/routes/0/auth');
    assert.match(e.message, /must be one of required, optional, none, mtls, got "maybe"/);
    assert.equal(e.line, lineOf(text, 'auth: maybe'));
    assert.equal(e.column, 11);
    assert.match(errorAt(errorsOf(variant('[GET]', '[get]')), '/routes/0/match/methods/0').message, /did you mean "GET"/);
    assert.match(errorAt(errorsOf(variant('[GET]', '[TRACE]')), '/routes/0/match/methods/0').message, /must be one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS/);
  });

  it('refuses alg none and HMAC algorithms and says why', () => {
    const text = variant('algorithms: [ES256]', 'algorithms: [none, HS256]', WITH_ISSUER);
    const errors = errorsOf(text);
    assert.match(errorAt(errors, '/issuers/0/algorithms/0').message, /"none" is refused: it means an unsigned token/);
    const hs = errorAt(errors, '/issuers/0/algorithms/1');
    assert.match(hs.message, /"HS256" is refused: HMAC needs a shared secret.*public keys from a JWKS/);
    assert.equal(hs.line, lineOf(text, 'HS256'));
  });

  it('requires exactly one key source (jwks_url, jwks_file, discovery) or introspection', () => {
    const both = variant('    jwks_url: https://auth.example.com/jwks', '    jwks_url: https://auth.example.com/jwks\n    jwks_file: jwks.json', WITH_ISSUER);
    const errors = errorsOf(both);
    assert.equal(errors.length, 1, errors.map((e) => e.message).join('\n'));
    assert.match(errorAt(errors, '/issuers/0').message, /set only one of jwks_url, jwks_file, not both/);
    const neither = variant('    jwks_url: https://auth.example.com/jwks\n', '', WITH_ISSUER);
    assert.match(errorAt(errorsOf(neither), '/issuers/0').message, /set one of jwks_url, jwks_file, discovery, introspection$/);
  });

  it('refuses a route to an unknown upstream, suggesting the closest', () => {
    const text = variant('    upstream: app', '    upstream: ap');
    const e = errorAt(errorsOf(text), '/routes/0/upstream');
    assert.match(e.message, /unknown upstream "ap" \(did you mean "app"\?\)/);
    assert.equal(e.line, lineOf(text, 'upstream: ap'));
  });

  it('refuses duplicate route ids', () => {
    const text = `${MINIMAL}  - id: public
    match: {methods: [POST], path: /other}
    upstream: app
    auth: none
`;
    const e = errorAt(errorsOf(text), '/routes/1/id');
    assert.match(e.message, /duplicate route id "public" \(also \/routes\/0\)/);
    assert.equal(e.line, lineOf(text, 'match: {methods: [POST]') - 1);
  });

  it('refuses duplicate issuer ids and issuer values', () => {
    const issuer = (id: string, iss: string): string =>
      `  - {id: ${id}, issuer: "${iss}", jwks_file: k.json, audiences: [a], algorithms: [RS256]}\n`;
    const text = `${MINIMAL}issuers:\n${issuer('main', 'https://a')}${issuer('main', 'https://b')}${issuer('other', 'https://a')}`;
    const errors = errorsOf(text);
    assert.equal(errors.length, 2);
    assert.match(errorAt(errors, '/issuers/1/id').message, /duplicate issuer id "main" \(also \/issuers\/0\)/);
    assert.match(errorAt(errors, '/issuers/2/issuer').message, /issuer "https:\/\/a" is already configured at \/issuers\/0/);
  });

  it('checks path templates with the router and hosts with the router', () => {
    const text = variant('      path: /', '      path: /files/*/more');
    const e = errorAt(errorsOf(text), '/routes/0/match/path');
    assert.match(e.message, /invalid path template "\/files\/\*\/more": wildcard '\*' must be the last segment/);
    assert.equal(e.line, lineOf(text, 'path: /files'));
    assert.match(errorAt(errorsOf(variant('      path: /', '      path: /a/{rest*}/b')), '/routes/0/match/path').message, /rest parameter/);
    assert.match(errorAt(errorsOf(variant('      path: /', '      path: v1/x')), '/routes/0/match/path').message, /must be a path template starting with '\/'/);
    const host = variant('      path: /', `      path: /\n      host: ${'a'.repeat(64)}.example.com`);
    assert.match(errorAt(errorsOf(host), '/routes/0/match/host').message, /invalid host label/);
    assert.match(errorAt(errorsOf(variant('      path: /', '      path: /\n      host: api.example.com:443')), '/routes/0/match/host').message, /without port/);
  });

  it('refuses two routes that match exactly the same requests', () => {
    const text = `${MINIMAL}  - id: again\n    match: {methods: [POST, GET], path: /}\n    upstream: app\n    auth: none\n`;
    assert.match(errorAt(errorsOf(text), '/routes/1/match').message, /matches the same requests as \/routes\/0 \(same path, host and method GET\)/);
    parseConfig(`${MINIMAL}  - id: post\n    match: {methods: [POST], path: /}\n    upstream: app\n    auth: none\n`, FILE);
  });

  it('validates the time zone with Intl and refuses fixed offsets', () => {
    const text = `${MINIMAL.replace('  default_entrypoint: regate/authz/decision', '  default_entrypoint: regate/authz/decision\n  timezone: Europe/Pariss')}`;
    const e = errorAt(errorsOf(text), '/policy/timezone');
    assert.match(e.message, /unknown time zone "Europe\/Pariss": use an IANA name/);
    assert.equal(e.line, lineOf(text, 'timezone'));
    const offset = variant('  default_entrypoint: regate/authz/decision', "  default_entrypoint: regate/authz/decision\n  timezone: '+01:00'");
    assert.match(errorAt(errorsOf(offset), '/policy/timezone').message, /fixed offset/);
    assert.equal(parseConfig(variant('  default_entrypoint: regate/authz/decision', '  default_entrypoint: regate/authz/decision\n  timezone: America/New_York'), FILE).policy.timezone, 'America/New_York');
  });

  it('explains the OPA path form of entrypoints', () => {
    const text = variant('regate/authz/decision', 'data.regate.authz.decision');
    assert.match(errorAt(errorsOf(text), '/policy/default_entrypoint').message, /must be an OPA path.*got "data.regate.authz.decision" \(did you mean "regate\/authz\/decision"\?\)/);
    const route = variant('    auth: none', '    auth: none\n    entrypoint: /regate/public/');
    assert.match(errorAt(errorsOf(route), '/routes/0/entrypoint').message, /did you mean "regate\/public"/);
  });

  it('validates decision-log masks and reserved labels', () => {
    const text = `${MINIMAL}decision_log:\n  mask: [/input/token/email, /request/headers/cookie]\n  labels: {env: prod, version: "2"}\n`;
    const errors = errorsOf(text);
    assert.match(errorAt(errors, '/decision_log/mask/1').message, /must be a JSON pointer starting with \/input or \/result/);
    assert.match(errorAt(errors, '/decision_log/labels/version').message, /label "version" is reserved/);
  });

  it('refuses identity headers that cannot work or must not be set', () => {
    const text = variant(
      '    auth: none\n',
      `    auth: none
    identity_headers:
      x-user: subject.sub
      x-email: token.email
      x-route: route.id
      X-Route: decision.id
      Connection: route.id
      authorization: route.id
      x-bad: subject.name
      "x user": route.id
      x_route: route.id
      User-Agent: route.id
      X-Forwarded-Client: route.id
`,
    );
    const errors = errorsOf(text);
    const at = '/routes/0/identity_headers';
    const sub = errorAt(errors, `${at}/x-user`);
    assert.match(sub.message, /source subject.sub needs a verified token, but this route has auth: none/);
    assert.equal(sub.line, lineOf(text, 'x-user:'));
    assert.match(errorAt(errors, `${at}/x-email`).message, /token.email needs a verified token/);
    assert.match(errorAt(errors, `${at}/X-Route`).message, /header X-Route is also set as x-route/);
    assert.match(errorAt(errors, `${at}/Connection`).message, /hop-by-hop/);
    assert.match(errorAt(errors, `${at}/authorization`).message, /forward_authorization/);
    assert.match(errorAt(errors, `${at}/x-bad`).message, /must be one of subject.sub, .*got "subject.name"/);
    assert.match(errorAt(errors, `${at}/x user`).message, /invalid key "x user": must be a valid HTTP header name/);
    assert.match(errorAt(errors, `${at}/x_route`).message, /header x_route is also set as x-route \(names are case-insensitive and '_' is read as '-'\)/);
    assert.match(errorAt(errors, `${at}/User-Agent`).message, /names a field regate controls/);
    assert.match(errorAt(errors, `${at}/X-Forwarded-Client`).message, /is set by regate itself/);
    assert.equal(errors.length, 10);
  });

  it('refuses authenticated routes without issuers', () => {
    const text = variant('    auth: none\n', '');
    assert.match(errorAt(errorsOf(text), '/issuers').message, /no issuers are configured, but routes "public" verify tokens/);
  });

  it('refuses clashing ports and bad upstream URLs', () => {
    const ports = `${MINIMAL}listen:\n  admin: {port: 8080}\n`;
    assert.match(errorAt(errorsOf(ports), '/listen/admin/port').message, /both use port 8080/);
    const query = variant('http://127.0.0.1:3000', 'http://127.0.0.1:3000/?a=1');
    assert.match(errorAt(errorsOf(query), '/upstreams/app/url').message, /without query string or fragment/);
    const creds = variant('http://127.0.0.1:3000', 'http://user:secret@127.0.0.1:3000');
    assert.match(errorAt(errorsOf(creds), '/upstreams/app/url').message, /must not contain credentials/);
    assert.match(errorAt(errorsOf(variant('http://127.0.0.1:3000', 'ftp://host')), '/upstreams/app/url').message, /must be an http:\/\/ or https:\/\/ URL/);
    assert.match(errorAt(errorsOf(variant('  app:', '  App:')), '/upstreams/App').message, /invalid key "App": must be a lower-case id/);
  });

  it('refuses request_headers_to_remove names regate needs, and invalid names', () => {
    const global = `${MINIMAL}request_headers_to_remove: [x-user-id, Host]\n`;
    assert.match(errorAt(errorsOf(global), '/request_headers_to_remove/1').message, /header Host cannot be removed: it is needed to route the request/);
    const upstream = variant('    url: http://127.0.0.1:3000', '    url: http://127.0.0.1:3000\n    request_headers_to_remove: [content_length, "bad name"]');
    const errors = errorsOf(upstream);
    assert.match(errorAt(errors, '/upstreams/app/request_headers_to_remove/0').message, /cannot be removed: it frames the request body/);
    assert.match(errorAt(errors, '/upstreams/app/request_headers_to_remove/1').message, /valid HTTP header name/);
    assert.doesNotThrow(() => parseConfig(`${MINIMAL}request_headers_to_remove: [x-user-id, X_Internal]\n`, FILE, { env: {} }));
  });

  it('reports every problem at once, in file order', () => {
    const text = `version: 2
upstreams:
  app: {url: http://a, pool: {connections: 0}}
policy: {bundle: b, default_entrypoint: x, timezone: Nowhere/City}
routes:
  - id: Bad
    match: {methods: [GET], path: /}
    upstream: nope
    auth: none
`;
    const errors = errorsOf(text);
    assert.deepEqual(
      errors.map((e) => [e.line, e.keyPath]),
      [
        [1, '/version'],
        [3, '/upstreams/app/pool/connections'],
        [4, '/policy/timezone'],
        [6, '/routes/0/id'],
        [8, '/routes/0/upstream'],
      ],
    );
    assert.match(errors[0]!.message, /unsupported config version/);
  });
});

describe('parseConfig: YAML strictness', () => {
  it('reports a syntax error with line and column', () => {
    const text = 'upstreams:\n  app:\n    url: "http://a\npolicy: {}\n';
    const [e, ...rest] = errorsOf(text);
    assert.equal(rest.length, 0, 'only the first syntax error: the rest are echoes');
    assert.ok(e instanceof LocatedConfigError);
    assert.match(e.message, /^\/etc\/regate\/regate\.yaml:\d+:\d+: YAML syntax error: /);
    const bad = errorsOf('upstreams:\n  app: [\n')[0]!;
    assert.equal(bad.keyPath, '');
    assert.ok(bad.line >= 2);
  });

  it('refuses duplicate keys, naming the key and its line', () => {
    const text = variant('    upstream: app', '    upstream: app\n    upstream: other');
    const [e, ...rest] = errorsOf(text);
    assert.equal(rest.length, 0);
    assert.equal(e!.line, lineOf(text, 'upstream: other'));
    assert.match(e!.message, /duplicate key "upstream"/);
  });

  it('refuses an alias bomb without expanding it', () => {
    const levels = ['a: &a ["x","x","x","x","x","x","x","x","x"]'];
    for (let i = 1; i < 9; i++) {
      const prev = String.fromCharCode(96 + i);
      const name = String.fromCharCode(97 + i);
      levels.push(`${name}: &${name} [${Array(9).fill(`*${prev}`).join(',')}]`);
    }
    const text = `${MINIMAL}${levels.join('\n')}\n`;
    const [e, ...rest] = errorsOf(text);
    assert.equal(rest.length, 0);
    assert.equal(e!.keyPath, '');
    assert.match(e!.message, /YAML aliases expand too much/);
  });

  it('refuses merge keys, YAML 1.1, non-core tags, several documents and dangling aliases', () => {
    const merge = `${MINIMAL}limits:\n  <<: {max_url_bytes: 1024}\n`;
    const m = errorAt(errorsOf(merge), '/limits/<<');
    assert.match(m.message, /merge keys \(<<\) are not supported/);
    assert.equal(m.line, lineOf(merge, '<<'));
    assert.match(errorsOf(`%YAML 1.1\n---\n${MINIMAL}`)[0]!.message, /%YAML 1.1 is not supported/);
    assert.match(errorAt(errorsOf(`${MINIMAL}clock: !!set {a}\n`), '/clock').message, /YAML tag !!set is not supported/);
    assert.match(errorAt(errorsOf(`${MINIMAL}clock: {fixed: !env NOW}\n`), '').message, /YAML tag error: Unresolved tag: !env/);
    assert.match(errorsOf(`${MINIMAL}---\n${MINIMAL}`)[0]!.message, /several YAML documents/);
    assert.match(errorAt(errorsOf(`${MINIMAL}limits: *nope\n`), '/limits').message, /unknown YAML alias \*nope/);
    assert.match(errorsOf('{? [a, b] : 1}\n')[0]!.message, /mapping keys must be plain strings/);
  });

  it('refuses an empty file and a file that is not a mapping', () => {
    assert.match(errorsOf('# nothing\n')[0]!.message, /the file is empty/);
    assert.match(errorAt(errorsOf('- a\n- b\n'), '').message, /must be a mapping, got a list/);
  });
});

describe('parseConfig: ${VAR} substitution', () => {
  it('substitutes string values and types a bare unquoted variable', () => {
    const text = `${variant('http://127.0.0.1:3000', 'http://${UPSTREAM_HOST}:3000/${BASE}')}listen:
  proxy:
    port: \${PORT}
  admin: {host: "\${ADMIN_HOST}"}
decision_log:
  enabled: \${LOG}
  labels: {literal: "$\${NOT_A_VAR} and $5"}
`;
    const config = parseConfig(text, FILE, { env: { UPSTREAM_HOST: 'svc', BASE: 'api', PORT: '8443', ADMIN_HOST: '::1', LOG: 'false' } });
    assert.equal(config.upstreams.app!.url, 'http://svc:3000/api');
    assert.equal(config.listen.proxy.port, 8443);
    assert.equal(config.listen.admin.host, '::1');
    assert.equal(config.decision_log.enabled, false);
    assert.equal(config.decision_log.labels.literal, '${NOT_A_VAR} and $5');
  });

  it('types a value that is exactly ${NAME} as its key wants, quoted or not, in flow and block style', () => {
    const text = `${MINIMAL}listen:\n  proxy: {host: 127.0.0.1, port: \${PORT}}\n  admin: {port: "\${ADMIN_PORT}"}\nworkers: \${WORKERS}\ndecision_log: {enabled: "\${LOG}", labels: {release: \${V}, mixed: "v\${V}"}}\n`;
    const config = parseConfig(text, FILE, { env: { PORT: '8443', ADMIN_PORT: '9443', WORKERS: 'auto', LOG: 'true', V: '2' } });
    assert.equal(config.listen.proxy.port, 8443);
    assert.equal(config.listen.admin.port, 9443);
    assert.equal(config.workers, 'auto');
    assert.equal(config.decision_log.enabled, true);
    assert.equal(config.decision_log.labels.release, '2', 'a string key keeps the string');
    assert.equal(config.decision_log.labels.mixed, 'v2');
    assert.equal(parseConfig(`${MINIMAL}workers: "\${W}"\n`, FILE, { env: { W: '3' } }).workers, 3);
  });

  it('${NAME:-default} takes the default when NAME is unset or empty, typed like NAME would be', () => {
    const text = `${MINIMAL}listen:\n  proxy: {host: 127.0.0.1, port: \${PORT:-8080}}\n  admin: {host: "\${ADMIN_HOST:-127.0.0.1}"}\n`;
    assert.equal(parseConfig(text, FILE, { env: {} }).listen.proxy.port, 8080);
    assert.equal(parseConfig(text, FILE, { env: { PORT: '' } }).listen.proxy.port, 8080);
    assert.equal(parseConfig(text, FILE, { env: { PORT: '0' } }).listen.proxy.port, 0);
    assert.equal(parseConfig(text, FILE, { env: { ADMIN_HOST: '::1' } }).listen.admin.host, '::1');
    assert.equal(parseConfig(text, FILE, { env: {} }).listen.admin.host, '127.0.0.1');
    assert.match(errorAt(errorsOf(`${MINIMAL}listen:\n  proxy: {port: \${PORT:-x}}\n`), '/listen/proxy/port').message, /environment variable PORT is "x", but this key needs an integer/);
  });

  it('names the variable when its value does not fit the key, with the location', () => {
    const text = `${MINIMAL}listen:\n  proxy: {port: \${PORT}}\ndecision_log: {enabled: \${LOG}}\n`;
    const errors = errorsOf(text, { PORT: '80a', LOG: 'yes' });
    const port = errorAt(errors, '/listen/proxy/port');
    assert.equal(port.message, `${FILE}:${lineOf(text, 'PORT')}:17: /listen/proxy/port: environment variable PORT is "80a", but this key needs an integer`);
    assert.match(errorAt(errors, '/decision_log/enabled').message, /environment variable LOG is "yes", but this key needs true or false/);
    assert.match(errorAt(errorsOf(text, { LOG: 'true' }), '/listen/proxy/port').message, /environment variable PORT is not set/);
    assert.match(errorAt(errorsOf(text, { PORT: '70000', LOG: 'true' }), '/listen/proxy/port').message, /port|65535/, 'a number out of range: the schema judges it');
  });

  it('refuses unset variables and malformed references, with their location', () => {
    const text = variant('http://127.0.0.1:3000', 'http://${UPSTREAM_HOST}:3000');
    const e = errorAt(errorsOf(text), '/upstreams/app/url');
    assert.match(e.message, /environment variable UPSTREAM_HOST is not set/);
    assert.equal(e.line, lineOf(text, 'UPSTREAM_HOST'));
    const lower = variant('http://127.0.0.1:3000', 'http://${host}');
    assert.match(errorAt(errorsOf(lower), '/upstreams/app/url').message, /invalid variable reference "\$\{host\}"/);
    const open = variant('http://127.0.0.1:3000', 'http://${HOST');
    assert.match(errorAt(errorsOf(open, { HOST: 'x' }), '/upstreams/app/url').message, /invalid variable reference/);
  });

  it('never substitutes into keys', () => {
    const text = variant('  app:', '  ${APP}:');
    assert.match(errorAt(errorsOf(text, { APP: 'app' }), '/upstreams/${APP}').message, /invalid key/);
  });
});

describe('loadConfig: files', () => {
  it('reports a missing config file', async () => {
    await assert.rejects(loadConfig('/nonexistent/regate.yaml'), (err: unknown) => {
      assert.ok(err instanceof ConfigErrors);
      assert.equal(err.errors[0]!.message, '/nonexistent/regate.yaml: cannot read config file: file not found');
      return true;
    });
  });

  it('checks that the bundle and JWKS files exist, unless told not to', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'regate-config-'));
    try {
      const file = path.join(dir, 'regate.yaml');
      const text = variant('    jwks_url: https://auth.example.com/jwks', '    jwks_file: keys/jwks.json', WITH_ISSUER);
      await writeFile(file, text);
      await assert.rejects(loadConfig(file), (err: unknown) => {
        assert.ok(err instanceof ConfigErrors);
        assert.deepEqual(
          err.errors.map((e) => e.keyPath),
          ['/policy/bundle', '/issuers/0/jwks_file'],
        );
        const bundle = err.errors[0] as LocatedConfigError;
        assert.match(bundle.message, /\/policy\/bundle: cannot read .*bundle\.tar\.gz: file not found/);
        assert.equal(bundle.line, lineOf(text, 'bundle:'));
        return true;
      });
      await loadConfig(file, { checkFiles: false });
      await mkdir(path.join(dir, 'keys'));
      await writeFile(path.join(dir, 'keys/jwks.json'), '{"keys":[]}');
      await writeFile(path.join(dir, 'bundle.tar.gz'), '');
      const config = await loadConfig(file);
      assert.equal(config.issuers[0]!.jwks_file, path.join(dir, 'keys/jwks.json'));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('parseConfig: robustness', () => {
  it('answers any edit of the full example with a Config or ConfigErrors, never another error', async () => {
    const full = await readFile(path.join(fixtures, 'full.yaml'), 'utf8');
    const edit = fc.tuple(fc.nat(full.length), fc.nat(30), fc.string({ maxLength: 8 }));
    fc.assert(
      fc.property(fc.array(edit, { minLength: 1, maxLength: 4 }), (edits) => {
        let text = full;
        for (const [at, remove, insert] of edits) text = text.slice(0, at) + insert + text.slice(at + remove);
        try {
          parseConfig(text, FILE, { env: {} });
        } catch (err) {
          assert.ok(err instanceof ConfigErrors, String(err));
          assert.ok(err.errors.length > 0);
        }
      }),
      { numRuns: 500 },
    );
  });
});

describe('closest', () => {
  it('finds typos, case and camelCase slips, and nothing for unrelated words', () => {
    assert.equal(closest('upstreem', ['id', 'match', 'upstream', 'auth']), 'upstream');
    assert.equal(closest('jwksUrl', ['jwks_url', 'jwks_file']), 'jwks_url');
    assert.equal(closest('post', ['GET', 'POST']), 'POST');
    assert.equal(closest('xy', ['id', 'auth']), undefined);
    assert.equal(closest('banana', ['match', 'upstream']), undefined);
  });
});
