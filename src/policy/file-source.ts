/**
 * `policy.bundle`: a local bundle file, read at start and watched.
 *
 * The directory is watched, not the file: an atomic update renames a new
 * file over the old one (editors, `mv`, Kubernetes ConfigMaps swapping a
 * `..data` symlink), which a watch on the old inode would never see. Events
 * are debounced, then the file is read whole and hashed: identical content
 * is not handed over twice, and content already refused is not refused (and
 * logged) again. A half-written file fails to decode and is refused; the
 * writer's next write produces another event, and the complete file is read
 * then. Some file systems (NFS, some container bind mounts) deliver no
 * events, so a cheap `stat` every few seconds catches what the watch missed.
 */

import { watch, type FSWatcher, type Stats } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { BundleError } from '../errors.ts';
import type { Bundle } from './bundle.ts';
import { contentHash, decodeVerified, type Intake } from './intake.ts';
import type { BundleVerifier } from './signatures.ts';
import type { BundleSource, SourceTimers } from './source.ts';

/** Tuning of {@link FileBundleSource}. */
export interface FileSourceTiming {
  /** Quiet period after the last file event before reading. */
  readonly debounceMs: number;
  /** Period of the `stat` safety net. */
  readonly recheckMs: number;
}

export class FileBundleSource implements BundleSource {
  readonly #path: string;
  readonly #verifier: BundleVerifier;
  readonly #intake: Intake;
  readonly #timers: SourceTimers;
  readonly #timing: FileSourceTiming;
  #started = false;
  #watcher: FSWatcher | undefined;
  #watchFailed = false;
  #debounce: unknown;
  #recheck: unknown;
  /** The check running now, and whether another was asked for meanwhile. */
  #running: Promise<void> | undefined;
  #again = false;
  #force = false;
  /** `stat` identity of the file last looked at (or the error code that stopped us). */
  #lastSeen: string | undefined;
  #activeHash: string | undefined;
  /** The file last looked at held the active bundle (a check confirmed it): unchanged checks stay confirmations. */
  #current = false;
  /** Hash of the content last refused, or `error:<code>` of the last read failure: reported once. */
  #refusedKey: string | undefined;

  constructor(path: string, verifier: BundleVerifier, intake: Intake, timers: SourceTimers, timing: FileSourceTiming) {
    this.#path = path;
    this.#verifier = verifier;
    this.#intake = intake;
    this.#timers = timers;
    this.#timing = timing;
  }

  start(onBundle: (bundle: Bundle) => void, onError: (err: Error) => void): void {
    if (this.#started || this.#intake.stopped) return;
    this.#started = true;
    this.#intake.bind({ onBundle, onError });
    this.#watch();
    this.#check(true);
    this.#scheduleRecheck();
  }

  ready(): boolean {
    return this.#intake.delivered;
  }

  async stop(): Promise<void> {
    this.#intake.stop();
    this.#timers.clearTimeout(this.#debounce);
    this.#timers.clearTimeout(this.#recheck);
    this.#watcher?.close();
    this.#watcher = undefined;
    await this.#running;
  }

  #watch(): void {
    const base = basename(this.#path);
    try {
      this.#watcher = watch(dirname(this.#path), { persistent: false }, (_event, name) => {
        // Our file, a Kubernetes `..data` swap, or a platform that does not name the file.
        if (name === null || name === base || String(name).startsWith('..')) this.#onEvent();
      });
    } catch (err) {
      // The directory may not exist yet; the safety net re-tries the watch (and says so once).
      this.#watcher = undefined;
      if (!this.#watchFailed) this.#intake.note('cannot watch the bundle directory; falling back to periodic checks', { dir: dirname(this.#path), err: (err as Error).message });
      this.#watchFailed = true;
      return;
    }
    this.#watchFailed = false;
    this.#watcher.on('error', (err) => {
      this.#watcher?.close();
      this.#watcher = undefined;
      this.#intake.note('bundle directory watch failed; falling back to periodic checks until it can be re-established', { dir: dirname(this.#path), err: err.message });
    });
  }

  #onEvent(): void {
    if (this.#intake.stopped) return;
    this.#timers.clearTimeout(this.#debounce);
    this.#debounce = this.#timers.setTimeout(() => this.#check(true), this.#timing.debounceMs);
  }

  #scheduleRecheck(): void {
    if (this.#intake.stopped) return;
    this.#recheck = this.#timers.setTimeout(() => {
      if (this.#watcher === undefined) this.#watch();
      this.#check(false);
      this.#scheduleRecheck();
    }, this.#timing.recheckMs);
  }

  /**
   * Look at the file. `force`: read it even if `stat` says nothing changed
   * (a file event: an in-place rewrite can keep size and, on coarse clocks, mtime).
   * Checks never overlap; one asked for meanwhile runs right after.
   */
  #check(force: boolean): void {
    this.#force ||= force;
    if (this.#running !== undefined) {
      this.#again = true;
      return;
    }
    this.#running = (async () => {
      do {
        this.#again = false;
        const forced = this.#force;
        this.#force = false;
        try {
          await this.#load(forced);
        } catch (err) {
          // A bug, not a bundle problem: report it and keep watching.
          this.#intake.note('bundle file check failed unexpectedly', { err: (err as Error).message });
        }
      } while (this.#again && !this.#intake.stopped);
    })().finally(() => {
      this.#running = undefined;
      // Defensive: a request that slipped in after the loop's last test still runs.
      if (this.#again && !this.#intake.stopped) this.#check(false);
    });
  }

  async #load(force: boolean): Promise<void> {
    const path = this.#path;
    let seen: string;
    let info: Stats | undefined;
    try {
      info = await stat(path);
      seen = `${info.dev}:${info.ino}:${info.size}:${info.mtimeMs}:${info.ctimeMs}`;
    } catch (err) {
      seen = `error:${(err as NodeJS.ErrnoException).code ?? 'unknown'}`;
    }
    if (!force && seen === this.#lastSeen) {
      if (this.#current) this.#intake.checked();
      return;
    }
    this.#lastSeen = seen;
    this.#current = false;
    if (this.#intake.stopped) return;

    let bytes: Buffer;
    try {
      if (info !== undefined && !info.isFile()) throw Object.assign(new Error('not a regular file'), { code: 'ENOTFILE' });
      bytes = await readFile(path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const key = `error:${code ?? 'unknown'}`;
      // Report a given read failure once, not on every event or recheck.
      if (this.#refusedKey === key) return;
      this.#refusedKey = key;
      const why = code === 'ENOENT' ? 'file not found' : (err as Error).message;
      this.#intake.refuse(new BundleError('bundle_unavailable', `${path}: cannot read the policy bundle: ${why}`, { cause: err }), path);
      return;
    }
    const hash = contentHash(bytes);
    if (hash === this.#activeHash) {
      this.#refusedKey = undefined;
      this.#current = true;
      this.#intake.checked();
      return;
    }
    if (hash === this.#refusedKey) return;
    let bundle: Bundle;
    try {
      bundle = await decodeVerified(bytes, path, this.#verifier);
    } catch (err) {
      if (!(err instanceof BundleError)) throw err;
      this.#refusedKey = hash;
      this.#intake.refuse(err, path);
      return;
    }
    if (this.#intake.stopped) return;
    this.#activeHash = hash;
    this.#refusedKey = undefined;
    this.#current = true;
    this.#intake.deliver(bundle, { bytes: bytes.length });
  }
}
