import type { IncomingMessage, ServerResponse } from 'node:http';
import { canonicalizeTarget } from '../http/canonicalize.ts';
import { checkFraming } from '../http/framing.ts';
import { hostOf } from '../input/build.ts';
import type { Runtime } from '../runtime.ts';
import { gatherAttributes, requestInput, withBody, type RequestAttributes } from './attributes.ts';
import { decide, evaluateShadow } from './decide.ts';
import { Exchange } from './exchange.ts';
import { sendDeny, sendError } from './respond.ts';

const NO_ATTRIBUTES: RequestAttributes = Object.freeze({});

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
    // 1. Framing, then the canonical path: refuse anything ambiguous (400, framing doubts close
    //    the connection), route on the decoded form.
    checkFraming(req);
    const target = canonicalizeTarget(req.url ?? '', rt.config.limits.max_url_bytes);
    ex.path = target.path;
    ex.host = hostOf(req.headers);

    // 2. Route: 404 for no route, 405 for a known path with another method.
    const match = rt.router.match(ex.method, ex.host, target.segments);
    const route = rt.route(match.route.id);
    ex.route = route;

    // 3. Authenticate: a verified identity, null for anonymous, or a 401.
    ex.identity = await rt.authenticator.authenticate(req, route.config.auth);

    // 4. What the route asks for, in parallel: catalog attributes (authenticated callers
    //    only; a failed lookup denies) and the JSON body (413 over the limit).
    //    Most routes ask for neither: no promise, no extra turn of the event loop.
    const attributes = route.resource === null && route.config.body === undefined ? NO_ATTRIBUTES : await gatherAttributes(route, match.params, ex.identity, req.headers, req, ex);

    // 5. Policy input: request (and body), route attributes, resource, subject, token, time.
    ex.input = requestInput(ex, req.headers, target, match.params, route, ex.identity, attributes);

    // 6. Decide: undefined, garbage or an evaluation error throws → 500, denied.
    //    A dry-run route records the policy's decision and forwards whatever it is.
    const decision = decide(rt, route, ex);
    if (!decision.allow) return sendDeny(res, ex, decision);

    // 7. Forward exactly what was authorized: canonical path and query, scrubbed headers,
    //    and the very body bytes the policy judged when it read them.
    const result = await route.upstream.forward(req, res, {
      method: ex.method,
      path: target.wireQuery ? `${target.wirePath}?${target.wireQuery}` : target.wirePath,
      headers: withBody(route.upstreamHeaders(req, ex, decision), req, attributes.bodyBytes),
      responseHeaders: decision.responseHeaders,
      ...(attributes.bodyBytes !== undefined ? { body: attributes.bodyBytes } : {}),
    });
    ex.forwarded(result);
  } catch (err) {
    sendError(res, ex, err);
  } finally {
    // The route's shadow policy, after the response: no latency, no say in the outcome.
    evaluateShadow(ex);
    rt.observer.record(ex.outcome(res));
  }
}
