#!/usr/bin/env bash
# The end-to-end suite (tests/e2e/suite) on a kind cluster: for machines with a
# Docker engine (GitHub Actions: .github/workflows/e2e.yml). It cannot run on
# the project's own CI machines (no Docker engine, no image downloads); there
# tests/e2e/local.sh runs the same suite on the test bed's node.
#
#   1. certificates: a CA and a registry certificate for the ECR host name
#      123456789012.dkr.ecr.us-east-1.amazonaws.com (and ecr-e2e-registry);
#   2. a kind cluster (containerd's registry config_path enabled, as the kind
#      local-registry guide does; kind >= 0.27 images have it already);
#   3. on kind's Docker network: a registry container (distribution 2.8, TLS,
#      htpasswd user AWS with moto's token password), moto (the same pinned
#      packages as the bed: tests/bed/aws/requirements.txt) and the bed's fault
#      proxy (tests/bed/aws/faultproxy.py) in front of it;
#   4. the bed's test image (tests/bed/registry/build-image) pushed to the
#      registry as <ECR host>/e2e/hello:v1; on every node, containerd maps the
#      ECR host name to the registry container with the CA trusted
#      (/etc/containerd/certs.d/<host>/hosts.toml), so the kubelet matches the
#      pull secret by host exactly as on EKS;
#   5. the operator image built with the Dockerfile and `kind load`ed;
#   6. tests/e2e/suite; then everything is removed (KIND_KEEP=1 keeps it).
#
# Needs: docker, kind, kubectl, skopeo, umoci, busybox-static (/bin/busybox),
# openssl, htpasswd (apache2-utils), curl.
# Environment:
#   KIND_CLUSTER           cluster name (default ecr-operator-e2e)
#   KIND_NODE_IMAGE        node image (default: the one of the kind release)
#   E2E_OPERATOR_IMAGE     image tag to build and load (default ghcr.io/ecr-operator/ecr-operator:e2e)
#   E2E_SKIP_BUILD=1       the image is already built (docker images)
#   E2E_REGISTRY_PASSWORD  what the registry accepts for user AWS (default moto's
#                          token password, 123456789012-auth-token); another value
#                          shows the suite failing
#   KIND_KEEP=1            leave the cluster and the containers running
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
say() { echo "e2e/kind: $*" >&2; }
die() { say "$*"; exit 1; }

CLUSTER="${KIND_CLUSTER:-ecr-operator-e2e}"
ECR_HOST=123456789012.dkr.ecr.us-east-1.amazonaws.com
ECR_IMAGE="$ECR_HOST/e2e/hello:v1"
REGISTRY_PASSWORD="${E2E_REGISTRY_PASSWORD:-123456789012-auth-token}"
IMAGE="${E2E_OPERATOR_IMAGE:-ghcr.io/ecr-operator/ecr-operator:e2e}"
REGISTRY_IMAGE=registry:2.8.3
PYTHON_IMAGE=python:3.11-slim-bookworm # the Python the moto lock was resolved with
C_REGISTRY=ecr-e2e-registry
C_MOTO=ecr-e2e-moto
C_FAULTS=ecr-e2e-faults

for t in docker kind kubectl skopeo umoci openssl htpasswd curl; do
  command -v "$t" >/dev/null || die "$t is missing"
done
[[ -x /bin/busybox ]] || die "/bin/busybox is missing (apt-get install busybox-static)"

