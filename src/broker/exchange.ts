/**
 * One RFC 8693 token exchange: form → checks → the broker policy → regate's
 * limits → a signed JWT, or an {@link OAuthError}. Transport-neutral: the HTTP
 * front end is src/broker/endpoint.ts.
 *
 * Order (each step refuses with a stable reason):
 * 1. `grant_type` is token exchange (`unsupported_grant_type`); token types,
 *    `scope`, `resource`, `authorization_details` well formed (`invalid_request`
 *    / `invalid_scope` / `invalid_target`).
 * 2. The caller is authenticated by one of `broker.client_auth` (401 `invalid_client`).
 * 3. `subject_token` (and `actor_token`) verified by the configured issuers with
 *    the verifier requests use (src/authn/jwt.ts: alg allowlist, iss, aud,
 *    exp/nbf) → `invalid_grant` with the authentication reason.
 * 4. The entrypoint decides; a policy error is 500 `server_error` (fail closed).
 * 5. regate enforces: audience among `broker.audiences` (and the requested ones),
 *    scopes ⊆ requested, ttl ≤ `max_ttl_s` and ≤ the subject/actor token's `exp`.
 */

import type { Identity } from '../authn/types.ts';
import type { BrokerConfig } from '../config/types.ts';
import { AuthnError, PolicyError } from '../errors.ts';
import type { TimeInput } from '../input/types.ts';
import type { PolicyEngine } from '../policy/types.ts';
import type { KeyRing } from '../signing/keys.ts';
import { newJti, signJwt } from '../signing/mint.ts';
import { JWT_BEARER_ASSERTION, type ClientAuthenticator } from './client-auth.ts';
import { authorizationDetails, normalizeGrant, parseScope } from './decision.ts';
import { one, type Form } from './form.ts';
import { OAuthError } from './oauth-error.ts';
import type { ReplayStore } from './replay.ts';

export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const JWT_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:jwt';
export const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
const TOKEN_TYPES: ReadonlySet<string> = new Set([JWT_TOKEN_TYPE, ACCESS_TOKEN_TYPE]);
/** Longest `authorization_details` parameter, bytes. */
export const MAX_AUTHORIZATION_DETAILS_BYTES = 8192;

/** The verified parties, as the policy sees them. */
export interface PartyInput {
  readonly sub: string;
  readonly iss: string;
  /** Config id of the issuer that verified the token. */
  readonly issuer: string;
  readonly roles: readonly string[];
  readonly groups: readonly string[];
  readonly scopes: readonly string[];
  readonly tenant: string;
  readonly claims: Readonly<Record<string, unknown>>;
}

/** `input` of the broker entrypoint (README "Token exchange broker"). */
export interface BrokerInput {
  readonly subject: PartyInput;
  readonly actor?: PartyInput;
  readonly client: { readonly id: string; readonly authenticated_by: 'private_key_jwt' | 'actor_token' | 'subject_token' };
  readonly requested: {
    readonly audience: readonly string[];
    readonly scope?: readonly string[];
    readonly resource: readonly string[];
    readonly authorization_details?: readonly Record<string, unknown>[];
    readonly requested_token_type: string;
    readonly subject_token_type: string;
    readonly actor_token_type?: string;
  };
  readonly request: { readonly id: string; readonly remote_addr: string; readonly headers: Readonly<Record<string, string>> };
  readonly time: TimeInput;
}

/** What was granted. */
export interface Grant {
  readonly token: string;
  readonly issuedTokenType: string;
  readonly expiresIn: number;
  readonly scopes: readonly string[];
  readonly audience: string;
  readonly jti: string;
  readonly kid: string;
}

/** Everything the closing step logs (never a token). */
export interface ExchangeTrace {
  input?: BrokerInput;
  result?: unknown;
  evalNs?: number;
  reasons: readonly string[];
  client?: string;
}

