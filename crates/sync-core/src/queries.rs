//! SOQL text for backfills, polls and counts.

use chrono::{DateTime, Utc};

use crate::cursor::soql_datetime;
use crate::mapping::ColumnSpec;

/// Fields a REST query selects: every mapped field (compound fields included; REST
/// returns them as JSON objects).
pub fn rest_fields(columns: &[ColumnSpec]) -> Vec<&str> {
    columns.iter().map(|c| c.field.as_str()).collect()
}

/// Whether a Bulk query can read every column of `object`: Bulk queries refuse base64
/// fields, and a job's query must be within SOQL's 100,000 characters; such objects are
/// backfilled through REST (which splits wide reads into field groups).
pub fn bulk_readable(object: &str, columns: &[ColumnSpec]) -> bool {
    !columns.iter().any(ColumnSpec::is_base64)
        && bulk_query(object, &bulk_fields(columns)).chars().count() <= SOQL_MAX_CHARS
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

/// Salesforce's bound on one REST request's URI and headers together: a URI over it is
/// answered 414, URI and headers together 431 ("In each REST call, the maximum length for
/// the combined URI and headers is 16,384 bytes"). A `GET /query?q=` naming the fields
/// of a wide object meets it long before SOQL's own 100,000 characters.
pub const REST_URI_AND_HEADERS: usize = 16_384;

/// What a REST query's `q` value may take of [`REST_URI_AND_HEADERS`]: the rest is left
/// for the path and the request's headers (bearer token, call and query options, the
/// client's own), which together stay well under 4 KB.
pub const REST_QUERY_BYTES: usize = REST_URI_AND_HEADERS - 4_096;

/// SOQL's own bound on a statement, in characters: the only one a Bulk job's query
/// (sent in a request body) meets.
pub const SOQL_MAX_CHARS: usize = 100_000;

/// At most what a read's clauses besides its field list take, encoded: `IsDeleted =
/// false`, two bounds on the page key (a field name and two literals), `ORDER BY` on it
/// and Id, `LIMIT`.
const CLAUSES_BYTES: usize = 640;

/// The bytes `s` takes as a form-urlencoded query value, as the client sends `q`: ASCII
/// letters, digits, `*-._` and the space (as `+`) one byte each, any other byte three.
pub fn url_encoded_len(s: &str) -> usize {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' | b' ' => 1,
            _ => 3,
        })
        .sum()
}

/// The fields of a REST read of `object` in groups whose queries each fit in
/// [`REST_QUERY_BYTES`]: every group starts with `keys` (Id, and a poll's stamp field),
/// which the groups are joined on and bounded by; the other fields follow in order.
/// One group when everything fits in one query, as for all but very wide objects.
pub fn field_groups<'a>(object: &str, fields: &[&'a str], keys: &[&'a str]) -> Vec<Vec<&'a str>> {
    let sep = url_encoded_len(", ");
    let cost = |f: &str| url_encoded_len(f) + sep;
    let base = url_encoded_len(&format!("SELECT  FROM {object}"))
        + CLAUSES_BYTES
        + keys.iter().map(|k| cost(k)).sum::<usize>();
    let mut groups = Vec::new();
    let mut group = keys.to_vec();
    let mut len = base;
    for &f in fields.iter().filter(|f| !keys.contains(f)) {
        if len + cost(f) > REST_QUERY_BYTES && group.len() > keys.len() {
            groups.push(std::mem::replace(&mut group, keys.to_vec()));
            len = base;
        }
        group.push(f);
        len += cost(f);
    }
    groups.push(group);
    groups
}

/// The key range of one page of a split read (the first field group's page), as the
/// queries of its other groups bound themselves by it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageRange {
    /// A backfill or refresh page (Id order): its first and last record's Id.
    Ids { first: String, last: String },
    /// A poll page (stamp order): the stamp field and its first and last record's stamp.
    Stamps {
        field: String,
        first: DateTime<Utc>,
        last: DateTime<Utc>,
    },
}

