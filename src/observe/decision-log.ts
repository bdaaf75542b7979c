/**
 * The decision log: exactly one JSON line per request, shaped as an OPA
 * decision-log event as OPA's console logger prints it, so tooling built for
 * OPA reads it unchanged.
 *
 * A line looks like (wrapped here):
 *
 * ```json
 * {"level":"info","time":"2026-03-09T16:00:00.123Z","type":"openpolicyagent.org/decision_logs",
 *  "decision_id":"…","timestamp":"2026-03-09T16:00:00.123456789Z",
 *  "labels":{"id":"…","version":"0.1.0","env":"prod"},"bundles":{"regate":{"revision":"…"}},
 *  "path":"regate/authz/decision","input":{…},"result":{…},"erased":["/input/…"],
 *  "requested_by":"10.0.0.7","metrics":{"timer_rego_query_eval_ns":41000,…},
 *  "custom":{"route_id":"predict","http_method":"POST",…},"msg":"Decision Log"}
 * ```
 *
 * OPA fields keep OPA's names and meaning (`EventV1` in OPA's
 * `v1/plugins/logs/plugin.go`); empty ones are omitted as OPA omits them.
 * regate's own fields live under `custom`, OPA's extension object: an
 * OPA-aware consumer that decodes events into `EventV1` keeps them, where
 * unknown top-level keys would be dropped or could collide with a future OPA
 * field. All durations are integer nanoseconds, in `metrics`, as in OPA.
 *
 * Each line has the shape pino gives a record with `base: null`, `level` as a
 * label and `msg` = "Decision Log" like OPA's console output: no
 * `pid`/`hostname` (OPA puts the instance identity in `labels.id`). It is
 * built by {@link decisionLine} and written to a pino destination (sonic-boom,
 * asynchronous) through a bounded buffer with an overload policy
 * (src/observe/log-writer.ts: `block` or `drop`).
 */

import { randomUUID } from 'node:crypto';
import { pino, type DestinationStream } from 'pino';
import type { DecisionLogConfig } from '../config/types.ts';
import { rememberedJson } from '../policy/precise-json.ts';
import { BoundedLogStream, type LogSink } from './log-writer.ts';
import { applyMask, cloneForLog, compileMask, hasCredentials, redactCredentials, redactJwts, type CompiledMask, type MaskableEvent } from './mask.ts';
import type { RequestOutcome, ShadowOutcome } from './record.ts';

/** OPA's decision-log event `type` (`logs.DecisionLogType`). */
export const DECISION_LOG_TYPE = 'openpolicyagent.org/decision_logs';
/** The `msg` of every decision-log line, as OPA's console logger writes it. */
export const DECISION_LOG_MESSAGE = 'Decision Log';

/** Where the bundle revisions and instance identity come from. */
export interface DecisionLogMeta {
  /** Loaded bundles by name; called per record so a reload shows up at once. */
  readonly bundles: () => Readonly<Record<string, { readonly revision: string }>>;
  /** regate's version (`labels.version`). */
  readonly version: string;
  /** This process's id (`labels.id`), stable for its lifetime. */
  readonly instanceId: string;
}

/** Test and wiring hooks for {@link createDecisionLog}. */
export interface DecisionLogOptions {
  /**
   * Write here instead of `config.destination`: a shared bounded sink (src/lifecycle/log-streams.ts)
   * or a plain stream (tests; unbounded). Not ended by `close()`: the caller owns it.
   */
  readonly stream?: DestinationStream | LogSink;
  /** A write to the destination failed (disk full, EPIPE). Default: one process warning. */
  readonly onError?: (err: Error) => void;
  /** A record was dropped: the buffer was full under `overload: drop` (own destination only; a given sink reports its own). */
  readonly onDrop?: (bytes: number) => void;
  /** Also hand each record's event (see {@link eventOfLine}) here: `decision_log.service` (src/observe/decision-upload.ts). */
  readonly upload?: (event: string) => void;
}

/** The decision log. Disabled → every method is a no-op. */
export interface DecisionLog {
  readonly enabled: boolean;
  /** Write the record for one finished request. */
  write(outcome: RequestOutcome): void;
  /**
   * Write a record that is not a proxied request (a token exchange, src/broker/): `type`,
   * `labels` and `bundles` are added; the caller gives the rest (never a token).
   */
  writeEvent(event: Readonly<Record<string, unknown>>): void;
  /**
   * Admission for a new request: undefined to go ahead now; a promise while
   * the buffer is full under `overload: block` (resolves when there is room).
   */
  whenWritable(): Promise<void> | undefined;
  /** Write out anything buffered, synchronously: for a fatal-exit path. Best effort. */
  flushSync(): void;
  /** Flush and close the destination (stdout/stderr are flushed, not closed). */
  close(): Promise<void>;
}

