import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ConfigError, ConfigErrors } from '../errors.ts';

/** Parse argv strictly: an unknown flag is an error, not ignored. */
export function parse<T extends NonNullable<ParseArgsConfig['options']>>(argv: string[], options: T, usage: string) {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: false });
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\n\n${usage}`);
  }
}

/** A command-line mistake: printed with the usage, exit 2. */
export class UsageError extends Error {}

/**
 * Print config problems one per line (file: key path: problem) and return the
 * exit code for them; rethrow anything else.
 */
export function reportConfigErrors(err: unknown, write: (s: string) => void = (s) => process.stderr.write(s)): number {
  if (err instanceof ConfigErrors) {
    write(`invalid configuration (${err.errors.length} problem${err.errors.length === 1 ? '' : 's'}):\n`);
    for (const e of err.errors) write(`  ${e.message}\n`);
    return 1;
  }
  if (err instanceof ConfigError) {
    write(`invalid configuration:\n  ${err.message}\n`);
    return 1;
  }
  if (err instanceof UsageError) {
    write(`regate: ${err.message}\n`);
    return 2;
  }
  throw err;
}
