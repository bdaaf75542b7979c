/**
 * One memory-reducing garbage collection once startup is done (issue 11).
 *
 * Startup allocates more than anything after it: config parsing and schema
 * compilation, the policy bundle (untar, wasm compile, the first instance), the
 * routes. V8 grows the young generation to its maximum for that (2 ×
 * `--max-semi-space-size`, 32 MB with the shipped 16) and keeps it, and the old
 * generation holds the garbage of the build until its next mark-compact —
 * which an idle sidecar may not see for hours: V8's memory reducer did not
 * act within a minute of idle in our measurements. A "last resort" collection
 * (all available garbage, young generation shrunk to its initial size) before
 * the listeners open cuts idle RSS by ~20 MB at the price of a pause of
 * ~100–600 ms, once, before readiness. Under load the young generation grows
 * back as it needs to.
 *
 * The collector is reached through V8's gc extension in a throwaway context:
 * `gc` is never exposed to regate's own global scope.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

type GcFunction = (options?: { type?: 'major' | 'minor'; execution?: 'sync' | 'async'; flavor?: 'regular' | 'last-resort' }) => void;

let collector: GcFunction | undefined;

function gcFunction(): GcFunction | undefined {
  if (collector !== undefined) return collector;
  const exposed = (globalThis as { gc?: unknown }).gc;
  if (typeof exposed === 'function') return (collector = exposed as GcFunction);
  try {
    setFlagsFromString('--expose-gc');
    const fn: unknown = runInNewContext('gc');
    setFlagsFromString('--no-expose-gc');
    if (typeof fn === 'function') collector = fn as GcFunction;
  } catch {
    // No gc extension in this runtime: nothing to do.
  }
  return collector;
}

/** Collect everything collectable and shrink the young generation; returns the pause in ms (0 when unavailable). */
export function compactHeap(): number {
  const gc = gcFunction();
  if (gc === undefined) return 0;
  const started = performance.now();
  gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
  return performance.now() - started;
}
