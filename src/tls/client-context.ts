/**
 * TLS to an `https://` upstream (`upstreams.<id>.tls`): the connector undici's
 * pool opens connections with.
 *
 * - Verification is always on (`rejectUnauthorized: true`): chain against
 *   `ca_file` (else Node's bundled public CAs) and name against `servername`
 *   (else the URL's host). There is no option to turn it off.
 * - `servername` is forced for every connection: undici would otherwise take
 *   SNI from a request's Host header, and the name checked must be the
 *   configured one, whatever a request carries.
 * - Reload: the files are watched (src/tls/file-watch.ts); a changed set that
 *   builds a secure context replaces the connector, so *new* connections use
 *   it; pooled keep-alive connections finish their life on the old material
 *   (at most `pool.keepalive_timeout_ms` idle). A broken set is refused and
 *   reported, the previous connector stays.
 */

import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import type { buildConnector as Connector } from 'undici';
import { buildConnector } from '../upstream/undici.ts';
import type { UpstreamConfig, UpstreamTlsConfig } from '../config/types.ts';
import { PemFileWatcher, type PemFiles, type PemWatchTiming } from './file-watch.ts';
import { TlsMaterialError, type TlsReloadResult } from './server-context.ts';

/** What an upstream connector reports. */
export interface UpstreamTlsEvents {
  reloaded(result: TlsReloadResult, err?: Error): void;
}

/** An undici `connect` function whose TLS material can change under it. */
export interface UpstreamConnector {
  readonly connect: Connector.connector;
  /**
   * The TLS error behind a connection failure undici reports only as "other side
   * closed" (`UND_ERR_SOCKET`): under TLS 1.3 an upstream refuses regate's client
   * certificate with an alert *after* the handshake, which the socket sees as an
   * error (`ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED`) just before it closes.
   * Looked up by the failed socket's local port, for a moment after it closed.
   */
  tlsFailure(err: unknown): NodeJS.ErrnoException | undefined;
  /** Read the files now (tests). */
  check(): Promise<void>;
  stop(): void;
}

type Slot = 'ca_file' | 'cert_file' | 'key_file';

/** The configured files, in a fixed order. */
function filesOf(config: UpstreamTlsConfig): [Slot, string][] {
  const out: [Slot, string][] = [];
  if (config.ca_file !== undefined) out.push(['ca_file', config.ca_file]);
  if (config.cert_file !== undefined) out.push(['cert_file', config.cert_file]);
  if (config.key_file !== undefined) out.push(['key_file', config.key_file]);
  return out;
}

/**
 * Node TLS client options from the files' bytes, validated by building a secure context.
 * @throws TlsMaterialError naming the file at fault.
 */
export function upstreamTlsOptions(config: UpstreamTlsConfig, files: readonly (readonly [Slot, Buffer])[]): tls.ConnectionOptions {
  const get = (slot: Slot): Buffer | undefined => files.find(([s]) => s === slot)?.[1];
  const ca = get('ca_file');
  const cert = get('cert_file');
  const key = get('key_file');
  const pem = (buf: Buffer | undefined, re: RegExp, slot: Slot, what: string): void => {
    if (buf !== undefined && !re.test(buf.toString('latin1'))) throw new TlsMaterialError(slot, `${config[slot]} holds no PEM ${what}`);
  };
  pem(ca, /-----BEGIN [A-Z ]*CERTIFICATE-----/, 'ca_file', 'certificate');
  pem(cert, /-----BEGIN [A-Z ]*CERTIFICATE-----/, 'cert_file', 'certificate');
  pem(key, /-----BEGIN [A-Z ]*PRIVATE KEY-----/, 'key_file', 'private key');
  const options: tls.ConnectionOptions = {
    ...(ca !== undefined ? { ca } : {}),
    ...(cert !== undefined ? { cert } : {}),
    ...(key !== undefined ? { key } : {}),
    minVersion: config.min_version,
    rejectUnauthorized: true,
    ...(config.servername !== undefined ? { servername: config.servername } : {}),
  };
  try {
    tls.createSecureContext(options);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const mismatch = /KEY_VALUES_MISMATCH|key values mismatch/i.test(`${e.code ?? ''} ${e.message}`);
    throw new TlsMaterialError(mismatch ? 'key_file' : 'cert_file', mismatch ? `the private key ${config.key_file} does not match the certificate ${config.cert_file}` : `invalid certificate or key: ${e.message}`, { cause: err });
  }
  return options;
}

