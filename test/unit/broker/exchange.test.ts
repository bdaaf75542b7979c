/**
 * exchange() without sockets: a stub verifier (identities by token string) and a
 * stub policy engine (the raw result given per test) around the real form parser,
 * replay store, key ring and signer.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { decodeJwt } from 'jose';
import type { Identity } from '../../../src/authn/types.ts';
import { createClientAuthenticator } from '../../../src/broker/client-auth.ts';
import { exchange, type ExchangeDeps, type ExchangeTrace } from '../../../src/broker/exchange.ts';
import { parseForm } from '../../../src/broker/form.ts';
import { OAuthError } from '../../../src/broker/oauth-error.ts';
import { ReplayStore } from '../../../src/broker/replay.ts';
import type { BrokerConfig } from '../../../src/config/types.ts';
import { AuthnError } from '../../../src/errors.ts';
import type { PolicyEngine } from '../../../src/policy/types.ts';
import { KeyRing } from '../../../src/signing/keys.ts';

const NOW = 1_800_000_000;
const CONFIG: BrokerConfig = {
  path: '/oauth2/token',
  issuer: 'https://broker.test',
  signing_keys: [],
  entrypoint: 'b/grant',
  audiences: ['api', 'other'],
  default_ttl_s: 300,
  max_ttl_s: 900,
  actor_token: 'optional',
  client_auth: ['subject_token'],
  clients: [],
  single_use_subject_tokens: false,
  replay: { max_entries: 100 },
  max_body_bytes: 16384,
  max_concurrent: 64,
  token_type: 'at+jwt',
  upstream_token_cache: { max_entries: 10 },
};

const identity = (sub: string, claims: Record<string, unknown> = {}, exp = NOW + 3600): Identity => ({
  sub,
  iss: 'https://idp.test',
  issuerId: 'idp',
  roles: [],
  groups: [],
  scopes: [],
  tenant: '',
  claims: { sub, exp, ...claims },
  exp,
});

let keys: KeyRing;
before(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'regate-exchange-'));
  const file = join(dir, 'k.jwk');
  writeFileSync(file, JSON.stringify({ ...generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' }), kid: 'k' }));
  keys = await KeyRing.load([{ file, use: 'active' }], {}, { poll: false });
});
after(() => keys.close());

function deps(result: unknown, config: Partial<BrokerConfig> = {}, tokens: Record<string, Identity> = {}): ExchangeDeps & { seen: unknown[] } {
  const replay = new ReplayStore({ maxEntries: 100, now: () => NOW });
  const seen: unknown[] = [];
  const policy = {
    revision: '',
    entrypoints: ['b/grant'],
    unsupportedBuiltins: [],
    evaluate(_ep: string, input: unknown) {
      seen.push(input);
      return { decision: { allow: true, reasons: [], headers: {}, responseHeaders: {}, raw: result }, evalNs: 1 };
    },
  } as PolicyEngine;
  return {
    config: { ...CONFIG, ...config },
    verifyToken: async (t) => {
      const id = tokens[t] ?? { alice: identity('alice') }[t];
      if (id === undefined) throw new AuthnError('invalid_signature', 'no');
      return id;
    },
    policy,
    keys,
    clients: createClientAuthenticator([], { audiences: [], replay, now: () => NOW, source: 'x' }),
    replay,
    now: () => NOW,
    time: () => ({ now_ns: 0n }) as never,
    seen,
  };
}

const req = (params: Record<string, string>) => ({
  id: 'd1',
  form: parseForm(Buffer.from(new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token_type: 'urn:ietf:params:oauth:token-type:jwt', subject_token: 'alice', ...params }).toString())),
  nowNs: BigInt(NOW) * 1_000_000_000n,
  remoteAddr: '127.0.0.1',
  userAgent: 'ua',
});
const trace = (): ExchangeTrace => ({ reasons: [] });
const refusedWith = (reason: string) => (err: unknown) => err instanceof OAuthError && err.reason === reason;

describe('exchange', () => {
  it('lifetime: min(policy ttl, max_ttl_s, subject exp)', async () => {
    const g1 = await exchange(deps({ allow: true, ttl_s: 5000 }), req({ audience: 'api' }), trace());
    assert.equal(g1.expiresIn, 900);
    const d = deps({ allow: true }, {}, { short: identity('short', {}, NOW + 42) });
    const g2 = await exchange(d, req({ audience: 'api', subject_token: 'short' }), trace());
    assert.equal(g2.expiresIn, 42);
    await assert.rejects(exchange(deps({ allow: true }, {}, { gone: identity('gone', {}, NOW) }), req({ audience: 'api', subject_token: 'gone' }), trace()), refusedWith('subject_token_expiring'));
  });

  it('policy input: requested fields, absent scope when none asked, client and request', async () => {
    const d = deps({ allow: true });
    await exchange(d, req({ audience: 'api', resource: 'https://r.test/x', authorization_details: '[{"type":"t","x":1}]' }), trace());
    const input = d.seen[0] as Record<string, any>;
    assert.deepEqual(input.requested.audience, ['api']);
    assert.equal('scope' in input.requested, false);
    assert.deepEqual(input.requested.resource, ['https://r.test/x']);
    assert.deepEqual(input.requested.authorization_details, [{ type: 't', x: 1 }]);
    assert.deepEqual(input.client, { id: 'alice', authenticated_by: 'subject_token' });
    assert.deepEqual(input.request, { id: 'd1', remote_addr: '127.0.0.1', headers: { 'user-agent': 'ua' } });
    assert.equal(input.actor, undefined);
  });

  it('authorization_details granted must be among the requested ones (key order ignored)', async () => {
    const ok = await exchange(deps({ allow: true, authorization_details: [{ x: 1, type: 't' }] }), req({ audience: 'api', authorization_details: '[{"type":"t","x":1}]' }), trace());
    assert.deepEqual(decodeJwt(ok.token).authorization_details, [{ x: 1, type: 't' }]);
    await assert.rejects(exchange(deps({ allow: true, authorization_details: [{ type: 'admin' }] }), req({ audience: 'api', authorization_details: '[{"type":"t"}]' }), trace()), refusedWith('authorization_details_not_requested'));
  });

  it('single_use_subject_tokens: a jti once; no jti refused', async () => {
    const d = deps({ allow: true }, { single_use_subject_tokens: true }, { once: identity('once', { jti: 'j1' }), nojti: identity('nojti') });
    await exchange(d, req({ audience: 'api', subject_token: 'once' }), trace());
    await assert.rejects(exchange(d, req({ audience: 'api', subject_token: 'once' }), trace()), refusedWith('subject_token_replayed'));
    await assert.rejects(exchange(d, req({ audience: 'api', subject_token: 'nojti' }), trace()), refusedWith('subject_jti_missing'));
  });

  it('actor_token: required; without client_auth actor_token / subject_token the caller is unauthenticated', async () => {
    await assert.rejects(exchange(deps({ allow: true }, { actor_token: 'required' }), req({ audience: 'api' }), trace()), refusedWith('missing_parameter'));
    await assert.rejects(exchange(deps({ allow: true }, { client_auth: ['private_key_jwt'] }), req({ audience: 'api' }), trace()), (e: unknown) => e instanceof OAuthError && e.status === 401 && e.error === 'invalid_client');
    const d = deps({ allow: true }, { client_auth: ['actor_token'] }, { agent: identity('agent', { act: { sub: 'ignored' } }) });
    const g = await exchange(d, req({ audience: 'api', actor_token: 'agent', actor_token_type: 'urn:ietf:params:oauth:token-type:jwt' }), trace());
    assert.deepEqual(decodeJwt(g.token).act, { sub: 'agent', iss: 'https://idp.test' }, "the actor token's own act is not carried");
    await assert.rejects(exchange(d, req({ audience: 'api', actor_token: 'forged', actor_token_type: 'urn:ietf:params:oauth:token-type:jwt' }), trace()), refusedWith('actor_invalid_signature'));
  });

  it('several audiences requested: the policy must choose one of them', async () => {
    const twoAudiences = { ...req({}), form: parseForm(Buffer.from(`${new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: 'alice', subject_token_type: 'urn:ietf:params:oauth:token-type:jwt' })}&audience=api&audience=other`)) };
    await assert.rejects(exchange(deps({ allow: true }), twoAudiences, trace()), refusedWith('audience_missing'));
    const g = await exchange(deps({ allow: true, audience: 'other' }), twoAudiences, trace());
    assert.equal(g.audience, 'other');
  });
});
