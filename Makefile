# The two commands of the README:
#   make demo   the operator on the local test bed (no cluster or AWS account needed)
#   make test   formatting, lints, unit tests, the integration tests on the bed,
#               and the end-to-end suite on the bed's local node
.PHONY: test lint unit integration e2e demo bench faults crds bed-up bed-down

test: lint unit integration e2e

lint:
	scripts/ensure-toolchain
	cargo fmt --check
	cargo clippy --all-targets --locked -- -D warnings
	scripts/lint-e2e

unit:
	cargo test --locked --lib --bins

# The test fixture starts a private bed (installing what is missing) and a
# watchdog tears it down when the test process exits.
integration:
	scripts/image/build >/dev/null
	cargo test --locked --test integration

# End to end on a local node (kubelet, containerd): a pod pulls with the secret
# the operator, deployed from deploy/, wrote. See docs/e2e.md.
e2e:
	tests/e2e/local.sh

demo:
	scripts/demo

# The EcrRegistry benchmark of docs/benchmarks.md: the binary the image ships,
# built as scripts/image/build does (static, size-optimised: its size is a third
# of the operator's memory), under the debug test harness. BENCH_NAMESPACES sets
# the scale (default 1000; e.g. `make bench BENCH_NAMESPACES=10000`),
# BENCH_STEADY_SECS the quiet window (300). Also the mirror benchmark under
# faults (BENCH_MIRROR_RUNS, …), against skopeo and crane (crane needs Go:
# scripts/build-crane builds it once; without Go it is left out and said so).
SHIPPED_TARGET = x86_64-unknown-linux-gnu
bench:
	CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C target-feature=+crt-static" \
	  CARGO_PROFILE_RELEASE_OPT_LEVEL=s CARGO_PROFILE_RELEASE_LTO=fat CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 \
	  cargo build --release --locked --bin ecr-operator --target $(SHIPPED_TARGET)
	ECR_OPERATOR_BIN=$(CURDIR)/target/$(SHIPPED_TARGET)/release/ecr-operator cargo test --locked --test integration bench:: -- --ignored --nocapture

# The fault suite of docs/reliability.md with its figures (FIGURE lines), on a
# private bed; scenario 4 at full size (`make test` runs it with 3 kills at 60
# namespaces). FAULTS_KILLS and FAULTS_NAMESPACES override.
FAULTS_KILLS ?= 20
FAULTS_NAMESPACES ?= 1000
faults:
	@mkdir -p target; status=0; \
	env -u KUBECONFIG -u BED_STATE -u BED_FAULTS -u AWS_ENDPOINT_URL -u BED_REGISTRY \
	  FAULTS_KILLS=$(FAULTS_KILLS) FAULTS_NAMESPACES=$(FAULTS_NAMESPACES) \
	  cargo test --locked --test integration -- faults:: restarts:: bad_input:: \
	  runtime::sigterm_at_any_moment runtime::a_killed_leader credentials:: \
	  deploy::operator_works_with_exactly_the_kustomize_rbac \
	  --nocapture >target/faults.log 2>&1 || status=$$?; \
	grep -E '^(FIGURE|test )' target/faults.log; echo "full output: target/faults.log"; exit $$status

# Regenerate the committed CRD YAML (a unit test fails when it drifts).
crds:
	cargo run --quiet -- crd | awk '/^---$$/{n++; next} {print > (n ? "crds/ecrmirror.yaml" : "crds/ecrregistry.yaml")}'
	deploy/sync-crds

bed-up:
	@tests/bed/up

bed-down:
	tests/bed/down
