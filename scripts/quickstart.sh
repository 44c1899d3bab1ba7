#!/usr/bin/env bash
# Install promptstate into .venv, run the offline demo into a local DuckDB file, execute
# notebooks/quickstart.ipynb on the echo provider, then open it in JupyterLab.
# Usage: bash scripts/quickstart.sh [--no-lab]
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/_venv.sh
install_into_venv notebook

mkdir -p build
(cd build && ../.venv/bin/promptstate demo --db promptstate-demo.duckdb)
.venv/bin/jupyter nbconvert --to notebook --execute notebooks/quickstart.ipynb \
  --ExecutePreprocessor.store_widget_state=True \
  --output-dir build --output quickstart.executed.ipynb
echo "executed notebook: build/quickstart.executed.ipynb"

if [ "${1:-}" != "--no-lab" ] && [ -z "${CI:-}" ]; then
  exec .venv/bin/jupyter lab notebooks/quickstart.ipynb
fi
