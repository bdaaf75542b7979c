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
 * every call: whatever an evaluation allocated, or left half-built when it
 * aborted, is reused by the next one. Memory therefore grows to the largest
 * evaluation seen and stays there (wasm memory never shrinks), bounded by
 * `maxMemoryBytes`.
 */

import { loadPolicy, type LoadedPolicy } from '@open-policy-agent/opa-wasm';
import { ConfigError, PolicyError } from '../errors.ts';
import type { Bundle } from './bundle.ts';
import { guardSdkBuiltins, hostBuiltins, sdkBuiltinNames, type EvalContext, type HostBuiltin } from './builtins/index.ts';
import { normalizeDecision } from './decision.ts';
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

interface PolicyExports {
  builtins(): number;
  opa_json_dump(addr: number): number;
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
  readonly #policy: LoadedPolicy;
  readonly #entrypointIds: ReadonlyMap<string, number>;
  readonly #state: { ctx: EvalContext };

  /** Use {@link loadPolicyEngine}. */
  constructor(
    policy: LoadedPolicy,
    state: { ctx: EvalContext },
    revision: string,
    requiredBuiltins: readonly string[],
    unsupportedBuiltins: readonly string[],
  ) {
    this.#policy = policy;
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

  #run(entrypoint: string, input: unknown, nowNs: bigint): { resultSet: ResultSet; evalNs: number } {
    const id = this.#entrypointIds.get(entrypoint);
    if (id === undefined) {
      throw new PolicyError('policy_unknown_entrypoint', `policy has no entrypoint "${entrypoint}"`, {
        detail: `entrypoints: ${this.entrypoints.join(', ')}`,
      });
    }
    if (typeof nowNs !== 'bigint') throw new TypeError('nowNs must be a bigint');
    // Pre-serialized JSON: exact bigints, and the SDK skips its own stringify.
    const text = stringifyJson(input);
    // The decision log prints this same input at the end of the request: keep the text.
    if (text !== undefined && typeof input === 'object' && input !== null) rememberJson(input, text);
    const buffer = text === undefined ? undefined : jsonBuffer(text);
    const policy = this.#policy;
    this.#state.ctx = { nowNs };
    const start = process.hrtime.bigint();
    let resultSet: unknown;
    try {
      resultSet = withPreciseJson(() => policy.evaluate(buffer, id));
    } catch (thrown) {
      throw new PolicyError('policy_eval_error', `policy evaluation failed: ${describe(thrown)}`, { cause: thrown });
    } finally {
      this.#state.ctx = IDLE;
    }
    const evalNs = Number(process.hrtime.bigint() - start);
    if (!Array.isArray(resultSet)) throw new PolicyError('policy_invalid_result', 'invalid policy result: result set is not an array');
    return { resultSet: resultSet as ResultSet, evalNs };
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
  try {
    // Compile first, separately, so a broken module is reported as such.
    module = new WasmModule(bundle.wasm);
  } catch (err) {
    throw new ConfigError(bundle.source, bundle.wasmPath, `not a valid WebAssembly module: ${describe(err)}`, { cause: err });
  }

  let policy: LoadedPolicy;
  let required: string[];
  try {
    policy = await loadPolicy(module as Parameters<typeof loadPolicy>[0], { initial: Math.min(5, maximum), maximum }, adaptBuiltins(builtins, state));
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
  return new WasmPolicyEngine(policy, state, bundle.manifest.revision, required, unsupported);
}
