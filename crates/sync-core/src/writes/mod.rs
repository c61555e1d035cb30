//! Write-back decisions, free of Postgres and HTTP: which queued write-log entries go
//! out together, how consecutive changes of one record merge, how operations pack into
//! sObject Collections and `/composite` calls, and what each answer from Salesforce
//! means for the entry (settled, retried later, or of unknown outcome).
//!
//! The extension reads unsettled entries, maps their column-keyed values to field
//! names, asks [`plan::plan`] what to send, and settles entries with the
//! [`outcome::Outcome`]s the classification functions return.

pub mod conditional;
pub mod entry;
pub mod outcome;
pub mod plan;

pub use conditional::if_unmodified_since;
pub use entry::{Action, EntryState, QueuedWrite, RowState};
pub use outcome::{
    classify_call_error, classify_record, classify_single, resolve_unknown, CallFault, Outcome,
    RecordError, RecordResult,
};
pub use plan::{
    marker_prefix, plan, ready_to_send, CompositeCall, GeneratedExternalId, LocalOutcome, OpKind,
    Plan, PlanSettings, Subrequest, WriteOp, MAX_COLLECTION_RECORDS, MAX_COLLECTION_SUBREQUESTS,
    MAX_SUBREQUESTS,
};