/** Static parts of every event, computed once. */
export interface EventContext {
  readonly labels: Readonly<Record<string, string>>;
  readonly bundles: DecisionLogMeta['bundles'];
  readonly mask: CompiledMask;
}

/** A decision-log event (before pino adds `level`, `time` and `msg`). */
export interface DecisionEvent {
  type: typeof DECISION_LOG_TYPE;
  decision_id: string;
  /** RFC 3339, UTC, nanoseconds with trailing zeros trimmed (Go's `time.RFC3339Nano`). */
  timestamp: string;
  labels: Readonly<Record<string, string>>;
  bundles?: Readonly<Record<string, { readonly revision: string }>>;
  /** Entrypoint in OPA path form; absent when the policy was not evaluated. */
  path?: string;
  input?: unknown;
  result?: unknown;
  /** Pointers removed from the event. */
  erased?: string[];
  /** Pointers whose value was replaced. */
  masked?: string[];
  /** Set only when the event could not be built in full (it then carries no input/result). */
  error?: string;
  requested_by?: string;
  metrics: Record<string, number>;
  custom: {
    route_id: string | null;
    http_method: string;
    http_path: string;
    http_status: number;
    decision: RequestOutcome['decision'];
    reason: string;
    authn: { outcome: RequestOutcome['authn']['outcome']; reason?: string; issuer?: string };
    scopes: readonly string[];
    upstream_status?: number;
    /** Set (true) on a dry_run route once the policy was evaluated: its decision was not enforced. */
    dry_run?: true;
    /** The policy's decision on a dry_run route (allow / deny / error): what would have been enforced. */
    dry_run_decision?: RequestOutcome['decision'];
    /** Its reason (`policy_denied`, `policy_eval_error`, ...). */
    dry_run_reason?: string;
    /** The route's shadow (candidate) policy evaluation. */
    shadow?: ShadowEvent;
    /** Routes with `resource`: how the catalog lookup went (`hit`, `miss`, `resource_timeout`, ...). */
    resource?: string;
    /** Routes with `body`: `parsed`, or why `input.request.body` is absent (`body_not_json`, ...). */
    body?: string;
    /** Decided for a proxy in front (`listen.authz`): its protocol. Absent for regate's own proxy. */
    front_end?: string;
    /** Names of the credentials injected into the allowed request (`upstreams.<id>.credentials`); never their values. */
    credentials?: readonly string[];
  };
}

/** `custom.shadow`: the candidate's result beside the enforced one. */
export interface ShadowEvent {
  /** The candidate entrypoint. */
  path: string;
  /** `active` or `candidate`: which bundle it was evaluated in. */
  bundle: ShadowOutcome['bundle'];
  /** Its raw result, masked with the `/result/...` pointers of `decision_log.mask`; absent on error. */
  result?: unknown;
  /** Its allow; null when it could not decide. */
  allow: boolean | null;
  /** Whether it agrees with the enforced decision; null when it could not decide. */
  agree: boolean | null;
  /** Why it could not decide (`policy_undefined`, `policy_eval_error`, ...). */
  error?: string;
}

/** Compile the static parts of every event: labels and mask pointers. */
export function createEventContext(config: Pick<DecisionLogConfig, 'mask' | 'labels'> & Partial<DecisionLogConfig>, meta: DecisionLogMeta): EventContext {
  // `id` and `version` always win over configured labels of the same name (config docs).
  const labels = Object.freeze({ ...config.labels, id: meta.instanceId, version: meta.version });
  return { labels, bundles: meta.bundles, mask: compileMask(config.mask) };
}

/**
 * Build the event for one outcome: copy, redact, mask. Pure apart from calling
 * `ctx.bundles()`; never mutates the outcome. With `share`, when there is
 * nothing to redact or mask, input and result are not copied: the event refers
 * to the outcome's own values and must be serialized at once, never mutated.
 */
