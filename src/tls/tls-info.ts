/**
 * What a TLS connection tells the policy: `input.request.tls`.
 *
 * Built once per connection from the `TLSSocket` (HTTP/1.1: `req.socket`;
 * HTTP/2: the session's socket) and cached on it: a connection's protocol,
 * cipher and peer certificate cannot change after the handshake, because
 * regate refuses renegotiation (src/tls/server-context.ts).
 *
 * `client_cert` is present only for a certificate the handshake *verified*
 * against the listener's `ca_file` (`socket.authorized`). With
 * `client_auth: optional`, an absent, expired or unknown-CA certificate
 * leaves it absent: an unverified certificate never counts.
 *
 * Formats:
 *
 * - `subject`, `issuer`: RFC 4514 strings (most specific RDN first, e.g.
 *   `CN=agent-a,OU=agents,O=regate test`), the form Envoy's
 *   `x-forwarded-client-cert` and Istio use; special characters escaped by OpenSSL.
 * - `sans`: `{dns, uri, email, ip}`, each a list in certificate order (empty when none).
 * - `spiffe_id`: the certificate's URI SAN when it is an X.509-SVID: exactly
 *   one URI SAN, and it is a `spiffe://` ID (SPIFFE X.509-SVID §2). Absent otherwise.
 * - `fingerprint_sha256`: lower-case hex of SHA-256 over the DER certificate, no colons.
 * - `not_after`: RFC 3339 UTC, e.g. `2126-11-08T07:53:17Z`.
 */

