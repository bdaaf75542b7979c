/**
 * RingLogStream (the decision log's ring + writer thread) against real
 * destinations: a FIFO whose reader the test pauses and resumes (a stalled
 * destination), files, and a path that cannot be opened. Asserts the bound
 * on bytes held, each overload policy, that every accepted line arrives
 * whole and in order (also lines larger than the ring and multi-byte text
 * across its wrap), and that failures are reported, never thrown.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createReadStream, mkdtempSync, readFileSync, writeFileSync, type ReadStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { RingLogStream } from '../../../src/observe/log-ring.ts';

const MAX = 64 * 1024;
const line = (i: number): string => `${JSON.stringify({ msg: 'Decision Log', i, pad: 'x'.repeat(180) })}\n`;

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Fifo {
  readonly path: string;
  readonly reader: ReadStream;
  text(): string;
}

/** A FIFO with a paused reader: the writer thread's writes block once the pipe is full. */
function fifo(): Fifo {
  const path = join(mkdtempSync(join(tmpdir(), 'regate-ring-')), 'decisions.fifo');
  execFileSync('mkfifo', [path]);
  const reader = createReadStream(path, { encoding: 'utf8', highWaterMark: 4096 });
  let text = '';
  reader.on('data', (c) => (text += c));
  reader.pause();
  cleanups.push(async () => {
    reader.destroy();
  });
  return { path, reader, text: () => text };
}

function open(destination: string, limits: ConstructorParameters<typeof RingLogStream>[1], hooks: ConstructorParameters<typeof RingLogStream>[2] = {}): RingLogStream {
  const ring = new RingLogStream(destination, limits, hooks);
  cleanups.push(() => ring.end());
  return ring;
}

async function until(what: string, check: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('RingLogStream', () => {
  it('drop: a stalled destination never makes it hold more than max bytes; what does not fit is dropped and counted; the rest arrives whole, in order', async () => {
    const f = fifo();
    let dropped = 0;
    const log = open(f.path, { maxBytes: MAX, policy: 'drop' }, { onDrop: () => dropped++, onError: (err) => assert.fail(err) });
    const accepted: number[] = [];
    let peak = 0;
    for (let i = 0; i < 20_000; i++) {
      if (log.write(line(i))) accepted.push(i);
      peak = Math.max(peak, log.buffered);
      assert.equal(log.whenWritable(), undefined, 'drop never makes a request wait');
      if (i % 1000 === 0) await new Promise((r) => setImmediate(r));
    }
    assert.ok(peak <= MAX, `held at most ${MAX} bytes (peak ${peak})`);
    assert.ok(dropped > 0, 'overflow was dropped');
    assert.equal(accepted.length + dropped, 20_000);
    f.reader.resume();
    const want = accepted.map(line).join('');
    await until('every accepted line read', () => f.text().length >= want.length);
    assert.equal(f.text(), want);
    await until('buffer drained', () => log.buffered === 0);
  });

  it('block: once full, admission waits until the destination took enough; nothing is dropped; order kept', async () => {
    const f = fifo();
    const log = open(f.path, { maxBytes: MAX, policy: 'block' }, { onDrop: () => assert.fail('block never drops') });
    let written = 0;
    // The pipe absorbs ~64 KiB and the writer thread holds one blocked write: keep going until admission stays shut.
    let gate: Promise<void> | undefined;
    for (let round = 0; round < 200; round++) {
      while (log.whenWritable() === undefined) {
        assert.equal(log.write(line(written)), true);
        written++;
        if (written % 200 === 0) await new Promise((r) => setImmediate(r));
      }
      gate = log.whenWritable();
      assert.ok(gate, 'the buffer filled: admission waits');
      assert.ok(log.buffered >= MAX);
      assert.ok(log.buffered <= MAX + line(written).length, 'never more than one record over, with admission respected');
      const stalled = await Promise.race([gate.then(() => false), new Promise<boolean>((r) => setTimeout(() => r(true), 500))]);
      if (stalled) break;
    }
    let opened = false;
    void gate!.then(() => (opened = true));
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(opened, false, 'still waiting while the destination is stalled');
    assert.equal(log.whenWritable(), gate, 'every waiting request shares one promise');
    // A request admitted before the buffer filled still adds its record: accepted, never dropped.
    assert.equal(log.write(line(written)), true);
    written++;
    f.reader.resume();
    await gate;
    assert.ok(log.buffered < MAX, 'room again once the destination reads');
    const want = Array.from({ length: written }, (_, i) => line(i)).join('');
    await until('every line read', () => f.text().length >= want.length);
    assert.equal(f.text(), want);
  });

  it('configure: a reload that switches to drop lets waiting requests through', async () => {
    const f = fifo();
    const log = open(f.path, { maxBytes: MAX, policy: 'block' });
    let i = 0;
    while (log.whenWritable() === undefined && i < 100_000) {
      log.write(line(i++));
      if (i % 200 === 0) await new Promise((r) => setImmediate(r));
    }
    const gate = log.whenWritable();
    assert.ok(gate);
    log.configure({ maxBytes: MAX, policy: 'drop' });
    await gate;
    assert.equal(log.whenWritable(), undefined);
    f.reader.resume();
  });

  it('lines larger than the ring and multi-byte text across its wrap arrive byte for byte; end() writes everything and closes', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'regate-ring-')), 'sub', 'dir', 'decisions.log');
    const log = new RingLogStream(file, { maxBytes: MAX, policy: 'block' }, { ringBytes: 1024, onError: (err) => assert.fail(err) });
    const lines: string[] = [];
    for (let i = 0; i < 300; i++) {
      // 1–3 KiB each against a 1 KiB ring; é (2 bytes), € (3), 😀 (4) land on every offset of the wrap.
      const l = `${JSON.stringify({ i, text: 'é€😀'.repeat(10 + ((i * 37) % 90)) })}\n`;
      lines.push(l);
      assert.equal(log.write(l), true);
      if (i % 50 === 0) await new Promise((r) => setImmediate(r));
    }
    await log.end();
    assert.equal(readFileSync(file, 'utf8'), lines.join(''));
    assert.equal(log.write('late\n'), false, 'nothing is accepted after end()');
    assert.equal(log.buffered, 0);
  });

  it('appends to an existing file', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'regate-ring-')), 'decisions.log');
    writeFileSync(file, 'before\n');
    const log = new RingLogStream(file, { maxBytes: MAX, policy: 'drop' });
    log.write('after\n');
    await log.end();
    assert.equal(readFileSync(file, 'utf8'), 'before\nafter\n');
  });

  it('a destination that cannot be opened: each record reported lost, never thrown, admission never stuck', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'regate-ring-'));
    writeFileSync(join(dir, 'file'), '');
    const errors: { message: string; lost: number }[] = [];
    // A path under a regular file: mkdir fails with ENOTDIR.
    const log = open(join(dir, 'file', 'decisions.log'), { maxBytes: MAX, policy: 'block' }, { onError: (err, lost) => errors.push({ message: err.message, lost }) });
    for (let i = 0; i < 10; i++) assert.equal(log.write(line(i)), true);
    await until('the losses reported', () => errors.reduce((n, e) => n + e.lost, 0) === 10);
    assert.match(errors[0]!.message, /cannot open/);
    assert.equal(log.whenWritable(), undefined);
    await until('the ring emptied', () => log.buffered === 0);
  });
});
