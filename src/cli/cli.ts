/**
 * regate command line (loaded by main.ts once the Node version is known to be supported).
 *
 *   regate serve --config FILE     run the proxy (and the admin listener)
 *   regate check --config FILE     validate config, policy bundle and entrypoints; exit 0/1
 *   regate eval  --config FILE ... run one request description through routing, input and policy
 *   regate token --config FILE ... mint a development token (quickstart keys only)
 *   regate exchange --url URL ...  exchange a token at a regate broker (RFC 8693)
 *   regate keys generate ...       a signing key pair: private JWK + public JWKS
 *   regate version
 */
import { runCheck } from './check.ts';
import { runEval } from './eval.ts';
import { runExchange } from './exchange.ts';
import { runKeys } from './keys.ts';
import { runServe } from './serve.ts';
import { runToken } from './token.ts';
import { VERSION } from '../version.ts';

const USAGE = `usage: regate <command> [options]

commands:
  serve  --config FILE              run the proxy
  check  --config FILE              validate config, policy bundle and entrypoints (exit 0 ok, 1 invalid, 2 usage)
  eval   --config FILE [request]    evaluate one request offline and explain the decision (regate eval --help)
  token  --config FILE [claims]     mint a development token with the example's key (regate token --help)
  keys   generate --alg A --kid K   generate a signing key pair: private JWK + public JWKS (regate keys --help)
  exchange --url URL --subject-token T  exchange a token at a regate broker, print the issued one (regate exchange --help)
  version                           print the version
`;

const commands: Record<string, (argv: string[]) => Promise<number>> = {
  serve: runServe,
  check: runCheck,
  eval: runEval,
  token: runToken,
  keys: runKeys,
  exchange: runExchange,
  version: async () => {
    // The zone data time.* builtins and input.time.local use (Node's ICU); OPA reads Go's.
    process.stdout.write(`regate ${VERSION}\ntz database ${process.versions.tz ?? 'unknown'} (ICU ${process.versions.icu ?? 'unknown'})\n`);
    return 0;
  },
};

async function main(argv: string[]): Promise<number> {
  process.title = 'regate'; // so `pkill -HUP -x regate` finds the process
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(USAGE);
    return name ? 0 : 2;
  }
  const command = commands[name];
  if (!command) {
    process.stderr.write(`regate: unknown command "${name}"\n\n${USAGE}`);
    return 2;
  }
  return command(rest);
}

/** Run the command in `argv` (process.argv without node and the script); sets the exit code. */
export function run(argv: string[]): void {
  main(argv).then(
    (code) => {
      if (code !== 0 || argv[0] !== 'serve') process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`regate: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
