/**
 * The decision log's writer thread (see src/observe/log-ring.ts): takes bytes
 * out of the shared ring and writes them to the destination with blocking
 * writes, so no write, callback or buffer object of the decision log is on
 * the request path. It allocates nothing per record.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { CTL, WAKE_MS, type RingWorkerData } from './log-ring-layout.ts';

const data = workerData as RingWorkerData;
const ctl = new Int32Array(data.control);
const ring = new Uint8Array(data.ring);
const cap = ring.length;
const sleeper = new Int32Array(new SharedArrayBuffer(4));

function report(message: string, lost: number): void {
  parentPort!.postMessage({ type: 'error', message, lost });
}

function openDestination(): number | undefined {
  if (data.destination === 'stdout') return 1;
  if (data.destination === 'stderr') return 2;
  try {
    mkdirSync(dirname(data.destination), { recursive: true });
    return openSync(data.destination, 'a');
  } catch (err) {
    report(`cannot open ${data.destination}: ${(err as Error).message}`, 0);
    return undefined;
  }
}

/** Lines in ring[from, to): what a failed write lost. */
function linesIn(from: number, to: number): number {
  let n = 0;
  for (let i = from; i < to; i++) if (ring[i] === 10) n++;
  return n;
}

/** Write ring[from, to) whole; false when the destination failed (the bytes are then lost). */
function writeAll(fd: number | undefined, from: number, to: number): boolean {
  if (fd === undefined) {
    report(`decision log destination ${data.destination} is not open`, linesIn(from, to));
    return false;
  }
  let at = from;
  while (at < to) {
    try {
      at += writeSync(fd, ring, at, to - at);
    } catch (err) {
      // A non-blocking stdout pipe that is full: wait for the reader, as sonic-boom does.
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN') {
        Atomics.wait(sleeper, 0, 0, 1);
        continue;
      }
      report((err as Error).message, linesIn(at, to));
      return false;
    }
  }
  return true;
}

// Unopenable: every record that arrives is lost, and reported.
const fd = openDestination();
let tail = Atomics.load(ctl, CTL.TAIL);
for (;;) {
  const head = Atomics.load(ctl, CTL.HEAD);
  if (head === tail) {
    if (Atomics.load(ctl, CTL.CLOSING) === 1) break;
    // Announce the sleep, then look again: the producer stores HEAD before it reads WAITING.
    Atomics.store(ctl, CTL.WAITING, 1);
    if (Atomics.load(ctl, CTL.HEAD) === tail && Atomics.load(ctl, CTL.CLOSING) === 0) Atomics.wait(ctl, CTL.HEAD, tail, WAKE_MS);
    Atomics.store(ctl, CTL.WAITING, 0);
    continue;
  }
  const end = head > tail ? head : cap;
  writeAll(fd, tail, end);
  tail = end === cap ? 0 : end;
  Atomics.store(ctl, CTL.TAIL, tail);
  // The producer may wait for room (overload: block) with Atomics.waitAsync on TAIL.
  Atomics.notify(ctl, CTL.TAIL);
}
if (fd !== undefined && fd > 2) {
  try {
    fsyncSync(fd);
  } catch {
    // A pipe or a device: nothing to sync.
  }
  closeSync(fd);
}
