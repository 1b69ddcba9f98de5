# Shared helpers of tests/bed/node/* (sourced, not run). Set BED_STATE first:
# this sources tests/bed/lib/common.sh, which derives STATE, BED_MARK and the
# bed_* helpers from it.
# shellcheck shell=bash disable=SC2034 # variables for the sourcing scripts

node_here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=SCRIPTDIR/../lib/common.sh
source "$node_here/../lib/common.sh"

node_log() { printf '%s %s\n' "bed/node:" "$*" >&2; }
node_die() { printf '%s %s\n' "bed/node: error:" "$*" >&2; exit 1; }

NODE_NAME=bed-node
# The stand-in ECR registry answers under the real ECR host name.
NODE_ECR_ACCOUNT=123456789012
NODE_ECR_REGION=us-east-1
NODE_ECR_HOST="$NODE_ECR_ACCOUNT.dkr.ecr.$NODE_ECR_REGION.amazonaws.com"
NODE_ECR_REPO=e2e/hello
NODE_ECR_TAG=v1
# The second registry on the node (a source and destination of EcrMirrors),
# reached by pods through the connect proxy under this name.
NODE_REGISTRY2_HOST=registry.bed.test
# A name the connect-proxy tunnels to and then never answers: a stalled registry.
NODE_STALLED_HOST=stalled.bed.test
NODE_REGISTRY2_USER=mirror
NODE_REGISTRY2_REPO=bed/hello
# The pause image (containerd's sandbox_image), built here by build-pause.
NODE_PAUSE_REF=localhost/ecr-operator-bed/pause:1
# The kubernetes Service's ClusterIP (the bed's service CIDR is 10.0.0.0/24).
NODE_KUBERNETES_SERVICE_IP=10.0.0.1

node_cache_dir() { echo "${ECR_OPERATOR_CACHE:-$HOME/.cache/ecr-operator}"; }

# Everything the node creates outside its state directory is named after a tag
# of the state directory, so two beds can each have a node, and leftovers of a
# node that was killed can be found and removed:
#   bridge ecrnode<tag>, iptables chains ECR-NODE-<tag> (nat, filter),
#   cgroups /ecr-operator-node-<tag> in every cgroup v1 hierarchy,
#   the record $(node_cache_dir)/nodes/<tag> (holds the state directory).
node_tag() { printf '%s' "$1" | sha256sum | cut -c1-6; }
node_bridge() { echo "ecrnode$1"; }
node_chain() { echo "ECR-NODE-$1"; }
node_cgroup() { echo "ecr-operator-node-$1"; }
node_records() { echo "$(node_cache_dir)/nodes"; }

# Debian packages the node needs: command (or file) -> package.
declare -A NODE_TOOLS=(
  [containerd]=containerd
  [ctr]=containerd
  [containerd-shim-runc-v2]=containerd
  [runc]=runc
  [/usr/lib/cni/bridge]=containernetworking-plugins
  [iptables]=iptables
  [ip]=iproute2
  [unshare]=util-linux
  [gcc]=gcc
  [/usr/lib/x86_64-linux-gnu/libc.a]=libc6-dev
  [umoci]=umoci
  [skopeo]=skopeo
  [docker-registry]=docker-registry
  [htpasswd]=apache2-utils
  [openssl]=openssl
  [curl]=curl
  [python3]=python3
)

