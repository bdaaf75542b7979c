import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import type { ListenerTlsConfig } from '../../../src/config/types.ts';
import { ListenerTlsReloader, readListenerTls, refuseRenegotiation, serverTlsOptions, TlsMaterialError, type TlsReloadResult } from '../../../src/tls/server-context.ts';
import { repoRoot } from '../../helpers/regate-process.ts';

const FIXTURES = join(repoRoot, 'test/fixtures/tls');
const pem = (name: string): Buffer => readFileSync(join(FIXTURES, name));

function tlsConfig(dir: string, extra: Partial<ListenerTlsConfig> = {}): ListenerTlsConfig {
  return { cert_file: join(dir, 'cert.pem'), key_file: join(dir, 'key.pem'), client_auth: 'none', min_version: 'TLSv1.2', ...extra };
}

function freshDir(cert = 'server.pem', key = 'server-key.pem'): string {
  const dir = mkdtempSync(join(tmpdir(), 'regate-tls-'));
  copyFileSync(join(FIXTURES, cert), join(dir, 'cert.pem'));
  copyFileSync(join(FIXTURES, key), join(dir, 'key.pem'));
  copyFileSync(join(FIXTURES, 'ca.pem'), join(dir, 'ca.pem'));
  return dir;
}

/** The CN of the certificate a fresh TLS connection to `port` is served. */
async function servedCn(port: number, options: tls.ConnectionOptions = {}): Promise<string> {
  const s = tls.connect({ port, host: '127.0.0.1', ca: pem('ca.pem'), ...options });
  await once(s, 'secureConnect');
  const cn = s.getPeerX509Certificate()!.subject.split('\n').find((l) => l.startsWith('CN='))!;
  s.destroy();
  return cn.slice(3);
}

