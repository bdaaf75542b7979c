/**
 * Host builtins: Rego functions the compiled wasm module calls back into JS
 * for (`opa build -t wasm` implements most builtins natively; the rest, e.g.
 * `time.*`, `crypto.*`, `http.send`, are listed by the module's `builtins`
 * export and must be supplied by the host or the policy cannot run).
 *
 * Three sources, in the order the SDK dispatches them (`_builtinCall` in
 * opa-wasm's `opa.js` tries its own table first):
 *   1. the SDK's own JS builtins ({@link sdkBuiltinNames}: yaml.*, ...), minus
 *      the ones regate replaces ({@link REPLACED_SDK_BUILTINS}: removed from
 *      the SDK's table by {@link guardSdkBuiltins}, so the host's are called);
 *   2. regate's host builtins ({@link hostBuiltins});
 *   3. anything else: unsupported, reported at load by `PolicyEngine.unsupportedBuiltins`.
 */

import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { bigintsToNumbers } from '../precise-json.ts';
import { exactArguments } from '../number-text.ts';
import { encodingBuiltins } from './encoding.ts';
import { operandTypeError } from './operands.ts';
import { regoSprintf } from './sprintf.ts';
import { timeBuiltins } from './time.ts';

/** Per-evaluation state a host builtin may read. One object per evaluation. */
export interface EvalContext {
  /** What `time.now_ns()` returns: constant for the whole evaluation. */
  readonly nowNs: bigint;
}

/**
 * A host builtin. Arguments are the Rego values as JSON: objects, arrays
 * (Rego sets arrive as arrays), strings, booleans, null, and numbers, where an
 * integer outside the safe range (|n| > 2^53 - 1) arrives as an exact `bigint`.
 *
 * Return a JSON value (a `bigint` is written exactly). Return `undefined` to
 * make the call undefined, which is what OPA does by default for a builtin
 * error such as a wrong argument type. Throw only for errors that must abort
 * the evaluation (OPA's halting errors): the request is then denied with a
 * policy error.
 */
export type HostBuiltin = (ctx: EvalContext, ...args: unknown[]) => unknown;

/**
 * The builtins regate implements, by Rego name. A fresh object per call, so a
 * caller may add or remove entries (tests, `regate eval`).
 */
export function hostBuiltins(): Record<string, HostBuiltin> {
  return { ...encodingBuiltins, ...timeBuiltins, ...replacementBuiltins };
}

/**
 * Host versions of SDK builtins whose JavaScript semantics differ from OPA's
 * (see sprintf.ts). They receive numbers as exact text ({@link exactArguments}).
 */
const replacementBuiltins: Readonly<Record<string, HostBuiltin>> = Object.freeze({
  sprintf: (_ctx, ...args) => {
    const [format, values] = exactArguments(args);
    return regoSprintf(format, values);
  },
});

/** SDK builtins regate replaces by its own (Go semantics): taken out of the SDK's table. */
export const REPLACED_SDK_BUILTINS: ReadonlySet<string> = new Set(Object.keys(replacementBuiltins));

type SdkBuiltin = (...args: unknown[]) => unknown;

let sdkTable: Record<string, SdkBuiltin> | undefined;

/**
 * The SDK's builtin table (`src/builtins/index.js`). It is not exported by the
 * package's `exports` map, so it is required by absolute path next to the
 * resolved entry point. That yields the very object the SDK dispatches from
 * (same file, same CommonJS cache entry).
 */
function sdkBuiltinTable(): Record<string, SdkBuiltin> {
  if (sdkTable === undefined) {
    const require = createRequire(import.meta.url);
    const entry = require.resolve('@open-policy-agent/opa-wasm'); // .../src/index.cjs
    sdkTable = require(join(dirname(entry), 'builtins', 'index.js')) as Record<string, SdkBuiltin>;
  }
  return sdkTable;
}

let sdkNames: ReadonlySet<string> | undefined;

/**
 * Names of the builtins the opa-wasm SDK implements in JS itself. They shadow
 * host builtins of the same name (the SDK looks in its own table first).
 */
export function sdkBuiltinNames(): ReadonlySet<string> {
  sdkNames ??= new Set(Object.keys(sdkBuiltinTable()).filter((name) => !REPLACED_SDK_BUILTINS.has(name)));
  return sdkNames;
}

const GUARDED = Symbol('regate.sdkBuiltinGuarded');

/**
 * How many leading operands of an SDK builtin must be strings. The SDK's JS
 * returns undefined (or splits a stringified array) for other types, where
 * OPA's strict builtin errors stop the evaluation with a type error.
 */
const SDK_STRING_OPERANDS: ReadonlyMap<string, number> = new Map([
  ['regex.split', 2],
  ['yaml.unmarshal', 1],
]);

/** SDK validity checks OPA answers `false` for a non-string (the SDK: undefined). */
const SDK_FALSE_ON_NON_STRING: ReadonlySet<string> = new Set(['yaml.is_valid', 'json.is_valid']);

/**
 * Take the replaced builtins out of the SDK's table, make the remaining ones
 * raise OPA's operand type errors, and make them receive plain numbers again.
 *
 * Evaluations run under `withPreciseJson`, so builtin arguments beyond 2^53
 * arrive as bigint. Host builtins want that; the SDK's do not expect it:
 * sprintf-js throws "Cannot convert a BigInt value to a number" for
 * `sprintf("%d", [time.now_ns()])`. Each SDK builtin is wrapped, once per
 * process, to convert bigints back to the nearest number first, which is
 * exactly what it saw before the precise-JSON scope existed. Idempotent.
 */
export function guardSdkBuiltins(): void {
  const table = sdkBuiltinTable();
  // The SDK dispatches its own table first: a replaced builtin must leave it.
  for (const name of REPLACED_SDK_BUILTINS) delete table[name];
  for (const [name, fn] of Object.entries(table)) {
    if ((fn as { [GUARDED]?: true })[GUARDED]) continue;
    const strings = SDK_STRING_OPERANDS.get(name) ?? 0;
    const falseOnNonString = SDK_FALSE_ON_NON_STRING.has(name);
    const guarded = function (this: unknown, ...args: unknown[]): unknown {
      for (let i = 0; i < strings; i++) if (typeof args[i] !== 'string') throw operandTypeError(name, i + 1, args[i], 'string');
      if (falseOnNonString && typeof args[0] !== 'string') return false;
      return fn.apply(this, args.map(bigintsToNumbers));
    };
    Object.defineProperty(guarded, GUARDED, { value: true });
    table[name] = guarded;
  }
}
