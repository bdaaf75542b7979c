/** Config keys of the token exchange broker: broker.*, routes[].upstream_token (src/config/broker-checks.ts). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseConfig } from '../../../src/config/load.ts';
import { configProblems } from '../../helpers/config-problems.ts';

const FILE = '/etc/regate/regate.yaml';
const config = (broker: string, route = ''): string => `upstreams: {app: {url: "http://a"}}
policy: {bundle: b.tar.gz, default_entrypoint: app/decision}
issuers: [{issuer: i, jwks_url: "https://i/jwks", audiences: [a], algorithms: [ES256]}]
${broker === '' ? '' : `broker: {${broker}}`}
routes:
  - {id: r, match: {methods: [GET], path: /r}, upstream: app${route}}
`;
const BASE = 'issuer: "https://broker.example", signing_keys: [{file: keys/a.jwk, use: active}], entrypoint: b/grant, audiences: [api, chat]';

const problems = (text: string): string[] => configProblems(text, FILE);

describe('broker config keys', () => {
  it('absent by default; defaults applied and key paths resolved against the config file', () => {
    assert.equal(parseConfig(config(''), FILE).broker, undefined);
    const b = parseConfig(config(`${BASE}, clients: [{id: wf, jwks_file: wf.jwks, algorithms: [ES256]}]`), FILE).broker!;
    assert.equal(b.path, '/oauth2/token');
    assert.deepEqual(b.signing_keys, [{ file: '/etc/regate/keys/a.jwk', use: 'active' }]);
    assert.equal(b.clients[0]!.jwks_file, '/etc/regate/wf.jwks');
    assert.deepEqual([b.default_ttl_s, b.max_ttl_s, b.actor_token, b.max_body_bytes, b.max_concurrent, b.token_type], [300, 900, 'optional', 16384, 64, 'at+jwt']);
    assert.deepEqual(b.client_auth, ['private_key_jwt', 'actor_token']);
  });

  it('exactly one active key', () => {
    const none = problems(config('issuer: "https://b", signing_keys: [{file: a, use: next}], entrypoint: b/grant, audiences: [api]'));
    assert.ok(none.some((m) => m.includes('/broker/signing_keys') && m.includes('exactly one signing key must be use: active (found 0)')), none.join('\n'));
    const two = problems(config('issuer: "https://b", signing_keys: [{file: a, use: active}, {file: b, use: active}], entrypoint: b/grant, audiences: [api]'));
    assert.ok(two.some((m) => m.includes('found 2')), two.join('\n'));
  });

  it('issuer must be an http(s) URL; default_ttl_s at most max_ttl_s; unknown use refused', () => {
    assert.ok(problems(config(BASE.replace('"https://broker.example"', 'broker'))).some((m) => m.includes('/broker/issuer')));
    assert.ok(problems(config(`${BASE}, default_ttl_s: 600, max_ttl_s: 60`)).some((m) => m.includes('default_ttl_s (600) is greater than max_ttl_s (60)')));
    assert.ok(problems(config(BASE.replace('use: active', 'use: primary'))).some((m) => m.includes('/broker/signing_keys/0/use')));
  });

  it('a route on a broker path is refused', () => {
    const p = problems(config(BASE).replace('path: /r', 'path: /oauth2/token'));
    assert.ok(p.some((m) => m.includes('/routes/0/match/path') && m.includes('served by the broker before routing')), p.join('\n'));
    assert.ok(problems(config(BASE).replace('path: /r', 'path: /.well-known/jwks.json')).length > 0);
  });

  it('upstream_token needs broker, an audience among broker.audiences, auth: required, no forward_authorization', () => {
    assert.ok(problems(config('', ', upstream_token: {audience: api}')).some((m) => m.includes('/routes/0/upstream_token') && m.includes('needs broker')));
    assert.ok(problems(config(BASE, ', upstream_token: {audience: billing}')).some((m) => m.includes('"billing" is not one of broker.audiences')));
    assert.ok(problems(config(BASE, ', auth: none, upstream_token: {audience: api}')).some((m) => m.includes('needs auth: required')));
    assert.ok(problems(config(BASE, ', forward_authorization: true, upstream_token: {audience: api}')).some((m) => m.includes('/routes/0/forward_authorization')));
    assert.ok(problems(`listen: {authz: {protocol: nginx}}\n${config(BASE, ', upstream_token: {audience: api}')}`).some((m) => m.includes('not applied on the authz listener')));
    const withCredential = (header: string): string =>
      config(BASE, ', credentials: [key], upstream_token: {audience: api}').replace('app: {url: "http://a"}', `app: {url: "http://a", credentials: {key: {header: ${header}, value_file: k}}}`);
    assert.ok(problems(withCredential('authorization')).some((m) => m.includes('/routes/0/credentials/0') && m.includes('upstream_token sets')));
    assert.equal(parseConfig(withCredential('X-Api-Key'), FILE).routes[0]!.credentials?.[0], 'key');
    const r = parseConfig(config(BASE, ', upstream_token: {audience: api, scopes: decision}'), FILE).routes[0]!;
    assert.deepEqual(r.upstream_token, { audience: 'api', scopes: 'decision', ttl_s: 300 });
  });
});
