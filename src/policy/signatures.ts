/**
 * OPA bundle signature verification (`.signatures.json`), byte-compatible with
 * OPA's `v1/bundle/verify.go` and `hash.go`, so bundles signed by
 * `opa build --signing-key` or `opa sign` verify here unchanged.
 *
 * The format: `/.signatures.json` = `{"signatures": ["<JWS compact>"]}` (plus
 * an optional `"plugin": "_default"`). The JWS payload lists every other file
 * of the bundle with its digest: `{"files": [{"name", "hash", "algorithm"}],
 * "keyid"?, "scope"?, "iss"?, "iat"?}`. A file named `data.json`, `data.yaml`
 * or `.manifest` is hashed over its canonical JSON (keys sorted, no
 * whitespace, numbers as written), so re-serializing it does not break the
 * signature; every other file over its raw bytes.
 *
 * Where OPA is lax regate is stricter, always towards refusing:
 * - the JWS `alg` must be the configured algorithm (OPA ignores the header);
 * - a configured `keyid` must match the signature's key id (OPA uses its own
 *   configured id to pick the key and never compares);
 * - an unsigned bundle is refused whenever signing is configured (OPA only
 *   when a `keyid` is configured);
 * - MD5 and SHA-1 file digests are refused (OPA accepts them);
 * - only the root `.signatures.json` is the signature file (OPA skips any
 *   file whose name ends in `signatures.json`).
 */

import { createHash, createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { compactVerify, createLocalJWKSet, errors as joseErrors, type JSONWebKeySet, type JWK } from 'jose';
import type { BundleSigningAlgorithm, BundleSigningConfig } from '../config/types.ts';
import { BundleError, ConfigError } from '../errors.ts';
import { canonicalJson } from './canonical-json.ts';

/** The signature file's path inside a bundle (normalized: no leading slash). */
export const SIGNATURES_FILE = '.signatures.json';

/** Every algorithm `policy.signing.algorithm` accepts (the schema's enum). */
export const SIGNING_ALGORITHMS: readonly BundleSigningAlgorithm[] = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512'];

/** OPA's digest names → node's. MD5 and SHA-1 are left out on purpose: collisions are practical. */
const DIGESTS: Readonly<Record<string, string>> = {
  'SHA-224': 'sha224',
  'SHA-256': 'sha256',
  'SHA-384': 'sha384',
  'SHA-512': 'sha512',
  'SHA-512-224': 'sha512-224',
  'SHA-512-256': 'sha512-256',
};

/** The verification key(s): one PEM key, or a JWKS from which the signature's `kid` picks. */
type VerificationKey = KeyObject | ReturnType<typeof createLocalJWKSet>;

/** Verifies the signature of one bundle's files. Built once per source from `policy.signing`. */
export interface BundleVerifier {
  /**
   * Resolve when `files` (bundle path without leading slash → bytes, the
   * signature file included) are signed as configured; reject with a
   * {@link BundleError} naming `source` otherwise.
   */
  verify(files: ReadonlyMap<string, Uint8Array>, source: string): Promise<void>;
}

/**
 * Build the verifier for `signing`, or one that refuses signed bundles when
 * signing is not configured. Reads the key file synchronously (startup and
 * reload only). Throws {@link ConfigError} (file `configFile`) for a key file
 * that is missing, private, or does not fit the algorithm.
 */
export function createBundleVerifier(signing: BundleSigningConfig | undefined, configFile: string): BundleVerifier {
  if (signing === undefined) return { verify: async (files, source) => refuseSigned(files, source) };
  const key = loadVerificationKey(signing, configFile);
  const excluded = signing.exclude_files.map((pattern) => compileGlob(pattern));
  return { verify: (files, source) => verifyFiles(files, source, signing, key, excluded) };
}

/** OPA refuses a signed bundle it has no key for; so does regate, so a forgotten `signing` never looks like protection. */
function refuseSigned(files: ReadonlyMap<string, Uint8Array>, source: string): void {
  if (files.has(SIGNATURES_FILE)) {
    throw new BundleError('signature_not_configured', `${source}: the bundle is signed (/.signatures.json) but policy.signing is not configured: configure it to verify the signature`);
  }
}

// ---------------------------------------------------------------- keys

function loadVerificationKey(signing: BundleSigningConfig, configFile: string): VerificationKey {
  const at = '/policy/signing/public_key_file';
  const file = signing.public_key_file;
  const bad = (problem: string, cause?: unknown): ConfigError => new ConfigError(configFile, at, `${file}: ${problem}`, cause === undefined ? {} : { cause });
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw bad(`cannot read the bundle verification key: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : (err as Error).message}`, err);
  }
  if (text.trimStart().startsWith('{')) return loadJwks(text, signing.algorithm, bad);
  // node derives a public key from a private one without a word: refuse first,
  // a signing key has no business on the gateway.
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text)) throw bad('is a private key: give regate only the public key (openssl pkey -in key.pem -pubout)');
  const labels = [...text.matchAll(/-----BEGIN ([A-Z0-9 ]+)-----/g)].map((m) => m[1]);
  if (labels.length === 0) throw bad('is neither a PEM public key / certificate nor a JWKS (JSON) file');
  if (labels.length > 1) throw bad(`holds ${labels.length} PEM blocks; put exactly one key in a PEM file, or several in a JWKS file (selected by kid)`);
  let key: KeyObject;
  try {
    key = createPublicKey(text);
  } catch (err) {
    throw bad(`not a usable PEM public key or certificate: ${(err as Error).message}`, err);
  }
  const problem = keyProblem(key, signing.algorithm);
  if (problem !== undefined) throw bad(problem);
  return key;
}

