/**
 * The policy engine: one opa-wasm instance per loaded bundle.
 *
 * Everything that can be done once happens in {@link loadPolicyEngine}:
 * compile the module, instantiate it, load the bundle data, list the builtins
 * the module needs from the host, index the entrypoints. An evaluation then
 * serializes the input, runs the wasm synchronously and normalizes the result.
 *
 * One instance serves every request. That is safe because evaluation is
 * synchronous and Node runs one JavaScript stack at a time, and because the
 * SDK's ABI ≥ 1.2 path hands `opa_eval` the heap pointer to start from on
 * every call: whatever an evaluation allocated is reused by the next one.
 * Memory therefore grows to the largest evaluation seen and stays there (wasm
 * memory never shrinks), bounded by `maxMemoryBytes`.
 *
 * An evaluation that aborts (rule conflict, unparsable input, a host builtin
 * that throws, `opa_abort`, the memory ceiling) leaves what the heap reset
 * does not cover: the C stack pointer (a private mutable global) short by the
 * aborted frames, and the allocator's statics (free lists, `heap_top`)
 * possibly half-updated. Unrepaired, a few hundred aborts exhaust the 64 KiB
 * stack and every later evaluation traps (issue 9). So the engine keeps a
 * snapshot of the module's state taken at rest — its mutable globals (made
 * readable by src/policy/wasm-globals.ts) and the linear memory below the
 * data (stack and statics) — and puts it back after every failed evaluation:
 * the next one runs on exactly the state the bundle was loaded into. If the
 * failed evaluation grew the memory (the statics then describe a smaller
 * memory than the real one), the instance is rebuilt from the compiled
 * module instead, with the loaded data copied over, and `onReset` is told.
 * Successful evaluations cost one extra comparison.
 */

import { loadPolicy, type LoadedPolicy } from '@open-policy-agent/opa-wasm';
import { createRequire } from 'node:module';
import { ConfigError, PolicyError } from '../errors.ts';
import type { Bundle } from './bundle.ts';
import { guardSdkBuiltins, hostBuiltins, sdkBuiltinNames, type EvalContext, type HostBuiltin } from './builtins/index.ts';
import { normalizeDecision } from './decision.ts';
import { exposeMutableGlobals, WasmFormatError, type ExposedGlobal } from './wasm-globals.ts';
import { bigintsToNumbers, rememberJson, stringifyJson, withPreciseJson } from './precise-json.ts';
import type { Evaluation, PolicyEngine } from './types.ts';

const PAGE = 64 * 1024;

/** Default ceiling for the instance's linear memory: 1 GiB. */
export const DEFAULT_MAX_MEMORY_BYTES = 1024 * 1024 * 1024;

export interface PolicyEngineOptions {
  /** Host builtins by Rego name. Default: {@link hostBuiltins}(). */
  builtins?: Readonly<Record<string, HostBuiltin>>;
  /**
   * Ceiling for the wasm linear memory (rounded up to 64 KiB pages, at most
   * 4 GiB). An evaluation that needs more fails with `policy_eval_error`
   * ("opa_malloc: failed") instead of growing the process without bound.
   * The bundle data must fit too. Default {@link DEFAULT_MAX_MEMORY_BYTES}.
   */
  maxMemoryBytes?: number;
  /**
   * Called after a failed evaluation made the engine rebuild its wasm
   * instance (see the file comment); the evaluation itself already failed
   * with `policy_eval_error`. Wire to a metric and a log line.
   */
  onReset?: (event: EngineReset) => void;
}

/** What {@link PolicyEngineOptions.onReset} is told. */
export interface EngineReset {
  /** The failed evaluation's message. */
  readonly error: string;
  /** Linear memory size before the rebuild and after, bytes. */
  readonly memoryBytesBefore: number;
  readonly memoryBytesAfter: number;
}

/** One evaluation's result set as the SDK returns it: `[{ result: value }]`, or `[]` when undefined. */
export type ResultSet = readonly { readonly result?: unknown }[];