/**
 * Read the configured files synchronously (startup) and build their options.
 * @throws TlsMaterialError naming the file that cannot be read or used.
 */
export function readUpstreamTls(config: UpstreamTlsConfig): { options: tls.ConnectionOptions; files: Buffer[] } {
  const files = filesOf(config).map(([slot, file]) => {
    try {
      return [slot, readFileSync(file)] as const;
    } catch (err) {
      throw new TlsMaterialError(slot, `cannot read ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : (err as Error).message}`, { cause: err });
    }
  });
  return { options: upstreamTlsOptions(config, files), files: files.map(([, b]) => b) };
}

/**
 * The TLS client options of one upstream with `tls`, kept current: the files are read now
 * and watched; a changed set that builds a secure context replaces {@link UpstreamTlsSource.options}
 * (after `onChange` accepted it), a broken one is refused and reported. Shared by the undici
 * connector (HTTP/1.1 upstreams) and the HTTP/2 session pool (src/upstream/h2.ts).
 */
export interface UpstreamTlsSource {
  /** The options new connections use now (verification always on). */
  readonly options: tls.ConnectionOptions;
  /** Read the files now (tests). */
  check(): Promise<void>;
  stop(): void;
}

/**
 * Read and watch one upstream's TLS files.
 * @throws TlsMaterialError for files that cannot be read or used.
 */
export function watchUpstreamTls(upstream: UpstreamConfig, events: UpstreamTlsEvents, timing?: PemWatchTiming, onChange?: (options: tls.ConnectionOptions) => void): UpstreamTlsSource {
  const config = upstream.tls;
  if (config === undefined) throw new TypeError(`upstream ${upstream.id} has no tls settings`);
  const initial = readUpstreamTls(config);
  let current = initial.options;
  const slots = filesOf(config);
  const watcher = new PemFileWatcher(
    slots.map(([, f]) => f),
    initial.files,
    (bytes: PemFiles) => {
      let next: tls.ConnectionOptions;
      try {
        next = upstreamTlsOptions(config, slots.map(([slot], i) => [slot, bytes[i]!] as const));
        onChange?.(next);
      } catch (err) {
        events.reloaded('failure', err as Error);
        return;
      }
      current = next;
      events.reloaded('success');
    },
    (err) => events.reloaded('failure', err),
    timing,
  );
  if (slots.length > 0) watcher.start();
  return {
    get options() {
      return current;
    },
    check: () => watcher.check(),
    stop: () => watcher.stop(),
  };
}

/**
 * The connector for one upstream with `tls`. Reads its files now.
 * @throws TlsMaterialError for files that cannot be read or used.
 */
export function createUpstreamConnector(upstream: UpstreamConfig, events: UpstreamTlsEvents, timing?: PemWatchTiming): UpstreamConnector {
  const build = (options: tls.ConnectionOptions): Connector.connector =>
    buildConnector({ ...(options as Connector.BuildOptions), timeout: upstream.timeouts.connect_ms, allowH2: false });
  let current: Connector.connector | undefined;
  const source = watchUpstreamTls(upstream, events, timing, (options) => {
    current = build(options);
  });
  current = build(source.options);
  const config = upstream.tls!;
  const forced = config.servername;
  const failures = new Map<number, NodeJS.ErrnoException>();
  const connect: Connector.connector = (options, callback) =>
    current!(forced === undefined ? options : { ...options, servername: forced }, (err, socket) => {
      if (err === null && socket !== null) {
        socket.on('error', (e: NodeJS.ErrnoException) => {
          const port = socket.localPort;
          if (port === undefined || typeof e.code !== 'string' || !e.code.startsWith('ERR_SSL_')) return;
          failures.set(port, e);
          // Long enough for undici to fail the request on this socket's close, short enough not to leak.
          socket.once('close', () => setTimeout(() => failures.delete(port), 1_000).unref());
        });
      }
      callback(err, socket as never);
    });
  return {
    connect,
    tlsFailure(err) {
      const port = (err as { socket?: { localPort?: unknown } } | null)?.socket?.localPort;
      return typeof port === 'number' ? failures.get(port) : undefined;
    },
    check: () => source.check(),
    stop: () => source.stop(),
  };
}
