/**
 * The live policy lifecycle, end to end with real regate processes: hot reload
 * of config and bundle under load (file change and SIGHUP), refused broken
 * versions, dry-run and shadow routes, and graceful shutdown on SIGTERM.
 * Asserts on responses, parsed /metrics, decision-log records and the process's
 * exit code; every wait is a bounded poll.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { send } from '../helpers/http.ts';
import { parseExposition, sampleValue, type Exposition } from '../helpers/metrics.ts';
import { buildBundle } from '../helpers/opa.ts';
import { startRegate, type RegateProcess } from '../helpers/regate-process.ts';
import { startUpstreamServer, type EchoBody, type TestUpstream } from '../helpers/upstream-server.ts';

/** Two entrypoints that stamp which bundle and entrypoint decided; `deny` denies unless `x-role: admin`. */
const stampPolicy = (tag: string): string => `
package lc

e1 := {"allow": true, "headers": {"x-policy-version": "${tag}1"}}

e2 := {"allow": true, "headers": {"x-policy-version": "${tag}2"}}

default guarded := {"allow": false}

guarded := {"allow": true, "headers": {"x-policy-version": "${tag}"}} if input.request.headers["x-role"] == "admin"
`;

let upstream: TestUpstream;
let bundleA: string;
let bundleB: string;

before(async () => {
  upstream = await startUpstreamServer();
  [bundleA, bundleB] = (await Promise.all(
    ['A', 'B'].map((tag) =>
      buildBundle({ files: { 'lc.rego': stampPolicy(tag) }, entrypoints: ['lc/e1', 'lc/e2', 'lc/guarded'], args: ['--revision', `rev-${tag}`] }),
    ),
  )) as [string, string];
});

after(async () => {
  await upstream?.close();
});

