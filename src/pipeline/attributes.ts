/**
 * Stage 4 of `check()` (src/pipeline/check.ts), between authentication and
 * the input: what the route asks for beyond the request line — catalog
 * attributes (`input.resource`) and the JSON body (`input.request.body`) — and,
 * for the proxy front end, the upstream framing of a body regate read.
 */

import type { IncomingHttpHeaders } from 'node:http';
import type { ResourceLookup } from '../attributes/catalog.ts';
import type { Identity } from '../authn/types.ts';
import { InternalError, RegateError, UnsupportedMediaTypeError } from '../errors.ts';
import { parseBody, readBody, type BodyInput, type BodyStatus } from '../http/body.ts';
import type { CompiledRoute } from '../runtime.ts';
import type { ClientFields, HeaderFields } from '../upstream/headers.ts';
import type { BodySource } from './view.ts';

/**
 * Decision-log value of `custom.resource`: how the lookup was answered
 * (`hit`, `coalesced`, `miss`), its failure reason (`resource_timeout`, ...),
 * `skipped` (an anonymous request on an `auth: optional` route: the catalog is
 * never asked on nobody's behalf) or `supplied` (`regate eval --resource`).
 */
export type ResourceStatus = ResourceLookup['source'] | 'skipped' | 'supplied' | (string & {});

/** What {@link gatherAttributes} found. Each part is absent when the route does not ask for it. */
export interface RequestAttributes {
  /** The catalog's attributes → `input.resource`. */
  readonly resource?: Readonly<Record<string, unknown>>;
  /** The body bytes read: forwarded upstream unchanged. */
  readonly bodyBytes?: Buffer;
  /** What the policy sees of the body → `input.request.body` when parsed. */
  readonly body?: BodyInput;
}

/**
 * Where {@link gatherAttributes} records how each part went, also when it
 * throws: the verdict (and so the decision log) wants both.
 */
export interface AttributeSink {
  resourceStatus: ResourceStatus | undefined;
  bodyStatus: BodyStatus | undefined;
}

const NONE: RequestAttributes = Object.freeze({});

/**
 * Stage 4: look the resource up and read the body, in parallel (independent:
 * a slow catalog and a slow upload overlap). Only for a route that asks; the
 * catalog only for an authenticated caller. `suppliedResource` stands in for
 * the catalog (`regate eval --resource`).
 *
 * @throws (rejects) PayloadTooLargeError / RequestTimeoutError / BadRequestError
 *   from the body, AttributeSourceError from the catalog. Both are awaited
 *   before either is thrown; a body error wins (it is the client's own, and
 *   deterministic).
 */
export async function gatherAttributes(
  route: CompiledRoute,
  params: Readonly<Record<string, string>>,
  identity: Identity | null,
  headers: IncomingHttpHeaders,
  body: BodySource | null,
  sink: AttributeSink,
  suppliedResource?: Readonly<Record<string, unknown>>,
): Promise<RequestAttributes> {
  const source = route.resource;
  const bodyConfig = route.config.body;
  if (source === null && bodyConfig === undefined) return NONE;
  // Before any lookup starts: nothing is left running for a request refused here.
  if (bodyConfig !== undefined && body === null) {
    throw new InternalError('body_unavailable', 'this route reads the request body for the policy, and this front end does not receive bodies');
  }

  let lookup: Promise<Readonly<Record<string, unknown>> | undefined> = Promise.resolve(undefined);
  if (source !== null) {
    if (identity === null) {
      sink.resourceStatus = 'skipped';
    } else if (suppliedResource !== undefined) {
      sink.resourceStatus = 'supplied';
      lookup = Promise.resolve(suppliedResource);
    } else {
      lookup = source.lookup(params).then(
        (found) => {
          sink.resourceStatus = found.source;
          return found.attributes;
        },
        (err: unknown) => {
          if (err instanceof RegateError) sink.resourceStatus = err.reason;
          throw err;
        },
      );
    }
  }
  if (bodyConfig !== undefined) refuseEncodedBody(headers['content-encoding']);
  const read = bodyConfig === undefined || body === null ? Promise.resolve(undefined) : readBody(body, { maxBytes: bodyConfig.max_bytes, idleMs: route.bodyIdleMs });

  // allSettled: neither promise is left to reject unobserved when the other fails.
  const [resource, bytes] = await Promise.allSettled([lookup, read]);
  if (bytes.status === 'rejected') throw bytes.reason;
  if (resource.status === 'rejected') throw resource.reason;

  const out: { resource?: Readonly<Record<string, unknown>>; bodyBytes?: Buffer; body?: BodyInput } = {};
  if (resource.value !== undefined) out.resource = resource.value;
  if (bytes.value !== undefined) {
    out.bodyBytes = bytes.value;
    out.body = parseBody(bytes.value, first(headers['content-type']));
    sink.bodyStatus = out.body.status;
  }
  return out;
}

/**
 * The policy judges the body's bytes as sent; with a content coding it would
 * judge compressed bytes (unparsed, so no body) while the upstream inflates and
 * acts on the real document. Only identity is accepted on `body` routes.
 */
function refuseEncodedBody(encoding: string | string[] | undefined): void {
  if (encoding === undefined) return;
  for (const v of Array.isArray(encoding) ? encoding : [encoding]) {
    for (const coding of v.split(',')) {
      const c = coding.trim().toLowerCase();
      if (c !== '' && c !== 'identity') {
        throw new UnsupportedMediaTypeError('unsupported_content_encoding', 'this route reads the request body for the policy: send it without a Content-Encoding');
      }
    }
  }
}

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/**
 * Upstream headers for a body regate has read: its exact length as
 * Content-Length (a chunked upload is re-framed; Transfer-Encoding is
 * hop-by-hop and already gone). A request that had no body framing at all
 * (a GET) gets none added. `headers` is returned, modified.
 */
export function withBody(headers: HeaderFields, req: ClientFields, bytes: Buffer | undefined): HeaderFields {
  if (bytes === undefined) return headers;
  delete headers['transfer-encoding'];
  const framed = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
  if (framed || bytes.length > 0) headers['content-length'] = String(bytes.length);
  else delete headers['content-length'];
  return headers;
}
