/**
 * Make a wasm module's private mutable globals restorable from JavaScript.
 *
 * An OPA policy module keeps its C stack pointer (`__stack_pointer`, the
 * first global wasm-ld defines) in a mutable global it does not export. A
 * function's epilogue puts the pointer back; an evaluation that aborts (a
 * thrown `opa_abort`, a host builtin that throws, a trap) unwinds through
 * the wasm frames without running any epilogue, so every abort leaks its
 * frames' stack. The stack is 64 KiB: after a few hundred to a few thousand
 * aborts every later evaluation traps with "memory access out of bounds"
 * (issue 9). The ABI has no call to reset it, so {@link exposeMutableGlobals}
 * rewrites the binary before it is compiled: one extra export per mutable
 * global the module defines, under a name the module cannot already use.
 * Nothing else in the module changes, so it behaves exactly as before.
 *
 * Only the section framing, the import and global sections and the export
 * section are read (WebAssembly Core Specification 2.0, §5.5). A module this
 * cannot read is refused with a precise message rather than half-rewritten.
 */

/** A defined (not imported) mutable global, exported as `name`. */
export interface ExposedGlobal {
  /** Index in the module's global index space (imported globals first). */
  readonly index: number;
  readonly name: string;
}

export interface ExposedModule {
  /** The rewritten binary. */
  readonly bytes: Uint8Array;
  readonly globals: readonly ExposedGlobal[];
}

/** Prefix of the added export names; `regate_global_<index>`. */
export const EXPOSED_GLOBAL_PREFIX = 'regate_global_';

const SECTION_IMPORT = 2;
const SECTION_GLOBAL = 6;
const SECTION_EXPORT = 7;
const EXTERN_GLOBAL = 0x03;
const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/** Thrown for a binary this reader does not understand; the caller reports it as a ConfigError. */
export class WasmFormatError extends Error {}

class Reader {
  readonly bytes: Uint8Array;
  readonly end: number;
  pos: number;
  constructor(bytes: Uint8Array, pos: number, end: number) {
    this.bytes = bytes;
    this.pos = pos;
    this.end = end;
  }

  byte(): number {
    if (this.pos >= this.end) throw new WasmFormatError(`unexpected end of section at byte ${this.pos}`);
    return this.bytes[this.pos++]!;
  }

  /** Unsigned LEB128, at most 32 bits. */
  u32(): number {
    let result = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      const b = this.byte();
      result += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) {
        if (result > 0xffffffff) break;
        return result;
      }
    }
    throw new WasmFormatError(`invalid u32 at byte ${this.pos}`);
  }

  /** Skip a signed LEB128 of at most `bits` bits. */
  skipSigned(bits: number): void {
    for (let i = 0; i < Math.ceil(bits / 7); i++) if ((this.byte() & 0x80) === 0) return;
    throw new WasmFormatError(`invalid signed integer at byte ${this.pos}`);
  }

  skip(n: number): void {
    if (this.pos + n > this.end) throw new WasmFormatError(`unexpected end of section at byte ${this.pos}`);
    this.pos += n;
  }

  name(): string {
    const length = this.u32();
    const start = this.pos;
    this.skip(length);
    return decoder.decode(this.bytes.subarray(start, start + length));
  }

  /** A constant expression (a global's initializer), up to its `end`. */
  skipConstExpr(): void {
    for (;;) {
      const op = this.byte();
      switch (op) {
        case 0x0b: // end
          return;
        case 0x41: // i32.const
          this.skipSigned(32);
          break;
        case 0x42: // i64.const
          this.skipSigned(64);
          break;
        case 0x43: // f32.const
          this.skip(4);
          break;
        case 0x44: // f64.const
          this.skip(8);
          break;
        case 0x23: // global.get
        case 0xd2: // ref.func
          this.u32();
          break;
        case 0xd0: // ref.null t
          this.byte();
          break;
        case 0x6a: // i32.add, sub, mul (extended constant expressions)
        case 0x6b:
        case 0x6c:
        case 0x7c: // i64.add, sub, mul
        case 0x7d:
        case 0x7e:
          break;
        default:
          throw new WasmFormatError(`unsupported instruction 0x${op.toString(16)} in a global initializer at byte ${this.pos - 1}`);
      }
    }
  }
}

/** Skip a value type; only the single-byte ones (numbers, vectors, funcref, externref) are supported. */
function skipValType(r: Reader): void {
  const t = r.byte();
  if (![0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f].includes(t)) throw new WasmFormatError(`unsupported value type 0x${t.toString(16)} at byte ${r.pos - 1}`);
}

function skipLimits(r: Reader): void {
  const flags = r.byte();
  r.u32();
  if (flags & 0x01) r.u32();
}

function uleb(value: number): number[] {
  const out: number[] = [];
  do {
    let b = value & 0x7f;
    value = Math.floor(value / 128);
    if (value !== 0) b |= 0x80;
    out.push(b);
  } while (value !== 0);
  return out;
}

