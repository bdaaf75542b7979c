import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { getHeapSpaceStatistics } from 'node:v8';
import { compactHeap } from '../../../src/lifecycle/compact.ts';

const newSpace = (): number => getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')?.space_size ?? 0;

describe('compactHeap (src/lifecycle/compact.ts)', () => {
  it('shrinks a young generation that startup-like allocation grew, and leaves no gc on the global', () => {
    // Startup-like churn: many short-lived objects, some surviving a while.
    let keep: unknown[] = [];
    for (let i = 0; i < 200_000; i++) {
      keep.push({ i, s: `item-${i}`, a: [i, i + 1] });
      if (keep.length > 20_000) keep = [];
    }
    const before = newSpace();
    const ms = compactHeap();
    assert.ok(ms > 0, 'the collector ran');
    assert.ok(newSpace() <= before, `young generation ${newSpace()} ≤ ${before}`);
    assert.equal((globalThis as { gc?: unknown }).gc, undefined);
    // Idempotent: a second call runs again without re-exposing anything.
    assert.ok(compactHeap() > 0);
    assert.equal(keep.length > 0, true);
  });
});
