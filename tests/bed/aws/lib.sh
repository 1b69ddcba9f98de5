# Shared helpers of tests/bed/aws/* (sourced, not run).
# shellcheck shell=bash

BED_MOTO_VERSION=5.2.5
BED_PYTHON=/usr/bin/python3
_bed_aws_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

die() {
    echo "tests/bed/aws: error: $*" >&2
    exit 1
}

bed_cache_dir() { echo "${ECR_OPERATOR_CACHE:-$HOME/.cache/ecr-operator}"; }
bed_venv_dir() { echo "$(bed_cache_dir)/venv-moto-$BED_MOTO_VERSION"; }

# What a complete venv's .bed-stamp holds: the requirements and the Python.
bed_venv_stamp() {
    local py
    py="$("$BED_PYTHON" -c 'import sys; print(sys.version.split()[0])' 2>/dev/null || echo none)"
    echo "python-$py requirements-$(sha256sum "$_bed_aws_dir/requirements.txt" | cut -d' ' -f1)"
}

# wait_for_file FILE SECONDS PID LOG WHAT: wait until FILE exists (a port
# file written by the process once it listens); fail early if PID dies.
wait_for_file() {
    local file=$1 secs=$2 pid=$3 log=$4 what=$5 i
    for ((i = 0; i < secs * 10; i++)); do
        [[ -s "$file" ]] && return 0
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 20 "$log" >&2 || true
            die "$what exited during start-up; log: $log"
        fi
        sleep 0.1
    done
    tail -n 20 "$log" >&2 || true
    die "$what did not start listening within ${secs}s; log: $log"
}

# wait_http URL SECONDS LOG WHAT: wait until URL answers any HTTP status.
wait_http() {
    local url=$1 secs=$2 log=$3 what=$4 i
    for ((i = 0; i < secs * 10; i++)); do
        if curl -s -o /dev/null --max-time 2 "$url"; then return 0; fi
        sleep 0.1
    done
    tail -n 20 "$log" >&2 || true
    die "$what does not answer at $url within ${secs}s; log: $log"
}

# kill_pidfiles FILE...: TERM the processes named by the pid files, then KILL
# what is left after 5 s; removes the pid files.
kill_pidfiles() {
    local f pid
    local -a pids=()
    for f in "$@"; do
        [[ -f "$f" ]] || continue
        pid="$(cat "$f" 2>/dev/null || true)"
        [[ "$pid" =~ ^[0-9]+$ ]] && pids+=("$pid")
    done
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for _ in $(seq 50); do
        local alive=0
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.1
    done
    for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    rm -f "$@"
}
