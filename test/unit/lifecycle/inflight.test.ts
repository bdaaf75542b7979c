import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InFlight } from '../../../src/lifecycle/inflight.ts';

describe('InFlight', () => {
  it('counts per key and in total', () => {
    const f = new InFlight<object>();
    const a = {};
    const b = {};
    f.enter(a);
    f.enter(a);
    f.enter(b);
    assert.equal(f.count(a), 2);
    assert.equal(f.count(b), 1);
    assert.equal(f.total, 3);
    f.leave(a);
    assert.equal(f.count(a), 1);
    assert.equal(f.total, 2);
  });

  it('drained() resolves exactly when the last request on that key leaves, not before', async () => {
    const f = new InFlight<object>();
    const old = {};
    const next = {};
    f.enter(old);
    f.enter(old);
    f.enter(next);
    let drained = false;
    const p = f.drained(old).then(() => (drained = true));
    f.leave(old);
    await Promise.resolve();
    assert.equal(drained, false, 'one request still runs on the old version');
    f.leave(old);
    await p;
    assert.equal(drained, true);
    assert.equal(f.count(next), 1, 'other versions are unaffected');
  });

  it('drained() and idle() resolve at once when nothing runs', async () => {
    const f = new InFlight<object>();
    await f.drained({});
    await f.idle();
  });

  it('idle() waits for every key', async () => {
    const f = new InFlight<object>();
    const a = {};
    const b = {};
    f.enter(a);
    f.enter(b);
    let idle = false;
    const p = f.idle().then(() => (idle = true));
    f.leave(a);
    await Promise.resolve();
    assert.equal(idle, false);
    f.leave(b);
    await p;
  });

  it('an unmatched leave is a bug', () => {
    assert.throws(() => new InFlight<object>().leave({}), TypeError);
  });
});
