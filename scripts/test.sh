#!/usr/bin/env bash
# npm test — the whole suite, exactly what CI runs:
#   type check, policy lint + opa test, policy bundles, then every node:test file
#   (unit, integration, fuzz, OPA conformance) in one runner.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$root"
echo "# node $(node --version), $(opa version | head -1)"
echo "# type check"
npx tsc -p tsconfig.json --noEmit
echo "# policy: opa fmt / check --strict / test"
node scripts/policy-ci.mjs
echo "# policy bundles"
node scripts/build-policy.mjs
echo "# node:test"
node --test --test-concurrency=2 --test-timeout=180000 --test-reporter=spec "${@:-test/**/*.test.ts}"
