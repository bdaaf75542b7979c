/**
 * The decision-log uploader against a real receiver on 127.0.0.1 that checks
 * OPA's decision-log service protocol: method, path, headers, gzip JSON array,
 * EventV1 fields, chunk size ≤ upload_size_limit_bytes; and what happens when
 * the service is down, slow, failing (5xx) or refusing the size (413).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import type { DecisionLogServiceConfig } from '../../../src/config/types.ts';
import { createDecisionUpload, uploadUrl, type DecisionUpload, type UploadDropReason, type UploadResult } from '../../../src/observe/decision-upload.ts';
import { startDecisionLogReceiver, type DecisionLogReceiver } from '../../helpers/decision-log-receiver.ts';
import { freePort } from '../../helpers/ports.ts';

const open: { uploads: DecisionUpload[]; receivers: DecisionLogReceiver[] } = { uploads: [], receivers: [] };
afterEach(async () => {
  await Promise.all(open.uploads.splice(0).map((u) => u.close()));
  await Promise.all(open.receivers.splice(0).map((r) => r.close()));
});

function recorder() {
  const uploads: { result: UploadResult; events: number; bytes: number }[] = [];
  const dropped: Record<UploadDropReason, number> = { buffer_full: 0, too_large: 0, shutdown: 0 };
  let buffered = 0;
  return {
    uploads,
    dropped,
    get buffered() {
      return buffered;
    },
    observer: {
      upload: (result: UploadResult, events: number, bytes: number) => void uploads.push({ result, events, bytes }),
      dropped: (reason: UploadDropReason, n: number) => void (dropped[reason] += n),
      buffered: (b: number) => void (buffered = b),
    },
  };
}

const quiet = { warn: () => {} };

function config(url: string, extra: Partial<DecisionLogServiceConfig> = {}): DecisionLogServiceConfig {
  // Long delays: the tests drive rounds with flush(), the timer must not race them.
  return { url, resource: '/logs', headers: {}, credentials: {}, min_delay_seconds: 3600, max_delay_seconds: 3600, upload_size_limit_bytes: 32768, buffer_size_limit_bytes: 1 << 24, timeout_ms: 5000, ...extra };
}

function start(cfg: DecisionLogServiceConfig, rec = recorder()) {
  const u = createDecisionUpload(cfg, { observer: rec.observer, logger: quiet, random: () => 0.5 });
  open.uploads.push(u);
  return u;
}

async function receiver(options: { resource?: string; port?: number } = {}): Promise<DecisionLogReceiver> {
  const r = await startDecisionLogReceiver(options);
  open.receivers.push(r);
  return r;
}

/** An OPA-shaped event; `pad` bytes of incompressible data in `input`. */
function event(n: number, pad = 0): string {
  return JSON.stringify({
    decision_id: `d-${n}`,
    timestamp: '2026-03-09T16:00:00.123456789Z',
    labels: { id: 'regate-test', version: '0.0.0' },
    bundles: { regate: { revision: 'r1' } },
    path: 'regate/authz/decision',
    input: { n, pad: pad > 0 ? randomBytes(Math.ceil(pad / 4) * 3).toString('base64') : '' },
    result: { allow: true },
    metrics: { timer_rego_query_eval_ns: 1000 },
    custom: { route_id: 'r' },
  });
}

const ids = (events: readonly Record<string, unknown>[]): unknown[] => events.map((e) => e.decision_id);
const range = (n: number): string[] => Array.from({ length: n }, (_, i) => `d-${i}`);

describe('uploadUrl', () => {
  it('joins the service URL and the resource with exactly one slash, as OPA does', () => {
    assert.equal(uploadUrl({ url: 'http://h:1', resource: '/logs' }), 'http://h:1/logs');
    assert.equal(uploadUrl({ url: 'http://h:1/v1/', resource: '/logs' }), 'http://h:1/v1/logs');
    assert.equal(uploadUrl({ url: 'http://h:1/v1', resource: 'tenants/a/logs' }), 'http://h:1/v1/tenants/a/logs');
  });
});

