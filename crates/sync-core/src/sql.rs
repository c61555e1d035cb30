//! SQL text for data tables: DDL from the column mapping, and the set-based statement
//! that applies one page of Salesforce records (upserts, soft deletes, events) at once.
//!
//! The apply statement takes `$1 jsonb`, an array of records keyed by API name.
//! Rows whose stored stamp equals the incoming one are left alone and produce no event,
//! which is what makes overlapping polls and resumed pages idempotent.

use crate::mapping::{ColumnSpec, PgType};
use crate::naming::{quote_ident as qi, quote_literal as ql};

/// `jsonb_build_object` takes at most 100 arguments (50 pairs).
const PAIRS_PER_OBJECT: usize = 50;

/// DDL for a new data table: a local surrogate key (rows inserted locally have no
/// Salesforce Id yet), the Salesforce Id unique but nullable, one column per field, and
/// `_write_state` for the write path (NULL = matches Salesforce).
pub fn create_table(schema: &str, table: &str, columns: &[ColumnSpec]) -> Vec<String> {
    let mut defs = vec![
        "_row_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY".to_string(),
        "id text UNIQUE".to_string(),
    ];
    for c in columns.iter().filter(|c| c.column != "id") {
        defs.push(format!("{} {}", qi(&c.column), c.pg_type.as_sql()));
    }
    defs.push("_write_state text".to_string());
    let full = format!("{}.{}", qi(schema), qi(table));
    let mut stmts = vec![format!(
        "CREATE TABLE {full} (\n  {}\n)",
        defs.join(",\n  ")
    )];
    for stamp in ["system_modstamp", "last_modified_date"] {
        if columns.iter().any(|c| c.column == stamp) {
            stmts.push(format!(
                "CREATE INDEX {} ON {full} ({})",
                qi(&crate::naming::fit_identifier(format!(
                    "{table}_{stamp}_idx"
                ))),
                qi(stamp)
            ));
            break;
        }
    }
    stmts
}

/// DDL adding a column for a field that appeared after the table was created.
pub fn add_column(schema: &str, table: &str, column: &ColumnSpec) -> String {
    format!(
        "ALTER TABLE {}.{} ADD COLUMN IF NOT EXISTS {} {}",
        qi(schema),
        qi(table),
        qi(&column.column),
        column.pg_type.as_sql()
    )
}

/// Changes column `c` (of its current `pg_type`) to `to`, converting each value the way
/// Salesforce would have written it (date/times as in its JSON, dates as UTC midnight).
pub fn alter_column_type(schema: &str, table: &str, c: &ColumnSpec, to: PgType) -> String {
    let col = qi(&c.column);
    let using = match (c.pg_type, to) {
        (PgType::Timestamptz | PgType::Time, PgType::Text) => api_value_of(&col, c.pg_type),
        (PgType::Date, PgType::Timestamptz) => format!("({col}::timestamp AT TIME ZONE 'UTC')"),
        _ => format!("{col}::{}", to.as_sql()),
    };
    format!(
        "ALTER TABLE {}.{} ALTER COLUMN {col} TYPE {} USING {using}",
        qi(schema),
        qi(table),
        to.as_sql()
    )
}

/// What the apply statement writes to.
#[derive(Debug, Clone, Copy)]
pub struct ApplyTarget<'a> {
    pub schema: &'a str,
    pub table: &'a str,
    /// `salesforce:contact`
    pub collection_id: &'a str,
    /// Columns currently filled (fields removed from Salesforce are not in here).
    pub columns: &'a [ColumnSpec],
    /// The API name of the stamp field (`SystemModstamp`), used for de-duplication.
    pub stamp_field: Option<&'a str>,
    /// Whether to append to `<schema>._sync_events`.
    pub emit_events: bool,
}