/** Placeholder context between evaluations (a builtin is only called during one). */
const IDLE: EvalContext = Object.freeze({ nowNs: 0n });

const encoder = new TextEncoder();

/** UTF-8 bytes of `text` in an ArrayBuffer of exactly that length (the SDK wraps the whole buffer). */
function jsonBuffer(text: string): ArrayBuffer {
  const bytes = encoder.encode(text);
  return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength
    ? (bytes.buffer as ArrayBuffer)
    : (bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer);
}

/** The SDK's instance fields the ABI 1.2 fast path uses (`LoadedPolicy` does not type them). */
interface AbiPolicy {
  readonly minorVersion: number;
  readonly dataAddr: number;
  readonly dataHeapPtr: number;
  readonly mem: { readonly buffer: ArrayBuffer; grow(pages: number): number };
  readonly wasmInstance: { readonly exports: { opa_eval(ctx: number, entrypoint: number, data: number, input: number, inputLen: number, heapPtr: number, format: number): number } };
}

const decoder = new TextDecoder();

/**
 * The SDK's ABI 1.2 evaluation (`LoadedPolicy.evaluate` with a JSON buffer),
 * without its copies (issue 11): the input's UTF-8 is encoded straight into
 * the module's memory at the data heap pointer (`encodeInto`, no
 * intermediate buffer), and the result is found with a native NUL search and
 * decoded by one cached decoder. Memory grows as the SDK grows it; the heap
 * pointer after the input is where `opa_eval` allocates from, as in the SDK.
 */
function evaluateText(policy: AbiPolicy, text: string, entrypoint: number): unknown {
  const at = policy.dataHeapPtr;
  let memory = new Uint8Array(policy.mem.buffer);
  let { read, written } = encoder.encodeInto(text, memory.subarray(at));
  if (read < text.length) {
    // Did not fit: grow by exactly what the input needs (as the SDK does, so the memory
    // ceiling is reached at the same input size), then encode again.
    const need = at + Buffer.byteLength(text) - memory.length;
    policy.mem.grow(Math.ceil(need / PAGE));
    memory = new Uint8Array(policy.mem.buffer);
    ({ read, written } = encoder.encodeInto(text, memory.subarray(at)));
  }
  const ret = policy.wasmInstance.exports.opa_eval(0, entrypoint, policy.dataAddr, at, written, at + written, 0);
  // opa_eval may have grown the memory: look at the buffer as it is now.
  const out = new Uint8Array(policy.mem.buffer);
  const end = out.indexOf(0, ret);
  return JSON.parse(decoder.decode(out.subarray(ret, end < 0 ? out.length : end)));
}

/** The SDK throws strings, `{ message }` objects and Errors alike. */
function describe(thrown: unknown): string {
  const text =
    typeof thrown === 'string'
      ? thrown
      : thrown instanceof Error
        ? thrown.message
        : typeof thrown === 'object' && thrown !== null && typeof (thrown as { message?: unknown }).message === 'string'
          ? (thrown as { message: string }).message
          : String(thrown);
  return text.length > 1000 ? `${text.slice(0, 1000)}…` : text;
}

/** Read the NUL-terminated UTF-8 string at `addr` from wasm memory. */
function readCString(memory: { readonly buffer: ArrayBuffer }, addr: number): string {
  const bytes = new Uint8Array(memory.buffer);
  const end = bytes.indexOf(0, addr);
  return new TextDecoder().decode(bytes.subarray(addr, end < 0 ? bytes.length : end));
}

// tsconfig's lib has no WebAssembly typings (no DOM lib); the little we use, typed here.
interface WasmModuleApi {
  Module: new (bytes: Uint8Array) => object;
}
const { Module: WasmModule } = (globalThis as unknown as { WebAssembly: WasmModuleApi }).WebAssembly;