# Prints the packages whose command or file is missing.
node_missing() {
  local t
  for t in "${!NODE_TOOLS[@]}"; do
    if [[ $t == /* ]]; then
      [[ -e $t ]] || echo "${NODE_TOOLS[$t]}"
    elif ! command -v "$t" >/dev/null 2>&1; then
      echo "${NODE_TOOLS[$t]}"
    fi
  done | sort -u
}

# The cgroup hierarchies: every v1 one (cpu, memory, ...) and, on a hybrid
# host, the v2 one beside them (/sys/fs/cgroup/unified), where runc makes
# cgroups too.
node_cgroup_mounts() {
  awk '$3 == "cgroup" || ($3 == "cgroup2" && $2 != "/sys/fs/cgroup") { print $2 }' /proc/mounts
}

# node_kill_cgroup TAG: SIGKILL every process in the node's cgroups (the
# containers), then remove the (empty) cgroups, deepest first.
node_kill_cgroup() {
  local cg mnt i pids
  cg="$(node_cgroup "$1")"
  for ((i = 0; i < 50; i++)); do
    pids="$(for mnt in $(node_cgroup_mounts); do
      if [[ -d "$mnt/$cg" ]]; then find "$mnt/$cg" -name cgroup.procs -exec cat {} + 2>/dev/null; fi
    done | sort -u | tr '\n' ' ')"
    [[ -z "${pids// /}" ]] && break
    # shellcheck disable=SC2086 # a list of pids
    kill -KILL $pids 2>/dev/null
    sleep 0.1
  done
  for mnt in $(node_cgroup_mounts); do
    [[ -d "$mnt/$cg" ]] || continue
    find "$mnt/$cg" -depth -type d -exec rmdir {} + 2>/dev/null
    [[ ! -d "$mnt/$cg" ]] || node_log "could not remove the cgroup $mnt/$cg"
  done
  return 0
}

# node_cleanup_host TAG: removes what a node with TAG set up on the host: its
# iptables chains (and the jumps to them), the bridge, the containers left in
# its cgroups and the cgroups. Idempotent; says nothing when there is nothing.
node_cleanup_host() {
  local tag="$1" chain br table parent
  chain="$(node_chain "$tag")"
  br="$(node_bridge "$tag")"
  for table in nat filter; do
    case "$table" in nat) parent=PREROUTING ;; filter) parent=INPUT ;; esac
    while iptables -w 5 -t "$table" -D "$parent" -i "$br" -j "$chain" 2>/dev/null; do :; done
    if iptables -w 5 -t "$table" -S "$chain" >/dev/null 2>&1; then
      iptables -w 5 -t "$table" -F "$chain" 2>/dev/null
      iptables -w 5 -t "$table" -X "$chain" 2>/dev/null || node_log "could not remove the iptables chain $table/$chain"
    fi
  done
  if ip link show "$br" >/dev/null 2>&1; then
    # The pods' veths go with their network namespaces; whatever is left too.
    ip -o link show master "$br" 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 |
      while read -r veth; do ip link del "$veth" 2>/dev/null; done
    ip link del "$br" 2>/dev/null || node_log "could not remove the bridge $br"
  fi
  node_kill_cgroup "$tag"
}

# True when the node of STATE runs (its namespace holder is alive).
node_running() {
  local state="$1" pid
  pid="$(cat "$state/pids/node.pid" 2>/dev/null)" || return 1
  bed_pid_alive "$pid" &&
    grep -qzxF -- "ECR_OPERATOR_BED_MEMBER=$state" "/proc/$pid/environ" 2>/dev/null
}

# Removes the host leftovers of every recorded node whose bed is gone (killed
# with SIGKILL, so its own clean-up never ran).
node_cleanup_stale() {
  local rec tag state
  for rec in "$(node_records)"/*; do
    [[ -f "$rec" ]] || continue
    tag="$(basename "$rec")"
    state="$(cat "$rec")"
    node_running "$state" && continue
    node_log "removing the leftovers of the node of $state (bridge, iptables chains, cgroups)"
    node_cleanup_host "$tag"
    rm -f "$rec"
  done
}

# A private /24 for the pods: 10.201.N.0/24, N from the tag, skipping subnets
# the host already routes. Prints the prefix "10.201.N".
node_pick_subnet() {
  local tag="$1" n i used
  used="$(ip -4 route show; ip -4 addr show)"
  n=$((16#${tag:0:2}))
  for ((i = 0; i < 256; i++)); do
    if ! grep -q "10\.201\.$(((n + i) % 256))\." <<<"$used"; then
      echo "10.201.$(((n + i) % 256))"
      return 0
    fi
  done
  return 1
}
