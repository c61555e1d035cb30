//! Management helpers that need Rust: sealing secrets, logging in to check a credential,
//! listing an org's objects, naming. The user-facing functions that call them are
//! plpgsql in `sql/api.sql`.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::PgLogLevel;
use pgrx::PgSqlErrorCode;

use crate::secrets;
use sync_engine::credentials::Secrets;

fn fail(code: PgSqlErrorCode, message: String, hint: &str) -> ! {
    ErrorReport::new(code, message, "sequin_sf")
        .set_hint(hint)
        .report(PgLogLevel::ERROR);
    unreachable!("ERROR does not return")
}

/// Encrypts the secret parts of a credential with the data directory's key, bound to
/// the credential's name. The key file is created with the first credential only.
#[pg_extern(volatile, parallel_unsafe)]
fn _seal_credential_secrets(
    credential: &str,
    client_secret: Option<&str>,
    refresh_token: Option<&str>,
    password: Option<&str>,
    private_key: Option<&str>,
) -> Vec<u8> {
    let s = Secrets {
        client_secret: client_secret.map(str::to_string),
        refresh_token: refresh_token.map(str::to_string),
        password: password.map(str::to_string),
        private_key: private_key.map(str::to_string),
    };
    let first = Spi::get_one::<bool>("SELECT NOT EXISTS (SELECT 1 FROM sequin_sf._credentials)")
        .ok()
        .flatten()
        .unwrap_or(false);
    let using = if first {
        secrets::KeyUse::CreateIfMissing
    } else {
        secrets::KeyUse::ExistingOnly
    };
    let key = secrets::key(using).unwrap_or_else(|e| {
        fail(
            PgSqlErrorCode::ERRCODE_CONFIG_FILE_ERROR,
            e.to_string(),
            "the key file lives in the data directory and must be readable by the postgres user",
        )
    });
    sync_engine::credentials::seal(&key, credential, &s).unwrap_or_else(|e| {
        fail(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            format!("sealing the credential's secrets failed: {e}"),
            "report this as a bug",
        )
    })
}

/// The sealing function of release 0.1.0, whose SQL definition stays in a database at
/// 0.1.0 until `ALTER EXTENSION sequin_sf UPDATE` drops it. The symbol is kept so that
/// such a database (and `CREATE EXTENSION ... VERSION '0.1.0'`) still loads; a call
/// says to update. Not part of this release's SQL.
#[pg_extern(volatile, parallel_unsafe, sql = false)]
fn _seal_secrets(
    _client_secret: Option<&str>,
    _refresh_token: Option<&str>,
    _password: Option<&str>,
    _private_key: Option<&str>,
) -> Vec<u8> {
    fail(
        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        format!(
            "the sequin_sf objects in this database are older than the installed library ({})",
            env!("CARGO_PKG_VERSION")
        ),
        "run ALTER EXTENSION sequin_sf UPDATE, then create the credential",
    )
}

/// A logged-in client for the credential and the runtime to drive it; any failure is
/// an ERROR saying whether the credential or the login failed.
fn logged_in(credential: &str) -> (salesforce::Client, tokio::runtime::Runtime) {
    let client = crate::client::client_for(credential, None).unwrap_or_else(|e| {
        fail(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            e.to_string(),
            "check the credential with SELECT * FROM sequin_sf.credentials",
        )
    });
    let runtime = crate::client::runtime().unwrap_or_else(|e| {
        fail(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            format!("could not start the HTTP runtime: {e}"),
            "",
        )
    });
    if let Err(e) = runtime.block_on(client.authenticate()) {
        fail(
            PgSqlErrorCode::ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION,
            format!("could not log in to Salesforce with credential \"{credential}\": {e}"),
            "check login_url, client_id and the secrets; recreate the credential with sequin_sf.create_credential(...) after sequin_sf.drop_credential(...)",
        );
    }
    (client, runtime)
}

/// Logs in with the credential and lists the org's objects (global describe). Any
/// failure is an ERROR saying whether the login or the describe failed.
#[pg_extern(volatile, parallel_unsafe)]
fn _describe_global(
    credential: &str,
) -> TableIterator<
    'static,
    (
        name!(name, String),
        name!(label, String),
        name!(custom, bool),
        name!(queryable, bool),
        name!(replicateable, bool),
    ),
> {
    let (client, runtime) = logged_in(credential);
    let described = runtime.block_on(client.describe_global(None));
    let objects = match described {
        Ok(Some(g)) => g.sobjects,
        Ok(None) => Vec::new(),
        Err(e) => fail(
            PgSqlErrorCode::ERRCODE_CONNECTION_FAILURE,
            format!("logged in with credential \"{credential}\" but could not list the org's objects: {e}"),
            "retry; if it persists, check the Salesforce user's API permissions",
        ),
    };
    TableIterator::new(
        objects
            .into_iter()
            .map(|o| (o.name, o.label, o.custom, o.queryable, o.replicateable)),
    )
}

/// Logs in and describes one object: its fields as the org has them now. Settings that
/// name fields are checked against this at the call, so they work before the sync's
/// worker has set the collection up (and filled `sequin_sf.columns`).
#[pg_extern(volatile, parallel_unsafe)]
fn _describe_fields(
    credential: &str,
    object: &str,
) -> TableIterator<'static, (name!(name, String), name!(external_id, bool))> {
    let (client, runtime) = logged_in(credential);
    let fields = match runtime.block_on(client.describe(object, None)) {
        Ok(Some(d)) => d.fields,
        Ok(None) => Vec::new(),
        Err(e) => fail(
            PgSqlErrorCode::ERRCODE_CONNECTION_FAILURE,
            format!(
                "logged in with credential \"{credential}\" but could not describe {object}: {e}"
            ),
            "retry; if it persists, check that the Salesforce user can read the object",
        ),
    };
    TableIterator::new(fields.into_iter().map(|f| (f.name, f.external_id)))
}

/// Up to three names from `candidates` close to `wanted`, for "did you mean" hints.
#[pg_extern(immutable, parallel_safe)]
fn _near_names(wanted: &str, candidates: Vec<String>) -> Vec<String> {
    sync_core::naming::near_names(wanted, &candidates, 3)
        .into_iter()
        .map(str::to_string)
        .collect()
}

/// Salesforce's cap on records per sObject Collections request, for the SQL side
/// (write_settings.batch_size): the number itself lives in sync-core.
#[pg_extern(immutable, parallel_safe)]
fn _max_collection_records() -> i32 {
    sync_core::writes::MAX_COLLECTION_RECORDS as i32
}

/// The table (or column) name for a Salesforce API name: `OpportunityLineItem` ->
/// `opportunity_line_item`.
#[pg_extern(immutable, parallel_safe)]
fn _snake_case(api_name: &str) -> String {
    sync_core::naming::snake_case(api_name)
}
