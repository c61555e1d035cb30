//! Pages of records rewritten as the rows `COPY` loads straight into the synced table
//! (its text format): one column per table column, each value written as the column's input
//! function reads it. A first load (rows new to the table) then goes in with one `COPY`
//! instead of SQL that converts every value, and the rewrite can run beside the
//! Postgres work (a Bulk page's on the worker's request threads).
//!
//! The rules for a value are those of the REST apply (`sql::page_columns`): times lose
//! Salesforce's `Z`, whole numbers written `3.0` become `3`, a JSON column holds a JSON
//! value. Bulk pages add theirs: an empty CSV value is NULL (as Salesforce writes nulls),
//! text goes into a JSON column as a JSON string, and compound fields (which Bulk cannot
//! select) are built from their components.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{Read, Write};

use serde_json::value::RawValue;

use crate::mapping::{ColumnSpec, PgType};
use crate::records::{compound_key, RecordError};

/// What was written: the table columns in file order, and the rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyPage {
    pub columns: Vec<String>,
    pub rows: u64,
}

/// `COPY`'s text format (tab between values, `\N` for NULL, backslash escapes), which
/// Postgres reads faster than CSV.
struct CopyWriter<W: Write> {
    out: W,
    first: bool,
}

impl<W: Write> CopyWriter<W> {
    fn new(out: W) -> Self {
        CopyWriter { out, first: true }
    }

    fn field(&mut self, value: Option<&str>) -> std::io::Result<()> {
        if !std::mem::replace(&mut self.first, false) {
            self.out.write_all(b"\t")?;
        }
        let Some(v) = value else {
            return self.out.write_all(b"\\N");
        };
        let bytes = v.as_bytes();
        let mut from = 0;
        for (i, b) in bytes.iter().enumerate() {
            let escaped: &[u8] = match b {
                b'\\' => b"\\\\",
                b'\t' => b"\\t",
                b'\n' => b"\\n",
                b'\r' => b"\\r",
                _ => continue,
            };
            self.out.write_all(&bytes[from..i])?;
            self.out.write_all(escaped)?;
            from = i + 1;
        }
        self.out.write_all(&bytes[from..])
    }

    fn end_row(&mut self) -> std::io::Result<()> {
        self.first = true;
        self.out.write_all(b"\n")
    }

    fn finish(mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

fn write_err(e: std::io::Error) -> RecordError {
    RecordError::Write(e.to_string())
}

/// Where a table column's value comes from in a Bulk CSV.
enum Source {
    Field(usize, PgType),
    /// Components: CSV index, key inside the compound, type.
    Compound(Vec<(usize, String, PgType)>),
}

/// Rewrites the Bulk CSV `input` (header row first) into `output`. Rows without an Id
/// are left out; fields the table has no column for are ignored.
pub fn rewrite_bulk_page(
    input: impl Read,
    output: impl Write,
    columns: &[ColumnSpec],
) -> Result<CopyPage, RecordError> {
    let csv_err = |e: csv::Error| RecordError::Csv(e.to_string());
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(input);
    let header = reader.headers().map_err(csv_err)?.clone();
    let at = |field: &str| header.iter().position(|h| h == field);
    let id = at("Id").ok_or(RecordError::NoId)?;
    let mut names = Vec::new();
    let mut sources = Vec::new();
    for c in columns {
        let source = if c.is_compound() {
            let parts: Vec<(usize, String, PgType)> = columns
                .iter()
                .filter(|p| p.compound_of.as_deref() == Some(c.field.as_str()))
                .filter_map(|p| Some((at(&p.field)?, compound_key(&c.field, &p.field), p.pg_type)))
                .collect();
            if parts.is_empty() {
                continue;
            }
            Source::Compound(parts)
        } else {
            match at(&c.field) {
                Some(i) => Source::Field(i, c.pg_type),
                None => continue,
            }
        };
        names.push(c.column.clone());
        sources.push(source);
    }
    let mut writer = CopyWriter::new(output);
    let mut record = csv::StringRecord::new();
    let mut rows = 0;
    while reader.read_record(&mut record).map_err(csv_err)? {
        if record.get(id).unwrap_or("").is_empty() {
            continue;
        }
        for s in &sources {
            let value = match s {
                Source::Field(i, t) => bulk_text(record.get(*i).unwrap_or(""), *t),
                Source::Compound(parts) => compound_text(&record, parts),
            };
            writer.field(value.as_deref()).map_err(write_err)?;
        }
        writer.end_row().map_err(write_err)?;
        rows += 1;
    }
    writer.finish().map_err(write_err)?;
    Ok(CopyPage {
        columns: names,
        rows,
    })
}

/// Rewrites a REST page (the text of its JSON array of records) into `output`, every
/// column of the table. Records without an Id, or in the recycle bin, are left out.
pub fn rewrite_rest_page(
    records_json: &str,
    output: impl Write,
    columns: &[ColumnSpec],
) -> Result<CopyPage, RecordError> {
    let records: Vec<HashMap<&str, &RawValue>> =
        serde_json::from_str(records_json).map_err(|e| RecordError::Json(e.to_string()))?;
    let mut writer = CopyWriter::new(output);
    let mut rows = 0;
    for r in &records {
        let raw = |field: &str| r.get(field).map(|v| v.get()).filter(|v| *v != "null");
        if raw("Id").is_none() || raw("IsDeleted") == Some("true") {
            continue;
        }
        for c in columns {
            let value = raw(&c.field).map(|v| json_text(v, c.pg_type)).transpose()?;
            writer
                .field(value.flatten().as_deref())
                .map_err(write_err)?;
        }
        writer.end_row().map_err(write_err)?;
        rows += 1;
    }
    writer.finish().map_err(write_err)?;
    Ok(CopyPage {
        columns: columns.iter().map(|c| c.column.clone()).collect(),
        rows,
    })
}

/// A JSON value (its text as sent) as the column's input function reads it; None for
/// NULL.
fn json_text(raw: &str, t: PgType) -> Result<Option<Cow<'_, str>>, RecordError> {
    if t == PgType::Jsonb || !raw.starts_with('"') {
        return Ok(Some(typed_text(Cow::Borrowed(raw), t)));
    }
    let s: String = serde_json::from_str(raw).map_err(|e| RecordError::Json(e.to_string()))?;
    Ok(match t {
        PgType::Time if s.trim_end_matches('Z').is_empty() => None,
        _ => Some(typed_text(Cow::Owned(s), t)),
    })
}

/// A Bulk CSV value as the column's input function reads it; None (NULL) when empty.
fn bulk_text(raw: &str, t: PgType) -> Option<Cow<'_, str>> {
    if raw.is_empty() {
        return None;
    }
    Some(match t {
        PgType::Jsonb => Cow::Owned(json_string(raw)),
        _ => typed_text(Cow::Borrowed(raw), t),
    })
}

