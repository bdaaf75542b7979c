/** `regate eval` — implemented with the least-privilege examples (issue 3). */
export async function runEval(_argv: string[]): Promise<number> {
  process.stderr.write('regate eval: not available yet\n');
  return 2;
}
