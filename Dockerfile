# The fleet-breaker binary in a small image (used by docker-compose.yml).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --bin fleet-breaker

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/fleet-breaker /usr/local/bin/fleet-breaker
USER nobody
ENTRYPOINT []
CMD ["fleet-breaker", "--help"]
