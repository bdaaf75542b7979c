/**
 * The decision log behind a destination that stops reading (issue 16): a real
 * regate process writes its decision log into a FIFO whose reader the test
 * pauses. `drop`: requests keep flowing, what does not fit is dropped and
 * counted, one warning, and every record not dropped arrives whole. `block`:
 * requests wait for log space, nothing is dropped, and every answered request
 * has its record.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createReadStream, mkdtempSync, type ReadStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { send } from '../helpers/http.ts';
import { parseExposition, sampleValue } from '../helpers/metrics.ts';
import { buildBundle } from '../helpers/opa.ts';
import { startRegate, writeConfig, type RegateProcess } from '../helpers/regate-process.ts';
import { startUpstreamServer, type TestUpstream } from '../helpers/upstream-server.ts';

let upstream: TestUpstream;
let bundle: string;
const cleanups: (() => Promise<unknown>)[] = [];

before(async () => {
  upstream = await startUpstreamServer();
  bundle = await buildBundle({ files: { 'ov.rego': 'package ov\n\nallow := {"allow": true}\n' }, entrypoints: ['ov/allow'] });
});

after(async () => {
  for (const c of cleanups.splice(0)) await c();
  await upstream?.close();
});

/** A FIFO and its (paused) reader, collecting decision-log lines. */
function fifo(): { path: string; reader: ReadStream; lines: () => string[] } {
  const path = join(mkdtempSync(join(tmpdir(), 'regate-ov-')), 'decisions.fifo');
  execFileSync('mkfifo', [path]);
  const reader = createReadStream(path, { encoding: 'utf8', highWaterMark: 4096 });
  let text = '';
  reader.on('data', (c) => (text += c));
  reader.pause();
  return { path, reader, lines: () => text.split('\n').slice(0, -1) };
}

async function start(destination: string, maxBufferBytes: number, overload: 'block' | 'drop'): Promise<RegateProcess> {
  const regate = await startRegate(
    writeConfig({
      listen: { proxy: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 } },
      upstreams: { app: { url: upstream.url } },
      policy: { bundle, default_entrypoint: 'ov/allow' },
      decision_log: { destination, max_buffer_bytes: maxBufferBytes, overload },
      routes: [{ id: 'ov', match: { methods: ['GET'], path: '/ov' }, upstream: 'app', auth: 'none' }],
    }),
  );
  cleanups.push(() => regate.stop());
  return regate;
}

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const buffered = async (r: RegateProcess): Promise<number> =>
  sampleValue(parseExposition((await send(`${r.adminUrl}/metrics`)).text), 'regate_decision_log_buffer_bytes') ?? NaN;

const dropped = async (r: RegateProcess): Promise<number> => sampleValue(parseExposition((await send(`${r.adminUrl}/metrics`)).text), 'regate_decision_log_dropped_total') ?? NaN;

describe('decision log overload', { timeout: 120_000 }, () => {
  it('drop: requests never wait; the backlog stays within max_buffer_bytes; what does not fit is dropped, counted and warned about; the rest arrives whole', async () => {
    const f = fifo();
    cleanups.push(async () => f.reader.destroy());
    const regate = await start(f.path, 65_536, 'drop');
    // A 2 KB header makes each record ~3.5 KB: 1500 requests are ~5 MB of records against
    // 64 KiB of buffer and a stalled reader.
    const pad = { 'x-pad': 'p'.repeat(2_000) };
    const total = 1500;
    let next = 0;
    let ok = 0;
    let peak = 0;
    const floodStarted = Date.now();
    let flooding = true;
    const sampler = (async () => {
      while (flooding) {
        peak = Math.max(peak, await buffered(regate));
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < total) {
          const n = next++;
          if ((await send(`${regate.proxyUrl}/ov?n=${n}`, { headers: pad })).status === 200) ok++;
        }
      }),
    );
    flooding = false;
    await sampler;
    peak = Math.max(peak, await buffered(regate));
    assert.equal(ok, total, 'every request answered while the log is stalled');
    assert.ok(peak > 0 && peak <= 65_536, `regate_decision_log_buffer_bytes stayed within max_buffer_bytes (peak ${peak})`);
    const lost = await dropped(regate);
    assert.ok(lost > 0, `records were dropped (${lost})`);
    const warnings = regate.logs.filter((l) => /records dropped/.test(String(l.msg)));
    const intervals = Math.ceil((Date.now() - floodStarted) / 10_000);
    assert.ok(warnings.length >= 1 && warnings.length <= intervals, `at most one warning per 10 s, not one per record (${warnings.length} in ${intervals} intervals)`);
    assert.ok(warnings.reduce((n, w) => n + Number(w.dropped), 0) <= lost, 'the warnings count drops, never more than the metric');

    f.reader.resume();
    await until('every record not dropped is read', () => f.lines().length === total - lost);
    for (const line of f.lines()) assert.equal(JSON.parse(line).msg, 'Decision Log');
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(f.lines().length, total - lost, 'nothing beyond: accepted + dropped = requests');
  });

  it('block: with the buffer full a request waits for log space; nothing is dropped; every answered request has its record', async () => {
    const f = fifo();
    cleanups.push(async () => f.reader.destroy());
    const regate = await start(f.path, 65_536, 'block');
    let answered = 0;
    let stop = false;
    const clients = Array.from({ length: 8 }, async (_, c) => {
      for (let n = 0; !stop; n++) {
        const res = await send(`${regate.proxyUrl}/ov?c=${c}&n=${n}`);
        assert.equal(res.status, 200);
        answered++;
      }
    });
    // The buffer (and the pipe behind it) fill up: then answers stop coming while the reader is paused.
    let last = -1;
    await until('requests held at admission', async () => {
      const stalled = answered === last && answered > 0;
      last = answered;
      if (!stalled) await new Promise((r) => setTimeout(r, 300));
      return stalled;
    });
    const held = answered;
    assert.ok((await buffered(regate)) >= 65_536, 'held because the buffer is full');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(answered, held, 'no request is answered while its record has no room');
    stop = true;
    f.reader.resume();
    await Promise.all(clients);
    assert.ok(answered > held, 'the waiting requests completed once the destination read again');
    assert.equal(await dropped(regate), 0);
    await until('one record per answered request', () => f.lines().length === answered);
  });
});
