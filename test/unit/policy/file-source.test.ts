/**
 * The `policy.bundle` file source, with real files and real fs.watch events:
 * atomic rename-into-place, in-place rewrites, a truncated file refused and
 * then the fixed file accepted. Waits are bounded and event-driven; nothing
 * asserts on elapsed time.
 */
import assert from 'node:assert/strict';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import type { PolicyConfig } from '../../../src/config/types.ts';
import { BundleError } from '../../../src/errors.ts';
import { createMetrics, type Metrics } from '../../../src/observe/metrics.ts';
import type { Bundle } from '../../../src/policy/bundle.ts';
import { NO_REVISION_WARNING } from '../../../src/policy/intake.ts';
import { createBundleSource, loadPolicyBundle, type BundleSource } from '../../../src/policy/source.ts';
import { createLogSink, type LogSink } from '../../helpers/log-sink.ts';
import { scrape, sampleValue } from '../../helpers/metrics.ts';
import { buildBundle } from '../../helpers/opa.ts';
import { makeKeys, opaBuildSigned, tempDir } from '../../helpers/signing.ts';

const REGO = 'package regate.authz\n\ndecision := {"allow": true}\n';
const ENTRY = ['regate/authz/decision'];
const revs: Record<string, Uint8Array> = {};

before(async () => {
  await Promise.all(
    ['r1', 'r2', 'r3', 'r4', ''].map(async (rev) => {
      revs[rev] = await readFile(await buildBundle({ files: { 'authz.rego': REGO }, entrypoints: ENTRY, args: rev ? ['--revision', rev] : [] }));
    }),
  );
});

type Event = { kind: 'bundle'; bundle: Bundle } | { kind: 'error'; err: BundleError };

interface Harness {
  readonly path: string;
  readonly source: BundleSource;
  readonly metrics: Metrics;
  readonly logs: LogSink;
  readonly events: Event[];
  /** The next event after those already consumed (bounded wait). */
  next(timeoutMs?: number): Promise<Event>;
  /**
   * The next bundle, skipping refusals of partly written content: a writer's
   * truncate and write are separate file events, and on a loaded machine the
   * debounce may fall between them. Returns the bundle and the skipped reasons.
   */
  nextBundle(): Promise<{ revision: string; skipped: string[] }>;
}

const sources: BundleSource[] = [];
after(() => Promise.all(sources.map((s) => s.stop())));

