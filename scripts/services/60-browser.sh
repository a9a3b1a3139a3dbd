#!/usr/bin/env bash
# Headless Chromium from Debian's packages, for the web console's browser test
# (tests/console). Playwright drives it via executable_path; Playwright's own browser
# downloads are never used. Quick when chromium is already installed.
set -uo pipefail
if [ -x /usr/bin/chromium ]; then
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null || { echo "apt-get update failed" >&2; exit 1; }
apt-get install -y -qq --no-install-recommends chromium >/dev/null \
    || { echo "apt-get install chromium failed" >&2; exit 1; }
[ -x /usr/bin/chromium ]
