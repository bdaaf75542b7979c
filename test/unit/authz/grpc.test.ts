/** The ext_authz gRPC front end's CheckRequest → view (the calls themselves: test/integration/authz-grpc.test.ts). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { viewOfCheckRequest } from '../../../src/authz/grpc.ts';

const http = (over: Record<string, unknown> = {}): Parameters<typeof viewOfCheckRequest>[0] =>
  ({
    attributes: {
      source: { address: { socket_address: { address: '198.51.100.2' } } },
      request: { http: { method: 'GET', path: '/v1/a?b=1', host: 'api.example.com', headers: { ':path': '/v1/a?b=1', ':authority': 'api.example.com', accept: 'x', host: 'spoof' }, ...over } },
    },
  }) as never;

describe('viewOfCheckRequest', () => {
  it('method, target as sent, :authority as Host, the source address; pseudo-headers dropped', () => {
    const v = viewOfCheckRequest(http());
    assert.equal(v.refused, undefined);
    assert.equal(v.method, 'GET');
    assert.equal(v.target, '/v1/a?b=1');
    assert.equal(v.headers.host, 'api.example.com');
    assert.equal(v.headers[':path'], undefined);
    assert.equal(v.headers.accept, 'x');
    assert.deepEqual(v.rawHeaders, ['Host', 'api.example.com', 'accept', 'x']);
    assert.equal(v.remoteAddr, '198.51.100.2');
    assert.deepEqual(v.body, Buffer.alloc(0), 'no Content-Length, no Transfer-Encoding: an empty body');
  });

  it('header_map keeps repeats visible (two Authorization fields stay two)', () => {
    const v = viewOfCheckRequest(http({ headers: {}, header_map: { headers: [{ key: 'authorization', raw_value: Buffer.from('Bearer a') }, { key: 'authorization', raw_value: Buffer.from('Bearer b') }] } }));
    assert.deepEqual(v.rawHeaders, ['Host', 'api.example.com', 'authorization', 'Bearer a', 'authorization', 'Bearer b']);
  });

  it('a body of unknown extent is not guessed: a framed request without the buffered body has none', () => {
    assert.equal(viewOfCheckRequest(http({ headers: { 'content-length': '5' } })).body, null);
    assert.equal(viewOfCheckRequest(http({ headers: { 'x-envoy-auth-partial-body': 'true' }, raw_body: Buffer.from('{') })).body, null);
    assert.deepEqual(viewOfCheckRequest(http({ headers: { 'content-length': '2' }, raw_body: Buffer.from('{}') })).body, Buffer.from('{}'));
  });

  for (const missing of ['method', 'path', 'host']) {
    it(`refuses a CheckRequest without ${missing}`, () => {
      assert.equal(viewOfCheckRequest(http({ [missing]: '' })).refused?.reason, 'authz_request_incomplete');
    });
  }
  it('refuses an empty CheckRequest', () => {
    assert.equal(viewOfCheckRequest({} as never).refused?.reason, 'authz_request_incomplete');
  });
});
