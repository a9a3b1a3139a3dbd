#!/usr/bin/env bash
# RabbitMQ for the amqp:// transport: the shared broker answers on 5672 with the
# quorum_queue feature flag on (durable shard queues), and the server binary the
# restart test needs for its private node (own name, ports and data dir) is present.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
wait_port 5672 60 || { echo "rabbitmq is down" >&2; exit 1; }
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