impl ApplyTarget<'_> {
    pub fn full_table(&self) -> String {
        format!("{}.{}", qi(self.schema), qi(self.table))
    }

    fn events_table(&self) -> String {
        format!("{}._sync_events", qi(self.schema))
    }

    fn stamp_column(&self) -> Option<&ColumnSpec> {
        let f = self.stamp_field?;
        self.columns.iter().find(|c| c.field == f)
    }

    /// Whether record `src` of a page is in the recycle bin (only `queryAll` returns such).
    fn src_is_deleted(&self) -> &'static str {
        if self.columns.iter().any(|c| c.field == "IsDeleted") {
            "coalesce(src.\"IsDeleted\", false)"
        } else {
            "false"
        }
    }
}

/// The value of column `c` of row `alias` as Salesforce would write it in JSON.
fn api_value(alias: &str, c: &ColumnSpec) -> String {
    api_value_of(&format!("{alias}.{}", qi(&c.column)), c.pg_type)
}

/// Expression `col` of type `t` as Salesforce would write it in JSON.
fn api_value_of(col: &str, t: PgType) -> String {
    match t {
        PgType::Timestamptz => {
            format!("to_char({col} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"+0000\"')")
        }
        PgType::Time => format!("to_char(DATE '2000-01-01' + {col}, 'HH24:MI:SS.MS\"Z\"')"),
        _ => col.to_string(),
    }
}

/// A jsonb expression rebuilding row `alias` keyed by API names.
pub fn api_json(alias: &str, columns: &[ColumnSpec]) -> String {
    if columns.is_empty() {
        return "'{}'::jsonb".to_string();
    }
    columns
        .chunks(PAIRS_PER_OBJECT)
        .map(|chunk| {
            let pairs: Vec<String> = chunk
                .iter()
                .map(|c| format!("{}, {}", ql(&c.field), api_value(alias, c)))
                .collect();
            format!("jsonb_build_object({})", pairs.join(", "))
        })
        .collect::<Vec<_>>()
        .join(" || ")
}

/// A jsonb expression holding the prior values (from `old`) of the fields whose value
/// differs in `new`, keyed by API name.
pub fn changed_fields_json(old: &str, new: &str, columns: &[ColumnSpec]) -> String {
    let parts: Vec<String> = columns
        .iter()
        .filter(|c| c.column != "id")
        .map(|c| {
            format!(
                "CASE WHEN {old}.{col} IS DISTINCT FROM {new}.{col} THEN jsonb_build_object({}, {}) ELSE '{{}}'::jsonb END",
                ql(&c.field),
                api_value(old, c),
                col = qi(&c.column)
            )
        })
        .collect();
    if parts.is_empty() {
        "'{}'::jsonb".to_string()
    } else {
        format!("({})", parts.join(" || "))
    }
}

/// The type a record value is read as, and the expression turning it into the column.
fn source_type_and_expr(c: &ColumnSpec) -> (&'static str, String) {
    let src = format!("src.{}", qi(&c.field));
    match c.pg_type {
        // Salesforce writes times as `13:30:00.000Z`; read as text and drop the zone.
        PgType::Time => ("text", format!("NULLIF(rtrim({src}, 'Z'), '')::time")),
        // A whole number may come written as `3.0` (a number field with scale 0).
        t @ (PgType::Integer | PgType::BigInt) => ("numeric", format!("{src}::{}", t.as_sql())),
        t => (t.as_sql(), src),
    }
}

/// The rows of a page. `$1` is the JSON array text as Salesforce sent it: `json` (not
/// `jsonb`) is parsed lazily, once, without building a binary document first, and
/// `json_to_recordset` expands the whole array in one call. Events also need each
/// record as a document (`rec`) and its position (`ord`), so that form expands per
/// element.
fn page_source(with_records: bool, record_def: &str) -> String {
    if with_records {
        format!(
            "SELECT j.ord, j.rec::jsonb - 'attributes' AS rec, r.*\n\
             FROM json_array_elements($1::json) WITH ORDINALITY AS j(rec, ord)\n\
             CROSS JOIN LATERAL json_to_record(j.rec) AS r({record_def})"
        )
    } else {
        format!("SELECT r.* FROM json_to_recordset($1::json) AS r({record_def})")
    }
}

