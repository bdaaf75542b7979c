#!/usr/bin/env node
/**
 * regate's entry point: refuse an unsupported Node before anything else loads.
 *
 * ESM resolves and evaluates every static import before a module's own code
 * runs, so a version check inside the CLI would come too late: on Node < 22.15
 * undici's `decompress.js` crashes at import (`zlib.createZstdDecompress` is
 * missing) and the user sees a stack trace. This module imports only node-floor.ts
 * (which imports nothing), checks `process.versions.node`, then loads the
 * real CLI dynamically.
 */

import { atLeast, NODE_FLOOR } from './node-floor.ts';

if (!atLeast(process.versions.node, NODE_FLOOR)) {
  process.stderr.write(`regate: Node.js ${process.versions.node} is not supported; regate needs Node.js >= ${NODE_FLOOR} (${process.execPath})\n`);
  process.exitCode = 1;
} else {
  const { run } = await import('./cli.ts');
  run(process.argv.slice(2));
}