export function buildDecisionEvent(o: RequestOutcome, ctx: EventContext, options: { readonly share?: boolean } = {}): DecisionEvent {
  const erased: string[] = [];
  const masked: string[] = [];
  const event: DecisionEvent = {
    type: DECISION_LOG_TYPE,
    decision_id: o.decisionId,
    timestamp: formatRfc3339Nano(o.startedAtNs),
    labels: ctx.labels,
    metrics: timers(o),
    custom: customFields(o, masked),
  };
  const bundles = ctx.bundles();
  if (Object.keys(bundles).length > 0) event.bundles = bundles;
  if (o.entrypoint !== null) event.path = o.entrypoint;

  try {
    if (options.share === true && ctx.mask.pointers.length === 0 && !hasCredentials(o.input)) {
      // Nothing to remove: the event refers to the request's own values, for immediate
      // serialization (it prints the same text as a copy; see decisionRecordLine).
      if (o.input !== null) event.input = o.input;
      if (o.result !== undefined) event.result = o.result;
    } else {
      const doc: MaskableEvent = {};
      if (o.input !== null) doc.input = cloneForLog(o.input);
      if (o.result !== undefined) doc.result = cloneForLog(o.result);
      const redaction = redactCredentials(doc.input);
      erased.push(...redaction.erased, ...applyMask(doc, ctx.mask));
      masked.unshift(...redaction.masked);
      if (doc.input !== undefined) event.input = doc.input;
      if (doc.result !== undefined) event.result = doc.result;
    }
  } catch (err) {
    // Leave input and result out rather than lose the record (or log them unredacted).
    event.error = `input and result omitted: ${err instanceof Error ? err.message : String(err)}`;
  }
  if (o.shadow !== undefined) event.custom.shadow = shadowEvent(o.shadow, ctx, erased);
  if (erased.length > 0) event.erased = erased;
  if (masked.length > 0) event.masked = masked;

  const requestedBy = o.remoteAddr ?? o.input?.request.remote_addr;
  if (requestedBy) event.requested_by = requestedBy;
  return event;
}

/**
 * The shadow evaluation, with its result masked like the enforced one: an
 * operator's `/result/...` pointer applies to both results (erased pointers are
 * listed under `/custom/shadow/result/...`), so a candidate cannot leak what the
 * enforced result's mask hides.
 */
function shadowEvent(s: ShadowOutcome, ctx: EventContext, erased: string[]): ShadowEvent {
  const event: ShadowEvent = { path: s.path, bundle: s.bundle, allow: s.allow, agree: s.agreement === 'error' ? null : s.agreement === 'agree' };
  if (s.result !== undefined) {
    try {
      const doc: MaskableEvent = { result: cloneForLog(s.result) };
      for (const p of applyMask(doc, ctx.mask)) erased.push(p.replace(/^\/result/, '/custom/shadow/result'));
      if (doc.result !== undefined) event.result = doc.result;
    } catch {
      // Leave the result out rather than lose the record.
    }
  }
  if (s.reason !== undefined) event.error = s.reason;
  return event;
}

/** OPA-style timers: integer nanoseconds, only those that were measured. */
function timers(o: RequestOutcome): Record<string, number> {
  const metrics: Record<string, number> = {};
  if (isDuration(o.evalNs)) metrics['timer_rego_query_eval_ns'] = Math.round(o.evalNs);
  if (isDuration(o.durationNs)) metrics['timer_regate_request_ns'] = Math.round(o.durationNs);
  // 0 is the forwarder's "no response headers arrived", not a measurement.
  if (isDuration(o.upstreamNs) && o.upstreamNs > 0) metrics['timer_regate_upstream_ns'] = Math.round(o.upstreamNs);
  if (isDuration(o.shadow?.evalNs)) metrics['timer_regate_shadow_eval_ns'] = Math.round(o.shadow.evalNs);
  return metrics;
}

function isDuration(ns: number | undefined): ns is number {
  return ns !== undefined && Number.isFinite(ns) && ns >= 0;
}

