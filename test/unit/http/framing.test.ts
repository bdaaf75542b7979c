import assert from 'node:assert/strict';
import { IncomingMessage } from 'node:http';
import { Socket } from 'node:net';
import { describe, it } from 'node:test';
import { BadRequestError } from '../../../src/errors.ts';
import { bodyPending, checkFraming, FRAMING_REASONS, hasBody, isFramingReason } from '../../../src/http/framing.ts';

/** A real IncomingMessage with node's own header folding (joined Transfer-Encoding fields, first Content-Length). */
function request(method: string, version: '1.0' | '1.1', rawHeaders: string[]): IncomingMessage {
  const req = new IncomingMessage(new Socket());
  (req as unknown as { _addHeaderLines(h: string[], n: number): void })._addHeaderLines(rawHeaders, rawHeaders.length);
  req.method = method;
  req.httpVersion = version;
  req.httpVersionMajor = 1;
  req.httpVersionMinor = version === '1.0' ? 0 : 1;
  return req;
}

const refused = (req: IncomingMessage, reason: string): void =>
  assert.throws(() => checkFraming(req), (e: unknown) => e instanceof BadRequestError && e.reason === reason && isFramingReason(e.reason));

describe('checkFraming (issue 9 point 3)', () => {
  const cases: [string, IncomingMessage, string | null][] = [
    ['no body', request('GET', '1.1', []), null],
    ['Content-Length', request('POST', '1.1', ['Content-Length', '5']), null],
    ['chunked', request('POST', '1.1', ['Transfer-Encoding', 'chunked']), null],
    ['Chunked, any case', request('POST', '1.1', ['Transfer-Encoding', 'CHUNKED']), null],
    ['identity, chunked', request('POST', '1.1', ['Transfer-Encoding', 'identity, chunked']), 'unsupported_transfer_coding'],
    ['gzip, chunked', request('POST', '1.1', ['Transfer-Encoding', 'gzip, chunked']), 'unsupported_transfer_coding'],
    ['chunked, chunked', request('POST', '1.1', ['Transfer-Encoding', 'chunked, chunked']), 'unsupported_transfer_coding'],
    ['two fields', request('POST', '1.1', ['Transfer-Encoding', 'gzip', 'Transfer-Encoding', 'chunked']), 'unsupported_transfer_coding'],
    ['two chunked fields', request('POST', '1.1', ['Transfer-Encoding', 'chunked', 'Transfer-Encoding', 'chunked']), 'unsupported_transfer_coding'],
    ['gzip alone', request('POST', '1.1', ['Transfer-Encoding', 'gzip']), 'unsupported_transfer_coding'],
    ['HTTP/1.0 chunked', request('POST', '1.0', ['Transfer-Encoding', 'chunked']), 'invalid_framing'],
    ['HTTP/1.0 Content-Length is fine', request('POST', '1.0', ['Content-Length', '3']), null],
    ['chunked with Content-Length', request('POST', '1.1', ['Transfer-Encoding', 'chunked', 'Content-Length', '3']), 'invalid_framing'],
    ['CONNECT', request('CONNECT', '1.1', []), 'connect_not_supported'],
  ];
  for (const [name, req, reason] of cases) {
    it(`${name} → ${reason ?? 'accepted'}`, () => {
      if (reason === null) checkFraming(req);
      else refused(req, reason);
    });
  }

  it('every framing reason is one the table produces', () => {
    assert.deepEqual(new Set(cases.map(([, , r]) => r).filter((r) => r !== null)), new Set(FRAMING_REASONS));
    assert.equal(isFramingReason('policy_denied'), false);
  });

  it('hasBody / bodyPending follow RFC 9112 §6.3', () => {
    assert.equal(hasBody(request('GET', '1.1', [])), false);
    assert.equal(hasBody(request('POST', '1.1', ['Content-Length', '0'])), false);
    assert.equal(hasBody(request('POST', '1.1', ['Content-Length', '1'])), true);
    assert.equal(hasBody(request('POST', '1.1', ['Transfer-Encoding', 'chunked'])), true);
    const req = request('POST', '1.1', ['Content-Length', '1']);
    assert.equal(bodyPending(req), true);
    req.complete = true;
    assert.equal(bodyPending(req), false);
  });
});
