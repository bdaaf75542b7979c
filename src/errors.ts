/**
 * The error taxonomy.
 *
 * A deny is a normal outcome, not an exception. Everything that stops a
 * request *before* a policy decision — or that breaks the decision itself —
 * is a {@link RegateError} with:
 *
 * - `code`:   a stable, documented identifier (`REGATE_ERR_*`), never reworded;
 * - `status`: the HTTP status the client receives;
 * - `reason`: a snake_case reason used as a metric label and a log field.
 *
 * Dependency errors (jose, undici, opa-wasm) are translated at the stage
 * boundary and kept as `cause`. Caller mistakes in our own code (a bug, a
 * wrong argument) stay plain `TypeError`s; they surface as 500 and are never
 * confused with untrusted-input failures. Modelled on jose's `src/util/errors.ts`
 * and fastify's `lib/errors.js`.
 */

export type ProblemStatus = 400 | 401 | 403 | 404 | 405 | 408 | 411 | 413 | 414 | 415 | 426 | 431 | 500 | 502 | 503 | 504;

export interface RegateErrorOptions {
  cause?: unknown;
  /** Extra, safe-to-log detail (never secrets, never raw tokens). */
  detail?: string;
}

export abstract class RegateError extends Error {
  /** Stable identifier, e.g. `REGATE_ERR_TOKEN_EXPIRED`. */
  abstract readonly code: string;
  /** HTTP status returned to the client. */
  abstract readonly status: ProblemStatus;
  /** snake_case reason: metric label and decision-log field. */
  readonly reason: string;
  readonly detail: string | undefined;

  constructor(reason: string, message: string, options: RegateErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.reason = reason;
    this.detail = options.detail;
  }
}

/** The request target cannot be authorized safely (path confusion, bad encoding, ...). 400. */
export class BadRequestError extends RegateError {
  readonly code = 'REGATE_ERR_BAD_REQUEST';
  readonly status = 400;
}

/** No route matches the canonical path (and host). 404. */
export class RouteNotFoundError extends RegateError {
  readonly code = 'REGATE_ERR_ROUTE_NOT_FOUND';
  readonly status = 404;
  constructor(message = 'no route matches this request') {
    super('route_not_found', message);
  }
}

/** A route matches the path but not the method. 405 with an `Allow` header. */
export class MethodNotAllowedError extends RegateError {
  readonly code = 'REGATE_ERR_METHOD_NOT_ALLOWED';
  readonly status = 405;
  readonly allow: readonly string[];
  constructor(allow: readonly string[]) {
    super('method_not_allowed', `method not allowed; allowed: ${allow.join(', ')}`);
    this.allow = allow;
  }
}

/**
 * Authentication failed. 401 with `WWW-Authenticate: Bearer error="invalid_token"`
 * (RFC 6750 §3). `reason` is one of {@link AUTHN_REASONS}.
 */
export class AuthnError extends RegateError {
  readonly code = 'REGATE_ERR_AUTHN';
  readonly status = 401;
  /** RFC 6750 error code for the WWW-Authenticate challenge; absent for a missing token. */
  readonly bearerError: 'invalid_token' | 'invalid_request' | undefined;
  constructor(reason: AuthnReason, message: string, options: RegateErrorOptions = {}) {
    super(reason, message, options);
    this.bearerError = reason === 'missing_token' || isClientCertReason(reason) ? undefined : reason === 'malformed_authorization' || reason === 'multiple_authorization' ? 'invalid_request' : 'invalid_token';
  }
}

/** `auth: mtls` failures: answered with a TLS challenge, not a Bearer one (src/pipeline/check.ts). */
export function isClientCertReason(reason: string): reason is 'client_cert_required' | 'client_cert_invalid' {
  return reason === 'client_cert_required' || reason === 'client_cert_invalid';
}

/** Stable authentication failure reasons (metric label `reason`). */
export const AUTHN_REASONS = [
  'missing_token',
  'malformed_authorization',
  'multiple_authorization',
  'malformed_token',
  'unknown_issuer',
  'algorithm_not_allowed',
  'unknown_key',
  'invalid_signature',
  'token_expired',
  'token_not_yet_valid',
  'invalid_audience',
  'invalid_issuer',
  'missing_claim',
  'invalid_claim',
  'jwks_unavailable',
  'token_inactive',
  'introspection_unavailable',
  'client_cert_required',
  'client_cert_invalid',
] as const;
export type AuthnReason = (typeof AUTHN_REASONS)[number];

