//! `sequin-sf`: runs the syncs of one database from beside it, over an ordinary
//! connection string, with the same engine the extension's background workers host
//! (commands: `options::USAGE`).
//!
//! Against a database with no sequin_sf objects it installs them first, with plain SQL
//! and PL/pgSQL (`install`), as the role it connects as: no superuser, no library on
//! the server. Where the extension is installed (without its library preloaded) it
//! runs the extension's objects instead. Credentials' secrets are sealed with a key
//! only sequin-sf holds (`keys`, `credentials`). With an address to listen on,
//! `/healthz` and `/metrics` are served there (`http`). The connection string is read
//! as `conninfo` says, TLS to the database as `tls` says. Each sync runs in the process
//! that holds its lock (a session advisory lock): two of these against one database
//! share the syncs, never run one twice, and one
//! takes over a sync within a pass once the other's connection is gone. SIGTERM or
//! SIGINT stops it between steps.

mod conninfo;
mod credentials;
mod http;
mod install;
mod keys;
mod options;
mod org_catalog;
mod stderr_log;
mod tls;
mod wire;

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use keys::Key;
use options::{usage, Args};
use sync_engine::catalog::{Release, SyncConfig};
use sync_engine::syncs::{self, Syncs};

use conninfo::Database;
use wire::Wire;

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

fn stopping() -> bool {
    STOP.load(Ordering::Relaxed)
}

