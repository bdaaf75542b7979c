import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { isJsonMediaType, parseBody, readBody } from '../../../src/http/body.ts';
import { RegateError } from '../../../src/errors.ts';

/**
 * A real server whose handler reads the body with readBody and answers what
 * happened as JSON: {ok, bytes} or {reason, status}. The client side is a raw
 * socket, so framing (chunked, Content-Length) is exactly what the test wrote.
 */
let server: Server;
let port: number;
const MAX = 1024;

before(async () => {
  server = createServer((req: IncomingMessage, res) => {
    const idleMs = Number(req.headers['x-idle-ms'] ?? 5_000);
    readBody(req, { maxBytes: MAX, idleMs }).then(
      (buf) => {
        const body = JSON.stringify({ ok: true, bytes: buf.length, sha: buf.toString('base64').slice(0, 16) });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
      },
      (err: unknown) => {
        const e = err as RegateError;
        const body = JSON.stringify({ reason: e.reason, status: e.status });
        res.writeHead(e.status ?? 500, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), connection: 'close' }).end(body);
      },
    );
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  port = (server.address() as AddressInfo).port;
});
after(async () => {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
});

/** Write `parts` (with pauses between them) on a fresh socket; resolve with the parsed JSON answer. */
function exchange(head: string, parts: (string | Buffer)[] = [], pauseMs = 0): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('no answer within 10 s'));
    }, 10_000);
    const finish = (): void => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('utf8');
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
      const i = text.indexOf('\r\n\r\n');
      try {
        resolve({ status, body: JSON.parse(text.slice(i + 4)) as Record<string, unknown> });
      } catch (err) {
        reject(new Error(`unparsable answer: ${JSON.stringify(text)}`, { cause: err }));
      }
    };
    socket.on('data', (c: Buffer) => chunks.push(c));
    // A reset after the answer arrived (the server closed with unread bytes) is fine.
    socket.on('error', () => (chunks.length ? finish() : undefined));
    socket.on('end', finish);
    socket.write(`${head}\r\nHost: t\r\nConnection: close\r\n\r\n`);
    let i = 0;
    const next = (): void => {
      if (i >= parts.length || socket.destroyed) return;
      socket.write(parts[i++]!);
      if (pauseMs > 0) setTimeout(next, pauseMs);
      else next();
    };
    next();
  });
}

const chunk = (data: string | Buffer): string => `${Buffer.byteLength(data).toString(16)}\r\n${data.toString()}\r\n`;

describe('readBody: bounded whatever the framing', () => {
  it('reads a body with Content-Length up to the limit, inclusive', async () => {
    const body = 'x'.repeat(MAX);
    const r = await exchange(`POST / HTTP/1.1\r\nContent-Length: ${MAX}`, [body]);
    assert.deepEqual(r.body.ok, true);
    assert.equal(r.body.bytes, MAX);
  });

  it('refuses a declared Content-Length over the limit before reading it (413 body_too_large)', async () => {
    // The body is never sent: the refusal cannot depend on reading it.
    const r = await exchange(`POST / HTTP/1.1\r\nContent-Length: ${MAX + 1}`);
    assert.equal(r.status, 413);
    assert.deepEqual(r.body, { reason: 'body_too_large', status: 413 });
  });

  it('reads a chunked body up to the limit', async () => {
    const r = await exchange('POST / HTTP/1.1\r\nTransfer-Encoding: chunked', [chunk('a'.repeat(600)), chunk('b'.repeat(424)), '0\r\n\r\n']);
    assert.equal(r.body.bytes, MAX);
  });

  it('refuses a chunked body as soon as the bytes read cross the limit, without waiting for its end', async () => {
    // 3 chunks over the limit and never a terminating chunk: only stopping early answers.
    const r = await exchange('POST / HTTP/1.1\r\nTransfer-Encoding: chunked', [chunk('a'.repeat(600)), chunk('b'.repeat(600)), chunk('c'.repeat(600))], 20);
    assert.equal(r.status, 413);
    assert.equal(r.body.reason, 'body_too_large');
  });

  // A Content-Length smaller than what the client sends is node's business: it
  // reads that many bytes, and parses the rest as a next request (and refuses it).
  // One larger than what arrives is a stalled body: the idle timeout below.

  it('times out a body that stalls (408 body_timeout)', async () => {
    const r = await exchange('POST / HTTP/1.1\r\nContent-Length: 100\r\nX-Idle-Ms: 100', ['only part']);
    assert.equal(r.status, 408);
    assert.equal(r.body.reason, 'body_timeout');
  });

  it('an absent body is empty', async () => {
    const r = await exchange('GET / HTTP/1.1');
    assert.equal(r.body.bytes, 0);
  });

  it('bytes at hand are held to the same limit', async () => {
    assert.equal((await readBody(Buffer.alloc(MAX), { maxBytes: MAX, idleMs: 1 })).length, MAX);
    await assert.rejects(readBody(Buffer.alloc(MAX + 1), { maxBytes: MAX, idleMs: 1 }), { reason: 'body_too_large', status: 413 });
  });
});

