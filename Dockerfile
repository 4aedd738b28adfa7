# syntax=docker/dockerfile:1
# The `scimflow` binary (crate cli) in a small non-root image. One image runs every role:
#   docker run IMAGE serve | ingest-api | projector | fanout --config FILE | migrate | tenant ...
# Build: docker build -t scimflow .   (BuildKit: the cargo caches below need it)

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=trixie

# ---- build -----------------------------------------------------------------------------------
# The full rust image (buildpack-deps) brings gcc, make, perl and zlib headers: rdkafka-sys
# builds librdkafka from source with them. protoc comes from the vendored protoc-bin-vendored
# crate (proto/build.rs), so no protobuf package is needed.
FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock rustfmt.toml ./
COPY proto proto
COPY core core
COPY log log
COPY store store
COPY ingest-api ingest-api
COPY projector projector
COPY fanout fanout
COPY cli cli
COPY tests tests
COPY simulator simulator
# Registry and target caches survive between builds; the binary is copied out of the cached
# target directory in the same step, since cache mounts are not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p scimflow --bin scimflow \
    && install -D -m 0755 target/release/scimflow /out/scimflow

# ---- runtime ---------------------------------------------------------------------------------
FROM debian:${DEBIAN_RELEASE}-slim AS runtime
# ca-certificates: TLS to brokers, databases and webhook receivers. The binary links only
# glibc, libgcc and zlib, all already in the slim image.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 scimflow \
    && useradd --system --uid 10001 --gid scimflow --home-dir /var/lib/scimflow --shell /usr/sbin/nologin scimflow \
    && install -d -o scimflow -g scimflow -m 0750 /var/lib/scimflow
COPY --from=build /out/scimflow /usr/local/bin/scimflow
USER 10001:10001
WORKDIR /var/lib/scimflow
# Containers listen on every interface (the binary defaults to loopback); tenants (and the
# embedded log and store of `serve`) live in the data directory, a volume in any real setup.
ENV SCIMFLOW_LISTEN=0.0.0.0:8080 \
    SCIMFLOW_DATA_DIR=/var/lib/scimflow \
    SCIMFLOW_LOG_FORMAT=json \
    RUST_LOG=info
VOLUME ["/var/lib/scimflow"]
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/scimflow"]
CMD ["serve"]