// The SDK's ESM entry re-exports only `loadPolicy` (its typings claim more);
// the synchronous loader, used to rebuild an instance inside an evaluation,
// comes from the same CommonJS module object.
const { loadPolicySync } = createRequire(import.meta.url)('@open-policy-agent/opa-wasm') as typeof import('@open-policy-agent/opa-wasm');

interface PolicyExports {
  builtins(): number;
  opa_json_dump(addr: number): number;
}

/** A wasm global as seen from JavaScript (no WebAssembly typings, see above). */
interface WasmGlobal {
  value: number | bigint;
}

/** What an instance needs to be rebuilt like the first one. */
interface InstanceRecipe {
  readonly module: object;
  readonly maximumPages: number;
  readonly builtins: Record<string, (...args: unknown[]) => unknown>;
  readonly globals: readonly ExposedGlobal[];
}

/**
 * The module state at rest, put back after a failed evaluation. `memory` is
 * linear memory [0, `baseHeapPtr`): the stack and the C statics (plus the
 * SDK's first small allocation); the loaded data above it is never written
 * by an evaluation. `memoryBytes` is the memory size the statics describe.
 */
interface RestPoint {
  readonly globals: readonly WasmGlobal[];
  readonly values: readonly (number | bigint)[];
  readonly memory: Uint8Array;
  readonly memoryBytes: number;
}

function globalsOf(policy: LoadedPolicy, exposed: readonly ExposedGlobal[]): WasmGlobal[] {
  const exports = policy.wasmInstance.exports as unknown as Record<string, WasmGlobal | undefined>;
  return exposed.map((g) => {
    const global = exports[g.name];
    if (global === undefined) throw new TypeError(`the rewritten module does not export ${g.name}`);
    return global;
  });
}

function restPoint(policy: LoadedPolicy, exposed: readonly ExposedGlobal[]): RestPoint {
  const buffer = (policy.mem as { buffer: ArrayBuffer }).buffer;
  const globals = globalsOf(policy, exposed);
  return {
    globals,
    values: globals.map((g) => g.value),
    memory: new Uint8Array(buffer.slice(0, policy.baseHeapPtr as number)),
    memoryBytes: buffer.byteLength,
  };
}

/**
 * A loaded policy. Implements {@link PolicyEngine}; {@link evaluateRaw} gives
 * the exact result set for `regate eval` and conformance tests.
 */
export class WasmPolicyEngine implements PolicyEngine {
  readonly revision: string;
  readonly entrypoints: readonly string[];
  readonly unsupportedBuiltins: readonly string[];
  /** Every builtin the module calls on the host (SDK, regate or missing), sorted. */
  readonly requiredBuiltins: readonly string[];
  #policy: LoadedPolicy;
  #rest: RestPoint;
  #resets = 0;
  readonly #recipe: InstanceRecipe;
  readonly #onReset: ((event: EngineReset) => void) | undefined;
  readonly #entrypointIds: ReadonlyMap<string, number>;
  readonly #state: { ctx: EvalContext };

  /** Use {@link loadPolicyEngine}. */
  constructor(
    policy: LoadedPolicy,
    recipe: InstanceRecipe,
    state: { ctx: EvalContext },
    revision: string,
    requiredBuiltins: readonly string[],
    unsupportedBuiltins: readonly string[],
    onReset?: (event: EngineReset) => void,
  ) {
    this.#policy = policy;
    this.#recipe = recipe;
    this.#rest = restPoint(policy, recipe.globals);
    this.#onReset = onReset;
    this.#state = state;
    this.revision = revision;
    const ids = policy.entrypoints as Record<string, number>;
    this.#entrypointIds = new Map(Object.entries(ids));
    this.entrypoints = Object.freeze(Object.keys(ids).sort());
    this.requiredBuiltins = Object.freeze([...requiredBuiltins]);
    this.unsupportedBuiltins = Object.freeze([...unsupportedBuiltins]);
  }

