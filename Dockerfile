# Multi-stage build: compile in the Rust image, run on a slim Debian with
# only CA certificates and the binary, as a non-root user.
FROM rust:1-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY conf ./conf
COPY benches ./benches
COPY tests ./tests
# The shipped proxy: stripped (profile dist) and linking none of the
# bundled emulator's web stack.
RUN cargo build --profile dist --locked --no-default-features --bin bearer-proxy

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin bearer-proxy
COPY --from=build /src/target/dist/bearer-proxy /usr/local/bin/bearer-proxy
# Mount your own file over this one; the bundled one listens on all
# interfaces, as a container must, and reads credentials from the environment.
COPY conf/container.yaml /etc/bearer-proxy/config.yaml
# The route requires API keys: mount a "name:sha256hex" file here.
ENV API_KEYS_FILE=/etc/bearer-proxy/api-keys
USER 10001:10001
EXPOSE 8080 9090
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/bearer-proxy", "--log-format", "json"]
CMD ["run", "-c", "/etc/bearer-proxy/config.yaml"]
