/**
 * examples/ml-platform end to end: the example's config, policy and bundle
 * data (policy/data.json) in a real regate process in front of a real
 * upstream. Every allowed call goes through once; every kind of denial the
 * policy names is exercised and must not reach the platform.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { assertAllowed, assertDenied, exampleToken, startExample, type ExampleRig } from '../../helpers/examples.ts';
import { startUpstreamServer, type TestUpstream } from '../../helpers/upstream-server.ts';

const NAME = 'ml-platform';

let platform: TestUpstream;
let rig: ExampleRig;

const user = (sub: string, tenant: string, roles: string[] = []) => exampleToken(NAME, { sub, claims: { tenant, roles } });

before(async () => {
  platform = await startUpstreamServer();
  rig = await startExample(NAME, { upstreams: { platform: platform.url } });
});

after(async () => {
  await rig?.stop();
  await platform?.close();
});

const allowed = (method: string, path: string, token: string, reasons: string[], body?: unknown) =>
  assertAllowed(rig, () => rig.call(method, path, token, body), { method, path, reasons });

const denied = (method: string, path: string, token: string, reasons: string[], body?: unknown) =>
  assertDenied(rig, [platform], () => rig.call(method, path, token, body), reasons);

describe('ml-platform: allowed calls', () => {
  it('project members read and write what their project role allows', async () => {
    const bob = await user('bob', 'retail');
    const { echo } = await allowed('GET', '/v1/tenants/retail/datasets/churn-events', bob, ['bob is viewer in project churn']);
    assert.equal(echo.headers['x-user'], 'bob');
    assert.equal(echo.headers['x-tenant'], 'retail');
    await allowed('GET', '/v1/tenants/retail/feature-sets/customer-activity', bob, ['bob is viewer in project churn']);
    await allowed('GET', '/v1/tenants/retail/models/churn-xgb', bob, ['bob is viewer in project churn']);
    await allowed('POST', '/v1/tenants/retail/endpoints/churn-scoring/invocations', bob, ['bob is viewer in project churn'], { rows: [[1, 2]] });

    const alice = await user('alice', 'retail');
    await allowed('GET', '/v1/tenants/retail/datasets/churn-labels', alice, ['alice is contributor in project churn']);
    await allowed('PUT', '/v1/tenants/retail/feature-sets/customer-activity', alice, ['alice is contributor in project churn'], { features: [] });
    await allowed('POST', '/v1/tenants/retail/models/churn-xgb/versions', alice, ['alice is contributor in project churn'], { run: 'r-81' });
    await allowed('POST', '/v1/tenants/retail/models/churn-xgb/versions/7/stages/staging', alice, ['alice is contributor in project churn']);
    await allowed('PUT', '/v1/tenants/retail/endpoints/churn-scoring-canary', alice, ['alice is contributor in project churn'], { version: 7 });

    const olga = await user('olga', 'retail');
    await allowed('GET', '/v1/tenants/retail/datasets/customer-pii', olga, ['olga is owner in project churn']);
  });

  it('the release role changes production', async () => {
    const erin = await user('erin', 'retail', ['release']);
    const both = ['erin is contributor in project churn', 'the release role may change production'];
    await allowed('POST', '/v1/tenants/retail/models/churn-xgb/versions/7/stages/production', erin, both);
    await allowed('PUT', '/v1/tenants/retail/endpoints/churn-scoring', erin, both, { version: 7 });
  });

  it('a tenant admin browses every project of their own tenant', async () => {
    const tara = await user('tara', 'retail', ['tenant_admin']);
    await allowed('GET', '/v1/tenants/retail/datasets/clickstream', tara, ['tara is viewer in project recsys']);
    await allowed('GET', '/v1/tenants/retail/models/churn-xgb', tara, ['tara is viewer in project churn']);
  });
});

describe('ml-platform: tenant isolation is never crossable', () => {
  it('not for a member, not for a tenant admin with the release role', async () => {
    const alice = await user('alice', 'retail');
    await denied('GET', '/v1/tenants/payments/datasets/chargebacks', alice, ['tenant isolation: a retail token may not access tenant payments']);
    const tara = await user('tara', 'retail', ['tenant_admin', 'release']);
    await denied('GET', '/v1/tenants/payments/datasets/chargebacks', tara, ['tenant isolation: a retail token may not access tenant payments']);
    await denied('PUT', '/v1/tenants/payments/endpoints/fraud-scoring', tara, ['tenant isolation: a retail token may not access tenant payments'], {
      version: 1,
    });
  });

  it('not even for the owner of the other tenant\'s project, holding a token of this tenant', async () => {
    const frank = await user('frank', 'retail');
    await denied('GET', '/v1/tenants/payments/datasets/card-transactions', frank, ['tenant isolation: a retail token may not access tenant payments']);
  });

  it('a token without a tenant claim is refused by regate (401 missing_claim)', async () => {
    const seen = platform.requests.length;
    const t = await exampleToken(NAME, { sub: 'alice', claims: { roles: ['tenant_admin'] } });
    const res = await rig.call('GET', '/v1/tenants/retail/datasets/churn-events', t);
    assert.equal(res.status, 401);
    assert.equal(res.json().reason, 'missing_claim');
    assert.equal(platform.requests.length, seen);
  });
});

describe('ml-platform: membership, sensitivity and operational context', () => {
  it('unknown resources and non-members', async () => {
    const alice = await user('alice', 'retail');
    await denied('GET', '/v1/tenants/retail/datasets/does-not-exist', alice, ['no dataset does-not-exist in tenant retail']);
    await denied('GET', '/v1/tenants/retail/datasets/clickstream', alice, ['alice is not a member of project recsys']);
  });

  it('a viewer may not write; sensitive data needs a higher project role', async () => {
    const bob = await user('bob', 'retail');
    await denied('PUT', '/v1/tenants/retail/feature-sets/customer-activity', bob, [
      'write on feature set customer-activity (internal) needs project role contributor; bob is viewer',
    ], { features: [] });
    await denied('GET', '/v1/tenants/retail/datasets/churn-labels', bob, ['read on dataset churn-labels (confidential) needs project role contributor; bob is viewer']);
    const alice = await user('alice', 'retail');
    await denied('GET', '/v1/tenants/retail/datasets/customer-pii', alice, ['read on dataset customer-pii (restricted) needs project role owner; alice is contributor']);
  });

  it('a tenant admin never reads restricted data', async () => {
    const tara = await user('tara', 'retail', ['tenant_admin']);
    await denied('GET', '/v1/tenants/retail/datasets/customer-pii', tara, ['read on dataset customer-pii (restricted) needs project role owner; tara is viewer']);
  });

  it('only the release role changes production — not a contributor, not an owner', async () => {
    const alice = await user('alice', 'retail');
    await denied('POST', '/v1/tenants/retail/models/churn-xgb/versions/7/stages/production', alice, [
      'changing production (model churn-xgb) needs the release role',
    ]);
    await denied('PUT', '/v1/tenants/retail/endpoints/churn-scoring', alice, ['changing production (endpoint churn-scoring) needs the release role'], { version: 7 });
    const olga = await user('olga', 'retail', ['tenant_admin']);
    await denied('PUT', '/v1/tenants/retail/endpoints/churn-scoring', olga, ['changing production (endpoint churn-scoring) needs the release role'], { version: 7 });
  });

  it('the release role does not replace project membership', async () => {
    const rita = await user('rita', 'retail', ['release']);
    await denied('PUT', '/v1/tenants/retail/endpoints/churn-scoring', rita, ['rita is not a member of project churn'], { version: 7 });
    const bob = await user('bob', 'retail', ['release']);
    await denied('POST', '/v1/tenants/retail/models/churn-xgb/versions/7/stages/production', bob, [
      'write on model churn-xgb (internal) needs project role contributor; bob is viewer',
    ]);
  });

  it('an unknown stage', async () => {
    const erin = await user('erin', 'retail', ['release']);
    await denied('POST', '/v1/tenants/retail/models/churn-xgb/versions/7/stages/archived', erin, ['unknown stage archived (staging or production)']);
  });
});
