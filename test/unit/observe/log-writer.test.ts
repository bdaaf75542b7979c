/**
 * BoundedLogStream against a real slow destination: a FIFO whose reader the
 * test pauses and resumes. Asserts the bound on bytes held, each overload
 * policy's behaviour, and that every accepted line arrives whole.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createReadStream, mkdtempSync, type ReadStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { pino } from 'pino';
import { BoundedLogStream } from '../../../src/observe/log-writer.ts';

const LINE = `${JSON.stringify({ msg: 'Decision Log', pad: 'x'.repeat(180) })}\n`;
const MAX = 64 * 1024;

interface Fifo {
  readonly path: string;
  readonly reader: ReadStream;
  /** Everything read so far. */
  text(): string;
}

const opened: { reader: ReadStream; stream: ReturnType<typeof pino.destination> }[] = [];

afterEach(async () => {
  for (const { reader, stream } of opened.splice(0)) {
    reader.resume();
    await new Promise<void>((resolve) => {
      stream.once('close', () => resolve());
      stream.end();
    });
    reader.destroy();
  }
});

/** A FIFO with a paused reader, and a sonic-boom writing to it (as the decision log opens destinations). */
async function slowDestination(): Promise<{ fifo: Fifo; stream: ReturnType<typeof pino.destination> }> {
  const path = join(mkdtempSync(join(tmpdir(), 'regate-fifo-')), 'decisions.fifo');
  execFileSync('mkfifo', [path]);
  const reader = createReadStream(path, { encoding: 'utf8' });
  let text = '';
  reader.on('data', (c) => (text += c));
  const stream = pino.destination({ dest: path, sync: false, contentMode: 'buffer' });
  await new Promise<void>((resolve) => stream.once('ready', () => resolve()));
  reader.pause();
  opened.push({ reader, stream });
  return { fifo: { path, reader, text: () => text }, stream };
}

async function until(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('BoundedLogStream', () => {
  it('drop: a stalled destination never makes it hold more than max bytes; what does not fit is dropped and counted; the rest arrives whole', async () => {
    const { fifo, stream } = await slowDestination();
    let dropped = 0;
    const log = new BoundedLogStream(stream, { maxBytes: MAX, policy: 'drop' }, { onDrop: () => dropped++ });
    let accepted = 0;
    let peak = 0;
    // 20 000 lines (~4 MB) into a 64 KiB buffer in front of a paused reader.
    for (let i = 0; i < 20_000; i++) {
      if (log.write(LINE)) accepted++;
      peak = Math.max(peak, log.buffered);
      assert.equal(log.whenWritable(), undefined, 'drop never makes a request wait');
      if (i % 1000 === 0) await new Promise((r) => setImmediate(r));
    }
    assert.ok(peak <= MAX, `held at most ${MAX} bytes (peak ${peak})`);
    assert.ok(dropped > 0, 'overflow was dropped');
    assert.equal(accepted + dropped, 20_000);
    fifo.reader.resume();
    await until('every accepted line read', () => fifo.text().length === accepted * LINE.length);
    const lines = fifo.text().trimEnd().split('\n');
    assert.equal(lines.length, accepted);
    for (const l of lines) assert.equal(`${l}\n`, LINE);
    await until('buffer drained', () => log.buffered === 0);
  });

  it('block: once full, admission waits until the destination took enough; nothing is dropped', async () => {
    const { fifo, stream } = await slowDestination();
    const log = new BoundedLogStream(stream, { maxBytes: MAX, policy: 'block' }, { onDrop: () => assert.fail('block never drops') });
    let written = 0;
    // Write as admitted requests would: only while admission says go. The pipe and the paused
    // reader still absorb ~128 KiB, so keep going until admission stays shut: the destination stalled.
    let gate: Promise<void> | undefined;
    for (let round = 0; round < 200; round++) {
      while (log.whenWritable() === undefined) {
        assert.equal(log.write(LINE), true);
        written++;
        if (written % 200 === 0) await new Promise((r) => setImmediate(r));
      }
      gate = log.whenWritable();
      assert.ok(gate, 'the buffer filled: admission waits');
      assert.ok(log.buffered >= MAX);
      assert.ok(log.buffered <= MAX + LINE.length, 'never more than one record over, with admission respected');
      const stalled = await Promise.race([gate.then(() => false), new Promise<boolean>((r) => setTimeout(() => r(true), 200))]);
      if (stalled) break;
    }
    let opened = false;
    void gate!.then(() => (opened = true));
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(opened, false, 'still waiting while the destination is stalled');
    assert.equal(log.whenWritable(), gate, 'every waiting request shares one promise');
    fifo.reader.resume();
    await gate;
    assert.ok(log.buffered < MAX, 'room again once the destination reads');
    await until('every line read', () => fifo.text().length === written * LINE.length);
  });

  it('configure: a reload that switches to drop lets waiting requests through', async () => {
    const { stream } = await slowDestination();
    const log = new BoundedLogStream(stream, { maxBytes: MAX, policy: 'block' });
    let i = 0;
    while (log.whenWritable() === undefined && i++ < 100_000) {
      log.write(LINE);
      if (i % 200 === 0) await new Promise((r) => setImmediate(r));
    }
    const gate = log.whenWritable();
    assert.ok(gate);
    log.configure({ maxBytes: MAX, policy: 'drop' });
    await gate;
    assert.equal(log.whenWritable(), undefined);
  });
});
