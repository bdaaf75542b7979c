/**
 * The HTTP/2 front end: view → check → forward or answer → record, as the
 * HTTP/1.1 proxy (src/pipeline/handle.ts) does, on one HTTP/2 stream.
 *
 * A gRPC call (`content-type: application/grpc...`) is answered in gRPC's
 * own terms whatever refuses it — no route, a missing token, the policy, a
 * failed upstream: a trailers-only response, HTTP 200, `grpc-status` and
 * `grpc-message` (src/http2/grpc.ts). Anything else gets the problem
 * document an HTTP/1.1 client gets. The decision log and metrics record
 * the verdict's HTTP status in both cases (403 for PERMISSION_DENIED), so
 * dashboards and alerts read the same for every protocol.
 *
 * A request body still to come is under `limits.body_idle_timeout_ms` and
 * `limits.request_timeout_ms` (src/http2/body.ts): a stall before the response
 * started is answered 408 `body_timeout` / `request_timeout` (gRPC:
 * DEADLINE_EXCEEDED) and the upstream request cancelled; after, the stream is
 * reset (CANCEL). Either way it is logged and counted with that reason.
 */

import { constants, type ServerHttp2Stream } from 'node:http2';
import type { Readable } from 'node:stream';
import { RegateError, type RequestTimeoutError } from '../errors.ts';
import { admitBody, closeBodyGate } from '../http/body-gate.ts';
import { problemBody, PROBLEM_CONTENT_TYPE } from '../http/problem.ts';
import { withBody } from '../pipeline/attributes.ts';
import { check, errorAnswer, internal } from '../pipeline/check.ts';
import { record } from '../pipeline/record.ts';
import type { Answer, Verdict } from '../pipeline/verdict.ts';
import type { TraceContextInfo } from '../observe/tracing/tracer.ts';
import type { Runtime } from '../runtime.ts';
import type { ForwardResult } from '../upstream/forward.ts';
import { buildUpstreamHeaders, HOP_BY_HOP } from '../upstream/headers.ts';
import { upstreamAuthorization } from '../broker/upstream-token.ts';
import { streamSink } from '../upstream/sink.ts';
import { grpcRefusalFields, isGrpcContentType } from './grpc.ts';
import { viewOfStream } from './view.ts';

const HOP = new Set(HOP_BY_HOP);

