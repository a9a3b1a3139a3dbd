#!/usr/bin/env bash
# Run every benchmark in benchmarks/ in turn; each prints its figures and ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
for bench in benchmarks/*.py; do
    echo "=== $bench"
    .venv/bin/python "$bench"
done
