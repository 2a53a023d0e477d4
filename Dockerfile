# syntax=docker/dockerfile:1
#
# Multi-stage build of webcrm-chargebee-sync.
#
#   docker build -t webcrm-chargebee-sync:dev .
#   docker run --rm -p 8080:8080 --env-file .env webcrm-chargebee-sync:dev
#
# The runtime image runs as the numeric non-root user 10001, listens on
# 0.0.0.0:8080 and starts `serve` by default. Health checking is left to the
# orchestrator (Kubernetes probes on /healthz and /readyz), so there is no
# HEALTHCHECK instruction.

ARG RUST_IMAGE=rust:1-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# ---------------------------------------------------------------------------
# Build stage
# ---------------------------------------------------------------------------
FROM ${RUST_IMAGE} AS build
WORKDIR /src

# Queries are checked at compile time only against prepared metadata (.sqlx/),
# never against a live database during an image build.
ENV SQLX_OFFLINE=true \
    CARGO_TERM_COLOR=never

# 1. Dependencies only. With just the manifest, the lock file and stub targets,
#    this layer is rebuilt only when Cargo.toml or Cargo.lock change. (If the
#    manifest gains another explicit target, add a stub for it here.)
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches \
 && echo 'fn main() {}' > src/main.rs \
 && echo '' > src/lib.rs \
 && echo 'fn main() {}' > benches/queue.rs \
 && cargo build --release --locked \
 && rm -rf src benches

# 2. The real sources (migrations, assets and everything else not excluded by
#    .dockerignore). Touching the sources and removing this crate's own
#    fingerprints makes sure cargo rebuilds it instead of reusing the stub.
COPY . .
RUN find src -name '*.rs' -exec touch {} + \
 && rm -rf target/release/.fingerprint/webcrm-chargebee-sync-* \
 && cargo build --release --locked \
 && install -D -m 0755 target/release/webcrm-chargebee-sync /out/webcrm-chargebee-sync

# ---------------------------------------------------------------------------
# Runtime stage
# ---------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE} AS runtime

RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home --shell /usr/sbin/nologin app \
 && mkdir -p /data \
 && chown 10001:10001 /data

COPY --from=build /out/webcrm-chargebee-sync /usr/local/bin/webcrm-chargebee-sync

# /data is the working directory so that the SQLite default
# (sqlite://webcrm-chargebee-sync.db) lands on a mountable path when the image
# is run without Postgres: docker run -v wcs-data:/data ...
WORKDIR /data
USER 10001:10001

ENV LISTEN_ADDR=0.0.0.0:8080
EXPOSE 8080

ENTRYPOINT ["/usr/local/bin/webcrm-chargebee-sync"]
CMD ["serve"]
