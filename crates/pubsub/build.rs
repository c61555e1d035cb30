//! Compiles proto/pubsub_api.proto with protox (pure Rust), so building needs no
//! system `protoc`. The server half is generated only with the `server` feature.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/pubsub_api.proto";
    println!("cargo:rerun-if-changed={proto}");
    let fds = protox::compile([proto], ["proto"])?;
    let server = std::env::var_os("CARGO_FEATURE_SERVER").is_some();
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(server)
        .build_transport(false)
        .compile_fds(fds)?;
    Ok(())
}
