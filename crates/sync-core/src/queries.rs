//! SOQL text for backfills, polls and counts.

use chrono::{DateTime, Utc};

use crate::cursor::soql_datetime;
use crate::mapping::ColumnSpec;

/// Fields a REST query selects: every mapped field (compound fields included; REST
/// returns them as JSON objects).
pub fn rest_fields(columns: &[ColumnSpec]) -> Vec<&str> {
    columns.iter().map(|c| c.field.as_str()).collect()
}

/// Whether a Bulk query can read every column: Bulk queries refuse base64 fields, so
/// objects with one are backfilled through REST.
pub fn bulk_readable(columns: &[ColumnSpec]) -> bool {
    !columns.iter().any(ColumnSpec::is_base64)
}

/// Fields a Bulk query selects: compound fields are not allowed there and are rebuilt
/// from their components instead; base64 fields are refused (`bulk_readable`).
pub fn bulk_fields(columns: &[ColumnSpec]) -> Vec<&str> {
    columns
        .iter()
        .filter(|c| !c.is_compound() && !c.is_base64())
        .map(|c| c.field.as_str())
        .collect()
}

/// Objects whose old records Salesforce archives: Task and Event ("Archived
/// Activities", SOAP API Developer Guide: `query()` "automatically filters out all
/// records where isArchived is set to true"; in the API, archived activities "can only
/// be queried via queryAll()"). The REST `/queryAll` resource and Bulk 2.0 jobs of
/// operation `queryAll` return them, along with soft-deleted records.
const ARCHIVING_OBJECTS: [&str; 2] = ["Task", "Event"];

/// Whether a backfill (REST pages, a Bulk job, its COUNT(), a calculated-field
/// refresh) of `object` reads through `queryAll` rather than `query`: for objects
/// whose records Salesforce archives, which `query` never returns. Its queries then
/// leave out soft-deleted records themselves (`IsDeleted = false`), as a table holds
/// none. Polls always read through `queryAll` (soft deletes must arrive).
pub fn backfill_reads_all(object: &str) -> bool {
    ARCHIVING_OBJECTS
        .iter()
        .any(|o| o.eq_ignore_ascii_case(object))
}

/// The condition that keeps a `queryAll` backfill to what a table holds.
pub(crate) fn not_deleted(object: &str) -> Option<&'static str> {
    backfill_reads_all(object).then_some("IsDeleted = false")
}

/// `SELECT ... FROM object` with `conditions` joined by AND.
pub(crate) fn select_where(object: &str, fields: &[&str], conditions: &[String]) -> String {
    let mut q = format!("SELECT {} FROM {}", fields.join(", "), object);
    if !conditions.is_empty() {
        q.push_str(" WHERE ");
        q.push_str(&conditions.join(" AND "));
    }
    q
}

/// Salesforce ids are alphanumeric; anything else would change the query's meaning.
fn is_safe_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 18 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// One keyset page source of a REST backfill (or a calculated-field refresh):
/// everything after `after_id` in Id order, at most `limit` records. Resuming from the
/// last stored Id never re-reads a stored row.
pub fn backfill_query(
    object: &str,
    fields: &[&str],
    after_id: Option<&str>,
    limit: Option<u32>,
) -> String {
    let mut cond: Vec<String> = not_deleted(object)
        .into_iter()
        .map(str::to_string)
        .collect();
    if let Some(id) = after_id.filter(|id| is_safe_id(id)) {
        cond.push(format!("Id > '{id}'"));
    }
    let mut q = select_where(object, fields, &cond);
    q.push_str(" ORDER BY Id");
    if let Some(n) = limit {
        q.push_str(&format!(" LIMIT {n}"));
    }
    q
}

/// A Bulk 2.0 query over the whole object (Bulk results come unordered; resumption is
/// by the job's result locator).
pub fn bulk_query(object: &str, fields: &[&str]) -> String {
    let cond: Vec<String> = not_deleted(object)
        .into_iter()
        .map(str::to_string)
        .collect();
    select_where(object, fields, &cond)
}

/// Counts the records a backfill will read (deleted rows are not backfilled).
pub fn count_query(object: &str) -> String {
    let cond: Vec<String> = not_deleted(object)
        .into_iter()
        .map(str::to_string)
        .collect();
    select_where(object, &["COUNT()"], &cond)
}

/// The smallest (or, `descending`, the largest) Id a backfill will read: the edges an
/// Id-range split interpolates between.
pub fn edge_query(object: &str, descending: bool) -> String {
    let cond: Vec<String> = not_deleted(object)
        .into_iter()
        .map(str::to_string)
        .collect();
    let dir = if descending { "DESC" } else { "ASC" };
    format!(
        "{} ORDER BY Id {dir} LIMIT 1",
        select_where(object, &["Id"], &cond)
    )
}

