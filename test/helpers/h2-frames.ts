/**
 * Hand-written HTTP/2 frames over a plain TCP socket or TLS (ALPN h2) (RFC 9113 §4, HPACK
 * literals per RFC 7541 §6.2.2 without Huffman coding): for the attacks a
 * well-behaved client library refuses to produce (CONTINUATION floods,
 * oversized header lists, rapid resets, connection-specific fields).
 */
import net from 'node:net';
import tls from 'node:tls';

export const FRAME = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9 } as const;
export const FLAG = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4 } as const;
export const ERROR = { NO_ERROR: 0, PROTOCOL_ERROR: 1, INTERNAL_ERROR: 2, REFUSED_STREAM: 7, CANCEL: 8, COMPRESSION_ERROR: 9, ENHANCE_YOUR_CALM: 11 } as const;

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

export function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([h, payload]);
}

/** HPACK integer with an N-bit prefix (RFC 7541 §5.1); `first` carries the pattern bits. */
function hpackInt(value: number, prefixBits: number, first: number): Buffer {
  const max = (1 << prefixBits) - 1;
  if (value < max) return Buffer.from([first | value]);
  const out = [first | max];
  let v = value - max;
  while (v >= 128) {
    out.push((v % 128) + 128);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return Buffer.from(out);
}

/** A header block of literal fields without indexing (new names), no Huffman coding. */
export function headerBlock(fields: readonly (readonly [string, string])[]): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of fields) {
    const n = Buffer.from(name, 'latin1');
    const v = Buffer.from(value, 'latin1');
    parts.push(Buffer.from([0x00]), hpackInt(n.length, 7, 0), n, hpackInt(v.length, 7, 0), v);
  }
  return Buffer.concat(parts);
}

export function rstStream(streamId: number, code: number): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt32BE(code);
  return frame(FRAME.RST_STREAM, 0, streamId, p);
}

export interface Frame {
  readonly type: number;
  readonly flags: number;
  readonly streamId: number;
  readonly payload: Buffer;
}

/** A raw HTTP/2 client connection: every frame the server sends is collected (SETTINGS acknowledged). */
export interface RawH2 {
  readonly frames: Frame[];
  /** Resolves once the server closed the connection. */
  readonly closed: Promise<void>;
  send(...buffers: Buffer[]): void;
  /** Resolves with the first frame (already received or to come) matching `pred`; rejects after `timeoutMs`. */
  waitFor(pred: (f: Frame) => boolean, timeoutMs?: number): Promise<Frame>;
  destroy(): void;
}

/**
 * `tls`: connect over TLS offering ALPN `h2` only (HTTP/2 over TLS, RFC 9113 §3.2) with these
 * options (e.g. `ca`); the connection is refused unless the server selects `h2`.
 */
export async function connectRaw(port: number, tlsOptions?: tls.ConnectionOptions): Promise<RawH2> {
  const socket: net.Socket =
    tlsOptions === undefined ? net.connect(port, '127.0.0.1') : tls.connect({ port, host: '127.0.0.1', servername: 'localhost', ALPNProtocols: ['h2'], ...tlsOptions });
  await new Promise<void>((resolve, reject) => socket.once(tlsOptions === undefined ? 'connect' : 'secureConnect', resolve).once('error', reject));
  if (tlsOptions !== undefined && (socket as tls.TLSSocket).alpnProtocol !== 'h2') {
    socket.destroy();
    throw new Error(`the server did not select h2 by ALPN (got ${String((socket as tls.TLSSocket).alpnProtocol)})`);
  }
  socket.on('error', () => {});
  const frames: Frame[] = [];
  const waiters = new Set<() => void>();
  let buf = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    while (buf.length >= 9) {
      const len = buf.readUIntBE(0, 3);
      if (buf.length < 9 + len) break;
      const f = { type: buf[3]!, flags: buf[4]!, streamId: buf.readUInt32BE(5) & 0x7fffffff, payload: buf.subarray(9, 9 + len) };
      buf = buf.subarray(9 + len);
      frames.push(f);
      if (f.type === FRAME.SETTINGS && (f.flags & FLAG.ACK) === 0 && socket.writable) socket.write(frame(FRAME.SETTINGS, FLAG.ACK, 0));
    }
    for (const w of waiters) w();
  });
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  closed.then(() => {
    for (const w of waiters) w();
  });
  socket.write(Buffer.concat([PREFACE, frame(FRAME.SETTINGS, 0, 0)]));
  return {
    frames,
    closed,
    send(...buffers) {
      if (socket.writable) socket.write(Buffer.concat(buffers));
    },
    waitFor(pred, timeoutMs = 5000) {
      return new Promise<Frame>((resolve, reject) => {
        const check = (): void => {
          const f = frames.find(pred);
          if (f !== undefined) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve(f);
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no matching frame within ${timeoutMs} ms; got types ${frames.map((f) => f.type).join(',')}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    destroy() {
      socket.destroy();
    },
  };
}

/** The error code of a RST_STREAM or GOAWAY frame. */
export function errorCode(f: Frame): number {
  return f.type === FRAME.GOAWAY ? f.payload.readUInt32BE(4) : f.payload.readUInt32BE(0);
}

/** Request pseudo-headers for `path` on `authority`. */
export function requestFields(path: string, authority: string, method = 'GET'): [string, string][] {
  return [
    [':method', method],
    [':scheme', 'http'],
    [':path', path],
    [':authority', authority],
  ];
}

/**
 * The HTTP/2 "rapid reset" pattern (CVE-2023-44487): open a stream (HEADERS with
 * END_STREAM, `fieldsFor(i)`), cancel it at once (RST_STREAM CANCEL), again, up to
 * `max` streams or until the server sends GOAWAY.
 */
export async function rapidReset(raw: RawH2, fieldsFor: (i: number) => readonly (readonly [string, string])[], max = 60): Promise<void> {
  let id = 1;
  for (let i = 0; i < max && !raw.frames.some((f) => f.type === FRAME.GOAWAY); i++, id += 2) {
    raw.send(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, id, headerBlock(fieldsFor(i))));
    await new Promise((r) => setTimeout(r, 5));
    raw.send(rstStream(id, ERROR.CANCEL));
    await new Promise((r) => setTimeout(r, 5));
  }
}