function loadJwks(text: string, alg: BundleSigningAlgorithm, bad: (problem: string, cause?: unknown) => ConfigError): VerificationKey {
  let jwks: unknown;
  try {
    jwks = JSON.parse(text);
  } catch (err) {
    throw bad(`invalid JSON: ${(err as Error).message}`, err);
  }
  const keys = (jwks as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys) || keys.length === 0) throw bad('a JWKS file must be {"keys": [...]} with at least one key');
  keys.forEach((jwk: JWK, i) => {
    if (typeof jwk !== 'object' || jwk === null) throw bad(`keys[${i}] is not an object`);
    if (['d', 'p', 'q', 'dp', 'dq', 'qi', 'k'].some((m) => m in jwk)) throw bad(`keys[${i}] holds private or secret key material: give regate only public keys`);
    if (jwk.alg !== undefined && jwk.alg !== alg) throw bad(`keys[${i}] is for ${jwk.alg}, but policy.signing.algorithm is ${alg}`);
    let key: KeyObject;
    try {
      key = createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' });
    } catch (err) {
      throw bad(`keys[${i}] is not a usable public key: ${(err as Error).message}`, err);
    }
    const problem = keyProblem(key, alg);
    if (problem !== undefined) throw bad(`keys[${i}] ${problem}`);
  });
  if (keys.length > 1 && keys.some((k: JWK) => typeof k.kid !== 'string' || k.kid === '')) {
    throw bad('with several keys every key needs a "kid": the signature\'s kid selects the key');
  }
  return createLocalJWKSet(jwks as JSONWebKeySet);
}

const CURVES: Readonly<Record<string, string>> = { ES256: 'prime256v1', ES384: 'secp384r1', ES512: 'secp521r1' };

const KEY_TYPES: Readonly<Record<string, string>> = { rsa: 'an RSA', 'rsa-pss': 'an RSA-PSS', ec: 'an EC', ed25519: 'an Ed25519', ed448: 'an Ed448', x25519: 'an X25519', x448: 'an X448' };

/** Why `key` cannot verify `alg` signatures, if it cannot. */
function keyProblem(key: KeyObject, alg: BundleSigningAlgorithm): string | undefined {
  const type = key.asymmetricKeyType ?? 'unknown';
  const a = KEY_TYPES[type] ?? `a ${type}`;
  if (alg.startsWith('RS') && type !== 'rsa') return `is ${a} key, but ${alg} needs an RSA key`;
  if (alg.startsWith('PS') && type !== 'rsa' && type !== 'rsa-pss') return `is ${a} key, but ${alg} needs an RSA key`;
  if (alg.startsWith('ES')) {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (type !== 'ec' || curve !== CURVES[alg]) return `is ${a}${curve ? ` ${curve}` : ''} key, but ${alg} needs an EC ${CURVES[alg]} key`;
  }
  if (type === 'rsa' || type === 'rsa-pss') {
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < 2048) return `is a ${bits}-bit RSA key; at least 2048 bits are required`;
  }
  return undefined;
}

// ---------------------------------------------------------------- verification

