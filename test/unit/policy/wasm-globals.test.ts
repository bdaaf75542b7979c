import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { readBundle } from '../../../src/policy/bundle.ts';
import { exposeMutableGlobals, WasmFormatError } from '../../../src/policy/wasm-globals.ts';
import { buildBundle } from '../../helpers/opa.ts';

// tsconfig has no WebAssembly typings; the little used here.
interface Wasm {
  Module: { new (bytes: Uint8Array): object; exports(m: object): { name: string; kind: string }[] };
  Instance: new (m: object, imports?: object) => { exports: Record<string, { value: unknown }> };
}
const { Module, Instance } = (globalThis as unknown as { WebAssembly: Wasm }).WebAssembly;

const HEADER = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
const section = (id: number, payload: number[]): number[] => [id, payload.length, ...payload];
const name = (s: string): number[] => [s.length, ...Buffer.from(s)];

// Imports: global env.g (i32, immutable) → global index 0.
const IMPORTS = section(2, [1, ...name('env'), ...name('g'), 0x03, 0x7f, 0x00]);
const MEMORY = section(5, [1, 0x00, 1]);
// Globals 1..3: mutable i32 = 11 (the initializer's immediate is the `end` byte 0x0b),
// immutable i64 = 5, mutable f64 = 0.5.
const GLOBALS = section(6, [3, 0x7f, 0x01, 0x41, 0x0b, 0x0b, 0x7e, 0x00, 0x42, 0x05, 0x0b, 0x7c, 0x01, 0x44, 0, 0, 0, 0, 0, 0, 0xe0, 0x3f, 0x0b]);
const EXPORTS = section(7, [1, ...name('memory'), 0x02, 0]);

function module(...sections: number[][]): Uint8Array {
  return new Uint8Array([...HEADER, ...sections.flat()]);
}

describe('exposeMutableGlobals', () => {
  it('exports every mutable global the module defines, after the imported ones, keeping the old exports', () => {
    const { bytes, globals } = exposeMutableGlobals(module(IMPORTS, MEMORY, GLOBALS, EXPORTS));
    assert.deepEqual(globals, [
      { index: 1, name: 'regate_global_1' },
      { index: 3, name: 'regate_global_3' },
    ]);
    const m = new Module(bytes);
    assert.deepEqual(
      Module.exports(m).map((e) => `${e.kind}:${e.name}`),
      ['memory:memory', 'global:regate_global_1', 'global:regate_global_3'],
    );
    const instance = new Instance(m, { env: { g: 7 } });
    assert.equal(instance.exports.regate_global_1!.value, 11);
    assert.equal(instance.exports.regate_global_3!.value, 0.5);
    instance.exports.regate_global_1!.value = 12; // writable: that is the point
    assert.equal(instance.exports.regate_global_1!.value, 12);
  });

  it('adds an export section where there is none, in section order', () => {
    const { bytes, globals } = exposeMutableGlobals(module(MEMORY, GLOBALS));
    assert.deepEqual(
      globals.map((g) => g.index),
      [0, 2],
    );
    const m = new Module(bytes);
    assert.deepEqual(
      Module.exports(m).map((e) => e.name),
      ['regate_global_0', 'regate_global_2'],
    );
  });

  it('returns the module unchanged when it has no mutable global', () => {
    const bytes = module(MEMORY, EXPORTS);
    assert.equal(exposeMutableGlobals(bytes).bytes, bytes);
  });

  it('refuses what it cannot read instead of guessing', () => {
    assert.throws(() => exposeMutableGlobals(new Uint8Array([1, 2, 3])), WasmFormatError);
    // A section longer than the file.
    assert.throws(() => exposeMutableGlobals(new Uint8Array([...HEADER, 6, 50, 1])), /unexpected end/);
    // A global initializer with an instruction that is not constant.
    assert.throws(() => exposeMutableGlobals(module(section(6, [1, 0x7f, 0x01, 0x20, 0x00, 0x0b]))), /unsupported instruction 0x20/);
    // An export name that would collide with ours.
    assert.throws(() => exposeMutableGlobals(module(MEMORY, GLOBALS, section(7, [1, ...name('regate_global_1'), 0x02, 0]))), /already exports/);
  });

  it('finds the stack pointer of a module built by opa, which keeps working', async () => {
    const path = await buildBundle({ files: { 'p.rego': 'package p\nimport rego.v1\nallow if input.x == 1\n' }, entrypoints: ['p/allow'] });
    const { wasm } = await readBundle(path);
    const { bytes, globals } = exposeMutableGlobals(wasm);
    assert.equal(globals.length, 1);
    const exported = Module.exports(new Module(bytes)).filter((e) => e.kind === 'global').map((e) => e.name);
    assert.ok(exported.includes(globals[0]!.name));
    // Only the export entry was added (name, kind, index; the section size may take one more byte).
    assert.ok(bytes.length - wasm.length <= globals[0]!.name.length + 4);
  });
});
