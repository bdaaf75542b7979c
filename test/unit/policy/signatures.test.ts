/**
 * OPA bundle signatures, against bundles signed by the real `opa` CLI
 * (`opa build -b --signing-key`, `opa sign`): every refusal has its stable
 * reason, and a good signed bundle is accepted.
 */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import type { BundleSigningConfig } from '../../../src/config/types.ts';
import { BundleError, ConfigError, type BundleReason } from '../../../src/errors.ts';
import type { Bundle } from '../../../src/policy/bundle.ts';
import { decodeVerified } from '../../../src/policy/intake.ts';
import { canonicalJson } from '../../../src/policy/canonical-json.ts';
import { compileGlob, createBundleVerifier } from '../../../src/policy/signatures.ts';
import { bundleFiles, makeKeys, opaBuildSigned, opaSign, packBundle, tempDir, type KeyFiles } from '../../helpers/signing.ts';

/**
 * Data that exercises every corner of OPA's canonical JSON: opa writes it with
 * Go's encoder (HTML-escaped) and hashes it canonically; regate must agree.
 */
const TRICKY = JSON.stringify({
  '\u{1F600}': 'astral key',
  '\uFF5E': 'sorts before the astral key as UTF-8, after it as UTF-16',
  ctl: '\b\f\n\r\t\u0001\u001f\u007f',
  html: '<script>&</script>',
  js: '\u2028\u2029',
  quote: '"\\/',
  empty: {},
  list: [[], {}, null, true, false],
}).replace('"list"', '"nums":[1.50,1e3,-0,12345678901234567890,0.1e-7],"list"');
const REGO = 'package regate.authz\n\ndecision := {"allow": input.ok == true, "tier": data.tiers.gold}\n';
const SOURCES = { 'authz.rego': REGO, 'data.json': '{"tiers": {"gold": 3, "ratio": 1.50, "note": "a<b>&c\\u2028"}}', 'x/data.json': TRICKY };
const ENTRY = ['regate/authz/decision'];

let dir: string;
let keyA: KeyFiles;
let keyB: KeyFiles;
let keyEc: KeyFiles;
/** Signed with key A, RS256, opa's default kid `default`. */
let signed: Uint8Array;
let unsigned: Uint8Array;
/** Signed with the EC key, ES256. */
let signedEc: Uint8Array;
/** Signed with key A, kid `global_key`, claims {scope: write}. */
let scoped: Uint8Array;
/** `opa sign` over the unsigned bundle with key A (no kid at all). */
let signedLater: Uint8Array;

const signing = (over: Partial<BundleSigningConfig> = {}): BundleSigningConfig => ({ public_key_file: keyA.publicKey, algorithm: 'RS256', exclude_files: [], ...over });

function verify(bytes: Uint8Array, config: BundleSigningConfig | undefined): Promise<Bundle> {
  return decodeVerified(bytes, 'test-bundle', createBundleVerifier(config, '/etc/regate.yaml'));
}

async function refused(bytes: Uint8Array, config: BundleSigningConfig | undefined, reason: BundleReason, message?: RegExp): Promise<void> {
  await assert.rejects(verify(bytes, config), (err: unknown) => {
    assert.ok(err instanceof BundleError, `expected BundleError, got ${String(err)}`);
    assert.equal(err.reason, reason, err.message);
    assert.equal(err.code, 'REGATE_ERR_BUNDLE');
    if (message) assert.match(err.message, message);
    return true;
  });
}

/** Take a bundle apart, change its files, pack it again: the signature stays as it was. */
async function tamper(bytes: Uint8Array, change: (files: Map<string, Uint8Array | string>) => void): Promise<Uint8Array> {
  const files = new Map<string, Uint8Array | string>(await bundleFiles(bytes));
  change(files);
  return packBundle(files);
}

