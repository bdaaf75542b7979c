/**
 * The token exchange broker of one runtime (`broker`): its key ring, replay
 * store, client keys and upstream-token cache, and the HTTP front end of the
 * paths it serves on the proxy listener before routing:
 *
 * - `POST <broker.path>`: RFC 8693 token exchange (src/broker/exchange.ts);
 * - `GET /.well-known/jwks.json`: every published signing key;
 * - `GET /.well-known/oauth-authorization-server`: RFC 8414 metadata.
 *
 * Every token request ends in one decision-log line and one count in
 * `regate_broker_grants_total`; answers are OAuth JSON with
 * `Cache-Control: no-store`.
 */

import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Identity } from '../authn/types.ts';
import type { Clock } from '../clock.ts';
import type { BrokerConfig } from '../config/types.ts';
import { PayloadTooLargeError, RegateError } from '../errors.ts';
import { admitBody } from '../http/body-gate.ts';
import { readBody } from '../http/body.ts';
import { formatRfc3339Nano, type DecisionLog } from '../observe/decision-log.ts';
import type { TimeInputBuilder } from '../input/time.ts';
import type { PolicyEngine } from '../policy/types.ts';
import { KeyRing } from '../signing/keys.ts';
import { createClientAuthenticator, type ClientAuthenticator } from './client-auth.ts';
import { ACCESS_TOKEN_TYPE, exchange, JWT_TOKEN_TYPE, TOKEN_EXCHANGE_GRANT, type ExchangeDeps, type ExchangeTrace, type Grant } from './exchange.ts';
import { parseForm } from './form.ts';
import { brokerMetrics, type BrokerMetrics, type GrantResult } from './metrics.ts';
import { OAuthError } from './oauth-error.ts';
import { ReplayStore } from './replay.ts';
import { UpstreamTokenMinter } from './upstream-token.ts';

export const JWKS_PATH = '/.well-known/jwks.json';
export const METADATA_PATH = '/.well-known/oauth-authorization-server';

export interface Broker {
  readonly config: BrokerConfig;
  /** Whether `path` (the raw request target's path) is one the broker answers. */
  serves(target: string): boolean;
  /** Answer a request for a path it {@link serves}. Never rejects. */
  handle(req: IncomingMessage, res: ServerResponse): Promise<void>;
  /** `routes[].upstream_token`: the token the upstream receives for this caller. */
  readonly upstreamTokens: UpstreamTokenMinter;
  readonly keys: KeyRing;
  close(): void;
}

export interface BrokerDeps {
  readonly source: string;
  readonly verifyToken: (token: string) => Promise<Identity>;
  readonly policy: PolicyEngine;
  readonly clock: Clock;
  readonly time: TimeInputBuilder;
  readonly registry: import('prom-client').Registry;
  readonly decisionLog: Pick<DecisionLog, 'writeEvent'>;
  readonly logger: Logger;
  /** Longest pause between two body bytes (`limits.body_idle_timeout_ms`). */
  readonly bodyIdleMs: number;
  /** Poll key files for changes (not for `regate check` / `eval`). Default true. */
  readonly watchKeys?: boolean;
}

