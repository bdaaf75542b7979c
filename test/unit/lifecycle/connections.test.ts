/**
 * ConnectionTracker on a real loopback HTTP server, driven by raw sockets:
 * which response says `Connection: close` once draining begins (in-flight,
 * new, pipelined), and which sockets count as idle.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http, { type ServerResponse } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { ConnectionTracker } from '../../../src/lifecycle/connections.ts';

let server: http.Server;
let tracker: ConnectionTracker;
/** Responses held open by the handler until the test releases them, by request path. */
let held: Map<string, ServerResponse>;
let port: number;

beforeEach(async () => {
  held = new Map();
  server = http.createServer((req, res) => {
    tracker.onRequest(req, res);
    if (req.url?.startsWith('/hold')) held.set(req.url, res);
    else res.end('ok');
  });
  tracker = new ConnectionTracker(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  port = (server.address() as AddressInfo).port;
});

afterEach(async () => {
  tracker.stop();
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
});

/** A raw client collecting everything it reads. */
async function client(): Promise<{ socket: Socket; text: () => string; closed: Promise<void> }> {
  const socket = connect(port, '127.0.0.1');
  let text = '';
  socket.setEncoding('latin1');
  socket.on('data', (c: string) => (text += c));
  socket.on('error', () => {});
  const closed = once(socket, 'close').then(() => undefined);
  await once(socket, 'connect');
  return { socket, text: () => text, closed };
}

async function until(what: string, check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const responses = (text: string): string[] => text.split('HTTP/1.1 ').slice(1);
const get = (path: string): string => `GET ${path} HTTP/1.1\r\nhost: t\r\n\r\n`;

describe('ConnectionTracker', () => {
  it('a response in flight when draining begins says Connection: close, and the socket then closes', async () => {
    const c = await client();
    c.socket.write(get('/hold1'));
    await until('request held', () => held.has('/hold1'));
    tracker.startDraining();
    held.get('/hold1')!.end('late');
    await c.closed;
    const [res] = responses(c.text());
    assert.match(res!, /^200/);
    assert.match(res!, /\r\nconnection: close\r\n/i);
  });

  it('a new request on an open keep-alive connection is answered with Connection: close', async () => {
    const c = await client();
    c.socket.write(get('/a'));
    await until('first answer', () => responses(c.text()).length === 1);
    assert.match(c.text(), /connection: keep-alive/i);
    tracker.startDraining();
    c.socket.write(get('/b'));
    await c.closed;
    const [, second] = responses(c.text());
    assert.match(second!, /^200/);
    assert.match(second!, /\r\nconnection: close\r\n/i);
  });

  it('pipelined requests: only the last one received gets Connection: close; none is dropped', async () => {
    const c = await client();
    c.socket.write(get('/hold1'));
    await until('first held', () => held.has('/hold1'));
    tracker.startDraining();
    // Received while the first is in flight: the close moves to it.
    c.socket.write(get('/hold2'));
    await until('second held', () => held.has('/hold2'));
    held.get('/hold1')!.end('one');
    held.get('/hold2')!.end('two');
    await c.closed;
    const [first, second] = responses(c.text());
    assert.doesNotMatch(first!, /connection: close/i);
    assert.match(first!, /one$/);
    assert.match(second!, /\r\nconnection: close\r\n/i);
    assert.match(second!, /two$/);
  });

  it('an idle socket is closed once quiet; one with request bytes arriving is not, and its request is answered', async () => {
    const idle = await client();
    const busy = await client();
    // A request head arriving slowly: bytes keep being read, no 'request' yet.
    busy.socket.write('GET /late HTTP/1.1\r\n');
    const trickle = setInterval(() => busy.socket.write('x-slow: 1\r\n'), 100);
    try {
      tracker.startDraining();
      await idle.closed;
      assert.equal(busy.socket.destroyed, false, 'the socket with bytes arriving stays open');
    } finally {
      clearInterval(trickle);
    }
    // Its head completes after the idle one was closed: answered, with Connection: close.
    busy.socket.write('host: t\r\n\r\n');
    await busy.closed;
    const [res] = responses(busy.text());
    assert.match(res!, /^200/);
    assert.match(res!, /\r\nconnection: close\r\n/i);
    await tracker.empty();
    assert.equal(tracker.size, 0);
  });

  it('destroyAll cuts what is left (the deadline)', async () => {
    const c = await client();
    c.socket.write(get('/hold1'));
    await until('held', () => held.has('/hold1'));
    tracker.startDraining();
    tracker.destroyAll();
    await c.closed;
    await tracker.empty();
    assert.equal(responses(c.text()).length, 0);
  });
});