/** One request stream. `endStream`: the HEADERS frame ended the stream (no body). */
export async function handleStream(
  rt: Runtime,
  stream: ServerHttp2Stream,
  headers: Readonly<Record<string, string | string[] | undefined>>,
  rawHeaders: readonly string[],
  endStream: boolean,
  proto: 'http' | 'https',
  maxHeaderListBytes: number,
): Promise<void> {
  const view = viewOfStream(stream, headers, rawHeaders, maxHeaderListBytes);
  // A body still to come: the body idle timeout and request deadline of `limits` (src/http2/body.ts).
  if (!endStream) view.body.gate(rt.config.limits);
  const grpc = isGrpcContentType(view.headers['content-type']);
  const trace = rt.tracer === null ? null : rt.tracer.start(view.headers);
  const verdict = await check(rt, view, trace === null ? undefined : { trace });
  let forwarded: ForwardResult | undefined;
  let failure: RegateError | undefined;
  let answered = 0;
  /** The body gate's timeout while the body streamed upstream: what the client is told, whatever the forwarder saw. */
  let timedOut: RequestTimeoutError | undefined;
  try {
    const { route, target, upstream } = verdict;
    if (upstream === null || route === null || target === null) {
      answered = verdict.answer!.status;
      answer(stream, verdict.answer!, grpc);
    } else {
      const fields = buildUpstreamHeaders(view, {
        policy: route.headerPolicy,
        identityValues: upstream.identity,
        decisionHeaders: upstream.headers,
        credentials: upstream.credentials,
        requestId: verdict.id,
        clientIp: verdict.remoteAddr,
        proto,
        host: view.headers.host ?? '',
        forwardAuthorization: route.config.forward_authorization,
        trace: trace?.propagation(),
      });
      // `upstream_token`: the upstream gets a token regate minted for this call, never the caller's.
      if (route.config.upstream_token !== undefined) fields.authorization = upstreamAuthorization(rt, verdict, route.config.upstream_token);
      trace?.begin('upstream');
      // The body: the bytes the policy judged, else the stream itself (none when HEADERS ended it),
      // counted for the body gate; a timeout cancels the upstream request.
      let body: Readable | null = null;
      if (verdict.bodyBytes === undefined && !endStream) {
        const signal = admitBody(view.body);
        if (signal?.aborted) throw signal.reason as Error;
        const streamed = view.body.forwardable();
        signal?.addEventListener(
          'abort',
          () => {
            timedOut = signal.reason as RequestTimeoutError;
            streamed.destroy(timedOut);
          },
          { once: true },
        );
        body = streamed;
      }
      forwarded = await route.upstream.forwardTo(
        streamSink(stream),
        body,
        {
          method: verdict.method,
          path: target.wireQuery ? `${target.wirePath}?${target.wireQuery}` : target.wirePath,
          headers: withBody(fields, view, verdict.bodyBytes),
          responseHeaders: upstream.responseHeaders,
          ...(verdict.bodyBytes !== undefined ? { body: verdict.bodyBytes } : {}),
        },
        grpc,
      );
      trace?.end();
      // The upstream answered, but the client's body stalled or missed its deadline: the stream was cut.
      if (timedOut !== undefined) {
        failure = timedOut;
        if (!stream.destroyed) stream.close(constants.NGHTTP2_CANCEL);
      }
    }
  } catch (err) {
    failure = timedOut ?? (err instanceof RegateError ? err : internal(rt, verdict.id, verdict.route, err));
    if (stream.headersSent) {
      if (!stream.destroyed) stream.close(constants.NGHTTP2_INTERNAL_ERROR);
    } else {
      const a = errorAnswer(verdict.id, failure);
      answered = a.status;
      answer(stream, a, grpc);
    }
  } finally {
    closeBodyGate(view.body);
    const sent = Number(stream.sentHeaders?.[':status'] ?? 0);
    const clientClosed = forwarded?.reason === 'client_closed' || (!stream.headersSent && stream.destroyed);
    // A gRPC refusal is HTTP 200 on the wire: record the refusal's own status.
    const status = answered !== 0 && stream.headersSent ? answered : stream.headersSent ? sent : 499;
    const outcome = record(rt, verdict, {
      status,
      clientClosed,
      ...(forwarded !== undefined ? { upstreamNs: forwarded.upstreamNs, upstreamStatus: forwarded.status } : {}),
      ...(forwarded?.aborted ? { aborted: forwarded.reason ?? 'upstream_aborted' } : {}),
      ...(failure !== undefined ? { error: failure } : {}),
    });
    if (trace?.sampled === true) trace.finish(outcome, traceInfo(verdict, view.headers.host));
  }
}

/**
 * A refusal: gRPC status in a trailers-only response for a gRPC call, else a
 * problem document. A body still coming is cut with RST_STREAM NO_ERROR
 * after the answer (RFC 9113 §8.1): nothing more of it is read.
 */
export function answer(stream: ServerHttp2Stream, a: Answer, grpc: boolean): void {
  if (stream.destroyed || stream.headersSent) return;
  const extra: Record<string, string> = {};
  for (const name in a.headers) if (!HOP.has(name)) extra[name] = a.headers[name]!;
  try {
    if (grpc) {
      const detail = a.problem.detail ?? a.problem.reason;
      stream.respond({ ...extra, ...grpcRefusalFields(a.status, detail, a.problem.reason, a.problem.decisionId) }, { endStream: true });
    } else {
      const body = problemBody(a.status, a.problem);
      stream.respond({ ...extra, ':status': a.status, 'content-type': PROBLEM_CONTENT_TYPE, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
      stream.end(body);
    }
  } catch {
    // A policy header node refuses on HTTP/2: never a half-written answer.
    if (!stream.destroyed) stream.close(constants.NGHTTP2_INTERNAL_ERROR);
    return;
  }
  if (!stream.readableEnded) {
    stream.once('finish', () => {
      if (!stream.destroyed && !stream.readableEnded) stream.close(constants.NGHTTP2_NO_ERROR);
    });
  }
}

function traceInfo(verdict: Verdict, host: string | undefined): TraceContextInfo {
  const route = verdict.route;
  if (route === null) return { host: host ?? '' };
  return { route: route.config.match.path, host: host ?? '', upstream: route.upstreamUrl };
}
