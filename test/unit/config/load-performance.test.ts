/**
 * The config keys of issue 5: `workers` (cluster mode) and `token_cache`.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseConfig } from '../../../src/config/load.ts';
import { configProblems } from '../../helpers/config-problems.ts';

const FILE = '/etc/regate/regate.yaml';
const MINIMAL = `upstreams:
  app:
    url: http://127.0.0.1:3000
policy:
  bundle: bundle.tar.gz
  default_entrypoint: regate/authz/decision
routes:
  - id: public
    match: {methods: [GET], path: /}
    upstream: app
    auth: none
`;

const problems = (text: string): string[] => configProblems(text, FILE);

describe('workers', () => {
  it('defaults to one process', () => {
    assert.equal(parseConfig(MINIMAL, FILE).workers, 1);
  });

  it('accepts a count or auto', () => {
    assert.equal(parseConfig(`${MINIMAL}workers: 4\n`, FILE).workers, 4);
    assert.equal(parseConfig(`${MINIMAL}workers: auto\n`, FILE).workers, 'auto');
  });

  it('refuses anything else with one precise message at the key', () => {
    for (const [value, shown] of [
      ['0', '0'],
      ['-2', '-2'],
      ['1.5', '1.5'],
      ['"4"', '"4"'],
      ['max', '"max"'],
      ['[2]', 'a list'],
    ]) {
      const found = problems(`${MINIMAL}workers: ${value}\n`);
      assert.deepEqual(found, [`${FILE}:12:10: /workers: must be a positive integer or "auto", got ${shown}`], `workers: ${value}`);
    }
  });
});

describe('token_cache', () => {
  it('is on by default with 10000 entries', () => {
    assert.deepEqual(parseConfig(MINIMAL, FILE).token_cache, { max_entries: 10_000 });
  });

  it('takes a bound, 0 disabling it', () => {
    assert.equal(parseConfig(`${MINIMAL}token_cache: {max_entries: 0}\n`, FILE).token_cache.max_entries, 0);
    assert.equal(parseConfig(`${MINIMAL}token_cache: {max_entries: 500}\n`, FILE).token_cache.max_entries, 500);
  });

  it('refuses negative or fractional bounds and unknown keys', () => {
    assert.match(problems(`${MINIMAL}token_cache: {max_entries: -1}\n`).join('\n'), /\/token_cache\/max_entries: must be between 0 and 10000000, got -1/);
    assert.match(problems(`${MINIMAL}token_cache: {max_entries: 2.5}\n`).join('\n'), /\/token_cache\/max_entries: must be an integer/);
    assert.match(problems(`${MINIMAL}token_cache: {ttl: 60}\n`).join('\n'), /\/token_cache\/ttl: unknown key "ttl"/);
  });
});
