# sequin-sf, the sync run beside the database (crates/sidecar), as a small image:
#   docker build -f docker/sidecar.Dockerfile -t sequin-sf .
#   docker run -e SEQUIN_SF_DATABASE_URL='host=db user=... password=... dbname=...' \
#              -e SEQUIN_SF_KEY_FILE=/keys/sequin_sf.key -v /path/to/keys:/keys:ro sequin-sf
#   (or -e SEQUIN_SF_KEY=<64 hex digits>); it installs sequin_sf's objects at its first
#   connection. The other commands run the same image:
#   docker run ... sequin-sf credential create NAME --kind ... (secrets in -e SEQUIN_SF_*)
# No Postgres headers are needed: the program talks to the database over the wire.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release -p sequin-sf-sidecar

FROM debian:bookworm-slim
COPY --from=build /src/target/release/sequin-sf /usr/local/bin/sequin-sf
# SIGTERM (docker stop) ends it between steps
ENTRYPOINT ["sequin-sf"]
