#!/usr/bin/env bash
# npm run regate -- <command> ...: the built CLI (dist/), on the pinned Node when
# scripts/install-tools.sh installed one (the system node may be older than 22.19.0).
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
node="$root/.tools/node/bin/node"
[ -x "$node" ] || node=node
if [ ! -f "$root/dist/cli/main.js" ]; then
  echo "regate: not built yet; run: npm run build" >&2
  exit 1
fi
exec "$node" "$root/dist/cli/main.js" "$@"
