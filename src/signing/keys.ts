/**
 * The broker's signing keys (`broker.signing_keys`): private key files → one
 * active signing key and the public JWKS of every listed key.
 *
 * Rotation without downtime (README "Token exchange broker"): a `next` key is
 * published before it signs, so verifiers have it cached by the time a reload
 * makes it `active`; a `retired` key no longer signs but stays published until
 * the operator removes it (at least `max_ttl_s` after it stopped signing).
 *
 * Files are re-read when their size or mtime changes (checked every
 * {@link KEY_POLL_MS}); a file that no longer reads, or now holds another kind
 * of key, keeps its previous key and is reported: a bad write never takes the
 * broker down.
 */

import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { calculateJwkThumbprint, type JWK } from 'jose';
import type { SigningKeyConfig } from '../config/types.ts';

/** How often key files are checked for changes. */
export const KEY_POLL_MS = 2000;

/** JWS algorithms regate signs with. */
export type SigningAlgorithm = 'ES256' | 'EdDSA';

export interface SigningKey {
  readonly kid: string;
  readonly alg: SigningAlgorithm;
  readonly use: SigningKeyConfig['use'];
  readonly privateKey: KeyObject;
  /** Public JWK with `kid`, `alg`, `use: sig`. */
  readonly publicJwk: JWK;
}

/** A key file that cannot be used: its path and why. */
export class SigningKeyError extends Error {
  readonly file: string;
  readonly index: number;
  constructor(file: string, index: number, message: string, options?: ErrorOptions) {
    super(`${file}: ${message}`, options);
    this.name = 'SigningKeyError';
    this.file = file;
    this.index = index;
  }
}

/** Read one private key file: JWK JSON (with `d`) or PKCS#8 PEM; P-256 or Ed25519. */
export async function readSigningKey(file: string, use: SigningKeyConfig['use'], index = 0): Promise<SigningKey> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new SigningKeyError(file, index, `cannot read: ${(err as Error).message}`, { cause: err });
  }
  let privateKey: KeyObject;
  let declaredKid: string | undefined;
  try {
    const trimmed = text.trim();
    if (trimmed.startsWith('{')) {
      const jwk = JSON.parse(trimmed) as JWK;
      if (typeof jwk.d !== 'string') throw new Error('the JWK has no private part ("d")');
      declaredKid = typeof jwk.kid === 'string' && jwk.kid !== '' ? jwk.kid : undefined;
      privateKey = createPrivateKey({ key: jwk as never, format: 'jwk' });
    } else {
      privateKey = createPrivateKey({ key: trimmed, format: 'pem' });
    }
  } catch (err) {
    throw new SigningKeyError(file, index, `not a private JWK or PKCS#8 PEM key: ${(err as Error).message}`, { cause: err });
  }
  const alg = algorithmOf(privateKey);
  if (alg === undefined) {
    throw new SigningKeyError(file, index, `unsupported key type ${privateKey.asymmetricKeyType}${privateKey.asymmetricKeyDetails?.namedCurve ? ` (${privateKey.asymmetricKeyDetails.namedCurve})` : ''}: use P-256 (ES256) or Ed25519 (EdDSA)`);
  }
  const pub = createPublicKey(privateKey).export({ format: 'jwk' }) as JWK;
  const kid = declaredKid ?? (await calculateJwkThumbprint(pub, 'sha256'));
  const publicJwk: JWK = Object.freeze({ ...pub, kid, alg, use: 'sig' });
  return Object.freeze({ kid, alg, use, privateKey, publicJwk });
}

function algorithmOf(key: KeyObject): SigningAlgorithm | undefined {
  if (key.asymmetricKeyType === 'ed25519') return 'EdDSA';
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ES256';
  return undefined;
}

export interface KeyRingEvents {
  /** A key file changed and was read again (`ok`), or was refused and its previous key kept. */
  reloaded?(file: string, result: 'success' | 'error', err?: Error): void;
}

/**
 * The loaded key set. `active()` signs; `jwks()` is what `/.well-known/jwks.json`
 * serves. Reads are of an immutable snapshot swapped whole on a file change.
 */
export class KeyRing {
  #keys: readonly SigningKey[];
  #jwks: string;
  readonly #configs: readonly SigningKeyConfig[];
  readonly #stamps: string[];
  readonly #timer: NodeJS.Timeout | null;
  readonly #events: KeyRingEvents;

  private constructor(configs: readonly SigningKeyConfig[], keys: readonly SigningKey[], events: KeyRingEvents, poll: boolean) {
    this.#configs = configs;
    this.#keys = keys;
    this.#jwks = jwksText(keys);
    this.#events = events;
    this.#stamps = configs.map((c) => stampOf(c.file));
    this.#timer = poll ? setInterval(() => void this.refresh(), KEY_POLL_MS) : null;
    this.#timer?.unref();
  }

  /** Load every key (startup / reload); throws SigningKeyError for the first unusable file. */
  static async load(configs: readonly SigningKeyConfig[], events: KeyRingEvents = {}, options: { readonly poll?: boolean } = {}): Promise<KeyRing> {
    const keys = await Promise.all(configs.map((c, i) => readSigningKey(c.file, c.use, i)));
    const kids = new Set<string>();
    keys.forEach((k, i) => {
      if (kids.has(k.kid)) throw new SigningKeyError(configs[i]!.file, i, `kid "${k.kid}" is used by another signing key`);
      kids.add(k.kid);
    });
    return new KeyRing(configs, keys, events, options.poll ?? true);
  }

  /** The key that signs now. */
  active(): SigningKey {
    return this.#keys.find((k) => k.use === 'active')!;
  }

  /** Every published key, as the JWKS document's text. */
  jwks(): string {
    return this.#jwks;
  }

  /** Re-read files whose size or mtime changed. Never rejects. */
  async refresh(): Promise<void> {
    for (let i = 0; i < this.#configs.length; i++) {
      const config = this.#configs[i]!;
      const stamp = stampOf(config.file);
      if (stamp === this.#stamps[i]) continue;
      this.#stamps[i] = stamp;
      try {
        const key = await readSigningKey(config.file, config.use, i);
        const prev = this.#keys[i]!;
        if (key.alg !== prev.alg && prev.use === 'active') throw new SigningKeyError(config.file, i, `the active key changed algorithm (${prev.alg} → ${key.alg}): reload the config to change it`);
        if (this.#keys.some((k, j) => j !== i && k.kid === key.kid)) throw new SigningKeyError(config.file, i, `kid "${key.kid}" is used by another signing key`);
        const keys = [...this.#keys];
        keys[i] = key;
        this.#keys = keys;
        this.#jwks = jwksText(keys);
        this.#events.reloaded?.(config.file, 'success');
      } catch (err) {
        this.#events.reloaded?.(config.file, 'error', err as Error);
      }
    }
  }

  close(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
  }
}

function stampOf(file: string): string {
  try {
    const s = statSync(file);
    return `${s.size}:${s.mtimeMs}:${s.ino}`;
  } catch {
    return 'missing';
  }
}

function jwksText(keys: readonly SigningKey[]): string {
  return JSON.stringify({ keys: keys.map((k) => k.publicJwk) });
}