/// The query of one more field group of a split read: the records of the page whose
/// keys span `range`, and the few that entered that range since the page was read
/// (they are left out of the join), in the page's order. An Id range keeps a backfill's
/// conditions (no deleted rows of archiving objects); a stamp range is a poll's,
/// through queryAll, deleted rows included. `None` for an Id that is not one.
pub fn group_query(object: &str, fields: &[&str], range: &PageRange) -> Option<String> {
    let (cond, order): (Vec<String>, String) = match range {
        PageRange::Ids { first, last } => {
            if !is_safe_id(first) || !is_safe_id(last) {
                return None;
            }
            let mut cond: Vec<String> = not_deleted(object)
                .into_iter()
                .map(str::to_string)
                .collect();
            cond.push(format!("Id >= '{first}'"));
            cond.push(format!("Id <= '{last}'"));
            (cond, "Id".into())
        }
        PageRange::Stamps { field, first, last } => (
            vec![
                format!("{field} >= {}", soql_datetime(*first)),
                format!("{field} <= {}", soql_datetime(*last)),
            ],
            format!("{field}, Id"),
        ),
    };
    let mut q = select_where(object, fields, &cond);
    q.push_str(" ORDER BY ");
    q.push_str(&order);
    Some(q)
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
    fn wide_reads_split_into_groups_that_fit_a_request() {
        // 800 custom fields of 40-character names: about 35 KB of field list
        let names: Vec<String> = (0..800)
            .map(|i| format!("Field_with_a_long_descriptive_name_{i:03}__c"))
            .collect();
        let mut fields: Vec<&str> = vec!["Id", "Name", "SystemModstamp"];
        fields.extend(names.iter().map(String::as_str));
        let keys = ["Id", "SystemModstamp"];
        let groups = field_groups("Wide__c", &fields, &keys);
        assert!(groups.len() >= 3, "{} groups", groups.len());
        let since = Utc.with_ymd_and_hms(2024, 2, 6, 20, 48, 32).unwrap();
        let range = PageRange::Stamps {
            field: "SystemModstamp".into(),
            first: since,
            last: since,
        };
        for g in &groups {
            assert_eq!(&g[..2], &keys, "every group starts with the keys");
            for q in [
                poll_query("Wide__c", g, "SystemModstamp", since),
                group_query("Wide__c", g, &range).unwrap(),
            ] {
                assert!(url_encoded_len(&q) <= REST_QUERY_BYTES, "{}", q.len());
            }
        }
        // each field in exactly one group, in order, the keys in all
        let rest: Vec<&str> = groups.iter().flat_map(|g| g[2..].iter().copied()).collect();
        assert_eq!(
            rest,
            fields
                .iter()
                .copied()
                .filter(|f| !keys.contains(f))
                .collect::<Vec<_>>()
        );
        // a narrow object is one group: the read is not split
        assert_eq!(field_groups("Contact", &fields[..40], &keys).len(), 1);
    }

    #[test]
    fn group_queries_bound_the_page_by_its_keys() {
        let ids = PageRange::Ids {
            first: "00T000000000010AAA".into(),
            last: "00T000000000020AAA".into(),
        };
        assert_eq!(
            group_query("Task", &["Id", "Subject"], &ids).unwrap(),
            "SELECT Id, Subject FROM Task WHERE IsDeleted = false AND Id >= '00T000000000010AAA' AND Id <= '00T000000000020AAA' ORDER BY Id"
        );
        let bad = PageRange::Ids {
            first: "x' OR Id != '".into(),
            last: "00T000000000020AAA".into(),
        };
        assert_eq!(group_query("Task", &["Id"], &bad), None);
        let at = Utc.with_ymd_and_hms(2024, 2, 6, 20, 48, 32).unwrap();
        let stamps = PageRange::Stamps {
            field: "LastModifiedDate".into(),
            first: at,
            last: at + chrono::Duration::seconds(1),
        };
        assert_eq!(
            group_query("Contact", &["Id", "LastModifiedDate", "Email"], &stamps).unwrap(),
            "SELECT Id, LastModifiedDate, Email FROM Contact WHERE LastModifiedDate >= 2024-02-06T20:48:32.000Z AND LastModifiedDate <= 2024-02-06T20:48:33.000Z ORDER BY LastModifiedDate, Id"
        );
        assert_eq!(url_encoded_len("a b,'c"), 1 + 1 + 1 + 3 + 3 + 1);
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