before(async () => {
  dir = await tempDir();
  [keyA, keyB, keyEc] = await Promise.all([makeKeys(dir, 'a'), makeKeys(dir, 'b'), makeKeys(dir, 'ec', 'P-256')]);
  [signed, unsigned, signedEc, scoped] = await Promise.all([
    opaBuildSigned({ files: SOURCES, entrypoints: ENTRY, signingKey: keyA.privateKey, revision: 'signed-1' }),
    opaBuildSigned({ files: SOURCES, entrypoints: ENTRY, revision: 'unsigned-1' }),
    opaBuildSigned({ files: SOURCES, entrypoints: ENTRY, signingKey: keyEc.privateKey, alg: 'ES256' }),
    opaBuildSigned({ files: SOURCES, entrypoints: ENTRY, signingKey: keyA.privateKey, keyId: 'global_key', claims: { scope: 'write' } }),
  ]);
  signedLater = await opaSign(unsigned, keyA.privateKey);
});

describe('signed bundles: accepted', () => {
  it('accepts a bundle signed by opa build with the configured key', async () => {
    const bundle = await verify(signed, signing());
    assert.equal(bundle.manifest.revision, 'signed-1');
    assert.deepEqual((bundle.data as { tiers: unknown }).tiers, { gold: 3, ratio: 1.5, note: 'a<b>&c\u2028' });
    assert.deepEqual(Object.keys((bundle.data as { x: object }).x).sort(), ['\u{1F600}', '\uFF5E', 'ctl', 'empty', 'html', 'js', 'list', 'nums', 'quote'].sort());
  });

  it('accepts a bundle signed later with opa sign (no kid at all)', async () => {
    assert.equal((await verify(signedLater, signing({ keyid: 'default' }))).manifest.revision, 'unsigned-1');
  });

  it('accepts ES256 with an EC P-256 key', async () => {
    await verify(signedEc, signing({ public_key_file: keyEc.publicKey, algorithm: 'ES256', keyid: 'default' }));
  });

  it('checks the key id and scope as configured', async () => {
    await verify(signed, signing({ keyid: 'default' }));
    await verify(scoped, signing({ keyid: 'global_key', scope: 'write' }));
  });

  it('hashes data.json and .manifest over canonical JSON: re-serializing them keeps the signature valid', async () => {
    const reformatted = await tamper(signed, (files) => {
      // opa wrote data.json with Go's encoder: sorted keys, `<` as \u003c. Write it unescaped, spaced out.
      const data = canonicalJson(files.get('data.json') as Uint8Array);
      assert.ok(data.includes('<script>'));
      files.set('data.json', `\n  ${data.replaceAll(',"', ', "')}  \n`);
      const manifest = JSON.parse(Buffer.from(files.get('.manifest') as Uint8Array).toString()) as Record<string, unknown>;
      files.set('.manifest', JSON.stringify(Object.fromEntries(Object.entries(manifest).reverse()), null, 4));
    });
    assert.equal((await verify(reformatted, signing())).manifest.revision, 'signed-1');
  });

  it('skips exclude_files (Go path.Match patterns), as OPA does', async () => {
    const extra = await tamper(signed, (files) => files.set('notes/README.md', 'not signed'));
    await refused(extra, signing(), 'file_not_signed', /\/notes\/README\.md/);
    await verify(extra, signing({ exclude_files: ['notes/*'] }));
    await refused(extra, signing({ exclude_files: ['*.md'] }), 'file_not_signed'); // `*` does not cross `/`
  });

  it('accepts a JWKS key file; the kid selects the key (rotation)', async () => {
    const jwks = join(dir, 'keys.jwks.json');
    await writeFile(jwks, JSON.stringify({ keys: [{ ...keyB.jwk, kid: 'next', alg: 'RS256' }, { ...keyA.jwk, kid: 'default', use: 'sig' }] }));
    await verify(signed, signing({ public_key_file: jwks }));
    const onlyB = join(dir, 'only-b.jwks.json');
    await writeFile(onlyB, JSON.stringify({ keys: [{ ...keyB.jwk, kid: 'next' }] }));
    await refused(signed, signing({ public_key_file: onlyB }), 'signature_key_mismatch', /no key .* matches .*"default"/);
  });
});