/** Build the broker; throws ConfigError / SigningKeyError for unusable key files. */
export async function createBroker(config: BrokerConfig, deps: BrokerDeps): Promise<Broker> {
  const now = (): number => Number(deps.clock.nowNs() / 1_000_000n) / 1000;
  const keys = await KeyRing.load(
    config.signing_keys,
    {
      reloaded: (file, result, err) =>
        result === 'success' ? deps.logger.info({ file }, 'broker signing key file re-read') : deps.logger.error({ file, err: err?.message }, 'broker signing key file refused: its previous key stays in use'),
    },
    { poll: deps.watchKeys ?? true },
  );
  const replay = new ReplayStore({ maxEntries: config.replay.max_entries, now });
  const tokenEndpoint = `${config.issuer.replace(/\/+$/, '')}${config.path}`;
  let clients: ClientAuthenticator;
  try {
    clients = createClientAuthenticator(config.clients, { audiences: [config.issuer, tokenEndpoint], replay, now, source: deps.source });
  } catch (err) {
    keys.close();
    throw err;
  }
  const metrics: BrokerMetrics = brokerMetrics(deps.registry);
  const exchangeDeps: ExchangeDeps = { config, verifyToken: deps.verifyToken, policy: deps.policy, keys, clients, replay, now, time: (ns) => deps.time.build(ns) };
  const metadata = JSON.stringify({
    issuer: config.issuer,
    token_endpoint: tokenEndpoint,
    jwks_uri: `${new URL(config.issuer).origin}${JWKS_PATH}`,
    grant_types_supported: [TOKEN_EXCHANGE_GRANT],
    token_endpoint_auth_methods_supported: config.client_auth.includes('private_key_jwt') ? ['private_key_jwt'] : ['none'],
    ...(config.client_auth.includes('private_key_jwt') ? { token_endpoint_auth_signing_alg_values_supported: [...new Set(config.clients.flatMap((c) => c.algorithms))] } : {}),
    response_types_supported: [],
    scopes_supported: [],
    authorization_details_types_supported: [],
    // regate's own: the token types it exchanges and issues.
    token_types_supported: [JWT_TOKEN_TYPE, ACCESS_TOKEN_TYPE],
  });
  const upstreamTokens = new UpstreamTokenMinter({ config, keys, now, metrics });
  let inFlight = 0;

  const served = new Set([config.path, JWKS_PATH, METADATA_PATH]);
  const pathOf = (target: string): string => {
    const q = target.indexOf('?');
    return q === -1 ? target : target.slice(0, q);
  };

  async function tokenRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = process.hrtime.bigint();
    const nowNs = deps.clock.nowNs();
    const id = randomUUID();
    const trace: ExchangeTrace = { reasons: [] };
    let grant: Grant | undefined;
    let failure: OAuthError | undefined;
    let closeAfter = false;
    inFlight++;
    try {
      if (inFlight > config.max_concurrent) throw new OAuthError('temporarily_unavailable', 'overloaded', 'too many token requests at once: retry later', 503);
      if (req.method !== 'POST') throw new OAuthError('invalid_request', 'method_not_allowed', 'the token endpoint takes POST', 405);
      const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
      if (type !== 'application/x-www-form-urlencoded') throw new OAuthError('invalid_request', 'unsupported_media_type', 'the body must be application/x-www-form-urlencoded', 415);
      if (new URL(req.url ?? '/', 'http://x').search !== '') throw new OAuthError('invalid_request', 'query_parameters', 'parameters belong in the form body, not the query');
      const declared = Number(req.headers['content-length'] ?? 0);
      if (declared > config.max_body_bytes) throw new OAuthError('invalid_request', 'body_too_large', `the body is larger than ${config.max_body_bytes} bytes`, 413);
      admitBody(req);
      let body: Buffer;
      try {
        body = await readBody(req, { maxBytes: config.max_body_bytes, idleMs: deps.bodyIdleMs });
      } catch (err) {
        if (err instanceof PayloadTooLargeError) throw new OAuthError('invalid_request', 'body_too_large', `the body is larger than ${config.max_body_bytes} bytes`, 413);
        throw new OAuthError('invalid_request', err instanceof RegateError ? err.reason : 'body_unreadable', 'the body could not be read');
      }
      const form = parseForm(body);
      grant = await exchange(exchangeDeps, { id, form, nowNs, remoteAddr: req.socket.remoteAddress ?? '', userAgent: req.headers['user-agent'] }, trace);
    } catch (err) {
      failure = err instanceof OAuthError ? err : new OAuthError('server_error', 'internal_error', 'the exchange failed', 500, { cause: err });
      if (failure.reason === 'internal_error') deps.logger.error({ err, decision_id: id }, 'token exchange failed');
    } finally {
      inFlight--;
    }
    // A body left unread (refused before reading) would desynchronise the connection.
    closeAfter = failure !== undefined && !req.complete;
    const headers: Record<string, string> = { 'content-type': 'application/json', 'cache-control': 'no-store', pragma: 'no-cache' };
    if (closeAfter) headers.connection = 'close';
    let status = 200;
    let text: string;
    if (grant !== undefined) {
      text = JSON.stringify({
        access_token: grant.token,
        issued_token_type: grant.issuedTokenType,
        token_type: 'Bearer',
        expires_in: grant.expiresIn,
        ...(grant.scopes.length > 0 ? { scope: grant.scopes.join(' ') } : {}),
      });
    } else {
      status = failure!.status;
      text = failure!.body();
      if (status === 401) headers['www-authenticate'] = `Bearer error="invalid_client", error_description="${failure!.message.replaceAll('"', "'")}"`;
      if (status === 405) headers.allow = 'POST';
      if (status === 503) headers['retry-after'] = '1';
    }
    if (!res.destroyed) {
      res.writeHead(status, headers);
      res.end(text);
    }
    const result: GrantResult = grant !== undefined ? 'granted' : status >= 500 && status !== 503 ? 'error' : 'refused';
    const reason = grant !== undefined ? 'granted' : failure!.reason;
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    metrics.grant(result, reason, seconds);
    try {
      deps.decisionLog.writeEvent({
        decision_id: id,
        timestamp: formatRfc3339Nano(nowNs),
        ...(trace.input !== undefined ? { path: config.entrypoint, input: trace.input } : {}),
        ...(trace.result !== undefined ? { result: trace.result } : {}),
        metrics: { timer_server_handler_ns: Math.round(seconds * 1e9), ...(trace.evalNs !== undefined ? { timer_rego_query_eval_ns: trace.evalNs } : {}) },
        custom: {
          broker: {
            result,
            reason,
            http_status: status,
            ...(failure !== undefined ? { error: failure.error } : {}),
            reasons: trace.reasons,
            ...(trace.client !== undefined ? { client: trace.client } : {}),
            ...(trace.input !== undefined
              ? {
                  subject: trace.input.subject.sub,
                  ...(trace.input.actor !== undefined ? { actor: trace.input.actor.sub } : {}),
                  asked: { audience: trace.input.requested.audience, scope: trace.input.requested.scope ?? null, resource: trace.input.requested.resource },
                }
              : {}),
            ...(grant !== undefined ? { granted: { audience: grant.audience, scope: grant.scopes, expires_in: grant.expiresIn, jti: grant.jti, kid: grant.kid } } : {}),
          },
        },
      });
    } catch (err) {
      deps.logger.error({ err, decision_id: id }, 'writing the broker decision log line failed');
    }
  }

  return {
    config,
    keys,
    upstreamTokens,
    serves: (target) => served.has(pathOf(target)),
    async handle(req, res) {
      const path = pathOf(req.url ?? '/');
      if (path === config.path) return tokenRequest(req, res);
      const isJwks = path === JWKS_PATH;
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'application/json', ...(req.complete ? {} : { connection: 'close' }) });
        res.end(JSON.stringify({ error: 'invalid_request', error_description: 'GET only' }));
        return;
      }
      const text = isJwks ? keys.jwks() : metadata;
      // Short cache: a `next` key must reach verifiers before it signs (rotation lead time > max-age).
      res.writeHead(200, { 'content-type': isJwks ? 'application/jwk-set+json' : 'application/json', 'cache-control': 'public, max-age=60' });
      res.end(req.method === 'HEAD' ? undefined : text);
    },
    close() {
      keys.close();
    },
  };
}
