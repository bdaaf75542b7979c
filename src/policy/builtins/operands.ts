/**
 * OPA's builtin operand type errors, word for word
 * (`<builtin>: operand 1 must be string but got number`), so a policy fails
 * the same way under `opa eval --strict-builtin-errors` and under regate.
 */

import { RegoNumber } from '../number-text.ts';

/** The Rego type name OPA prints for a value (sets arrive as arrays from wasm). */
export function regoTypeName(v: unknown): string {
  if (typeof v === 'string') return 'string';
  if (typeof v === 'number' || typeof v === 'bigint' || v instanceof RegoNumber) return 'number';
  if (typeof v === 'boolean') return 'boolean';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return 'object';
}

/** `name: operand <pos> must be <want> but got <type>`. */
export function operandTypeError(name: string, pos: number, v: unknown, want: string): Error {
  return new Error(`${name}: operand ${pos} must be ${want} but got ${regoTypeName(v)}`);
}
