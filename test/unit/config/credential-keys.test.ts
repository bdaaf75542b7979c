/** Config keys of credential injection: upstreams.<id>.credentials, routes[].credentials (issue 15). */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { inspectConfig, parseConfig } from '../../../src/config/load.ts';
import { configProblems } from '../../helpers/config-problems.ts';

const FILE = '/etc/regate/regate.yaml';

const config = (credentials: string, route = '', upstreamExtra = ''): string => `upstreams:
  app: {url: "http://a", credentials: {${credentials}}${upstreamExtra}}
  bare: {url: "http://b"}
policy: {bundle: b.tar.gz, default_entrypoint: app/decision}
routes:
  - {id: r, match: {methods: [GET], path: /}, upstream: app, auth: none, ${route}}
`;

const problems = (text: string): string[] => configProblems(text, FILE);

describe('credential config keys', () => {
  it('defaults: no credentials; value_file resolved against the config file; scheme optional', () => {
    const none = parseConfig(config(''), FILE);
    assert.deepEqual(none.upstreams.bare!.credentials, {});
    assert.deepEqual(none.routes[0]!.credentials, []);
    const c = parseConfig(config('translation: {header: Authorization, scheme: Bearer, value_file: secrets/t}, key: {header: X-Api-Key, value_file: /run/k}', 'credentials: [translation, key]'), FILE);
    assert.deepEqual(c.upstreams.app!.credentials, {
      translation: { header: 'Authorization', scheme: 'Bearer', value_file: '/etc/regate/secrets/t' },
      key: { header: 'X-Api-Key', value_file: '/run/k' },
    });
    assert.deepEqual(c.routes[0]!.credentials, ['translation', 'key']);
  });

  it('names are lower-case identifiers; header and value_file are required; unknown keys are refused', () => {
    assert.match(problems(config('Translation: {header: X-K, value_file: f}')).join('\n'), /\/upstreams\/app\/credentials\/Translation: .*lower-case identifier/);
    assert.match(problems(config('t: {value_file: f}')).join('\n'), /\/upstreams\/app\/credentials\/t.*header/);
    assert.match(problems(config('t: {header: X-K}')).join('\n'), /\/upstreams\/app\/credentials\/t.*value_file/);
    assert.match(problems(config('t: {header: X-K, value_file: f, value: inline}')).join('\n'), /\/upstreams\/app\/credentials\/t\/value: unknown key/);
    assert.match(problems(config('t: {header: "X K", value_file: f}')).join('\n'), /\/upstreams\/app\/credentials\/t\/header: must be a valid HTTP header name/);
    assert.match(problems(config('t: {header: X-K, scheme: "Bearer x", value_file: f}')).join('\n'), /\/upstreams\/app\/credentials\/t\/scheme: must be an authentication scheme token/);
  });

  it('a header regate owns cannot carry a credential: hop-by-hop, Host, Content-Length, forwarding, x-regate-*, Cookie', () => {
    for (const [header, why] of [
      ['Connection', /hop-by-hop/],
      ['Proxy-Authorization', /hop-by-hop/],
      ['Host', /set from the upstream URL/],
      ['Content-Length', /frames the request body/],
      ['Transfer-Encoding', /hop-by-hop/],
      ['X-Forwarded-For', /set by regate itself/],
      ['X_Forwarded_Host', /set by regate itself/],
      ['X-Request-Id', /decision id/],
      ['x-regate-sub', /reserved x-regate- namespace/],
      ['Cookie', /cookies/],
    ] as const) {
      assert.match(problems(config(`t: {header: ${header}, value_file: f}`)).join('\n'), new RegExp(`/upstreams/app/credentials/t/header: header ${header} cannot carry a credential: it .*${why.source}`), header);
    }
    // Authorization is what most upstreams read: allowed.
    parseConfig(config('t: {header: authorization, value_file: f}'), FILE);
  });

  it('routes[].credentials: names declared on the route’s upstream (with a guess), unique, one per header', () => {
    const decl = 'translation: {header: Authorization, value_file: f}, key: {header: X-Api-Key, value_file: g}, key2: {header: x_api_key, value_file: h}';
    assert.match(problems(config(decl, 'credentials: [translatoin]')).join('\n'), /\/routes\/0\/credentials\/0: unknown credential "translatoin": upstream "app" declares "translation", "key", "key2" \(did you mean "translation"\?\)/);
    assert.match(problems(config(decl, 'credentials: [key, key]')).join('\n'), /\/routes\/0\/credentials\/0: duplicate item "key"/);
    assert.match(problems(config(decl, 'credentials: [key, key2]')).join('\n'), /\/routes\/0\/credentials\/1: credential "key2" sets header x_api_key, as credential "key" of this route does/);
    assert.match(problems(config(decl, 'credentials: [Key]')).join('\n'), /\/routes\/0\/credentials\/0: must be a credential name/);
    assert.match(
      problems(config('', 'credentials: [t]').replace('upstream: app', 'upstream: bare')).join('\n'),
      /\/routes\/0\/credentials\/0: unknown credential "t": upstream "bare" declares no credentials/,
    );
  });

  it('a route’s credential header cannot also be one of its identity headers, nor Authorization with forward_authorization', () => {
    const decl = 'translation: {header: Authorization, value_file: f}, key: {header: X-Api-Key, value_file: g}';
    assert.match(problems(config(decl, 'credentials: [key], identity_headers: {x-api-key: route.id}')).join('\n'), /\/routes\/0\/credentials\/0: credential "key" sets header X-Api-Key, which is also one of this route's identity_headers/);
    assert.match(
      problems(config(decl, 'credentials: [translation], forward_authorization: true, auth: required').replace('auth: none, ', '') + 'issuers: [{issuer: "https://i", jwks_url: "https://i/jwks", audiences: [a]}]\n').join('\n'),
      /\/routes\/0\/credentials\/0: credential "translation" sets Authorization, but this route forwards the client's \(forward_authorization: true\)/,
    );
  });

  it('value files: missing, empty, a line break or NUL inside, leading whitespace, non-ASCII → a problem at value_file that never quotes the content; a trailing newline is fine', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'regate-cred-keys-'));
    writeFileSync(join(dir, 'b.tar.gz'), 'x');
    const files: Record<string, string | Buffer> = {
      ok: 'sekrit-ok\n',
      okcrlf: 'sekrit-ok2\r\n',
      empty: '',
      newline: '\n',
      inner: 'sekrit-a\nsekrit-b\n',
      cr: 'sekrit-c\rx',
      nul: Buffer.from('sekrit-d\0x'),
      lead: ' sekrit-e',
      utf8: 'sekrit-é',
    };
    for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content);
    const check = async (name: string): Promise<string[]> => {
      const file = join(dir, 'regate.yaml');
      writeFileSync(file, config(`t: {header: X-K, value_file: ${name}}`).replace('b.tar.gz', join(dir, 'b.tar.gz')));
      const r = await inspectConfig(file);
      return r.problems.list.map((p) => `${p.keyPath}: ${p.problem}`);
    };
    assert.deepEqual(await check('ok'), []);
    assert.deepEqual(await check('okcrlf'), []);
    const expect: Record<string, RegExp> = {
      missing: /cannot read .*missing: file not found/,
      empty: /the file is empty/,
      newline: /the file is empty/,
      inner: /line break inside/,
      cr: /line break inside/,
      nul: /NUL/,
      lead: /whitespace/,
      utf8: /outside visible ASCII/,
    };
    for (const [name, re] of Object.entries(expect)) {
      const found = await check(name);
      assert.equal(found.length, 1, `${name}: ${found.join('; ')}`);
      assert.match(found[0]!, new RegExp(`^/upstreams/app/credentials/t/value_file: .*${re.source}`), name);
      assert.doesNotMatch(found[0]!, /sekrit/, `${name} quoted the secret`);
    }
  });
});