work="$(mktemp -d "${TMPDIR:-/tmp}/ecr-operator-kind.XXXXXX")"
cleanup() {
  local rc=$?
  if [[ "${KIND_KEEP:-}" == 1 ]]; then
    say "kept: kind cluster $CLUSTER (KUBECONFIG=$work/kubeconfig), containers $C_REGISTRY $C_MOTO $C_FAULTS"
  else
    docker rm -f "$C_FAULTS" "$C_MOTO" "$C_REGISTRY" >/dev/null 2>&1 || true
    kind delete cluster --name "$CLUSTER" --kubeconfig "$work/kubeconfig" >/dev/null 2>&1 || true
    rm -rf "$work"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- 1. Certificates -----------------------------------------------------------------
mkdir -p "$work/certs" "$work/auth" "$work/ca-dir"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj "/CN=ecr-operator-e2e-ca" -keyout "$work/certs/ca.key" -out "$work/certs/ca.crt" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$ECR_HOST" \
  -keyout "$work/certs/registry.key" -out "$work/registry.csr" 2>/dev/null
openssl x509 -req -in "$work/registry.csr" -CA "$work/certs/ca.crt" -CAkey "$work/certs/ca.key" \
  -CAcreateserial -days 2 -out "$work/certs/registry.crt" -extfile <(printf '%s\n' \
    "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
    "extendedKeyUsage=serverAuth" "subjectAltName=DNS:$ECR_HOST,DNS:$C_REGISTRY,IP:127.0.0.1") 2>/dev/null
chmod 0644 "$work/certs/"* # read by the registry container's user
cp "$work/certs/ca.crt" "$work/ca-dir/ca.crt"
htpasswd -Bbn AWS "$REGISTRY_PASSWORD" >"$work/auth/htpasswd"

# --- 2. The cluster --------------------------------------------------------------------
cat >"$work/kind.yaml" <<'EOF'
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
containerdConfigPatches:
  - |-
    [plugins."io.containerd.grpc.v1.cri".registry]
      config_path = "/etc/containerd/certs.d"
EOF
node_image=()
[[ -n "${KIND_NODE_IMAGE:-}" ]] && node_image=(--image "$KIND_NODE_IMAGE")
say "creating kind cluster $CLUSTER"
# A kubeconfig of its own: the user's ~/.kube/config is left alone.
export KUBECONFIG="$work/kubeconfig"
kind create cluster --name "$CLUSTER" --kubeconfig "$KUBECONFIG" --config "$work/kind.yaml" \
  --wait 180s "${node_image[@]}"

# --- 3. Registry, moto, fault proxy on kind's network -----------------------------------
say "starting $C_REGISTRY, $C_MOTO, $C_FAULTS"
docker rm -f "$C_FAULTS" "$C_MOTO" "$C_REGISTRY" >/dev/null 2>&1 || true
docker run -d --name "$C_REGISTRY" --network kind -p 127.0.0.1::5000 \
  -v "$work/certs:/certs:ro" -v "$work/auth:/auth:ro" \
  -e REGISTRY_HTTP_TLS_CERTIFICATE=/certs/registry.crt -e REGISTRY_HTTP_TLS_KEY=/certs/registry.key \
  -e REGISTRY_AUTH=htpasswd -e REGISTRY_AUTH_HTPASSWD_REALM="$ECR_HOST" \
  -e REGISTRY_AUTH_HTPASSWD_PATH=/auth/htpasswd \
  "$REGISTRY_IMAGE" >/dev/null
docker run -d --name "$C_MOTO" --network kind -v "$repo/tests/bed/aws:/bed:ro" "$PYTHON_IMAGE" \
  sh -c 'pip install --quiet --no-cache-dir -r /bed/requirements.txt && exec moto_server -H 0.0.0.0 -p 5000' >/dev/null
docker run -d --name "$C_FAULTS" --network kind -p 127.0.0.1::5000 -v "$repo/tests/bed/aws:/bed:ro" \
  "$PYTHON_IMAGE" python /bed/faultproxy.py --listen 0.0.0.0 --port 5000 --upstream "http://$C_MOTO:5000" >/dev/null
host_port() { docker port "$1" 5000/tcp | head -n 1 | sed 's/.*://'; }
reg_port="$(host_port "$C_REGISTRY")"
faults_port="$(host_port "$C_FAULTS")"
faults_ip="$(docker inspect -f '{{.NetworkSettings.Networks.kind.IPAddress}}' "$C_FAULTS")"
[[ -n "$reg_port" && -n "$faults_port" && -n "$faults_ip" ]] || die "could not find the containers' ports/addresses"
wait_url() { # URL SECONDS WHAT
  local deadline=$((SECONDS + $2))
  until curl -s -o /dev/null --max-time 2 --cacert "$work/certs/ca.crt" -w '%{http_code}' "$1" | grep -q '^[24]'; do
    ((SECONDS < deadline)) || { docker logs "$C_MOTO" 2>&1 | tail -n 20 >&2; die "$3 does not answer at $1"; }
    sleep 2
  done
}
wait_url "https://127.0.0.1:$reg_port/v2/" 60 "the registry"
# Through the proxy to moto (pip install first: up to a few minutes).
wait_url "http://127.0.0.1:$faults_port/moto-api/" 600 "moto (behind the fault proxy)"

# --- 4. The private image, and the ECR host name on every node ------------------------
test_image="$(tests/bed/registry/build-image)"
skopeo copy --quiet --dest-creds "AWS:$REGISTRY_PASSWORD" --dest-cert-dir "$work/ca-dir" \
  "oci:$test_image:v1" "docker://127.0.0.1:$reg_port/e2e/hello:v1"
for node in $(kind get nodes --name "$CLUSTER"); do
  dir="/etc/containerd/certs.d/$ECR_HOST"
  docker exec "$node" mkdir -p "$dir"
  docker exec -i "$node" cp /dev/stdin "$dir/ca.crt" <"$work/certs/ca.crt"
  docker exec -i "$node" cp /dev/stdin "$dir/hosts.toml" <<EOF
# $ECR_HOST is the registry container $C_REGISTRY (tests/e2e/kind.sh).
server = "https://$C_REGISTRY:5000"
ca = "$dir/ca.crt"

[host."https://$C_REGISTRY:5000"]
  capabilities = ["pull", "resolve"]
  ca = "$dir/ca.crt"
EOF
done

# --- 5. The operator image -------------------------------------------------------------
if [[ "${E2E_SKIP_BUILD:-}" != 1 ]]; then
  say "building $IMAGE with the Dockerfile"
  docker build -t "$IMAGE" .
fi
kind load docker-image "$IMAGE" --name "$CLUSTER"

# --- 6. The suite ----------------------------------------------------------------------
E2E_OPERATOR_IMAGE="$IMAGE" \
  E2E_ECR_IMAGE="$ECR_IMAGE" \
  E2E_AWS_ENDPOINT_URL="http://$faults_ip:5000" \
  E2E_AWS_REGION=us-east-1 \
  E2E_FAULTS="http://127.0.0.1:$faults_port/__faults__" \
  tests/e2e/suite