/** regate's fields. The path may be a raw refused target: redact a token in it like any other value. */
function customFields(o: RequestOutcome, masked: string[]): DecisionEvent['custom'] {
  const path = redactJwts(o.path);
  if (path !== o.path) masked.push('/custom/http_path');
  const authn: DecisionEvent['custom']['authn'] = { outcome: o.authn.outcome };
  if (o.authn.reason !== undefined) authn.reason = o.authn.reason;
  if (o.authn.issuer !== undefined) authn.issuer = o.authn.issuer;
  const custom: DecisionEvent['custom'] = {
    route_id: o.routeId,
    http_method: o.method,
    http_path: path,
    http_status: o.status,
    decision: o.decision,
    reason: o.reason,
    authn,
    scopes: o.scopes,
  };
  if (o.upstreamStatus !== undefined) custom.upstream_status = o.upstreamStatus;
  if (o.resource !== undefined) custom.resource = o.resource;
  if (o.body !== undefined) custom.body = o.body;
  if (o.frontEnd !== undefined) custom.front_end = o.frontEnd;
  if (o.credentials !== undefined && o.credentials.length > 0) custom.credentials = o.credentials;
  if (o.dryRun !== undefined) {
    custom.dry_run = true;
    custom.dry_run_decision = o.dryRun.decision;
    custom.dry_run_reason = o.dryRun.reason;
  }
  return custom;
}

/**
 * Epoch nanoseconds → RFC 3339 UTC with up to 9 fractional digits, trailing
 * zeros trimmed, exactly as Go formats `time.RFC3339Nano` (OPA's `timestamp`).
 */
export function formatRfc3339Nano(ns: bigint): string {
  let seconds = ns / 1_000_000_000n;
  let frac = ns % 1_000_000_000n;
  if (frac < 0n) {
    // BigInt division truncates toward zero; instants before 1970 need floor.
    seconds -= 1n;
    frac += 1_000_000_000n;
  }
  const base = new Date(Number(seconds) * 1000).toISOString().slice(0, 19);
  const digits = frac.toString().padStart(9, '0').replace(/0+$/, '');
  return digits === '' ? `${base}Z` : `${base}.${digits}Z`;
}

const disabled: DecisionLog = {
  enabled: false,
  write: () => {},
  writeEvent: () => {},
  whenWritable: () => undefined,
  flushSync: () => {},
  close: async () => {},
};

/**
 * Create the decision log from its config. Everything is compiled here (labels,
 * mask pointers); `write` only builds and writes one event.
 */
export function createDecisionLog(config: DecisionLogConfig, meta: DecisionLogMeta, options: DecisionLogOptions = {}): DecisionLog {
  if (!config.enabled) return disabled;
  const ctx = createEventContext(config, meta);
  const onError = options.onError ?? warnOnce();
  const upload = options.upload;

  const owned = options.stream === undefined ? openDestination(config.destination) : undefined;
  const stream: DestinationStream | LogSink = owned ?? options.stream!;
  const sink: LogSink | undefined =
    owned !== undefined
      ? new BoundedLogStream(owned, { maxBytes: config.max_buffer_bytes, policy: config.overload }, options.onDrop ? { onDrop: options.onDrop } : {})
      : isLogSink(options.stream)
        ? options.stream
        : undefined;
  const writeLine = sink !== undefined ? (line: string): void => void sink.write(line) : (line: string): void => void stream.write(line);
  const emitter = stream as Partial<NodeJS.EventEmitter>;
  // An unhandled 'error' on the destination would crash the proxy; a lost log line must not.
  if (typeof emitter.on === 'function') emitter.on('error', (err: Error) => onError(err));

  let closing: Promise<void> | undefined;
  return {
    enabled: true,
    write(outcome: RequestOutcome): void {
      if (closing !== undefined) {
        // Close belongs after the proxy drained; a straggler is reported, not thrown.
        onError(new Error(`decision log closed; record ${outcome.decisionId} dropped`));
        return;
      }
      const line = decisionRecordLine(outcome, ctx);
      writeLine(line);
      upload?.(eventOfLine(line));
    },
    writeEvent(event: Readonly<Record<string, unknown>>): void {
      if (closing !== undefined) return;
      // `decision_log.mask` applies to these lines' input and result too.
      const out: Record<string, unknown> = { type: DECISION_LOG_TYPE, ...event, labels: ctx.labels, bundles: ctx.bundles() };
      if (ctx.mask.pointers.length > 0) {
        const doc: MaskableEvent = {};
        if (event.input !== undefined) doc.input = cloneForLog(event.input);
        if (event.result !== undefined) doc.result = cloneForLog(event.result);
        const erased = applyMask(doc, ctx.mask);
        if (doc.input !== undefined) out.input = doc.input;
        if (doc.result !== undefined) out.result = doc.result;
        if (erased.length > 0) out.erased = erased;
      }
      const line = decisionLine(out as unknown as DecisionEvent);
      writeLine(line);
      upload?.(eventOfLine(line));
    },
    whenWritable(): Promise<void> | undefined {
      return closing === undefined ? sink?.whenWritable() : undefined;
    },
    flushSync(): void {
      try {
        owned?.flushSync();
      } catch {
        // Not open yet or already closed: nothing buffered that we can still write.
      }
    },
    close(): Promise<void> {
      if (owned === undefined) return Promise.resolve();
      closing ??= new Promise((resolve) => {
        owned.once('close', () => resolve());
        try {
          // end() waits for the file to open, writes the buffer, fsyncs, closes (never fd 1/2).
          owned.end();
        } catch {
          // Already destroyed by a write error: nothing left to flush.
          resolve();
        }
      });
      return closing;
    },
  };
}

