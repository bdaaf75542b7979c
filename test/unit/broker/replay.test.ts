import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ReplayStore } from '../../../src/broker/replay.ts';

describe('ReplayStore', () => {
  it('accepts a jti once until it expires', () => {
    let now = 1000;
    const store = new ReplayStore({ maxEntries: 10, now: () => now });
    assert.equal(store.use('a', 1100), 'fresh');
    assert.equal(store.use('a', 1100), 'replayed');
    now = 1200;
    assert.equal(store.use('a', 1300), 'fresh', 'expired: its token can no longer be presented anyway');
  });
  it('when full of unexpired entries it refuses (fail closed) rather than forget; expired ones are swept', () => {
    let now = 1000;
    const store = new ReplayStore({ maxEntries: 2, now: () => now });
    assert.equal(store.use('a', 1010), 'fresh');
    assert.equal(store.use('b', 2000), 'fresh');
    assert.equal(store.use('c', 2000), 'full');
    assert.equal(store.use('a', 1010), 'replayed', 'nothing forgotten');
    now = 1020;
    assert.equal(store.use('c', 2000), 'fresh');
    assert.equal(store.expired, 1);
    assert.equal(store.size, 2);
  });
});
