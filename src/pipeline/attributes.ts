/**
 * The stages between authentication and the policy that the proxy
 * (`handle.ts`) and `regate eval` share, so an offline evaluation builds
 * exactly the input the server would have built:
 *
 * ```
 * gatherAttributes(...)  → input.resource (catalog) and input.request.body, in parallel
 * requestInput(...)      → the policy input (buildInput, in the route's time zone)
 * ```
 *
 * Both callers run canonicalizeTarget → router.match → authenticate before
 * these, and the policy after, in that order.
 */

import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { ResourceLookup } from '../attributes/catalog.ts';
import type { Identity } from '../authn/types.ts';
import { RegateError, UnsupportedMediaTypeError } from '../errors.ts';
import { parseBody, readBody, type BodyInput, type BodyStatus } from '../http/body.ts';
import type { CanonicalTarget } from '../http/canonicalize.ts';
import { buildInput } from '../input/build.ts';
import type { PolicyInput } from '../input/types.ts';
import type { CompiledRoute } from '../runtime.ts';
import type { HeaderFields } from '../upstream/headers.ts';

/** Where the body comes from: the live request (read, bounded) or bytes at hand (`regate eval`). */
export type BodySource = IncomingMessage | Buffer;

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
 * throws: the decision log wants both (an `Exchange` on the proxy).
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
  body: BodySource,
  sink: AttributeSink,
  suppliedResource?: Readonly<Record<string, unknown>>,
): Promise<RequestAttributes> {
  const source = route.resource;
  const bodyConfig = route.config.body;
  if (source === null && bodyConfig === undefined) return NONE;

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
  const read = bodyConfig === undefined ? Promise.resolve(undefined) : readBody(body, { maxBytes: bodyConfig.max_bytes, idleMs: route.bodyIdleMs });

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

/** The request facts the input is built from (the `Exchange` on the proxy). */
export interface RequestFacts {
  readonly id: string;
  readonly method: string;
  readonly host: string;
  readonly remoteAddr: string;
  /** The request's one instant: `input.time`, and what `time.now_ns()` returns. */
  readonly nowNs: bigint;
}

/**
 * Stage 5: the policy input, in the route's time zone (`routes[].timezone`,
 * else `policy.timezone`), with what {@link gatherAttributes} found.
 */
export function requestInput(
  facts: RequestFacts,
  headers: IncomingHttpHeaders,
  target: CanonicalTarget,
  params: Readonly<Record<string, string>>,
  route: CompiledRoute,
  identity: Identity | null,
  attributes: RequestAttributes,
): PolicyInput {
  return buildInput({
    requestId: facts.id,
    method: facts.method,
    path: target.path,
    params,
    query: target.query,
    headers,
    host: facts.host,
    remoteAddr: facts.remoteAddr,
    route: route.config,
    identity,
    time: route.time.build(facts.nowNs),
    ...(attributes.resource !== undefined ? { resource: attributes.resource } : {}),
    ...(attributes.body?.status === 'parsed' ? { body: attributes.body.value } : {}),
  });
}

/**
 * Upstream headers for a body regate has read: its exact length as
 * Content-Length (a chunked upload is re-framed; Transfer-Encoding is
 * hop-by-hop and already gone). A request that had no body framing at all
 * (a GET) gets none added. `headers` is returned, modified.
 */
export function withBody(headers: HeaderFields, req: IncomingMessage, bytes: Buffer | undefined): HeaderFields {
  if (bytes === undefined) return headers;
  delete headers['transfer-encoding'];
  const framed = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
  if (framed || bytes.length > 0) headers['content-length'] = String(bytes.length);
  else delete headers['content-length'];
  return headers;
}
