//! `sequin-sf`: runs the syncs of one database from beside it, over an ordinary
//! connection string, with the same engine the extension's background workers host.
//!
//! ```text
//! sequin-sf --database-url 'host=... dbname=... user=...' --key-file /path/to/key \
//!           [--listen 127.0.0.1:9187] [--tls-ca-file PATH | --tls-no-verify]
//! ```
//!
//! (or `SEQUIN_SF_DATABASE_URL`, `SEQUIN_SF_KEY_FILE`, `SEQUIN_SF_LISTEN`,
//! `SEQUIN_SF_TLS_CA_FILE`, `SEQUIN_SF_TLS_NO_VERIFY=1`). With an address to listen on,
//! `/healthz` and `/metrics` are served there (`http`); TLS to the database as `tls`
//! says. The key is the 32 bytes the
//! credentials' secrets were sealed with. Each sync runs in the process that holds its
//! lock (a session advisory lock): two of these against one database share the syncs,
//! never run one twice, and one takes over a sync within a pass once the other's
//! connection is gone. SIGTERM or SIGINT stops it between steps.
//!
//! This release runs against a database where the extension's SQL objects are
//! installed (`CREATE EXTENSION sequin_sf`, without preloading its library, so no
//! background worker runs the syncs too).

mod http;
mod stderr_log;
mod tls;
mod wire;

use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sync_engine::catalog::SyncConfig;
use sync_engine::db::tx;
use sync_engine::syncs::{self, Syncs};

use tokio_postgres_rustls::MakeRustlsConnect;
use wire::Wire;

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

fn stopping() -> bool {
    STOP.load(Ordering::Relaxed)
}

/// What the command line (or the environment) says.
struct Options {
    database_url: String,
    key_file: PathBuf,
    listen: Option<String>,
    tls_ca_file: Option<PathBuf>,
    tls_no_verify: bool,
}

fn usage(problem: &str) -> ! {
    eprintln!(
        "sequin-sf: {problem}\n\
         usage: sequin-sf --database-url URL --key-file PATH [--listen ADDRESS:PORT]\n\
         \x20                [--tls-ca-file PATH | --tls-no-verify]\n\
         (or SEQUIN_SF_DATABASE_URL, SEQUIN_SF_KEY_FILE, SEQUIN_SF_LISTEN,\n\
         SEQUIN_SF_TLS_CA_FILE, SEQUIN_SF_TLS_NO_VERIFY=1)"
    );
    std::process::exit(2)
}

fn options() -> Options {
    let mut database_url = std::env::var("SEQUIN_SF_DATABASE_URL").ok();
    let mut key_file = std::env::var("SEQUIN_SF_KEY_FILE").ok();
    let mut listen = std::env::var("SEQUIN_SF_LISTEN").ok();
    let mut tls_ca_file = std::env::var("SEQUIN_SF_TLS_CA_FILE").ok();
    let mut tls_no_verify = std::env::var("SEQUIN_SF_TLS_NO_VERIFY").is_ok_and(|v| v == "1");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--database-url" => {
                database_url = Some(
                    args.next()
                        .unwrap_or_else(|| usage("--database-url needs a value")),
                )
            }
            "--key-file" => {
                key_file = Some(
                    args.next()
                        .unwrap_or_else(|| usage("--key-file needs a value")),
                )
            }
            "--listen" => {
                listen = Some(
                    args.next()
                        .unwrap_or_else(|| usage("--listen needs an address")),
                )
            }
            "--tls-ca-file" => {
                tls_ca_file = Some(
                    args.next()
                        .unwrap_or_else(|| usage("--tls-ca-file needs a path")),
                )
            }
            "--tls-no-verify" => tls_no_verify = true,
            other => usage(&format!("unknown argument {other}")),
        }
    }
    Options {
        database_url: database_url.unwrap_or_else(|| usage("no database URL given")),
        key_file: key_file
            .map(PathBuf::from)
            .unwrap_or_else(|| usage("no key file given")),
        listen,
        tls_ca_file: tls_ca_file.map(PathBuf::from),
        tls_no_verify,
    }
}

/// The credentials' key: exactly 32 bytes.
fn read_key(path: &PathBuf) -> Result<[u8; 32], String> {
    let bytes = std::fs::read(path).map_err(|e| format!("the key file {}: {e}", path.display()))?;
    bytes.try_into().map_err(|_| {
        format!(
            "the key file {} is damaged (expected 32 bytes)",
            path.display()
        )
    })
}