/// For a page of records: how each is read (`"Field" type`), the columns written, and
/// the expression filling each from the record.
fn page_columns(cols: &[ColumnSpec]) -> (Vec<String>, Vec<String>, Vec<String>) {
    let record_def = cols
        .iter()
        .map(|c| format!("{} {}", qi(&c.field), source_type_and_expr(c).0))
        .collect();
    let insert_cols = cols.iter().map(|c| qi(&c.column)).collect();
    let select_exprs = cols.iter().map(|c| source_type_and_expr(c).1).collect();
    (record_def, insert_cols, select_exprs)
}

/// The statement applying a page: `$1` is the text of a JSON array of records. Returns
/// one row `(upserted bigint, deleted bigint, events bigint)`.
pub fn apply_page(t: &ApplyTarget) -> String {
    let cols = t.columns;
    let full = t.full_table();
    let (record_def, insert_cols, select_exprs) = page_columns(cols);
    let names: Vec<&str> = cols.iter().map(|c| c.column.as_str()).collect();
    let on_conflict = update_when_changed(t, &names);
    let is_deleted = t.src_is_deleted();
    let stamp_of = |alias: &str| match t.stamp_column() {
        Some(s) => format!("{alias}.{}", qi(&s.column)),
        None => "NULL::timestamptz".to_string(),
    };
    let source = page_source(t.emit_events, &record_def.join(", "));
    let mut sql = format!(
        "WITH src AS ({source}),\n\
         old AS (SELECT o.* FROM {full} o JOIN src ON o.id = src.\"Id\"),\n\
         del AS (DELETE FROM {full} d USING src WHERE d.id = src.\"Id\" AND {is_deleted} RETURNING d.id),\n\
         up AS (\n\
         INSERT INTO {full} AS t ({insert_cols})\n\
         SELECT {select_exprs} FROM src WHERE NOT {is_deleted} AND src.\"Id\" IS NOT NULL\n\
         ON CONFLICT (id) {on_conflict}\n\
         RETURNING t.*\n\
         )",
        insert_cols = insert_cols.join(", "),
        select_exprs = select_exprs.join(", "),
    );
    if t.emit_events {
        let diff = changed_fields_json("old", "up", cols);
        let src_stamp = match t.stamp_column() {
            Some(_) => format!(
                "(src.rec->>{})::timestamptz",
                ql(t.stamp_field.unwrap_or("SystemModstamp"))
            ),
            None => "NULL::timestamptz".to_string(),
        };
        sql.push_str(&format!(
            ",\n\
             ev AS (\n\
             INSERT INTO {events} (collection_id, upstream_id, upstream_updated_at, event, data, previous_data)\n\
             SELECT {cid}, e.upstream_id, e.stamp, e.event, e.data, e.previous_data FROM (\n\
             SELECT src.ord, up.id AS upstream_id, {up_stamp} AS stamp,\n\
             CASE WHEN old.id IS NULL THEN 'inserted' ELSE 'updated' END AS event,\n\
             src.rec AS data,\n\
             CASE WHEN old.id IS NULL THEN NULL ELSE {diff} END AS previous_data\n\
             FROM up JOIN src ON src.\"Id\" = up.id LEFT JOIN old ON old.id = up.id\n\
             UNION ALL\n\
             SELECT src.ord, del.id, {src_stamp}, 'deleted', src.rec, NULL\n\
             FROM del JOIN src ON src.\"Id\" = del.id\n\
             ) e ORDER BY e.ord\n\
             RETURNING 1\n\
             )\n\
             SELECT (SELECT count(*) FROM up), (SELECT count(*) FROM del), (SELECT count(*) FROM ev)",
            events = t.events_table(),
            cid = ql(t.collection_id),
            up_stamp = stamp_of("up"),
        ));
    } else {
        sql.push_str("\nSELECT (SELECT count(*) FROM up), (SELECT count(*) FROM del), 0::bigint");
    }
    sql
}

