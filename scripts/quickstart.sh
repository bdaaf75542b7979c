#!/usr/bin/env bash
# npm start — the quickstart: the demo sentiment model API on :8000 and regate in
# front of it on :8080 (admin/metrics on :9090), with examples/quickstart/regate.yaml.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$root"
npm run -s build
node scripts/build-policy.mjs examples/quickstart
node examples/quickstart/model-api.mjs 8000 &
api=$!
trap 'kill $api 2>/dev/null || true' EXIT
cat >&2 <<'MSG'

regate quickstart: model API on http://127.0.0.1:8000, regate on http://127.0.0.1:8080,
metrics on http://127.0.0.1:9090/metrics. Decision logs follow on stdout. In another shell:

  TOKEN=$(npm run -s regate -- token --config examples/quickstart/regate.yaml --sub alice --role data_scientist)
  curl -s -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \
       -d '{"text":"I love this model"}' http://127.0.0.1:8080/v1/models/sentiment/predict

MSG
node dist/cli/main.js serve --config examples/quickstart/regate.yaml