/// The engine's database over a connection, with its session settings
/// (`syncs::set_session`).
fn engine_session(client: postgres::Client) -> Result<Wire, String> {
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

const RELEASE: &str = env!("CARGO_PKG_VERSION");

/// Runs the syncs over one connection until it is lost or the process is asked to stop.
/// Beside a database without the extension, it also keeps the org's objects and
/// fields where SQL reads them (`org_catalog`).
fn serve(
    wire: Rc<Wire>,
    key: Rc<Key>,
    installed: &Release,
    heartbeat: &http::Heartbeat,
    catalog_requests: &http::Tally,
) {
    let db = wire.clone();
    let client_key = key.clone();
    let clients = Box::new(move |credential: &str, call_options: Option<&str>| {
        keys::client_for(&*db, &client_key, credential, call_options)
    });
    let mut running = Syncs::new(wire.clone(), clients);
    let mut org = match installed {
        Release::Plain(_) => match org_catalog::OrgCatalog::new(catalog_requests.clone()) {
            Ok(o) => Some(o),
            Err(e) => {
                log::warn!("sequin-sf: {e}");
                return;
            }
        },
        _ => None,
    };
    while !stopping() && !wire.is_closed() {
        heartbeat.beat();
        if let Some(org) = &mut org {
            if let Err(e) = org.refresh(&*wire, &key) {
                log::warn!("sequin-sf: reading the orgs' objects: {e}");
            }
        }
        let Some(all) = syncs::load_syncs(&*wire, RELEASE) else {
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

/// The key from `--key-file` or `SEQUIN_SF_KEY`.
fn key(args: &Args) -> Key {
    let found = match (args.path("key-file"), std::env::var("SEQUIN_SF_KEY")) {
        (Some(_), Ok(_)) => usage("give the key once: --key-file (SEQUIN_SF_KEY_FILE) or SEQUIN_SF_KEY"),
        (Some(path), Err(_)) => keys::from_file(&path),
        (None, Ok(hex)) => keys::from_hex(&hex, "SEQUIN_SF_KEY"),
        (None, Err(_)) => usage("no key given: --key-file PATH or SEQUIN_SF_KEY (`sequin-sf key create PATH` makes one)"),
    };
    found.unwrap_or_else(|e| usage(&e))
}

/// The database of the connection string and the TLS options.
fn database(args: &Args) -> Database {
    Database::new(
        &args.require("database-url"),
        args.path("tls-ca-file"),
        args.switch("tls-no-verify"),
    )
    .unwrap_or_else(|e| usage(&e))
}

const CONNECTION: [&str; 3] = ["database-url", "tls-ca-file", "tls-no-verify"];

/// A connection for a command that runs once: failures end the process.
fn connect_once(args: &Args) -> postgres::Client {
    database(args)
        .connect("sequin-sf")
        .unwrap_or_else(|e| fail(&e))
}

fn fail(message: &str) -> ! {
    eprintln!("sequin-sf: {message}");
    std::process::exit(1)
}

fn main() {
    stderr_log::install();
    let args = Args::parse(std::env::args().skip(1));
    let words: Vec<&str> = args.words.iter().map(String::as_str).collect();
    match words.as_slice() {
        [] | ["run"] => run(&args),
        ["install"] => {
            args.only(&CONNECTION);
            let mut client = connect_once(&args);
            match install::ensure(&mut client, RELEASE) {
                Ok(Release::Extension(v)) => println!(
                    "the extension sequin_sf {v} is installed in this database: nothing to do"
                ),
                Ok(_) => {
                    install::finish(&mut client).unwrap_or_else(|e| fail(&e));
                    println!("sequin_sf {RELEASE} is installed")
                }
                Err(e) => fail(&e),
            }
        }
        ["key", "create", path] => {
            args.only(&[]);
            keys::create(std::path::Path::new(path)).unwrap_or_else(|e| fail(&e));
            println!("wrote a new key to {path}: keep a copy where you keep secrets; the credentials sealed with it cannot be read without it");
        }
        ["credential", "create", name] => {
            args.only(
                &[
                    &CONNECTION[..],
                    &[
                        "key-file",
                        "kind",
                        "login-url",
                        "client-id",
                        "username",
                        "secrets-file",
                    ],
                ]
                .concat(),
            );
            let key = key(&args);
            let secrets = credentials::secrets(args.path("secrets-file").as_deref())
                .unwrap_or_else(|e| fail(&e));
            let new = credentials::NewCredential {
                name: name.to_string(),
                kind: args.require("kind"),
                login_url: args
                    .get("login-url")
                    .unwrap_or_else(|| "https://login.salesforce.com".into()),
                client_id: args.get("client-id"),
                username: args.get("username"),
            };
            let wire = engine_session(connect_once(&args)).unwrap_or_else(|e| fail(&e));
            println!(
                "{}",
                credentials::create(&wire, &key, &new, &secrets).unwrap_or_else(|e| fail(&e))
            );
        }
        ["credential", "rotate-key"] => {
            args.only(&[&CONNECTION[..], &["key-file", "new-key-file"]].concat());
            let old = key(&args);
            let new = keys::from_file(
                &args
                    .path("new-key-file")
                    .unwrap_or_else(|| usage("--new-key-file is missing")),
            )
            .unwrap_or_else(|e| fail(&e));
            let wire = engine_session(connect_once(&args)).unwrap_or_else(|e| fail(&e));
            let n = credentials::rotate_key(&wire, &old, &new).unwrap_or_else(|e| fail(&e));
            println!(
                "{n} credential(s) sealed again with {}: run sequin-sf with that key from now on",
                new.name
            );
        }
        _ => usage(&format!("unknown command {}", args.words.join(" "))),
    }
}

/// `sequin-sf run`: installs the objects if the database has none, then runs its syncs
/// until SIGTERM or SIGINT, connecting again whenever the connection is lost.
fn run(args: &Args) {
    args.only(&[&CONNECTION[..], &["key-file", "listen"]].concat());
    let database = database(args);
    let key = Rc::new(key(args));
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
    let heartbeat = http::Heartbeat::default();
    let catalog_requests = http::Tally::default();
    if let Some(listen) = args.get("listen") {
        if let Err(e) = http::serve(
            &listen,
            database.clone(),
            heartbeat.clone(),
            catalog_requests.clone(),
        ) {
            usage(&format!("cannot listen on {listen}: {e}"));
        }
    }
    while !stopping() {
        let connected = database
            .connect("sequin-sf")
            .map_err(|e| format!("could not connect: {e}"))
            .and_then(|mut client| {
                let installed = install::ensure(&mut client, RELEASE)?;
                Ok((engine_session(client)?, installed))
            });
        match connected {
            Ok((wire, installed)) => {
                log::info!("sequin-sf: connected");
                if database.unchecked {
                    log::warn!(
                        "sequin-sf: the database's TLS certificate is not checked (--tls-no-verify)"
                    );
                }
                serve(
                    Rc::new(wire),
                    key.clone(),
                    &installed,
                    &heartbeat,
                    &catalog_requests,
                );
                if !stopping() {
                    log::warn!("sequin-sf: the connection was lost; connecting again");
                }
            }
            Err(e) => {
                log::warn!("sequin-sf: {e} (trying again in 5 s)");
                nap(Duration::from_secs(5));
            }
        }
    }
    log::info!("sequin-sf: stopping");
}
