# syntax=docker/dockerfile:1
# The ecr-operator image: one static binary, CA certificates and a passwd entry
# for the non-root user 65532, on scratch (no shell, no package manager).
#
#   docker buildx build --platform linux/amd64,linux/arm64 -t REGISTRY/ecr-operator:TAG .
#
# The build stage runs on the build machine's platform and cross-compiles for
# TARGETARCH with Debian's cross gcc; glibc is linked statically (crt-static),
# so the binary needs no libraries at run time. scripts/image/build assembles the
# same file set without a container engine (see docs/operating.md).

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM --platform=$BUILDPLATFORM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS build
ARG TARGETARCH
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /src

# Target triple and C cross compiler for TARGETARCH (aws-lc builds with gcc alone).
# The cross gcc is whatever the Rust image's Debian release ships (not pinned:
# Debian replaces old versions, and the rust image tag already fixes the release).
# hadolint ignore=DL3008
RUN case "$TARGETARCH" in \
      amd64) echo "x86_64-unknown-linux-gnu x86_64-linux-gnu gcc-x86-64-linux-gnu libc6-dev-amd64-cross" ;; \
      arm64) echo "aarch64-unknown-linux-gnu aarch64-linux-gnu gcc-aarch64-linux-gnu libc6-dev-arm64-cross" ;; \
      *) echo "unsupported TARGETARCH '$TARGETARCH' (amd64 or arm64)" >&2; exit 1 ;; \
    esac > /target \
    && read -r triple _ gcc_pkg libc_pkg < /target \
    && if [ "$(dpkg --print-architecture)" != "$TARGETARCH" ]; then \
         apt-get update \
         && apt-get install -y --no-install-recommends "$gcc_pkg" "$libc_pkg" \
         && rm -rf /var/lib/apt/lists/*; \
       fi \
    && rustup target add "$triple"

# Optimised for size (as scripts/image/build): about 17 MB instead of 28 MB, for an
# operator that waits on the network almost all the time.
ENV CARGO_PROFILE_RELEASE_OPT_LEVEL=s \
    CARGO_PROFILE_RELEASE_LTO=fat \
    CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1

COPY Cargo.toml Cargo.lock ./
COPY src ./src

# Static glibc for the target only (build scripts and proc macros stay dynamic).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target,sharing=locked \
    read -r triple gnu _ < /target \
    && env_triple="$(echo "$triple" | tr 'a-z-' 'A-Z_')" \
    && cc_triple="$(echo "$triple" | sed 's/-/_/g')" \
    && export "CARGO_TARGET_${env_triple}_LINKER=${gnu}-gcc" \
              "CARGO_TARGET_${env_triple}_RUSTFLAGS=-C target-feature=+crt-static" \
              "CC_${cc_triple}=${gnu}-gcc" "AR_${cc_triple}=${gnu}-ar" \
    && cargo build --release --locked --bin ecr-operator --target "$triple" \
    && mkdir -p /rootfs/etc/ssl/certs \
    && cp "target/$triple/release/ecr-operator" /rootfs/ecr-operator \
    && cp /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/ca-certificates.crt \
    && printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > /rootfs/etc/passwd \
    && printf 'root:x:0:\nnonroot:x:65532:\n' > /rootfs/etc/group

FROM scratch
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="ecr-operator" \
      org.opencontainers.image.description="Kubernetes operator that keeps image-pull secrets for Amazon ECR fresh" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /rootfs/ /
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/ecr-operator"]
CMD ["run"]
