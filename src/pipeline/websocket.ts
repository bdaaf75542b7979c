/**
 * The WebSocket front end: an HTTP/1.1 upgrade request (node's `upgrade`
 * event) → view → check → forward the upgrade → relay the 101 → tunnel →
 * record. The decision is check()'s, exactly as for the proxy (handle.ts):
 * token, attributes and policy are judged on the upgrade request, and the
 * policy sees `input.request.websocket: true`.
 *
 * - refused (invalid handshake, route without `websocket: true`, 401, 403,
 *   ...) → the normal problem response, never a 101; nothing reaches the
 *   upstream;
 * - allowed → the upgrade goes upstream with the same header rules as any
 *   forwarded request (identity headers set by regate, client copies and
 *   `Authorization` unless `forward_authorization` stripped, `X-Forwarded-*`
 *   set, hop-by-hop fields dropped; `Connection`/`Upgrade` are regate's own);
 *   the upstream's 101 is relayed, then bytes are piped both ways
 *   (src/upstream/tunnel.ts); an upstream that answers otherwise has its
 *   response relayed, one that does not answer usable gets 502/503/504;
 * - every answer but a 101 closes the connection.
 *
 * Recorded twice: the normal decision-log line and metrics when the upgrade
 * is answered (status 101 for a relayed connection), and a closing record
 * (operational log, `websocket closed`) when the tunnel ends: decision id,
 * duration, bytes each way, close reason.
 */

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { UpstreamError, type RegateError } from '../errors.ts';
import type { TunnelSet } from '../lifecycle/tunnels.ts';
import type { WebSocketResult } from '../observe/websocket-metrics.ts';
import type { Runtime } from '../runtime.ts';
import { buildUpstreamHeaders, checkResponseHeaders, type HeaderFields } from '../upstream/headers.ts';
import { Tunnel } from '../upstream/tunnel.ts';
import type { UpgradeResult } from '../upstream/upgrade.ts';
import { check } from './check.ts';
import { record } from './record.ts';
import { sendAnswer, sendFailure } from './respond.ts';
import { viewOfUpgrade } from './view.ts';

const NO_FIELDS: Readonly<Record<string, string>> = Object.freeze({});

/**
 * Handle one upgrade request. `res` is a response bound to `socket` (for
 * refusals); `socket` is paused and read only once the tunnel starts.
 * Resolves when the exchange is over: answered, or the tunnel closed and
 * recorded.
 */
export async function handleUpgrade(rt: Runtime, req: IncomingMessage, res: ServerResponse, socket: Socket, head: Buffer, tunnels: TunnelSet): Promise<void> {
  const view = viewOfUpgrade(req, head);
  const verdict = await check(rt, view);
  const ws = rt.metrics.websocket;
  const routeId = verdict.route?.config.id ?? null;
  let result: WebSocketResult = 'refused';
  let upgraded: Extract<UpgradeResult, { kind: 'upgraded' }> | undefined;
  let refusedBy: Extract<UpgradeResult, { kind: 'refused' }> | undefined;
  let failure: RegateError | undefined;
  let status = 0;
  const gone = new AbortController();
  const onGone = (): void => gone.abort();
  socket.once('close', onGone);
  try {
    const { route, target, upstream } = verdict;
    if (upstream === null || route === null || target === null) {
      sendAnswer(res, verdict.answer!);
      status = verdict.answer!.status;
    } else if (socket.destroyed) {
      result = 'client_closed';
    } else {
      const headers = buildUpstreamHeaders(view, {
        policy: route.headerPolicy,
        identityValues: upstream.identity,
        decisionHeaders: upstream.headers,
        credentials: upstream.credentials,
        requestId: verdict.id,
        clientIp: verdict.remoteAddr,
        proto: 'http',
        host: req.headers.host ?? '',
        forwardAuthorization: route.config.forward_authorization,
      });
      // A policy response header that cannot be sent fails closed before the upstream is contacted.
      const policyFields = checkResponseHeaders(upstream.responseHeaders) ?? NO_FIELDS;
      const outcome = await route.upstream.upgrade(
        { path: target.wireQuery ? `${target.wirePath}?${target.wireQuery}` : target.wirePath, headers, key: req.headers['sec-websocket-key']! },
        res,
        gone.signal,
      );
      if (outcome.kind === 'refused') {
        refusedBy = outcome;
        status = outcome.status;
        result = outcome.aborted && socket.destroyed ? 'client_closed' : 'upstream_refused';
      } else if (socket.destroyed || !socket.writable) {
        outcome.socket.destroy();
        result = 'client_closed';
      } else {
        upgraded = outcome;
        socket.write(switchingProtocols(outcome.headers, policyFields));
        status = 101;
        result = 'upgraded';
      }
    }
  } catch (err) {
    failure = sendFailure(rt, res, verdict, err);
    status = res.headersSent ? res.statusCode : 499;
    result = gone.signal.aborted ? 'client_closed' : err instanceof UpstreamError ? 'upstream_failed' : 'refused';
  } finally {
    socket.off('close', onGone);
    ws.attempt(routeId, result);
    if (status === 0) status = res.headersSent ? res.statusCode : 499;
    record(rt, verdict, {
      status,
      clientClosed: result === 'client_closed',
      ...(upgraded !== undefined ? { upstreamNs: upgraded.upstreamNs, upstreamStatus: 101 } : {}),
      ...(refusedBy !== undefined ? { upstreamNs: refusedBy.upstreamNs, upstreamStatus: refusedBy.status } : {}),
      ...(refusedBy?.aborted === true ? { aborted: 'upstream_aborted' } : {}),
      ...(failure !== undefined ? { error: failure } : {}),
    });
  }
  if (upgraded === undefined || routeId === null) return;

  const series = ws.opened(routeId);
  const limits = rt.config.limits.websocket;
  const tunnel = new Tunnel(socket, upgraded.socket, { idleTimeoutMs: limits.idle_timeout_ms, maxLifetimeMs: limits.max_lifetime_ms }, series);
  tunnels.add(tunnel);
  const closed = await tunnel.closed;
  series.closed();
  try {
    rt.logger.info(
      {
        decision_id: verdict.id,
        route_id: routeId,
        duration_ms: Math.round(closed.durationNs / 1e4) / 100,
        bytes_to_upstream: closed.bytesToUpstream,
        bytes_to_client: closed.bytesToClient,
        close_reason: closed.reason,
      },
      'websocket closed',
    );
  } catch {
    // A closed log destination must not fail the connection's end.
  }
}

/**
 * The client's 101: the upstream's end-to-end fields (`Sec-WebSocket-Accept`,
 * `-Protocol`, `-Extensions`, cookies), the policy's response headers, and
 * regate's own `Upgrade` / `Connection`. Values come from undici's parser
 * and checkResponseHeaders: no CR or LF can be in them.
 */
function switchingProtocols(upstreamFields: HeaderFields, policyFields: Readonly<Record<string, string>>): string {
  let head = 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n';
  const fields: HeaderFields = { ...upstreamFields };
  // A 101 has no body: a length on it means nothing the client should read.
  delete fields['content-length'];
  for (const name in policyFields) fields[name] = policyFields[name]!;
  for (const name in fields) {
    const value = fields[name]!;
    for (const v of Array.isArray(value) ? value : [value]) head += `${name}: ${v}\r\n`;
  }
  return head + '\r\n';
}
