# Shared helpers of tests/bed/registry/* (sourced, not run).
# shellcheck shell=bash

die() {
    echo "tests/bed/registry: error: $*" >&2
    exit 1
}

bed_cache_dir() { echo "${ECR_OPERATOR_CACHE:-$HOME/.cache/ecr-operator}"; }

# Debian packages the registry side needs: command -> package.
declare -A BED_REG_TOOLS=(
    [docker-registry]=docker-registry
    [skopeo]=skopeo
    [htpasswd]=apache2-utils
    [umoci]=umoci
    [busybox]=busybox-static
    [curl]=curl
    [python3]=python3
)

# Print the packages whose command is missing (empty when all are there).
bed_reg_missing() {
    local cmd
    for cmd in "${!BED_REG_TOOLS[@]}"; do
        if [[ $cmd == busybox ]]; then
            [[ -x /bin/busybox ]] || echo "${BED_REG_TOOLS[$cmd]}"
        elif ! command -v "$cmd" >/dev/null 2>&1; then
            echo "${BED_REG_TOOLS[$cmd]}"
        fi
    done | sort -u
}

# A free loopback TCP port, chosen by the kernel (bind port 0).
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# kill_pidfiles FILE...: TERM the processes named by the pid files, then KILL
# what is left after 5 s; removes the pid files.
kill_pidfiles() {
    local f pid alive
    local -a pids=()
    for f in "$@"; do
        [[ -f "$f" ]] || continue
        pid="$(cat "$f" 2>/dev/null || true)"
        [[ "$pid" =~ ^[0-9]+$ ]] && pids+=("$pid")
    done
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for _ in $(seq 50); do
        alive=0
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.1
    done
    for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    rm -f "$@"
}
