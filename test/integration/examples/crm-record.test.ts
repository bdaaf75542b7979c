/**
 * examples/crm-record end to end: the example's config and policy in a real
 * regate process, a real CRM stand-in upstream, tokens signed with the
 * example's dev key carrying RFC 9396 authorization_details.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { assertAllowed, assertDenied, buildExampleBundle, epochSeconds, exampleToken, startExample, type ExampleRig } from '../../helpers/examples.ts';
import { nowSeconds } from '../../helpers/tokens.ts';
import { startUpstreamServer, type TestUpstream } from '../../helpers/upstream-server.ts';

const NAME = 'crm-record';
const GRANT = { type: 'customer_record', actions: ['update'], identifier: 'cust-123' };
const PATCH = { status: 'resolved', note: 'refund issued for order 881' };

let crm: TestUpstream;
let rig: ExampleRig;
let bundle: string;

/** A token for the agent; `details: null` leaves the claim out. */
const agentToken = (details: unknown[] | null = [GRANT], extra: { now?: number } = {}) =>
  exampleToken(NAME, { ...extra, sub: 'complaint-agent', claims: details === null ? {} : { authorization_details: details } });

before(async () => {
  crm = await startUpstreamServer();
  bundle = await buildExampleBundle(NAME);
  rig = await startExample(NAME, { upstreams: { crm: crm.url }, bundle });
});

after(async () => {
  await rig?.stop();
  await crm?.close();
});

describe('crm-record: the agent may update the one granted record', () => {
  it('PATCH /v1/customers/cust-123 is forwarded with its body and the agent identity', async () => {
    const t = await agentToken();
    const { echo, record } = await assertAllowed(rig, () => rig.call('PATCH', '/v1/customers/cust-123', t, PATCH), {
      method: 'PATCH',
      path: '/v1/customers/cust-123',
      reasons: ['authorization_details grant: update on customer_record cust-123'],
    });
    assert.deepEqual(JSON.parse(echo.body), PATCH);
    assert.equal(echo.headers['x-agent'], 'complaint-agent');
    assert.deepEqual((record.input as any).token.authorization_details, [GRANT]);
  });

  it('a grant with an expires_at in the future is valid', async () => {
    const t = await agentToken([{ ...GRANT, expires_at: nowSeconds() + 600 }]);
    await assertAllowed(rig, () => rig.call('PATCH', '/v1/customers/cust-123', t, PATCH), { method: 'PATCH', path: '/v1/customers/cust-123' });
  });
});

describe('crm-record: every other call is denied', () => {
  it('a different record', async () => {
    const t = await agentToken();
    await assertDenied(rig, [crm], () => rig.call('PATCH', '/v1/customers/cust-124', t, PATCH), [
      'no authorization_details grant covers update on customer_record cust-124',
    ]);
  });

  it('an action not granted: read, delete', async () => {
    const t = await agentToken();
    await assertDenied(rig, [crm], () => rig.call('GET', '/v1/customers/cust-123', t), [
      'no authorization_details grant covers read on customer_record cust-123',
    ]);
    await assertDenied(rig, [crm], () => rig.call('DELETE', '/v1/customers/cust-123', t), [
      'no authorization_details grant covers delete on customer_record cust-123',
    ]);
  });

  it('nothing else in the CRM: listing, the record\'s orders, a support case', async () => {
    const t = await agentToken();
    await assertDenied(rig, [crm], () => rig.call('GET', '/v1/customers?q=smith', t), ['no authorization_details grant covers list on customer_record']);
    await assertDenied(rig, [crm], () => rig.call('GET', '/v1/customers/cust-123/orders', t), [
      'no authorization_details grant covers read on customer_orders cust-123',
    ]);
    await assertDenied(rig, [crm], () => rig.call('GET', '/v1/cases/case-77', t), ['no authorization_details grant covers read on support_case case-77']);
  });

  it('an expired grant (grant-level expires_at in the past)', async () => {
    const t = await agentToken([{ ...GRANT, expires_at: nowSeconds() - 1 }]);
    await assertDenied(rig, [crm], () => rig.call('PATCH', '/v1/customers/cust-123', t, PATCH), [
      'the grant for update on customer_record cust-123 has expired',
    ]);
  });

  it('a token without authorization_details', async () => {
    const t = await agentToken(null);
    await assertDenied(rig, [crm], () => rig.call('PATCH', '/v1/customers/cust-123', t, PATCH), ['the token carries no authorization_details']);
  });

  it('an expired token: 401 token_expired, before any policy work', async () => {
    const seen = crm.requests.length;
    // exp two minutes ago; the issuer's clock_tolerance_s is 5.
    const t = await exampleToken(NAME, { sub: 'complaint-agent', claims: { authorization_details: [GRANT] }, now: nowSeconds() - 180, ttlSeconds: 60 });
    const res = await rig.call('PATCH', '/v1/customers/cust-123', t, PATCH);
    assert.equal(res.status, 401);
    assert.equal(res.json().reason, 'token_expired');
    assert.match(String(res.headers['www-authenticate']), /error="invalid_token"/);
    assert.equal(crm.requests.length, seen);
  });

  it('no token, or a token for another API: 401', async () => {
    const seen = crm.requests.length;
    const none = await rig.call('PATCH', '/v1/customers/cust-123', undefined, PATCH);
    assert.equal(none.status, 401);
    assert.equal(none.json().reason, 'missing_token');
    const other = await exampleToken(NAME, { sub: 'complaint-agent', aud: 'billing-api', claims: { authorization_details: [GRANT] } });
    const wrongAud = await rig.call('PATCH', '/v1/customers/cust-123', other, PATCH);
    assert.equal(wrongAud.status, 401);
    assert.equal(wrongAud.json().reason, 'invalid_audience');
    assert.equal(crm.requests.length, seen);
  });
});

describe('crm-record: the grant ends exactly at expires_at (frozen clock)', () => {
  const AT = '2026-03-10T12:00:00Z';
  let frozen: ExampleRig;

  before(async () => {
    frozen = await startExample(NAME, { upstreams: { crm: crm.url }, bundle, env: { REGATE_CLOCK: AT } });
  });
  after(async () => {
    await frozen?.stop();
  });

  it('one second before: allowed; at the instant: denied', async () => {
    const now = epochSeconds(AT);
    const valid = await agentToken([{ ...GRANT, expires_at: now + 1 }], { now });
    await assertAllowed(frozen, () => frozen.call('PATCH', '/v1/customers/cust-123', valid, PATCH), { method: 'PATCH', path: '/v1/customers/cust-123' });
    const ended = await agentToken([{ ...GRANT, expires_at: now }], { now });
    await assertDenied(frozen, [crm], () => frozen.call('PATCH', '/v1/customers/cust-123', ended, PATCH), [
      'the grant for update on customer_record cust-123 has expired',
    ]);
  });
});
