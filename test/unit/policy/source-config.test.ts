/**
 * `policy.service` and `policy.signing` through the real config loader:
 * defaults, exactly-one-source, and every cross-field problem with its key path.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { configSchema, loadConfig, parseConfig } from '../../../src/config/load.ts';
import { ConfigErrors } from '../../../src/errors.ts';
import { SIGNING_ALGORITHMS } from '../../../src/policy/signatures.ts';
import { tempDir } from '../../helpers/signing.ts';

const FILE = '/etc/regate/regate.yaml';
const ROUTES = 'upstreams: {app: {url: "http://a"}}\nroutes: [{id: r, match: {methods: [GET], path: /}, upstream: app, auth: none}]\n';

function config(policy: string): string {
  return `${ROUTES}policy:\n${policy.replace(/^/gm, '  ')}\n`;
}

function problems(text: string): { keyPath: string; message: string }[] {
  try {
    parseConfig(text, FILE, { env: { BUNDLE_TOKEN: 'tok' } });
  } catch (err) {
    assert.ok(err instanceof ConfigErrors, String(err));
    return err.errors.map((e) => ({ keyPath: e.keyPath, message: e.message }));
  }
  assert.fail('expected config errors');
}

function problemAt(text: string, keyPath: string, message: RegExp): void {
  const found = problems(text);
  assert.ok(
    found.some((p) => p.keyPath === keyPath && message.test(p.message)),
    `no problem at ${keyPath} matching ${message}; got:\n${found.map((p) => p.message).join('\n')}`,
  );
}

describe('policy.service config', () => {
  it('applies OPA’s polling defaults and lower-cases header names', () => {
    const c = parseConfig(config('default_entrypoint: x\nservice:\n  url: https://bundles.example.com/b.tar.gz\n  headers: {Authorization: "Bearer ${BUNDLE_TOKEN}"}'), FILE, {
      env: { BUNDLE_TOKEN: 'tok' },
    });
    assert.deepEqual(c.policy.service, {
      url: 'https://bundles.example.com/b.tar.gz',
      polling: { min_delay_seconds: 60, max_delay_seconds: 120 },
      timeout_ms: 10_000,
      headers: { authorization: 'Bearer tok' },
      max_download_bytes: 64 * 1024 * 1024,
    });
    assert.equal(c.policy.bundle, undefined);
    assert.equal(c.policy.signing, undefined);
  });

  it('wants exactly one of bundle and service', () => {
    problemAt(config('default_entrypoint: x\nbundle: b.tar.gz\nservice: {url: "https://b/x.tar.gz"}'), '/policy', /set only one of bundle, service, not both/);
    problemAt(config('default_entrypoint: x'), '/policy', /set one of bundle, service/);
  });

  it('points a URL in policy.bundle to policy.service', () => {
    problemAt(config('default_entrypoint: x\nbundle: https://b/x.tar.gz'), '/policy/bundle', /not a URL \(to fetch a bundle over HTTP use policy\.service\)/);
  });

  it('checks the URL', () => {
    problemAt(config('default_entrypoint: x\nservice: {url: "ftp://b/x.tar.gz"}'), '/policy/service/url', /http:\/\/ or https:\/\//);
    problemAt(config('default_entrypoint: x\nservice: {url: "https://u:p@b/x.tar.gz"}'), '/policy/service/url', /must not contain credentials/);
  });

  it('wants min_delay_seconds ≤ max_delay_seconds, counting the default', () => {
    problemAt(config('default_entrypoint: x\nservice: {url: "https://b/x", polling: {min_delay_seconds: 30, max_delay_seconds: 10}}'), '/policy/service/polling/min_delay_seconds', /\(30\) is greater than max_delay_seconds \(10\)/);
    problemAt(config('default_entrypoint: x\nservice: {url: "https://b/x", polling: {min_delay_seconds: 200}}'), '/policy/service/polling/min_delay_seconds', /whose default is 120/);
    problemAt(config('default_entrypoint: x\nservice: {url: "https://b/x", polling: {min_delay_seconds: 0}}'), '/policy/service/polling/min_delay_seconds', /between 1 and 86400/);
  });

  it('refuses headers regate sets itself, duplicates and CR/LF', () => {
    problemAt(config('default_entrypoint: x\nservice: {url: "https://b/x", headers: {If-None-Match: "x"}}'), '/policy/service/headers/If-None-Match', /carries the ETag/);
    problemAt(config('default_entrypoint: x\nservice: {url: "https://b/x", headers: {x-a: "1", X-A: "2"}}'), '/policy/service/headers/X-A', /also set as x-a/);
    problemAt(config('default_entrypoint: x\nservice: {url: "https://b/x", headers: {x-a: "a\\r\\nb"}}'), '/policy/service/headers/x-a', /must not contain CR, LF or NUL/);
  });
});

describe('policy.signing config', () => {
  it('offers exactly the algorithms the verifier supports', () => {
    const signing = ((configSchema.properties as Record<string, { properties: Record<string, { properties: Record<string, { enum?: string[] }> }> }>).policy!.properties.signing!.properties.algorithm!);
    assert.deepEqual(signing.enum, [...SIGNING_ALGORITHMS]);
  });

  it('resolves the key file against the config directory', () => {
    const c = parseConfig(config('default_entrypoint: x\nbundle: b.tar.gz\nsigning: {public_key_file: keys/pub.pem, algorithm: ES256, keyid: k1, scope: write}'), FILE);
    assert.deepEqual(c.policy.signing, { public_key_file: '/etc/regate/keys/pub.pem', algorithm: 'ES256', keyid: 'k1', scope: 'write', exclude_files: [] });
  });

  it('refuses HMAC and none with the reason', () => {
    for (const alg of ['HS256', 'none']) {
      problemAt(config(`default_entrypoint: x\nbundle: b\nsigning: {public_key_file: k.pem, algorithm: ${alg}}`), '/policy/signing/algorithm', /HS256\/HS384\/HS512 are refused: every regate instance would hold the shared secret/);
    }
    problemAt(config('default_entrypoint: x\nbundle: b\nsigning: {public_key_file: k.pem}'), '/policy/signing/algorithm', /missing required key "algorithm"/);
  });

  it('checks exclude_files patterns', () => {
    problemAt(config('default_entrypoint: x\nbundle: b\nsigning: {public_key_file: k.pem, algorithm: RS256, exclude_files: ["[abc"]}'), '/policy/signing/exclude_files/0', /unterminated or empty character class/);
    problemAt(config('default_entrypoint: x\nbundle: b\nsigning: {public_key_file: k.pem, algorithm: RS256, exclude_files: ["/x.rego"]}'), '/policy/signing/exclude_files/0', /without a leading slash/);
  });

  it('reports a missing key file with its key path when files are checked', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'regate.yaml');
    await writeFile(path.join(dir, 'b.tar.gz'), 'x');
    await writeFile(file, config('default_entrypoint: x\nbundle: b.tar.gz\nsigning: {public_key_file: nope.pem, algorithm: RS256}'));
    await assert.rejects(loadConfig(file), (err: unknown) => {
      assert.ok(err instanceof ConfigErrors);
      assert.deepEqual(
        err.errors.map((e) => e.keyPath),
        ['/policy/signing/public_key_file'],
      );
      assert.match(err.errors[0]!.message, /nope\.pem: file not found/);
      return true;
    });
  });
});
