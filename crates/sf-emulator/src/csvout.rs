//! CSV for the Bulk APIs: writing query results the way Salesforce does (every value
//! double-quoted, nulls empty, booleans `true`/`false`, datetimes `...000Z`) and
//! reading uploaded ingest data (RFC 4180 with the job's delimiter).

use crate::query::{Handle, Locked};
use soql::Value;

/// A job's `columnDelimiter` and `lineEnding`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Format {
    pub delimiter: u8,
    pub crlf: bool,
}

impl Default for Format {
    fn default() -> Format {
        Format {
            delimiter: b',',
            crlf: false,
        }
    }
}

impl Format {
    /// From the job request's names; `None` names an unsupported value.
    pub fn parse(delimiter: Option<&str>, line_ending: Option<&str>) -> Result<Format, String> {
        let delimiter = match delimiter.unwrap_or("COMMA") {
            "COMMA" => b',',
            "TAB" => b'\t',
            "PIPE" => b'|',
            "SEMICOLON" => b';',
            "CARET" => b'^',
            "BACKQUOTE" => b'`',
            other => {
                return Err(format!(
                    "columnDelimiter {other} is not one of COMMA, TAB, PIPE, SEMICOLON, CARET, BACKQUOTE"
                ))
            }
        };
        let crlf = match line_ending.unwrap_or("LF") {
            "LF" => false,
            "CRLF" => true,
            other => return Err(format!("lineEnding {other} is not LF or CRLF")),
        };
        Ok(Format { delimiter, crlf })
    }

    pub fn delimiter_name(&self) -> &'static str {
        match self.delimiter {
            b'\t' => "TAB",
            b'|' => "PIPE",
            b';' => "SEMICOLON",
            b'^' => "CARET",
            b'`' => "BACKQUOTE",
            _ => "COMMA",
        }
    }

    pub fn line_ending_name(&self) -> &'static str {
        if self.crlf {
            "CRLF"
        } else {
            "LF"
        }
    }

    pub fn newline(&self, out: &mut Vec<u8>) {
        if self.crlf {
            out.push(b'\r');
        }
        out.push(b'\n');
    }
}

/// Appends `"text"` with embedded quotes doubled.
pub fn quoted(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let b = s.as_bytes();
    let mut start = 0;
    for (i, &c) in b.iter().enumerate() {
        if c == b'"' {
            out.extend_from_slice(&b[start..=i]);
            out.push(b'"');
            start = i + 1;
        }
    }
    out.extend_from_slice(&b[start..]);
    out.push(b'"');
}

/// Appends one value as Bulk query results show it.
pub fn value(out: &mut Vec<u8>, v: Value<'_>) {
    match v {
        Value::Null => {}
        Value::Text(t) => quoted(out, t),
        Value::Bool(b) => out.extend_from_slice(if b { b"\"true\"" } else { b"\"false\"" }),
        Value::Int(i) => {
            out.push(b'"');
            out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes());
            out.push(b'"');
        }
        Value::Double(d) => {
            out.push(b'"');
            if d.is_finite() {
                out.extend_from_slice(ryu::Buffer::new().format_finite(d).as_bytes());
            }
            out.push(b'"');
        }
        Value::Date(d) => {
            out.push(b'"');
            crate::timefmt::write_date(out, i64::from(d));
            out.push(b'"');
        }
        Value::DateTime(ms) => {
            out.push(b'"');
            crate::timefmt::write_datetime(out, ms);
            // Bulk results write UTC as `Z`, not `+0000`.
            out.truncate(out.len() - 5);
            out.extend_from_slice(b"Z\"");
        }
        Value::Time(ms) => {
            out.push(b'"');
            crate::timefmt::write_time(out, ms);
            out.push(b'"');
        }
    }
}

/// The header row: each column's dotted path (`Account.Name`).
pub fn header(out: &mut Vec<u8>, cols: &[Handle], fmt: Format) {
    for (i, h) in cols.iter().enumerate() {
        if i > 0 {
            out.push(fmt.delimiter);
        }
        quoted(out, &h.path);
    }
    fmt.newline(out);
}