/**
 * One record as pino's `info(event, DECISION_LOG_MESSAGE)` wrote it (level,
 * time, the event's fields, msg), built directly: the event is already plain
 * JSON (cloned, bigints made exact), so pino's per-key serialization pass only
 * cost time on the request path — it was a third of the record's cost.
 */
export function decisionLine(event: DecisionEvent): string {
  const fields = JSON.stringify(event);
  return `{"level":"info","time":"${new Date().toISOString()}",${fields.slice(1, -1)},"msg":"${DECISION_LOG_MESSAGE}"}\n`;
}

const LINE_SUFFIX = `,"msg":"${DECISION_LOG_MESSAGE}"}\n`;
const EVENT_START = `"type":${JSON.stringify(DECISION_LOG_TYPE)},`;

/**
 * The OPA event of a line from {@link decisionLine}: the same record without
 * the console logger's `level`, `time`, `type` and `msg` — what OPA uploads to
 * a decision-log service is the bare `EventV1`, which has none of them. Two
 * slices of the line's text: no parse.
 */
export function eventOfLine(line: string): string {
  return `{${line.slice(line.indexOf(EVENT_START) + EVENT_START.length, line.length - LINE_SUFFIX.length)}}`;
}

/**
 * The line for one outcome. Usually the event shares the request's input and
 * result (no copy: nothing to mask or redact) and JSON.stringify prints them
 * as they are — `input.time.now_ns` exactly, through its toJSON. A value it
 * cannot print natively (an integer beyond 2^53 in a request body) throws, and
 * the record is built again on the copying path, which makes every bigint exact.
 */
export function decisionRecordLine(outcome: RequestOutcome, ctx: EventContext): string {
  try {
    const event = buildDecisionEvent(outcome, ctx, { share: true });
    // The policy engine already printed this very input (src/policy/wasm.ts): splice its text in.
    const inputJson = outcome.input !== null && event.input === outcome.input ? rememberedJson(outcome.input) : undefined;
    if (inputJson === undefined) return decisionLine(event);
    event.input = INPUT_SLOT;
    const line = decisionLine(event);
    const at = line.indexOf(INPUT_SLOT_JSON);
    return `${line.slice(0, at)}${inputJson}${line.slice(at + INPUT_SLOT_JSON.length)}`;
  } catch {
    return decisionLine(buildDecisionEvent(outcome, ctx));
  }
}

function isLogSink(stream: DestinationStream | LogSink | undefined): stream is LogSink {
  return typeof (stream as Partial<LogSink> | undefined)?.whenWritable === 'function';
}

/** Where the input's text goes; random per process, so no logged value can contain it. */
const INPUT_SLOT = `\u0000regate-input-${randomUUID()}\u0000`;
const INPUT_SLOT_JSON = JSON.stringify(INPUT_SLOT);

/** stdout / stderr / a file (parent directories created), written asynchronously by sonic-boom. */
function openDestination(destination: string): ReturnType<typeof pino.destination> {
  const dest = destination === 'stdout' ? 1 : destination === 'stderr' ? 2 : destination;
  // Buffer mode: in string mode sonic-boom re-measures (and so flattens) its whole pending
  // string on every write — up to 16 KiB of garbage per record under load.
  return pino.destination({ dest, sync: false, mkdir: true, contentMode: 'buffer' });
}

function warnOnce(): (err: Error) => void {
  let warned = false;
  return (err) => {
    if (warned) return;
    warned = true;
    process.emitWarning(`regate decision log: write failed, records are being lost: ${err.message}`, { code: 'REGATE_DECISION_LOG_WRITE_FAILED' });
  };
}
