#!/usr/bin/env bash
# Apache ActiveMQ 5 from Debian's `activemq` package (and the Java it runs on), for the
# stomp:// transport. Nothing is started here: the tests and `servicewire brokers`
# start private brokers of their own (servicewire.testing.activemq: own data directory
# and config under a temporary directory, STOMP on a free loopback port, no JMX and no
# web console) and stop them. Debian enables no instance of its own
# (/etc/activemq/instances-enabled stays empty), so nothing else listens.
#
# Debian's package serves OpenWire, STOMP and MQTT; it ships no AMQP connector
# (activemq-amqp needs proton-j, which Debian does not package), so the AMQP 1.0
# (amqp10://) transport cannot be tested against it. Said below, not failed.
set -uo pipefail
HOME_DIR=${SERVICEWIRE_ACTIVEMQ_HOME:-/usr/share/activemq}
if [ ! -f "$HOME_DIR/bin/activemq.jar" ] || ! command -v java >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null || { echo "apt-get update failed" >&2; exit 1; }
    apt-get install -y -qq activemq >/dev/null || { echo "apt-get install activemq failed" >&2; exit 1; }
fi
[ -f "$HOME_DIR/bin/activemq.jar" ] || { echo "no $HOME_DIR/bin/activemq.jar" >&2; exit 1; }
java -version 2>&1 | head -1
has_connector() { # the broker finds a connector by this service file in some jar
    python3 - "$HOME_DIR" "$1" <<'PY'
import pathlib, sys, zipfile
home, scheme = pathlib.Path(sys.argv[1]), sys.argv[2]
name = "META-INF/services/org/apache/activemq/transport/" + scheme
for jar in sorted(home.glob("lib/**/*.jar")):
    try:
        if name in zipfile.ZipFile(jar).namelist():
            sys.exit(0)
    except (OSError, zipfile.BadZipFile):
        pass
sys.exit(1)
PY
}
for scheme in stomp amqp; do
    if has_connector "$scheme"; then echo "activemq: $scheme connector present"; else echo "activemq: no $scheme connector"; fi
done
has_connector stomp
