#!/usr/bin/env bash
# npm start — the quickstart: the demo sentiment model API and regate in front of it,
# with examples/quickstart/regate.yaml. Ports, without editing the YAML (that config
# reads the same variables, with these defaults):
#   REGATE_PROXY_PORT (8080), REGATE_ADMIN_PORT (9090), MODEL_API_PORT (8000)
#   e.g. REGATE_PROXY_PORT=18080 MODEL_API_PORT=18000 npm start
#
# Signals sent to this script reach regate: SIGHUP reloads it, SIGTERM / SIGINT stop it
# gracefully; when regate exits, the model API is stopped and the script exits with
# regate's status. If the model API cannot start (its port is taken), the script says so
# in one line and exits 1 before starting regate.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$root"

export REGATE_PROXY_PORT="${REGATE_PROXY_PORT:-8080}" REGATE_ADMIN_PORT="${REGATE_ADMIN_PORT:-9090}" MODEL_API_PORT="${MODEL_API_PORT:-8000}"
api="" regate="" relay="" last_stop=0

# On any exit: nothing the script started outlives it.
stop_all() {
  if [ -n "$regate" ]; then
    kill -TERM "$regate" 2>/dev/null || true
    wait "$regate" 2>/dev/null || true
    regate=""
  fi
  if [ -n "$api" ]; then
    kill -TERM "$api" 2>/dev/null || true
    wait "$api" 2>/dev/null || true
    api=""
  fi
  [ -z "$relay" ] || { kill "$relay" 2>/dev/null || true; relay=""; }
}
trap stop_all EXIT

# Forward to regate. A TERM/INT arriving within a second of the previous one is the same
# stop seen twice (npm forwards Ctrl-C and the terminal sends it too): forwarding both
# would make regate skip draining (a second stop signal forces its exit).
forward() {
  local sig="$1"
  if [ -z "$regate" ]; then
    [ "$sig" = HUP ] && return 0 # nothing to reload yet
    exit 130
  fi
  if [ "$sig" != HUP ]; then
    local now="${EPOCHREALTIME/[.,]/}"
    if [ $((now - last_stop)) -lt 1000000 ]; then return 0; fi
    last_stop="$now"
  fi
  kill -s "$sig" "$regate" 2>/dev/null || true
}
trap 'forward HUP' HUP
trap 'forward TERM' TERM
trap 'forward INT' INT

# Build regate only when dist/ is missing or older than its sources.
if [ ! -f dist/cli/main.js ] || [ -n "$(find src tsconfig.json tsconfig.build.json package.json -newer dist/cli/main.js -print -quit)" ]; then
  npm run -s build
fi
node scripts/build-policy.mjs examples/quickstart

# Background jobs in their own process groups: a Ctrl-C in the terminal reaches this
# script (which forwards it once), not regate and the model API directly.
set -m

# The model API's first stdout line says whether it listens; read it through a FIFO.
fifo="$(mktemp -u "${TMPDIR:-/tmp}/regate-quickstart.XXXXXX")"
mkfifo "$fifo"
node examples/quickstart/model-api.mjs "$MODEL_API_PORT" >"$fifo" &
api=$!
exec 3<"$fifo"
rm -f "$fifo"
first=""
IFS= read -r -t 60 first <&3 || true
case "$first" in
  *'"model API listening"'*)
    printf '%s\n' "$first"
    cat <&3 &
    relay=$!
    exec 3<&-
    ;;
  *)
    wait "$api" 2>/dev/null || true
    api=""
    reason="$(node -e 'let r = {}; try { r = JSON.parse(process.argv[1]) } catch {} console.log(r.code === "EADDRINUSE" ? "the port is already in use" : r.error ?? "it exited before listening")' "$first")"
    echo "quickstart: the model API cannot listen on 127.0.0.1:$MODEL_API_PORT: $reason; choose another port: MODEL_API_PORT=<port> npm start" >&2
    exit 1
    ;;
esac

cat >&2 <<MSG

regate quickstart: model API on http://127.0.0.1:$MODEL_API_PORT, regate on http://127.0.0.1:$REGATE_PROXY_PORT,
metrics on http://127.0.0.1:$REGATE_ADMIN_PORT/metrics. Decision logs follow on stdout. In another shell:

  TOKEN=\$(npm run -s regate -- token --config examples/quickstart/regate.yaml --sub alice --role data_scientist)
  curl -s -H "Authorization: Bearer \$TOKEN" -H 'content-type: application/json' \\
       -d '{"text":"I love this model"}' http://127.0.0.1:$REGATE_PROXY_PORT/v1/models/sentiment/predict

MSG

node dist/cli/main.js serve --config examples/quickstart/regate.yaml &
regate=$!

# Wait for regate; a trapped signal interrupts `wait` (the trap forwards it) and we wait
# again. If the model API dies first, stop regate: it would proxy to nothing.
code=""
while [ -z "$code" ]; do
  done_pid=""
  status=0
  if [ -n "$api" ]; then
    wait -n -p done_pid "$regate" "$api" || status=$?
  else
    wait -n -p done_pid "$regate" || status=$?
  fi
  done_pid="${done_pid:-}"
  if [ "$done_pid" = "$regate" ]; then
    code=$status
  elif [ -n "$api" ] && [ "$done_pid" = "$api" ]; then
    api=""
    echo "quickstart: the model API exited (status $status); stopping regate" >&2
    kill -TERM "$regate" 2>/dev/null || true
  fi
done
regate=""
exit "$code"
