/** The config loader's refusals as messages, for the config-key tests (test/unit/config/). */
import assert from 'node:assert/strict';
import { parseConfig } from '../../src/config/load.ts';
import { ConfigErrors } from '../../src/errors.ts';

/** The message of every problem `parseConfig` finds in `text` (as loaded from `file`); fails when it loads. */
export function configProblems(text: string, file: string): string[] {
  try {
    parseConfig(text, file);
  } catch (err) {
    assert.ok(err instanceof ConfigErrors, String(err));
    return err.errors.map((e) => e.message);
  }
  assert.fail('expected the config to be refused');
}
