//! A small hand-tuned JSON writer for records: query pages are the hot path.

use crate::schema::Source;
use crate::store::SObject;
use soql::Value;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `s` as a JSON string.
pub fn string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let b = s.as_bytes();
    let mut start = 0;
    for (i, &c) in b.iter().enumerate() {
        let esc: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&b[start..i]);
        if esc.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[(c >> 4) as usize]);
            out.push(HEX[(c & 0xf) as usize]);
        } else {
            out.extend_from_slice(esc);
        }
        start = i + 1;
    }
    out.extend_from_slice(&b[start..]);
    out.push(b'"');
}

pub fn double(out: &mut Vec<u8>, d: f64) {
    if d.is_finite() {
        let mut buf = ryu::Buffer::new();
        out.extend_from_slice(buf.format_finite(d).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

pub fn value(out: &mut Vec<u8>, v: Value<'_>) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Int(i) => {
            let mut buf = itoa::Buffer::new();
            out.extend_from_slice(buf.format(i).as_bytes());
        }
        Value::Double(d) => double(out, d),
        Value::Text(t) => string(out, t),
        Value::Date(d) => {
            out.push(b'"');
            crate::timefmt::write_date(out, d as i64);
            out.push(b'"');
        }
        Value::DateTime(ms) => {
            out.push(b'"');
            crate::timefmt::write_datetime(out, ms);
            out.push(b'"');
        }
        Value::Time(ms) => {
            out.push(b'"');
            crate::timefmt::write_time(out, ms);
            out.push(b'"');
        }
    }
}

/// Appends a field's value, assembling compound address fields as objects. A base64
/// field is never inlined: REST answers with the path that serves its bytes.
pub fn field(out: &mut Vec<u8>, obj: &SObject, field: usize, row: usize, version: &str) {
    if let Some(f) = obj.def.fields.get(field) {
        if f.ftype == crate::schema::FieldType::Base64 {
            if obj.value(field, row) == Value::Null {
                out.extend_from_slice(b"null");
            } else {
                let url = format!(
                    "/services/data/v{version}/sobjects/{}/{}/{}",
                    obj.def.name,
                    obj.id_of(row),
                    f.name
                );
                string(out, &url);
            }
            return;
        }
    }
    if let Some(Source::Compound { parts }) = obj.def.fields.get(field).map(|f| &f.source) {
        let vals: Vec<Value<'_>> = parts
            .iter()
            .map(|(_, c)| obj.table.cols[*c].get(row))
            .collect();
        if vals.iter().all(|v| *v == Value::Null) {
            out.extend_from_slice(b"null");
            return;
        }
        out.push(b'{');
        for (i, ((key, _), v)) in parts.iter().zip(vals).enumerate() {
            if i > 0 {
                out.push(b',');
            }
            string(out, key);
            out.push(b':');
            value(out, v);
        }
        out.push(b'}');
        return;
    }
    value(out, obj.value(field, row));
}

/// `"attributes":{"type":"Contact","url":"/services/data/v61.0/sobjects/Contact/003..."}`
pub fn attributes(out: &mut Vec<u8>, obj: &SObject, row: usize, version: &str) {
    out.extend_from_slice(b"\"attributes\":{\"type\":");
    string(out, &obj.def.name);
    out.extend_from_slice(b",\"url\":\"/services/data/v");
    out.extend_from_slice(version.as_bytes());
    out.extend_from_slice(b"/sobjects/");
    out.extend_from_slice(obj.def.name.as_bytes());
    out.push(b'/');
    out.extend_from_slice(obj.id_of(row).as_bytes());
    out.extend_from_slice(b"\"}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        let mut out = Vec::new();
        string(&mut out, "a\"b\\c\nd\u{1}é");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"a\\\"b\\\\c\\nd\\u0001é\""
        );
        let mut out = Vec::new();
        value(&mut out, Value::Double(15000.0));
        assert_eq!(out, b"15000.0");
    }
}
