/**
 * TLS on a listener (`listen.proxy.tls`, `listen.authz.tls`): the node server
 * options built from the config, and certificate hot reload.
 *
 * {@link serverTlsOptions} returns plain `tls.TlsOptions`, so the same object
 * configures `https.createServer` (HTTP/1.1) or
 * `http2.createSecureServer({ allowHTTP1: true, ALPNProtocols: ['h2', 'http/1.1'], ...options })`.
 *
 * Decisions:
 *
 * - `client_auth: required` → `requestCert` + `rejectUnauthorized`: the
 *   handshake fails without a certificate that verifies against `ca_file`
 *   (an expired one included). `optional` → `requestCert` only: the socket's
 *   `authorized` says whether the certificate verified, and an unverified one
 *   is never used (src/tls/tls-info.ts).
 * - `ca_file` replaces the public CAs for client certificates: a client
 *   certificate from any public CA must not count.
 * - TLS 1.0/1.1 are never offered; `min_version` raises the floor to 1.3.
 * - Renegotiation is refused on every connection ({@link refuseRenegotiation}):
 *   the peer certificate a request was judged on cannot change under it.
 * - Reload ({@link ListenerTlsReloader}): a changed set of files is turned
 *   into a secure context first; only one that builds (readable PEM, key
 *   matching the certificate) replaces the old one (`server.setSecureContext`,
 *   which leaves established connections alone). A broken set is logged and
 *   counted, and the old context keeps serving.
 */

import { readFileSync } from 'node:fs';
import tls, { type SecureContextOptions, type TLSSocket, type TlsOptions } from 'node:tls';
import type { ListenerTlsConfig } from '../config/types.ts';
import { PemFileWatcher, type PemFiles, type PemWatchTiming } from './file-watch.ts';

/** The PEM bytes a listener's TLS is built from. */
export interface ListenerTlsMaterial {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly ca?: Buffer;
}

/** Why a set of files cannot serve TLS: which file, and what is wrong. */
export class TlsMaterialError extends Error {
  /** The config key of the file at fault: `cert_file`, `key_file`, `ca_file`, or '' for the pair. */
  readonly key: string;
  constructor(key: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'TlsMaterialError';
    this.key = key;
  }
}

/** The files of a listener's TLS, in the order {@link PemFileWatcher} reads them. */
export function listenerTlsFiles(config: ListenerTlsConfig): string[] {
  return [config.cert_file, config.key_file, ...(config.ca_file !== undefined ? [config.ca_file] : [])];
}

/**
 * Read the listener's files (startup: synchronously, before listening).
 * @throws TlsMaterialError naming the file that cannot be read.
 */
export function readListenerTls(config: ListenerTlsConfig): ListenerTlsMaterial {
  const read = (key: string, file: string): Buffer => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new TlsMaterialError(key, `cannot read ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : (err as Error).message}`, { cause: err });
    }
  };
  return {
    cert: read('cert_file', config.cert_file),
    key: read('key_file', config.key_file),
    ...(config.ca_file !== undefined ? { ca: read('ca_file', config.ca_file) } : {}),
  };
}

/**
 * The secure-context part of the options: certificate, key, client CAs,
 * version floor. Validated by building a context: what this returns, node accepts.
 * @throws TlsMaterialError for PEM that does not parse or a key that does not match the certificate.
 */
export function secureContextOptions(config: ListenerTlsConfig, material: ListenerTlsMaterial): SecureContextOptions {
  const options: SecureContextOptions = {
    cert: material.cert,
    key: material.key,
    ...(material.ca !== undefined ? { ca: material.ca } : {}),
    minVersion: config.min_version,
  };
  if (!/-----BEGIN [A-Z ]*CERTIFICATE-----/.test(material.cert.toString('latin1'))) throw new TlsMaterialError('cert_file', `${config.cert_file} holds no PEM certificate`);
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(material.key.toString('latin1'))) throw new TlsMaterialError('key_file', `${config.key_file} holds no PEM private key`);
  if (material.ca !== undefined && !/-----BEGIN [A-Z ]*CERTIFICATE-----/.test(material.ca.toString('latin1'))) {
    throw new TlsMaterialError('ca_file', `${config.ca_file} holds no PEM certificate`);
  }
  try {
    tls.createSecureContext(options);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const mismatch = /KEY_VALUES_MISMATCH|key values mismatch/i.test(`${e.code ?? ''} ${e.message}`);
    throw new TlsMaterialError(mismatch ? '' : 'cert_file', mismatch ? `the private key ${config.key_file} does not match the certificate ${config.cert_file}` : `invalid certificate or key: ${e.message}`, { cause: err });
  }
  return options;
}

/**
 * Everything a TLS server needs from `config`: the secure context options
 * plus client-certificate handling. Spread into `https.createServer` or
 * `http2.createSecureServer`. Builds a context once to validate.
 * @throws TlsMaterialError for material node refuses.
 */
export function serverTlsOptions(config: ListenerTlsConfig, material: ListenerTlsMaterial): TlsOptions {
  const asks = config.client_auth !== 'none';
  return {
    ...secureContextOptions(config, material),
    requestCert: asks,
    rejectUnauthorized: config.client_auth === 'required',
    // Bounds a slow or stalled handshake (node's default is 120 s).
    handshakeTimeout: 10_000,
  };
}

/** Refuse TLS renegotiation on a freshly accepted connection (wire to the server's `secureConnection`). */
export function refuseRenegotiation(socket: TLSSocket): void {
  socket.disableRenegotiation();
}

/** How a reload attempt ended (`regate_tls_reloads_total{result}`). */
export type TlsReloadResult = 'success' | 'failure';

/** What {@link ListenerTlsReloader} reports. */
export interface TlsReloadEvents {
  reloaded(result: TlsReloadResult, err?: Error): void;
}

/** What a TLS server offers for reload: node's `tls.Server` (https, http2 secure). */
export interface SecureContextTarget {
  setSecureContext(options: SecureContextOptions): void;
}

/**
 * Watches a listener's files and swaps a server's secure context when they
 * change to a valid set. New handshakes use the new certificate; connections
 * already established keep theirs.
 */
export class ListenerTlsReloader {
  readonly #watcher: PemFileWatcher;

  constructor(server: SecureContextTarget, config: ListenerTlsConfig, initial: ListenerTlsMaterial, events: TlsReloadEvents, timing?: PemWatchTiming) {
    const onChange = (files: PemFiles): void => {
      const material: ListenerTlsMaterial = { cert: files[0]!, key: files[1]!, ...(files[2] !== undefined ? { ca: files[2] } : {}) };
      let options: SecureContextOptions;
      try {
        options = secureContextOptions(config, material);
      } catch (err) {
        events.reloaded('failure', err as Error);
        return;
      }
      try {
        server.setSecureContext(options);
      } catch (err) {
        events.reloaded('failure', err as Error);
        return;
      }
      events.reloaded('success');
    };
    const initialFiles = [initial.cert, initial.key, ...(initial.ca !== undefined ? [initial.ca] : [])];
    this.#watcher = new PemFileWatcher(listenerTlsFiles(config), initialFiles, onChange, (err) => events.reloaded('failure', err), timing);
  }

  start(): void {
    this.#watcher.start();
  }

  /** Read the files now (tests). */
  check(): Promise<void> {
    return this.#watcher.check();
  }

  stop(): void {
    this.#watcher.stop();
  }
}
