/** Frame boundaries in a WebSocket byte stream, and Close frames a real `ws` receiver decodes. */
import assert from 'node:assert/strict';
import type { EventEmitter } from 'node:events';
import type { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import * as wsPackage from 'ws';
import { CLOSE_GOING_AWAY, closeFrame, FrameBoundary } from '../../../src/upstream/websocket-frames.ts';

/** One frame as RFC 6455 §5.2 lays it out: every length form, masked or not. */
function frame(payloadLength: number, masked: boolean, opcode = 0x2): Buffer {
  const len7 = payloadLength < 126 ? payloadLength : payloadLength < 65536 ? 126 : 127;
  const ext = len7 === 126 ? 2 : len7 === 127 ? 8 : 0;
  const head = Buffer.alloc(2 + ext + (masked ? 4 : 0));
  head[0] = 0x80 | opcode;
  head[1] = (masked ? 0x80 : 0) | len7;
  if (len7 === 126) head.writeUInt16BE(payloadLength, 2);
  if (len7 === 127) head.writeBigUInt64BE(BigInt(payloadLength), 2);
  if (masked) head.set([1, 2, 3, 4], 2 + ext);
  return Buffer.concat([head, Buffer.alloc(payloadLength, 0x61)]);
}

/** A small deterministic PRNG (mulberry32): chunkings differ, runs do not. */
function prng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('FrameBoundary', () => {
  it('is at a boundary exactly where whole frames end, however the stream is split', () => {
    const lengths = [0, 1, 125, 126, 127, 200, 65535, 65536, 70000, 3];
    const frames = lengths.flatMap((n, i) => [frame(n, i % 2 === 0), frame(n, i % 2 === 1, 0x1)]);
    const stream = Buffer.concat(frames);
    const ends = new Set<number>([0]);
    let at = 0;
    for (const f of frames) ends.add((at += f.length));
    for (const seed of [1, 2, 3, 4, 5]) {
      const random = prng(seed);
      const b = new FrameBoundary();
      let pos = 0;
      while (pos < stream.length) {
        // Mostly small pieces (splits inside headers), sometimes large ones (inside payloads).
        const size = random() < 0.7 ? 1 + Math.floor(random() * 5) : 1 + Math.floor(random() * 40000);
        const next = Math.min(stream.length, pos + size);
        b.feed(stream.subarray(pos, next));
        pos = next;
        assert.equal(b.atBoundary, ends.has(pos), `seed ${seed}, offset ${pos}`);
      }
      assert.equal(b.atBoundary, true);
    }
  });

  it('byte by byte through a header with a 64-bit length', () => {
    const f = frame(70000, true);
    const b = new FrameBoundary();
    for (let i = 0; i < 14; i++) {
      b.feed(f.subarray(i, i + 1));
      assert.equal(b.atBoundary, false, `header byte ${i}`);
    }
    b.feed(f.subarray(14, f.length - 1));
    assert.equal(b.atBoundary, false);
    b.feed(f.subarray(f.length - 1));
    assert.equal(b.atBoundary, true);
  });
});

type WsReceiver = Writable & EventEmitter;
const { Receiver } = wsPackage as unknown as { Receiver: new (options: { isServer: boolean }) => WsReceiver };

function decodeClose(bytes: Buffer, isServer: boolean): Promise<{ code: number; reason: string }> {
  return new Promise((resolve, reject) => {
    const r = new Receiver({ isServer });
    r.on('conclude', (code: number, reason: Buffer) => resolve({ code, reason: reason.toString() }));
    r.on('error', reject);
    r.write(bytes);
  });
}

describe('closeFrame', () => {
  it('unmasked towards a client, masked towards a server: both decode as Close 1001 with the reason', async () => {
    assert.deepEqual(await decodeClose(closeFrame(CLOSE_GOING_AWAY, 'shutting down', false), false), { code: 1001, reason: 'shutting down' });
    assert.deepEqual(await decodeClose(closeFrame(CLOSE_GOING_AWAY, 'idle timeout', true), true), { code: 1001, reason: 'idle timeout' });
    // A server refuses unmasked frames, a client masked ones: the masking is not optional.
    await assert.rejects(decodeClose(closeFrame(CLOSE_GOING_AWAY, 'x', false), true));
    await assert.rejects(decodeClose(closeFrame(CLOSE_GOING_AWAY, 'x', true), false));
  });

  it('is itself a whole frame for FrameBoundary', () => {
    const b = new FrameBoundary();
    b.feed(closeFrame(CLOSE_GOING_AWAY, 'max lifetime reached', true));
    assert.equal(b.atBoundary, true);
  });

  it('refuses a reason that does not fit a control frame', () => {
    assert.throws(() => closeFrame(CLOSE_GOING_AWAY, 'x'.repeat(124), false), TypeError);
  });
});