/// The conversions every page needs: times without Salesforce's `Z`, whole numbers
/// rounded as Postgres rounds a numeric.
fn typed_text(v: Cow<'_, str>, t: PgType) -> Cow<'_, str> {
    match t {
        PgType::Time => match v {
            Cow::Borrowed(b) => Cow::Borrowed(b.trim_end_matches('Z')),
            Cow::Owned(o) => Cow::Owned(o.trim_end_matches('Z').to_string()),
        },
        PgType::Integer | PgType::BigInt => match whole_number(&v) {
            Some(n) => Cow::Owned(n),
            None => v,
        },
        _ => v,
    }
}

/// `3.0` -> `3`, `2.5` -> `3`, `-2.5` -> `-3` (as Postgres rounds numeric to integer);
/// None to leave the text as it is, for Postgres to accept or refuse with its message.
fn whole_number(raw: &str) -> Option<String> {
    let (whole, fraction) = raw.split_once('.')?;
    let n = whole.parse::<i128>().ok()?;
    if fraction.is_empty() || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let up = fraction.as_bytes()[0] >= b'5';
    Some(
        match (up, whole.starts_with('-')) {
            (false, _) => n,
            (true, false) => n + 1,
            (true, true) => n - 1,
        }
        .to_string(),
    )
}

/// A compound field's JSON from its components' CSV values, keyed as Salesforce keys
/// them; NULL when every component is empty (as `sql::compound_object` rules).
fn compound_text(
    record: &csv::StringRecord,
    parts: &[(usize, String, PgType)],
) -> Option<Cow<'static, str>> {
    let value = |i: usize| record.get(i).unwrap_or("");
    if parts.iter().all(|(i, _, _)| value(*i).is_empty()) {
        return None;
    }
    let entries: Vec<String> = parts
        .iter()
        .map(|(i, key, t)| format!("{}:{}", json_string(key), json_value(value(*i), *t)))
        .collect();
    Some(Cow::Owned(format!("{{{}}}", entries.join(","))))
}

/// A component's value in its compound's JSON: numbers as JSON numbers, their text kept
/// as Salesforce wrote it (as a numeric keeps it); the rest as strings; empty as null.
fn json_value(raw: &str, t: PgType) -> String {
    let numeric = matches!(t, PgType::Numeric | PgType::Integer | PgType::BigInt);
    if raw.is_empty() {
        "null".to_string()
    } else if numeric && is_json_number(raw) {
        raw.to_string()
    } else {
        json_string(raw)
    }
}

fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// JSON's number grammar: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
fn is_json_number(s: &str) -> bool {
    let digits = |s: &str| -> usize { s.bytes().take_while(u8::is_ascii_digit).count() };
    let s = s.strip_prefix('-').unwrap_or(s);
    let whole = digits(s);
    if whole == 0 || (whole > 1 && s.starts_with('0')) {
        return false;
    }
    let mut rest = &s[whole..];
    if let Some(f) = rest.strip_prefix('.') {
        let n = digits(f);
        if n == 0 {
            return false;
        }
        rest = &f[n..];
    }
    if let Some(e) = rest.strip_prefix(['e', 'E']) {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        let n = digits(e);
        return n > 0 && n == e.len();
    }
    rest.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::columns_of;

    fn account() -> Vec<ColumnSpec> {
        columns_of(&[
            ("Id", "id", None),
            ("Name", "string", None),
            ("NumberOfEmployees", "int", None),
            ("Alarm__c", "time", None),
            ("Tags__c", "anyType", None),
            ("BillingCity", "string", Some("BillingAddress")),
            ("BillingLatitude", "double", Some("BillingAddress")),
            ("BillingAddress", "address", None),
            ("ShippingCity", "string", Some("ShippingAddress")),
            ("ShippingAddress", "address", None),
            ("Gone__c", "string", None),
        ])
    }

    fn rewrite(csv: &str) -> (CopyPage, String) {
        let mut out = Vec::new();
        let page = rewrite_bulk_page(csv.as_bytes(), &mut out, &account()).unwrap();
        (page, String::from_utf8(out).unwrap())
    }

    #[test]
    fn bulk_rows_follow_the_table_columns() {
        let (page, text) = rewrite(
            "\"Id\",\"Name\",\"Unknown\",\"NumberOfEmployees\",\"Alarm__c\",\"BillingLatitude\",\"BillingCity\"\n\
             \"001A\",\"Acme, \"\"Inc\"\"\",\"x\",\"12.0\",\"13:30:00.000Z\",\"48.8500\",\"Paris\"\n\
             \"001B\",,,\"-2.5\",,,\n\
             ,\"no id\",,,,,\n",
        );
        assert_eq!(
            page.columns,
            [
                "id",
                "name",
                "number_of_employees",
                "alarm__c",
                "billing_city",
                "billing_latitude",
                "billing_address"
            ]
        );
        assert_eq!(page.rows, 2);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            r#"001A	Acme, "Inc"	12	13:30:00.000	Paris	48.8500	{"city":"Paris","latitude":48.8500}"#
        );
        assert_eq!(lines[1], r"001B	\N	-3	\N	\N	\N	\N");
        assert_eq!(lines.len(), 2);
    }

    #[test]
    fn rest_rows_hold_every_column_as_sent() {
        let json = r#"[
            {"attributes": {"type": "Account"}, "Id": "001A", "Name": "", "NumberOfEmployees": 3.0,
             "Alarm__c": "08:00:00.000Z", "Tags__c": {"a": [1, 2.50]}, "BillingCity": "Quote \" here",
             "BillingLatitude": 48.8500, "BillingAddress": {"city": "Quote \" here"}, "Gone__c": null},
            {"Id": null, "Name": "no id"},
            {"Id": "001C", "Name": "binned", "IsDeleted": true}
        ]"#;
        let mut out = Vec::new();
        let page = rewrite_rest_page(json, &mut out, &account()).unwrap();
        assert_eq!(page.rows, 1);
        assert_eq!(page.columns.len(), account().len());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"001A		3	08:00:00.000	{"a": [1, 2.50]}	Quote " here	48.8500	{"city": "Quote \\" here"}	\N	\N	\N"#
                .to_string()
                + "\n"
        );
        let mut out = Vec::new();
        assert!(rewrite_rest_page("{", &mut out, &account()).is_err());
    }

    #[test]
    fn text_format_escapes() {
        let mut out = Vec::new();
        let mut w = CopyWriter::new(&mut out);
        w.field(Some("a\tb\nc\rd\\e")).unwrap();
        w.field(None).unwrap();
        w.field(Some("")).unwrap();
        w.end_row().unwrap();
        w.finish().unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "a\\tb\\nc\\rd\\\\e\t\\N\t\n"
        );
    }

    #[test]
    fn values_read_as_postgres_reads_them() {
        assert_eq!(whole_number("3"), None);
        assert_eq!(whole_number("3.0").as_deref(), Some("3"));
        assert_eq!(whole_number("2.49").as_deref(), Some("2"));
        assert_eq!(whole_number("-2.5").as_deref(), Some("-3"));
        assert_eq!(whole_number("1e3"), None);
        assert_eq!(
            bulk_text("[1,\"a\"]", PgType::Jsonb).as_deref(),
            Some("\"[1,\\\"a\\\"]\"")
        );
        assert_eq!(bulk_text("", PgType::Jsonb), None);
        assert_eq!(json_text("\"Z\"", PgType::Time).unwrap(), None);
        assert_eq!(
            json_text("\"x\"", PgType::Jsonb).unwrap().as_deref(),
            Some("\"x\"")
        );
        assert_eq!(json_value("x1", PgType::Numeric), "\"x1\"");
        assert_eq!(json_value("-0.5e+3", PgType::Numeric), "-0.5e+3");
        for not_a_number in ["01", ".5", "5.", "1e", "--1", "1.5x"] {
            assert!(!is_json_number(not_a_number), "{not_a_number}");
        }
    }

    #[test]
    fn a_page_without_an_id_column_is_refused() {
        let mut out = Vec::new();
        assert!(rewrite_bulk_page(&b"\"Name\"\n\"x\"\n"[..], &mut out, &account()).is_err());
    }
}
