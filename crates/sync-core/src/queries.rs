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
    let mut q = format!("SELECT {} FROM {}", fields.join(", "), object);
    if let Some(id) = after_id.filter(|id| is_safe_id(id)) {
        q.push_str(&format!(" WHERE Id > '{id}'"));
    }
    q.push_str(" ORDER BY Id");
    if let Some(n) = limit {
        q.push_str(&format!(" LIMIT {n}"));
    }
    q
}

/// A Bulk 2.0 query over the whole object (Bulk results come unordered; resumption is
/// by the job's result locator).
pub fn bulk_query(object: &str, fields: &[&str]) -> String {
    format!("SELECT {} FROM {}", fields.join(", "), object)
}

/// Counts the records a backfill will read (queryAll is not used: deleted rows are not
/// backfilled).
pub fn count_query(object: &str) -> String {
    format!("SELECT COUNT() FROM {object}")
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
    fn poll_orders_by_stamp_then_id() {
        let since = Utc.with_ymd_and_hms(2024, 2, 6, 20, 48, 32).unwrap();
        assert_eq!(
            poll_query("Contact", &["Id", "Name"], "SystemModstamp", since),
            "SELECT Id, Name FROM Contact WHERE SystemModstamp >= 2024-02-06T20:48:32.000Z ORDER BY SystemModstamp, Id"
        );
    }
}
