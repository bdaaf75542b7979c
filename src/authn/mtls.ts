/**
 * `auth: mtls`: the client certificate the TLS handshake verified is the
 * caller's identity; no token is read.
 *
 * - `sub` is the certificate's SPIFFE ID (an X.509-SVID: exactly one URI
 *   SAN, `spiffe://…`), else its subject CN. A certificate with a `spiffe:`
 *   URI SAN that is no SVID (several URI SANs, a malformed ID) is refused
 *   rather than identified by its CN: it claims a SPIFFE identity regate
 *   cannot read unambiguously.
 * - `iss` is the certificate's issuer DN (RFC 4514), `issuerId` is `mtls`
 *   (decision log `custom.authn.issuer`).
 * - roles, groups, scopes and tenant are empty and `input.token` is `{}`:
 *   what the certificate says is in `input.request.tls.client_cert`.
 * - `exp` is the certificate's `not_after`.
 *
 * One identity per connection (the certificate cannot change on it), so the
 * identity-header values computed per identity (src/runtime.ts) are computed
 * once per connection too.
 */

import { AuthnError } from '../errors.ts';
import type { ConnectionTls } from '../tls/tls-info.ts';
import type { Identity } from './types.ts';

/** `Identity.issuerId` of a certificate identity. */
export const MTLS_ISSUER_ID = 'mtls';

const NONE: readonly string[] = Object.freeze([]);
const NO_CLAIMS: Readonly<Record<string, unknown>> = Object.freeze({});
const identities = new WeakMap<ConnectionTls, Identity>();

/**
 * The identity of a verified client certificate.
 * @throws AuthnError `client_cert_required` without a verified certificate (plaintext,
 *   `client_auth: optional` with none or an unverified one, the authz listener), or
 *   `client_cert_invalid` for one that names nobody unambiguously.
 */
export function certificateIdentity(tls: ConnectionTls | undefined): Identity {
  const cert = tls?.input.client_cert;
  const hints = tls?.identity;
  if (tls === undefined || cert === undefined || hints === undefined) throw new AuthnError('client_cert_required', 'this route needs a verified TLS client certificate');
  let identity = identities.get(tls);
  if (identity !== undefined) return identity;
  if (hints.spiffeAmbiguous) throw new AuthnError('client_cert_invalid', 'the client certificate has a spiffe URI SAN but is not an X.509-SVID (exactly one URI SAN, a valid SPIFFE ID)');
  const sub = cert.spiffe_id ?? hints.commonName;
  if (sub === '') throw new AuthnError('client_cert_invalid', 'the client certificate has neither a SPIFFE ID nor a subject CN');
  identity = Object.freeze({
    sub,
    iss: cert.issuer,
    issuerId: MTLS_ISSUER_ID,
    roles: NONE,
    groups: NONE,
    scopes: NONE,
    tenant: '',
    claims: NO_CLAIMS,
    exp: hints.notAfterS,
  });
  identities.set(tls, identity);
  return identity;
}