  /** Current size of the instance's linear memory, bytes. */
  get memoryBytes(): number {
    return (this.#policy.mem as { buffer: ArrayBuffer }).buffer.byteLength;
  }

  /** How many times a failed evaluation made the engine rebuild its instance. */
  get resets(): number {
    return this.#resets;
  }

  /**
   * The module state that must be the same at rest after every evaluation,
   * for tests and diagnostics: the mutable globals (the stack pointer first)
   * and the loaded data region of the linear memory.
   */
  restState(): { readonly globals: readonly (number | bigint)[]; readonly data: Uint8Array } {
    const policy = this.#policy;
    return {
      globals: globalsOf(policy, this.#recipe.globals).map((g) => g.value),
      data: new Uint8Array((policy.mem as { buffer: ArrayBuffer }).buffer.slice(policy.baseHeapPtr as number, policy.dataHeapPtr as number)),
    };
  }

  /**
   * Evaluate and return the result set exactly as the policy produced it:
   * integers beyond 2^53 are `bigint`. Throws PolicyError
   * `policy_unknown_entrypoint` or `policy_eval_error`.
   */
  evaluateRaw(entrypoint: string, input: unknown, nowNs: bigint): ResultSet {
    return this.#run(entrypoint, input, nowNs).resultSet;
  }

  evaluate(entrypoint: string, input: unknown, nowNs: bigint): Evaluation {
    const { resultSet, evalNs } = this.#run(entrypoint, input, nowNs);
    // The decision leaves this stage as plain JSON (decision log, problem
    // documents): bigints become numbers there. Decisions only read booleans,
    // strings and small integers, so nothing they depend on is rounded.
    return { decision: normalizeDecision(bigintsToNumbers(resultSet)), evalNs };
  }

  /**
   * Evaluate with the input given as JSON text, handed to the module as is:
   * the module's own parser reads it. For conformance tests (a text OPA's
   * parser and the module's treat alike, or not); the request path always
   * goes through {@link evaluate}. Throws like {@link evaluateRaw}; a text
   * the module cannot parse is a `policy_eval_error`.
   */
  evaluateText(entrypoint: string, text: string, nowNs: bigint): ResultSet {
    const id = this.#entrypointId(entrypoint);
    if (typeof nowNs !== 'bigint') throw new TypeError('nowNs must be a bigint');
    return this.#runText(id, text, nowNs).resultSet;
  }

  #entrypointId(entrypoint: string): number {
    const id = this.#entrypointIds.get(entrypoint);
    if (id === undefined) {
      throw new PolicyError('policy_unknown_entrypoint', `policy has no entrypoint "${entrypoint}"`, {
        detail: `entrypoints: ${this.entrypoints.join(', ')}`,
      });
    }
    return id;
  }

  #run(entrypoint: string, input: unknown, nowNs: bigint): { resultSet: ResultSet; evalNs: number } {
    const id = this.#entrypointId(entrypoint);
    if (typeof nowNs !== 'bigint') throw new TypeError('nowNs must be a bigint');
    // Pre-serialized JSON: exact bigints, and the SDK skips its own stringify.
    let text: string | undefined;
    try {
      text = stringifyJson(input);
    } catch (err) {
      // Nesting too deep for JSON.stringify's recursion; a cycle stays a TypeError (a bug, not input).
      if (!(err instanceof RangeError)) throw err;
      throw new PolicyError('policy_eval_error', `cannot serialize the policy input: ${describe(err)}`, { cause: err });
    }
    // The decision log prints this same input at the end of the request: keep the text.
    if (text !== undefined && typeof input === 'object' && input !== null) rememberJson(input, text);
    return this.#runText(id, text, nowNs);
  }