interface Section {
  readonly id: number;
  /** Offset of the id byte. */
  readonly start: number;
  /** Offset of the payload and one past its end. */
  readonly payload: number;
  readonly end: number;
}

function sections(bytes: Uint8Array): Section[] {
  if (bytes.length < 8 || bytes[0] !== 0x00 || bytes[1] !== 0x61 || bytes[2] !== 0x73 || bytes[3] !== 0x6d) throw new WasmFormatError('not a WebAssembly binary');
  const out: Section[] = [];
  const r = new Reader(bytes, 8, bytes.length);
  while (r.pos < bytes.length) {
    const start = r.pos;
    const id = r.byte();
    const size = r.u32();
    const payload = r.pos;
    r.skip(size);
    out.push({ id, start, payload, end: r.pos });
  }
  return out;
}

/** Count imported globals (they come first in the global index space) and collect every export name. */
function importedGlobals(bytes: Uint8Array, section: Section | undefined): number {
  if (section === undefined) return 0;
  const r = new Reader(bytes, section.payload, section.end);
  let globals = 0;
  for (let n = r.u32(); n > 0; n--) {
    r.name();
    r.name();
    const kind = r.byte();
    if (kind === 0x00) r.u32(); // function: type index
    else if (kind === 0x01) {
      skipValType(r); // table: reftype + limits
      skipLimits(r);
    } else if (kind === 0x02) skipLimits(r);
    else if (kind === EXTERN_GLOBAL) {
      skipValType(r);
      r.byte();
      globals++;
    } else if (kind === 0x04) {
      r.byte(); // tag: attribute + type index
      r.u32();
    } else throw new WasmFormatError(`unsupported import kind ${kind}`);
  }
  return globals;
}

/**
 * Return `bytes` with an export `regate_global_<index>` for every mutable
 * global the module defines, and the list of them. Throws
 * {@link WasmFormatError} for a binary it cannot read.
 */
export function exposeMutableGlobals(bytes: Uint8Array): ExposedModule {
  const all = sections(bytes);
  const byId = (id: number): Section | undefined => all.find((s) => s.id === id);
  const firstGlobal = importedGlobals(bytes, byId(SECTION_IMPORT));

  const globals: ExposedGlobal[] = [];
  const globalSection = byId(SECTION_GLOBAL);
  if (globalSection !== undefined) {
    const r = new Reader(bytes, globalSection.payload, globalSection.end);
    const count = r.u32();
    for (let i = 0; i < count; i++) {
      skipValType(r);
      const mutable = r.byte() === 0x01;
      r.skipConstExpr();
      if (mutable) globals.push({ index: firstGlobal + i, name: `${EXPOSED_GLOBAL_PREFIX}${firstGlobal + i}` });
    }
  }
  if (globals.length === 0) return { bytes, globals };

  // The export section: the old entries, then ours.
  const exportSection = byId(SECTION_EXPORT);
  const oldEntries: Uint8Array[] = [];
  let oldCount = 0;
  if (exportSection !== undefined) {
    const r = new Reader(bytes, exportSection.payload, exportSection.end);
    oldCount = r.u32();
    const entriesStart = r.pos;
    for (let i = 0; i < oldCount; i++) {
      if (r.name().startsWith(EXPOSED_GLOBAL_PREFIX)) throw new WasmFormatError(`the module already exports a name starting with "${EXPOSED_GLOBAL_PREFIX}"`);
      r.byte();
      r.u32();
    }
    oldEntries.push(bytes.subarray(entriesStart, exportSection.end));
  }
  const added: number[] = [];
  for (const g of globals) {
    const name = encoder.encode(g.name);
    added.push(...uleb(name.length), ...name, EXTERN_GLOBAL, ...uleb(g.index));
  }
  const countBytes = uleb(oldCount + globals.length);
  const payloadLength = countBytes.length + oldEntries.reduce((n, e) => n + e.length, 0) + added.length;
  const header = [SECTION_EXPORT, ...uleb(payloadLength)];

  // Where the section goes: in place of the old one, else before the first
  // section that must follow exports (start, element, data count, code, data).
  const at = exportSection ?? all.find((s) => [8, 9, 10, 11, 12].includes(s.id));
  const before = at === undefined ? bytes.length : at.start;
  const after = exportSection !== undefined ? exportSection.end : before;
  const out = new Uint8Array(before + header.length + payloadLength + (bytes.length - after));
  let o = 0;
  const put = (chunk: ArrayLike<number>): void => {
    out.set(chunk, o);
    o += chunk.length;
  };
  put(bytes.subarray(0, before));
  put(header);
  put(countBytes);
  for (const e of oldEntries) put(e);
  put(added);
  put(bytes.subarray(after));
  return { bytes: out, globals };
}
