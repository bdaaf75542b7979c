/**
 * The reload manager in-process, with a real server on loopback and bundle
 * sources the test controls: readiness before the first bundle, atomic swaps,
 * in-flight requests finishing on their version, exact retirement of the old
 * runtime, refused versions, restart-required keys.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { stringify } from 'yaml';
import { loadConfig } from '../../../src/config/load.ts';
import type { Config } from '../../../src/config/types.ts';
import { BundleError } from '../../../src/errors.ts';
import { ReloadManager, restartRequired, type SourceFactory } from '../../../src/lifecycle/reload.ts';
import { createMetrics, type Metrics } from '../../../src/observe/metrics.ts';
import { parseBundle, type Bundle } from '../../../src/policy/bundle.ts';
import type { BundleSource } from '../../../src/policy/source.ts';
import { RegateServer } from '../../../src/server.ts';
import { send } from '../../helpers/http.ts';
import { parseExposition, sampleValue } from '../../helpers/metrics.ts';
import { buildBundle } from '../../helpers/opa.ts';
import { startUpstreamServer, type EchoBody, type TestUpstream } from '../../helpers/upstream-server.ts';

const policy = (tag: string): string => `
package t

decision := {"allow": true, "headers": {"x-v": "${tag}"}}
`;

/** A bundle source driven by the test. */
interface FakeSource extends BundleSource {
  deliver(b: Bundle): void;
  fail(err: Error): void;
  stopped: boolean;
}

function fakeFactory(): { create: SourceFactory; sources: FakeSource[] } {
  const sources: FakeSource[] = [];
  const create: SourceFactory = () => {
    let on: { bundle: (b: Bundle) => void; error: (e: Error) => void } | undefined;
    let delivered = false;
    const s: FakeSource = {
      stopped: false,
      start(onBundle, onError) {
        on = { bundle: onBundle, error: onError };
      },
      ready: () => delivered,
      async stop() {
        s.stopped = true;
      },
      deliver(b) {
        delivered = true;
        if (!s.stopped) on?.bundle(b);
      },
      fail(err) {
        if (!s.stopped) on?.error(err);
      },
    };
    sources.push(s);
    return s;
  };
  return { create, sources };
}

let upstream: TestUpstream;
let v1: Bundle;
let v2: Bundle;
before(async () => {
  upstream = await startUpstreamServer();
  const [p1, p2] = await Promise.all(['v1', 'v2'].map((t) => buildBundle({ files: { 't.rego': policy(t) }, entrypoints: ['t/decision'], args: ['--revision', t] })));
  v1 = parseBundle(await readFile(p1!), 'v1.tar.gz');
  v2 = parseBundle(await readFile(p2!), 'v2.tar.gz');
});
after(async () => {
  await upstream?.close();
});

const silent = pino({ level: 'silent' });

/** A config polling a (never contacted) bundle server: start() does not wait for the bundle. */
function writeConfig(dir: string, extra: Record<string, unknown> = {}): string {
  const file = join(dir, 'regate.yaml');
  writeFileSync(
    file,
    stringify({
      listen: { proxy: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 } },
      upstreams: { app: { url: upstream.url } },
      policy: { service: { url: 'http://127.0.0.1:9/bundles/t.tar.gz' }, default_entrypoint: 't/decision' },
      reload: { watch: false },
      decision_log: { enabled: false },
      routes: [{ id: 'r', match: { methods: ['GET'], path: '/{rest*}' }, upstream: 'app', auth: 'none' }],
      ...extra,
    }),
  );
  return file;
}

interface Harness {
  file: string;
  config: Config;
  metrics: Metrics;
  server: RegateServer;
  manager: ReloadManager;
  sources: FakeSource[];
  proxy: string;
  admin: string;
  close(): Promise<void>;
}