  #runText(id: number, text: string | undefined, nowNs: bigint): { resultSet: ResultSet; evalNs: number } {
    const policy = this.#policy;
    const direct = text !== undefined && (policy as unknown as AbiPolicy).minorVersion >= 2;
    const buffer = text === undefined || direct ? undefined : jsonBuffer(text);
    this.#state.ctx = { nowNs };
    const start = process.hrtime.bigint();
    let resultSet: unknown;
    try {
      resultSet = withPreciseJson(() => (direct ? evaluateText(policy as unknown as AbiPolicy, text, id) : policy.evaluate(buffer, id)));
    } catch (thrown) {
      this.#state.ctx = IDLE;
      const message = `policy evaluation failed: ${describe(thrown)}`;
      this.#recover(message);
      throw new PolicyError('policy_eval_error', message, { cause: thrown });
    }
    this.#state.ctx = IDLE;
    const evalNs = Number(process.hrtime.bigint() - start);
    // The memory grew: the statics now describe a bigger memory. Take the
    // rest point again so a later restore does not shrink `heap_top` below
    // the memory the instance really has.
    if ((policy.mem as { buffer: ArrayBuffer }).buffer.byteLength !== this.#rest.memoryBytes) this.#rest = restPoint(policy, this.#recipe.globals);
    if (!Array.isArray(resultSet)) throw new PolicyError('policy_invalid_result', 'invalid policy result: result set is not an array');
    return { resultSet: resultSet as ResultSet, evalNs };
  }

