#!/usr/bin/env bash
# The end-to-end suite on the test bed's own node (runs on this machine and in
# .ci/run; needs root, cgroup v1, no Docker):
#   1. the operator image, assembled without a container engine (scripts/image/build);
#   2. a bed of its own with a node: tests/bed/up --with-node --watch-pid $$
#      (state dir ${TMPDIR:-/tmp}/ecr-operator-e2e-<pid>; the watchdog removes
#      it even if this script is killed);
#   3. the image imported into the node's containerd (tests/bed/node/load);
#   4. tests/e2e/suite against it, the EcrMirror steps included (the node's
#      second registry registry.bed.test, its CONNECT proxy, the bed's CA);
#   5. tests/bed/down (unless E2E_KEEP_BED=1: then it prints how to reach it).
#
# BED_NODE_REGISTRY_PASSWORD=<other> makes the stand-in ECR registry accept
# another password than the one in moto's token, so every pull with the
# operator's secret gets 401: the suite must fail (docs/e2e.md shows it).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
t0=$EPOCHREALTIME
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1fs", b - a}'; }
say() { echo "e2e/local: $*" >&2; }

[[ "$(id -u)" == 0 ]] || { say "needs root (the node: bridge, iptables, cgroups, mounts)"; exit 2; }

t=$EPOCHREALTIME
image_dir="$(scripts/image/build)"
image_ref="$(cat "$image_dir/ref")"
say "operator image $image_ref ($(since "$t"))"

export BED_STATE="${TMPDIR:-/tmp}/ecr-operator-e2e-$$"
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
  local rc=$?
  if [[ "${E2E_KEEP_BED:-}" == 1 ]]; then
    say "the bed stays (E2E_KEEP_BED=1): source $BED_STATE/env; stop it with BED_STATE=$BED_STATE tests/bed/down"
  else
    if tests/bed/down; then rm -f "$BED_STATE.lock"; fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

t=$EPOCHREALTIME
watch=(--watch-pid $$)
[[ "${E2E_KEEP_BED:-}" == 1 ]] && watch=()
env_lines="$(tests/bed/up --with-node "${watch[@]}")"
eval "$env_lines"
say "bed with node ready ($(since "$t"))"

t=$EPOCHREALTIME
tests/bed/node/load "$BED_STATE" "$image_dir/image.tar" >/dev/null
say "image loaded into the node ($(since "$t"))"

t=$EPOCHREALTIME
rc=0
E2E_KUBECTL="$BED_KUBECTL" \
  E2E_OPERATOR_IMAGE="$image_ref" \
  E2E_ECR_IMAGE="$BED_ECR_IMAGE" \
  E2E_AWS_ENDPOINT_URL="$BED_NODE_AWS_ENDPOINT_URL" \
  E2E_AWS_REGION="$AWS_REGION" \
  E2E_FAULTS="$BED_FAULTS" \
  E2E_POD_LOGS_DIR="$BED_STATE/node/pod-logs" \
  E2E_HTTPS_PROXY="$BED_NODE_HTTPS_PROXY" \
  E2E_CA_FILE="$BED_CA_FILE" \
  E2E_ECR_REGISTRY="$BED_ECR_REGISTRY" \
  E2E_REGISTRY2_HOST="$BED_NODE_REGISTRY2_HOST" \
  E2E_STALLED_HOST="$BED_NODE_STALLED_HOST" \
  E2E_REGISTRY2="$BED_NODE_REGISTRY2" \
  E2E_REGISTRY2_USER="$BED_NODE_REGISTRY2_USER" \
  E2E_REGISTRY2_PASSWORD="$BED_NODE_REGISTRY2_PASSWORD" \
  tests/e2e/suite || rc=$?
say "suite $( ((rc == 0)) && echo passed || echo FAILED) ($(since "$t")); total $(since "$t0")"
exit "$rc"