describe('decision-log upload (OPA decision-log service protocol)', () => {
  it('POSTs a gzip-compressed JSON array of the events to <url>/<resource> with the protocol headers, credentials from a file and extra headers', async () => {
    const rx = await receiver({ resource: '/v1/logs' });
    const dir = mkdtempSync(join(tmpdir(), 'regate-upload-'));
    try {
      const token = join(dir, 'token');
      writeFileSync(token, 'first-token\n');
      const rec = recorder();
      const u = start(config(`${rx.url}/v1/`, { resource: 'logs', headers: { 'x-tenant': 'payments' }, credentials: { bearer: { token_path: token, scheme: 'Bearer' } } }), rec);
      for (let i = 0; i < 3; i++) u.push(event(i));
      await u.flush();
      assert.equal(rx.uploads.length, 1);
      const up = rx.uploads[0]!;
      assert.deepEqual(up.violations, []);
      assert.deepEqual(ids(up.events), range(3));
      assert.deepEqual(up.events[0], JSON.parse(event(0).replace(/"pad":"[^"]*"/, '"pad":""')));
      assert.equal(up.headers.authorization, 'Bearer first-token');
      assert.equal(up.headers['x-tenant'], 'payments');
      assert.match(String(up.headers['user-agent']), /^regate\//);
      assert.deepEqual(rec.uploads, [{ result: 'success', events: 3, bytes: up.body.length }]);
      assert.equal(rec.buffered, 0);

      // A rotated token file is read again before the next upload; no reload needed.
      writeFileSync(token, 'second-token-longer\n');
      u.push(event(3));
      await u.flush();
      assert.equal(rx.uploads[1]?.headers.authorization, 'Bearer second-token-longer');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('sends nothing without its credentials: a missing token file fails the upload and keeps the events', async () => {
    const rx = await receiver();
    const dir = mkdtempSync(join(tmpdir(), 'regate-upload-'));
    try {
      const token = join(dir, 'token');
      const rec = recorder();
      const u = start(config(rx.url, { credentials: { bearer: { token_path: token, scheme: 'Bearer' } } }), rec);
      u.push(event(0));
      await u.flush();
      assert.equal(rx.uploads.length, 0);
      assert.deepEqual(rec.uploads.map((x) => x.result), ['failed']);
      writeFileSync(token, 't');
      await u.flush();
      assert.deepEqual(ids(rx.accepted()), ['d-0']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('packs events into chunks whose compressed body never exceeds upload_size_limit_bytes, in order, each once', async () => {
    const rx = await receiver();
    const limit = 4096;
    const u = start(config(rx.url, { upload_size_limit_bytes: limit }));
    for (let i = 0; i < 120; i++) u.push(event(i, 300));
    await u.flush();
    assert.ok(rx.uploads.length > 5, `${rx.uploads.length} uploads`);
    for (const up of rx.uploads) {
      assert.deepEqual(up.violations, []);
      assert.ok(up.body.length <= limit, `a ${up.body.length}-byte chunk`);
    }
    assert.deepEqual(ids(rx.accepted()), range(120));
    // Chunks are filled, not one event each: most carry several events.
    assert.ok(rx.uploads.filter((x) => x.events.length > 1).length >= rx.uploads.length / 2);
  });

  it('drops (and counts) an event that does not fit the limit even alone; the others go through', async () => {
    const rx = await receiver();
    const rec = recorder();
    const u = start(config(rx.url, { upload_size_limit_bytes: 2048 }), rec);
    u.push(event(0));
    u.push(event(1, 8000));
    u.push(event(2));
    await u.flush();
    assert.deepEqual(ids(rx.accepted()), ['d-0', 'd-2']);
    assert.equal(rec.dropped.too_large, 1);
    assert.equal(rec.buffered, 0);
  });

  it('keeps the events on 5xx and delivers them on the next round, oldest first', async () => {
    const rx = await receiver();
    const rec = recorder();
    const u = start(config(rx.url), rec);
    rx.reply({ status: 503 });
    u.push(event(0));
    u.push(event(1));
    await u.flush();
    assert.deepEqual(rec.uploads.map((x) => x.result), ['rejected']);
    assert.ok(rec.buffered > 0);
    u.push(event(2));
    await u.flush();
    assert.deepEqual(ids(rx.accepted()), range(3));
    assert.deepEqual(rec.uploads.map((x) => x.result), ['rejected', 'success']);
    assert.equal(rec.buffered, 0);
  });

  it('retries on its own after a failure, with backoff (no flush)', async () => {
    const rx = await receiver();
    const u = start(config(rx.url, { max_delay_seconds: 3600 }));
    rx.reply({ status: 500 });
    u.push(event(0));
    await u.flush();
    // The first retry comes after OPA's first backoff step (0.1 s × 1.6, ±20 %).
    await rx.waitFor((ups) => ups.some((x) => x.status === 204));
    assert.deepEqual(ids(rx.accepted()), ['d-0']);
  });

  it('on 413 splits the chunk and resends at once; a single refused event is dropped, not retried forever', async () => {
    const rx = await receiver();
    const rec = recorder();
    const u = start(config(rx.url), rec);
    for (let i = 0; i < 8; i++) u.push(event(i, 100));
    rx.reply({ status: 413 });
    await u.flush();
    assert.deepEqual(ids(rx.accepted()), range(8));
    assert.ok(rx.uploads[0]!.events.length === 8 && rx.uploads[1]!.events.length < 8);
    assert.equal(rec.uploads[0]?.result, 'too_large');

    u.push(event(8));
    rx.reply({ status: 413 });
    await u.flush();
    assert.equal(rec.dropped.too_large, 1);
    assert.equal(rec.buffered, 0);
    assert.equal(rx.uploads.at(-1)?.status, 413);
  });

  it('bounds the buffer by bytes: the oldest events are dropped and counted, the newest kept', async () => {
    const rx = await receiver();
    const rec = recorder();
    const one = Buffer.byteLength(event(10)) + 1;
    const u = start(config(rx.url, { buffer_size_limit_bytes: one * 5 }), rec);
    for (let i = 10; i < 30; i++) u.push(event(i));
    assert.equal(rec.dropped.buffer_full, 15);
    assert.ok(rec.buffered <= one * 5);
    await u.flush();
    assert.deepEqual(ids(rx.accepted()), ['d-25', 'd-26', 'd-27', 'd-28', 'd-29']);
  });

  it('service down: the upload fails and the events wait; once it listens they are delivered', async () => {
    const port = await freePort();
    const rec = recorder();
    const u = start(config(`http://127.0.0.1:${port}`), rec);
    u.push(event(0));
    await u.flush();
    assert.deepEqual(rec.uploads.map((x) => x.result), ['failed']);
    const rx = await receiver({ port });
    await u.flush();
    assert.deepEqual(ids(rx.accepted()), ['d-0']);
  });

  it('slow service: an upload past timeout_ms fails and is retried; nothing is lost', async () => {
    const rx = await receiver();
    const rec = recorder();
    const u = start(config(rx.url, { timeout_ms: 300 }), rec);
    rx.reply({ status: 204, delayMs: 3000 });
    u.push(event(0));
    await u.flush();
    assert.deepEqual(rec.uploads.map((x) => x.result), ['failed']);
    await u.flush();
    assert.equal(rec.uploads.at(-1)?.result, 'success');
    // The slow request may still land late: the receiver may see d-0 twice, never zero times.
    assert.ok(ids(rx.accepted()).includes('d-0'));
  });

  it('close() makes one last upload; events pushed after it are counted as dropped', async () => {
    const rx = await receiver();
    const rec = recorder();
    const u = createDecisionUpload(config(rx.url), { observer: rec.observer, logger: quiet });
    u.push(event(0));
    u.push(event(1));
    await u.close();
    assert.deepEqual(ids(rx.accepted()), range(2));
    u.push(event(2));
    assert.equal(rec.dropped.shutdown, 1);
  });

  it('close() with the service down drops what is left and counts it, within its deadline', async () => {
    const port = await freePort();
    const rec = recorder();
    const u = createDecisionUpload(config(`http://127.0.0.1:${port}`, { timeout_ms: 500 }), { observer: rec.observer, logger: quiet });
    u.push(event(0));
    u.push(event(1));
    await u.close();
    assert.equal(rec.dropped.shutdown, 2);
    assert.equal(rec.buffered, 0);
  });
});
