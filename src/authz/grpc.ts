/**
 * Envoy's external authorization gRPC service
 * (`envoy.service.auth.v3.Authorization/Check`, `listen.authz.protocol:
 * envoy_grpc`), on the same {@link check} as the proxy and the HTTP authz
 * front end. Envoy's protos are vendored unmodified in proto/ (see its README).
 *
 * CheckRequest → view: method, path (the request target as sent, canonicalized
 * by check), host (`:authority`), headers (`headers` map, or `header_map` with
 * `encode_raw_headers`), the source address, and the body Envoy buffered
 * (`with_request_body`; a partial body is not judged: a `body` route answers
 * `body_unavailable`). A request without method, path or host is refused.
 *
 * Verdict → CheckResponse:
 *
 * - allow: `OK`, `ok_response.headers` overwrite the identity and policy
 *   headers, `headers_to_remove` the identity headers regate has no value for
 *   (a client's copy must not reach the upstream), `response_headers_to_add`
 *   the policy's response headers and `x-regate-decision-id`; the decision id
 *   and route in `dynamic_metadata`.
 * - refusal: `PERMISSION_DENIED` (`UNAUTHENTICATED` for a 401), a
 *   `denied_response` with the status, the problem document, `WWW-Authenticate`.
 * - regate's own failures (policy error, catalog down: 5xx): still a
 *   CheckResponse with a `denied_response` (500 / 503) and status `INTERNAL` /
 *   `UNAVAILABLE` — never a failed call, which an Envoy configured with
 *   `failure_mode_allow: true` would let through. Fail closed either way.
 */

import { fileURLToPath } from 'node:url';
import type { IncomingHttpHeaders } from 'node:http';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { BadRequestError, type RegateError } from '../errors.ts';
import { problemBody, PROBLEM_CONTENT_TYPE } from '../http/problem.ts';
import { check } from '../pipeline/check.ts';
import { record } from '../pipeline/record.ts';
import type { Verdict } from '../pipeline/verdict.ts';
import type { RequestView } from '../pipeline/view.ts';
import type { Runtime } from '../runtime.ts';
import { HOP_BY_HOP } from '../upstream/headers.ts';
import { DECISION_ID_HEADER, unsetHeaders } from './http.ts';

/** The vendored protos (repository root `proto/`). */
export const PROTO_ROOT = fileURLToPath(new URL('../../proto/', import.meta.url));
export const EXTERNAL_AUTH_PROTO = 'envoy/service/auth/v3/external_auth.proto';

/** How both sides load the protos: field names as in the .proto, enums by name. */
export const PROTO_OPTIONS: protoLoader.Options = { includeDirs: [PROTO_ROOT], keepCase: true, longs: String, enums: String, defaults: false, oneofs: true };

/** google.rpc.Code values used here. */
const OK = 0;
const PERMISSION_DENIED = 7;
const UNAUTHENTICATED = 16;
const INTERNAL = 13;
const UNAVAILABLE = 14;

/** The parts of a CheckRequest read here (proto-loader objects: absent fields are undefined). */
interface CheckRequest {
  attributes?: {
    source?: { address?: { socket_address?: { address?: string } } };
    request?: {
      http?: {
        method?: string;
        path?: string;
        host?: string;
        headers?: Record<string, string>;
        header_map?: { headers?: { key?: string; value?: string; raw_value?: Buffer }[] };
        body?: string;
        raw_body?: Buffer;
      };
    };
  };
}

interface HeaderValueOption {
  header: { key: string; value: string };
  append_action: 'OVERWRITE_IF_EXISTS_OR_ADD';
}

/** The CheckResponse for a verdict (a plain object proto-loader serializes). */
export function checkResponse(verdict: Verdict): Record<string, unknown> {
  const up = verdict.upstream;
  if (up !== null) {
    const headers: HeaderValueOption[] = [];
    for (const name in up.identity) headers.push(option(name, up.identity[name]!));
    for (const name in up.headers) headers.push(option(name.toLowerCase(), up.headers[name]!));
    for (const c of up.credentials) headers.push(option(c.header, c.value));
    const responseHeaders = [option(DECISION_ID_HEADER, verdict.id)];
    for (const name in up.responseHeaders) responseHeaders.push(option(name.toLowerCase(), up.responseHeaders[name]!));
    return {
      status: { code: OK, message: '' },
      ok_response: {
        headers,
        headers_to_remove: unsetHeaders(verdict.route!.headerPolicy, up),
        response_headers_to_add: responseHeaders,
      },
      dynamic_metadata: metadata(verdict),
    };
  }
  const a = verdict.answer!;
  const headers = [option('content-type', PROBLEM_CONTENT_TYPE), option('cache-control', 'no-store'), option(DECISION_ID_HEADER, verdict.id)];
  for (const name in a.headers) if (!HOP_BY_HOP.includes(name.toLowerCase())) headers.push(option(name.toLowerCase(), a.headers[name]!));
  const code = a.status === 401 ? UNAUTHENTICATED : a.status === 503 ? UNAVAILABLE : a.status >= 500 ? INTERNAL : PERMISSION_DENIED;
  return {
    status: { code, message: verdict.reason },
    denied_response: { status: { code: a.status }, headers, body: problemBody(a.status, a.problem) },
    dynamic_metadata: metadata(verdict),
  };
}

