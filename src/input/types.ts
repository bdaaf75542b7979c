/**
 * The policy input document: what a Rego policy sees as `input`.
 * Stable and documented in the README ("Policy input"). Add fields; never rename.
 */
import type { TlsInfo } from '../tls/tls-info.ts';

export interface PolicyInput {
  readonly request: {
    /** Decision id, also the decision log's `decision_id` and the `X-Request-Id` sent upstream. */
    readonly id: string;
    /** Upper-case method. */
    readonly method: string;
    /** Canonical (decoded, validated) path, e.g. `/v1/models/sentiment/predict`. */
    readonly path: string;
    /** Named template parameters, decoded: `{model: "sentiment"}`. */
    readonly params: Readonly<Record<string, string>>;
    /** Parsed query: every key maps to the list of its values, in order. */
    readonly query: Readonly<Record<string, readonly string[]>>;
    /** Lower-case header names; repeated headers joined with ", "; Authorization and Cookie removed. */
    readonly headers: Readonly<Record<string, string>>;
    /** Host without port, lower-case. */
    readonly host: string;
    readonly remote_addr: string;
    /**
     * The TLS connection, present only when regate terminated TLS for this client
     * (`listen.proxy.tls`): protocol version, cipher and, when the handshake verified
     * one against `ca_file`, the client certificate (src/tls/tls-info.ts for the formats).
     */
    readonly tls?: TlsInfo;
    /**
     * The request body parsed as JSON, only on routes with `body` configured
     * and only when its Content-Type is `application/json` or a `+json` type and it
     * parses (UTF-8, at most 64 levels deep; integers beyond 2^53 exact).
     * Absent otherwise; the decision log's `custom.body` says why
     * (`body_empty`, `body_not_json`, `body_malformed`). The upstream receives
     * exactly the bytes this was parsed from.
     */
    readonly body?: unknown;
    /**
     * `true` on a WebSocket upgrade request (a route with `websocket: true`);
     * absent on every other request, so `not input.request.websocket` reads naturally.
     */
    readonly websocket?: true;
    /**
     * On a gRPC route (`routes[].grpc`) only: the called method, from the
     * canonical path `/{service}/{method}`, e.g.
     * `{service: "inference.GRPCInferenceService", method: "ModelInfer"}`.
     */
    readonly grpc?: { readonly service: string; readonly method: string };
  };
  readonly route: {
    readonly id: string;
    readonly attributes: Readonly<Record<string, unknown>>;
  };
  readonly subject: {
    /** False for `auth: none` routes and for `auth: optional` without a token. */
    readonly authenticated: boolean;
    readonly sub: string;
    readonly iss: string;
    readonly roles: readonly string[];
    readonly groups: readonly string[];
    readonly scopes: readonly string[];
    readonly tenant: string;
  };
  /** All verified claims; `{}` when unauthenticated. */
  readonly token: Readonly<Record<string, unknown>>;
  /**
   * `input.time`: the request's instant (regate's clock: the system clock, or
   * `clock.fixed` / `REGATE_CLOCK` / `regate eval --time`, which also decide
   * token expiry) and its local calendar fields in the route's `timezone`,
   * else `policy.timezone`.
   */
  readonly time: TimeInput;
  /**
   * Attributes of the addressed resource, as the route's catalog
   * (`routes[].resource`) answered them: the JSON object the catalog returned
   * for the URL filled with this request's path params, possibly from cache
   * (at most `ttl_s` old). Present only on routes with `resource` and only for
   * authenticated requests (an anonymous request on an `auth: optional` route
   * does not reach the catalog: absent). A failed lookup never reaches the
   * policy: the request is denied first.
   */
  readonly resource?: Readonly<Record<string, unknown>>;
}

export interface TimeInput {
  /** Nanoseconds since the epoch, as a JSON integer (exact). */
  readonly now_ns: bigint;
  /** UTC instant, RFC 3339 with ms, e.g. `2026-03-09T16:00:00.000Z`. */
  readonly rfc3339: string;
  /** The IANA zone `local` is computed in. */
  readonly timezone: string;
  readonly local: {
    /** `YYYY-MM-DD` */
    readonly date: string;
    /** `HH:MM:SS` (24h) */
    readonly clock: string;
    readonly year: number;
    readonly month: number;
    readonly day: number;
    readonly hour: number;
    readonly minute: number;
    readonly second: number;
    /** `Monday` … `Sunday` (same spelling as Rego's `time.weekday`). */
    readonly weekday: string;
    /** UTC offset of the zone at this instant, e.g. `-08:00`. */
    readonly offset: string;
  };
}