/// An incremental poll (sent through queryAll so soft deletes arrive too): every
/// record stamped at or after `since`, oldest first and Id-ordered within one stamp so
/// a cursor can resume exactly.
pub fn poll_query(
    object: &str,
    fields: &[&str],
    stamp_field: &str,
    since: DateTime<Utc>,
) -> String {
    format!(
        "SELECT {} FROM {} WHERE {} >= {} ORDER BY {}, Id",
        fields.join(", "),
        object,
        stamp_field,
        soql_datetime(since),
        stamp_field
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::columns_of;
    use chrono::TimeZone;

    fn cols() -> Vec<ColumnSpec> {
        columns_of(&[
            ("Id", "id", None),
            ("Name", "string", None),
            ("BillingCity", "string", Some("BillingAddress")),
            ("BillingAddress", "address", None),
            ("SystemModstamp", "datetime", None),
        ])
    }

    #[test]
    fn backfill_pages_by_id() {
        let c = cols();
        let f = rest_fields(&c);
        assert_eq!(
            backfill_query("Account", &f, None, None),
            "SELECT Id, Name, BillingCity, BillingAddress, SystemModstamp FROM Account ORDER BY Id"
        );
        assert_eq!(
            backfill_query("Account", &f[..2], Some("001000000000001AAA"), Some(500)),
            "SELECT Id, Name FROM Account WHERE Id > '001000000000001AAA' ORDER BY Id LIMIT 500"
        );
        // an id that is not an id is ignored rather than spliced into the query
        assert_eq!(
            backfill_query("Account", &f[..1], Some("x' OR Name != '"), None),
            "SELECT Id FROM Account ORDER BY Id"
        );
    }

    #[test]
    fn bulk_leaves_out_compound_fields() {
        let c = cols();
        assert_eq!(
            bulk_query("Account", &bulk_fields(&c)),
            "SELECT Id, Name, BillingCity, SystemModstamp FROM Account"
        );
        assert_eq!(count_query("Account"), "SELECT COUNT() FROM Account");
    }

    #[test]
    fn archived_activities_are_backfilled_through_query_all_without_deleted_rows() {
        assert!(backfill_reads_all("Task") && backfill_reads_all("Event"));
        assert!(backfill_reads_all("task"));
        assert!(!backfill_reads_all("Account") && !backfill_reads_all("TaskRelation"));
        let f = ["Id", "Subject"];
        assert_eq!(
            backfill_query("Task", &f, None, None),
            "SELECT Id, Subject FROM Task WHERE IsDeleted = false ORDER BY Id"
        );
        assert_eq!(
            backfill_query("Event", &f, Some("00U000000000001AAA"), Some(500)),
            "SELECT Id, Subject FROM Event WHERE IsDeleted = false AND Id > '00U000000000001AAA' ORDER BY Id LIMIT 500"
        );
        assert_eq!(
            bulk_query("Task", &f),
            "SELECT Id, Subject FROM Task WHERE IsDeleted = false"
        );
        assert_eq!(
            count_query("Event"),
            "SELECT COUNT() FROM Event WHERE IsDeleted = false"
        );
        assert_eq!(
            edge_query("Task", true),
            "SELECT Id FROM Task WHERE IsDeleted = false ORDER BY Id DESC LIMIT 1"
        );
        // other objects read through query, as before
        assert_eq!(bulk_query("Account", &f), "SELECT Id, Subject FROM Account");
        assert_eq!(
            edge_query("Account", false),
            "SELECT Id FROM Account ORDER BY Id ASC LIMIT 1"
        );
        let r = crate::ranges::IdRange {
            from: Some("00T000000000010AAA".into()),
            after: None,
            to: Some("00T000000000020AAA".into()),
        };
        assert_eq!(
            r.query("Task", &f, None),
            "SELECT Id, Subject FROM Task WHERE IsDeleted = false AND Id >= '00T000000000010AAA' AND Id < '00T000000000020AAA' ORDER BY Id"
        );
    }

    #[test]
    fn poll_orders_by_stamp_then_id() {
        let since = Utc.with_ymd_and_hms(2024, 2, 6, 20, 48, 32).unwrap();
        assert_eq!(
            poll_query("Contact", &["Id", "Name"], "SystemModstamp", since),
            "SELECT Id, Name FROM Contact WHERE SystemModstamp >= 2024-02-06T20:48:32.000Z ORDER BY SystemModstamp, Id"
        );
    }
}
