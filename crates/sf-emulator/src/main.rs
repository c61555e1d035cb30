use clap::Parser;
use std::io::Write;

#[tokio::main]
async fn main() {
    let config = sf_emulator::Config::parse();
    let running = match sf_emulator::start(config).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sf-emulator: {e}");
            std::process::exit(1);
        }
    };
    let mut out = std::io::stdout();
    let _ = writeln!(out, "listening on {}", running.base_url());
    if let Some(a) = running.pubsub_addr() {
        let _ = writeln!(out, "pubsub listening on {a}");
    }
    let _ = out.flush();
    let _ = tokio::signal::ctrl_c().await;
    running.shutdown().await;
}
