//! CSV output for Bulk query results.
