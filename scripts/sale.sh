#!/usr/bin/env bash
# Set up, then run a real flash sale on embedded defaults (the harness starts its own Redis)
# and print the verdict. Extra arguments go to `oversold run`, e.g. --strategy naive.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/oversold run scenarios/flash_sale.yaml "$@"
