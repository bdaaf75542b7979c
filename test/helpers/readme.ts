/** Pieces of the repository README for the tests that run its walkthroughs as written. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './regate-process.ts';

/** The README section headed `title` (e.g. `### Using Ory Hydra\n`), up to the next heading. */
export function readmeSection(title: string): string {
  const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
  const start = readme.indexOf(title);
  assert.ok(start >= 0, `README has the section ${title.trim()}`);
  const end = readme.slice(start + title.length).search(/\n##+ /);
  return readme.slice(start, end === -1 ? undefined : start + title.length + end);
}

/** The bodies of the fenced blocks of language `lang` in `text`, in order. */
export function fencedBlocks(text: string, lang: string): string[] {
  return [...text.matchAll(new RegExp('```' + lang + '\\n([\\s\\S]*?)```', 'g'))].map((m) => m[1]!);
}
