/**
 * Bring your own keys, as the README's "Bring your own keys/issuer" section
 * runs it: `regate keys generate` writes a private JWK and a public JWKS,
 * `regate check` accepts a config whose issuer reads that JWKS, `regate token
 * --key` signs with the private JWK, and a real regate verifies the token and
 * forwards the request — for ES256, RS256 and EdDSA. A token signed with a key
 * that is not in the JWKS is refused (401) and never reaches the upstream.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { decodeProtectedHeader } from 'jose';
import { send } from '../helpers/http.ts';
import { buildBundle } from '../helpers/opa.ts';
import { runCli, startRegate, type RegateProcess } from '../helpers/regate-process.ts';
import { startUpstreamServer, type TestUpstream } from '../helpers/upstream-server.ts';

let bundle: string;
let upstream: TestUpstream;
const running: RegateProcess[] = [];

before(async () => {
  bundle = await buildBundle({ files: { 'authz.rego': 'package byo.authz\n\ndecision := {"allow": input.subject.sub == "alice"}\n' }, entrypoints: ['byo/authz/decision'], args: ['--revision', 'byo-1'] });
  upstream = await startUpstreamServer();
});
after(async () => {
  await Promise.all(running.map((r) => r.stop()));
  await upstream?.close();
});

function configFor(dir: string, alg: string): string {
  const file = join(dir, 'regate.yaml');
  writeFileSync(
    file,
    `listen:
  proxy: { host: 127.0.0.1, port: 0 }
  admin: { host: 127.0.0.1, port: 0 }
upstreams:
  api: { url: "${upstream.url}" }
issuers:
  - id: mine
    issuer: https://issuer.example.com
    jwks_file: ./jwks.json
    audiences: [my-api]
    algorithms: [${alg}]
policy:
  bundle: ${bundle}
  default_entrypoint: byo/authz/decision
routes:
  - id: hello
    match: { methods: [GET], path: "/hello/{who}" }
    upstream: api
`,
  );
  return file;
}

describe('regate keys generate, then check, token --key and a real regate', () => {
  for (const alg of ['ES256', 'RS256', 'EdDSA']) {
    it(`${alg}: the generated JWKS verifies tokens signed with the generated private JWK`, async () => {
      const dir = mkdtempSync(join(tmpdir(), `regate-keys-${alg}-`));
      const kid = `mine-${alg.toLowerCase()}-1`;
      const gen = runCli(['keys', 'generate', '--alg', alg, '--kid', kid, '--out-dir', dir]);
      assert.equal(gen.status, 0, gen.stderr);
      const privateFile = join(dir, `${kid}.private.jwk.json`);
      assert.ok(gen.stdout.includes(privateFile), gen.stdout);
      assert.equal(statSync(privateFile).mode & 0o777, 0o600, 'the private key is readable by its owner only');
      const priv = JSON.parse(readFileSync(privateFile, 'utf8')) as Record<string, unknown>;
      assert.equal(priv.kid, kid);
      assert.equal(priv.alg, alg);
      assert.ok(typeof priv.d === 'string', 'private material in the private file');
      const jwks = JSON.parse(readFileSync(join(dir, 'jwks.json'), 'utf8')) as { keys: Record<string, unknown>[] };
      assert.equal(jwks.keys.length, 1);
      assert.equal(jwks.keys[0]!.kid, kid);
      assert.equal(jwks.keys[0]!.d, undefined, 'no private material in the JWKS');

      const config = configFor(dir, alg);
      const check = runCli(['check', '--config', config]);
      assert.equal(check.status, 0, check.stderr);

      const token = runCli(['token', '--config', config, '--key', privateFile, '--sub', 'alice']);
      assert.equal(token.status, 0, token.stderr);
      const jwt = token.stdout.trim();
      assert.deepEqual({ alg: decodeProtectedHeader(jwt).alg, kid: decodeProtectedHeader(jwt).kid }, { alg, kid });

      const regate = await startRegate(config);
      running.push(regate);
      const path = `/hello/${alg}`;
      const ok = await send(`${regate.proxyUrl}${path}`, { headers: { authorization: `Bearer ${jwt}` } });
      assert.equal(ok.status, 200, ok.text);
      assert.equal((await upstream.waitForRequest(path)).method, 'GET');

      // A second key generated elsewhere is not in this JWKS: its tokens are refused.
      const other = mkdtempSync(join(tmpdir(), `regate-keys-other-`));
      assert.equal(runCli(['keys', 'generate', '--alg', alg, '--kid', kid, '--out-dir', other]).status, 0);
      const forged = runCli(['token', '--config', config, '--key', join(other, `${kid}.private.jwk.json`), '--sub', 'alice']);
      assert.equal(forged.status, 0, forged.stderr);
      const denied = await send(`${regate.proxyUrl}/hello/forged-${alg}`, { headers: { authorization: `Bearer ${forged.stdout.trim()}` } });
      assert.equal(denied.status, 401);
      assert.ok(!upstream.requests.some((r) => r.url.startsWith(`/hello/forged-${alg}`)), 'never forwarded');
    });
  }

  it('adds to an existing JWKS (rotation), refuses a duplicate kid and never overwrites a private key', () => {
    const dir = mkdtempSync(join(tmpdir(), 'regate-keys-rotate-'));
    assert.equal(runCli(['keys', 'generate', '--alg', 'ES256', '--kid', 'k1', '--out-dir', dir]).status, 0);
    assert.equal(runCli(['keys', 'generate', '--alg', 'ES384', '--kid', 'k2', '--out-dir', dir]).status, 0);
    const jwks = JSON.parse(readFileSync(join(dir, 'jwks.json'), 'utf8')) as { keys: { kid: string }[] };
    assert.deepEqual(jwks.keys.map((k) => k.kid), ['k1', 'k2']);
    const dup = runCli(['keys', 'generate', '--alg', 'ES256', '--kid', 'k1', '--out-dir', dir]);
    assert.equal(dup.status, 1);
    assert.match(dup.stderr, /already has a key with kid "k1"/);
    const before = readFileSync(join(dir, 'k1.private.jwk.json'), 'utf8');
    const clobber = runCli(['keys', 'generate', '--alg', 'ES256', '--kid', 'k3', '--private', join(dir, 'k1.private.jwk.json'), '--jwks', join(dir, 'other.json')]);
    assert.equal(clobber.status, 1);
    assert.match(clobber.stderr, /exists; not overwriting a private key/);
    assert.equal(readFileSync(join(dir, 'k1.private.jwk.json'), 'utf8'), before);
  });

  it('usage errors exit 2: no --alg, an HMAC or unknown alg, no --kid, no subcommand', () => {
    for (const args of [['generate', '--kid', 'k'], ['generate', '--alg', 'HS256', '--kid', 'k'], ['generate', '--alg', 'ES257', '--kid', 'k'], ['generate', '--alg', 'ES256'], [], ['rotate']]) {
      const r = runCli(['keys', ...args]);
      assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /^regate: /);
    }
    assert.equal(runCli(['keys', 'generate', '--help']).status, 0);
  });
});
