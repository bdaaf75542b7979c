/**
 * Run a shipped example (`examples/<name>/`) end to end: its own regate.yaml,
 * its own policy compiled by the real opa CLI, its own dev key, in a real
 * regate process, forwarding to real upstreams on loopback.
 *
 * The example's config is used as written except for what a test cannot
 * share with a developer's machine: listen ports (0), upstream URLs (the
 * test's servers), resource URLs' origin (the test's catalog), the bundle path
 * (a temp build) and the JWKS file path (made absolute). Everything the
 * policy sees — routes, attributes, issuers, audiences, claim mappings — is the
 * example's.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import type { JWK } from 'jose';
import { parse } from 'yaml';
import { mintToken } from '../../src/authn/mint.ts';
import { send, type Reply } from './http.ts';
import { opaBin, repoRoot } from './opa.ts';
import { startRegate, writeConfig, type RegateProcess } from './regate-process.ts';
import type { TestUpstream } from './upstream-server.ts';

const run = promisify(execFile);

/** The directory of example `name`. */
export function exampleDir(name: string): string {
  return join(repoRoot, 'examples', name);
}

/** The example's regate.yaml, parsed (plain data, as written). */
export function exampleConfig(name: string): Record<string, any> {
  return parse(readFileSync(join(exampleDir(name), 'regate.yaml'), 'utf8')) as Record<string, any>;
}

/** Entrypoints the config asks for, as scripts/build-policy.mjs computes them. */
export function entrypointsOf(config: Record<string, any>): string[] {
  const eps = new Set<string>([config.policy.default_entrypoint as string]);
  for (const r of config.routes ?? []) {
    if (r.entrypoint) eps.add(r.entrypoint as string);
    if (r.shadow?.entrypoint) eps.add(r.shadow.entrypoint as string);
  }
  if (config.broker?.entrypoint) eps.add(config.broker.entrypoint as string);
  return [...eps];
}

const workDirs: string[] = [];
process.once('exit', () => {
  for (const d of workDirs) rmSync(d, { recursive: true, force: true });
});

/**
 * Build the example's bundle the way `npm run build:policy` does (its policy/
 * plus the shared rego/, tests ignored), into a temp dir removed at exit.
 */
export async function buildExampleBundle(name: string): Promise<string> {
  const work = mkdtempSync(join(tmpdir(), `regate-example-${name}-`));
  workDirs.push(work);
  const out = join(work, 'bundle.tar.gz');
  const args = ['build', '-t', 'wasm', '--ignore', '*_test.rego', '--revision', `${name}-test`, '-o', out];
  for (const ep of entrypointsOf(exampleConfig(name))) args.push('-e', ep);
  args.push(join(exampleDir(name), 'policy'), join(repoRoot, 'rego'));
  try {
    await run(opaBin(), args, { cwd: work, maxBuffer: 16 * 1024 * 1024 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`opa build for example ${name} failed: ${e.stderr || e.message}`, { cause: err });
  }
  return out;
}

/** How a test rewires an example's config. */
export interface ExampleWiring {
  /** Upstream id → URL of the test's server. Every upstream of the example must be given. */
  readonly upstreams: Readonly<Record<string, string>>;
  /** A built bundle (default: {@link buildExampleBundle}). */
  readonly bundle?: string;
  /** Replaces the origin (`http://host:port`) of every `routes[].resource.url`. */
  readonly resourceOrigin?: string;
  /** Extra env for the regate process, e.g. `REGATE_CLOCK`. */
  readonly env?: NodeJS.ProcessEnv;
}

/** The example's config with test wiring applied, written to a temp file. */
export function wireExampleConfig(name: string, wiring: ExampleWiring & { bundle: string }): string {
  const config = exampleConfig(name);
  const dir = exampleDir(name);
  config.listen = { proxy: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 } };
  for (const id of Object.keys(config.upstreams)) {
    const url = wiring.upstreams[id];
    assert.ok(url, `test wiring for example ${name} has no URL for upstream "${id}"`);
    config.upstreams[id].url = url;
  }
  for (const issuer of config.issuers ?? []) {
    if (issuer.jwks_file) issuer.jwks_file = resolve(dir, issuer.jwks_file);
  }
  for (const key of config.broker?.signing_keys ?? []) key.file = resolve(dir, key.file);
  for (const u of Object.values(config.upstreams ?? {}) as Record<string, any>[]) {
    for (const c of Object.values(u.credentials ?? {}) as Record<string, any>[]) c.value_file = resolve(dir, c.value_file);
  }
  for (const client of config.broker?.clients ?? []) client.jwks_file = resolve(dir, client.jwks_file);
  config.policy.bundle = wiring.bundle;
  config.decision_log = { ...config.decision_log, destination: 'stdout' };
  for (const route of config.routes) {
    if (route.resource?.url && wiring.resourceOrigin) {
      const u = String(route.resource.url);
      route.resource.url = wiring.resourceOrigin + u.slice(new URL(u.replaceAll(/[{}]/g, '')).origin.length);
    }
  }
  return writeConfig(config);
}

/** A running example. */
export interface ExampleRig {
  readonly name: string;
  readonly regate: RegateProcess;
  /** `regate.proxyUrl` + path, with a bearer token and optional JSON body. */
  call(method: string, path: string, token?: string, body?: unknown, headers?: Record<string, string>): Promise<Reply>;
  stop(): Promise<void>;
}

