//! What can stop a step of a sync: shown in `sync_status.last_error` and retried.

#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("{0}")]
    Salesforce(#[from] salesforce::Error),
    #[error("database error: {0}")]
    Spi(#[from] pgrx::spi::Error),
    #[error("{object}: {message}")]
    Collection { object: String, message: String },
    /// The worker is stopping; the call in flight was abandoned.
    #[error("stopping")]
    Stopping,
    /// An ERROR raised by Postgres while applying (its transaction was rolled back).
    #[error("applying changes failed: {0}")]
    Database(String),
}
