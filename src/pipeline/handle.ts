import type { IncomingMessage, ServerResponse } from 'node:http';
import { canonicalizeTarget } from '../http/canonicalize.ts';
import { buildInput } from '../input/build.ts';
import type { Runtime } from '../runtime.ts';
import { Exchange } from './exchange.ts';
import { sendDeny, sendError } from './respond.ts';

/**
 * The request path. Every request goes through exactly these steps; any
 * failure is a typed error that denies (fail closed), and the `finally`
 * records metrics and one decision-log line, even when the client went away.
 *
 * `rt` is the runtime the request started with: a reload swaps the server's
 * runtime atomically, and this request finishes on the version it began on.
 */
export async function handle(rt: Runtime, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const ex = new Exchange(rt, req);
  try {
    // 1. Canonical path first: refuse anything ambiguous (400), route on the decoded form.
    const target = canonicalizeTarget(req.url ?? '', rt.config.limits.max_url_bytes);
    ex.path = target.path;

    // 2. Route: 404 for no route, 405 for a known path with another method.
    const match = rt.router.match(ex.method, ex.host, target.segments);
    const route = rt.route(match.route.id);
    ex.route = route;

    // 3. Authenticate: a verified identity, null for anonymous, or a 401.
    ex.identity = await rt.authenticator.authenticate(req, route.config.auth);

    // 4. Policy input: request attributes, route attributes, subject, token, time.
    ex.input = buildInput({
      requestId: ex.id,
      method: ex.method,
      path: target.path,
      params: match.params,
      query: target.query,
      headers: req.headers,
      host: ex.host,
      remoteAddr: ex.remoteAddr,
      route: route.config,
      identity: ex.identity,
      time: rt.time.build(ex.nowNs),
    });

    // 5. Decide: undefined, garbage or an evaluation error throws → 500, denied.
    const { decision, evalNs } = rt.policy.evaluate(route.entrypoint, ex.input, ex.nowNs);
    ex.decided(decision, evalNs);
    if (!decision.allow) return sendDeny(res, ex, decision);

    // 6. Forward exactly what was authorized: canonical path and query, scrubbed headers.
    const result = await route.upstream.forward(req, res, {
      method: ex.method,
      path: target.wireQuery ? `${target.wirePath}?${target.wireQuery}` : target.wirePath,
      headers: route.upstreamHeaders(req, ex, decision),
      responseHeaders: decision.responseHeaders,
    });
    ex.forwarded(result);
  } catch (err) {
    sendError(res, ex, err);
  } finally {
    rt.observer.record(ex.outcome(res));
  }
}
