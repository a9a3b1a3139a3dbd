#!/usr/bin/env bash
# RabbitMQ for the amqp:// transport: the shared broker answers on 5672 with the
# quorum_queue feature flag on (durable shard queues), its file-handle limit raised to
# what RabbitMQ recommends, and the server binary the restart test needs for its
# private node (own name, ports and data dir) is present.
#
# Why the file-handle limit: RabbitMQ 3.10's file handle cache reserves 3 handles for
# every quorum queue and takes its budget from the process's open-files limit (Debian
# starts the node with 1024, i.e. a budget of 927). Past ~300 quorum queues the budget
# is spent, and every new AMQP connection waits for a socket handle that never comes:
# the node stops completing handshakes while it still answers rabbitmqctl. A channel
# consumed by one group is 16 quorum shard queues (plus its dead-letter queue), so a
# few test runs at once reach that. The node is shared, so it is never wiped or
# restarted here: its limit is raised in place (prlimit + file_handle_cache:set_limit).
set -uo pipefail
. "$(dirname "$0")/lib.sh"
NOFILE=${SERVICEWIRE_RABBITMQ_NOFILE:-65536}

if ! port_open 5672; then
    # Down: start it (a start, not a restart) with the limit already raised.
    (ulimit -n "$NOFILE" 2>/dev/null || ulimit -n "$(ulimit -Hn)"; rabbitmq-server -detached)
fi
wait_port 5672 60 || { echo "rabbitmq is down" >&2; exit 1; }

handshake_ok() {
    timeout 15 bash -c 'exec 3<>/dev/tcp/127.0.0.1/5672; printf "AMQP\x00\x00\x09\x01" >&3;
        head -c 1 <&3 | od -An -tx1 | grep -q 01' 2>/dev/null
}
node_pid() { cat /var/lib/rabbitmq/mnesia/rabbit@localhost.pid 2>/dev/null || pgrep -u rabbitmq -f "beam.smp.*-sname rabbit@localhost|nodename rabbit@localhost" | head -1; }
fhc_info() { timeout 60 rabbitmqctl -q eval 'file_handle_cache:info().' 2>/dev/null | tr -d '\n '; }

# The node runs as the rabbitmq user: as that user its soft limit can be raised up to
# its hard limit without any capability (root in a container may lack CAP_SYS_RESOURCE).
pid=$(node_pid)
if [ -n "$pid" ]; then
    limits=$(su rabbitmq -s /bin/sh -c "prlimit --pid $pid --nofile --noheadings --output SOFT,HARD" 2>/dev/null)
    read -r soft hard <<<"$limits"
    [ "${hard:-}" = unlimited ] && hard=$NOFILE
    want=$(( NOFILE < ${hard:-0} ? NOFILE : ${hard:-0} ))
    if [ -n "${soft:-}" ] && [ "$soft" != unlimited ] && [ "$soft" -lt "$want" ]; then
        su rabbitmq -s /bin/sh -c "prlimit --pid $pid --nofile=$want:$hard" \
            && timeout 60 rabbitmqctl -q eval "file_handle_cache:set_limit($((want - 100)))." >/dev/null \
            && echo "rabbitmq: open-files limit $soft -> $want (file handle cache $((want - 100)))"
    fi
fi
if ! handshake_ok; then
    # Say what the node is short of instead of wiping it: the queues and the handle budget.
    queues=$(timeout 60 rabbitmqctl -q list_queues name 2>/dev/null | wc -l)
    echo "rabbitmq: no AMQP handshake within 15 s; $queues queues; file handle cache: $(fhc_info)" >&2
    exit 1
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
echo "rabbitmq: $(rabbitmqctl -q version 2>/dev/null), quorum queues on, file handle cache $(fhc_info), private-node binary at $server"
