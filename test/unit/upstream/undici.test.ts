import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { describe, it } from 'node:test';
import { buildConnector, Pool, request } from '../../../src/upstream/undici.ts';

describe('undici by file (src/upstream/undici.ts)', () => {
  it('Pool carries the dispatcher API the index adds (request, stream, pipeline, upgrade, connect)', () => {
    for (const m of ['request', 'stream', 'pipeline', 'upgrade', 'connect', 'dispatch', 'close', 'destroy']) {
      assert.equal(typeof (Pool.prototype as unknown as Record<string, unknown>)[m], 'function', m);
    }
  });

  it('does not load the package index until request() is called', () => {
    const load = createRequire(import.meta.url);
    // node --test runs each file in its own process: nothing else loaded undici here.
    assert.equal(load.cache[load.resolve('undici')], undefined);
    assert.equal(typeof request, 'function');
  });

  it('exports the same objects as the package index', () => {
    const undici = createRequire(import.meta.url)('undici') as typeof import('undici');
    assert.equal(Pool, undici.Pool);
    assert.equal(buildConnector, undici.buildConnector);
  });
});
