/**
 * Credential files (`upstreams.<id>.credentials.<name>.value_file`) shared by
 * successive runtime versions, reference-counted like the decision-log
 * streams (log-streams.ts): a hot reload that keeps a credential keeps its
 * watcher and its current secret — a rotation the running version already
 * picked up is not undone by re-reading at reload, and no second watcher is
 * opened. The last runtime that used a file stops its watcher.
 *
 * Keyed by upstream, credential name and path, so metrics and log lines name
 * the credential the operator configured.
 */

import type { PemWatchTiming } from '../tls/file-watch.ts';
import { CredentialFile, type CredentialEvents } from '../upstream/credentials.ts';

export class CredentialFiles {
  readonly #open = new Map<string, { file: CredentialFile; refs: number }>();
  readonly #events: CredentialEvents;
  readonly #timing: PemWatchTiming | undefined;

  constructor(events: CredentialEvents, timing?: PemWatchTiming) {
    this.#events = events;
    this.#timing = timing;
  }

  /**
   * The watched file of credential `name` of `upstream`, read now on first use.
   * @throws CredentialFileError when it is read now and cannot be used.
   */
  acquire(upstream: string, name: string, path: string): { key: string; file: CredentialFile } {
    const key = JSON.stringify([upstream, name, path]);
    let entry = this.#open.get(key);
    if (entry === undefined) {
      const file = new CredentialFile(upstream, name, path, this.#events, { watch: true, ...(this.#timing ? { timing: this.#timing } : {}) });
      entry = { file, refs: 0 };
      this.#open.set(key, entry);
    } else {
      // A reload is a moment to look again (SIGHUP after a rotation): the watcher would, shortly.
      void entry.file.check();
    }
    entry.refs++;
    return { key, file: entry.file };
  }

  /** A runtime that acquired `key` was closed; the last one stops the watcher. */
  release(key: string): void {
    const entry = this.#open.get(key);
    if (entry === undefined) return;
    if (--entry.refs > 0) return;
    this.#open.delete(key);
    entry.file.stop();
  }

  /** Files open now (tests). */
  get size(): number {
    return this.#open.size;
  }

  closeAll(): void {
    for (const e of this.#open.values()) e.file.stop();
    this.#open.clear();
  }
}
