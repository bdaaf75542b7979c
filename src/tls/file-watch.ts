/**
 * Watching a small set of PEM files (a certificate, its key, a CA bundle) for
 * new content.
 *
 * Each file's directory is watched, not the file: cert-manager, Vault agent
 * and Kubernetes Secret volumes replace certificates by renaming a new file
 * (or swapping a `..data` symlink) into place, which a watch on the old inode
 * would never see. Events are debounced, then every file of the set is read
 * and the set is handed over only when its content changed; a periodic
 * re-read catches file systems that deliver no events (NFS, some bind
 * mounts). A certificate and its key are replaced by two writes: the
 * debounce lets both land, and a set that does not fit together yet is
 * refused by the caller and read again at the next event or re-read.
 */

import { createHash } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';

/** Tuning of {@link PemFileWatcher}; defaults suit production. */
export interface PemWatchTiming {
  /** Quiet period after the last file event before reading. Default 250. */
  readonly debounceMs?: number;
  /** Period of the re-read safety net. Default 10000. */
  readonly recheckMs?: number;
}

/** What a changed set delivers: each file's bytes, in the order the paths were given. */
export type PemFiles = readonly Buffer[];

/**
 * Calls `onChange` with the files' new content whenever it differs from the
 * content last delivered (or given as the starting point). A read failure
 * (a file briefly missing mid-rename) is reported through `onError`, once
 * per distinct failure, and retried at the next event or re-read.
 */
export class PemFileWatcher {
  readonly #paths: readonly string[];
  readonly #onChange: (files: PemFiles) => void;
  readonly #onError: (err: Error) => void;
  readonly #debounceMs: number;
  readonly #recheckMs: number;
  readonly #watchers: FSWatcher[] = [];
  #debounce: NodeJS.Timeout | undefined;
  #recheck: NodeJS.Timeout | undefined;
  #lastHash: string;
  #lastError = '';
  #running = false;
  #again = false;
  #stopped = false;

  constructor(paths: readonly string[], initial: PemFiles, onChange: (files: PemFiles) => void, onError: (err: Error) => void, timing: PemWatchTiming = {}) {
    this.#paths = paths;
    this.#onChange = onChange;
    this.#onError = onError;
    this.#debounceMs = timing.debounceMs ?? 250;
    this.#recheckMs = timing.recheckMs ?? 10_000;
    this.#lastHash = hashOf(initial);
  }

  /** Start watching. Never throws: a directory that cannot be watched is left to the re-read. */
  start(): void {
    const byDir = new Map<string, Set<string>>();
    for (const p of this.#paths) {
      const dir = dirname(p);
      if (!byDir.has(dir)) byDir.set(dir, new Set());
      byDir.get(dir)!.add(basename(p));
    }
    for (const [dir, names] of byDir) {
      try {
        const w = watch(dir, { persistent: false }, (_event, name) => {
          // `..data` (Kubernetes) and unnamed events may stand for any file of the set.
          if (name !== null && !names.has(name) && !name.startsWith('..')) return;
          this.#schedule();
        });
        w.on('error', (err) => this.#onError(err));
        this.#watchers.push(w);
      } catch (err) {
        this.#onError(err as Error);
      }
    }
    this.#scheduleRecheck();
  }

  /** Read the files now (tests, a signal). */
  check(): Promise<void> {
    return this.#read();
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#debounce);
    clearTimeout(this.#recheck);
    for (const w of this.#watchers) w.close();
    this.#watchers.length = 0;
  }

  #schedule(): void {
    if (this.#stopped) return;
    clearTimeout(this.#debounce);
    this.#debounce = setTimeout(() => void this.#read(), this.#debounceMs);
    this.#debounce.unref();
  }

  #scheduleRecheck(): void {
    if (this.#stopped) return;
    this.#recheck = setTimeout(() => {
      void this.#read().finally(() => this.#scheduleRecheck());
    }, this.#recheckMs);
    this.#recheck.unref();
  }

  async #read(): Promise<void> {
    if (this.#stopped) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = true;
    try {
      do {
        this.#again = false;
        let files: Buffer[];
        try {
          files = await Promise.all(this.#paths.map((p) => readFile(p)));
        } catch (err) {
          const key = String((err as NodeJS.ErrnoException).code ?? err);
          if (key !== this.#lastError) {
            this.#lastError = key;
            this.#onError(err as Error);
          }
          continue;
        }
        this.#lastError = '';
        const hash = hashOf(files);
        if (hash === this.#lastHash || this.#stopped) continue;
        this.#lastHash = hash;
        this.#onChange(files);
      } while (this.#again && !this.#stopped);
    } finally {
      this.#running = false;
    }
  }
}

function hashOf(files: PemFiles): string {
  const h = createHash('sha256');
  for (const f of files) h.update(createHash('sha256').update(f).digest());
  return h.digest('hex');
}
