# Shared helpers for scripts/services/*.sh (sourced, not run).
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() { # wait_port PORT SECONDS
    local i
    for ((i = 0; i < $2 * 10; i++)); do port_open "$1" && return 0; sleep 0.1; done
    return 1
}