function option(key: string, value: string): HeaderValueOption {
  return { header: { key, value }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' };
}

/**
 * google.protobuf.Struct: the decision id and route for Envoy's access log and later
 * filters. protobufjs defines the well-known types itself, with camelCase field names.
 */
function metadata(v: Verdict): Record<string, unknown> {
  const fields: Record<string, unknown> = { decision_id: { stringValue: v.id }, decision: { stringValue: v.decision } };
  if (v.route !== null) fields.route_id = { stringValue: v.route.config.id };
  return { fields };
}

/** A CheckRequest as a view; an incomplete one carries its refusal. */
export function viewOfCheckRequest(req: CheckRequest): RequestView {
  const http = req.attributes?.request?.http;
  let refused: RegateError | undefined;
  const method = http?.method ?? '';
  const target = http?.path ?? '';
  const host = http?.host ?? '';
  if (method === '' || target === '' || host === '') refused = incomplete('the CheckRequest has no attributes.request.http method, path and host');

  const headers: IncomingHttpHeaders = Object.create(null) as IncomingHttpHeaders;
  const rawHeaders: string[] = ['Host', host];
  const add = (key: string, value: string): void => {
    const lower = key.toLowerCase();
    // Pseudo-headers are the request line, already read; Host is the :authority above.
    if (lower.startsWith(':') || lower === 'host') return;
    rawHeaders.push(lower, value);
    const prev = headers[lower];
    headers[lower] = prev === undefined ? value : `${String(prev)}, ${value}`;
  };
  const list = http?.header_map?.headers;
  if (list !== undefined && list.length > 0) {
    for (const h of list) add(h.key ?? '', h.raw_value !== undefined && h.raw_value.length > 0 ? h.raw_value.toString('latin1') : (h.value ?? ''));
  } else {
    for (const [k, v] of Object.entries(http?.headers ?? {})) add(k, v);
  }
  headers.host = host;

  // The body only when Envoy sent all of it (with_request_body, not truncated at max_request_bytes).
  let body: Buffer | null = null;
  if (headers['x-envoy-auth-partial-body'] !== 'true') {
    if (http?.raw_body !== undefined && http.raw_body.length > 0) body = http.raw_body;
    else if (http?.body !== undefined && http.body !== '') body = Buffer.from(http.body, 'utf8');
    else if (headers['content-length'] === '0' || (headers['content-length'] === undefined && headers['transfer-encoding'] === undefined)) body = Buffer.alloc(0);
  }
  delete headers['x-envoy-auth-partial-body'];
  const address = req.attributes?.source?.address?.socket_address?.address ?? '';
  return { method, target, headers, rawHeaders, remoteAddr: address, body, ...(refused !== undefined ? { refused } : {}) };
}

function incomplete(detail: string): BadRequestError {
  return new BadRequestError('authz_request_incomplete', `not a check request from Envoy: ${detail}`);
}

/** A gRPC server with the Authorization service; `runtime()` is read once per call. */
export interface GrpcAuthzServer {
  listen(host: string, port: number): Promise<string>;
  /** Stop accepting calls; in-flight calls get `graceMs`, then the rest are cancelled. */
  close(graceMs: number): Promise<void>;
}

export interface GrpcAuthzOptions {
  /** The active runtime, or null before the first one (then: UNAVAILABLE, denied). */
  readonly runtime: () => Runtime | null;
  /** Wrap each call (the server counts in-flight requests per runtime for reloads and drain). */
  readonly track: (rt: Runtime, work: Promise<void>) => void;
}

export function createGrpcAuthzServer(options: GrpcAuthzOptions): GrpcAuthzServer {
  const definition = protoLoader.loadSync(EXTERNAL_AUTH_PROTO, PROTO_OPTIONS);
  const pkg = grpc.loadPackageDefinition(definition) as unknown as {
    envoy: { service: { auth: { v3: { Authorization: { service: grpc.ServiceDefinition } } } } };
  };
  const server = new grpc.Server({ 'grpc.max_receive_message_length': 16 * 1024 * 1024 });
  server.addService(pkg.envoy.service.auth.v3.Authorization.service, {
    Check(call: grpc.ServerUnaryCall<CheckRequest, unknown>, callback: grpc.sendUnaryData<unknown>) {
      const rt = options.runtime();
      if (rt === null) {
        callback(null, { status: { code: UNAVAILABLE, message: 'not_ready' }, denied_response: { status: { code: 503 }, body: '' } });
        return;
      }
      // The decision log is full (overload: block): wait for room, so no answer lacks its record.
      const admitted = rt.admission();
      const work = (async () => {
        if (admitted !== undefined) await admitted;
        const verdict = await check(rt, viewOfCheckRequest(call.request));
        let status = verdict.answer?.status ?? 200;
        try {
          let response: Record<string, unknown>;
          try {
            response = checkResponse(verdict);
          } catch (err) {
            // A bug while answering is still an answer: denied, never a failed call.
            rt.logger.error({ err, decision_id: verdict.id }, 'internal error answering an ext_authz check');
            status = 500;
            response = { status: { code: INTERNAL, message: 'internal_error' }, denied_response: { status: { code: 500 }, body: '' } };
          }
          callback(null, response);
        } finally {
          record(rt, verdict, { status, clientClosed: call.cancelled, frontEnd: 'envoy_grpc' });
        }
      })();
      options.track(rt, work);
    },
  });
  return {
    listen(host, port) {
      return new Promise((resolve, reject) => {
        const address = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
        server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, bound) => {
          if (err) reject(err);
          else resolve(`grpc://${host.includes(':') ? `[${host}]` : host}:${bound}`);
        });
      });
    },
    close(graceMs) {
      return new Promise((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        timer.unref();
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    },
  };
}
