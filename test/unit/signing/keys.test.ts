import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { importJWK, jwtVerify } from 'jose';
import { KeyRing, readSigningKey, SigningKeyError } from '../../../src/signing/keys.ts';
import { signJwt } from '../../../src/signing/mint.ts';

const dir = mkdtempSync(join(tmpdir(), 'regate-keys-'));
const write = (name: string, text: string): string => {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
};

describe('signing keys', () => {
  it('reads a P-256 JWK (its kid) and an Ed25519 PEM (thumbprint kid); tokens verify with the published JWK', async () => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const ed = generateKeyPairSync('ed25519');
    const ecFile = write('ec.jwk', JSON.stringify({ ...ec.privateKey.export({ format: 'jwk' }), kid: 'k1' }));
    const edFile = write('ed.pem', ed.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string);
    const ring = await KeyRing.load([{ file: ecFile, use: 'active' }, { file: edFile, use: 'next' }], {}, { poll: false });
    const jwks = JSON.parse(ring.jwks()) as { keys: Record<string, unknown>[] };
    assert.deepEqual(jwks.keys.map((k) => [k.kid === 'k1' ? 'k1' : 'thumbprint', k.alg, k.use, 'd' in k]), [['k1', 'ES256', 'sig', false], ['thumbprint', 'EdDSA', 'sig', false]]);
    for (const key of [ring.active(), await readSigningKey(edFile, 'active')]) {
      const token = signJwt(key, { sub: 'a' }, 'at+jwt');
      const pub = await importJWK(key.publicJwk, key.alg);
      const { payload, protectedHeader } = await jwtVerify(token, pub, { typ: 'at+jwt' });
      assert.equal(payload.sub, 'a');
      assert.equal(protectedHeader.kid, key.kid);
    }
    ring.close();
  });

  it('refuses RSA and P-384 keys, public-only JWKs and unreadable files, naming the file', async () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const cases = [
      write('rsa.pem', rsa.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string),
      write('p384.jwk', JSON.stringify(p384.privateKey.export({ format: 'jwk' }))),
      write('pub.jwk', JSON.stringify(p384.publicKey.export({ format: 'jwk' }))),
      join(dir, 'missing.jwk'),
    ];
    for (const file of cases) await assert.rejects(readSigningKey(file, 'active'), (e: unknown) => e instanceof SigningKeyError && e.message.startsWith(file));
  });

  it('a rewritten file is re-read; a broken rewrite keeps the previous key', async () => {
    const a = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const b = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const file = write('rot.jwk', JSON.stringify({ ...a.privateKey.export({ format: 'jwk' }), kid: 'a' }));
    const events: string[] = [];
    const ring = await KeyRing.load([{ file, use: 'active' }], { reloaded: (_f, r) => events.push(r) }, { poll: false });
    writeFileSync(file, 'garbage!');
    await ring.refresh();
    assert.equal(ring.active().kid, 'a');
    writeFileSync(file, JSON.stringify({ ...b.privateKey.export({ format: 'jwk' }), kid: 'b' }));
    await ring.refresh();
    assert.equal(ring.active().kid, 'b');
    assert.deepEqual(events, ['error', 'success']);
    ring.close();
  });
});
