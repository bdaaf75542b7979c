/**
 * Request bodies for routes that give the policy the body (`routes[].body`).
 *
 * {@link readBody} buffers the body, bounded by `max_bytes` whatever the
 * framing says: a Content-Length above the limit is refused before a byte is
 * read, and a chunked body (or one whose Content-Length is a lie node's parser
 * has not caught yet) is refused as soon as the bytes read cross the limit.
 * Nothing is forwarded then: the pipeline answers 413 and closes the
 * connection, so the unread rest is never parsed as a next request.
 *
 * {@link parseBody} decides what the policy sees: the parsed JSON for
 * `application/json` and `+json` bodies, otherwise nothing, with a
 * reason for the decision log. The bytes are forwarded unchanged either way:
 * the upstream receives exactly what the policy judged.
 */

import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { BadRequestError, PayloadTooLargeError, RequestTimeoutError } from '../errors.ts';
import { parseJsonDocument } from '../input/json.ts';
import { admitBody } from './body-gate.ts';

/** Why `input.request.body` is absent (decision log `custom.body`), or `parsed`. */
export type BodyStatus = 'parsed' | 'body_empty' | 'body_not_json' | 'body_malformed';

/** What the policy gets from a read body. */
export interface BodyInput {
  readonly status: BodyStatus;
  /** The parsed JSON value; present only when `status` is `parsed`. */
  readonly value?: unknown;
}

/**
 * What {@link readBody} reads from: node's `IncomingMessage`, or anything
 * shaped like it (the HTTP/2 front end's stream, src/http2/view.ts).
 */
export interface BodyStream {
  readonly headers: IncomingHttpHeaders;
  readonly readableEnded: boolean;
  /** The whole body was received. */
  readonly complete: boolean;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the events read here: data, end, error, close
  on(event: string, listener: (...args: any[]) => void): unknown;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  off(event: string, listener: (...args: any[]) => void): unknown;
  pause(): unknown;
}

/** Limits of {@link readBody}. */
export interface BodyReadOptions {
  /** Largest body accepted, bytes. */
  readonly maxBytes: number;
  /** Longest pause between two chunks before the read fails with 408. */
  readonly idleMs: number;
}

/**
 * Read the whole request body into one Buffer. `source` may also be bytes
 * already at hand (`regate eval --body`): the same limit applies.
 *
 * @throws (rejects) PayloadTooLargeError `body_too_large` (413),
 *   RequestTimeoutError `body_timeout` / `request_timeout` (408), BadRequestError `client_closed`
 *   when the client went away mid-body.
 */
export function readBody(source: BodyStream | Buffer, options: BodyReadOptions): Promise<Buffer> {
  const { maxBytes, idleMs } = options;
  if (Buffer.isBuffer(source)) return source.length > maxBytes ? Promise.reject(tooLarge(maxBytes)) : Promise.resolve(source);
  const req = source;
  const declared = req.headers['content-length'];
  // node has validated the syntax (digits only, no duplicates that disagree).
  if (declared !== undefined && Number(declared) > maxBytes) return Promise.reject(tooLarge(maxBytes));
  if (req.readableEnded) return Promise.resolve(Buffer.alloc(0));
  // Sends `100 Continue` if the client waits for it (not for a declared size over the limit, above);
  // the signal aborts on the body idle timeout or the request deadline (src/http/body-gate.ts).
  // Only an HTTP/1.1 request has a gate (100-continue, deadlines); HTTP/2 streams are bounded by the idle timer.
  const signal = admitBody(req as IncomingMessage);
  if (signal?.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    let timer: NodeJS.Timeout | undefined;
    const arm = (): void => {
      clearTimeout(timer);
      timer = setTimeout(() => fail(new RequestTimeoutError('body_timeout', `no request body bytes for ${idleMs} ms`)), idleMs);
    };
    const onAbort = (): void => fail(signal!.reason as Error);
    const cleanup = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onClose);
      req.off('close', onClose);
    };
    const fail = (err: Error): void => {
      cleanup();
      // Stop pulling bytes: the rest is never read, the response closes the connection.
      req.pause();
      reject(err);
    };
    const onData = (chunk: Buffer): void => {
      total += chunk.length;
      if (total > maxBytes) {
        fail(tooLarge(maxBytes));
        return;
      }
      chunks.push(chunk);
      arm();
    };
    const onEnd = (): void => {
      cleanup();
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total));
    };
    const onClose = (): void => {
      if (req.complete) return; // 'end' follows
      fail(new BadRequestError('client_closed', 'the client closed the connection before the body was complete'));
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onClose);
    req.on('close', onClose);
    signal?.addEventListener('abort', onAbort);
    arm();
  });
}

function tooLarge(maxBytes: number): PayloadTooLargeError {
  return new PayloadTooLargeError('body_too_large', `request body larger than ${maxBytes} bytes`);
}

/**
 * What the policy sees of a body. JSON only when the Content-Type says so
 * (`application/json` or a `+json` structured syntax suffix, RFC 6839 §3.1;
 * parameters such as charset ignored) and the bytes parse.
 */
export function parseBody(bytes: Uint8Array, contentType: string | undefined): BodyInput {
  if (bytes.length === 0) return EMPTY;
  if (contentType === undefined || !isJsonMediaType(contentType)) return NOT_JSON;
  let value: unknown;
  try {
    value = parseJsonDocument(bytes);
  } catch {
    return MALFORMED;
  }
  // A lone surrogate escape (`"\ud800"`) is valid JSON text but names no
  // character: the policy would judge U+FFFD (as OPA does, precise-json.ts)
  // while the upstream receives and decodes the escape its own way. Not the
  // same request, so not parsed. The bytes are valid UTF-8 (fatal decoder),
  // so a surrogate can only come from an escape: look for one before walking.
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if ((buf.includes(ESCAPE_UD_LOWER) || buf.includes(ESCAPE_UD_UPPER)) && hasLoneSurrogate(value)) return MALFORMED;
  return { status: 'parsed', value };
}

const ESCAPE_UD_LOWER = Buffer.from('\\ud');
const ESCAPE_UD_UPPER = Buffer.from('\\uD');
// In a `u` regex a valid pair is one astral code point; only a lone code unit is General_Category Cs.
const LONE_SURROGATE = /\p{Cs}/u;

/** Whether any string or key in a parsed JSON value holds a surrogate code unit without its pair. */
export function hasLoneSurrogate(value: unknown): boolean {
  if (typeof value === 'string') return LONE_SURROGATE.test(value);
  if (typeof value !== 'object' || value === null) return false;
  if (Array.isArray(value)) return value.some(hasLoneSurrogate);
  for (const [k, v] of Object.entries(value)) if (LONE_SURROGATE.test(k) || hasLoneSurrogate(v)) return true;
  return false;
}

const EMPTY: BodyInput = Object.freeze({ status: 'body_empty' });
const NOT_JSON: BodyInput = Object.freeze({ status: 'body_not_json' });
const MALFORMED: BodyInput = Object.freeze({ status: 'body_malformed' });

/** `application/json`, `application/merge-patch+json`, ...; case-insensitive, parameters ignored. */
export function isJsonMediaType(contentType: string): boolean {
  const semi = contentType.indexOf(';');
  const type = (semi === -1 ? contentType : contentType.slice(0, semi)).trim().toLowerCase();
  const slash = type.indexOf('/');
  if (slash <= 0 || slash === type.length - 1) return false;
  const subtype = type.slice(slash + 1);
  return subtype === 'json' ? type === 'application/json' : subtype.endsWith('+json');
}