  /** Put the module back at rest after a failed evaluation (file comment). */
  #recover(error: string): void {
    const buffer = (this.#policy.mem as { buffer: ArrayBuffer }).buffer;
    if (buffer.byteLength !== this.#rest.memoryBytes) {
      try {
        this.#rebuild(error);
        return;
      } catch {
        // No memory for a second instance: restoring in place still gives a
        // correct engine, whose allocator merely ignores the memory the failed
        // evaluation added (it grows again when it needs more).
      }
    }
    const rest = this.#rest;
    for (let i = 0; i < rest.globals.length; i++) rest.globals[i]!.value = rest.values[i]!;
    new Uint8Array((this.#policy.mem as { buffer: ArrayBuffer }).buffer).set(rest.memory, 0);
  }

  /**
   * A fresh instance of the compiled module in a fresh memory the size the
   * rest point describes, given the rest point's stack and statics and the
   * old instance's loaded data (never written by an evaluation, so it is
   * copied rather than parsed again). The old memory is garbage afterwards.
   */
  #rebuild(error: string): void {
    const old = this.#policy;
    const rest = this.#rest;
    const before = (old.mem as { buffer: ArrayBuffer }).buffer.byteLength;
    const recipe = this.#recipe;
    const fresh = loadPolicySync(recipe.module as Parameters<typeof loadPolicySync>[0], { initial: rest.memoryBytes / PAGE, maximum: recipe.maximumPages }, recipe.builtins);
    const base = old.baseHeapPtr as number;
    const top = old.dataHeapPtr as number;
    const target = new Uint8Array((fresh.mem as { buffer: ArrayBuffer }).buffer);
    target.set(rest.memory, 0);
    target.set(new Uint8Array((old.mem as { buffer: ArrayBuffer }).buffer, base, top - base), base);
    fresh.dataAddr = old.dataAddr;
    fresh.baseHeapPtr = base;
    fresh.dataHeapPtr = top;
    const globals = globalsOf(fresh, recipe.globals);
    for (let i = 0; i < globals.length; i++) globals[i]!.value = rest.values[i]!;
    this.#policy = fresh;
    this.#rest = { ...rest, globals, memoryBytes: (fresh.mem as { buffer: ArrayBuffer }).buffer.byteLength };
    this.#resets++;
    this.#onReset?.({ error, memoryBytesBefore: before, memoryBytesAfter: this.#rest.memoryBytes });
  }
}

/**
 * Adapt host builtins to the SDK's calling convention: no context argument,
 * and a result the SDK will `JSON.stringify` (which throws on bigint). Each
 * result is handed over as exact pre-serialized JSON instead.
 */
function adaptBuiltins(builtins: Readonly<Record<string, HostBuiltin>>, state: { ctx: EvalContext }): Record<string, (...args: unknown[]) => unknown> {
  // Null prototype: the SDK indexes this by a name taken from the module.
  const adapted: Record<string, (...args: unknown[]) => unknown> = Object.create(null) as Record<string, (...args: unknown[]) => unknown>;
  for (const [name, fn] of Object.entries(builtins)) {
    adapted[name] = (...args: unknown[]): unknown => {
      const result = fn(state.ctx, ...args);
      if (result === undefined) return undefined; // undefined call, like an OPA builtin error
      const text = stringifyJson(result);
      return text === undefined ? undefined : jsonBuffer(text);
    };
  }
  return adapted;
}

/**
 * Load a bundle's wasm module and data into a ready engine.
 *
 * Throws ConfigError (file = `bundle.source`) when the module does not
 * compile or instantiate, or the data cannot be loaded. A module that needs
 * builtins nobody implements still loads: check `unsupportedBuiltins` (an
 * evaluation reaching such a call fails with `policy_eval_error`).
 */
export async function loadPolicyEngine(bundle: Bundle, options: PolicyEngineOptions = {}): Promise<WasmPolicyEngine> {
  const builtins = options.builtins ?? hostBuiltins();
  const maxBytes = options.maxMemoryBytes ?? DEFAULT_MAX_MEMORY_BYTES;
  if (!Number.isFinite(maxBytes) || maxBytes <= 0) throw new TypeError('maxMemoryBytes must be a positive number');
  const maximum = Math.min(65536, Math.ceil(maxBytes / PAGE));
  const state = { ctx: IDLE };
  guardSdkBuiltins(); // before the first evaluation in this process

  let module: object;
  let exposed: ReturnType<typeof exposeMutableGlobals>;
  try {
    // Compile first, separately, so a broken module is reported as such.
    module = new WasmModule(bundle.wasm);
    // Validated: now the same module with its mutable globals exported (file comment).
    exposed = exposeMutableGlobals(bundle.wasm);
    if (exposed.bytes !== bundle.wasm) module = new WasmModule(exposed.bytes);
  } catch (err) {
    const what = err instanceof WasmFormatError ? 'cannot read the WebAssembly module' : 'not a valid WebAssembly module';
    throw new ConfigError(bundle.source, bundle.wasmPath, `${what}: ${describe(err)}`, { cause: err });
  }

  const adapted = adaptBuiltins(builtins, state);
  let policy: LoadedPolicy;
  let required: string[];
  try {
    policy = await loadPolicy(module as Parameters<typeof loadPolicy>[0], { initial: Math.min(5, maximum), maximum }, adapted);
    // The SDK reads the module's builtin table at load but keeps it private;
    // read it again. The allocation lands above the heap base and is
    // reclaimed by setData below.
    const exports = policy.wasmInstance.exports as unknown as PolicyExports;
    required = Object.keys(JSON.parse(readCString(policy.mem as { buffer: ArrayBuffer }, exports.opa_json_dump(exports.builtins()))) as Record<string, number>).sort();
  } catch (err) {
    throw new ConfigError(bundle.source, bundle.wasmPath, `cannot instantiate the policy module: ${describe(err)}`, { cause: err });
  }

  try {
    const data = stringifyJson(bundle.data) ?? '{}';
    policy.setData(jsonBuffer(data));
  } catch (err) {
    throw new ConfigError(bundle.source, '/data.json', `cannot load the bundle data into the policy (max memory ${maximum * PAGE} bytes): ${describe(err)}`, {
      cause: err,
    });
  }

  const sdk = sdkBuiltinNames();
  const unsupported = required.filter((name) => !sdk.has(name) && !Object.hasOwn(builtins, name));
  const recipe: InstanceRecipe = { module, maximumPages: maximum, builtins: adapted, globals: exposed.globals };
  return new WasmPolicyEngine(policy, recipe, state, bundle.manifest.revision, required, unsupported, options.onReset);
}
