import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { LogStreams } from '../../../src/lifecycle/log-streams.ts';

const LIMITS = { maxBytes: 4 * 1024 * 1024, policy: 'block' } as const;

describe('LogStreams', () => {
  it('one stream per destination, shared by every version; ended (flushed) when the last one releases it', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'regate-logs-')), 'd', 'decisions.log');
    const streams = new LogStreams((err) => assert.fail(err));
    const old = streams.acquire(file, LIMITS);
    const next = streams.acquire(file, LIMITS);
    for (let i = 0; i < 1000; i++) (i % 2 ? old : next).write(`{"n":${i}}\n`);
    await streams.release(file);
    next.write('{"n":"last"}\n');
    await streams.release(file);
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
    assert.equal(lines.length, 1001);
    assert.deepEqual(lines.map((l) => JSON.parse(l).n).slice(0, 3), [0, 1, 2], 'whole lines, in write order');
    assert.equal(JSON.parse(lines.at(-1)!).n, 'last');
  });

  it('buffer limits: set when a destination opens, changed only by configure (an activated version), not by a later acquire', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'regate-logs-')), 'decisions.log');
    const streams = new LogStreams((err) => assert.fail(err));
    streams.acquire(file, LIMITS);
    // A version being built (it may still be refused) must not change the running limits.
    streams.acquire(file, { maxBytes: 65_536, policy: 'drop' });
    assert.deepEqual(streams.limits(file), LIMITS);
    streams.configure(file, { maxBytes: 65_536, policy: 'drop' });
    assert.deepEqual(streams.limits(file), { maxBytes: 65_536, policy: 'drop' });
    await streams.closeAll();
    assert.equal(streams.limits(file), undefined);
  });

  it('closeAll flushes every destination', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'regate-logs-'));
    const streams = new LogStreams((err) => assert.fail(err));
    streams.acquire(join(dir, 'a.log'), LIMITS).write('a\n');
    streams.acquire(join(dir, 'b.log'), LIMITS).write('b\n');
    await streams.closeAll();
    assert.equal(readFileSync(join(dir, 'a.log'), 'utf8'), 'a\n');
    assert.equal(readFileSync(join(dir, 'b.log'), 'utf8'), 'b\n');
  });
});
