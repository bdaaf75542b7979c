/**
 * examples/rbac-to-abac end to end: the migration its README walks through, in
 * a real regate process in front of a real upstream.
 *
 * 1. Shadow: RBAC (reports/rbac/decision) decides, the RBAC+ABAC candidate
 *    (reports/abac/decision) is evaluated beside it on every route; the
 *    disagreement metric and the decision log show exactly the requests the
 *    candidate would change.
 * 2. Promote: the config's two entrypoints swap places (the old one becomes the
 *    shadow) and the saved file is hot-reloaded: no restart, no failed request.
 * 3. After: ABAC decides; cross-tenant and under-cleared calls get 403.
 */
import assert from 'node:assert/strict';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { parse, stringify } from 'yaml';
import { exampleToken, startExample, type ExampleRig } from '../../helpers/examples.ts';
import { send } from '../../helpers/http.ts';
import { parseExposition, sampleValue, type Exposition } from '../../helpers/metrics.ts';
import { startUpstreamServer, type EchoBody, type TestUpstream } from '../../helpers/upstream-server.ts';

const NAME = 'rbac-to-abac';

let api: TestUpstream;
let rig: ExampleRig;
let ann: string; // analyst, tenant acme
let max: string; // account manager, acme, no clearance claim
let carla: string; // account manager, acme, clearance confidential

before(async () => {
  api = await startUpstreamServer();
  rig = await startExample(NAME, { upstreams: { 'reports-api': api.url } });
  [ann, max, carla] = await Promise.all([
    exampleToken(NAME, { sub: 'ann', claims: { tenant: 'acme', roles: ['analyst'] } }),
    exampleToken(NAME, { sub: 'max', claims: { tenant: 'acme', roles: ['account_manager'] } }),
    exampleToken(NAME, { sub: 'carla', claims: { tenant: 'acme', roles: ['account_manager'], clearance: 'confidential' } }),
  ]);
});

after(async () => {
  await rig?.stop();
  await api?.close();
});

const metrics = async (): Promise<Exposition> => parseExposition((await send(`${rig.regate.adminUrl}/metrics`)).text);
const shadowCount = (exp: Exposition, route: string, agreement: string): number | undefined =>
  sampleValue(exp, 'regate_shadow_decisions_total', { route, agreement });

/** Call, then return the status and the request's decision-log record. */
async function call(method: string, path: string, token: string): Promise<{ status: number; record: Record<string, any> }> {
  const res = await rig.call(method, path, token);
  const id = res.status === 200 ? res.json<EchoBody>().headers['x-request-id'] : res.json().decision_id;
  const record = await rig.regate.waitForDecision((r) => r.decision_id === id);
  return { status: res.status, record };
}

describe('rbac-to-abac: 1. the candidate in shadow', () => {
  it('RBAC decides; the ABAC candidate agrees on same-tenant reads and on role denials', async () => {
    const read = await call('GET', '/v1/tenants/acme/reports/q3', ann);
    assert.equal(read.status, 200);
    assert.deepEqual(
      { path: read.record.custom.shadow.path, allow: read.record.custom.shadow.allow, agree: read.record.custom.shadow.agree },
      { path: 'reports/abac/decision', allow: true, agree: true },
    );
    const update = await call('PUT', '/v1/tenants/acme/reports/q3', ann);
    assert.equal(update.status, 403);
    assert.equal(update.record.custom.shadow.agree, true, 'both deny a role that is not granted');

    const cleared = await call('GET', '/v1/tenants/acme/customers/c-17', carla);
    assert.equal(cleared.status, 200);
    assert.equal(cleared.record.custom.shadow.agree, true);
  });

  it('disagreements: a cross-tenant read and an under-cleared read are allowed today, and would be denied', async () => {
    const before = api.requests.length;
    const cross = await call('GET', '/v1/tenants/globex/reports/q3', ann);
    assert.equal(cross.status, 200, 'the enforced RBAC decision governs');
    assert.equal(api.requests.length, before + 1);
    assert.equal(cross.record.custom.shadow.allow, false);
    assert.equal(cross.record.custom.shadow.agree, false);
    assert.deepEqual(cross.record.custom.shadow.result.reasons, ['tenant isolation: a acme token may not access tenant globex']);

    const uncleared = await call('GET', '/v1/tenants/acme/customers/c-17', max);
    assert.equal(uncleared.status, 200);
    assert.deepEqual(uncleared.record.custom.shadow.result.reasons, ['confidential data needs clearance confidential; the caller has internal']);
  });

  it('the disagreement metric and the log name exactly those requests', async () => {
    const exp = await metrics();
    assert.equal(shadowCount(exp, 'read-report', 'agree'), 1);
    assert.equal(shadowCount(exp, 'read-report', 'disagree'), 1);
    assert.equal(shadowCount(exp, 'update-report', 'agree'), 1);
    assert.equal(shadowCount(exp, 'read-customer', 'agree'), 1);
    assert.equal(shadowCount(exp, 'read-customer', 'disagree'), 1);
    assert.equal(shadowCount(exp, 'export-customers', 'disagree'), 0, 'every route has its series from the start');
    const disagreements = rig.regate.decisions.filter((d) => (d.custom as any)?.shadow?.agree === false).map((d) => (d.custom as any).http_path);
    assert.deepEqual(disagreements, ['/v1/tenants/globex/reports/q3', '/v1/tenants/acme/customers/c-17']);
  });
});

