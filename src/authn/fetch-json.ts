/**
 * One bounded HTTP exchange with an identity provider (discovery documents,
 * introspection): no redirects (undici `request` follows none), one deadline
 * for connect + headers + body, a size cap checked against Content-Length and
 * again while streaming, the body decoded as strict UTF-8. The socket is
 * always released. Used by src/authn/discovery.ts and src/authn/introspection.ts;
 * JWKS fetches (src/authn/jwks.ts) keep their own conditional-request variant.
 */
import { request } from '../upstream/undici.ts';

export interface FetchTextOptions {
  readonly method: 'GET' | 'POST';
  readonly headers: Record<string, string>;
  readonly body?: string;
  readonly timeoutMs: number;
  readonly maxBytes: number;
  /** Aborted when the owner closes (a replaced runtime). */
  readonly signal?: AbortSignal;
}

export interface FetchTextResult {
  readonly status: number;
  readonly text: string;
}

/** Raised for a response over the size cap (the caller's error type wraps it). */
export class ResponseTooLargeError extends Error {
  constructor(limit: number) {
    super(`response larger than ${limit} bytes`);
    this.name = 'ResponseTooLargeError';
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
const ignore = (): void => {};

export async function fetchText(url: string, options: FetchTextOptions): Promise<FetchTextResult> {
  const { timeoutMs, maxBytes } = options;
  const signal = options.signal === undefined ? AbortSignal.timeout(timeoutMs) : AbortSignal.any([AbortSignal.timeout(timeoutMs), options.signal]);
  const res = await request(url, {
    method: options.method,
    headers: options.headers,
    ...(options.body !== undefined ? { body: options.body } : {}),
    signal,
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
  });
  try {
    const declared = Number(res.headers['content-length']);
    if (declared > maxBytes) throw new ResponseTooLargeError(maxBytes);
    const chunks: Buffer[] = [];
    let total = 0;
    for await (const chunk of res.body) {
      total += (chunk as Buffer).length;
      if (total > maxBytes) throw new ResponseTooLargeError(maxBytes);
      chunks.push(chunk as Buffer);
    }
    return { status: res.statusCode, text: utf8.decode(Buffer.concat(chunks, total)) };
  } finally {
    if (!res.body.destroyed) {
      res.body.on('error', ignore);
      res.body.destroy();
    }
  }
}

/** `https:`, or `http:` to a loopback host (127.0.0.0/8, ::1, localhost): the rule for every URL an IdP hands regate. */
export function isSecureOrLoopback(url: URL): boolean {
  if (url.protocol === 'https:') return true;
  if (url.protocol !== 'http:') return false;
  const host = url.hostname;
  return host === 'localhost' || host === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}