/**
 * The request target is longer than `limits.max_url_bytes`. 414 (RFC 9110 §15.5.15).
 * Reason `uri_too_long`. Checked before any parsing, so an oversized target costs nothing.
 */
export class UriTooLongError extends RegateError {
  readonly code = 'REGATE_ERR_URI_TOO_LONG';
  readonly status = 414;
  constructor(maxBytes: number) {
    super('uri_too_long', `request target longer than ${maxBytes} bytes`);
  }
}

/**
 * An HTTP/2 request's header list is larger than `listen.proxy.http2.max_header_list_bytes`.
 * 431 (RFC 6585 §5), reason `header_too_large`: what an oversized HTTP/1.1 head gets.
 */
export class HeaderListTooLargeError extends RegateError {
  readonly code = 'REGATE_ERR_HEADER_TOO_LARGE';
  readonly status = 431;
}

/**
 * Request body too large for a route that reads the body into the policy input
 * (`routes[].body.max_bytes`). 413, reason `body_too_large`; nothing is forwarded.
 */
export class PayloadTooLargeError extends RegateError {
  readonly code = 'REGATE_ERR_PAYLOAD_TOO_LARGE';
  readonly status = 413;
}

/**
 * The client stopped sending a request body that regate reads into the policy
 * input for longer than the idle timeout. 408, reason `body_timeout`.
 */
export class RequestTimeoutError extends RegateError {
  readonly code = 'REGATE_ERR_REQUEST_TIMEOUT';
  readonly status = 408;
}

/**
 * A `body` route received a body regate cannot judge: a `Content-Encoding`
 * other than identity (a gzip body would be judged as malformed bytes and then
 * inflated and acted on by the upstream). 415, nothing forwarded.
 */
export class UnsupportedMediaTypeError extends RegateError {
  readonly code = 'REGATE_ERR_UNSUPPORTED_MEDIA_TYPE';
  readonly status = 415;
}

/**
 * A WebSocket upgrade asked for a protocol version regate does not relay
 * (RFC 6455 §4.4: anything but 13). 426 with `Sec-WebSocket-Version: 13`,
 * reason `websocket_version_unsupported`.
 */
export class UpgradeRequiredError extends RegateError {
  readonly code = 'REGATE_ERR_UPGRADE_REQUIRED';
  readonly status = 426;
}

/** The policy could not produce a usable decision (eval error, undefined, garbage). 500, denied. */
export class PolicyError extends RegateError {
  readonly code = 'REGATE_ERR_POLICY';
  readonly status = 500;
}

/**
 * A resource-attribute lookup (`routes[].resource`) failed; the request is
 * denied (fail closed) and never forwarded. `reason` is one of
 * {@link RESOURCE_REASONS}.
 *
 * Status: 503 when the catalog could not answer usefully (down, slow, too
 * large, garbage): the caller may retry later. 403 for `resource_not_found`:
 * the catalog answered, and a resource without attributes cannot be
 * authorized — a retry will not help, it is not an availability problem to
 * page anyone about, and it answers like a policy deny.
 */
export class AttributeSourceError extends RegateError {
  readonly code = 'REGATE_ERR_ATTRIBUTE_SOURCE';
  readonly status: 403 | 503;
  constructor(reason: ResourceReason, message: string, options: RegateErrorOptions = {}) {
    super(reason, message, options);
    this.status = reason === 'resource_not_found' ? 403 : 503;
  }
}

/** Stable resource-lookup failure reasons (metric label `reason` / `result`). */
export const RESOURCE_REASONS = [
  'resource_not_found',
  'resource_timeout',
  'resource_too_large',
  'resource_invalid',
  'resource_unavailable',
] as const;
export type ResourceReason = (typeof RESOURCE_REASONS)[number];

