import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import { DUPLICATE_SIGNAL_MS, handleSignals, ignoreHangupDuringStartup } from '../../../src/lifecycle/signals.ts';

describe('handleSignals', () => {
  const setup = () => {
    const proc = new EventEmitter() as unknown as NodeJS.Process;
    const calls: string[] = [];
    const clock = { ms: 0 };
    const uninstall = handleSignals(
      {
        reload: () => calls.push('reload'),
        shutdown: (s) => calls.push(`shutdown ${s}`),
        forceExit: (s) => calls.push(`force ${s}`),
      },
      proc,
      () => clock.ms,
    );
    return { proc, calls, uninstall, clock };
  };

  it('the same stop signal twice at once is one delivery (Ctrl-C via the terminal and via npm): no forced exit', () => {
    const { proc, calls, clock } = setup();
    proc.emit('SIGINT', 'SIGINT');
    clock.ms += 5;
    proc.emit('SIGINT', 'SIGINT');
    assert.deepEqual(calls, ['shutdown SIGINT']);
    clock.ms += DUPLICATE_SIGNAL_MS;
    proc.emit('SIGINT', 'SIGINT');
    assert.deepEqual(calls, ['shutdown SIGINT', 'force SIGINT'], 'a second Ctrl-C a second later forces');
  });

  it('SIGHUP reloads, every time', () => {
    const { proc, calls } = setup();
    proc.emit('SIGHUP', 'SIGHUP');
    proc.emit('SIGHUP', 'SIGHUP');
    assert.deepEqual(calls, ['reload', 'reload']);
  });

  it('the first SIGTERM/SIGINT shuts down; a second forces; reloads stop once shutting down', () => {
    const { proc, calls } = setup();
    proc.emit('SIGTERM', 'SIGTERM');
    proc.emit('SIGHUP', 'SIGHUP');
    proc.emit('SIGINT', 'SIGINT');
    assert.deepEqual(calls, ['shutdown SIGTERM', 'force SIGINT']);
  });

  it('uninstall removes every handler', () => {
    const { proc, calls, uninstall } = setup();
    uninstall();
    assert.equal((proc as unknown as EventEmitter).listenerCount('SIGTERM'), 0);
    proc.emit('SIGHUP', 'SIGHUP');
    assert.deepEqual(calls, []);
  });
});

describe('ignoreHangupDuringStartup', () => {
  it('keeps SIGHUP from killing a starting process, until handleSignals takes over', () => {
    const proc = new EventEmitter() as unknown as NodeJS.Process;
    const emitter = proc as unknown as EventEmitter;
    const ignored: string[] = [];
    ignoreHangupDuringStartup(() => ignored.push('ignored'), proc);
    // Node's default action for SIGHUP (exit) applies only when no listener exists.
    assert.equal(emitter.listenerCount('SIGHUP'), 1);
    proc.emit('SIGHUP', 'SIGHUP');
    assert.deepEqual(ignored, ['ignored']);
    const calls: string[] = [];
    handleSignals({ reload: () => calls.push('reload'), shutdown: () => {}, forceExit: () => {} }, proc);
    proc.emit('SIGHUP', 'SIGHUP');
    assert.deepEqual(ignored, ['ignored'], 'the startup listener is gone');
    assert.deepEqual(calls, ['reload']);
    assert.equal(emitter.listenerCount('SIGHUP'), 1);
  });
});
