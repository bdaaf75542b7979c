/**
 * The Node.js version floor, in a module that imports nothing so that the
 * entry point (main.ts) can check it before loading any dependency.
 */

/**
 * The oldest supported Node: undici 8 declares `engines.node >=22.19.0`, the
 * highest floor among the runtime dependencies. Stated identically in
 * package.json `engines`, scripts/install-tools.sh, scripts/regate.sh,
 * README and docs/architecture.md (test/unit/cli/node-floor.test.ts checks).
 */
export const NODE_FLOOR = '22.19.0';

/** True when dotted version `running` is at least `floor` (numeric, part by part). */
export function atLeast(running: string, floor: string): boolean {
  const a = running.split('.').map((p) => Number.parseInt(p, 10) || 0);
  const b = floor.split('.').map((p) => Number.parseInt(p, 10) || 0);
  for (let i = 0; i < b.length; i++) {
    const x = a[i] ?? 0;
    const y = b[i]!;
    if (x !== y) return x > y;
  }
  return true;
}