export interface ExchangeDeps {
  readonly config: BrokerConfig;
  readonly verifyToken: (token: string) => Promise<Identity>;
  readonly policy: PolicyEngine;
  readonly keys: KeyRing;
  readonly clients: ClientAuthenticator;
  readonly replay: ReplayStore;
  /** Seconds since the epoch. */
  readonly now: () => number;
  readonly time: (nowNs: bigint) => TimeInput;
}

export interface ExchangeRequest {
  readonly id: string;
  readonly form: Form;
  readonly nowNs: bigint;
  readonly remoteAddr: string;
  readonly userAgent: string | undefined;
}

const bad = (reason: string, description: string): OAuthError => new OAuthError('invalid_request', reason, description);

function party(id: Identity): PartyInput {
  return { sub: id.sub, iss: id.iss, issuer: id.issuerId, roles: id.roles, groups: id.groups, scopes: id.scopes, tenant: id.tenant, claims: id.claims };
}

async function verified(deps: ExchangeDeps, token: string, which: 'subject' | 'actor'): Promise<Identity> {
  try {
    return await deps.verifyToken(token);
  } catch (err) {
    const reason = err instanceof AuthnError ? err.reason : 'invalid_token';
    // `invalid_grant` for the subject token (RFC 6749 §5.2); `invalid_request` names a bad actor token (RFC 8693 §2.2.2).
    throw new OAuthError(which === 'subject' ? 'invalid_grant' : 'invalid_request', `${which}_${reason}`, `the ${which}_token is not valid (${reason})`, undefined, { cause: err });
  }
}

function tokenType(value: string | undefined, name: string, required: boolean): string | undefined {
  if (value === undefined) {
    if (required) throw bad('missing_parameter', `${name} is required`);
    return undefined;
  }
  if (!TOKEN_TYPES.has(value)) throw bad('unsupported_token_type', `${name} must be ${JWT_TOKEN_TYPE} or ${ACCESS_TOKEN_TYPE}`);
  return value;
}

