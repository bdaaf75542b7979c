import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import tls, { type TLSSocket } from 'node:tls';
import { connectionTls, describeCertificate, parseSubjectAltName, type ConnectionTls } from '../../../src/tls/tls-info.ts';
import { repoRoot } from '../../helpers/regate-process.ts';

const FIXTURES = join(repoRoot, 'test/fixtures/tls');
const pem = (name: string): Buffer => readFileSync(join(FIXTURES, name));

describe('parseSubjectAltName', () => {
  it('splits node’s list by type, in order', () => {
    assert.deepEqual(parseSubjectAltName('URI:spiffe://t/a, DNS:a.test, DNS:b.test, IP Address:127.0.0.1, email:x@y, DirName:CN=z'), {
      dns: ['a.test', 'b.test'],
      uri: ['spiffe://t/a'],
      email: ['x@y'],
      ip: ['127.0.0.1'],
    });
    assert.deepEqual(parseSubjectAltName(''), { dns: [], uri: [], email: [], ip: [] });
  });

  it('reads JSON-quoted values: a comma inside a value cannot forge a second entry', () => {
    // What node prints for a DNS SAN containing ", URI:spiffe://evil" (CVE-2021-44532 escaping).
    assert.deepEqual(parseSubjectAltName('DNS:"a.test, URI:spiffe://evil/x", DNS:b.test'), { dns: ['a.test, URI:spiffe://evil/x', 'b.test'], uri: [], email: [], ip: [] });
  });
});

describe('describeCertificate', () => {
  it('a SPIFFE client certificate: RFC 4514 names, SANs by type, the SVID, sha256 fingerprint, not_after', () => {
    const x = new X509Certificate(pem('client.pem'));
    const { cert, identity } = describeCertificate(x);
    assert.equal(cert.subject, 'CN=agent-a,OU=agents,O=regate test');
    assert.equal(cert.issuer, 'CN=regate test CA,O=regate test');
    assert.deepEqual(cert.sans, { dns: ['agent-a.regate.test'], uri: ['spiffe://regate.test/ns/ml/sa/agent-a'], email: ['agent-a@regate.test'], ip: [] });
    assert.equal(cert.spiffe_id, 'spiffe://regate.test/ns/ml/sa/agent-a');
    assert.equal(cert.fingerprint_sha256, x.fingerprint256.replaceAll(':', '').toLowerCase());
    assert.match(cert.not_after, /^21\d\d-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.equal(identity.commonName, 'agent-a');
    assert.equal(identity.spiffeAmbiguous, false);
    assert.equal(identity.notAfterS, Math.floor(Date.parse(cert.not_after) / 1000));
  });

  it('no URI SAN: no spiffe_id, the CN is the identity hint', () => {
    const { cert, identity } = describeCertificate(new X509Certificate(pem('client-cn.pem')));
    assert.equal(cert.spiffe_id, undefined);
    assert.equal('spiffe_id' in cert, false);
    assert.deepEqual(cert.sans, { dns: [], uri: [], email: [], ip: [] });
    assert.equal(identity.commonName, 'batch-job');
  });

  it('two spiffe URIs: not an X.509-SVID, flagged ambiguous', () => {
    const { cert, identity } = describeCertificate(new X509Certificate(pem('client-two-spiffe.pem')));
    assert.equal(cert.spiffe_id, undefined);
    assert.equal(identity.spiffeAmbiguous, true);
  });

  it('an expired certificate still describes its dates faithfully', () => {
    assert.equal(describeCertificate(new X509Certificate(pem('client-expired.pem'))).cert.not_after, '2021-01-01T00:00:00Z');
  });
});

describe('connectionTls', () => {
  let server: tls.Server;
  let port: number;
  const seen: ConnectionTls[] = [];
  before(async () => {
    server = tls.createServer({ cert: pem('server.pem'), key: pem('server-key.pem'), ca: pem('ca.pem'), requestCert: true, rejectUnauthorized: false }, (socket: TLSSocket) => {
      const a = connectionTls(socket);
      seen.push(a);
      // Cached per connection: the same frozen object for every request on it.
      assert.equal(connectionTls(socket), a);
      socket.end('ok');
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as AddressInfo).port;
  });
  after(() => server.close());

  const connect = async (options: tls.ConnectionOptions): Promise<ConnectionTls> => {
    const before = seen.length;
    const s = tls.connect({ port, host: '127.0.0.1', ca: pem('ca.pem'), ...options });
    s.resume();
    await once(s, 'end');
    s.destroy();
    assert.equal(seen.length, before + 1);
    return seen[seen.length - 1]!;
  };

  it('a verified client certificate is in input.client_cert, with the identity hints beside it', async () => {
    const t = await connect({ cert: pem('client.pem'), key: pem('client-key.pem'), maxVersion: 'TLSv1.3' });
    assert.equal(t.input.version, 'TLSv1.3');
    assert.match(t.input.cipher, /^TLS_/);
    assert.equal(t.input.client_cert?.spiffe_id, 'spiffe://regate.test/ns/ml/sa/agent-a');
    assert.equal(t.identity?.commonName, 'agent-a');
    assert.ok(Object.isFrozen(t) && Object.isFrozen(t.input));
    // The input carries only the documented fields.
    assert.deepEqual(Object.keys(t.input.client_cert!).sort(), ['fingerprint_sha256', 'issuer', 'not_after', 'sans', 'spiffe_id', 'subject']);
  });

  it('TLS 1.2 reports its version and IANA cipher name', async () => {
    const t = await connect({ maxVersion: 'TLSv1.2' });
    assert.equal(t.input.version, 'TLSv1.2');
    assert.match(t.input.cipher, /^TLS_ECDHE_/);
  });

  it('unverified certificates never count: none, another CA, expired', async () => {
    for (const [cert, key] of [
      [undefined, undefined],
      ['client-other-ca.pem', 'client-other-ca-key.pem'],
      ['client-expired.pem', 'client-expired-key.pem'],
    ] as const) {
      const t = await connect(cert === undefined ? {} : { cert: pem(cert), key: pem(key!) });
      assert.equal(t.input.client_cert, undefined, String(cert));
      assert.equal(t.identity, undefined);
      assert.deepEqual(Object.keys(t.input).sort(), ['cipher', 'version']);
    }
  });
});
