/**
 * Watching the config file for a new version.
 *
 * The directory is watched, not the file: editors and deploy tools replace a
 * file by renaming a new one over it, and a Kubernetes ConfigMap swaps its
 * `..data` symlink; a watch on the old inode would miss both. Events for other
 * files in the directory are ignored (a decision log written beside the config
 * must not keep resetting the debounce timer), the rest are debounced, and only
 * a change of content is reported: touching the file or re-saving it unchanged
 * is no new version.
 */

import { createHash } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import type { Logger } from 'pino';
import type { ReloadConfig } from '../config/types.ts';

/** Watches one config file; calls `onChange` when its content differs from the content last read. */
export class ConfigWatcher {
  readonly #file: string;
  readonly #onChange: () => void;
  readonly #logger: Logger;
  #watcher: FSWatcher | undefined;
  #timer: NodeJS.Timeout | undefined;
  #debounceMs = 0;
  /** Hash of the content last read for a reload (successful or not): a refused file is not retried until it changes. */
  #lastHash = '';

  constructor(file: string, onChange: () => void, logger: Logger) {
    this.#file = file;
    this.#onChange = onChange;
    this.#logger = logger;
  }

  /** Record the content a reload is about to read, so its own write is not reported again. */
  async markRead(): Promise<void> {
    this.#lastHash = (await hashFile(this.#file)) ?? '';
  }

  /** Start, stop or retune the watch as `reload` says. */
  apply(settings: ReloadConfig): void {
    this.#debounceMs = settings.debounce_ms;
    if (!settings.watch) return this.stop();
    if (this.#watcher !== undefined) return;
    const dir = dirname(this.#file);
    const base = basename(this.#file);
    try {
      this.#watcher = watch(dir, { persistent: false }, (_event, name) => {
        if (name !== null && name !== base && !name.startsWith('..')) return;
        clearTimeout(this.#timer);
        this.#timer = setTimeout(() => void this.#check(), this.#debounceMs);
      });
      this.#watcher.on('error', (err) => this.#logger.error({ err: String(err), dir }, 'watching the config file failed; reload with SIGHUP'));
    } catch (err) {
      this.#logger.error({ err: String(err), dir }, 'cannot watch the config file; reload with SIGHUP');
    }
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#watcher?.close();
    this.#watcher = undefined;
  }

  async #check(): Promise<void> {
    const hash = await hashFile(this.#file);
    // Mid-rename the file may briefly not exist; the rename's own event follows.
    if (hash === undefined || hash === this.#lastHash || this.#watcher === undefined) return;
    this.#onChange();
  }
}

async function hashFile(file: string): Promise<string | undefined> {
  try {
    return createHash('sha256').update(await readFile(file)).digest('hex');
  } catch {
    return undefined;
  }
}
