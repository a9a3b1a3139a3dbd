#!/usr/bin/env bash
# RabbitMQ for the amqp:// transport: the shared broker answers on 5672 with the
# quorum_queue feature flag on (durable shard queues), and the server binary the
# restart test needs for its private node (own name, ports and data dir) is present.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
wait_port 5672 60 || { echo "rabbitmq is down" >&2; exit 1; }

# The test broker is disposable. Test runs leave quorum queues behind (each group of
# a channel is 16 of them), and a node carrying thousands of Ra clusters can stop
# answering AMQP handshakes altogether. So: if the node does not complete a handshake
# within 15 s, or holds more than 1,500 queues, wipe it and start it fresh.
handshake_ok() {
    timeout 15 bash -c 'exec 3<>/dev/tcp/127.0.0.1/5672; printf "AMQP\x00\x00\x09\x01" >&3;
        head -c 1 <&3 | od -An -tx1 | grep -q 01' 2>/dev/null
}
fresh_node() {
    echo "rabbitmq: $1; wiping the test node and starting it fresh" >&2
    timeout 30 rabbitmqctl -q stop >/dev/null 2>&1 || true
    pkill -9 -f 'beam.smp.*rabbit' 2>/dev/null || true
    sleep 1
    rm -rf /var/lib/rabbitmq/mnesia/rabbit@localhost /var/lib/rabbitmq/mnesia/rabbit@localhost-*
    rm -f /var/lib/rabbitmq/mnesia/rabbit@localhost.pid
    rabbitmq-server -detached
    for _ in $(seq 1 90); do handshake_ok && return 0; sleep 1; done
    echo "rabbitmq did not come back" >&2
    return 1
}
if ! handshake_ok; then
    fresh_node "no AMQP handshake within 15 s" || exit 1
else
    queues=$(timeout 60 rabbitmqctl -q list_queues name 2>/dev/null | wc -l)
    if [ "${queues:-0}" -gt "${SERVICEWIRE_RABBITMQ_MAX_QUEUES:-1500}" ]; then
        fresh_node "$queues queues left by earlier runs" || exit 1
    fi
fi
flags=$(rabbitmqctl -q list_feature_flags name state 2>/dev/null || true)
if ! grep -qE '^quorum_queue[[:space:]]+enabled' <<<"$flags"; then
    echo "enabling the quorum_queue feature flag"
    rabbitmqctl -q enable_feature_flag quorum_queue || { echo "cannot enable quorum queues" >&2; exit 1; }
fi
server=${RABBITMQ_SERVER_BIN:-/usr/lib/rabbitmq/bin/rabbitmq-server}
if [ ! -x "$server" ]; then
    echo "no $server: the amqp restart test cannot start its private node" >&2
    exit 1
fi
echo "rabbitmq: $(rabbitmqctl -q version 2>/dev/null), quorum queues on, private-node binary at $server"