import { createHash, type X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';

/** `input.request.tls.client_cert`. */
export interface ClientCertInfo {
  readonly subject: string;
  readonly issuer: string;
  readonly sans: {
    readonly dns: readonly string[];
    readonly uri: readonly string[];
    readonly email: readonly string[];
    readonly ip: readonly string[];
  };
  /** Present only for an X.509-SVID (one URI SAN, `spiffe://`). */
  readonly spiffe_id?: string;
  readonly fingerprint_sha256: string;
  readonly not_after: string;
}

/** What `auth: mtls` needs from a verified certificate besides {@link ClientCertInfo} (not part of the input). */
export interface ClientCertIdentity {
  /** The subject's CN (the last, most specific one when several), '' when none. */
  readonly commonName: string;
  /** A URI SAN has the `spiffe` scheme but the certificate is no SVID (several URI SANs, malformed ID). */
  readonly spiffeAmbiguous: boolean;
  /** `not_after` in seconds since the epoch. */
  readonly notAfterS: number;
}

/** One TLS connection as the pipeline sees it: computed once, frozen. */
export interface ConnectionTls {
  /** Exactly `input.request.tls`. */
  readonly input: TlsInfo;
  /** Present with `input.client_cert`. */
  readonly identity?: ClientCertIdentity;
}

/** `input.request.tls`. */
export interface TlsInfo {
  /** Negotiated protocol: `TLSv1.2` or `TLSv1.3`. */
  readonly version: string;
  /** IANA cipher suite name, e.g. `TLS_AES_128_GCM_SHA256`. */
  readonly cipher: string;
  /** The verified client certificate; absent when none was sent or it did not verify. */
  readonly client_cert?: ClientCertInfo;
}

const cache = new WeakMap<TLSSocket, ConnectionTls>();

/**
 * The connection's TLS facts, computed at the first request on it and shared
 * by every later one (HTTP/1.1 keep-alive, HTTP/2 streams of one session).
 */
export function connectionTls(socket: TLSSocket): ConnectionTls {
  let info = cache.get(socket);
  if (info === undefined) {
    info = buildConnectionTls(socket);
    cache.set(socket, info);
  }
  return info;
}

function buildConnectionTls(socket: TLSSocket): ConnectionTls {
  const version = socket.getProtocol() ?? '';
  const c = socket.getCipher() as { standardName?: string; name?: string } | undefined;
  const cipher = c?.standardName ?? c?.name ?? '';
  // Verified, or nothing: `authorized` is false for a missing, expired or unknown-CA certificate.
  const peer = socket.authorized ? socket.getPeerX509Certificate() : undefined;
  if (peer === undefined) return Object.freeze({ input: Object.freeze({ version, cipher }) });
  const { cert, identity } = describeCertificate(peer);
  return Object.freeze({ input: Object.freeze({ version, cipher, client_cert: cert }), identity });
}

/** The documented fields of a certificate and its identity hints (exported for tests and other front ends). */
export function describeCertificate(cert: X509Certificate): { cert: ClientCertInfo; identity: ClientCertIdentity } {
  const sans = parseSubjectAltName(cert.subjectAltName ?? '');
  const spiffeUris = sans.uri.filter((u) => /^spiffe:/i.test(u));
  const svid = sans.uri.length === 1 && spiffeUris.length === 1 && SPIFFE_ID.test(spiffeUris[0]!);
  const subjectLines = nameLines(cert.subject);
  const cn = subjectLines.filter((l) => l.startsWith('CN=')).pop();
  const notAfter = notAfterOf(cert);
  const info: ClientCertInfo = Object.freeze({
    subject: rfc4514(subjectLines),
    issuer: rfc4514(nameLines(cert.issuer)),
    sans: Object.freeze({ dns: Object.freeze(sans.dns), uri: Object.freeze(sans.uri), email: Object.freeze(sans.email), ip: Object.freeze(sans.ip) }),
    ...(svid ? { spiffe_id: spiffeUris[0]! } : {}),
    fingerprint_sha256: createHash('sha256').update(cert.raw).digest('hex'),
    not_after: Number.isNaN(notAfter.getTime()) ? '' : notAfter.toISOString().replace(/\.000Z$/, 'Z'),
  });
  return {
    cert: info,
    identity: Object.freeze({ commonName: cn === undefined ? '' : cn.slice(3), spiffeAmbiguous: spiffeUris.length > 0 && !svid, notAfterS: Math.floor(notAfter.getTime() / 1000) }),
  };
}

/**
 * SPIFFE ID (SPIFFE-ID §2): `spiffe://` + a trust domain of lower-case letters,
 * digits, `.`, `-`, `_`, then an optional path of non-empty segments of
 * letters, digits, `.`, `-`, `_` (not `.` or `..`); no query, fragment, port or user info.
 */
const SPIFFE_ID = /^spiffe:\/\/[a-z0-9._-]+(?:\/(?!\.\.?(?:\/|$))[A-Za-z0-9._-]+)*$/;

/**
 * Node prints a distinguished name one RDN per line, most significant first,
 * values escaped per RFC 2253 (`,` `+` `"` `\` `<` `>` `;` and control
 * characters), so a value can never forge a line or a separator.
 */
function nameLines(name: string | undefined): string[] {
  return name === undefined || name === '' ? [] : name.split('\n').filter((l) => l !== '');
}

/** RFC 4514 order: the most specific RDN first. */
function rfc4514(lines: readonly string[]): string {
  return [...lines].reverse().join(',');
}

function notAfterOf(cert: X509Certificate): Date {
  // `validToDate` is Node >= 22.10; `validTo` is OpenSSL's `Nov  8 07:53:17 2126 GMT`, which Date parses.
  return (cert as X509Certificate & { validToDate?: Date }).validToDate ?? new Date(cert.validTo);
}

/**
 * Node's `subjectAltName`: `DNS:a, URI:b, IP Address:1.2.3.4, email:c`, where
 * a value that contains `,`, `"`, `\` or a non-printable character is written
 * as a JSON string (`DNS:"a, b"`) so entries can be split without ambiguity
 * (node's CVE-2021-44532 fix). Other types (othername, DirName) are ignored.
 */
export function parseSubjectAltName(text: string): { dns: string[]; uri: string[]; email: string[]; ip: string[] } {
  const out = { dns: [] as string[], uri: [] as string[], email: [] as string[], ip: [] as string[] };
  let i = 0;
  while (i < text.length) {
    const colon = text.indexOf(':', i);
    if (colon === -1) break;
    const type = text.slice(i, colon);
    let j = colon + 1;
    let value: string;
    if (text[j] === '"') {
      // A JSON string: find its closing quote (skipping escapes).
      let k = j + 1;
      while (k < text.length && text[k] !== '"') k += text[k] === '\\' ? 2 : 1;
      try {
        value = JSON.parse(text.slice(j, k + 1)) as string;
      } catch {
        value = '';
      }
      j = k + 1;
    } else {
      const end = text.indexOf(', ', j);
      value = text.slice(j, end === -1 ? text.length : end);
      j = end === -1 ? text.length : end;
    }
    switch (type) {
      case 'DNS':
        out.dns.push(value);
        break;
      case 'URI':
        out.uri.push(value);
        break;
      case 'email':
        out.email.push(value);
        break;
      case 'IP Address':
        out.ip.push(value);
        break;
      default:
        break;
    }
    // Skip the `, ` separator.
    i = text.startsWith(', ', j) ? j + 2 : j + 1;
  }
  return out;
}
