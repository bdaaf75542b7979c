# Sourced by the scripts: puts the pinned toolchain first on PATH and installs
# anything missing (Node 24 when the system node is older than 24, as the tests run on Node 24; opa; npm packages).
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/install-tools.sh"
[ -x "$root/.tools/node/bin/node" ] && export PATH="$root/.tools/node/bin:$PATH"
export PATH="$root/.tools/bin:$PATH"
if [ ! -f "$root/node_modules/.package-lock.json" ] || [ "$root/package-lock.json" -nt "$root/node_modules/.package-lock.json" ]; then
  (cd "$root" && npm ci --no-audit --no-fund) >&2
fi
