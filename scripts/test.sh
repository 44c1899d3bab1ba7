#!/usr/bin/env bash
# Install everything the tests need into .venv, then lint, type-check and run the suite
# (the front end's checks and unit tests first, then pytest).
# Usage: bash scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/_venv.sh
install_into_venv test

# Browser tests use Debian's Chromium (Playwright cannot download its own here).
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "chromium not found: browser tests will be skipped" >&2
  fi
fi

# Front end (js/): the install above already bundled it (hatch_build.py); type-check it
# and run its unit tests with node's own test runner.
[ -d node_modules ] || npm ci --no-audit --no-fund
npm run --silent check
npm test --silent

lint_dirs=(src tests)
[ -d benchmarks ] && lint_dirs+=(benchmarks)
.venv/bin/ruff check "${lint_dirs[@]}"
.venv/bin/mypy
# the layers contract in pyproject.toml: any import that points up fails here
.venv/bin/lint-imports --no-cache
exec .venv/bin/python -m pytest "$@"
