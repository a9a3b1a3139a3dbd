#!/usr/bin/env bash
# The suite outside the lock, in a venv of its own (make test-latest / make test-minimum).
#
#   latest   every dependency at its newest release (what a user resolving today gets):
#            ruff, mypy and pytest; a failure here is an upstream change to adapt to,
#            reported on its own instead of breaking main.
#   minimum  the library's requirements at their declared floors (uv's lowest-direct
#            resolution) and the test tools at their locked versions: pytest only,
#            since lint rules belong to the tool versions, not to the library's floors.
#
# Prints which version of each requirement it tested, then a one-line verdict per step;
# exits 1 when any step failed. Extra arguments go to pytest.
set -uo pipefail
cd "$(dirname "$0")/.."
variant=${1:?usage: test_variant.sh latest|minimum [pytest args]}
shift
uv=${SERVICEWIRE_UV:-.tools/bin/uv}
python=${PYTHON:-python3.11}
venv=".venv-$variant"
export UV_PYTHON_DOWNLOADS=never

echo "== $variant: building $venv"
rm -rf "$venv"
"$uv" venv -q --python "$python" "$venv" || exit 1
case "$variant" in
  latest)
    # --refresh: ask the index again instead of trusting cached metadata.
    "$uv" pip install -q --python "$venv/bin/python" --refresh -e '.[dev]' || exit 1
    ;;
  minimum)
    pins=$(mktemp)
    trap 'rm -f "$pins"' EXIT
    python3 scripts/dependencies.py dev-pins >"$pins"
    "$uv" pip install -q --python "$venv/bin/python" --resolution lowest-direct \
      -e '.[all]' -r "$pins" || exit 1
    ;;
  *)
    echo "unknown variant $variant (latest or minimum)"
    exit 2
    ;;
esac
python3 scripts/dependencies.py report "$venv/bin/python"

declare -a verdicts=()
failed=0
step() {
  local name=$1
  shift
  echo "== $variant: $name"
  if "$@"; then
    verdicts+=("passed  $name")
  else
    verdicts+=("FAILED  $name")
    failed=1
  fi
}
if [ "$variant" = latest ]; then
  step "ruff check" "$venv/bin/ruff" check src tests benchmarks examples scripts
  step "mypy" "$venv/bin/mypy"
fi
if [ "$variant" = minimum ]; then
  # Byte-for-byte checks of generated documents hold only for the locked generators.
  step "pytest" "$venv/bin/python" -m pytest -q -p no:cacheprovider -m "not generated_text and not soak" "$@"
else
  step "pytest" "$venv/bin/python" -m pytest -q -p no:cacheprovider "$@"
fi

echo "== $variant: summary"
printf '%s\n' "${verdicts[@]}"
exit $failed
