import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { UpstreamConfig } from '../../../src/config/types.ts';
import { createUpstreamConnector, readUpstreamTls } from '../../../src/tls/client-context.ts';
import { TlsMaterialError } from '../../../src/tls/server-context.ts';
import { repoRoot } from '../../helpers/regate-process.ts';

const FIXTURES = join(repoRoot, 'test/fixtures/tls');
const fixture = (n: string): string => join(FIXTURES, n);
const pem = (n: string): Buffer => readFileSync(fixture(n));

let server: https.Server;
let port: number;
before(async () => {
  server = https.createServer({ cert: pem('server.pem'), key: pem('server-key.pem') }, (_req, res) => res.end('ok'));
  server.on('tlsClientError', () => {});
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  port = (server.address() as AddressInfo).port;
});
after(() => server.close());

const upstream = (tls: UpstreamConfig['tls']): UpstreamConfig =>
  ({ id: 'u', protocol: 'http1', url: `https://127.0.0.1:${port}`, timeouts: { connect_ms: 2000, headers_ms: 1000, body_ms: 1000 }, pool: { connections: 1, keepalive_timeout_ms: 1 }, request_headers_to_remove: [], tls }) as UpstreamConfig;

/** Connect once with the connector; resolves the error code, or '' on success. */
function dial(connect: ReturnType<typeof createUpstreamConnector>['connect'], servername?: string): Promise<string> {
  return new Promise((resolve) => {
    connect({ hostname: '127.0.0.1', host: `127.0.0.1:${port}`, protocol: 'https:', port: String(port), servername: servername ?? null } as never, (err, socket) => {
      socket?.destroy();
      resolve(err === null ? '' : String((err as NodeJS.ErrnoException).code));
    });
  });
}

describe('upstream TLS connector', () => {
  it('verifies against ca_file; without it the test CA is not trusted', async () => {
    const good = createUpstreamConnector(upstream({ ca_file: fixture('ca.pem'), min_version: 'TLSv1.2' }), { reloaded() {} });
    assert.equal(await dial(good.connect), '');
    good.stop();
    const publicOnly = createUpstreamConnector(upstream({ min_version: 'TLSv1.2' }), { reloaded() {} });
    assert.match(await dial(publicOnly.connect), /UNABLE_TO_VERIFY|SELF_SIGNED|UNABLE_TO_GET_ISSUER/);
    publicOnly.stop();
  });

  it('the configured servername wins over the one a request would bring, for SNI and verification', async () => {
    const c = createUpstreamConnector(upstream({ ca_file: fixture('ca.pem'), servername: 'localhost', min_version: 'TLSv1.2' }), { reloaded() {} });
    assert.equal(await dial(c.connect, 'evil.example'), '');
    c.stop();
    const wrong = createUpstreamConnector(upstream({ ca_file: fixture('ca.pem'), servername: 'wrong.example', min_version: 'TLSv1.2' }), { reloaded() {} });
    assert.equal(await dial(wrong.connect, 'localhost'), 'ERR_TLS_CERT_ALTNAME_INVALID');
    wrong.stop();
  });

  it('files: unreadable, not PEM, a mismatched pair are refused at their key; a changed CA is used by the next connection', async () => {
    assert.throws(() => readUpstreamTls({ ca_file: fixture('nope.pem'), min_version: 'TLSv1.2' }), (e: unknown) => e instanceof TlsMaterialError && e.key === 'ca_file');
    assert.throws(() => readUpstreamTls({ cert_file: fixture('client.pem'), key_file: fixture('server-key.pem'), min_version: 'TLSv1.2' }), (e: unknown) => e instanceof TlsMaterialError && e.key === 'key_file');
    const dir = mkdtempSync(join(tmpdir(), 'regate-uptls-unit-'));
    copyFileSync(fixture('other-ca.pem'), join(dir, 'ca.pem'));
    const events: string[] = [];
    const c = createUpstreamConnector(upstream({ ca_file: join(dir, 'ca.pem'), min_version: 'TLSv1.2' }), { reloaded: (r) => events.push(r) });
    assert.notEqual(await dial(c.connect), '');
    writeFileSync(join(dir, 'ca.pem'), 'garbage');
    await c.check();
    assert.deepEqual(events, ['failure']);
    copyFileSync(fixture('ca.pem'), join(dir, 'ca.pem'));
    await c.check();
    assert.deepEqual(events, ['failure', 'success']);
    assert.equal(await dial(c.connect), '');
    c.stop();
  });
});
