//! A Bulk results page rewritten as the CSV that `COPY` loads straight into the synced
//! table: one column per table column, each value written as the column's input
//! function reads it, compound fields (which Bulk cannot select) built from their
//! components. The rewrite runs beside the Postgres work (on the worker's request
//! threads), so the page goes into the table in one pass with no SQL per value.
//!
//! The rules for a value are those of the REST apply (`sql::page_columns`): times lose
//! Salesforce's `Z`, whole numbers written `3.0` become `3`, a JSON column holds the text
//! as a JSON string; an empty CSV value is NULL, as Salesforce writes nulls.

use std::borrow::Cow;
use std::io::{Read, Write};

use crate::mapping::{ColumnSpec, PgType};
use crate::records::{compound_key, RecordError};

/// What was written: the table columns in file order, and the rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyPage {
    pub columns: Vec<String>,
    pub rows: u64,
}

/// Where a table column's value comes from in the Bulk CSV.
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
    let id = at("Id").ok_or(RecordError::NoHeader)?;
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
    let mut writer = csv::WriterBuilder::new()
        .quote_style(csv::QuoteStyle::Necessary)
        .from_writer(output);
    let mut record = csv::StringRecord::new();
    let mut rows = 0;
    while reader.read_record(&mut record).map_err(csv_err)? {
        if record.get(id).unwrap_or("").is_empty() {
            continue;
        }
        for s in &sources {
            let value = match s {
                Source::Field(i, t) => column_text(record.get(*i).unwrap_or(""), *t),
                Source::Compound(parts) => compound_text(&record, parts),
            };
            writer.write_field(value.as_bytes()).map_err(csv_err)?;
        }
        writer.write_record(None::<&[u8]>).map_err(csv_err)?;
        rows += 1;
    }
    writer
        .flush()
        .map_err(|e| RecordError::Csv(format!("writing the rewritten page: {e}")))?;
    Ok(CopyPage {
        columns: names,
        rows,
    })
}

/// A CSV value as the column's input function reads it ("" stays NULL).
fn column_text(raw: &str, t: PgType) -> Cow<'_, str> {
    if raw.is_empty() {
        return Cow::Borrowed("");
    }
    match t {
        PgType::Time => Cow::Borrowed(raw.trim_end_matches('Z')),
        PgType::Integer | PgType::BigInt => whole_number(raw),
        PgType::Jsonb => Cow::Owned(serde_json::Value::String(raw.to_string()).to_string()),
        _ => Cow::Borrowed(raw),
    }
}

/// `3.0` -> `3`, `2.5` -> `3`, `-2.5` -> `-3` (as Postgres rounds numeric to integer);
/// anything else is left for Postgres to accept or refuse with its own message.
fn whole_number(raw: &str) -> Cow<'_, str> {
    let Some((whole, fraction)) = raw.split_once('.') else {
        return Cow::Borrowed(raw);
    };
    let (Ok(n), true) = (
        whole.parse::<i128>(),
        !fraction.is_empty() && fraction.bytes().all(|b| b.is_ascii_digit()),
    ) else {
        return Cow::Borrowed(raw);
    };
    let up = fraction.as_bytes()[0] >= b'5';
    let negative = whole.starts_with('-');
    let rounded = match (up, negative) {
        (false, _) => n,
        (true, false) => n + 1,
        (true, true) => n - 1,
    };
    Cow::Owned(rounded.to_string())
}

/// A compound field's JSON from its components' CSV values, keyed as Salesforce keys
/// them; NULL when every component is empty (as `sql::compound_object` rules).
fn compound_text<'a>(record: &csv::StringRecord, parts: &[(usize, String, PgType)]) -> Cow<'a, str> {
    let value = |i: usize| record.get(i).unwrap_or("");
    if parts.iter().all(|(i, _, _)| value(*i).is_empty()) {
        return Cow::Borrowed("");
    }
    let entries: Vec<String> = parts
        .iter()
        .map(|(i, key, t)| format!("{}:{}", json_string(key), json_value(value(*i), *t)))
        .collect();
    Cow::Owned(format!("{{{}}}", entries.join(",")))
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
    use crate::mapping::{map_fields, FieldInfo};

    fn account() -> Vec<ColumnSpec> {
        let f = |n: &str, t: &str, c: Option<&str>| FieldInfo {
            name: n.into(),
            sf_type: t.into(),
            compound_field_name: c.map(Into::into),
            ..Default::default()
        };
        map_fields(&[
            f("Id", "id", None),
            f("Name", "string", None),
            f("NumberOfEmployees", "int", None),
            f("Alarm__c", "time", None),
            f("Tags__c", "anyType", None),
            f("BillingCity", "string", Some("BillingAddress")),
            f("BillingLatitude", "double", Some("BillingAddress")),
            f("BillingAddress", "address", None),
            f("ShippingCity", "string", Some("ShippingAddress")),
            f("ShippingAddress", "address", None),
            f("Gone__c", "string", None),
        ])
    }

    fn rewrite(csv: &str) -> (CopyPage, String) {
        let mut out = Vec::new();
        let page = rewrite_bulk_page(csv.as_bytes(), &mut out, &account()).unwrap();
        (page, String::from_utf8(out).unwrap())
    }

    #[test]
    fn rows_follow_the_table_columns() {
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
            "001A,\"Acme, \"\"Inc\"\"\",12,13:30:00.000,Paris,48.8500,\"{\"\"city\"\":\"\"Paris\"\",\"\"latitude\"\":48.8500}\""
        );
        assert_eq!(lines[1], "001B,,-3,,,,");
        assert_eq!(lines.len(), 2);
    }

    #[test]
    fn values_read_as_postgres_reads_them() {
        assert_eq!(whole_number("3"), "3");
        assert_eq!(whole_number("3.0"), "3");
        assert_eq!(whole_number("2.49"), "2");
        assert_eq!(whole_number("-2.5"), "-3");
        assert_eq!(whole_number("1e3"), "1e3");
        assert_eq!(column_text("[1,\"a\"]", PgType::Jsonb), "\"[1,\\\"a\\\"]\"");
        assert_eq!(column_text("", PgType::Jsonb), "");
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
