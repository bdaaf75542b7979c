/**
 * The regate command line as an operator runs it: `check` and `serve` refuse a
 * broken config or policy with a precise message and a non-zero exit, `token`
 * mints what the issuer's claim mapping expects.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { decodeJwt } from 'jose';
import { buildBundle } from '../helpers/opa.ts';
import { repoRoot, runCli } from '../helpers/regate-process.ts';

const quickstartKeys = join(repoRoot, 'examples', 'quickstart', 'keys');
let dir: string;
let bundle: string;
let unsupportedBundle: string;

function config(overrides: { routes?: string; policy?: string; issuers?: string } = {}): string {
  return `
listen:
  proxy: { host: 127.0.0.1, port: 0 }
  admin: { host: 127.0.0.1, port: 0 }
upstreams:
  api: { url: "http://127.0.0.1:9" }
issuers:
${
  overrides.issuers ??
  `  - id: dev
    issuer: https://issuer.test
    jwks_file: ${join(quickstartKeys, 'jwks.json')}
    audiences: [api]
    algorithms: [ES256]
    claims: { roles: realm_access.roles, scopes: scope }`
}
policy:
${overrides.policy ?? `  bundle: ${bundle}\n  default_entrypoint: cli/authz/decision`}
routes:
${overrides.routes ?? '  - id: predict\n    match: { methods: [POST], path: "/v1/models/{model}/predict" }\n    upstream: api'}
`;
}

function write(name: string, text: string): string {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'regate-cli-'));
  bundle = await buildBundle({
    files: { 'authz.rego': 'package cli.authz\n\ndefault decision := {"allow": false}\n' },
    entrypoints: ['cli/authz/decision'],
  });
  unsupportedBundle = await buildBundle({
    files: {
      'authz.rego': 'package cli.authz\n\ndecision := {"allow": r.status_code == 200} if {\n\tr := http.send({"method": "GET", "url": "http://127.0.0.1:9"})\n}\n',
    },
    entrypoints: ['cli/authz/decision'],
  });
});

describe('regate check', () => {
  it('accepts a valid config and bundle: exit 0 and a summary', () => {
    const r = runCli(['check', '--config', write('ok.yaml', config())]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^ok: /);
    assert.match(r.stdout, /routes: 1 \(predict\)/);
    assert.match(r.stdout, /entrypoints: cli\/authz\/decision/);
  });

  it('refuses a broken config with file:line:col, key path and what is wrong — every problem at once', () => {
    const file = write(
      'broken.yaml',
      config({
        routes: '  - id: predict\n    match: { methods: [post], path: "/v1/models/{model}/predict" }\n    upstreem: api',
      }),
    );
    const r = runCli(['check', '--config', file]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /invalid configuration \(3 problems\)/);
    assert.ok(r.stderr.includes(`${file}:`), 'names the file');
    assert.match(r.stderr, /:\d+:\d+: \/routes\/0\/upstreem: unknown key "upstreem" \(did you mean "upstream"\?\)/);
    assert.match(r.stderr, /\/routes\/0\/upstream: missing required key "upstream"/);
    assert.match(r.stderr, /\/routes\/0\/match\/methods\/0: must be one of GET, HEAD, POST.*got "post"/);
  });

  it('reports every independent problem in one run, each as file:line:col: /key/path: problem', () => {
    // A schema problem, a missing jwks_file and an entrypoint the bundle lacks: three stages, one run.
    const file = write(
      'all-at-once.yaml',
      config({
        issuers: `  - id: dev
    issuer: https://issuer.test
    jwks_file: ${join(dir, 'no-such-jwks.json')}
    audiences: [api]
    algorithms: [ES256]`,
        routes: '  - id: predict\n    match: { methods: [POST], path: /p }\n    upstream: api\n    entrypoint: cli/authz/missing\n  - id: other\n    match: { methods: [GET], path: /o }\n    upstreem: api',
      }),
    );
    const r = runCli(['check', '--config', file]);
    assert.equal(r.status, 1, r.stderr);
    const lines = r.stderr.split('\n').filter((l) => l.startsWith('  '));
    const at = (keyPath: string, problem: RegExp): void => {
      const line = lines.find((l) => l.includes(`: ${keyPath}: `));
      assert.ok(line, `a problem at ${keyPath} in:\n${r.stderr}`);
      assert.match(line, new RegExp(`^  ${file.replaceAll('.', '\\.')}:\\d+:\\d+: `), `located: ${line}`);
      assert.match(line, problem);
    };
    at('/issuers/0/jwks_file', /cannot read .*no-such-jwks\.json: file not found/);
    at('/routes/0/entrypoint', /entrypoint "cli\/authz\/missing" is not compiled into/);
    at('/routes/1/upstreem', /unknown key "upstreem"/);
    at('/routes/1/upstream', /missing required key "upstream"/);
    assert.match(r.stderr, /invalid configuration \(4 problems\)/);
  });

  it('reads JWKS files despite other problems, and locates a broken one at the jwks_file that names it', () => {
    const jwks = write('broken-jwks.json', '{"keys": [{"kty": "EC"');
    const issuers = `  - id: dev\n    issuer: https://issuer.test\n    jwks_file: ${jwks}\n    audiences: [api]\n    algorithms: [ES256]`;
    const withOther = write('jwks-and-schema.yaml', config({ issuers, routes: '  - id: predict\n    match: { methods: [POST], path: /p }\n    upstream: api\n    auth: maybe' }));
    const both = runCli(['check', '--config', withOther]);
    assert.equal(both.status, 1);
    assert.match(both.stderr, new RegExp(`${withOther.replaceAll('.', '\\.')}:\\d+:\\d+: /issuers/0/jwks_file: ${jwks.replaceAll('.', '\\.')}: cannot read JWKS`));
    assert.match(both.stderr, /\/routes\/0\/auth: must be one of required, optional, none/);
    const alone = write('jwks-only.yaml', config({ issuers }));
    const r = runCli(['check', '--config', alone]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, new RegExp(`${alone.replaceAll('.', '\\.')}:\\d+:\\d+: /issuers/0/jwks_file: ${jwks.replaceAll('.', '\\.')}: cannot read JWKS`));
  });

  it('reads the introspection client secret file, refusing a missing one at its key without printing any secret', () => {
    const secret = write('introspection-secret', 'hunter2-secret-value\n');
    const issuers = (file: string): string =>
      `  - id: idp\n    issuer: https://idp.test\n    audiences: [api]\n    introspection: { url: "https://idp.test/introspect", client_id: regate, client_secret_file: ${file} }`;
    assert.equal(runCli(['check', '--config', write('introspection-ok.yaml', config({ issuers: issuers(secret) }))]).status, 0);
    const r = runCli(['check', '--config', write('introspection-missing.yaml', config({ issuers: issuers(join(dir, 'no-such-secret')) }))]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /:\d+:\d+: \/issuers\/0\/introspection\/client_secret_file: cannot read the client secret file .*no-such-secret/);
    assert.ok(!`${r.stdout}${r.stderr}`.includes('hunter2'));
  });

  it('locates bundle-stage problems in the YAML too (builtins, entrypoints on a valid config)', () => {
    const file = write('builtin-located.yaml', config({ policy: `  bundle: ${unsupportedBundle}\n  default_entrypoint: cli/authz/decision` }));
    const r = runCli(['check', '--config', file]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, new RegExp(`${file.replaceAll('.', '\\.')}:\\d+:\\d+: /policy/bundle: the policy uses builtins regate does not implement for wasm: http\\.send`));
  });

  it('refuses an entrypoint the bundle does not contain, naming the config key', () => {
    const file = write(
      'entrypoint.yaml',
      config({ routes: '  - id: predict\n    match: { methods: [POST], path: /p }\n    upstream: api\n    entrypoint: cli/authz/missing' }),
    );
    const r = runCli(['check', '--config', file]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /\/routes\/0\/entrypoint: entrypoint "cli\/authz\/missing" is not compiled into/);
  });

  it('reports a builtin regate cannot run before any request does', () => {
    const r = runCli(['check', '--config', write('builtin.yaml', config({ policy: `  bundle: ${unsupportedBundle}\n  default_entrypoint: cli/authz/decision` }))]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /builtins regate does not implement for wasm: http\.send/);
  });

  it('refuses a missing or corrupt bundle', () => {
    const corrupt = write('corrupt.tar.gz', 'not a gzip file');
    const r = runCli(['check', '--config', write('corrupt.yaml', config({ policy: `  bundle: ${corrupt}\n  default_entrypoint: cli/authz/decision` }))]);
    assert.equal(r.status, 1);
    assert.ok(r.stderr.includes('corrupt.tar.gz'), r.stderr);
    const missing = runCli(['check', '--config', write('missing.yaml', config({ policy: `  bundle: ${join(dir, 'nope.tar.gz')}\n  default_entrypoint: cli/authz/decision` }))]);
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /\/policy\/bundle/);
  });

  it('warns (and still passes) when the bundle has no revision', async () => {
    const withRevision = await buildBundle({ files: { 'authz.rego': 'package cli.authz\n\ndefault decision := {"allow": false}\n' }, entrypoints: ['cli/authz/decision'], args: ['--revision', 'r7'] });
    const bare = runCli(['check', '--config', write('norev.yaml', config())]);
    assert.equal(bare.status, 0, bare.stderr);
    assert.match(bare.stdout, /\(revision none\)/);
    assert.match(bare.stderr, /^warning: policy bundle has no revision: decision logs and regate_policy_bundle_info will say revision=""/m);
    const named = runCli(['check', '--config', write('rev.yaml', config({ policy: `  bundle: ${withRevision}\n  default_entrypoint: cli/authz/decision` }))]);
    assert.equal(named.status, 0, named.stderr);
    assert.match(named.stdout, /\(revision r7\)/);
    assert.doesNotMatch(named.stderr, /warning/);
  });

  it('usage errors exit 2', () => {
    assert.equal(runCli(['check']).status, 2);
    assert.equal(runCli(['check', '--config', 'x', '--bogus']).status, 2);
    assert.equal(runCli(['frobnicate']).status, 2);
  });
});

describe('regate serve', () => {
  it('does not start on an invalid config: exit 1, the same precise message, nothing served', () => {
    const file = write('serve-broken.yaml', config({ routes: '  - id: predict\n    match: { methods: [POST], path: "/a/{x" }\n    upstream: api' }));
    const r = runCli(['serve', '--config', file]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /\/routes\/0\/match\/path/);
    assert.doesNotMatch(r.stderr, /"msg":"listening"/);
  });
});

describe('regate token', () => {
  it('mints a token the issuer accepts, with roles and scopes where the claim mapping reads them', () => {
    const r = runCli([
      'token',
      '--config', write('token.yaml', config()),
      '--key', join(quickstartKeys, 'dev-signing-key.jwk.json'),
      '--sub', 'alice', '--role', 'data_scientist', '--role', 'ml_engineer',
      '--scope', 'predict', '--scope', 'read', '--tenant', 'acme', '--ttl', '5m',
      '--claim', 'authorization_details=[{"type":"customer_record","identifier":"cust-1"}]',
    ]);
    assert.equal(r.status, 0, r.stderr);
    const claims = decodeJwt(r.stdout.trim());
    assert.equal(claims.iss, 'https://issuer.test');
    assert.equal(claims.aud, 'api');
    assert.equal(claims.sub, 'alice');
    assert.deepEqual(claims.realm_access, { roles: ['data_scientist', 'ml_engineer'] });
    assert.equal(claims.scope, 'predict read', 'RFC 8693 scope string');
    assert.equal(claims.tenant, 'acme');
    assert.deepEqual(claims.authorization_details, [{ type: 'customer_record', identifier: 'cust-1' }]);
    const ttl = (claims.exp ?? 0) - (claims.iat ?? 0);
    assert.equal(ttl, 300);
  });

  it('prints the version', () => {
    const r = runCli(['version']);
    assert.equal(r.status, 0);
    assert.match(r.stdout, /^regate \d+\.\d+\.\d+/);
    // The zone database version, as README "Known differences from OPA" says.
    assert.match(r.stdout, /^tz database \d{4}[a-z] \(ICU [\d.]+\)$/m);
    assert.ok(r.stdout.includes(`tz database ${process.versions.tz}`));
  });
});