interface SignedFile {
  readonly name: string;
  readonly hash: string;
  readonly algorithm: string;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const utf8 = new TextDecoder('utf-8', { fatal: true });

async function verifyFiles(
  files: ReadonlyMap<string, Uint8Array>,
  source: string,
  signing: BundleSigningConfig,
  key: VerificationKey,
  excluded: readonly RegExp[],
): Promise<void> {
  const refuse = (reason: ConstructorParameters<typeof BundleError>[0], problem: string, cause?: unknown): BundleError =>
    new BundleError(reason, `${source}: ${problem}`, cause === undefined ? {} : { cause });

  const signatures = files.get(SIGNATURES_FILE);
  if (signatures === undefined) throw refuse('signature_missing', 'the bundle is not signed (no /.signatures.json) and policy.signing requires a signature');
  const token = readSignaturesFile(signatures, refuse);
  const listed = await verifyToken(token, signing, key, refuse);

  for (const [path, bytes] of files) {
    if (path === SIGNATURES_FILE) continue;
    if (excluded.some((re) => re.test(path))) {
      listed.delete(path);
      continue;
    }
    const entry = listed.get(path);
    if (entry === undefined) throw refuse('file_not_signed', `/${path} is in the bundle but not in its signature (added after signing?)`);
    const node = DIGESTS[entry.algorithm];
    if (node === undefined) {
      throw refuse('signature_invalid', `/${path}: digest algorithm ${JSON.stringify(entry.algorithm)} is not accepted (use ${Object.keys(DIGESTS).join(', ')})`);
    }
    const want = entry.hash.toLowerCase();
    if (!/^(?:[0-9a-f]{2})+$/.test(want)) throw refuse('signature_invalid', `/${path}: the signed digest is not hex`);
    let got: string;
    try {
      got = fileDigest(path, bytes, node);
    } catch (err) {
      throw refuse('file_digest_mismatch', `/${path}: cannot be canonicalized for its digest: ${(err as Error).message}`, err);
    }
    if (got !== want) throw refuse('file_digest_mismatch', `/${path}: digest mismatch (signed ${want}, got ${got}): the file changed after signing`);
    listed.delete(path);
  }
  if (listed.size > 0) {
    const names = [...listed.keys()].sort().map((n) => `/${n}`);
    throw refuse('file_missing', `file(s) ${names.join(', ')} are in the signature but not in the bundle`);
  }
}

type Refuse = (reason: ConstructorParameters<typeof BundleError>[0], problem: string, cause?: unknown) => BundleError;

/** The one JWS in `.signatures.json`. */
function readSignaturesFile(bytes: Uint8Array, refuse: Refuse): string {
  let doc: unknown;
  try {
    doc = JSON.parse(utf8.decode(bytes));
  } catch (err) {
    throw refuse('signature_invalid', `/.signatures.json is not valid JSON: ${(err as Error).message}`, err);
  }
  if (!isObject(doc)) throw refuse('signature_invalid', '/.signatures.json must be a JSON object');
  // `opa build` writes "plugin": "_default"; a custom verifier plugin is not something regate can run.
  if (doc.plugin !== undefined && doc.plugin !== '' && doc.plugin !== '_default') {
    throw refuse('signature_invalid', `/.signatures.json names signing plugin ${JSON.stringify(doc.plugin)}; regate verifies only OPA's default JWS signatures`);
  }
  const list = doc.signatures;
  if (!Array.isArray(list) || list.length === 0) throw refuse('signature_invalid', '/.signatures.json: missing JWT (expected exactly one)');
  if (list.length > 1) throw refuse('signature_invalid', '/.signatures.json: multiple JWTs not supported (expected exactly one)');
  const token = list[0];
  if (typeof token !== 'string') throw refuse('signature_invalid', '/.signatures.json: the signature must be a JWS compact string');
  return token;
}

/** Verify the JWS; return the signed file list by name. */
async function verifyToken(token: string, signing: BundleSigningConfig, key: VerificationKey, refuse: Refuse): Promise<Map<string, SignedFile>> {
  const parts = token.split('.');
  if (parts.length !== 3) throw refuse('signature_invalid', 'the signature is not a JWS in compact form');
  let header: Record<string, unknown>;
  let claimed: Record<string, unknown>;
  try {
    header = JSON.parse(Buffer.from(parts[0]!, 'base64url').toString('utf8')) as Record<string, unknown>;
    claimed = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
  } catch (err) {
    throw refuse('signature_invalid', `the signature's header or payload is not base64url JSON: ${(err as Error).message}`, err);
  }
  if (!isObject(header) || !isObject(claimed)) throw refuse('signature_invalid', "the signature's header and payload must be JSON objects");
  // Checked before any cryptography, so a downgrade attempt is named as such.
  if (header.alg !== signing.algorithm) {
    throw refuse('signature_algorithm_not_allowed', `the signature uses alg ${JSON.stringify(header.alg)}; policy.signing.algorithm allows only ${signing.algorithm}`);
  }
  // OPA's order: the `kid` header, else the deprecated `keyid` claim.
  const kid = typeof header.kid === 'string' && header.kid !== '' ? header.kid : typeof claimed.keyid === 'string' ? claimed.keyid : '';
  if (signing.keyid !== undefined && kid !== '' && kid !== signing.keyid) {
    throw refuse('signature_key_mismatch', `the bundle is signed with key id ${JSON.stringify(kid)}; policy.signing.keyid expects ${JSON.stringify(signing.keyid)}`);
  }

  let payload: Uint8Array;
  try {
    ({ payload } = await compactVerify(token, key as Parameters<typeof compactVerify>[1], { algorithms: [signing.algorithm] }));
  } catch (err) {
    if (err instanceof joseErrors.JWKSNoMatchingKey || err instanceof joseErrors.JWKSMultipleMatchingKeys) {
      throw refuse('signature_key_mismatch', `no key in ${signing.public_key_file} matches the signature's key id ${JSON.stringify(kid)}`, err);
    }
    throw refuse('signature_invalid', `signature verification failed (${(err as Error).message}): signed with another key, or altered`, err);
  }

  // From here on, only what the signature covers: the verified payload bytes.
  let signed: unknown;
  try {
    signed = JSON.parse(utf8.decode(payload));
  } catch (err) {
    throw refuse('signature_invalid', `the signed payload is not JSON: ${(err as Error).message}`, err);
  }
  if (!isObject(signed)) throw refuse('signature_invalid', 'the signed payload must be a JSON object');
  const scope = signed.scope ?? '';
  if (scope !== (signing.scope ?? '')) {
    throw refuse(
      'signature_scope_mismatch',
      `the signature has scope ${JSON.stringify(scope)}; policy.signing.scope expects ${signing.scope === undefined ? 'none' : JSON.stringify(signing.scope)}`,
    );
  }
  const list = signed.files;
  if (!Array.isArray(list)) throw refuse('signature_invalid', 'the signed payload has no "files" list');
  const byName = new Map<string, SignedFile>();
  for (const [i, f] of list.entries()) {
    if (!isObject(f) || typeof f.name !== 'string' || typeof f.hash !== 'string' || typeof f.algorithm !== 'string' || f.algorithm === '') {
      throw refuse('signature_invalid', `signed files[${i}] must have string "name", "hash" and "algorithm"`);
    }
    const prior = byName.get(f.name);
    if (prior !== undefined && (prior.hash !== f.hash || prior.algorithm !== f.algorithm)) {
      throw refuse('signature_invalid', `signed file ${JSON.stringify(f.name)} is listed twice with different digests`);
    }
    byName.set(f.name, { name: f.name, hash: f.hash, algorithm: f.algorithm });
  }
  return byName;
}

// ---------------------------------------------------------------- digests

/** OPA's `IsStructuredDoc`: these base names are hashed over canonical JSON. */
const STRUCTURED = new Set(['data.json', 'data.yaml', 'signatures.json', '.manifest']);

/** Hex digest of one bundle file as OPA computes it for signatures. `digest` is a node hash name. */
export function fileDigest(path: string, bytes: Uint8Array, digest = 'sha256'): string {
  const hash = createHash(digest);
  const base = path.slice(path.lastIndexOf('/') + 1);
  hash.update(STRUCTURED.has(base) ? canonicalJson(bytes) : bytes);
  return hash.digest('hex');
}

// ---------------------------------------------------------------- exclude_files globs

/**
 * Compile a Go `path.Match` pattern (`*`, `?`, `[a-z]`, `[^x]`, `\` escapes;
 * `*` and `?` never match `/`) into an anchored RegExp. Throws TypeError with
 * the problem for a malformed pattern.
 */
export function compileGlob(pattern: string): RegExp {
  let re = '^';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '\\') {
      const next = pattern[++i];
      if (next === undefined) throw new TypeError(`invalid pattern ${JSON.stringify(pattern)}: trailing backslash`);
      re += escapeRegExp(next);
    } else if (c === '[') {
      let j = i + 1;
      let cls = '';
      if (pattern[j] === '^') {
        cls += '^';
        j++;
      }
      let empty = true;
      for (; j < pattern.length && (pattern[j] !== ']' || empty); j++) {
        let ch = pattern[j]!;
        if (ch === '\\') {
          ch = pattern[++j] ?? '';
          if (ch === '') throw new TypeError(`invalid pattern ${JSON.stringify(pattern)}: trailing backslash in a character class`);
        }
        cls += ch === '-' && !empty && pattern[j + 1] !== ']' ? '-' : escapeClass(ch);
        empty = false;
      }
      if (j >= pattern.length || empty) throw new TypeError(`invalid pattern ${JSON.stringify(pattern)}: unterminated or empty character class`);
      // Like `*` and `?`, a class never matches the separator.
      re += `(?!/)[${cls}]`;
      i = j;
    } else re += escapeRegExp(c);
  }
  try {
    return new RegExp(`${re}$`, 'u');
  } catch (err) {
    throw new TypeError(`invalid pattern ${JSON.stringify(pattern)}: ${(err as Error).message}`, { cause: err });
  }
}

/** Escape outside a class: with the `u` flag only syntax characters and `/` may be escaped. */
function escapeRegExp(c: string): string {
  return /[\\^$.*+?()[\]{}|/]/.test(c) ? `\\${c}` : c;
}

/** Escape inside a class, where `-` and `^` matter too. */
function escapeClass(c: string): string {
  return /[\\^\]\[\-]/.test(c) ? `\\${c}` : c;
}
