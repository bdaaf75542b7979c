/** Did-you-mean suggestions for config keys and values. */

/**
 * The candidate within edit distance 2 of `input` (after folding case and
 * camelCase → snake_case, so `jwksUrl` finds `jwks_url`), if any.
 */
export function closest(input: string, candidates: readonly string[]): string | undefined {
  const fold = (s: string): string => s.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase().replaceAll('-', '_');
  let best: string | undefined;
  let bestDistance = 3;
  for (const c of candidates) {
    const d = Math.min(levenshtein(input, c), levenshtein(fold(input), fold(c)));
    // A 2-letter key is 2 edits from every other 2-letter key: require a real resemblance.
    if (d < bestDistance && d < Math.max(input.length, c.length) / 2) {
      best = c;
      bestDistance = d;
    }
  }
  return best;
}

function levenshtein(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length]!;
}
