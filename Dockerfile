# Multi-stage build: a full Rust toolchain builds ipgate with the `dist`
# profile; the runtime image is Debian slim with only CA certificates and a
# non-root user. Keys and data are never baked in: mount them.
FROM rust:1-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --locked --profile dist --bin ipgate

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/ipgate --shell /usr/sbin/nologin ipgate \
 && mkdir -p /var/lib/ipgate /etc/ipgate \
 && chown ipgate:ipgate /var/lib/ipgate
COPY --from=build /src/target/dist/ipgate /usr/local/bin/ipgate
COPY config/ipgate.example.toml /etc/ipgate/ipgate.toml
USER ipgate
WORKDIR /var/lib/ipgate
ENV IPGATE_STORE__PATH=/var/lib/ipgate/store
EXPOSE 8080 8443 9001 9002 9100
ENTRYPOINT ["/usr/local/bin/ipgate"]
CMD ["serve", "--config", "/etc/ipgate/ipgate.toml"]