/// The statement applying a page of calculated values (`$1`: the JSON array text of
/// records holding `Id` and the `fields`): rows whose values differ are updated, and
/// each gets an `updated` event whose `data` is the whole row keyed by API name, as a
/// poll's would be. Records not in the table are left for polls. Returns one row
/// `(updated bigint, events bigint)`.
pub fn refresh_page(t: &ApplyTarget, fields: &[ColumnSpec]) -> String {
    let full = t.full_table();
    let (field_defs, cols, exprs) = page_columns(fields);
    let mut record_def = vec!["\"Id\" text".to_string()];
    record_def.extend(field_defs);
    let set_list: Vec<String> = cols
        .iter()
        .zip(&exprs)
        .map(|(c, e)| format!("{c} = {e}"))
        .collect();
    let current: Vec<String> = cols.iter().map(|c| format!("t.{c}")).collect();
    let mut sql = format!(
        "WITH src AS ({source}),\n\
         old AS (SELECT o.* FROM {full} o JOIN src ON o.id = src.\"Id\"),\n\
         up AS (\n\
         UPDATE {full} AS t SET {set}\n\
         FROM src WHERE t.id = src.\"Id\" AND ROW({current}) IS DISTINCT FROM ROW({exprs})\n\
         RETURNING t.*\n\
         )",
        source = page_source(false, &record_def.join(", ")),
        set = set_list.join(", "),
        current = current.join(", "),
        exprs = exprs.join(", "),
    );
    if t.emit_events {
        let stamp = match t.stamp_column() {
            Some(s) => format!("up.{}", qi(&s.column)),
            None => "NULL::timestamptz".to_string(),
        };
        sql.push_str(&format!(
            ",\n\
             ev AS (\n\
             INSERT INTO {events} (collection_id, upstream_id, upstream_updated_at, event, data, previous_data)\n\
             SELECT {cid}, up.id, {stamp}, 'updated', {data}, {diff}\n\
             FROM up JOIN old ON old.id = up.id ORDER BY up.id\n\
             RETURNING 1\n\
             )\n\
             SELECT (SELECT count(*) FROM up), (SELECT count(*) FROM ev)",
            events = t.events_table(),
            cid = ql(t.collection_id),
            data = api_json("up", t.columns),
            diff = changed_fields_json("old", "up", fields),
        ));
    } else {
        sql.push_str("\nSELECT (SELECT count(*) FROM up), 0::bigint");
    }
    sql
}

