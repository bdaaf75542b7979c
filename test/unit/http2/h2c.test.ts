import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createH2cListener, sniffProtocol } from '../../../src/http2/h2c.ts';

const PREFACE = 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n';

describe('sniffProtocol', () => {
  it('the full preface is HTTP/2', () => assert.equal(sniffProtocol(Buffer.from(PREFACE + 'rest')), 'h2'));
  it('a prefix of the preface is undecided', () => {
    for (let n = 0; n < PREFACE.length; n++) assert.equal(sniffProtocol(Buffer.from(PREFACE.slice(0, n))), null, `${n} bytes`);
  });
  it('the first differing byte makes it HTTP/1.1', () => {
    assert.equal(sniffProtocol(Buffer.from('POST / HTTP/1.1\r\n')), 'http1');
    assert.equal(sniffProtocol(Buffer.from('PRI * HTTP/1.1\r\n')), 'http1');
    assert.equal(sniffProtocol(Buffer.from('GET')), 'http1');
  });
});

describe('createH2cListener', () => {
  let listener: net.Server;
  let h1: http.Server;
  let h2: http2.Http2Server;
  let url: string;
  before(async () => {
    h1 = http.createServer((req, res) => res.end(`h1 ${req.method} ${req.url}`));
    h2 = http2.createServer();
    h2.on('stream', (stream, headers) => {
      stream.respond({ ':status': 200 });
      stream.end(`h2 ${String(headers[':path'])}`);
    });
    listener = createH2cListener(h1, h2, 300);
    await new Promise<void>((r) => listener.listen(0, '127.0.0.1', () => r()));
    url = `http://127.0.0.1:${(listener.address() as AddressInfo).port}`;
  });
  after(async () => {
    await new Promise<void>((r) => listener.close(() => r()));
    h1.closeAllConnections();
  });

  it('hands an HTTP/1.1 connection to the HTTP/1.1 server, bytes intact (POST body too)', async () => {
    const r = await fetch(`${url}/a?b=1`, { method: 'POST', body: 'x'.repeat(100_000) });
    assert.equal(await r.text(), 'h1 POST /a?b=1');
  });

  it('hands a prior-knowledge HTTP/2 connection to the HTTP/2 server', async () => {
    const session = http2.connect(url);
    try {
      const body = await new Promise<string>((resolve, reject) => {
        const s = session.request({ ':path': '/h2path' });
        let b = '';
        s.setEncoding('utf8');
        s.on('data', (c: string) => (b += c));
        s.on('end', () => resolve(b));
        s.on('error', reject);
      });
      assert.equal(body, 'h2 /h2path');
    } finally {
      session.close();
    }
  });

  it('decides on a preface split over several writes', async () => {
    const socket = net.connect((listener.address() as AddressInfo).port, '127.0.0.1');
    await new Promise<void>((r) => socket.once('connect', () => r()));
    socket.write('PRI * HT');
    await new Promise((r) => setTimeout(r, 30));
    // A different byte after a common prefix: HTTP/1.1, whose parser refuses this line.
    socket.write('TP/1.1\r\nHost: x\r\n\r\n');
    const reply = await new Promise<string>((resolve) => {
      let b = '';
      socket.on('data', (c: Buffer) => (b += c.toString()));
      socket.on('close', () => resolve(b));
      socket.on('error', () => resolve(b));
    });
    assert.match(reply, /^HTTP\/1\.1 (400|200)/);
  });

  it('closes a connection that never says which protocol it speaks', async () => {
    const socket = net.connect((listener.address() as AddressInfo).port, '127.0.0.1');
    socket.on('error', () => {});
    await new Promise<void>((r) => socket.once('connect', () => r()));
    socket.write('PRI');
    await new Promise<void>((r) => socket.once('close', () => r()));
  });
});
