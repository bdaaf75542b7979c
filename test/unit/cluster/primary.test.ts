import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { describe, it } from 'node:test';
import { HEALTHY_AFTER_MS, resolveWorkers, restartDelayMs, RESTART_MAX_MS, RESTART_MIN_MS } from '../../../src/cluster/primary.ts';

describe('cluster primary policies', () => {
  it('restarts a crashing worker with exponential backoff, capped', () => {
    assert.equal(restartDelayMs(1), RESTART_MIN_MS);
    assert.equal(restartDelayMs(2), RESTART_MIN_MS * 2);
    assert.equal(restartDelayMs(5), RESTART_MIN_MS * 16);
    assert.equal(restartDelayMs(100), RESTART_MAX_MS);
    for (let n = 1; n < 40; n++) assert.ok(restartDelayMs(n + 1) >= restartDelayMs(n), 'never shorter after another crash');
    assert.ok(HEALTHY_AFTER_MS >= RESTART_MAX_MS, 'a worker counts as healthy only after the longest backoff');
  });

  it('workers: auto is one per available CPU', () => {
    assert.equal(resolveWorkers('auto'), availableParallelism());
    assert.equal(resolveWorkers(2), 2);
  });
});