/// The statement merging one change event's record into its row: `$1` is the text of a
/// JSON object holding `Id` and the fields the event carries (`present`, the Id column
/// among them), `$2` the change's time (`timestamptz`: its LastModifiedDate, else its
/// commit time), `$3` whether a missing row is inserted (a create or undelete carries
/// every field the event can; an update's record alone would leave a half row, so a
/// missing one is left for polls), `$4` whether the change is one of the sync's own
/// writes coming back.
///
/// The row is left alone when it is already newer (its stamp after `$2`: a poll read
/// the record after this change), when nothing it holds would change (the event came
/// again), and for our own write coming back while the row holds a local change not
/// yet settled (the echo is older than the row). A stamp column the event does not
/// carry (`SystemModstamp`, which change events leave out) takes `$2`, so later events
/// and polls compare against it. Events get the rows a poll would give them: `data` is
/// the whole row keyed by API name, `previous_data` the prior values of what changed.
/// Returns one row `(found bigint, written bigint, events bigint)`.
pub fn merge_change(t: &ApplyTarget, present: &[ColumnSpec]) -> String {
    let full = t.full_table();
    let (record_def, mut cols, mut exprs) = page_columns(present);
    let stamp = t.stamp_column();
    let stamp_col = stamp.map(|s| qi(&s.column));
    if let Some(s) = stamp.filter(|s| !present.iter().any(|p| p.column == s.column)) {
        cols.push(qi(&s.column));
        exprs.push("$2::timestamptz".to_string());
    }
    let values: Vec<&ColumnSpec> = present.iter().filter(|c| c.column != "id").collect();
    let mut set_list: Vec<String> = cols
        .iter()
        .filter(|c| c.as_str() != "\"id\"" && Some(*c) != stamp_col.as_ref())
        .map(|c| format!("{c} = excluded.{c}"))
        .collect();
    // A compound column (an address) follows its components: those the event carries
    // and, on an update, the row's others.
    for (compound, parts) in compounds_touched(t.columns, present) {
        let col = qi(&compound.column);
        let from_src = compound_json(&parts, |p| {
            present
                .iter()
                .any(|x| x.column == p.column)
                .then(|| source_type_and_expr(p).1)
        });
        let merged = compound_json(&parts, |p| {
            Some(if present.iter().any(|x| x.column == p.column) {
                format!("excluded.{}", qi(&p.column))
            } else {
                format!("t.{}", qi(&p.column))
            })
        });
        cols.push(col.clone());
        exprs.push(from_src);
        set_list.push(format!("{col} = {merged}"));
    }
    let mut guard = vec![
        "(NOT $4 OR t._write_state IS NULL)".to_string(),
        format!(
            "ROW({}) IS DISTINCT FROM ROW({})",
            values
                .iter()
                .map(|c| format!("t.{}", qi(&c.column)))
                .collect::<Vec<_>>()
                .join(", "),
            values
                .iter()
                .map(|c| format!("excluded.{}", qi(&c.column)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ];
    if let Some(s) = &stamp_col {
        set_list.push(format!("{s} = greatest(t.{s}, excluded.{s})"));
        guard.insert(0, format!("(t.{s} IS NULL OR t.{s} <= excluded.{s})"));
    }
    let mut sql = format!(
        "WITH src AS (SELECT r.* FROM json_to_record($1::json) AS r({record_def})),\n\
         old AS (SELECT o.* FROM {full} o JOIN src ON o.id = src.\"Id\"),\n\
         up AS (\n\
         INSERT INTO {full} AS t ({cols})\n\
         SELECT {exprs} FROM src WHERE src.\"Id\" IS NOT NULL AND ($3 OR EXISTS (SELECT 1 FROM old))\n\
         ON CONFLICT (id) DO UPDATE SET {set} WHERE {guard}\n\
         RETURNING t.*\n\
         )",
        record_def = record_def.join(", "),
        cols = cols.join(", "),
        exprs = exprs.join(", "),
        set = set_list.join(", "),
        guard = guard.join(" AND "),
    );
    if t.emit_events {
        let stamp_of_up = match &stamp_col {
            Some(s) => format!("up.{s}"),
            None => "NULL::timestamptz".to_string(),
        };
        sql.push_str(&format!(
            ",\n\
             ev AS (\n\
             INSERT INTO {events} (collection_id, upstream_id, upstream_updated_at, event, data, previous_data)\n\
             SELECT {cid}, up.id, {stamp_of_up},\n\
             CASE WHEN old.id IS NULL THEN 'inserted' ELSE 'updated' END, {data},\n\
             CASE WHEN old.id IS NULL THEN NULL ELSE {diff} END\n\
             FROM up LEFT JOIN old ON old.id = up.id\n\
             RETURNING 1\n\
             )\n\
             SELECT (SELECT count(*) FROM old), (SELECT count(*) FROM up), (SELECT count(*) FROM ev)",
            events = t.events_table(),
            cid = ql(t.collection_id),
            data = api_json("up", t.columns),
            diff = changed_fields_json("old", "up", t.columns),
        ));
    } else {
        sql.push_str("\nSELECT (SELECT count(*) FROM old), (SELECT count(*) FROM up), 0::bigint");
    }
    sql
}

/// The compound columns (addresses, locations) some of whose components are in
/// `present`, each with all its component columns.
fn compounds_touched<'a>(
    columns: &'a [ColumnSpec],
    present: &[ColumnSpec],
) -> Vec<(&'a ColumnSpec, Vec<&'a ColumnSpec>)> {
    columns
        .iter()
        .filter(|c| c.is_compound())
        .filter(|c| {
            present
                .iter()
                .any(|p| p.compound_of.as_deref() == Some(c.field.as_str()))
        })
        .map(|c| {
            let parts = columns
                .iter()
                .filter(|p| p.compound_of.as_deref() == Some(c.field.as_str()))
                .collect();
            (c, parts)
        })
        .collect()
}

/// A compound field's JSON from its components (`value` gives each one's expression,
/// None to leave it out), NULL when every component is.
fn compound_json(parts: &[&ColumnSpec], value: impl Fn(&ColumnSpec) -> Option<String>) -> String {
    let entries: Vec<(&ColumnSpec, String, String)> = parts
        .iter()
        .filter_map(|p| value(p).map(|v| (*p, v.clone(), v)))
        .collect();
    compound_object(&entries)
}

/// The one rule for a compound field's JSON: `(component, value, presence)` per
/// component kept (presence: the expression whose NULL-ness says the component is
/// empty), keyed as Salesforce names the components; NULL when every one is empty.
fn compound_object(entries: &[(&ColumnSpec, String, String)]) -> String {
    if entries.is_empty() {
        return "NULL::jsonb".to_string();
    }
    let presence: Vec<&str> = entries.iter().map(|(_, _, n)| n.as_str()).collect();
    let pairs: Vec<String> = entries
        .iter()
        .map(|(p, v, _)| {
            let key =
                crate::records::compound_key(p.compound_of.as_deref().unwrap_or(""), &p.field);
            format!("{}, {v}", ql(&key))
        })
        .collect();
    format!(
        "CASE WHEN num_nonnulls({}) = 0 THEN NULL ELSE jsonb_build_object({}) END",
        presence.join(", "),
        pairs.join(", ")
    )
}

/// The statement removing hard-deleted records: `$1` is a `text[]` of Ids. Returns one
/// row `(deleted bigint, events bigint)`.
pub fn delete_ids(t: &ApplyTarget) -> String {
    let full = t.full_table();
    if !t.emit_events {
        return format!(
            "WITH del AS (DELETE FROM {full} d WHERE d.id = ANY($1) RETURNING 1)\n\
             SELECT (SELECT count(*) FROM del), 0::bigint"
        );
    }
    let data = api_json("d", t.columns);
    let stamp = match t.stamp_column() {
        Some(s) => format!("d.{}", qi(&s.column)),
        None => "NULL::timestamptz".to_string(),
    };
    format!(
        "WITH del AS (DELETE FROM {full} d WHERE d.id = ANY($1) RETURNING d.id, {stamp} AS stamp, {data} AS data),\n\
         ev AS (\n\
         INSERT INTO {events} (collection_id, upstream_id, upstream_updated_at, event, data, previous_data)\n\
         SELECT {cid}, del.id, del.stamp, 'deleted', del.data, NULL FROM del ORDER BY del.id\n\
         RETURNING 1\n\
         )\n\
         SELECT (SELECT count(*) FROM del), (SELECT count(*) FROM ev)",
        events = t.events_table(),
        cid = ql(t.collection_id),
    )
}

/// How a backfill page meets rows already in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertMode {
    /// A stored row is updated when its stamp differs.
    Upsert,
    /// No row of the page can be in the table yet (a Bulk job's pages are disjoint, REST
    /// keyset pages follow each other): the page is copied straight into the table; a
    /// row already there fails that with a unique violation, and the caller applies the
    /// page again as `Upsert`.
    New,
}

/// `COPY` of a page rewritten for it (`copy_rows`) into `table` (the data table or its
/// stage): text format, one column per name in `columns`, in UTF-8 as Salesforce sends
/// it (Postgres converts it to the database's encoding).
pub fn copy_page(table: &str, columns: &[String], path: &str) -> String {
    copy_from(table, columns, &ql(path))
}

/// The same `COPY` with the page's bytes sent by the client (`FROM STDIN`): a host
/// beside the database, whose page files the server cannot read.
pub fn copy_page_from_stdin(table: &str, columns: &[String]) -> String {
    copy_from(table, columns, "STDIN")
}

fn copy_from(table: &str, columns: &[String], source: &str) -> String {
    let cols: Vec<String> = columns.iter().map(|c| qi(c)).collect();
    format!(
        "COPY {table} ({}) FROM {source} WITH (ENCODING 'UTF8')",
        cols.join(", ")
    )
}

/// A temporary table with `columns` of the data table, typed alike and without its
/// constraints: the stage a page is copied into when it may meet stored rows.
pub fn create_stage(t: &ApplyTarget, stage: &str, columns: &[String]) -> String {
    let cols: Vec<String> = columns.iter().map(|c| qi(c)).collect();
    format!(
        "CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA",
        qi(stage),
        cols.join(", "),
        t.full_table()
    )
}

/// Upserts the staged page into the data table, a stored row updated only when it
/// changed (`update_when_changed`). Returns no rows.
pub fn upsert_from_stage(t: &ApplyTarget, stage: &str, columns: &[String]) -> String {
    let names: Vec<&str> = columns.iter().map(String::as_str).collect();
    let cols: Vec<String> = columns.iter().map(|c| qi(c)).collect();
    format!(
        "INSERT INTO {} AS t ({cols}) SELECT {cols} FROM {} ON CONFLICT (id) {}",
        t.full_table(),
        qi(stage),
        update_when_changed(t, &names),
        cols = cols.join(", "),
    )
}

/// How a page's row meets a stored one (the `ON CONFLICT (id)` action): the page's
/// `columns` replace the stored values when the stamp differs, or, for an object
/// without a stamp, when any of them differs.
fn update_when_changed(t: &ApplyTarget, columns: &[&str]) -> String {
    let set_list: Vec<String> = columns
        .iter()
        .filter(|c| **c != "id")
        .map(|c| format!("{0} = excluded.{0}", qi(c)))
        .collect();
    if set_list.is_empty() {
        return "DO NOTHING".to_string();
    }
    let changed = match t.stamp_column() {
        Some(s) => format!("t.{0} IS DISTINCT FROM excluded.{0}", qi(&s.column)),
        None => {
            let side = |alias: &str| -> Vec<String> {
                columns
                    .iter()
                    .map(|c| format!("{alias}.{}", qi(c)))
                    .collect()
            };
            format!(
                "ROW({}) IS DISTINCT FROM ROW({})",
                side("t").join(", "),
                side("excluded").join(", ")
            )
        }
    };
    format!("DO UPDATE SET {} WHERE {changed}", set_list.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::{map_fields, FieldInfo};

    fn cols() -> Vec<ColumnSpec> {
        let f = |n: &str, t: &str| FieldInfo {
            name: n.into(),
            sf_type: t.into(),
            ..Default::default()
        };
        map_fields(&[
            f("Id", "id"),
            f("FirstName", "string"),
            f("IsDeleted", "boolean"),
            f("Alarm__c", "time"),
            f("SystemModstamp", "datetime"),
        ])
    }

    #[test]
    fn table_ddl() {
        let stmts = create_table("salesforce", "contact", &cols());
        assert_eq!(
            stmts[0],
            "CREATE TABLE \"salesforce\".\"contact\" (\n  _row_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n  id text UNIQUE,\n  \"first_name\" text,\n  \"is_deleted\" boolean,\n  \"alarm__c\" time,\n  \"system_modstamp\" timestamptz,\n  _write_state text\n)"
        );
        assert_eq!(
            stmts[1],
            "CREATE INDEX \"contact_system_modstamp_idx\" ON \"salesforce\".\"contact\" (\"system_modstamp\")"
        );
        assert_eq!(
            add_column("salesforce", "contact", &cols()[1]),
            "ALTER TABLE \"salesforce\".\"contact\" ADD COLUMN IF NOT EXISTS \"first_name\" text"
        );
    }

    /// The Contact table of the tests, stamped by SystemModstamp, with events.
    fn contact_target(columns: &[ColumnSpec]) -> ApplyTarget<'_> {
        ApplyTarget {
            schema: "salesforce",
            table: "contact",
            collection_id: "salesforce:contact",
            columns,
            stamp_field: Some("SystemModstamp"),
            emit_events: true,
        }
    }

    #[test]
    fn apply_statement_dedups_on_stamp_and_handles_deletes() {
        let c = cols();
        let t = contact_target(&c);
        let sql = apply_page(&t);
        assert!(sql
            .contains("WHERE t.\"system_modstamp\" IS DISTINCT FROM excluded.\"system_modstamp\""));
        assert!(sql.contains("coalesce(src.\"IsDeleted\", false)"));
        assert!(sql.contains("NULLIF(rtrim(src.\"Alarm__c\", 'Z'), '')::time"));
        assert!(sql.contains("INSERT INTO \"salesforce\"._sync_events"));
        assert!(sql.contains("ORDER BY e.ord"));
        let quiet = apply_page(&ApplyTarget {
            emit_events: false,
            ..t
        });
        assert!(!quiet.contains("_sync_events"));
        assert!(quiet.contains("json_to_recordset($1::json)"));
        assert!(sql.contains("json_array_elements($1::json) WITH ORDINALITY"));
        assert!(delete_ids(&t).contains("d.id = ANY($1)"));
    }

    #[test]
    fn merge_statement_sets_only_the_fields_carried_and_guards_newer_rows() {
        let c = cols();
        let t = contact_target(&c);
        let present: Vec<ColumnSpec> = c
            .iter()
            .filter(|x| x.field == "Id" || x.field == "FirstName")
            .cloned()
            .collect();
        let sql = merge_change(&t, &present);
        // only the carried field is set; the stamp the event lacks comes from $2
        assert!(sql.contains("INSERT INTO \"salesforce\".\"contact\" AS t (\"id\", \"first_name\", \"system_modstamp\")"), "{sql}");
        assert!(
            sql.contains("SELECT src.\"Id\", src.\"FirstName\", $2::timestamptz FROM src"),
            "{sql}"
        );
        assert!(sql.contains("DO UPDATE SET \"first_name\" = excluded.\"first_name\", \"system_modstamp\" = greatest("), "{sql}");
        assert!(!sql.contains("SET \"id\""), "{sql}");
        assert!(sql.contains("(t.\"system_modstamp\" IS NULL OR t.\"system_modstamp\" <= excluded.\"system_modstamp\")"));
        assert!(sql.contains("(NOT $4 OR t._write_state IS NULL)"));
        assert!(sql.contains("ROW(t.\"first_name\") IS DISTINCT FROM ROW(excluded.\"first_name\")"));
        assert!(sql.contains("($3 OR EXISTS (SELECT 1 FROM old))"));
        // the event's data is the whole row, as a poll's
        assert!(sql.contains("'IsDeleted', up.\"is_deleted\""), "{sql}");
    }

    #[test]
    fn api_json_chunks_wide_rows() {
        let many: Vec<ColumnSpec> = map_fields(
            &(0..120)
                .map(|i| FieldInfo {
                    name: format!("F{i}__c"),
                    sf_type: "string".into(),
                    ..Default::default()
                })
                .collect::<Vec<_>>(),
        );
        let expr = api_json("r", &many);
        assert_eq!(expr.matches("jsonb_build_object(").count(), 3);
        assert!(api_json("r", &[]).contains("'{}'"));
    }
    #[test]
    fn bulk_pages_copy_then_upsert_from_a_stage() {
        let cols = cols();
        let t = contact_target(&cols);
        let names: Vec<String> = ["id", "first_name", "system_modstamp"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            copy_page("\"_stage\"", &names, "/d/x.csv"),
            "COPY \"_stage\" (\"id\", \"first_name\", \"system_modstamp\") FROM '/d/x.csv' WITH (ENCODING 'UTF8')"
        );
        assert!(create_stage(&t, "_stage", &names).starts_with(
            "CREATE TEMP TABLE \"_stage\" ON COMMIT DROP AS SELECT \"id\", \"first_name\", \"system_modstamp\" FROM "
        ));
        let sql = upsert_from_stage(&t, "_stage", &names);
        assert!(sql.contains("SELECT \"id\", \"first_name\", \"system_modstamp\" FROM \"_stage\" ON CONFLICT (id) DO UPDATE SET \"first_name\" = excluded.\"first_name\", \"system_modstamp\" = excluded.\"system_modstamp\" WHERE t.\"system_modstamp\" IS DISTINCT FROM excluded.\"system_modstamp\""), "{sql}");
    }
}