async function harness(extra: Record<string, unknown> = {}): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), 'regate-reload-'));
  const file = writeConfig(dir, extra);
  const config = await loadConfig(file);
  const metrics = createMetrics({ routeIds: [], bundle: { name: 'regate', revision: '' }, defaultMetrics: false });
  const server = new RegateServer({ config, metrics, logger: silent });
  const { create, sources } = fakeFactory();
  const manager = new ReloadManager({ configFile: file, config, server, logger: silent, metrics, createSource: create });
  await manager.start();
  const urls = await server.listen();
  return {
    file,
    config,
    metrics,
    server,
    manager,
    sources,
    proxy: urls.proxy,
    admin: urls.admin,
    async close() {
      await manager.stop();
      await server.drain({ graceMs: 1000, drainDelayMs: 0 });
      await manager.close();
      await server.closeAdmin();
    },
  };
}

const version = async (h: Harness, path = '/x'): Promise<string> => {
  const res = await send(`${h.proxy}${path}`);
  return res.status === 200 ? String(res.json<EchoBody>().headers['x-v']) : `status ${res.status}`;
};

async function until(what: string, check: () => boolean | Promise<boolean>): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('ReloadManager', () => {
  it('before the first bundle: the proxy answers 503 not_ready, /readyz is 503; then the bundle makes it ready', async () => {
    const h = await harness();
    try {
      const res = await send(`${h.proxy}/x`);
      assert.equal(res.status, 503);
      assert.match(String(res.headers['content-type']), /^application\/problem\+json/);
      assert.equal(res.json().reason, 'not_ready');
      assert.equal(res.headers['retry-after'], '1');
      const ready = await send(`${h.admin}/readyz`);
      assert.equal(ready.status, 503);
      assert.deepEqual(ready.json().checks, { config: true, policy: false, keys: false });
      const exp = parseExposition((await send(`${h.admin}/metrics`)).text);
      assert.equal(sampleValue(exp, 'regate_requests_total', { route: '_unmatched', decision: 'error', status_class: '5xx' }), 1);

      h.sources[0]!.deliver(v1);
      await until('the first version', () => h.server.runtime !== null);
      assert.equal((await send(`${h.admin}/readyz`)).status, 200);
      assert.equal(await version(h), 'v1');
      const after = parseExposition(await h.metrics.registry.metrics());
      assert.equal(sampleValue(after, 'regate_config_reload_success'), 1);
      assert.equal(sampleValue(after, 'regate_reloads_total', { trigger: 'bundle', result: 'success' }), 0, 'the first bundle is not a reload');
    } finally {
      await h.close();
    }
  });

  it('a new bundle swaps atomically; a request in flight finishes on its version; the old runtime closes exactly when it drained', async () => {
    const h = await harness();
    try {
      h.sources[0]!.deliver(v1);
      await until('v1', () => h.server.runtime !== null);
      const old = h.server.runtime!;
      let closedAt: number | undefined;
      const close = old.close.bind(old);
      (old as { close: () => Promise<void> }).close = async () => {
        closedAt = Date.now();
        return close();
      };

      const path = `/slow?mode=slow-headers&delay=400&n=${Date.now()}`;
      const slow = send(`${h.proxy}${path}`);
      await upstream.waitForRequest((r) => r.url === path);
      assert.equal(h.server.inFlight(old), 1);

      h.sources[0]!.deliver(v2);
      await until('v2', () => h.server.runtime !== old);
      assert.equal(await version(h), 'v2', 'new requests see the new version at once');
      assert.equal(closedAt, undefined, 'the old runtime stays open while its request runs');

      const res = await slow;
      assert.equal(res.status, 200);
      assert.equal(res.json<EchoBody>().headers['x-v'], 'v1', 'the in-flight request finished on the version it started with');
      await until('the old runtime closed', () => closedAt !== undefined);
      const exp = parseExposition(await h.metrics.registry.metrics());
      assert.equal(sampleValue(exp, 'regate_reloads_total', { trigger: 'bundle', result: 'success' }), 1);
      assert.equal(sampleValue(exp, 'regate_policy_bundle_info', { name: 'regate', revision: 'v2' }), 1);
    } finally {
      await h.close();
    }
  });

  it('a refused bundle (source error) is counted and logged; the last good version keeps serving', async () => {
    const h = await harness();
    try {
      h.sources[0]!.deliver(v1);
      await until('v1', () => h.server.runtime !== null);
      h.sources[0]!.fail(new BundleError('bundle_invalid', 'bundle.tar.gz: corrupt gzip data'));
      const exp = parseExposition(await h.metrics.registry.metrics());
      assert.equal(sampleValue(exp, 'regate_reloads_total', { trigger: 'bundle', result: 'error' }), 1);
      assert.equal(sampleValue(exp, 'regate_config_reload_success'), 0);
      assert.equal(await version(h), 'v1');
    } finally {
      await h.close();
    }
  });

  it('a config reload that breaks the policy contract is refused: nothing swapped', async () => {
    const h = await harness();
    try {
      h.sources[0]!.deliver(v1);
      await until('v1', () => h.server.runtime !== null);
      const running = h.server.runtime;
      writeConfig(join(h.file, '..'), { routes: [{ id: 'r', match: { methods: ['GET'], path: '/{rest*}' }, upstream: 'app', auth: 'none', entrypoint: 't/missing' }] });
      const outcome = await h.manager.reload('signal');
      assert.equal(outcome.ok, false);
      assert.match((outcome as { errors: readonly string[] }).errors.join('\n'), /\/routes\/0\/entrypoint: entrypoint "t\/missing" is not compiled into v1\.tar\.gz/);
      assert.equal(h.server.runtime, running);
      assert.equal(h.sources.length, 1, 'a remote source is kept across reloads (SIGHUP re-reads local files only)');

      writeConfig(join(h.file, '..'), { routes: [{ id: 'r2', match: { methods: ['GET'], path: '/{rest*}' }, upstream: 'app', auth: 'none' }] });
      const ok = await h.manager.reload('file');
      assert.deepEqual(ok, { ok: true, revision: 'v1' });
      assert.equal(h.server.runtime?.config.routes[0]?.id, 'r2');
      const exp = parseExposition(await h.metrics.registry.metrics());
      assert.equal(sampleValue(exp, 'regate_reloads_total', { trigger: 'signal', result: 'error' }), 1);
      assert.equal(sampleValue(exp, 'regate_reloads_total', { trigger: 'file', result: 'success' }), 1);
    } finally {
      await h.close();
    }
  });

  it('a new bundle source when policy settings change; the replaced one stops after the swap', async () => {
    const h = await harness();
    try {
      h.sources[0]!.deliver(v1);
      await until('v1', () => h.server.runtime !== null);
      writeConfig(join(h.file, '..'), { policy: { service: { url: 'http://127.0.0.1:9/bundles/other.tar.gz' }, default_entrypoint: 't/decision' } });
      const reloading = h.manager.reload('file');
      await until('a fresh source', () => h.sources.length === 2);
      h.sources[1]!.deliver(v2);
      assert.equal((await reloading).ok, true);
      assert.equal(await version(h), 'v2');
      assert.equal(h.sources[0]!.stopped, true);
      assert.equal(h.sources[1]!.stopped, false);
    } finally {
      await h.close();
    }
  });
});

describe('restartRequired', () => {
  it('names each listener key and max_header_bytes that changed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'regate-restart-'));
    const a = await loadConfig(writeConfig(dir), { checkFiles: false });
    const b = await loadConfig(
      writeConfig(dir, { listen: { proxy: { host: '127.0.0.1', port: 8081 }, admin: { host: '0.0.0.0', port: 0 } }, limits: { max_header_bytes: 32768 } }),
      { checkFiles: false },
    );
    const problems = restartRequired(a, b).map((e) => e.keyPath);
    assert.deepEqual(problems, ['/listen/proxy/port', '/listen/admin/host', '/limits/max_header_bytes']);
    assert.deepEqual(restartRequired(a, a), []);
  });
});