/** The upstream could not be reached or did not answer in time. 502 / 504. */
export class UpstreamError extends RegateError {
  readonly code = 'REGATE_ERR_UPSTREAM';
  readonly status: 502 | 503 | 504;
  constructor(status: 502 | 503 | 504, reason: string, message: string, options: RegateErrorOptions = {}) {
    super(reason, message, options);
    this.status = status;
  }
}

/** regate is not ready (policy or keys not loaded). 503. */
export class NotReadyError extends RegateError {
  readonly code = 'REGATE_ERR_NOT_READY';
  readonly status = 503;
}

/**
 * A policy bundle was refused or could not be fetched (src/policy/source.ts).
 * Never reaches a client directly: the last good bundle keeps serving, and
 * until a first bundle is active requests get 503 `not_ready`. `reason` is one
 * of {@link BUNDLE_REASONS} (metric label of `regate_bundle_errors_total`).
 */
export class BundleError extends RegateError {
  readonly code = 'REGATE_ERR_BUNDLE';
  readonly status = 503;
  declare readonly reason: BundleReason;
  constructor(reason: BundleReason, message: string, options: RegateErrorOptions = {}) {
    super(reason, message, options);
  }
}

/** Stable bundle refusal / download failure reasons. */
export const BUNDLE_REASONS = [
  // Getting the bytes.
  'bundle_unavailable',
  'bundle_timeout',
  'bundle_too_large',
  // Reading them.
  'bundle_invalid',
  // Signature verification (policy.signing).
  'signature_missing',
  'signature_not_configured',
  'signature_invalid',
  'signature_algorithm_not_allowed',
  'signature_key_mismatch',
  'signature_scope_mismatch',
  'file_digest_mismatch',
  'file_not_signed',
  'file_missing',
] as const;
export type BundleReason = (typeof BUNDLE_REASONS)[number];

/** A bug on the request path (not the client's mistake). 500, denied, logged for operators. */
export class InternalError extends RegateError {
  readonly code = 'REGATE_ERR_INTERNAL';
  readonly status = 500;
}

/**
 * Invalid configuration or policy at startup / reload. Never reaches a client:
 * it stops startup (or refuses a reload) with file, key path and what is wrong.
 */
export class ConfigError extends Error {
  readonly code = 'REGATE_ERR_CONFIG';
  readonly file: string;
  /** JSON-pointer-like key path, e.g. `/routes/2/match/path`; '' for the whole file. */
  readonly keyPath: string;
  /** What is wrong, without the file and key path (so it can be located and reported again). */
  readonly problem: string;
  constructor(file: string, keyPath: string, problem: string, options: { cause?: unknown } = {}) {
    super(`${file}${keyPath ? `: ${keyPath}` : ''}: ${problem}`, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ConfigError';
    this.file = file;
    this.keyPath = keyPath;
    this.problem = problem;
  }
}

/** Several config problems reported at once (schema validation finds them all). */
export class ConfigErrors extends Error {
  readonly code = 'REGATE_ERR_CONFIG';
  readonly errors: readonly ConfigError[];
  constructor(errors: readonly ConfigError[]) {
    super(errors.map((e) => e.message).join('\n'));
    this.name = 'ConfigErrors';
    this.errors = errors;
  }
}

/** Every stable error code, for documentation tests. */
export const ERROR_CODES = [
  'REGATE_ERR_BAD_REQUEST',
  'REGATE_ERR_URI_TOO_LONG',
  'REGATE_ERR_HEADER_TOO_LARGE',
  'REGATE_ERR_ROUTE_NOT_FOUND',
  'REGATE_ERR_METHOD_NOT_ALLOWED',
  'REGATE_ERR_AUTHN',
  'REGATE_ERR_PAYLOAD_TOO_LARGE',
  'REGATE_ERR_UNSUPPORTED_MEDIA_TYPE',
  'REGATE_ERR_UPGRADE_REQUIRED',
  'REGATE_ERR_REQUEST_TIMEOUT',
  'REGATE_ERR_POLICY',
  'REGATE_ERR_ATTRIBUTE_SOURCE',
  'REGATE_ERR_UPSTREAM',
  'REGATE_ERR_NOT_READY',
  'REGATE_ERR_BUNDLE',
  'REGATE_ERR_INTERNAL',
  'REGATE_ERR_CONFIG',
] as const;
