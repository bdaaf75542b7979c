/**
 * `regate keys generate`: a signing key pair for your own issuer setup — a
 * private JWK for whatever mints tokens (`regate token --key`, a test harness,
 * a small internal issuer) and the public half in a JWKS for regate's
 * `issuers[].jwks_file` (or to serve as `jwks_url`).
 *
 * Public keys are added to an existing JWKS rather than replacing it, so a
 * rotation is: generate the new key into the same JWKS, deploy it, switch the
 * signer, then remove the old key. A private key file is never overwritten.
 */
import { open, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import { parse, UsageError } from './common.ts';

/** Algorithms regate verifies (schema `issuers[].algorithms`), each with how its key is made. */
const ALGORITHMS: Readonly<Record<string, { kty: string; options: (bits: number) => Record<string, unknown> }>> = {
  ES256: { kty: 'EC', options: () => ({}) },
  ES384: { kty: 'EC', options: () => ({}) },
  ES512: { kty: 'EC', options: () => ({}) },
  RS256: { kty: 'RSA', options: (bits) => ({ modulusLength: bits }) },
  RS384: { kty: 'RSA', options: (bits) => ({ modulusLength: bits }) },
  RS512: { kty: 'RSA', options: (bits) => ({ modulusLength: bits }) },
  PS256: { kty: 'RSA', options: (bits) => ({ modulusLength: bits }) },
  PS384: { kty: 'RSA', options: (bits) => ({ modulusLength: bits }) },
  PS512: { kty: 'RSA', options: (bits) => ({ modulusLength: bits }) },
  EdDSA: { kty: 'OKP', options: () => ({ crv: 'Ed25519' }) },
  Ed25519: { kty: 'OKP', options: () => ({}) },
};

const USAGE = `usage: regate keys generate --alg ALG --kid KID [options]

Generates a signing key pair: a private JWK (for whatever mints tokens, e.g.
regate token --key) and its public half, added to a JWKS (for issuers[].jwks_file).

  --alg ALG          ${Object.keys(ALGORITHMS).join(', ')} (required)
  --kid KID          key id, written into both files and into every token's header (required)
  --out-dir DIR      where to write (default: the current directory)
  --private FILE     private JWK file (default: DIR/KID.private.jwk.json; never overwritten; mode 0600)
  --jwks FILE        public JWKS file (default: DIR/jwks.json; an existing set gets the key added)
  --bits N           RSA modulus length: 2048, 3072 or 4096 (default 2048)`;

/** `regate keys <subcommand>`. */
export async function runKeys(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === '--help' || sub === '-h') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  try {
    if (sub !== 'generate') throw new UsageError(`${sub === undefined ? 'a subcommand is required' : `unknown subcommand "${sub}"`}\n\n${USAGE}`);
    return await generate(rest);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`regate: ${err.message}\n`);
      return 2;
    }
    if (err instanceof KeysError) {
      process.stderr.write(`regate keys: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}

/** A refusal that is not a usage mistake (a file exists, a JWKS is not one). Exit 1. */
class KeysError extends Error {}

async function generate(argv: string[]): Promise<number> {
  const { values } = parse(
    argv,
    {
      alg: { type: 'string' },
      kid: { type: 'string' },
      'out-dir': { type: 'string' },
      private: { type: 'string' },
      jwks: { type: 'string' },
      bits: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    USAGE,
  );
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const alg = values.alg;
  if (!alg) throw new UsageError(`--alg is required\n\n${USAGE}`);
  const spec = ALGORITHMS[alg];
  if (!spec) throw new UsageError(`--alg must be one of ${Object.keys(ALGORITHMS).join(', ')}, got "${alg}" (HS* and none are refused: regate verifies with public keys only)`);
  const kid = values.kid;
  if (!kid) throw new UsageError(`--kid is required\n\n${USAGE}`);
  if (!/^[\x21-\x7e]{1,128}$/.test(kid)) throw new UsageError(`--kid must be 1 to 128 printable ASCII characters without spaces, got ${JSON.stringify(kid)}`);
  const bits = Number(values.bits ?? '2048');
  if (![2048, 3072, 4096].includes(bits)) throw new UsageError(`--bits must be 2048, 3072 or 4096, got "${values.bits}"`);
  if (values.bits !== undefined && spec.kty !== 'RSA') throw new UsageError(`--bits applies to RSA algorithms only, not ${alg}`);

  const dir = resolve(values['out-dir'] ?? '.');
  const privateFile = resolve(values.private ?? join(dir, `${kid.replace(/[^\w.-]/g, '_')}.private.jwk.json`));
  const jwksFile = resolve(values.jwks ?? join(dir, 'jwks.json'));

  const existing = await readJwks(jwksFile);
  if (existing.keys.some((k) => k.kid === kid)) throw new KeysError(`${jwksFile} already has a key with kid "${kid}": choose another --kid (a kid names one key)`);

  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true, ...spec.options(bits) });
  const meta = { kid, alg, use: 'sig' };
  const privateJwk: JWK = { ...(await exportJWK(privateKey)), ...meta };
  const publicJwk: JWK = { ...(await exportJWK(publicKey)), ...meta };

  // The private key first, exclusively: an existing file (someone's key) is never replaced.
  let handle;
  try {
    handle = await open(privateFile, 'wx', 0o600);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new KeysError(code === 'EEXIST' ? `${privateFile} exists; not overwriting a private key (remove it or pass --private)` : `cannot write ${privateFile}: ${(err as Error).message}`);
  }
  try {
    await handle.writeFile(`${JSON.stringify(privateJwk, null, 2)}\n`);
  } finally {
    await handle.close();
  }
  // The JWKS is replaced atomically: a regate watching it never reads half a file.
  const tmp = `${jwksFile}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify({ ...existing, keys: [...existing.keys, publicJwk] }, null, 2)}\n`);
  await rename(tmp, jwksFile);

  process.stdout.write(
    `private key: ${privateFile} (keep it secret; sign with it: regate token --config FILE --key ${privateFile})\n` +
      `public JWKS: ${jwksFile} (${existing.keys.length + 1} key${existing.keys.length === 0 ? '' : 's'}; point issuers[].jwks_file at it, with algorithms: [${alg}])\n`,
  );
  return 0;
}

/** The JWKS at `file`, or an empty one when there is no file. Refuses anything else. */
async function readJwks(file: string): Promise<{ keys: JWK[] } & Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      // A missing directory is a clearer error now than after generating.
      const isDir = await stat(dirname(file)).then((s) => s.isDirectory(), () => false);
      if (!isDir) throw new KeysError(`directory ${dirname(file)} does not exist`);
      return { keys: [] };
    }
    throw new KeysError(`cannot read ${file}: ${(err as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new KeysError(`${file} is not JSON (${(err as Error).message}); not adding a key to it`);
  }
  if (typeof doc !== 'object' || doc === null || !Array.isArray((doc as { keys?: unknown }).keys)) throw new KeysError(`${file} is not a JWKS ({"keys": [...]}); not adding a key to it`);
  const keys = (doc as { keys: JWK[] }).keys;
  if (keys.some((k) => typeof k === 'object' && k !== null && 'd' in k)) throw new KeysError(`${file} holds private key material; a JWKS for regate must be public keys only`);
  return doc as { keys: JWK[] } & Record<string, unknown>;
}
