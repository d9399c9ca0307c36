# One image for every service: each binary in /usr/local/bin, run as a non-root user; the
# service's name is the command (`gateway`, `mapi`, `peer-channels`, `block-parser`,
# `zmq-listener`, `notifier`, `indexer`; each also takes `migrate`). The Helm chart and deploy/compose.yaml
# set the command per container.
#
#   docker build -t registry.example.com/bsv-mapi:0.1.0 .
#   docker push registry.example.com/bsv-mapi:0.1.0

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# The binaries link only glibc and libgcc (PostgreSQL, TLS and ZMQ are pure Rust here).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
      -p gateway -p mapi -p peer-channels -p block-parser -p zmq-listener -p notifier -p indexer \
 && mkdir -p /out \
 && cp target/release/gateway target/release/mapi target/release/peer-channels \
       target/release/block-parser target/release/zmq-listener target/release/notifier \
       target/release/indexer /out/

# glibc, libgcc, CA certificates and a non-root user (65532), nothing else: no shell.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/ /usr/local/bin/
USER 65532:65532
ENV LISTEN_ADDR=0.0.0.0:8080 LOG_FORMAT=json
EXPOSE 8080
CMD ["gateway"]
