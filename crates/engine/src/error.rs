//! What can stop a step of a sync: shown in `sync_status.last_error` and retried.

#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("{0}")]
    Salesforce(#[from] salesforce::Error),
    #[error("database error: {0}")]
    Db(#[from] crate::db::DbError),
    #[error("{object}: {message}")]
    Collection { object: String, message: String },
    /// The worker is stopping; the call in flight was abandoned.
    #[error("stopping")]
    Stopping,
    /// An ERROR raised by Postgres while applying (its transaction was rolled back).
    #[error("applying changes failed: {0}")]
    Database(String),
}

/// A login the login host answered with something other than an OAuth error naming
/// what is wrong with the credential (`invalid_grant`, `invalid_client_id`, ... in the
/// `error` field): an API-style error body or a proxy's page. It says nothing about the
/// credential, so it is retried as a fault that passes; a redirect is a wrong login
/// URL, which does not pass.
fn odd_login_answer(e: &salesforce::Error) -> bool {
    matches!(e, salesforce::Error::Auth { status, error, .. }
        if error.starts_with("http_") && !(300..400).contains(status))
}

/// Whether retrying later can cure `e` without anyone acting.
pub fn passes_by_itself(e: &salesforce::Error) -> bool {
    e.is_transient() || odd_login_answer(e)
}

/// Refused logins and refused access (401/403 that are not the daily quota): retried
/// rarely, as they are not expected to pass until someone fixes the credential or the
/// integration user's permissions.
pub fn may_need_a_person(e: &salesforce::Error) -> bool {
    !passes_by_itself(e)
        && (matches!(e.status(), Some(401 | 403)) || matches!(e, salesforce::Error::Auth { .. }))
}
