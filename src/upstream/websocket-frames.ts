/**
 * Just enough of the WebSocket framing (RFC 6455 §5.2) for regate to close a
 * relayed connection cleanly: where the frames in a byte stream end, and the
 * bytes of a Close frame.
 *
 * regate relays frames as opaque bytes (extensions such as permessage-deflate
 * are negotiated between the client and the upstream). To close a connection
 * itself — idle timeout, max lifetime, shutdown — it must not cut into a frame
 * half-sent, so each direction's bytes go through a {@link FrameBoundary},
 * which reads only frame headers and skips payloads by length.
 */

import { randomFillSync } from 'node:crypto';

/** Tracks frame boundaries in one direction of a WebSocket byte stream. */
export class FrameBoundary {
  /** Header bytes collected of the frame being read. */
  readonly #header = Buffer.alloc(14);
  #have = 0;
  /** Header length of the frame being read, once its second byte is known (else 2). */
  #need = 2;
  /** Payload bytes of the current frame still to come. */
  #payloadLeft = 0;

  /** Every byte fed so far ends a whole frame: a frame written now would not land inside another. */
  get atBoundary(): boolean {
    return this.#have === 0 && this.#payloadLeft === 0;
  }

  /** Account for the next bytes of the stream. */
  feed(chunk: Buffer): void {
    const n = chunk.length;
    let i = 0;
    while (i < n) {
      if (this.#payloadLeft > 0) {
        const take = Math.min(this.#payloadLeft, n - i);
        this.#payloadLeft -= take;
        i += take;
        continue;
      }
      this.#header[this.#have++] = chunk[i++]!;
      if (this.#have === 2) {
        const b1 = this.#header[1]!;
        const len7 = b1 & 0x7f;
        this.#need = 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + (b1 & 0x80 ? 4 : 0);
      }
      if (this.#have >= 2 && this.#have === this.#need) {
        const len7 = this.#header[1]! & 0x7f;
        // A 64-bit length past 2^53 loses precision: such a frame outlasts any connection anyway.
        this.#payloadLeft = len7 === 126 ? this.#header.readUInt16BE(2) : len7 === 127 ? Number(this.#header.readBigUInt64BE(2)) : len7;
        this.#have = 0;
        this.#need = 2;
      }
    }
  }
}

/** Close status codes regate sends (RFC 6455 §7.4.1). */
export const CLOSE_GOING_AWAY = 1001;

/**
 * A Close frame with a status code and a short reason. Frames towards a
 * server (the upstream) must be masked (RFC 6455 §5.3), frames towards a
 * client must not be.
 */
export function closeFrame(code: number, reason: string, masked: boolean): Buffer {
  const text = Buffer.from(reason, 'utf8');
  if (text.length > 123) throw new TypeError('closeFrame: a close reason is at most 123 bytes');
  const payload = Buffer.alloc(2 + text.length);
  payload.writeUInt16BE(code, 0);
  text.copy(payload, 2);
  if (!masked) return Buffer.concat([Buffer.from([0x88, payload.length]), payload]);
  const mask = randomFillSync(Buffer.alloc(4));
  for (let i = 0; i < payload.length; i++) payload[i] = payload[i]! ^ mask[i & 3]!;
  return Buffer.concat([Buffer.from([0x88, 0x80 | payload.length]), mask, payload]);
}
