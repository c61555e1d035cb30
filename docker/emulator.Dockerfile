# The Salesforce emulator as a small image of its own.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release -p sf-emulator

FROM debian:bookworm-slim
COPY --from=build /src/target/release/sf-emulator /usr/local/bin/sf-emulator
EXPOSE 8899
ENTRYPOINT ["sf-emulator", "--listen", "0.0.0.0:8899"]