/** Start a regate process on the example's config, rewired for the test. */
export async function startExample(name: string, wiring: ExampleWiring): Promise<ExampleRig> {
  const bundle = wiring.bundle ?? (await buildExampleBundle(name));
  const regate = await startRegate(wireExampleConfig(name, { ...wiring, bundle }), wiring.env);
  return {
    name,
    regate,
    call(method, path, token, body, headers = {}) {
      const h: Record<string, string> = { ...headers };
      if (token) h.authorization = `Bearer ${token}`;
      if (body !== undefined) h['content-type'] ??= 'application/json';
      return send(`${regate.proxyUrl}${path}`, {
        method,
        headers: h,
        ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
      });
    },
    async stop() {
      await regate.stop();
    },
  };
}

/** Options for {@link exampleToken}. */
export interface ExampleTokenOptions {
  readonly sub: string;
  /** Claims as they appear in the token (roles, groups, tenant at the example's claim paths). */
  readonly claims?: Record<string, unknown>;
  /** Default: the first audience of the issuer. */
  readonly aud?: string | string[];
  /** Default 900 s. */
  readonly ttlSeconds?: number;
  /** Issue time in epoch seconds; default now. Set it when regate runs on a frozen clock. */
  readonly now?: number;
  /** Issuer id in the example config; default the first. */
  readonly issuer?: string;
}

/** A token signed with the example's published dev key, for its issuer. */
export async function exampleToken(name: string, options: ExampleTokenOptions): Promise<string> {
  const config = exampleConfig(name);
  const issuers = config.issuers as Record<string, any>[];
  const issuer = options.issuer ? issuers.find((i) => i.id === options.issuer) : issuers[0];
  assert.ok(issuer, `example ${name} has no issuer ${options.issuer ?? ''}`);
  const keyFile = join(resolve(exampleDir(name), issuer.jwks_file as string), '..', 'dev-signing-key.jwk.json');
  const privateJwk = JSON.parse(readFileSync(keyFile, 'utf8')) as JWK;
  return mintToken({
    privateJwk,
    alg: 'ES256',
    issuer: issuer.issuer as string,
    audience: options.aud ?? (issuer.audiences[0] as string),
    sub: options.sub,
    claims: options.claims ?? {},
    ttlSeconds: options.ttlSeconds ?? 900,
    ...(options.now === undefined ? {} : { now: options.now }),
  });
}

/** Epoch seconds of an RFC 3339 instant. */
export function epochSeconds(rfc3339: string): number {
  return Math.floor(Date.parse(rfc3339) / 1000);
}

/**
 * Assert a policy deny: 403 problem document with exactly `reasons`
 * (the example routes expose them), nothing forwarded to `upstreams`, and a
 * deny decision record for the request.
 */
export async function assertDenied(
  rig: ExampleRig,
  upstreams: readonly TestUpstream[],
  request: () => Promise<Reply>,
  reasons: readonly string[],
): Promise<Record<string, unknown>> {
  const before = upstreams.map((u) => u.requests.length);
  const res = await request();
  assert.equal(res.status, 403, `expected 403, got ${res.status}: ${res.text}`);
  const problem = res.json<{ reason: string; reasons?: string[]; decision_id: string }>();
  assert.equal(problem.reason, 'policy_denied');
  assert.deepEqual(problem.reasons, reasons);
  const rec = await rig.regate.waitForDecision((r) => r.decision_id === problem.decision_id);
  const custom = rec.custom as Record<string, unknown>;
  assert.equal(custom.decision, 'deny');
  assert.equal(custom.http_status, 403);
  assert.deepEqual((rec.result as { reasons: string[] }).reasons, reasons);
  assert.deepEqual(
    upstreams.map((u) => u.requests.length),
    before,
    'a denied request reaches no upstream',
  );
  return rec;
}

/**
 * Assert an allow: 200 from the echo upstream `upstream`, which saw exactly
 * `method` + `path`; returns the echo and the decision record.
 */
export async function assertAllowed(
  rig: ExampleRig,
  request: () => Promise<Reply>,
  expect: { method: string; path: string; reasons?: readonly string[]; /** What regate injects (a route credential); default none. */ authorization?: string },
): Promise<{ echo: Record<string, any>; record: Record<string, unknown> }> {
  const res = await request();
  assert.equal(res.status, 200, `expected 200, got ${res.status}: ${res.text}`);
  const echo = res.json<Record<string, any>>();
  assert.equal(echo.method, expect.method);
  assert.equal(echo.url, expect.path);
  // The client token is never forwarded: the upstream sees no Authorization, or only the one regate injects.
  assert.equal(echo.headers.authorization, expect.authorization, 'the client token is not forwarded');
  const id = String(echo.headers['x-request-id']);
  const record = await rig.regate.waitForDecision((r) => r.decision_id === id);
  const custom = record.custom as Record<string, unknown>;
  assert.equal(custom.decision, 'allow');
  assert.equal(custom.http_status, 200);
  if (expect.reasons) assert.deepEqual((record.result as { reasons: string[] }).reasons, expect.reasons);
  return { echo, record };
}
