# syntax=docker/dockerfile:1
# Multi-stage build: dependencies are compiled in their own layer (cached until Cargo.toml or
# Cargo.lock change), then the sources, then a small non-root runtime image.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# 1. Dependencies only: build the workspace with empty sources so this layer is reused.
COPY Cargo.toml Cargo.lock ./
COPY actors/Cargo.toml actors/Cargo.toml
# (cargo checks every declared target's file, the criterion bench included)
RUN mkdir -p src actors/src actors/benches \
    && echo 'fn main() {}' > src/main.rs && touch src/lib.rs actors/src/lib.rs \
    && echo 'fn main() {}' > actors/benches/engine.rs \
    && cargo build --release --locked \
    && rm -rf src actors/src actors/benches
# 2. The real sources.
COPY actors actors
COPY src src
COPY migrations migrations
RUN touch src/main.rs src/lib.rs actors/src/lib.rs && cargo build --release --locked

FROM debian:bookworm-slim AS runtime
# Pinned to bookworm's versions (hadolint DL3008); raise them with the base image.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        ca-certificates=20230311+deb12u1 curl=7.88.1-10+deb12u15 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home /var/lib/sara --create-home sara
WORKDIR /var/lib/sara
COPY --from=build /src/target/release/sara /usr/local/bin/sara
COPY config.toml /etc/sara/config.toml
# The numeric id of the `sara` user made above, so the host and Kubernetes'
# runAsNonRoot can check it.
USER 10001
ENV SARA_CONFIG=/etc/sara/config.toml \
    SARA_SERVER__BIND=0.0.0.0:8080 \
    SARA_STORAGE__DATABASE_URL=sqlite:///var/lib/sara/sara.db \
    SARA_LOG_FORMAT=json
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["curl", "-fsS", "http://127.0.0.1:8080/health"]
ENTRYPOINT ["/usr/local/bin/sara"]
CMD ["serve"]
