/**
 * A decision-log service on 127.0.0.1 that checks every upload against OPA's
 * "Decision Log Service API" (https://www.openpolicyagent.org/docs/management-decision-logs):
 *
 *     POST /[<decision_logs.resource>] HTTP/1.1
 *     Content-Encoding: gzip
 *     Content-Type: application/json
 *
 * "The message body contains a gzip compressed JSON array. Each array element
 * (event) represents a policy decision." The event fields are OPA's `EventV1`
 * (labels, decision_id, bundles, path, input, result, erased, masked,
 * requested_by, timestamp, metrics, custom, ...). Every violation found is
 * recorded on the request, so a test asserts `violations` is empty instead of
 * trusting the client.
 */

import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';

/** One upload as received. */
export interface ReceivedUpload {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  /** The request body exactly as sent (compressed). */
  readonly body: Buffer;
  /** The decoded events (empty when the body did not decode). */
  readonly events: Record<string, unknown>[];
  /** Protocol violations found in this request. */
  readonly violations: string[];
  /** The status this receiver answered. */
  readonly status: number;
}

/** What to answer an upload: a status, after an optional delay. */
export type Reply = { readonly status: number; readonly delayMs?: number };

export interface DecisionLogReceiver {
  readonly url: string;
  readonly port: number;
  readonly uploads: ReceivedUpload[];
  /** All events of successful (2xx) uploads, in arrival order. */
  accepted(): Record<string, unknown>[];
  /** Answer the next uploads with these replies, then 204 again. */
  reply(...replies: Reply[]): void;
  /** Wait until `pred` holds over the uploads so far (bounded). */
  waitFor(pred: (uploads: readonly ReceivedUpload[]) => boolean, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

/** Top-level fields of OPA's `EventV1` (v1/plugins/logs/plugin.go), plus OPA's `custom` extension. */
export const EVENT_V1_FIELDS = new Set([
  'labels', 'decision_id', 'trace_id', 'span_id', 'revision', 'bundles', 'path', 'query', 'input', 'result',
  'mapped_result', 'nd_builtin_cache', 'erased', 'masked', 'error', 'requested_by', 'timestamp', 'metrics',
  'req_id', 'request_context', 'intermediate_results', 'custom',
]);

const RFC3339_NANO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/;

/** Check one upload request against the protocol; returns what is wrong. */
export function checkUpload(method: string, path: string, expectedPath: string, headers: IncomingHttpHeaders, body: Buffer): { violations: string[]; events: Record<string, unknown>[] } {
  const violations: string[] = [];
  if (method !== 'POST') violations.push(`method ${method}, want POST`);
  if (path !== expectedPath) violations.push(`path ${path}, want ${expectedPath}`);
  if (headers['content-type'] !== 'application/json') violations.push(`content-type ${String(headers['content-type'])}, want application/json`);
  if (headers['content-encoding'] !== 'gzip') violations.push(`content-encoding ${String(headers['content-encoding'])}, want gzip`);
  if (headers['content-length'] !== String(body.length)) violations.push(`content-length ${String(headers['content-length'])} for a ${body.length}-byte body`);
  let events: Record<string, unknown>[] = [];
  try {
    const parsed: unknown = JSON.parse(gunzipSync(body).toString('utf8'));
    if (!Array.isArray(parsed)) violations.push('body is not a JSON array');
    else if (parsed.length === 0) violations.push('empty array');
    else events = parsed as Record<string, unknown>[];
  } catch (err) {
    violations.push(`body is not gzip-compressed JSON: ${(err as Error).message}`);
  }
  for (const [i, e] of events.entries()) {
    if (e === null || typeof e !== 'object' || Array.isArray(e)) {
      violations.push(`event ${i} is not an object`);
      continue;
    }
    for (const key of Object.keys(e)) if (!EVENT_V1_FIELDS.has(key)) violations.push(`event ${i}: ${key} is not an EventV1 field`);
    if (typeof e.decision_id !== 'string' || e.decision_id === '') violations.push(`event ${i}: decision_id missing`);
    if (typeof e.timestamp !== 'string' || !RFC3339_NANO.test(e.timestamp)) violations.push(`event ${i}: timestamp ${String(e.timestamp)} is not RFC 3339 UTC`);
    const labels = e.labels as Record<string, unknown> | undefined;
    if (typeof labels !== 'object' || labels === null || typeof labels.id !== 'string' || typeof labels.version !== 'string') violations.push(`event ${i}: labels.id / labels.version missing`);
    else for (const [k, v] of Object.entries(labels)) if (typeof v !== 'string') violations.push(`event ${i}: label ${k} is not a string`);
    if (e.metrics !== undefined) {
      for (const [k, v] of Object.entries(e.metrics as Record<string, unknown>)) if (!Number.isInteger(v)) violations.push(`event ${i}: metric ${k} is not an integer`);
    }
    if (e.bundles !== undefined) {
      for (const [k, v] of Object.entries(e.bundles as Record<string, { revision?: unknown }>)) if (typeof v?.revision !== 'string') violations.push(`event ${i}: bundles.${k}.revision is not a string`);
    }
  }
  return { violations, events };
}

/** Start a receiver. `resource` is the path uploads must use (OPA's default `/logs`); `port` to reuse one. */
export async function startDecisionLogReceiver(options: { resource?: string; port?: number } = {}): Promise<DecisionLogReceiver> {
  const expectedPath = options.resource ?? '/logs';
  const uploads: ReceivedUpload[] = [];
  const replies: Reply[] = [];
  const waiters = new Set<() => void>();
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const reply = replies.shift() ?? { status: 204 };
      const answer = (): void => {
        const { violations, events } = checkUpload(req.method ?? '', req.url ?? '', expectedPath, req.headers, body);
        uploads.push({ method: req.method ?? '', path: req.url ?? '', headers: req.headers, body, events, violations, status: reply.status });
        for (const w of waiters) w();
        res.writeHead(reply.status, { 'content-type': 'text/plain' }).end(reply.status < 300 ? '' : 'refused');
      };
      if (reply.delayMs) setTimeout(answer, reply.delayMs);
      else answer();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    uploads,
    accepted: () => uploads.filter((u) => u.status >= 200 && u.status < 300).flatMap((u) => u.events),
    reply: (...r) => void replies.push(...r),
    waitFor(pred, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          if (!pred(uploads)) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve();
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`receiver: condition not met within ${timeoutMs} ms (${uploads.length} uploads: ${uploads.map((u) => `${u.status}/${u.events.length}`).join(' ')})`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
