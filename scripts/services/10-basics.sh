#!/usr/bin/env bash
# Start any of the machine's standard services that is down (the commands the
# machine itself uses at boot).
set -uo pipefail
. "$(dirname "$0")/lib.sh"
port_open 5432 || pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
port_open 6379 || redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
    --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
# RabbitMQ is started by 40-rabbitmq.sh (with its open-files limit raised).
port_open 1883 || mosquitto -d -c /etc/mosquitto/mosquitto.conf
port_open 4222 || start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
    -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
port_open 3306 || start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
for p in 5432 6379 1883 4222 3306; do
    wait_port "$p" 60 || echo "port $p still closed" >&2
done
exit 0
