#!/usr/bin/env bash
# PostgreSQL for the outbox, inbox and WAL-tailing relay: wal_level=logical (needs a
# restart once), enough replication slots and WAL senders for the relay tests.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
PSQL=(psql -h 127.0.0.1 -U postgres -d postgres -Atq)
wait_port 5432 30 || { echo "postgres is down" >&2; exit 1; }
for i in $(seq 1 50); do "${PSQL[@]}" -c "select 1" >/dev/null 2>&1 && break; sleep 0.2; done
level=$("${PSQL[@]}" -c "show wal_level")
if [ "$level" != "logical" ]; then
    echo "setting wal_level=logical and restarting PostgreSQL"
    "${PSQL[@]}" -c "alter system set wal_level = logical"
    "${PSQL[@]}" -c "alter system set max_replication_slots = 20"
    "${PSQL[@]}" -c "alter system set max_wal_senders = 20"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main restart
    wait_port 5432 60
    for i in $(seq 1 100); do "${PSQL[@]}" -c "select 1" >/dev/null 2>&1 && break; sleep 0.2; done
fi
# One database per FTGO service, next to the machine's own `test` database.
for db in ftgo_order ftgo_consumer ftgo_restaurant; do
    "${PSQL[@]}" -c "select 1 from pg_database where datname = '$db'" | grep -q 1 \
        || "${PSQL[@]}" -c "create database $db"
done
echo "postgres: wal_level=$("${PSQL[@]}" -c "show wal_level")"
