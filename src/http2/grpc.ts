/**
 * gRPC over HTTP/2 (https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md):
 * which requests are gRPC calls, what a gRPC route tells the policy, and how
 * a refusal is answered so that a gRPC client can read it — a trailers-only
 * response (one HEADERS frame with END_STREAM), HTTP status 200, the status
 * in `grpc-status` and a percent-encoded `grpc-message`; never an HTTP error
 * body, which a gRPC client reports as a protocol error at best.
 */

/** gRPC status codes regate answers with (grpc/doc/statuscodes.md). */
export const GRPC_STATUS = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;

/**
 * The gRPC status for one of regate's HTTP statuses: the mapping gRPC itself
 * uses for HTTP errors (doc/http-grpc-status-mapping.md), refined where
 * regate knows more (a policy deny is PERMISSION_DENIED, a missing method
 * UNIMPLEMENTED).
 */
export function grpcStatusOf(httpStatus: number): number {
  switch (httpStatus) {
    case 400:
    case 414:
    case 415:
    case 431:
      return GRPC_STATUS.INVALID_ARGUMENT;
    case 401:
      return GRPC_STATUS.UNAUTHENTICATED;
    case 403:
      return GRPC_STATUS.PERMISSION_DENIED;
    case 404:
    case 405:
      // No route for `/{package.Service}/{Method}` (or not as POST): the method is unknown here.
      return GRPC_STATUS.UNIMPLEMENTED;
    case 408:
    case 504:
      return GRPC_STATUS.DEADLINE_EXCEEDED;
    case 413:
    case 429:
      return GRPC_STATUS.RESOURCE_EXHAUSTED;
    case 502:
    case 503:
      return GRPC_STATUS.UNAVAILABLE;
    default:
      return httpStatus >= 500 ? GRPC_STATUS.INTERNAL : GRPC_STATUS.UNKNOWN;
  }
}

/** `application/grpc`, `application/grpc+proto`, `application/grpc;charset=...` (case-insensitive). */
export function isGrpcContentType(contentType: string | string[] | undefined): boolean {
  if (typeof contentType !== 'string') return false;
  const t = contentType.trimStart().toLowerCase();
  if (!t.startsWith('application/grpc')) return false;
  const next = t.charCodeAt(16);
  // Nothing, `+format` or `;params` after the base type: not `application/grpc-web` (a different protocol).
  return Number.isNaN(next) || next === 43 /* + */ || next === 59 /* ; */;
}

/** `input.request.grpc`: the called method, from the canonical path's two segments. */
export interface GrpcCall {
  /** Fully qualified service, e.g. `inference.GRPCInferenceService`. */
  readonly service: string;
  /** Method name, e.g. `ModelInfer`. */
  readonly method: string;
}

/** The call a gRPC route's path names; null when the path is not `/{service}/{method}`. */
export function grpcCallOf(segments: readonly string[]): GrpcCall | null {
  if (segments.length !== 2 || segments[0] === '' || segments[1] === '') return null;
  return { service: segments[0]!, method: segments[1]! };
}

/**
 * `grpc-message`: percent-encoded UTF-8; every byte outside printable ASCII
 * (0x20–0x7E) and `%` itself is `%XX` (PROTOCOL-HTTP2.md, "Responses").
 */
export function encodeGrpcMessage(message: string): string {
  let out = '';
  for (const byte of Buffer.from(message, 'utf8')) {
    if (byte >= 0x20 && byte <= 0x7e && byte !== 0x25) out += String.fromCharCode(byte);
    else out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/**
 * The fields of a trailers-only response for a refusal with `httpStatus`:
 * `:status` 200 and `content-type` (the gRPC spec's choice for errors a
 * server detects itself), `grpc-status`, `grpc-message` and regate's reason
 * and decision id as metadata a client can log.
 */
export function grpcRefusalFields(httpStatus: number, message: string, reason: string, decisionId: string): Record<string, string> {
  return {
    ':status': '200',
    'content-type': 'application/grpc',
    'grpc-status': String(grpcStatusOf(httpStatus)),
    'grpc-message': encodeGrpcMessage(message),
    'regate-reason': reason,
    'regate-decision-id': decisionId,
  };
}
