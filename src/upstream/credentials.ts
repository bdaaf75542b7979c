/**
 * Credential injection (`upstreams.<id>.credentials`, issue 15): secrets regate
 * holds for an upstream and adds to allowed requests, so the caller never sees
 * them.
 *
 * A credential's value is read from a file (a Kubernetes Secret volume, a Vault
 * Agent sink) and re-read when it changes (src/tls/file-watch.ts: directory
 * watch, so the `..data` symlink swap is seen, plus a periodic re-read). A
 * changed file that holds no valid value (empty, a control character) is
 * refused: the previous value stays in use, counted and logged.
 *
 * The value never leaves this module except as the header field on the
 * upstream request (or the authz OK answer that tells a front proxy to set it):
 * a {@link Credential} serializes to its name only (`toJSON`, `util.inspect`),
 * error messages never quote file content.
 */

import { readFileSync } from 'node:fs';
import { inspect } from 'node:util';
import type { UpstreamCredentialConfig } from '../config/types.ts';
import { PemFileWatcher, type PemWatchTiming } from '../tls/file-watch.ts';

/** Values of `regate_credential_reloads_total{result}`. */
export const CREDENTIAL_RELOAD_RESULTS = ['success', 'failure'] as const;
export type CredentialReloadResult = (typeof CREDENTIAL_RELOAD_RESULTS)[number];

/** Credential names: lower-case identifiers (`routes[].credentials`, the decision's `credentials`). */
export const CREDENTIAL_NAME = /^[a-z][a-z0-9_]{0,62}$/;

/** Visible ASCII, SP and HTAB only: what every HTTP implementation on the way passes unchanged. */
const VALUE_CHARS = /^[\t\x20-\x7e]+$/;

/**
 * Why a credential file's bytes cannot be a header value, or undefined when
 * they can. Never quotes the content: it is a secret.
 */
export function credentialFileProblem(bytes: Buffer): string | undefined {
  const parsed = parseSecret(bytes);
  return typeof parsed === 'string' ? undefined : parsed.problem;
}

/**
 * The secret in a credential file: the content with trailing line breaks
 * removed (`echo` and most secret writers end the file with one). Anything
 * else that an HTTP hop could alter or refuse is an error: CR, LF or NUL
 * inside, other control characters, non-ASCII bytes, leading or trailing
 * whitespace (parsers strip it, so the upstream would see another value).
 */
export function parseSecret(bytes: Buffer): string | { problem: string } {
  let end = bytes.length;
  while (end > 0 && (bytes[end - 1] === 0x0a || bytes[end - 1] === 0x0d)) end--;
  if (end === 0) return { problem: 'the file is empty (a credential needs a value)' };
  const text = bytes.toString('latin1', 0, end);
  if (/[\r\n]/.test(text)) return { problem: 'the value has a line break inside (only a trailing newline is removed)' };
  if (text.includes('\0')) return { problem: 'the value has a NUL byte' };
  if (!VALUE_CHARS.test(text)) return { problem: 'the value has a control character or a byte outside visible ASCII' };
  if (/^[\t ]|[\t ]$/.test(text)) return { problem: 'the value starts or ends with whitespace' };
  return text;
}

/** The field value sent: `<scheme> <secret>`, or the secret alone without a scheme. */
export function fieldValue(scheme: string | undefined, secret: string): string {
  return scheme === undefined ? secret : `${scheme} ${secret}`;
}

/** Where a credential's current secret comes from: a watched file, shared across runtime versions. */
export interface SecretSource {
  /** The secret last read successfully. */
  readonly secret: string;
}

/**
 * One credential of one upstream as a route injects it. Holds no value of its
 * own: `value` reads the source's current secret, so a rotated file is used
 * from the next request on, by every runtime version sharing the source.
 */
export class Credential {
  readonly upstream: string;
  readonly name: string;
  /** Lower-case header name. */
  readonly header: string;
  readonly #scheme: string | undefined;
  readonly #source: SecretSource;
  #seen = '';
  #value = '';

  constructor(upstream: string, name: string, config: UpstreamCredentialConfig, source: SecretSource) {
    this.upstream = upstream;
    this.name = name;
    this.header = config.header.toLowerCase();
    this.#scheme = config.scheme;
    this.#source = source;
  }

  /** The header field value to send now. */
  get value(): string {
    const secret = this.#source.secret;
    if (secret !== this.#seen) {
      this.#seen = secret;
      this.#value = fieldValue(this.#scheme, secret);
    }
    return this.#value;
  }

  /** Logs and JSON carry the name only. */
  toJSON(): { credential: string } {
    return { credential: this.name };
  }

  [inspect.custom](): string {
    return `Credential(${this.upstream}.${this.name})`;
  }
}

/** What a watched credential file reports. */
export interface CredentialEvents {
  reloaded(upstream: string, name: string, result: CredentialReloadResult, problem?: string): void;
}

/**
 * A credential file read at startup and watched. A read failure or invalid
 * content on a change keeps the previous secret.
 */
export class CredentialFile implements SecretSource {
  readonly path: string;
  #secret: string;
  readonly #watcher: PemFileWatcher | null;

  /**
   * Reads `path` now. `watch: false` (offline: `regate check` / `eval`) reads once.
   * @throws CredentialFileError when the file cannot be read or holds no valid value.
   */
  constructor(upstream: string, name: string, path: string, events: CredentialEvents, options: { readonly watch: boolean; readonly timing?: PemWatchTiming }) {
    this.path = path;
    let bytes: Buffer;
    try {
      bytes = readFileSync(path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new CredentialFileError(`cannot read ${path}: ${code === 'ENOENT' ? 'file not found' : (err as Error).message}`, { cause: err });
    }
    const parsed = parseSecret(bytes);
    if (typeof parsed !== 'string') throw new CredentialFileError(`${path}: ${parsed.problem}`);
    this.#secret = parsed;
    if (!options.watch) {
      this.#watcher = null;
      return;
    }
    this.#watcher = new PemFileWatcher(
      [path],
      [bytes],
      ([next]) => {
        const value = parseSecret(next!);
        if (typeof value !== 'string') {
          events.reloaded(upstream, name, 'failure', value.problem);
          return;
        }
        this.#secret = value;
        events.reloaded(upstream, name, 'success');
      },
      (err) => events.reloaded(upstream, name, 'failure', `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? err.message}`),
      options.timing,
    );
    this.#watcher.start();
  }

  get secret(): string {
    return this.#secret;
  }

  /** Read the file now (tests). */
  check(): Promise<void> {
    return this.#watcher?.check() ?? Promise.resolve();
  }

  stop(): void {
    this.#watcher?.stop();
  }

  [inspect.custom](): string {
    return `CredentialFile(${this.path})`;
  }

  toJSON(): { path: string } {
    return { path: this.path };
  }
}

/** A credential file that cannot be used: missing, unreadable, or no valid value. The message never quotes the content. */
export class CredentialFileError extends Error {
  override readonly name = 'CredentialFileError';
}
