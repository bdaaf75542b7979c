/**
 * The parts of undici regate uses, loaded by file instead of through the
 * package's index (issue 11). `import … from 'undici'` evaluates every
 * dispatcher, the mock agents, the caches, fetch, WebSocket and EventSource:
 * ~12 MB of RSS (2.8 MB of heap) more than a `Pool` alone, in every process.
 * The proxy path needs `Pool` and `buildConnector`; `request` (JWKS URLs,
 * bundle service, decision uploads, OTLP) loads the whole package on its
 * first call — only configs that use one of those pay for it.
 *
 * The same module instances as the index's (one CommonJS cache), so undici's
 * error classes and symbols are the same objects whichever way they are reached.
 * Types are the package's own. test/unit/upstream/undici.test.ts checks that
 * these files still are what the index exports (an undici upgrade that moves
 * them fails there, not in production).
 */
import { createRequire } from 'node:module';
import type * as Undici from 'undici';

const load = createRequire(import.meta.url);

// What undici's index does to every dispatcher: `request`, `stream`, `pipeline`, `upgrade`
// and `connect` are methods of Dispatcher.prototype (the same functions, so doing it
// again when the index is loaded later changes nothing).
Object.assign((load('undici/lib/dispatcher/dispatcher.js') as { prototype: object }).prototype, load('undici/lib/api/index.js'));

export const Pool = load('undici/lib/dispatcher/pool.js') as typeof Undici.Pool;
export type Pool = Undici.Pool;

export const buildConnector = load('undici/lib/core/connect.js') as typeof Undici.buildConnector;

let full: typeof Undici | undefined;

/** undici's `request` (its global dispatcher); the package's index is loaded on the first call. */
export const request = ((url: Parameters<typeof Undici.request>[0], options?: Parameters<typeof Undici.request>[1]) =>
  (full ??= load('undici') as typeof Undici).request(url, options)) as typeof Undici.request;