/// One result row.
pub fn row(out: &mut Vec<u8>, locked: &Locked<'_>, cols: &[Handle], row: usize, fmt: Format) {
    for (i, h) in cols.iter().enumerate() {
        if i > 0 {
            out.push(fmt.delimiter);
        }
        value(out, locked.get(h, row));
    }
    fmt.newline(out);
}

/// Parses CSV text into rows of fields. Quoted fields may hold delimiters, quotes
/// (doubled) and line breaks; both LF and CRLF end a row; blank lines are skipped.
pub fn parse(text: &str, delimiter: u8) -> Result<Vec<Vec<String>>, String> {
    let b = text.as_bytes();
    let mut rows = Vec::new();
    let mut row: Vec<String> = Vec::new();
    let mut field: Vec<u8> = Vec::new();
    let mut i = 0;
    let mut line = 1;
    let mut field_started = false;
    let end_field = |row: &mut Vec<String>, field: &mut Vec<u8>| {
        row.push(String::from_utf8_lossy(field).into_owned());
        field.clear();
    };
    while i < b.len() {
        let c = b[i];
        if c == b'"' && field.is_empty() && !field_started {
            // A quoted field runs to the next quote not followed by another quote.
            let start_line = line;
            i += 1;
            loop {
                match b.get(i) {
                    None => {
                        return Err(format!(
                            "unterminated quoted field starting on line {start_line}"
                        ))
                    }
                    Some(b'"') if b.get(i + 1) == Some(&b'"') => {
                        field.push(b'"');
                        i += 2;
                    }
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(&ch) => {
                        if ch == b'\n' {
                            line += 1;
                        }
                        field.push(ch);
                        i += 1;
                    }
                }
            }
            field_started = true;
            match b.get(i) {
                None | Some(b'\n') | Some(b'\r') => {}
                Some(&d) if d == delimiter => {}
                Some(_) => {
                    return Err(format!(
                        "line {line}: unexpected text after a closing quote (quote the whole field and double inner quotes)"
                    ))
                }
            }
            continue;
        }
        if c == delimiter {
            end_field(&mut row, &mut field);
            field_started = false;
            i += 1;
            continue;
        }
        if c == b'\r' || c == b'\n' {
            if c == b'\r' && b.get(i + 1) == Some(&b'\n') {
                i += 1;
            }
            i += 1;
            line += 1;
            if !(row.is_empty() && field.is_empty() && !field_started) {
                end_field(&mut row, &mut field);
                rows.push(std::mem::take(&mut row));
            }
            field_started = false;
            continue;
        }
        field.push(c);
        field_started = true;
        i += 1;
    }
    if !row.is_empty() || !field.is_empty() || field_started {
        end_field(&mut row, &mut field);
        rows.push(row);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_values_like_bulk_results() {
        let mut out = Vec::new();
        value(&mut out, Value::Text("say \"hi\", ok"));
        out.push(b',');
        value(&mut out, Value::Null);
        out.push(b',');
        value(&mut out, Value::Bool(true));
        out.push(b',');
        value(&mut out, Value::DateTime(1_707_252_512_000));
        out.push(b',');
        value(&mut out, Value::Date(19_759));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"say \"\"hi\"\", ok\",,\"true\",\"2024-02-06T20:48:32.000Z\",\"2024-02-06\""
        );
    }

    #[test]
    fn parses_quotes_delimiters_and_line_ends() {
        let rows = parse(
            "Name,Note\r\n\"A, Inc\",\"two\nlines \"\"q\"\"\"\nB,\n\n",
            b',',
        )
        .unwrap();
        assert_eq!(
            rows,
            vec![
                vec!["Name".to_string(), "Note".to_string()],
                vec!["A, Inc".to_string(), "two\nlines \"q\"".to_string()],
                vec!["B".to_string(), String::new()],
            ]
        );
        assert_eq!(parse("a|b\n1|2", b'|').unwrap()[1], vec!["1", "2"]);
        assert!(parse("\"open", b',').is_err());
        assert!(parse("\"a\"b,c", b',').is_err());
    }

    #[test]
    fn formats_by_name() {
        let f = Format::parse(Some("TAB"), Some("CRLF")).unwrap();
        assert_eq!((f.delimiter, f.crlf), (b'\t', true));
        assert!(Format::parse(Some("SPACE"), None).is_err());
        assert_eq!(Format::default().delimiter_name(), "COMMA");
    }
}
