/**
 * The policy engines of a real regate process after many failed evaluations
 * (issue 9): a client that makes the policy fail over and over (here a rule
 * conflict it can trigger from the query) gets a fail-closed answer each
 * time, and every later decision of the enforced engine and of the shadow
 * (candidate) engine is still right. Before the fix each failed evaluation
 * leaked wasm stack, and after ~512 of them every request was a 500.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { send } from '../helpers/http.ts';
import { parseExposition, sampleValue } from '../helpers/metrics.ts';
import { buildBundle } from '../helpers/opa.ts';
import { startRegate, writeConfig, type RegateProcess } from '../helpers/regate-process.ts';
import { startJwksServer, type JwksServer } from '../helpers/jwks-server.ts';
import { baseClaims, generateTestKey, jwksOf, signToken, TEST_ISSUER } from '../helpers/tokens.ts';
import { startUpstreamServer, type TestUpstream } from '../helpers/upstream-server.ts';

const POLICY = (revision: string): string => `
package hostile.authz

import rego.v1

size := to_number(object.get(input.request.query, "n", ["1"])[0])

# Two values for one complete rule when the client sends ?mode=a&mode=b: an
# evaluation error. With ?n=200000 it first allocates enough to grow the memory.
mode := m if {
	count(numbers.range(1, size)) > 0
	some m in input.request.query.mode
}

# The same from a partial object rule: "object insert conflict".
modes[k] := m if {
	some m in input.request.query.kind
	k := "kind"
}

default allow := false

allow if {
	input.subject.authenticated
	mode == "read"
	count(modes) >= 0
}

decision := {"allow": allow, "reasons": [sprintf("mode %v (${revision})", [object.get(input.request.query, "mode", [])])]}
`;

const CONFLICTS = 1100;

let jwks: JwksServer;
let upstream: TestUpstream;
let regate: RegateProcess;
let token: string;

before(async () => {
  const key = await generateTestKey('ES256');
  jwks = await startJwksServer(jwksOf(key));
  upstream = await startUpstreamServer();
  token = await signToken(key, baseClaims({ aud: 'regate', exp: Math.floor(Date.now() / 1000) + 3600 }));
  const [active, candidate] = await Promise.all(
    ['active', 'candidate'].map((revision) =>
      buildBundle({ files: { 'authz.rego': POLICY(revision) }, entrypoints: ['hostile/authz/decision'], args: ['--revision', revision] }),
    ),
  );
  regate = await startRegate(
    writeConfig({
      listen: { proxy: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 } },
      upstreams: { app: { url: upstream.url } },
      issuers: [{ id: 'idp', issuer: TEST_ISSUER, jwks_url: jwks.url, audiences: ['regate'], algorithms: ['ES256'] }],
      policy: { bundle: active, default_entrypoint: 'hostile/authz/decision', candidate: { bundle: candidate } },
      decision_log: { destination: 'stdout' },
      routes: [
        {
          id: 'items',
          match: { methods: ['GET'], path: '/items' },
          upstream: 'app',
          shadow: { entrypoint: 'hostile/authz/decision', bundle: 'candidate' },
        },
      ],
    }),
  );
});

after(async () => {
  await regate?.stop();
  await upstream?.close();
  await jwks?.close();
});

const get = (query: string) => send(`${regate.proxyUrl}/items?${query}`, { headers: { authorization: `Bearer ${token}` } });

describe('policy engines after many failed evaluations', () => {
  it(`${CONFLICTS} conflicting evaluations fail closed, and both engines decide right afterwards`, async () => {
    const forwarded = upstream.requests.length;
    for (let i = 0; i < CONFLICTS; i++) {
      const res = await get(i % 2 ? 'mode=a&mode=b' : 'mode=read&kind=x&kind=y');
      if (res.status !== 500 || res.json<{ reason: string }>().reason !== 'policy_eval_error') {
        assert.fail(`conflict ${i}: ${res.status} ${res.text}`);
      }
    }
    assert.equal(upstream.requests.length, forwarded, 'nothing forwarded on a failed evaluation');

    const allowed = await get('mode=read');
    assert.equal(allowed.status, 200, allowed.text);
    assert.equal(upstream.requests.length, forwarded + 1);
    const denied = await get('mode=write');
    assert.equal(denied.status, 403, denied.text);
    assert.equal(upstream.requests.length, forwarded + 1);

    // The shadow engine failed on every conflict too (after the response), and agrees on both.
    for (const [res, allow] of [
      [allowed, true],
      [denied, false],
    ] as const) {
      // An allowed request's id is the X-Request-Id the upstream got; a denied one's is in the problem.
      const id = allow ? String(res.json<{ headers: Record<string, string> }>().headers['x-request-id']) : res.json<{ decision_id: string }>().decision_id;
      const rec = await regate.waitForDecision((r) => r.decision_id === id && (r.custom as { shadow?: unknown }).shadow !== undefined);
      const shadow = (rec.custom as { shadow: { agree: boolean; allow: boolean; error?: unknown; result?: { reasons: string[] } } }).shadow;
      assert.equal(shadow.agree, true, JSON.stringify(shadow));
      assert.equal(shadow.allow, allow);
      assert.equal(shadow.error, undefined);
      assert.match(shadow.result?.reasons[0] ?? '', /\(candidate\)$/);
    }
    const metrics = parseExposition(await (await send(`${regate.adminUrl}/metrics`)).text);
    assert.equal(sampleValue(metrics, 'regate_shadow_decisions_total', { route: 'items', agreement: 'error' }), CONFLICTS);
    // Conflicts do not grow the memory: each was repaired in place, no instance was rebuilt.
    assert.equal(sampleValue(metrics, 'regate_policy_engine_resets_total', { bundle: 'active' }), 0);
    assert.equal(sampleValue(metrics, 'regate_policy_engine_resets_total', { bundle: 'candidate' }), 0);
  });

  it('a failed evaluation that grew the memory rebuilds the instance: counted, logged, and the next decisions are right', async () => {
    const forwarded = upstream.requests.length;
    const ROUNDS = 3;
    for (let i = 0; i < ROUNDS; i++) {
      const res = await get('n=200000&mode=a&mode=b');
      assert.equal(res.status, 500, res.text);
      const ok = await get('mode=read');
      assert.equal(ok.status, 200, ok.text);
      assert.equal((await get('mode=write')).status, 403);
    }
    assert.equal(upstream.requests.length, forwarded + ROUNDS);
    // The shadow runs after the response: wait for its last rebuild to be logged.
    const rebuilt = (bundle: string) => regate.logs.filter((l) => l.msg === 'policy engine rebuilt after a failed evaluation' && l.bundle === bundle);
    const deadline = Date.now() + 10_000;
    while (rebuilt('candidate').length < ROUNDS && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    for (const bundle of ['active', 'candidate']) {
      const lines = rebuilt(bundle);
      assert.equal(lines.length, ROUNDS, bundle);
      assert.equal(lines[0]!.revision, bundle);
      assert.match(String(lines[0]!.err), /var assignment conflict/);
      assert.ok(Number(lines[0]!.memory_bytes_before) > Number(lines[0]!.memory_bytes_after));
    }
    const metrics = parseExposition(await (await send(`${regate.adminUrl}/metrics`)).text);
    assert.equal(sampleValue(metrics, 'regate_policy_engine_resets_total', { bundle: 'active' }), ROUNDS);
    assert.equal(sampleValue(metrics, 'regate_policy_engine_resets_total', { bundle: 'candidate' }), ROUNDS);
  });
});
