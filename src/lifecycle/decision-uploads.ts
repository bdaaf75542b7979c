/**
 * Decision-log uploaders shared by successive runtime versions.
 *
 * A reload builds a new runtime, but the records buffered for upload belong
 * to the process, not to a policy version: dropping them on every reload
 * would lose events, and two uploaders for one service would double the
 * requests. So one uploader runs per distinct `decision_log.service` config,
 * reference-counted by the runtimes that write to it like {@link LogStreams};
 * it is closed (one last upload round) when the last runtime using it is
 * closed, or at shutdown. A changed service config starts a new uploader and
 * the old one uploads what it holds as it closes.
 */

import type { DecisionLogServiceConfig } from '../config/types.ts';
import { createDecisionUpload, type DecisionUpload, type DecisionUploadOptions } from '../observe/decision-upload.ts';

export class DecisionUploads {
  readonly #open = new Map<string, { upload: DecisionUpload; refs: number }>();
  readonly #options: DecisionUploadOptions;

  constructor(options: DecisionUploadOptions) {
    this.#options = options;
  }

  /** The uploader for `config`, started on first use; `key` is what {@link release} takes. */
  acquire(config: DecisionLogServiceConfig): { key: string; push: (event: string) => void } {
    const key = JSON.stringify(config);
    let entry = this.#open.get(key);
    if (entry === undefined) {
      entry = { upload: createDecisionUpload(config, this.#options), refs: 0 };
      this.#open.set(key, entry);
    }
    entry.refs++;
    const upload = entry.upload;
    return { key, push: (event) => upload.push(event) };
  }

  /** A runtime that acquired `key` was closed; the last one closes the uploader. */
  async release(key: string): Promise<void> {
    const entry = this.#open.get(key);
    if (entry === undefined) return;
    if (--entry.refs > 0) return;
    this.#open.delete(key);
    await entry.upload.close();
  }

  /** Close every uploader, each after one last upload round (shutdown). */
  async closeAll(): Promise<void> {
    const uploads = [...this.#open.values()].map((e) => e.upload);
    this.#open.clear();
    await Promise.all(uploads.map((u) => u.close()));
  }
}
