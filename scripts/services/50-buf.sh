#!/usr/bin/env bash
# The buf CLI, for tests/evolution/test_buf_agreement.py: our protobuf rules are checked
# against `buf breaking` (FILE rule set). buf comes from the npm registry, pinned, into
# .tools/buf (node_modules/.bin/buf runs the platform's binary package). Quick when the
# pinned version is already there.
set -uo pipefail
cd "$(dirname "$0")/../.."
BUF_VERSION=1.75.0
prefix=.tools/buf
bin=$prefix/node_modules/.bin/buf
if [ -x "$bin" ] && [ "$("$bin" --version 2>/dev/null)" = "$BUF_VERSION" ]; then
    echo "buf $BUF_VERSION at $bin"
    exit 0
fi
command -v npm >/dev/null 2>&1 || { echo "npm is needed to install buf" >&2; exit 1; }
mkdir -p "$prefix"
npm install --prefix "$prefix" --no-save --no-audit --no-fund --loglevel=error \
    "@bufbuild/buf@$BUF_VERSION" || exit 1
[ "$("$bin" --version)" = "$BUF_VERSION" ] || { echo "buf is not $BUF_VERSION" >&2; exit 1; }
echo "buf $BUF_VERSION at $bin"