/** Replace `file` atomically (write beside it, rename over it), as editors and deploy tools do. */
function writeAtomic(file: string, content: string | Buffer): void {
  const tmp = `${file}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  writeFileSync(tmp, content);
  renameSync(tmp, file);
}

/** Poll `check` every 25 ms until it returns a value (not undefined), at most `timeoutMs`. */
async function waitFor<T>(what: string, check: () => Promise<T | undefined> | T | undefined, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function scrape(regate: RegateProcess): Promise<Exposition> {
  return parseExposition((await send(`${regate.adminUrl}/metrics`)).text);
}

const reloads = (exp: Exposition, trigger: string, result: string): number => sampleValue(exp, 'regate_reloads_total', { trigger, result }) ?? NaN;
const reloadErrors = (exp: Exposition): number => ['file', 'signal', 'bundle'].reduce((n, t) => n + reloads(exp, t, 'error'), 0);

/** A fresh directory with the bundle copied in and a config written; returns paths and a rewriter. */
function workspace(initialBundle: string): { dir: string; bundle: string; config: string; write: (config: Record<string, unknown>) => void } {
  const dir = mkdtempSync(join(tmpdir(), 'regate-lc-'));
  const bundle = join(dir, 'bundle.tar.gz');
  copyFileSync(initialBundle, bundle);
  const config = join(dir, 'regate.yaml');
  return { dir, bundle, config, write: (c) => writeAtomic(config, stringify(c)) };
}

function baseConfig(bundle: string, routes: Record<string, unknown>[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    listen: { proxy: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 } },
    upstreams: { app: { url: upstream.url } },
    policy: { bundle, default_entrypoint: 'lc/e1' },
    reload: { debounce_ms: 50 },
    decision_log: { destination: 'stdout' },
    routes,
    ...extra,
  };
}

const route = (id: string, path: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  id,
  match: { methods: ['GET'], path },
  upstream: 'app',
  auth: 'none',
  ...extra,
});

/** The `x-policy-version` the policy stamped on the forwarded request, or the status when not 200. */
async function stamp(regate: RegateProcess, path = '/a', headers: Record<string, string> = {}): Promise<string> {
  const res = await send(`${regate.proxyUrl}${path}`, { headers });
  if (res.status !== 200) return `status ${res.status}`;
  return String(res.json<EchoBody>().headers['x-policy-version']);
}

describe('hot reload under load', () => {
  let regate: RegateProcess;
  let ws: ReturnType<typeof workspace>;
  const config = (entrypoint: string): Record<string, unknown> => baseConfig(ws.bundle, [route('a', '/a', { entrypoint })]);

  before(async () => {
    ws = workspace(bundleA);
    ws.write(config('lc/e1'));
    regate = await startRegate(ws.config);
  });
  after(async () => {
    await regate?.stop();
  });

  it('20 reloads (bundle rewrites and config rewrites + SIGHUP) while 4 clients send: zero failed requests, decisions switch', async () => {
    assert.equal(await stamp(regate), 'A1');
    let done = false;
    const failures: string[] = [];
    const seen = new Set<string>();
    let sent = 0;
    const client = async (): Promise<void> => {
      // Bounded: stops when the reloads are done, or after 20 000 requests whatever happens.
      for (let i = 0; !done && i < 20_000; i++) {
        try {
          const res = await send(`${regate.proxyUrl}/a?client=1`);
          sent++;
          if (res.status !== 200) failures.push(`status ${res.status}: ${res.text.slice(0, 200)}`);
          else seen.add(String(res.json<EchoBody>().headers['x-policy-version']));
        } catch (err) {
          failures.push(String(err));
        }
      }
    };
    const clients = [client(), client(), client(), client()];

    let tag = 'A';
    let ep = '1';
    try {
      for (let i = 0; i < 20; i++) {
        if (i % 2 === 0) {
          // The bundle source sees the new file (atomic rename).
          tag = tag === 'A' ? 'B' : 'A';
          writeAtomic(ws.bundle, readFileSync(tag === 'A' ? bundleA : bundleB));
        } else {
          // The config changes (the watcher sees it) and SIGHUP asks for a reload too.
          ep = ep === '1' ? '2' : '1';
          ws.write(config(`lc/e${ep}`));
          regate.child.kill('SIGHUP');
        }
        const want = `${tag}${ep}`;
        await waitFor(`decision ${want} after reload ${i + 1}`, async () => ((await stamp(regate)) === want ? true : undefined));
      }
    } finally {
      done = true;
      await Promise.all(clients);
    }
    assert.deepEqual(failures, [], `${failures.length} of ${sent} requests failed`);
    assert.ok(sent > 20, `the clients kept sending (${sent} requests)`);
    assert.deepEqual([...seen].sort(), ['A1', 'A2', 'B1', 'B2']);

    const exp = await scrape(regate);
    assert.equal(reloadErrors(exp), 0);
    assert.ok(reloads(exp, 'bundle', 'success') >= 10, 'bundle rewrites were reloads');
    assert.ok(reloads(exp, 'signal', 'success') >= 10, 'every SIGHUP reloaded');
    assert.equal(sampleValue(exp, 'regate_config_reload_success'), 1);
    const last = sampleValue(exp, 'regate_config_last_reload_success_timestamp_seconds') ?? 0;
    assert.ok(Math.abs(last - Date.now() / 1000) < 60, 'the last success is recent');
    assert.equal(sampleValue(exp, 'regate_policy_bundle_info', { name: 'regate', revision: `rev-${tag}` }), 1);
  });

  it('every request of the run has exactly one decision-log line, all parseable', async () => {
    // One destination stream shared across versions: lines of a draining runtime and of its
    // successor never interleave mid-line (a torn line would not parse and go missing here).
    const forwarded = upstream.requests.filter((r) => r.url.startsWith('/a')).length;
    const lines = await waitFor('one decision line per forwarded request', () => {
      const l = regate.decisions.filter((d) => (d.custom as Record<string, unknown> | undefined)?.route_id === 'a');
      return l.length === forwarded ? l : undefined;
    });
    assert.ok(lines.length > 20);
    assert.equal(new Set(lines.map((d) => d.decision_id)).size, lines.length, 'no duplicated records');
  });
});

describe('broken versions are refused; the last good one keeps serving', () => {
  let regate: RegateProcess;
  let ws: ReturnType<typeof workspace>;
  const good = (): Record<string, unknown> => baseConfig(ws.bundle, [route('a', '/a'), route('g', '/g', { entrypoint: 'lc/guarded' })]);

  before(async () => {
    ws = workspace(bundleA);
    ws.write(good());
    regate = await startRegate(ws.config);
  });
  after(async () => {
    await regate?.stop();
  });

  /** Make a change, wait until one more reload error is counted, check the old version still decides. */
  async function refused(change: () => void, logged: RegExp): Promise<void> {
    const before = reloadErrors(await scrape(regate));
    const logsBefore = regate.logs.length;
    change();
    await waitFor('a counted reload error', async () => (reloadErrors(await scrape(regate)) > before ? true : undefined));
    const exp = await scrape(regate);
    assert.equal(sampleValue(exp, 'regate_config_reload_success'), 0);
    assert.equal(await stamp(regate), 'A1', 'the old policy still decides');
    assert.equal(await stamp(regate, '/g'), 'status 403', 'and still denies what it denied');
    assert.equal(await stamp(regate, '/g', { 'x-role': 'admin' }), 'A');
    const log = await waitFor('the refusal in the operational log', () =>
      regate.logs.slice(logsBefore).find((l) => /refused/.test(String(l.msg)) && Array.isArray(l.errors) && logged.test(l.errors.join('\n'))),
    );
    assert.equal(log.level, 50, 'logged as an error');
  }

  /** Restore a good config and wait until it is active again (reload_success back to 1). */
  async function recover(): Promise<void> {
    ws.write(good());
    regate.child.kill('SIGHUP');
    await waitFor('a successful reload', async () => (sampleValue(await scrape(regate), 'regate_config_reload_success') === 1 ? true : undefined));
  }

  it('bad YAML', async () => {
    await refused(() => writeAtomic(ws.config, 'routes: [unclosed\n'), /regate\.yaml:\d+:\d+: YAML syntax error/);
    await recover();
  });

  it('a schema error, reported with its key path', async () => {
    await refused(() => ws.write({ ...good(), routes: [route('a', '/a', { upstreem: 'app' })] }), /\/routes\/0\/upstreem: unknown key "upstreem"/);
    await recover();
  });

  it('an entrypoint the bundle does not have', async () => {
    await refused(() => ws.write({ ...good(), routes: [route('a', '/a', { entrypoint: 'lc/nope' })] }), /\/routes\/0\/entrypoint: entrypoint "lc\/nope" is not compiled into/);
    await recover();
  });

  it('a changed listener address needs a restart', async () => {
    const cfg = good();
    await refused(() => ws.write({ ...cfg, listen: { proxy: { host: '127.0.0.1', port: 1 }, admin: { host: '127.0.0.1', port: 0 } } }), /\/listen\/proxy\/port: changed from 0 to 1.*restart regate/);
    await recover();
  });

  it('a truncated bundle written in place', async () => {
    const bytes = readFileSync(bundleB);
    await refused(() => writeFileSync(ws.bundle, bytes.subarray(0, Math.floor(bytes.length / 2))), /gzip|truncated|unexpected end/i);
  });

  it('a truncated bundle renamed into place', async () => {
    const bytes = readFileSync(bundleB);
    await refused(() => writeAtomic(ws.bundle, bytes.subarray(0, bytes.length - 100)), /gzip|truncated|unexpected end/i);
  });

  it('a good bundle afterwards is taken', async () => {
    const before = reloads(await scrape(regate), 'bundle', 'success');
    writeAtomic(ws.bundle, readFileSync(bundleB));
    await waitFor('bundle B active', async () => ((await stamp(regate)) === 'B1' ? true : undefined));
    const exp = await scrape(regate);
    assert.equal(reloads(exp, 'bundle', 'success'), before + 1);
    assert.equal(sampleValue(exp, 'regate_config_reload_success'), 1);
  });
});

describe('dry-run and shadow routes', () => {
  let regate: RegateProcess;
  let ws: ReturnType<typeof workspace>;
  let candidate: string;

  before(async () => {
    ws = workspace(bundleA);
    // The candidate bundle: `guarded` also lets `x-role: operator` through.
    candidate = await buildBundle({
      files: {
        'lc.rego': `${stampPolicy('C')}
guarded := {"allow": true} if input.request.headers["x-role"] == "operator"
`,
      },
      entrypoints: ['lc/guarded'],
      args: ['--revision', 'rev-C'],
    });
    ws.write(
      baseConfig(
        ws.bundle,
        [
          route('dry', '/dry', { entrypoint: 'lc/guarded', dry_run: true }),
          route('dry-broken', '/dry-broken', { entrypoint: 'lc/e2', dry_run: true }),
          route('shadowed', '/shadowed', { entrypoint: 'lc/guarded', shadow: { entrypoint: 'lc/guarded', bundle: 'candidate' } }),
          route('shadow-active', '/shadow-active', { entrypoint: 'lc/e1', shadow: { entrypoint: 'lc/guarded' } }),
        ],
        { policy: { bundle: ws.bundle, default_entrypoint: 'lc/e1', candidate: { bundle: candidate } } },
      ),
    );
    regate = await startRegate(ws.config);
  });
  after(async () => {
    await regate?.stop();
  });

  it('a dry-run deny is forwarded, and marked in the decision log and metrics', async () => {
    const before = upstream.requests.length;
    const res = await send(`${regate.proxyUrl}/dry`);
    assert.equal(res.status, 200, 'the client sees the upstream response');
    assert.equal(upstream.requests.length, before + 1, 'forwarded');
    const echo = res.json<EchoBody>();
    assert.equal(echo.headers['x-policy-version'], undefined, 'a deny adds no policy headers');
    const rec = await regate.waitForDecision((r) => r.decision_id === echo.headers['x-request-id']);
    const custom = rec.custom as Record<string, unknown>;
    assert.equal(custom.dry_run, true);
    assert.equal(custom.dry_run_decision, 'deny');
    assert.equal(custom.dry_run_reason, 'policy_denied');
    assert.equal(custom.decision, 'allow', 'what regate did: it forwarded');
    assert.equal(custom.http_status, 200);
    assert.deepEqual(rec.result, { allow: false }, 'the would-be decision is logged as usual');

    const allowed = await send(`${regate.proxyUrl}/dry`, { headers: { 'x-role': 'admin' } });
    assert.equal(allowed.json<EchoBody>().headers['x-policy-version'], 'A', 'an allow applies its headers as usual');

    const exp = await scrape(regate);
    assert.equal(sampleValue(exp, 'regate_dry_run_decisions_total', { route: 'dry', decision: 'deny' }), 1);
    assert.equal(sampleValue(exp, 'regate_dry_run_decisions_total', { route: 'dry', decision: 'allow' }), 1);
    assert.equal(sampleValue(exp, 'regate_dry_run_decisions_total', { route: 'dry', decision: 'error' }), 0);
    assert.equal(sampleValue(exp, 'regate_denials_total', { route: 'dry', reason: 'policy_denied' }), 0, 'nothing was denied');
  });

  it('a dry-run policy error is forwarded too (decision error)', async () => {
    // A bundle whose `e2` (the route's entrypoint) fails at run time: two definitions that disagree.
    const broken = await buildBundle({
      files: {
        'b.rego': 'package lc\n\ne1 := {"allow": true}\n\ne2 := input.request.method\n\ne2 := input.request.path\n\ndefault guarded := {"allow": false}\n',
      },
      entrypoints: ['lc/e1', 'lc/e2', 'lc/guarded'],
      args: ['--revision', 'rev-broken'],
    });
    const before = upstream.requests.length;
    writeAtomic(ws.bundle, readFileSync(broken));
    await waitFor('the erroring bundle', async () => ((await scrape(regate)).samples.some((s) => s.name === 'regate_policy_bundle_info' && s.labels.revision === 'rev-broken') ? true : undefined));
    const res = await send(`${regate.proxyUrl}/dry-broken`);
    assert.equal(res.status, 200);
    assert.equal(upstream.requests.length, before + 1);
    const rec = await regate.waitForDecision((r) => r.decision_id === res.json<EchoBody>().headers['x-request-id']);
    const custom = rec.custom as Record<string, unknown>;
    assert.equal(custom.dry_run_decision, 'error');
    assert.equal(custom.dry_run_reason, 'policy_eval_error');
    assert.equal(sampleValue(await scrape(regate), 'regate_dry_run_decisions_total', { route: 'dry-broken', decision: 'error' }), 1);
    writeAtomic(ws.bundle, readFileSync(bundleA));
    await waitFor('bundle A again', async () => ((await scrape(regate)).samples.some((s) => s.name === 'regate_policy_bundle_info' && s.labels.revision === 'rev-A') ? true : undefined));
  });

  it('a shadow in the candidate bundle: agreements and disagreements counted and logged; the enforced decision governs', async () => {
    const cases: Array<[Record<string, string>, number, boolean, boolean]> = [
      // headers, enforced status, shadow allow, agree
      [{ 'x-role': 'admin' }, 200, true, true],
      [{ 'x-role': 'operator' }, 403, true, false], // the candidate also lets operators through
      [{}, 403, false, true],
    ];
    for (const [headers, status, shadowAllow, agree] of cases) {
      const res = await send(`${regate.proxyUrl}/shadowed`, { headers });
      assert.equal(res.status, status, JSON.stringify(headers));
      const id = status === 200 ? res.json<EchoBody>().headers['x-request-id'] : res.json().decision_id;
      const rec = await regate.waitForDecision((r) => r.decision_id === id);
      const shadow = (rec.custom as Record<string, any>).shadow;
      assert.equal(shadow.path, 'lc/guarded');
      assert.equal(shadow.bundle, 'candidate');
      assert.equal(shadow.allow, shadowAllow, JSON.stringify(headers));
      assert.equal(shadow.agree, agree, JSON.stringify(headers));
      assert.equal(typeof shadow.result, 'object');
      assert.deepEqual(Object.keys(rec.bundles as object).sort(), ['regate', 'regate-candidate']);
      assert.equal(typeof (rec.metrics as Record<string, unknown>).timer_regate_shadow_eval_ns, 'number');
    }
    const exp = await scrape(regate);
    assert.equal(sampleValue(exp, 'regate_shadow_decisions_total', { route: 'shadowed', agreement: 'agree' }), 2);
    assert.equal(sampleValue(exp, 'regate_shadow_decisions_total', { route: 'shadowed', agreement: 'disagree' }), 1);
    assert.equal(sampleValue(exp, 'regate_shadow_decisions_total', { route: 'shadowed', agreement: 'error' }), 0);
  });

  it('a shadow in the active bundle that errors never changes the enforced outcome', async () => {
    const broken = await buildBundle({
      files: {
        'b.rego': 'package lc\n\ne1 := {"allow": true, "headers": {"x-policy-version": "A1"}}\n\ne2 := {"allow": true}\n\nguarded := input.request.method\n\nguarded := input.request.path\n',
      },
      entrypoints: ['lc/e1', 'lc/e2', 'lc/guarded'],
      args: ['--revision', 'rev-shadow-broken'],
    });
    writeAtomic(ws.bundle, readFileSync(broken));
    await waitFor('the bundle with an erroring guarded', async () => ((await scrape(regate)).samples.some((s) => s.name === 'regate_policy_bundle_info' && s.labels.revision === 'rev-shadow-broken') ? true : undefined));
    const res = await send(`${regate.proxyUrl}/shadow-active`);
    assert.equal(res.status, 200);
    const echo = res.json<EchoBody>();
    assert.equal(echo.headers['x-policy-version'], 'A1');
    const rec = await regate.waitForDecision((r) => r.decision_id === echo.headers['x-request-id']);
    const custom = rec.custom as Record<string, any>;
    assert.equal(custom.decision, 'allow');
    assert.deepEqual(custom.shadow, { path: 'lc/guarded', bundle: 'active', allow: null, agree: null, error: 'policy_eval_error' });
    assert.equal(sampleValue(await scrape(regate), 'regate_shadow_decisions_total', { route: 'shadow-active', agreement: 'error' }), 1);
  });
});

describe('graceful shutdown', () => {
  it('SIGTERM: readiness turns 503, new connections are refused, the in-flight slow request completes, exit 0, its decision is logged', async () => {
    const ws = workspace(bundleA);
    ws.write(baseConfig(ws.bundle, [route('slow', '/slow')], { shutdown: { grace_ms: 10_000 } }));
    const regate = await startRegate(ws.config);
    try {
      assert.equal((await send(`${regate.adminUrl}/readyz`)).status, 200);
      const path = `/slow?mode=slow-headers&delay=1500&n=${Date.now()}`;
      const slow = send(`${regate.proxyUrl}${path}`);
      await upstream.waitForRequest((r) => r.url === path);
      const exited = new Promise<number | null>((resolve) => regate.child.once('exit', (code) => resolve(code)));
      regate.child.kill('SIGTERM');

      const ready = await waitFor('/readyz 503', async () => {
        const r = await send(`${regate.adminUrl}/readyz`);
        return r.status === 503 ? r : undefined;
      });
      assert.equal(ready.json().status, 'not_ready');
      const { port } = new URL(regate.proxyUrl);
      await waitFor('new proxy connections refused', () => connectionRefused(Number(port)));

      const res = await slow;
      assert.equal(res.status, 200, 'the in-flight request finished normally');
      assert.equal(await exited, 0);
      const id = res.json<EchoBody>().headers['x-request-id'];
      assert.ok(regate.decisions.some((d) => d.decision_id === id), 'its decision-log line was flushed before exit');
    } finally {
      await regate.stop();
    }
  });

  it('streams still open at the deadline are cut, and the process still exits 0', async () => {
    const ws = workspace(bundleA);
    ws.write(baseConfig(ws.bundle, [route('sse', '/sse')], { shutdown: { grace_ms: 300 } }));
    const regate = await startRegate(ws.config);
    try {
      const path = `/sse?mode=sse&events=1000&interval=50&n=${Date.now()}`;
      const streaming = send(`${regate.proxyUrl}${path}`).then(
        () => 'completed',
        () => 'cut',
      );
      await upstream.waitForRequest((r) => r.url === path);
      const exited = new Promise<number | null>((resolve) => regate.child.once('exit', (code) => resolve(code)));
      regate.child.kill('SIGTERM');
      assert.equal(await exited, 0);
      assert.equal(await streaming, 'cut');
      const rec = regate.decisions.find((d) => (d.custom as Record<string, unknown>).route_id === 'sse');
      assert.ok(rec, 'the cut stream has its decision-log line');
      const cut = regate.logs.find((l) => /grace period over/.test(String(l.msg)));
      assert.ok(cut, 'the deadline is logged');
      assert.equal(cut.grace_ms, 300);
      assert.ok(Number(cut.in_flight) >= 1 && Number(cut.connections) >= 1, 'with what it cut');
    } finally {
      await regate.stop();
    }
  });
});

/** True once a TCP connect to `port` is refused; undefined while it is accepted. */
function connectionRefused(port: number): Promise<true | undefined> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(undefined);
    });
    s.once('error', () => resolve(true));
  });
}
