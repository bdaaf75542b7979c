import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeGrpcMessage, GRPC_STATUS, grpcCallOf, grpcRefusalFields, grpcStatusOf, isGrpcContentType } from '../../../src/http2/grpc.ts';

describe('grpcStatusOf', () => {
  const table: [number, number][] = [
    [400, GRPC_STATUS.INVALID_ARGUMENT],
    [401, GRPC_STATUS.UNAUTHENTICATED],
    [403, GRPC_STATUS.PERMISSION_DENIED],
    [404, GRPC_STATUS.UNIMPLEMENTED],
    [405, GRPC_STATUS.UNIMPLEMENTED],
    [408, GRPC_STATUS.DEADLINE_EXCEEDED],
    [413, GRPC_STATUS.RESOURCE_EXHAUSTED],
    [414, GRPC_STATUS.INVALID_ARGUMENT],
    [415, GRPC_STATUS.INVALID_ARGUMENT],
    [429, GRPC_STATUS.RESOURCE_EXHAUSTED],
    [431, GRPC_STATUS.INVALID_ARGUMENT],
    [500, GRPC_STATUS.INTERNAL],
    [502, GRPC_STATUS.UNAVAILABLE],
    [503, GRPC_STATUS.UNAVAILABLE],
    [504, GRPC_STATUS.DEADLINE_EXCEEDED],
    [418, GRPC_STATUS.UNKNOWN],
  ];
  for (const [http, grpc] of table) it(`${http} → ${grpc}`, () => assert.equal(grpcStatusOf(http), grpc));
  it('uses the codes of grpc/doc/statuscodes.md', () => {
    assert.equal(GRPC_STATUS.UNAUTHENTICATED, 16);
    assert.equal(GRPC_STATUS.PERMISSION_DENIED, 7);
    assert.equal(GRPC_STATUS.UNAVAILABLE, 14);
  });
});

describe('isGrpcContentType', () => {
  it('accepts application/grpc and its +format / parameter forms, any case', () => {
    for (const t of ['application/grpc', 'application/grpc+proto', 'application/grpc+json', 'application/grpc;charset=utf-8', 'Application/GRPC']) assert.ok(isGrpcContentType(t), t);
  });
  it('refuses everything else, grpc-web included', () => {
    for (const t of [undefined, '', 'application/json', 'application/grpc-web', 'application/grpc-web+proto', 'application/grpcx', 'text/application/grpc']) {
      assert.equal(isGrpcContentType(t), false, String(t));
    }
    assert.equal(isGrpcContentType(['application/grpc']), false);
  });
});

describe('grpcCallOf', () => {
  it('reads service and method from exactly two segments', () => {
    assert.deepEqual(grpcCallOf(['inference.GRPCInferenceService', 'ModelInfer']), { service: 'inference.GRPCInferenceService', method: 'ModelInfer' });
  });
  it('is null for any other shape', () => {
    assert.equal(grpcCallOf(['a']), null);
    assert.equal(grpcCallOf(['a', 'b', 'c']), null);
    assert.equal(grpcCallOf(['a', '']), null);
  });
});

describe('encodeGrpcMessage', () => {
  it('percent-encodes %, controls and non-ASCII as UTF-8 bytes, keeps printable ASCII', () => {
    assert.equal(encodeGrpcMessage('token expired'), 'token expired');
    assert.equal(encodeGrpcMessage('100% sure'), '100%25 sure');
    assert.equal(encodeGrpcMessage('a\r\nb'), 'a%0D%0Ab');
    assert.equal(encodeGrpcMessage('café ☕'), 'caf%C3%A9 %E2%98%95');
  });
  it('never yields a byte a header value cannot carry', () => {
    let all = '';
    for (let c = 0; c < 0x800; c++) all += String.fromCharCode(c);
    assert.match(encodeGrpcMessage(all), /^[\x20-\x7e]*$/);
    assert.equal(decodeURIComponent(encodeGrpcMessage('x%y é')), 'x%y é');
  });
});

describe('grpcRefusalFields', () => {
  it('is a trailers-only head: HTTP 200, application/grpc, status, message, reason, decision id', () => {
    assert.deepEqual(grpcRefusalFields(403, 'the policy denied this request', 'policy_denied', 'd-1'), {
      ':status': '200',
      'content-type': 'application/grpc',
      'grpc-status': '7',
      'grpc-message': 'the policy denied this request',
      'regate-reason': 'policy_denied',
      'regate-decision-id': 'd-1',
    });
  });
});
