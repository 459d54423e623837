#!/usr/bin/env bash
# The one test command (README: `npm test`): installs what it needs, then type-checks, lints,
# checks formatting and layering, and runs every test with Node's test runner.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "== typecheck"; npx tsc -p tsconfig.json
echo "== lint"; npx eslint --max-warnings=0 .
echo "== format"; npx prettier --check --log-level=warn .
echo "== layers"; node scripts/check-layers.mjs
echo "== tests"; node scripts/run-tests.mjs "$@"