function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    return `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** Run one exchange. Rejects only with OAuthError; `trace` is filled in as far as it got. */
export async function exchange(deps: ExchangeDeps, req: ExchangeRequest, trace: ExchangeTrace): Promise<Grant> {
  const { config } = deps;
  const form = req.form;
  // 1. The request's shape.
  const grantType = one(form, 'grant_type');
  if (grantType === undefined) throw bad('missing_parameter', 'grant_type is required');
  if (grantType !== TOKEN_EXCHANGE_GRANT) throw new OAuthError('unsupported_grant_type', 'unsupported_grant_type', `only ${TOKEN_EXCHANGE_GRANT} is supported`);
  const subjectToken = one(form, 'subject_token');
  if (subjectToken === undefined) throw bad('missing_parameter', 'subject_token is required');
  const subjectTokenType = tokenType(one(form, 'subject_token_type'), 'subject_token_type', true)!;
  const actorToken = one(form, 'actor_token');
  const actorTokenType = tokenType(one(form, 'actor_token_type'), 'actor_token_type', actorToken !== undefined);
  if (actorToken === undefined && actorTokenType !== undefined) throw bad('unexpected_parameter', 'actor_token_type without actor_token');
  if (actorToken === undefined && config.actor_token === 'required') throw bad('missing_parameter', 'actor_token is required');
  const requestedTokenType = tokenType(one(form, 'requested_token_type'), 'requested_token_type', false) ?? ACCESS_TOKEN_TYPE;
  const scopeParam = one(form, 'scope');
  const scope = scopeParam === undefined ? undefined : parseScope(scopeParam);
  if (scopeParam !== undefined && scope === undefined) throw new OAuthError('invalid_scope', 'scope_malformed', 'scope must be space-separated scope-tokens (RFC 6749 §3.3)');
  const audience = [...new Set(form.get('audience') ?? [])];
  // A target regate never issues for is refused before anything is verified or decided.
  const foreign = audience.find((a) => !config.audiences.includes(a));
  if (foreign !== undefined) throw new OAuthError('invalid_target', 'audience_not_allowed', `tokens are not issued for audience ${JSON.stringify(foreign.slice(0, 128))}`);
  const resource = [...new Set(form.get('resource') ?? [])];
  for (const r of resource) {
    let url: URL | undefined;
    try {
      url = new URL(r);
    } catch {
      url = undefined;
    }
    if (url === undefined || url.hash !== '' || r.includes('#')) throw new OAuthError('invalid_target', 'resource_malformed', 'resource must be an absolute URI without a fragment (RFC 8707 §2)');
  }
  let details: Record<string, unknown>[] | undefined;
  const detailsParam = one(form, 'authorization_details');
  if (detailsParam !== undefined) {
    if (Buffer.byteLength(detailsParam) > MAX_AUTHORIZATION_DETAILS_BYTES) throw bad('authorization_details_malformed', `authorization_details is longer than ${MAX_AUTHORIZATION_DETAILS_BYTES} bytes`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(detailsParam);
    } catch {
      throw bad('authorization_details_malformed', 'authorization_details is not JSON');
    }
    details = authorizationDetails(parsed, (m) => bad('authorization_details_malformed', m));
  }

  // 2. Who calls.
  const assertion = one(form, 'client_assertion');
  const clientIdParam = one(form, 'client_id');
  let client: { id: string; authenticated_by: BrokerInput['client']['authenticated_by'] } | undefined;
  if (assertion !== undefined) {
    if (!config.client_auth.includes('private_key_jwt')) throw new OAuthError('invalid_client', 'client_auth_method_not_allowed', 'private_key_jwt is not accepted here', 401);
    if (one(form, 'client_assertion_type') !== JWT_BEARER_ASSERTION) throw bad('unsupported_assertion_type', `client_assertion_type must be ${JWT_BEARER_ASSERTION}`);
    client = { id: await deps.clients.verify(assertion, clientIdParam), authenticated_by: 'private_key_jwt' };
  }
  // 3. The tokens.
  const subject = await verified(deps, subjectToken, 'subject');
  const actor = actorToken === undefined ? undefined : await verified(deps, actorToken, 'actor');
  if (client === undefined) {
    if (actor !== undefined && config.client_auth.includes('actor_token')) client = { id: actor.sub, authenticated_by: 'actor_token' };
    else if (config.client_auth.includes('subject_token')) client = { id: subject.sub, authenticated_by: 'subject_token' };
    else throw new OAuthError('invalid_client', 'client_unauthenticated', `authenticate with one of: ${config.client_auth.join(', ')}`, 401);
  }
  trace.client = client.id;
  if (config.single_use_subject_tokens) {
    const jti = subject.claims.jti;
    if (typeof jti !== 'string' || jti === '') throw new OAuthError('invalid_grant', 'subject_jti_missing', 'the subject_token has no jti (single use is required)');
    const used = deps.replay.use(`subject\u0000${subject.iss}\u0000${jti}`, subject.exp);
    if (used === 'replayed') throw new OAuthError('invalid_grant', 'subject_token_replayed', 'the subject_token was already exchanged (single use)');
    if (used === 'full') throw new OAuthError('temporarily_unavailable', 'replay_store_full', 'too many single-use grants in flight: retry later');
  }

  // 4. The policy.
  const input: BrokerInput = {
    subject: party(subject),
    ...(actor !== undefined ? { actor: party(actor) } : {}),
    client,
    requested: {
      audience,
      ...(scope !== undefined ? { scope } : {}),
      resource,
      ...(details !== undefined ? { authorization_details: details } : {}),
      requested_token_type: requestedTokenType,
      subject_token_type: subjectTokenType,
      ...(actorTokenType !== undefined ? { actor_token_type: actorTokenType } : {}),
    },
    request: { id: req.id, remote_addr: req.remoteAddr, headers: req.userAgent !== undefined ? { 'user-agent': req.userAgent } : {} },
    time: deps.time(req.nowNs),
  };
  trace.input = input;
  let decision;
  try {
    const evaluation = deps.policy.evaluate(config.entrypoint, input, req.nowNs);
    trace.result = evaluation.decision.raw;
    trace.evalNs = evaluation.evalNs;
    decision = normalizeGrant(evaluation.decision.raw);
  } catch (err) {
    const reason = err instanceof PolicyError ? err.reason : 'policy_eval_error';
    throw new OAuthError('server_error', reason, 'the exchange could not be decided', 500, { cause: err });
  }
  trace.reasons = decision.reasons;
  if (!decision.allow) throw new OAuthError(decision.error, 'policy_denied', 'the exchange was refused by policy');

  // 5. regate's limits on top of the policy.
  const aud = decision.audience ?? (audience.length === 1 ? audience[0] : undefined);
  if (aud === undefined) throw new OAuthError('invalid_target', 'audience_missing', audience.length === 0 ? 'audience is required' : 'the policy chose none of the requested audiences');
  if (!config.audiences.includes(aud)) throw new OAuthError('invalid_target', 'audience_not_allowed', `tokens are not issued for audience ${JSON.stringify(aud.slice(0, 128))}`);
  if (audience.length > 0 && !audience.includes(aud)) throw new OAuthError('invalid_target', 'audience_not_requested', 'the policy chose an audience that was not requested');
  const scopes = decision.scopes ?? scope ?? [];
  if (scope !== undefined && !scopes.every((s) => scope.includes(s))) throw new OAuthError('invalid_scope', 'scope_not_requested', 'the policy granted a scope that was not requested');
  const grantedDetails = decision.authorization_details ?? details;
  if (details !== undefined && decision.authorization_details !== undefined) {
    const asked = new Set(details.map(canonical));
    if (!decision.authorization_details.every((d) => asked.has(canonical(d)))) throw new OAuthError('invalid_grant', 'authorization_details_not_requested', 'the policy granted authorization_details that were not requested');
  }
  const now = Math.floor(deps.now());
  const ttl = Math.min(decision.ttl_s ?? config.default_ttl_s, config.max_ttl_s, Math.floor(subject.exp) - now, actor !== undefined ? Math.floor(actor.exp) - now : Infinity);
  if (ttl < 1) throw new OAuthError('invalid_grant', 'subject_token_expiring', 'the subject token expires too soon to exchange');

  // The issued token. `act` nests the subject token's own chain (RFC 8693 §4.1);
  // nothing the client sent becomes a claim, and the policy's `claims` cannot set these.
  const priorAct = typeof subject.claims.act === 'object' && subject.claims.act !== null && !Array.isArray(subject.claims.act) ? subject.claims.act : undefined;
  const act = actor !== undefined ? { sub: actor.sub, iss: actor.iss, ...(priorAct !== undefined ? { act: priorAct } : {}) } : priorAct;
  const jti = newJti();
  const key = deps.keys.active();
  const payload: Record<string, unknown> = {
    ...decision.claims,
    iss: config.issuer,
    sub: subject.sub,
    aud,
    ...(scopes.length > 0 ? { scope: scopes.join(' ') } : {}),
    ...(grantedDetails !== undefined && grantedDetails.length > 0 ? { authorization_details: grantedDetails } : {}),
    ...(act !== undefined ? { act } : {}),
    ...(client.authenticated_by === 'private_key_jwt' ? { client_id: client.id } : {}),
    jti,
    iat: now,
    nbf: now,
    exp: now + ttl,
  };
  const token = signJwt(key, payload, config.token_type);
  return { token, issuedTokenType: requestedTokenType, expiresIn: ttl, scopes, audience: aud, jti, kid: key.kid };
}
