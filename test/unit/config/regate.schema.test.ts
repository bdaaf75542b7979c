import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { configSchema, parseConfig } from '../../../src/config/load.ts';

type Schema = Record<string, unknown>;
const root = configSchema as Schema;
const defs = root.$defs as Record<string, Schema>;

/** Follow a local `$ref`, merging the referencing schema's own keywords over the target. */
function deref(schema: Schema): Schema {
  const ref = schema.$ref;
  if (typeof ref !== 'string') return schema;
  const target = defs[ref.replace('#/$defs/', '')];
  assert.ok(target, `dangling $ref ${ref}`);
  return { ...deref(target), ...schema };
}

/** Every (instance path, schema) pair, with `*` for map values and `0` for list items. */
function* walk(schema: Schema, at: string): Generator<[string, Schema]> {
  const s = deref(schema);
  yield [at, s];
  for (const [key, sub] of Object.entries((s.properties ?? {}) as Record<string, Schema>)) yield* walk(sub, `${at}/${key}`);
  if (typeof s.additionalProperties === 'object') yield* walk(s.additionalProperties as Schema, `${at}/*`);
  if (typeof s.items === 'object') yield* walk(s.items as Schema, `${at}/0`);
}

describe('regate.schema.json', () => {
  it('identifies itself for editors', () => {
    assert.equal(root.$schema, 'https://json-schema.org/draft/2020-12/schema');
    assert.equal(typeof root.$id, 'string');
    assert.equal(typeof root.title, 'string');
    assert.equal(typeof root.description, 'string');
  });

  it('documents every key', () => {
    for (const [at, s] of walk(root, '')) {
      for (const key of Object.keys((s.properties ?? {}) as object)) {
        const property = deref(((s.properties as Record<string, Schema>)[key])!);
        assert.equal(typeof property.description, 'string', `${at}/${key} has no description`);
      }
    }
  });

  it('says what every mapping accepts: unknown keys are refused unless it is a free-form map', () => {
    for (const [at, s] of walk(root, '')) {
      if (s.type !== 'object') continue;
      assert.notEqual(s.additionalProperties, undefined, `${at} leaves additionalProperties implicit`);
      if (s.properties !== undefined) assert.equal(s.additionalProperties, false, `${at} has properties but accepts unknown keys`);
    }
  });

  it('declares the defaults the loader applies', () => {
    // One config per default: the first omits issuers, the second every optional key
    // (and names a shadow, a resource and a body, whose own keys have defaults).
    const bare = parseConfig(
      'upstreams: {app: {url: "http://a"}}\npolicy: {bundle: b, default_entrypoint: x}\nroutes: [{id: r, match: {methods: [GET], path: /}, upstream: app, auth: none}]\n',
      '/etc/regate.yaml',
    );
    const full = parseConfig(
      `upstreams: {app: {url: "http://a"}}
policy: {bundle: b, default_entrypoint: x}
issuers: [{issuer: i, jwks_url: "https://i/jwks", audiences: [a], algorithms: [ES256], introspection: {url: "https://i/introspect", client_id: c, private_key_jwt: {key_file: k.pem}}}]
routes: [{id: r, match: {methods: [GET], path: /}, upstream: app, shadow: {entrypoint: y}, resource: {url: "http://c/r"}, body: {}}]
`,
      '/etc/regate.yaml',
    );
    // policy.service excludes policy.bundle: its defaults (and signing's) come from a third config.
    const remote = parseConfig(
      `upstreams: {app: {url: "http://a"}}
policy: {service: {url: "https://b/bundle.tar.gz"}, signing: {public_key_file: k.pem, algorithm: RS256}, default_entrypoint: x}
routes: [{id: r, match: {methods: [GET], path: /}, upstream: app, auth: none}]
`,
      '/etc/regate.yaml',
    );
    // listen.authz is optional and has no default itself: its keys' defaults come from a fourth.
    const authz = parseConfig(
      'listen: {authz: {protocol: envoy_http}}\nupstreams: {app: {url: "http://a"}}\npolicy: {bundle: b, default_entrypoint: x}\nroutes: [{id: r, match: {methods: [GET], path: /}, upstream: app, auth: none}]\n',
      '/etc/regate.yaml',
    );
    // decision_log.service and tracing (absent by default) and their keys' defaults: a fifth config.
    const logs = parseConfig(
      `upstreams: {app: {url: "http://a"}}
policy: {bundle: b, default_entrypoint: x}
decision_log: {service: {url: "http://l", credentials: {bearer: {token_path: t}}}}
tracing: {otlp: {endpoint: "http://otel:4318"}}
routes: [{id: r, match: {methods: [GET], path: /}, upstream: app, auth: none}]
`,
      '/etc/regate.yaml',
    );
    // TLS sections (absent by default) and their keys' defaults: a sixth config.
    const tls = parseConfig(
      `listen: {proxy: {tls: {cert_file: c.pem, key_file: k.pem}}, authz: {protocol: nginx, tls: {cert_file: c.pem, key_file: k.pem}}}
upstreams: {app: {url: "https://a", tls: {ca_file: ca.pem}}}
policy: {bundle: b, default_entrypoint: x}
routes: [{id: r, match: {methods: [GET], path: /}, upstream: app, auth: none}]
`,
      '/etc/regate.yaml',
    );
    // broker and routes[].upstream_token (absent by default) and their keys' defaults: a seventh config.
    const brokered = parseConfig(
      `upstreams: {app: {url: "http://a"}}
policy: {bundle: b, default_entrypoint: x}
issuers: [{issuer: i, jwks_url: "https://i/jwks", audiences: [a], algorithms: [ES256]}]
broker: {issuer: "https://b", signing_keys: [{file: k.jwk, use: active}], entrypoint: b/grant, audiences: [api]}
routes: [{id: r, match: {methods: [GET], path: /}, upstream: app, upstream_token: {audience: api}}]
`,
      '/etc/regate.yaml',
    );
    let checked = 0;
    for (const [at, s] of walk(root, '')) {
      if (!('default' in s)) continue;
      const config = /^\/(broker|routes\/0\/upstream_token)\//.test(at) ? brokered : /^\/(listen\/(proxy|authz)|upstreams\/\*)\/tls\//.test(at) ? tls : at === '/issuers' ? bare : /^\/policy\/(service|signing)\//.test(at) ? remote : at.startsWith('/listen/authz/') ? authz : /^\/(decision_log\/service|tracing)\//.test(at) ? logs : full;
      const actual = at
        .slice(1)
        .split('/')
        .reduce<unknown>((v, k) => (v as Record<string, unknown>)[k === '*' ? 'app' : k], config);
      assert.deepEqual(actual, s.default, `default of ${at}`);
      checked++;
    }
    assert.ok(checked > 30, `only ${checked} defaults found`);
  });
});
