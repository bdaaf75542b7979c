import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RegateError } from '../errors.ts';
import { upstreamAuthorization } from '../broker/upstream-token.ts';
import type { TraceContextInfo } from '../observe/tracing/tracer.ts';
import type { Runtime } from '../runtime.ts';
import { buildUpstreamHeaders } from '../upstream/headers.ts';
import type { ForwardResult } from '../upstream/forward.ts';
import { withBody } from './attributes.ts';
import { check } from './check.ts';
import { record } from './record.ts';
import { sendAnswer, sendFailure } from './respond.ts';
import type { Verdict } from './verdict.ts';
import { viewOfRequest } from './view.ts';

/**
 * The proxy front end: view → check → forward or answer → record. The
 * decision is check()'s alone (src/pipeline/check.ts); this function only
 * carries it out and, whatever happens, records metrics and one
 * decision-log line, even when the client went away.
 *
 * `rt` is the runtime the request started with: a reload swaps the server's
 * runtime atomically, and this request finishes on the version it began on.
 */
export async function handle(rt: Runtime, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const view = viewOfRequest(req);
  // The broker's paths (token endpoint, JWKS, metadata) are answered before routing (src/broker/).
  if (rt.broker !== null && view.refused === undefined && rt.broker.serves(view.target)) return rt.broker.handle(req, res);
  // `tracing`: this request's trace; null (and nothing else done) when tracing is off.
  const trace = rt.tracer === null ? null : rt.tracer.start(req.headers);
  const verdict = await check(rt, view, trace === null ? undefined : { trace });
  let forwarded: ForwardResult | undefined;
  let failure: RegateError | undefined;
  try {
    const { route, target, upstream } = verdict;
    if (upstream === null || route === null || target === null) {
      sendAnswer(res, verdict.answer!);
    } else {
      // Forward exactly what was authorized: canonical path and query, scrubbed headers,
      // and the very body bytes the policy judged when it read them.
      const headers = buildUpstreamHeaders(view, {
        policy: route.headerPolicy,
        identityValues: upstream.identity,
        decisionHeaders: upstream.headers,
        credentials: upstream.credentials,
        requestId: verdict.id,
        clientIp: verdict.remoteAddr,
        proto: view.tls !== undefined ? 'https' : 'http',
        // Validated by hostOf() before routing: the upstream gets the host the router matched on.
        host: req.headers.host ?? '',
        forwardAuthorization: route.config.forward_authorization,
        trace: trace?.propagation(),
      });
      // `upstream_token`: the upstream gets a token regate minted for this call, never the caller's.
      const upstreamToken = route.config.upstream_token;
      if (upstreamToken !== undefined) headers.authorization = upstreamAuthorization(rt, verdict, upstreamToken);
      trace?.begin('upstream');
      forwarded = await route.upstream.forward(req, res, {
        method: verdict.method,
        path: target.wireQuery ? `${target.wirePath}?${target.wireQuery}` : target.wirePath,
        headers: withBody(headers, req, verdict.bodyBytes),
        responseHeaders: upstream.responseHeaders,
        ...(verdict.bodyBytes !== undefined ? { body: verdict.bodyBytes } : {}),
      });
      trace?.end();
    }
  } catch (err) {
    failure = sendFailure(rt, res, verdict, err);
  } finally {
    const clientClosed = !res.writableFinished && res.destroyed;
    const outcome = record(rt, verdict, {
      status: res.headersSent ? res.statusCode : 499,
      clientClosed,
      ...(forwarded !== undefined ? { upstreamNs: forwarded.upstreamNs, upstreamStatus: forwarded.status } : {}),
      ...(forwarded?.aborted ? { aborted: forwarded.reason ?? 'upstream_aborted' } : {}),
      ...(failure !== undefined ? { error: failure } : {}),
      ...(trace?.sampled === true ? { traceId: trace.traceId } : {}),
    });
    if (trace?.sampled === true) trace.finish(outcome, traceInfo(verdict, view.headers.host));
  }
}

/** What the request span names besides the outcome: route template, Host, upstream origin. */
function traceInfo(verdict: Verdict, host: string | undefined): TraceContextInfo {
  const route = verdict.route;
  if (route === null) return { host: host ?? '' };
  return { route: route.config.match.path, host: host ?? '', upstream: route.upstreamUrl };
}
