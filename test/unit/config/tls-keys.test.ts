/** Config keys of TLS: listen.proxy.tls, listen.authz.tls, upstreams.<id>.tls, routes[].auth: mtls. */
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { inspectConfig, parseConfig } from '../../../src/config/load.ts';
import { repoRoot } from '../../helpers/regate-process.ts';
import { configProblems } from '../../helpers/config-problems.ts';

const FILE = '/etc/regate/regate.yaml';
const FIXTURES = join(repoRoot, 'test/fixtures/tls');

const config = (listen: string, upstream = '{url: "http://a"}', route = 'auth: none'): string => `listen: {${listen}}
upstreams: {app: ${upstream}}
policy: {bundle: b.tar.gz, default_entrypoint: app/decision}
routes:
  - {id: r, match: {methods: [GET], path: /}, upstream: app, ${route}}
`;

const problems = (text: string): string[] => configProblems(text, FILE);

describe('TLS config keys', () => {
  it('defaults: no TLS anywhere; a tls section defaults to client_auth none and TLS 1.2, paths resolved against the config file', () => {
    assert.equal(parseConfig(config(''), FILE).listen.proxy.tls, undefined);
    const c = parseConfig(config('proxy: {tls: {cert_file: tls/s.pem, key_file: /k/s-key.pem}}', '{url: "https://a", tls: {ca_file: ca.pem, servername: a.internal}}'), FILE);
    assert.deepEqual(c.listen.proxy.tls, { cert_file: '/etc/regate/tls/s.pem', key_file: '/k/s-key.pem', client_auth: 'none', min_version: 'TLSv1.2' });
    assert.deepEqual(c.upstreams.app!.tls, { ca_file: '/etc/regate/ca.pem', servername: 'a.internal', min_version: 'TLSv1.2' });
  });

  it('client_auth optional or required needs ca_file; a ca_file without client_auth is refused as unused', () => {
    assert.match(problems(config('proxy: {tls: {cert_file: c, key_file: k, client_auth: required}}')).join('\n'), /\/listen\/proxy\/tls\/client_auth: client_auth: required verifies client certificates against ca_file, which is not set/);
    assert.match(problems(config('proxy: {tls: {cert_file: c, key_file: k, ca_file: ca}}')).join('\n'), /\/listen\/proxy\/tls\/ca_file: is only used to verify client certificates, but client_auth is none/);
  });

  it('TLS 1.0 / 1.1 cannot be chosen; unknown keys are refused (there is no insecure switch)', () => {
    assert.match(problems(config('proxy: {tls: {cert_file: c, key_file: k, min_version: TLSv1.1}}')).join('\n'), /\/listen\/proxy\/tls\/min_version: must be one of TLSv1.2, TLSv1.3/);
    assert.match(problems(config('', '{url: "https://a", tls: {insecure_skip_verify: true}}')).join('\n'), /\/upstreams\/app\/tls\/insecure_skip_verify: unknown key/);
    assert.match(problems(config('', '{url: "https://a", tls: {rejectUnauthorized: false}}')).join('\n'), /\/upstreams\/app\/tls\/rejectUnauthorized: unknown key/);
  });

  it('upstream tls: an https url, a client certificate with its key, a DNS servername', () => {
    assert.match(problems(config('', '{url: "http://a", tls: {ca_file: ca}}')).join('\n'), /\/upstreams\/app\/tls: tls settings need an https:\/\/ url/);
    assert.match(problems(config('', '{url: "https://a", tls: {cert_file: c}}')).join('\n'), /\/upstreams\/app\/tls.*key_file/);
    assert.match(problems(config('', '{url: "https://a", tls: {servername: "a b"}}')).join('\n'), /\/upstreams\/app\/tls\/servername: must be a DNS name/);
  });

  it('auth: mtls needs the proxy listener to verify client certificates', () => {
    assert.match(problems(config('', undefined, 'auth: mtls')).join('\n'), /\/routes\/0\/auth: auth: mtls needs a verified client certificate, but listen.proxy has no tls/);
    assert.match(problems(config('proxy: {tls: {cert_file: c, key_file: k}}', undefined, 'auth: mtls')).join('\n'), /\/routes\/0\/auth: .*client_auth is none/);
    const ok = parseConfig(config('proxy: {tls: {cert_file: c, key_file: k, ca_file: ca, client_auth: optional}}', undefined, 'auth: mtls, identity_headers: {x-user: subject.sub}'), FILE);
    assert.equal(ok.routes[0]!.auth, 'mtls');
    // mtls is not a bearer-token mode: no issuers are needed.
    assert.equal(ok.issuers.length, 0);
  });

  it('the envoy_grpc authz listener cannot take tls', () => {
    assert.match(problems(config('authz: {protocol: envoy_grpc, tls: {cert_file: c, key_file: k}}')).join('\n'), /\/listen\/authz\/tls: TLS is not supported for protocol envoy_grpc/);
  });

  it('files: missing ones, non-PEM ones and a key that does not match its certificate are reported at their key', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'regate-tls-keys-'));
    for (const f of ['server.pem', 'server-key.pem', 'server2-key.pem', 'ca.pem']) copyFileSync(join(FIXTURES, f), join(dir, f));
    writeFileSync(join(dir, 'b.tar.gz'), 'x');
    writeFileSync(join(dir, 'garbage.pem'), 'not a certificate\n');
    const check = async (text: string): Promise<string[]> => {
      const file = join(dir, 'regate.yaml');
      writeFileSync(file, text);
      const r = await inspectConfig(file);
      return r.problems.list.map((p) => `${p.keyPath}: ${p.problem}`);
    };
    assert.deepEqual(await check(config('proxy: {tls: {cert_file: server.pem, key_file: server-key.pem}}', '{url: "https://a", tls: {ca_file: ca.pem}}')), []);
    const missing = await check(config('proxy: {tls: {cert_file: nope.pem, key_file: server-key.pem}}'));
    assert.match(missing.join('\n'), /\/listen\/proxy\/tls\/cert_file: cannot read .*nope\.pem: file not found/);
    const mismatch = await check(config('proxy: {tls: {cert_file: server.pem, key_file: server2-key.pem}}'));
    assert.match(mismatch.join('\n'), /\/listen\/proxy\/tls: the private key .*server2-key\.pem does not match the certificate .*server\.pem/);
    const garbage = await check(config('', '{url: "https://a", tls: {ca_file: garbage.pem}}'));
    assert.match(garbage.join('\n'), /\/upstreams\/app\/tls\/ca_file: .*garbage\.pem holds no PEM certificate/);
  });
});
