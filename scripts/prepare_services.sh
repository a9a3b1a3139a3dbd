#!/usr/bin/env bash
# Prepare the local services the tests use: start any that is down and enable what the
# tests need. Each service has its own script in scripts/services/ (one concern each);
# they are idempotent and quick when everything is already in place.
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
for script in scripts/services/[0-9]*.sh; do
    [ -e "$script" ] || continue
    echo "== $(basename "$script" .sh)"
    if ! bash "$script"; then
        echo "!! $(basename "$script") could not prepare its service" >&2
        status=1
    fi
done
# A service that cannot be prepared is reported here; the tests that need it then skip,
# or fail under SERVICEWIRE_REQUIRE_SERVICES=1.
exit 0