describe('rbac-to-abac: 2. promote by editing the config (hot reload)', () => {
  it('swapping the two entrypoints is picked up from the saved file; no request fails meanwhile', async () => {
    const file = rig.regate.configFile;
    const config = parse(readFileSync(file, 'utf8')) as Record<string, any>;
    assert.equal(config.policy.default_entrypoint, 'reports/rbac/decision');
    config.policy.default_entrypoint = 'reports/abac/decision';
    for (const route of config.routes) route.shadow = { entrypoint: 'reports/rbac/decision' };

    // A client keeps reading while the file is replaced (atomically, as an editor saves).
    let done = false;
    const statuses = new Set<number>();
    const client = (async () => {
      for (let i = 0; !done && i < 5000; i++) statuses.add((await rig.call('GET', '/v1/tenants/acme/reports/q3', ann)).status);
    })();
    const tmp = `${file}.saving`;
    writeFileSync(tmp, stringify(config));
    renameSync(tmp, file);
    try {
      for (let i = 0; i < 400; i++) {
        if (sampleValue(await metrics(), 'regate_reloads_total', { trigger: 'file', result: 'success' }) === 1) break;
        await new Promise((r) => setTimeout(r, 25));
      }
    } finally {
      done = true;
      await client;
    }
    const exp = await metrics();
    assert.equal(sampleValue(exp, 'regate_reloads_total', { trigger: 'file', result: 'success' }), 1);
    assert.equal(sampleValue(exp, 'regate_config_reload_success'), 1);
    assert.deepEqual([...statuses], [200], 'same-tenant reads never failed during the swap');
  });
});

describe('rbac-to-abac: 3. ABAC decides', () => {
  it('the cross-tenant read is now denied with the candidate’s reason; RBAC, now the shadow, disagrees', async () => {
    const before = api.requests.length;
    const res = await rig.call('GET', '/v1/tenants/globex/reports/q3', ann);
    assert.equal(res.status, 403);
    const problem = res.json<{ reasons: string[]; decision_id: string }>();
    assert.deepEqual(problem.reasons, ['tenant isolation: a acme token may not access tenant globex']);
    assert.equal(api.requests.length, before, 'nothing forwarded');
    const record = await rig.regate.waitForDecision((r) => r.decision_id === problem.decision_id);
    assert.equal(record.path, 'reports/abac/decision');
    assert.deepEqual({ ...(record.custom as any).shadow, result: undefined }, { path: 'reports/rbac/decision', bundle: 'active', allow: true, agree: false, result: undefined });
  });

  it('the under-cleared read is denied; with the clearance claim it is allowed', async () => {
    assert.equal((await rig.call('GET', '/v1/tenants/acme/customers/c-17', max)).status, 403);
    assert.equal((await rig.call('GET', '/v1/tenants/acme/customers/c-17', carla)).status, 200);
  });
});
