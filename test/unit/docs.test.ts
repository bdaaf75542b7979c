/**
 * Docs are part of the feature: every config key, policy input field, metric,
 * decision-log field, error code and stable reason must be documented. These
 * tests read the real sources of truth (the schema, a real metrics registry, a
 * real decision event, a real policy input) and fail when the docs lag behind.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { AUTHN_REASONS, ERROR_CODES } from '../../src/errors.ts';
import { TARGET_REASONS } from '../../src/http/canonicalize.ts';
import { buildInput } from '../../src/input/build.ts';
import { TimeInputBuilder } from '../../src/input/time.ts';
import { buildDecisionEvent, createEventContext } from '../../src/observe/decision-log.ts';
import { createMetrics } from '../../src/observe/metrics.ts';
import type { RequestOutcome } from '../../src/observe/record.ts';
import type { RouteConfig } from '../../src/config/types.ts';
import { compileHeaderPolicy } from '../../src/upstream/headers.ts';
import { repoRoot } from '../helpers/regate-process.ts';
import { X509Certificate } from 'node:crypto';
import { describeCertificate, type ConnectionTls } from '../../src/tls/tls-info.ts';

/** input.request.tls as a verified SPIFFE client certificate gives it. */
function connectionTlsOfFixture(): ConnectionTls {
  const { cert, identity } = describeCertificate(new X509Certificate(readFileSync(join(repoRoot, 'test/fixtures/tls/client.pem'))));
  return { input: { version: 'TLSv1.3', cipher: 'TLS_AES_128_GCM_SHA256', client_cert: cert }, identity };
}

const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
const section = (title: string): string => {
  const start = readme.indexOf(`\n## ${title}\n`);
  assert.ok(start >= 0, `README has a "## ${title}" section`);
  const end = readme.indexOf('\n## ', start + 1);
  return readme.slice(start, end === -1 ? undefined : end);
};

/** Every key path of a JSON-like value: a.b, a.c[].d → leaf and inner names. */
function keyNames(value: unknown, out = new Set<string>()): Set<string> {
  if (Array.isArray(value)) for (const v of value) keyNames(v, out);
  else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      out.add(k);
      keyNames(v, out);
    }
  }
  return out;
}

describe('documentation', () => {
  it('docs/configuration.md is generated from the current schema', () => {
    const r = spawnSync(process.execPath, [join(repoRoot, 'scripts/gen-config-docs.mjs'), '--check'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
  });

  it('docs/configuration.md renders every key with its real shape: no "any", table pipes escaped once', () => {
    const doc = readFileSync(join(repoRoot, 'docs', 'configuration.md'), 'utf8');
    const rows = new Map(doc.split('\n').filter((l) => l.startsWith('| `')).map((l) => [/^\| `([^`]+)`/.exec(l)![1]!, l.split(' | ')[1]!]));
    assert.ok(rows.size > 50);
    for (const [key, type] of rows) {
      assert.doesNotMatch(type, /\bany\b/, `${key}: ${type}`);
      assert.doesNotMatch(type, /\\\\/, `${key}: doubled escape in ${type}`);
    }
    assert.equal(rows.get('issuers'), 'list of object with exactly one of `jwks_url`, `jwks_file`, `discovery`, or `introspection` alone');
    assert.equal(rows.get('policy'), 'object with exactly one of `bundle`, `service`');
    assert.equal(rows.get('routes[].auth'), '`"required"` \\| `"optional"` \\| `"none"` \\| `"mtls"`');
  });

  it('every metric regate registers is in the README metrics table', async () => {
    const metrics = createMetrics({ routeIds: ['r'], issuerIds: ['i'], bundle: { name: 'regate', revision: 'x' }, defaultMetrics: false });
    const names = (await metrics.registry.getMetricsAsJSON()).map((m) => m.name);
    assert.ok(names.length >= 10);
    const table = section('Metrics');
    for (const name of names) assert.ok(table.includes(`\`${name}\``), `metric ${name} is documented`);
  });

  it('every error code and every stable reason is in the README', () => {
    const errors = section('Responses and errors');
    for (const code of ERROR_CODES) assert.ok(errors.includes(code), `error code ${code}`);
    for (const reason of [...AUTHN_REASONS, ...TARGET_REASONS]) assert.ok(errors.includes(`\`${reason}\``), `reason ${reason}`);
  });

  it('every policy input field is in the README policy input section', () => {
    const input = buildInput({
      requestId: 'id',
      method: 'GET',
      path: '/',
      params: {},
      query: {},
      headers: {},
      host: 'h',
      remoteAddr: '127.0.0.1',
      // A TLS connection with a verified client certificate: every field of input.request.tls.
      tls: connectionTlsOfFixture().input,
      route: { id: 'r', attributes: {}, identity_headers: {} } as unknown as RouteConfig,
      headerPolicy: compileHeaderPolicy({ id: 'r', identity_headers: {} } as unknown as RouteConfig),
      identity: null,
      time: new TimeInputBuilder('UTC').build(0n),
      grpc: { service: 'inference.GRPCInferenceService', method: 'ModelInfer' },
    });
    const doc = section('Policy input');
    for (const key of keyNames(input)) assert.ok(doc.includes(`"${key}"`), `input field ${key} is documented`);
  });

  it('every decision-log field is in the README decision log section', () => {
    const outcome: RequestOutcome = {
      decisionId: 'd',
      startedAtNs: 1_700_000_000_000_000_000n,
      durationNs: 1000,
      routeId: 'r',
      entrypoint: 'regate/authz/decision',
      input: null,
      result: { allow: true },
      decision: 'allow',
      status: 200,
      reason: 'allowed',
      authn: { outcome: 'verified', issuer: 'i' },
      scopes: ['s'],
      evalNs: 10,
      upstreamNs: 20,
      upstreamStatus: 200,
      method: 'GET',
      path: '/',
      remoteAddr: '127.0.0.1',
    };
    const ctx = createEventContext(
      { enabled: true, destination: 'stdout', mask: [], labels: {} },
      { bundles: () => ({ regate: { revision: 'x' } }), version: '0', instanceId: 'i' },
    );
    const event = buildDecisionEvent(outcome, ctx) as unknown as Record<string, unknown>;
    const doc = section('Decision log');
    const fields = [...Object.keys(event), ...Object.keys(event.custom as object).map((k) => `custom.${k}`), ...Object.keys(event.metrics as object)];
    for (const f of fields) assert.ok(doc.includes(`\`${f}\``) || doc.includes(`${f}`), `decision-log field ${f} is documented`);
    for (const f of ['erased', 'masked', 'error']) assert.ok(doc.includes(`\`${f}\``), f);
  });
});