describe('signed bundles: refused', () => {
  it('refuses an unsigned bundle when signing is configured', async () => {
    await refused(unsigned, signing(), 'signature_missing', /not signed/);
  });

  it('refuses a signed bundle when signing is not configured (as OPA does)', async () => {
    await refused(signed, undefined, 'signature_not_configured', /policy\.signing is not configured/);
    // ... and accepts unsigned ones: the documented trade-off.
    assert.equal((await verify(unsigned, undefined)).manifest.revision, 'unsigned-1');
  });

  it('refuses a tampered file (digest mismatch)', async () => {
    const tampered = await tamper(signed, (files) => files.set('data.json', '{"tiers": {"gold": 999, "ratio": 1.50, "note": "a<b>&c\\u2028"}}'));
    await refused(tampered, signing(), 'file_digest_mismatch', /\/data\.json: digest mismatch/);
    const wasm = await tamper(signed, (files) => {
      const bytes = Buffer.from(files.get('policy.wasm') as Uint8Array);
      bytes.writeUInt8(bytes.readUInt8(bytes.length - 1) ^ 1, bytes.length - 1);
      files.set('policy.wasm', bytes);
    });
    await refused(wasm, signing(), 'file_digest_mismatch', /\/policy\.wasm/);
    // A number written differently is a different document for OPA's hash (json.Number keeps the literal).
    const number = await tamper(signed, (files) => {
      const data = canonicalJson(files.get('data.json') as Uint8Array);
      assert.ok(data.includes('"ratio":1.50'));
      files.set('data.json', data.replace('"ratio":1.50', '"ratio":1.5'));
    });
    await refused(number, signing(), 'file_digest_mismatch');
  });

  it('refuses a file added after signing', async () => {
    const extra = await tamper(signed, (files) => files.set('evil.rego', 'package evil\n'));
    await refused(extra, signing(), 'file_not_signed', /\/evil\.rego is in the bundle but not in its signature/);
  });

  it('refuses a bundle missing a signed file', async () => {
    const missing = await tamper(signed, (files) => files.delete('authz.rego'));
    await refused(missing, signing(), 'file_missing', /\/authz\.rego are in the signature but not in the bundle/);
  });

  it('refuses a signature by another key', async () => {
    await refused(signed, signing({ public_key_file: keyB.publicKey }), 'signature_invalid', /signed with another key/);
  });

  it('refuses a wrong key id', async () => {
    await refused(signed, signing({ keyid: 'global_key' }), 'signature_key_mismatch', /key id "default"; policy\.signing\.keyid expects "global_key"/);
    // The deprecated keyid claim counts when there is no kid header.
    const claimOnly = await opaBuildSigned({ files: SOURCES, entrypoints: ENTRY, signingKey: keyA.privateKey, claims: { keyid: 'mykey' } });
    await refused(claimOnly, signing({ keyid: 'default' }), 'signature_key_mismatch', /"mykey"/);
    await verify(claimOnly, signing({ keyid: 'mykey' }));
  });

  it('refuses an algorithm other than the configured one, before any cryptography', async () => {
    await refused(signedEc, signing({ public_key_file: keyA.publicKey }), 'signature_algorithm_not_allowed', /alg "ES256"; policy\.signing\.algorithm allows only RS256/);
    await refused(signed, signing({ algorithm: 'PS256' }), 'signature_algorithm_not_allowed');
  });

  it('refuses forged signatures: alg none, and HS256 keyed with the public key', async () => {
    const files = await bundleFiles(signed);
    const token = JSON.parse(Buffer.from(files.get('.signatures.json')!).toString()).signatures[0] as string;
    const payload = token.split('.')[1]!;
    const none = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${payload}.`;
    const hsHeader = Buffer.from('{"alg":"HS256","kid":"default"}').toString('base64url');
    const { readFile } = await import('node:fs/promises');
    const secret = await readFile(keyA.publicKey);
    const hs = `${hsHeader}.${payload}.${createHmac('sha256', secret).update(`${hsHeader}.${payload}`).digest('base64url')}`;
    for (const forged of [none, hs]) {
      const bytes = await tamper(signed, (f) => f.set('.signatures.json', JSON.stringify({ signatures: [forged] })));
      await refused(bytes, signing(), 'signature_algorithm_not_allowed');
    }
  });

  it('refuses a scope mismatch, compared exactly as OPA does', async () => {
    await refused(scoped, signing({ keyid: 'global_key' }), 'signature_scope_mismatch', /scope "write"; policy\.signing\.scope expects none/);
    await refused(scoped, signing({ scope: 'read' }), 'signature_scope_mismatch');
    await refused(signed, signing({ scope: 'write' }), 'signature_scope_mismatch', /scope ""/);
  });

  it('refuses malformed signature files', async () => {
    const cases: [string, RegExp][] = [
      ['not json', /not valid JSON/],
      ['[]', /must be a JSON object/],
      ['{"signatures": []}', /missing JWT \(expected exactly one\)/],
      ['{"signatures": ["a.b.c", "d.e.f"]}', /multiple JWTs/],
      ['{"signatures": ["abc"]}', /not a JWS in compact form/],
      ['{"signatures": ["x.y.z"], "plugin": "custom"}', /signing plugin "custom"/],
    ];
    for (const [text, message] of cases) {
      const bytes = await tamper(signed, (f) => f.set('.signatures.json', text));
      await refused(bytes, signing(), 'signature_invalid', message);
    }
  });
});

describe('verification key file', () => {
  const configError = (config: BundleSigningConfig, message: RegExp): void => {
    assert.throws(
      () => createBundleVerifier(config, '/etc/regate.yaml'),
      (err: unknown) => err instanceof ConfigError && err.keyPath === '/policy/signing/public_key_file' && err.file === '/etc/regate.yaml' && message.test(err.message),
    );
  };

  it('refuses a private key, a missing file, garbage and a key that does not fit the algorithm', async () => {
    configError(signing({ public_key_file: keyA.privateKey }), /is a private key/);
    configError(signing({ public_key_file: join(dir, 'nope.pem') }), /file not found/);
    const garbage = join(dir, 'garbage.pem');
    await writeFile(garbage, 'hello');
    configError(signing({ public_key_file: garbage }), /neither a PEM public key/);
    configError(signing({ public_key_file: keyEc.publicKey }), /is an EC key, but RS256 needs an RSA key/);
    configError(signing({ public_key_file: keyA.publicKey, algorithm: 'ES384' }), /needs an EC secp384r1 key/);
    const privateJwks = join(dir, 'private.jwks.json');
    await writeFile(privateJwks, JSON.stringify({ keys: [{ ...keyA.jwk, d: 'AAAA' }] }));
    configError(signing({ public_key_file: privateJwks }), /private or secret key material/);
    const noKid = join(dir, 'nokid.jwks.json');
    await writeFile(noKid, JSON.stringify({ keys: [keyA.jwk, keyB.jwk] }));
    configError(signing({ public_key_file: noKid }), /every key needs a "kid"/);
  });
});

describe('exclude_files globs (Go path.Match)', () => {
  it('matches like path.Match', () => {
    const m = (pattern: string, path: string): boolean => compileGlob(pattern).test(path);
    assert.ok(m('*.rego', 'a.rego'));
    assert.ok(!m('*.rego', 'x/a.rego'));
    assert.ok(m('x/*', 'x/a.rego'));
    assert.ok(m('data.?son', 'data.json'));
    assert.ok(m('[a-c]*.json', 'b.json'));
    assert.ok(!m('[^a-c]*.json', 'b.json'));
    assert.ok(m('\\*.json', '*.json'));
    assert.ok(!m('\\*.json', 'a.json'));
    assert.ok(m('a+b(c).json', 'a+b(c).json'), 'regex metacharacters are literal');
    assert.ok(!m('x?y', 'x/y'), '? does not match the separator');
  });

  it('refuses malformed patterns', () => {
    for (const bad of ['[abc', '[]', 'x\\']) assert.throws(() => compileGlob(bad), TypeError, bad);
  });
});
