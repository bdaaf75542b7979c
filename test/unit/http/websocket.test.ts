/** The WebSocket handshake checks (RFC 6455 §4.2.1) and the accept value (§4.2.2). */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { describe, it } from 'node:test';
import { UpgradeRequiredError } from '../../../src/errors.ts';
import { acceptFor, asksForWebSocket, checkUpgradeRequest, isWebSocketReason, WEBSOCKET_REASONS } from '../../../src/http/websocket.ts';

const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
const NONE = Buffer.alloc(0);

/** An upgrade request as node's parser hands it over: method, version, joined headers and the raw list. */
function request(fields: [string, string][], over: { method?: string; httpVersion?: string } = {}): IncomingMessage {
  const headers: Record<string, string> = {};
  for (const [name, value] of fields) {
    const lower = name.toLowerCase();
    headers[lower] = headers[lower] === undefined ? value : `${headers[lower]}, ${value}`;
  }
  return { method: over.method ?? 'GET', httpVersion: over.httpVersion ?? '1.1', headers, rawHeaders: fields.flat() } as unknown as IncomingMessage;
}

const good = (key = KEY): [string, string][] => [
  ['Host', 'h'],
  ['Upgrade', 'websocket'],
  ['Connection', 'Upgrade'],
  ['Sec-WebSocket-Key', key],
  ['Sec-WebSocket-Version', '13'],
];

describe('checkUpgradeRequest', () => {
  it('accepts a well-formed handshake, in any letter case, with Connection and Upgrade lists', () => {
    assert.equal(checkUpgradeRequest(request(good()), NONE), undefined);
    const lists = good().map(([n, v]): [string, string] => (n === 'Connection' ? [n, 'keep-alive, UPGRADE'] : n === 'Upgrade' ? [n, 'WebSocket'] : [n, v]));
    assert.equal(checkUpgradeRequest(request(lists), NONE), undefined);
    for (let i = 0; i < 50; i++) assert.equal(checkUpgradeRequest(request(good(randomBytes(16).toString('base64'))), NONE), undefined);
  });

  it('refuses every deviation with a stable reason', () => {
    const without = (name: string): [string, string][] => good().filter(([n]) => n !== name);
    const replace = (name: string, value: string): [string, string][] => good().map(([n, v]): [string, string] => [n, n === name ? value : v]);
    const cases: [string, IncomingMessage, Buffer, string][] = [
      ['POST', request(good(), { method: 'POST' }), NONE, 'websocket_handshake_invalid'],
      ['HTTP/1.0', request(good(), { httpVersion: '1.0' }), NONE, 'websocket_handshake_invalid'],
      ['no Upgrade', request(without('Upgrade')), NONE, 'websocket_handshake_invalid'],
      ['Upgrade: h2c', request(replace('Upgrade', 'h2c')), NONE, 'websocket_handshake_invalid'],
      ['no Connection: upgrade', request(replace('Connection', 'keep-alive')), NONE, 'websocket_handshake_invalid'],
      ['missing key', request(without('Sec-WebSocket-Key')), NONE, 'websocket_handshake_invalid'],
      ['15-byte key', request(good(randomBytes(15).toString('base64'))), NONE, 'websocket_handshake_invalid'],
      ['17-byte key', request(good(randomBytes(17).toString('base64'))), NONE, 'websocket_handshake_invalid'],
      ['key without padding', request(good(KEY.slice(0, 22))), NONE, 'websocket_handshake_invalid'],
      ['key with non-canonical bits', request(good('dGhlIHNhbXBsZSBub25jZR==')), NONE, 'websocket_handshake_invalid'],
      ['two keys', request([...good(), ['Sec-WebSocket-Key', KEY]]), NONE, 'websocket_handshake_invalid'],
      ['missing version', request(without('Sec-WebSocket-Version')), NONE, 'websocket_handshake_invalid'],
      ['a body', request([...good(), ['Content-Length', '4']]), NONE, 'websocket_handshake_invalid'],
      ['chunked', request([...good(), ['Transfer-Encoding', 'chunked']]), NONE, 'websocket_handshake_invalid'],
      ['version 8', request(replace('Sec-WebSocket-Version', '8')), NONE, 'websocket_version_unsupported'],
      ['two versions', request([...good(), ['Sec-WebSocket-Version', '13']]), NONE, 'websocket_version_unsupported'],
      ['bytes after the head', request(good()), Buffer.from([0x81, 0x80, 0, 0, 0, 0]), 'websocket_early_data'],
    ];
    for (const [name, req, head, reason] of cases) {
      const e = checkUpgradeRequest(req, head);
      assert.ok(e !== undefined, name);
      assert.equal(e.reason, reason, name);
      assert.ok(isWebSocketReason(e.reason), name);
      assert.equal(e.status, reason === 'websocket_version_unsupported' ? 426 : 400, name);
      if (reason === 'websocket_version_unsupported') assert.ok(e instanceof UpgradeRequiredError);
    }
  });

  it('Content-Length: 0 is no body', () => {
    assert.equal(checkUpgradeRequest(request([...good(), ['Content-Length', '0']]), NONE), undefined);
  });
});

describe('asksForWebSocket / acceptFor', () => {
  it('reads the Upgrade list', () => {
    assert.equal(asksForWebSocket({ upgrade: 'websocket' }), true);
    assert.equal(asksForWebSocket({ upgrade: 'h2c, WebSocket' }), true);
    assert.equal(asksForWebSocket({ upgrade: 'h2c' }), false);
    assert.equal(asksForWebSocket({ upgrade: 'websockets' }), false);
    assert.equal(asksForWebSocket({}), false);
  });

  it('computes RFC 6455 §1.3’s example accept value', () => {
    assert.equal(acceptFor(KEY), 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
  });

  it('every reason is a WebSocket reason, nothing else is', () => {
    for (const r of WEBSOCKET_REASONS) assert.ok(isWebSocketReason(r));
    assert.equal(isWebSocketReason('policy_denied'), false);
  });
});
