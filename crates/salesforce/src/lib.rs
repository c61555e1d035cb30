//! A Salesforce REST client without Postgres dependencies: OAuth grants, describe,
//! SOQL queries, `/updated` and `/deleted`, composite requests, sObject Collections,
//! Bulk API 2.0 query jobs, limits, and a pure pacing module for request budgets.
//!
//! The client never creates a tokio runtime; call it from one the caller owns.

mod auth;
mod bulk;
/// Change Data Capture over the Pub/Sub API (gRPC): subscribe and decode change events.
pub mod cdc;
mod changes;
mod client;
mod composite;
mod config;
pub mod de;
mod describe;
mod error;
mod http;
pub mod pacing;
mod query;
mod sobjects;
mod usage;

pub use bulk::{parse_csv, BulkPageInfo, BulkResultsPage, CsvRows, JobInfo, JobState};
pub use changes::{DeletedRecord, DeletedRecords, UpdatedIds};
pub use client::{ApiVersion, Client, RequestStats, SessionInfo};
pub use composite::{
    CompositeSubrequest, CompositeSubresponse, MAX_QUERY_OR_COLLECTION_SUBREQUESTS, MAX_SUBREQUESTS,
};
pub use config::{ClientConfig, Credential, DEFAULT_API_VERSION};
pub use describe::{
    ChildRelationship, FieldDescribe, FieldType, GlobalDescribe, PicklistValue, SObjectDescribe,
    SObjectSummary,
};
pub use error::{ApiError, Error, ErrorCode, RecordError, Result};
pub use query::{QueryPage, RawQueryPage, MAX_BATCH_SIZE, MIN_BATCH_SIZE};
pub use sobjects::{SaveResult, MAX_COLLECTION_RECORDS, MAX_RETRIEVE_IDS};
pub use usage::ApiUsage;

/// Object names, field names, ids and job ids go into URL paths; anything but
/// letters, digits and `_` would change the path's meaning.
pub(crate) fn path_segment(s: &str) -> Result<&str> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        Ok(s)
    } else {
        Err(Error::Config(format!(
            "{s:?} is not a valid Salesforce name or id"
        )))
    }
}
