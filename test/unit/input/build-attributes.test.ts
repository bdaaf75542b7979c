/** `input.resource` and `input.request.body`: present only when the route produced them. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RouteConfig } from '../../../src/config/types.ts';
import { buildInput, type InputParts } from '../../../src/input/build.ts';
import { TimeInputBuilder } from '../../../src/input/time.ts';
import { compileHeaderPolicy } from '../../../src/upstream/headers.ts';

const route = { id: 'messages', attributes: {}, identity_headers: {} } as unknown as RouteConfig;

const parts: InputParts = {
  requestId: 'id',
  method: 'PATCH',
  path: '/messages/1',
  params: { id: '1' },
  query: {},
  headers: { 'content-type': 'application/json' },
  host: 'h',
  remoteAddr: '127.0.0.1',
  route,
  headerPolicy: compileHeaderPolicy(route),
  identity: null,
  time: new TimeInputBuilder('UTC').build(0n),
};

describe('buildInput: resource and body', () => {
  it('leaves both keys out when absent (not null: `not input.resource` reads naturally)', () => {
    const input = buildInput(parts);
    assert.equal('resource' in input, false);
    assert.equal('body' in input.request, false);
  });

  it('puts the catalog attributes at input.resource and the JSON body at input.request.body', () => {
    const input = buildInput({ ...parts, resource: { tags: ['pii:high'] }, body: { categories: ['x'] } });
    assert.deepEqual(input.resource, { tags: ['pii:high'] });
    assert.deepEqual(input.request.body, { categories: ['x'] });
  });

  it('keeps JSON scalars and null bodies (a body of `null` is a parsed body)', () => {
    assert.equal(buildInput({ ...parts, body: null }).request.body, null);
    assert.equal(buildInput({ ...parts, body: 0 }).request.body, 0);
  });
});
