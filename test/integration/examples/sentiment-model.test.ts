/**
 * examples/sentiment-model end to end: the example's config and policy in a
 * real regate process in front of a real upstream, Keycloak-style tokens
 * (realm_access.roles) signed with the example's dev key.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { assertAllowed, assertDenied, exampleToken, startExample, type ExampleRig } from '../../helpers/examples.ts';
import { startUpstreamServer, type TestUpstream } from '../../helpers/upstream-server.ts';

const NAME = 'sentiment-model';
const TEXT = { text: 'I love this model' };

let api: TestUpstream;
let rig: ExampleRig;

const tokenFor = (sub: string, roles: string[]) => exampleToken(NAME, { sub, claims: { realm_access: { roles } } });

before(async () => {
  api = await startUpstreamServer();
  rig = await startExample(NAME, { upstreams: { 'model-api': api.url } });
});

after(async () => {
  await rig?.stop();
  await api?.close();
});

describe('sentiment-model: allowed calls', () => {
  it('a data scientist calls predict; the model API sees who called', async () => {
    const t = await tokenFor('alice', ['data_scientist']);
    const { echo } = await assertAllowed(rig, () => rig.call('POST', '/v1/models/sentiment/predict', t, TEXT), {
      method: 'POST',
      path: '/v1/models/sentiment/predict',
      reasons: ['role data_scientist may call predict'],
    });
    assert.deepEqual(JSON.parse(echo.body), TEXT);
    assert.equal(echo.headers['x-regate-sub'], 'alice');
    assert.equal(echo.headers['x-regate-roles'], 'data_scientist');
  });

  it('an ML engineer calls predict and reads metadata and logs', async () => {
    const t = await tokenFor('bob', ['ml_engineer']);
    await assertAllowed(rig, () => rig.call('POST', '/v1/models/sentiment/predict', t, TEXT), {
      method: 'POST',
      path: '/v1/models/sentiment/predict',
      reasons: ['role ml_engineer may call predict'],
    });
    await assertAllowed(rig, () => rig.call('GET', '/v1/models/sentiment/metadata', t), {
      method: 'GET',
      path: '/v1/models/sentiment/metadata',
      reasons: ['role ml_engineer may call metadata'],
    });
    await assertAllowed(rig, () => rig.call('GET', '/v1/models/sentiment/logs?limit=5', t), {
      method: 'GET',
      path: '/v1/models/sentiment/logs?limit=5',
      reasons: ['role ml_engineer may call logs'],
    });
  });
});

describe('sentiment-model: denials', () => {
  it('a data scientist may not read metadata or logs', async () => {
    const t = await tokenFor('alice', ['data_scientist']);
    await assertDenied(rig, [api], () => rig.call('GET', '/v1/models/sentiment/metadata', t), ['none of the roles [data_scientist] may call metadata']);
    await assertDenied(rig, [api], () => rig.call('GET', '/v1/models/sentiment/logs', t), ['none of the roles [data_scientist] may call logs']);
  });

  it('nobody else: other roles, no roles', async () => {
    const analyst = await tokenFor('carol', ['analyst', 'viewer']);
    for (const [method, route] of [
      ['POST', 'predict'],
      ['GET', 'metadata'],
      ['GET', 'logs'],
    ] as const) {
      await assertDenied(rig, [api], () => rig.call(method, `/v1/models/sentiment/${route}`, analyst, method === 'POST' ? TEXT : undefined), [
        `none of the roles [analyst, viewer] may call ${route}`,
      ]);
    }
    const none = await tokenFor('dave', []);
    await assertDenied(rig, [api], () => rig.call('POST', '/v1/models/sentiment/predict', none, TEXT), ['no role may call predict']);
  });

  it('no token: 401; a token from another realm\'s audience: 401', async () => {
    const seen = api.requests.length;
    const res = await rig.call('POST', '/v1/models/sentiment/predict', undefined, TEXT);
    assert.equal(res.status, 401);
    assert.equal(res.json().reason, 'missing_token');
    const other = await exampleToken(NAME, { sub: 'bob', aud: 'billing-api', claims: { realm_access: { roles: ['ml_engineer'] } } });
    const wrong = await rig.call('POST', '/v1/models/sentiment/predict', other, TEXT);
    assert.equal(wrong.status, 401);
    assert.equal(wrong.json().reason, 'invalid_audience');
    assert.equal(api.requests.length, seen);
  });

  it('anything the config does not route: 404 / 405, even for an ML engineer', async () => {
    const t = await tokenFor('bob', ['ml_engineer']);
    const seen = api.requests.length;
    const missing = await rig.call('DELETE', '/v1/models/sentiment', t);
    assert.equal(missing.status, 404);
    const method = await rig.call('DELETE', '/v1/models/sentiment/logs', t);
    assert.equal(method.status, 405);
    assert.equal(method.headers.allow, 'GET');
    assert.equal(api.requests.length, seen);
  });
});