describe('serverTlsOptions', () => {
  it('client_auth maps to requestCert / rejectUnauthorized; the version floor is kept', () => {
    const dir = freshDir();
    const m = readListenerTls(tlsConfig(dir));
    assert.deepEqual(pick(serverTlsOptions(tlsConfig(dir), m)), { requestCert: false, rejectUnauthorized: false, minVersion: 'TLSv1.2' });
    const withCa = tlsConfig(dir, { ca_file: join(dir, 'ca.pem'), client_auth: 'optional', min_version: 'TLSv1.3' });
    assert.deepEqual(pick(serverTlsOptions(withCa, readListenerTls(withCa))), { requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.3' });
    const required = { ...withCa, client_auth: 'required' as const };
    assert.deepEqual(pick(serverTlsOptions(required, readListenerTls(required))), { requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' });
  });

  it('refuses what cannot serve, naming the file: missing, not PEM, a key of another certificate', () => {
    const dir = freshDir('server.pem', 'server2-key.pem');
    assert.throws(() => serverTlsOptions(tlsConfig(dir), readListenerTls(tlsConfig(dir))), (e: unknown) => e instanceof TlsMaterialError && e.key === '' && /does not match the certificate/.test(e.message));
    assert.throws(() => readListenerTls({ ...tlsConfig(dir), cert_file: join(dir, 'nope.pem') }), (e: unknown) => e instanceof TlsMaterialError && e.key === 'cert_file' && /file not found/.test(e.message));
    writeFileSync(join(dir, 'key.pem'), 'garbage');
    assert.throws(() => serverTlsOptions(tlsConfig(dir), readListenerTls(tlsConfig(dir))), (e: unknown) => e instanceof TlsMaterialError && e.key === 'key_file');
  });

  it('min_version TLSv1.3 refuses a TLS 1.2 client and serves a TLS 1.3 one', async () => {
    const dir = freshDir();
    const server = https.createServer({ ...serverTlsOptions(tlsConfig(dir, { min_version: 'TLSv1.3' }), readListenerTls(tlsConfig(dir))) }, (_req, res) => res.end());
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as AddressInfo).port;
    try {
      await assert.rejects(servedCn(port, { maxVersion: 'TLSv1.2' }), /protocol version|alert/i);
      assert.equal(await servedCn(port, { minVersion: 'TLSv1.3' }), 'localhost');
    } finally {
      server.close();
    }
  });
});

describe('ListenerTlsReloader', () => {
  let dir: string;
  let server: https.Server;
  let port: number;
  let reloader: ListenerTlsReloader;
  const events: { result: TlsReloadResult; err?: Error }[] = [];

  before(async () => {
    dir = freshDir();
    const config = tlsConfig(dir);
    const material = readListenerTls(config);
    server = https.createServer({ ...serverTlsOptions(config, material), keepAlive: true }, (_req, res) => res.end('ok'));
    server.on('secureConnection', refuseRenegotiation);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as AddressInfo).port;
    reloader = new ListenerTlsReloader(server, config, material, { reloaded: (result, err) => events.push({ result, ...(err ? { err } : {}) }) }, { debounceMs: 20, recheckMs: 60_000 });
    reloader.start();
  });
  after(() => {
    reloader.stop();
    server.closeAllConnections();
    server.close();
  });

  const waitFor = async (n: number): Promise<void> => {
    for (let i = 0; i < 200 && events.length < n; i++) await new Promise((r) => setTimeout(r, 25));
    assert.equal(events.length, n, JSON.stringify(events));
  };

  it('a new pair renamed into place: new handshakes get it, an established connection keeps working', async () => {
    assert.equal(await servedCn(port), 'localhost');
    const agent = new https.Agent({ keepAlive: true, ca: pem('ca.pem'), maxSockets: 1 });
    const get = (): Promise<{ status: number; cn: string }> =>
      new Promise((resolve, reject) => {
        https
          .get({ host: '127.0.0.1', port, agent, path: '/' }, (res) => {
            const cn = (res.socket as tls.TLSSocket).getPeerX509Certificate()!.subject;
            res.resume();
            res.on('end', () => resolve({ status: res.statusCode!, cn }));
          })
          .on('error', reject);
      });
    const first = await get();
    assert.match(first.cn, /CN=localhost$/);
    // Atomic replace, as cert-manager / Kubernetes do: write beside, rename over.
    copyFileSync(join(FIXTURES, 'server2.pem'), join(dir, 'cert.tmp'));
    copyFileSync(join(FIXTURES, 'server2-key.pem'), join(dir, 'key.tmp'));
    renameSync(join(dir, 'key.tmp'), join(dir, 'key.pem'));
    renameSync(join(dir, 'cert.tmp'), join(dir, 'cert.pem'));
    await waitFor(1);
    assert.deepEqual(events[0], { result: 'success' });
    assert.equal(await servedCn(port), 'localhost (second)');
    // The keep-alive connection opened before the swap still serves, on its original certificate.
    const again = await get();
    assert.equal(again.status, 200);
    assert.equal(again.cn, first.cn);
    agent.destroy();
  });

  it('a broken pair is refused and reported; the last good certificate keeps serving', async () => {
    // The key of the first pair under the second certificate: they do not match.
    copyFileSync(join(FIXTURES, 'server-key.pem'), join(dir, 'key.pem'));
    await waitFor(2);
    assert.equal(events[1]!.result, 'failure');
    assert.match(events[1]!.err!.message, /does not match the certificate/);
    assert.equal(await servedCn(port), 'localhost (second)');
    // Fixed: the matching key lands, and the first certificate is served again.
    copyFileSync(join(FIXTURES, 'server.pem'), join(dir, 'cert.pem'));
    await waitFor(3);
    assert.equal(events[2]!.result, 'success');
    assert.equal(await servedCn(port), 'localhost');
  });
});

function pick(o: tls.TlsOptions): Record<string, unknown> {
  return { requestCert: o.requestCert, rejectUnauthorized: o.rejectUnauthorized, minVersion: o.minVersion };
}
