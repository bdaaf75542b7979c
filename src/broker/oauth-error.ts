/**
 * OAuth 2.0 error responses of the token endpoint (RFC 6749 §5.2, RFC 8693
 * §2.2.2): `{error, error_description}` as JSON, never a problem document the
 * OAuth client cannot read. `reason` is regate's stable snake_case reason
 * (metric label, decision-log field); `error` is the protocol's code.
 */

/** Error codes the endpoint answers with. */
export type OAuthErrorCode =
  | 'invalid_request'
  | 'invalid_client'
  | 'invalid_grant'
  | 'unauthorized_client'
  | 'unsupported_grant_type'
  | 'invalid_scope'
  | 'invalid_target'
  | 'temporarily_unavailable'
  | 'server_error';

/** Policy-chosen error codes on a deny (`error` in the broker result). */
export const POLICY_ERROR_CODES: ReadonlySet<string> = new Set(['invalid_grant', 'invalid_scope', 'invalid_target', 'unauthorized_client']);

export class OAuthError extends Error {
  readonly error: OAuthErrorCode;
  readonly status: 400 | 401 | 405 | 413 | 415 | 500 | 503;
  readonly reason: string;
  constructor(error: OAuthErrorCode, reason: string, description: string, status?: OAuthError['status'], options?: ErrorOptions) {
    super(description, options);
    this.name = 'OAuthError';
    this.error = error;
    this.reason = reason;
    this.status = status ?? (error === 'invalid_client' ? 401 : error === 'temporarily_unavailable' ? 503 : error === 'server_error' ? 500 : 400);
  }

  /** The response body. */
  body(): string {
    return JSON.stringify({ error: this.error, error_description: this.message });
  }
}
