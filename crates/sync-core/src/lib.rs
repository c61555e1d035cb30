//! The sync engine's decisions, free of Postgres and of HTTP: how Salesforce fields map
//! to columns, which SOQL to send for backfills and polls, how cursors move, how often
//! to poll within a request budget, how Bulk CSV rows become records, and the SQL text
//! that applies a page of records set-based. The extension crate executes these.

pub mod copy_rows;
pub mod cursor;
pub mod mapping;
pub mod naming;
pub mod progress;
pub mod queries;
pub mod ranges;
pub mod records;
pub mod schedule;
pub mod sql;
pub mod writes;

pub use mapping::{map_fields, ColumnSpec, FieldInfo, PgType};