/// Connects, named `sequin-sf` in pg_stat_activity, with the engine's session settings
/// (`syncs::set_session`).
fn connect(url: &str, tls: &MakeRustlsConnect) -> Result<Wire, String> {
    let mut config: postgres::Config = url.parse().map_err(|e| wire::describe(&e))?;
    config.application_name("sequin-sf");
    let client = config
        .connect(tls.clone())
        .map_err(|e| wire::describe(&e))?;
    let wire = Wire::new(client);
    syncs::set_session(&wire).map_err(|e| e.to_string())?;
    Ok(wire)
}

/// Sleeps `d`, waking early when asked to stop.
fn nap(d: Duration) {
    let until = Instant::now() + d;
    while !stopping() && Instant::now() < until {
        std::thread::sleep((until - Instant::now()).min(Duration::from_millis(50)));
    }
}

/// Runs the syncs over one connection until it is lost or the process is asked to stop.
fn serve(wire: Rc<Wire>, key: [u8; 32], key_name: String, heartbeat: &http::Heartbeat) {
    let db = wire.clone();
    let clients = Box::new(move |cfg: &SyncConfig| {
        let loaded = tx(&*db, |s| {
            Ok::<_, sync_engine::DbError>(sync_engine::credentials::load(
                s,
                &cfg.credential,
                (&key, &key_name),
            ))
        })
        .map_err(|e| e.to_string())?;
        let credential = loaded.map_err(|e| e.to_string())?;
        sync_engine::credentials::client(credential, Some(&cfg.call_options_client))
            .map_err(|e| e.to_string())
    });
    let mut running = Syncs::new(wire.clone(), clients);
    let release = env!("CARGO_PKG_VERSION");
    while !stopping() && !wire.is_closed() {
        heartbeat.beat();
        let Some(all) = syncs::load_syncs(&*wire, release) else {
            nap(Duration::from_secs(1));
            continue;
        };
        let active: Vec<&SyncConfig> = all.iter().filter(|s| !s.paused).collect();
        let (wait, taken) = running.run_locked(&active);
        for name in taken {
            log::info!("sequin-sf: running sync {name}");
        }
        nap(wait);
    }
}

fn main() {
    stderr_log::install();
    let opts = options();
    let key = read_key(&opts.key_file).unwrap_or_else(|e| usage(&e));
    // SAFETY: handlers that only store to an atomic flag
    unsafe {
        libc::signal(
            libc::SIGTERM,
            on_stop_signal as *const () as libc::sighandler_t,
        );
        libc::signal(
            libc::SIGINT,
            on_stop_signal as *const () as libc::sighandler_t,
        );
    }
    sync_engine::stop::set_check(stopping);
    let pages = std::env::temp_dir().join("sequin-sf-pages");
    if let Err(e) = std::fs::create_dir_all(&pages) {
        usage(&format!("cannot create {}: {e}", pages.display()));
    }
    sync_engine::read::use_page_dir(pages, "sidecar".into());
    sync_engine::read::remove_leftover_pages();
    let key_name = opts.key_file.display().to_string();
    let verify = match (&opts.tls_ca_file, opts.tls_no_verify) {
        (Some(_), true) => usage("--tls-ca-file and --tls-no-verify exclude each other"),
        (Some(path), false) => tls::Verify::CaFile(path),
        (None, true) => tls::Verify::None,
        (None, false) => tls::Verify::PublicRoots,
    };
    let no_verify = matches!(verify, tls::Verify::None);
    let tls = tls::connector(verify).unwrap_or_else(|e| usage(&e));
    let heartbeat = http::Heartbeat::default();
    if let Some(listen) = &opts.listen {
        let database = (opts.database_url.clone(), tls.clone());
        if let Err(e) = http::serve(listen, database, heartbeat.clone()) {
            usage(&format!("cannot listen on {listen}: {e}"));
        }
    }
    while !stopping() {
        match connect(&opts.database_url, &tls) {
            Ok(wire) => {
                log::info!("sequin-sf: connected");
                if no_verify {
                    log::warn!(
                        "sequin-sf: the database's TLS certificate is not checked (--tls-no-verify)"
                    );
                }
                serve(Rc::new(wire), key, key_name.clone(), &heartbeat);
                if !stopping() {
                    log::warn!("sequin-sf: the connection was lost; connecting again");
                }
            }
            Err(e) => {
                log::warn!("sequin-sf: could not connect: {e} (retrying in 1 s)");
                nap(Duration::from_secs(1));
            }
        }
    }
    log::info!("sequin-sf: stopping");
}