describe('parseBody: duplicate object keys are malformed', () => {
  const json = 'application/json';
  const enc = (s: string): Uint8Array => Buffer.from(s);
  it('refuses the same key twice in one object, also when spelled with escapes', () => {
    assert.equal(parseBody(enc('{"channel":"a","channel":"b"}'), json).status, 'body_malformed');
    assert.equal(parseBody(enc('{"channel":"a","\\u0063hannel":"b"}'), json).status, 'body_malformed');
    assert.equal(parseBody(enc('{"x":{"k":1,"k":2}}'), json).status, 'body_malformed');
    assert.equal(parseBody(enc('[{"k":1},{"k":1,"k":2}]'), json).status, 'body_malformed');
  });
  it('accepts the same key in different objects, and keys equal to string values', () => {
    const ok = parseBody(enc('{"a":{"k":1},"b":{"k":2},"c":[{"k":3},{"k":4}],"d":"k","k":"a"}'), json);
    assert.equal(ok.status, 'parsed');
    assert.equal(parseBody(enc('{"a\\"b":1,"a\\\\":2,"x":"\\"}"}'), json).status, 'parsed');
  });
});

describe('parseBody: a lone surrogate escape is malformed', () => {
  const json = 'application/json';
  const enc = (s: string): Uint8Array => Buffer.from(s);
  it('refuses a surrogate escape without its pair, in values and keys, either case', () => {
    for (const body of ['{"categories":["\\ud800"]}', '{"a":"\\uDFFF"}', '{"\\udc00":1}', '["\\ud800\\u0000"]', '"\\ud83d"', '["\\ude00\\ud83d"]', '{"a":{"b":["x\\udbffy"]}}']) {
      assert.equal(parseBody(enc(body), json).status, 'body_malformed', body);
    }
  });
  it('accepts valid pairs, raw or escaped, and a backslash before the letters "ud800"', () => {
    assert.deepEqual(parseBody(enc('{"e":"\\ud83d\\ude00","r":"😀","t":"\\\\ud800"}'), json), { status: 'parsed', value: { e: '😀', r: '😀', t: '\\ud800' } });
  });
});

describe('parseBody: JSON only when it says so and is so', () => {
  const json = (s: string): Buffer => Buffer.from(s, 'utf8');

  it('parses application/json and +json types, parameters ignored', () => {
    assert.deepEqual(parseBody(json('{"categories":["a"]}'), 'application/json'), { status: 'parsed', value: { categories: ['a'] } });
    assert.deepEqual(parseBody(json('[1]'), 'Application/JSON; charset=utf-8'), { status: 'parsed', value: [1] });
    assert.deepEqual(parseBody(json('{"op":"x"}'), 'application/merge-patch+json'), { status: 'parsed', value: { op: 'x' } });
    assert.deepEqual(parseBody(json('"s"'), 'application/vnd.api+json'), { status: 'parsed', value: 's' });
  });

  it('keeps integers beyond 2^53 exact', () => {
    assert.deepEqual(parseBody(json('{"id":12345678901234567890}'), 'application/json'), { status: 'parsed', value: { id: 12345678901234567890n } });
  });

  it('does not parse other types, even when the bytes are JSON (body_not_json)', () => {
    for (const type of [undefined, 'text/plain', 'application/x-www-form-urlencoded', 'text/json', 'application/jsonx', 'application/json-seq', '+json', 'application/']) {
      assert.deepEqual(parseBody(json('{"a":1}'), type), { status: 'body_not_json' }, String(type));
    }
  });

  it('body_malformed for broken JSON, invalid UTF-8, a BOM or nesting deeper than 64', () => {
    for (const bytes of [json('{"a":'), Buffer.from([0x22, 0xc3, 0x28, 0x22]), Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), json('{}')]), json(`${'['.repeat(65)}${']'.repeat(65)}`)]) {
      assert.deepEqual(parseBody(bytes, 'application/json'), { status: 'body_malformed' });
    }
    assert.equal(parseBody(json(`${'['.repeat(64)}${']'.repeat(64)}`), 'application/json').status, 'parsed');
    assert.equal(parseBody(json(`["${'['.repeat(100)}"]`), 'application/json').status, 'parsed', 'brackets inside strings do not count');
  });

  it('body_empty for zero bytes, whatever the type', () => {
    assert.deepEqual(parseBody(Buffer.alloc(0), 'application/json'), { status: 'body_empty' });
    assert.deepEqual(parseBody(Buffer.alloc(0), 'text/plain'), { status: 'body_empty' });
  });

  it('isJsonMediaType', () => {
    assert.equal(isJsonMediaType('application/json'), true);
    assert.equal(isJsonMediaType(' application/problem+json ; x=y'), true);
    assert.equal(isJsonMediaType('application/xml'), false);
  });
});
