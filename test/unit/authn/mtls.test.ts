import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { certificateIdentity, MTLS_ISSUER_ID } from '../../../src/authn/mtls.ts';
import { AuthnError } from '../../../src/errors.ts';
import { describeCertificate, type ConnectionTls } from '../../../src/tls/tls-info.ts';
import { repoRoot } from '../../helpers/regate-process.ts';

const verified = (name: string): ConnectionTls => {
  const { cert, identity } = describeCertificate(new X509Certificate(readFileSync(join(repoRoot, 'test/fixtures/tls', name))));
  return { input: { version: 'TLSv1.3', cipher: 'TLS_AES_128_GCM_SHA256', client_cert: cert }, identity };
};
const refusal = (reason: string) => (e: unknown) => e instanceof AuthnError && e.reason === reason && e.status === 401 && e.bearerError === undefined;

describe('certificateIdentity (auth: mtls)', () => {
  it('an X.509-SVID: sub is the SPIFFE ID, iss the issuer DN, no roles or claims, exp the not_after; one identity per connection', () => {
    const tls = verified('client.pem');
    const id = certificateIdentity(tls);
    assert.equal(id.sub, 'spiffe://regate.test/ns/ml/sa/agent-a');
    assert.equal(id.iss, 'CN=regate test CA,O=regate test');
    assert.equal(id.issuerId, MTLS_ISSUER_ID);
    assert.deepEqual([id.roles, id.groups, id.scopes, id.tenant, id.claims], [[], [], [], '', {}]);
    assert.equal(id.exp, Math.floor(Date.parse(tls.input.client_cert!.not_after) / 1000));
    assert.equal(certificateIdentity(tls), id);
  });

  it('no URI SAN: the subject CN', () => {
    assert.equal(certificateIdentity(verified('client-cn.pem')).sub, 'batch-job');
  });

  it('no verified certificate → client_cert_required: plaintext, TLS without one', () => {
    assert.throws(() => certificateIdentity(undefined), refusal('client_cert_required'));
    assert.throws(() => certificateIdentity({ input: { version: 'TLSv1.3', cipher: 'TLS_AES_128_GCM_SHA256' } }), refusal('client_cert_required'));
  });

  it('a spiffe URI that is no SVID → client_cert_invalid, never its CN', () => {
    assert.throws(() => certificateIdentity(verified('client-two-spiffe.pem')), refusal('client_cert_invalid'));
  });
});