async function harness(initial: Uint8Array | undefined, extra: Partial<PolicyConfig> = {}, timing: { recheckMs?: number; now?: () => number } = {}): Promise<Harness> {
  const dir = await tempDir('regate-file-source-');
  const path = join(dir, 'bundle.tar.gz');
  if (initial !== undefined) await writeFile(path, initial);
  const logs = createLogSink();
  const metrics = createMetrics({ routeIds: [], bundle: { name: 'regate', revision: '' }, defaultMetrics: false });
  const source = createBundleSource(
    { default_entrypoint: 'regate/authz/decision', timezone: 'UTC', bundle: path, ...extra },
    // A short debounce keeps the suite quick; the long recheck keeps these tests on fs.watch events.
    { logger: pino({ level: 'info' }, logs.stream), metrics, configFile: join(dir, 'regate.yaml'), debounceMs: 30, recheckMs: timing.recheckMs ?? 60_000, ...(timing.now ? { now: timing.now } : {}) },
  );
  sources.push(source);
  const events: Event[] = [];
  const waiters = new Set<() => void>();
  let consumed = 0;
  source.start(
    (bundle) => {
      events.push({ kind: 'bundle', bundle });
      for (const w of waiters) w();
    },
    (err) => {
      events.push({ kind: 'error', err: err as BundleError });
      for (const w of waiters) w();
    },
  );
  const h: Harness = {
    path,
    source,
    metrics,
    logs,
    events,
    async nextBundle() {
      const skipped: string[] = [];
      for (let i = 0; i < 20; i++) {
        const e = await h.next();
        if (e.kind === 'bundle') return { revision: e.bundle.manifest.revision, skipped };
        assert.equal(e.err.reason, 'bundle_invalid', e.err.message);
        skipped.push(e.err.reason);
      }
      throw new Error('no bundle after 20 refusals');
    },
    next(timeoutMs = 10_000) {
      return new Promise<Event>((resolve, reject) => {
        const check = (): void => {
          if (events.length > consumed) {
            clearTimeout(timer);
            waiters.delete(check);
            resolve(events[consumed++]!);
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no bundle source event within ${timeoutMs} ms (${events.length} so far)`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
  };
  return h;
}

const revisionOf = (e: Event): string => {
  assert.equal(e.kind, 'bundle', e.kind === 'error' ? e.err.message : '');
  return (e as { bundle: Bundle }).bundle.manifest.revision;
};

const reasonOf = (e: Event): string => {
  assert.equal(e.kind, 'error', e.kind === 'bundle' ? `unexpected bundle ${e.bundle.manifest.revision}` : '');
  return (e as { err: BundleError }).err.reason;
};

describe('policy.bundle file source', () => {
  it('delivers the file at start and is ready', async () => {
    const h = await harness(revs.r1);
    assert.equal(revisionOf(await h.next()), 'r1');
    assert.equal(h.source.ready(), true);
    const m = await scrape(h.metrics.registry);
    assert.equal(sampleValue(m, 'regate_bundle_activations_total', { result: 'success' }), 1);
    assert.ok((sampleValue(m, 'regate_bundle_last_success_timestamp_seconds') ?? 0) > 1_600_000_000);
  });

  it('warns once per delivered bundle that has no revision, and not for one that has', async () => {
    const h = await harness(revs['']);
    assert.equal((await h.nextBundle()).revision, '');
    const warned = () => h.logs.records.filter((r) => r.msg === NO_REVISION_WARNING);
    assert.equal(warned().length, 1);
    assert.equal(warned()[0]!.level, 40, 'a warning');
    assert.equal(warned()[0]!.bundle, h.path);
    await writeFile(`${h.path}.tmp`, revs.r1!);
    await rename(`${h.path}.tmp`, h.path);
    assert.equal((await h.nextBundle()).revision, 'r1');
    assert.equal(warned().length, 1, 'no warning for a bundle with a revision');
  });

  it('picks up an atomic rename into place', async () => {
    const h = await harness(revs.r1);
    assert.equal(revisionOf(await h.next()), 'r1');
    const tmp = `${h.path}.tmp`;
    await writeFile(tmp, revs.r2!);
    await rename(tmp, h.path);
    // The rename swaps complete content in one step: never a partial read.
    assert.equal(revisionOf(await h.next()), 'r2');
  });

  it('picks up an in-place rewrite, and does not hand over identical content twice', async () => {
    const h = await harness(revs.r1);
    assert.equal(revisionOf(await h.next()), 'r1');
    await writeFile(h.path, revs.r1!); // same bytes: no new bundle for the consumer
    await writeFile(h.path, revs.r3!);
    assert.equal((await h.nextBundle()).revision, 'r3', 'the rewrite with identical bytes handed nothing over');
  });

  it('refuses a truncated (half-written) file, keeps the last good, and accepts the fixed file', async () => {
    const h = await harness(revs.r1);
    assert.equal(revisionOf(await h.next()), 'r1');
    const full = revs.r2!;
    await writeFile(h.path, full.subarray(0, Math.floor(full.length / 2)));
    const refused = await h.next();
    assert.equal(reasonOf(refused), 'bundle_invalid');
    assert.match((refused as { err: Error }).err.message, /corrupt gzip data|truncated|not a gzip file/);
    assert.equal(h.source.ready(), true, 'the last good bundle is still the active one');
    await writeFile(h.path, full);
    const fixed = await h.nextBundle();
    assert.equal(fixed.revision, 'r2');
    const m = await scrape(h.metrics.registry);
    assert.equal(sampleValue(m, 'regate_bundle_activations_total', { result: 'error' }), 1 + fixed.skipped.length);
    assert.equal(sampleValue(m, 'regate_bundle_errors_total', { reason: 'bundle_invalid' }), 1 + fixed.skipped.length);
    const log = h.logs.records.find((r) => r.reason === 'bundle_invalid');
    assert.equal(log?.msg, 'policy bundle refused; the last good bundle keeps serving');
    assert.equal(log?.bundle, h.path);
  });

  it('reports a missing file once, then delivers it when it appears', async () => {
    const h = await harness(undefined);
    assert.equal(reasonOf(await h.next()), 'bundle_unavailable');
    assert.equal(h.source.ready(), false);
    await writeFile(h.path, revs.r4!);
    assert.equal((await h.nextBundle()).revision, 'r4');
    assert.equal(h.events.filter((e) => e.kind === 'error' && e.err.reason === 'bundle_unavailable').length, 1);
  });

  it('verifies signatures of local files too', async () => {
    const dir = await tempDir();
    const key = await makeKeys(dir, 'k');
    const signed = await opaBuildSigned({ files: { 'authz.rego': REGO }, entrypoints: ENTRY, signingKey: key.privateKey, revision: 'signed' });
    const h = await harness(revs.r1, { signing: { public_key_file: key.publicKey, algorithm: 'RS256', exclude_files: [] } });
    assert.equal(reasonOf(await h.next()), 'signature_missing');
    const tmp = `${h.path}.tmp`;
    await writeFile(tmp, signed);
    await rename(tmp, h.path);
    assert.equal(revisionOf(await h.next()), 'signed');
  });

  it('stop(): no callback afterwards', async () => {
    const h = await harness(revs.r1);
    assert.equal(revisionOf(await h.next()), 'r1');
    await h.source.stop();
    await writeFile(h.path, revs.r2!);
    await rm(h.path);
    // Give a (wrongly) live watcher a real chance: a second source on a copy proves events flow.
    const witness = await harness(revs.r1);
    assert.equal(revisionOf(await witness.next()), 'r1');
    await writeFile(witness.path, revs.r2!);
    assert.equal((await witness.nextBundle()).revision, 'r2');
    assert.equal(h.events.length, 1);
  });
});

describe('policy.bundle file source without file events', () => {
  it('falls back to periodic stat checks when the directory cannot be watched, and watches it once it exists', async () => {
    const root = await tempDir('regate-file-source-');
    const dir = join(root, 'not-yet');
    const path = join(dir, 'bundle.tar.gz');
    const logs = createLogSink();
    const metrics = createMetrics({ routeIds: [], bundle: { name: 'regate', revision: '' }, defaultMetrics: false });
    const source = createBundleSource({ default_entrypoint: 'x', timezone: 'UTC', bundle: path }, { logger: pino({ level: 'info' }, logs.stream), metrics, configFile: 'c', debounceMs: 20, recheckMs: 40 });
    sources.push(source);
    const events: string[] = [];
    let wake: () => void = () => {};
    source.start(
      (b) => {
        events.push(b.manifest.revision);
        wake();
      },
      (e) => {
        events.push((e as BundleError).reason);
        wake();
      },
    );
    const until = async (n: number): Promise<void> => {
      for (let i = 0; events.length < n; i++) {
        if (i > 200) throw new Error(`events so far: ${events.join(', ')}`);
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, 50);
        });
      }
    };
    await until(1);
    assert.deepEqual(events, ['bundle_unavailable']);
    assert.equal(logs.records.filter((r) => r.msg === 'cannot watch the bundle directory; falling back to periodic checks').length, 1);
    const { mkdir } = await import('node:fs/promises');
    await mkdir(dir);
    await writeFile(`${path}.tmp`, revs.r1!);
    await rename(`${path}.tmp`, path);
    await until(2);
    assert.deepEqual(events, ['bundle_unavailable', 'r1']);
    assert.equal(logs.records.filter((r) => r.msg === 'cannot watch the bundle directory; falling back to periodic checks').length, 1, 'said once, not every recheck');
    await source.stop();
  });
});

describe('loadPolicyBundle (regate check)', () => {
  it('reads and verifies the file once', async () => {
    const dir = await tempDir();
    const path = join(dir, 'b.tar.gz');
    await writeFile(path, revs.r1!);
    const bundle = await loadPolicyBundle({ default_entrypoint: 'x', timezone: 'UTC', bundle: path }, { configFile: 'c' });
    assert.equal(bundle.manifest.revision, 'r1');
    await assert.rejects(
      loadPolicyBundle({ default_entrypoint: 'x', timezone: 'UTC', bundle: join(dir, 'none.tar.gz') }, { configFile: 'c' }),
      (err: unknown) => err instanceof BundleError && err.reason === 'bundle_unavailable' && /file not found/.test(err.message),
    );
  });
});

describe('policy.bundle file source: freshness gauges', () => {
  /** Bounded wait until `probe` holds, polling every 20 ms. */
  const until = async (probe: () => Promise<boolean>, what: string): Promise<void> => {
    for (let i = 0; i < 500; i++) {
      if (await probe()) return;
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.fail(`timed out waiting for ${what}`);
  };

  it('every periodic check that finds the active content advances the last check; activation time stays', async () => {
    let clock = 1_700_000_000_000;
    const h = await harness(revs.r1, {}, { recheckMs: 30, now: () => clock });
    assert.equal(revisionOf(await h.next()), 'r1');
    const value = async (name: string): Promise<number> => sampleValue(await scrape(h.metrics.registry), name) ?? Number.NaN;
    assert.equal(await value('regate_bundle_last_success_timestamp_seconds'), 1_700_000_000);
    clock += 600_000;
    // A file source is checked, not polled: the check gauge moves on while the activation gauge stays.
    await until(async () => (await value('regate_bundle_last_check_timestamp_seconds')) === 1_700_000_600, 'a recheck');
    assert.equal(await value('regate_bundle_last_success_timestamp_seconds'), 1_700_000_000);

    // The file goes missing: refused once, and no later check confirms anything.
    await rm(h.path);
    assert.equal(reasonOf(await h.next()), 'bundle_unavailable');
    clock += 600_000;
    await new Promise((r) => setTimeout(r, 200)); // several recheck periods
    assert.ok((await value('regate_bundle_last_check_timestamp_seconds')) <= 1_700_000_600, 'a missing file is not a successful check');

    // Back in place: the next check confirms it again.
    await writeFile(h.path, revs.r1!);
    await until(async () => (await value('regate_bundle_last_check_timestamp_seconds')) === 1_700_001_200, 'the file back');
  });
});
