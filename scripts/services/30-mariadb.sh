#!/usr/bin/env bash
# MariaDB for the outbox and the binlog-tailing relay: binary log on, ROW format with
# full row images and full row metadata (column names in the binlog), server id set.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
CNF=/etc/mysql/my.cnf
MARK="# servicewire: binlog for the relay"
wait_port 3306 30 || { echo "mariadb is down" >&2; exit 1; }
q() { mariadb -uroot -h127.0.0.1 -N -B -e "$1"; }
for i in $(seq 1 100); do q "select 1" >/dev/null 2>&1 && break; sleep 0.2; done
state=$(q "select concat(@@log_bin, @@binlog_format, @@binlog_row_metadata)" 2>/dev/null || echo "")
if [ "$state" != "1ROWFULL" ] && [ "$state" != "ONROWFULL" ]; then
    if ! grep -q "$MARK" "$CNF"; then
        cat >> "$CNF" <<CONF

[mysqld]
$MARK
server-id = 1
log-bin = /var/lib/mysql/mariadb-bin
binlog-format = ROW
binlog-row-image = FULL
binlog-row-metadata = FULL
expire-logs-days = 1
max-connections = 400
CONF
    fi
    echo "enabling the MariaDB binlog and restarting MariaDB"
    mariadb-admin -uroot -h127.0.0.1 shutdown || true
    # wait for the process itself to end, not just its port
    for i in $(seq 1 300); do pgrep -x mariadbd >/dev/null || break; sleep 0.1; done
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
    wait_port 3306 60
    for i in $(seq 1 100); do q "select 1" >/dev/null 2>&1 && break; sleep 0.2; done
fi
for db in ftgo_order ftgo_consumer ftgo_restaurant; do q "create database if not exists $db"; done
echo "mariadb: $(q "select concat('log_bin=', @@log_bin, ' format=', @@binlog_format, ' metadata=', @@binlog_row_metadata)")"
