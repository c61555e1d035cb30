//! The part of Apache Avro that change events use: schemas parsed from JSON (records,
//! enums, arrays, maps, unions, fixed, the primitives, named types referenced by name)
//! and the binary encoding ("Binary Encoding" in the Apache Avro specification,
//! https://avro.apache.org/docs/1.11.1/specification/: zig-zag varint ints and longs,
//! length-prefixed strings and bytes, little-endian IEEE doubles, arrays in counted
//! blocks ended by a zero count, a union as its branch index then the value, record
//! fields in schema order). Pub/Sub API sends each event as Avro binary with no
//! container header ("Event Data Serialization with Apache Avro", Pub/Sub API Developer
//! Guide); the schema comes from GetSchema.

use base64::Engine;
use serde_json::Value as Json;
use sha2::Digest;
use std::collections::HashMap;

/// A parsed schema; named types are resolved (a reference is a copy of its definition).
#[derive(Debug, Clone, PartialEq)]
pub enum Schema {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Array(Box<Schema>),
    Map(Box<Schema>),
    Enum {
        name: String,
        symbols: Vec<String>,
    },
    Record {
        name: String,
        fields: Vec<(String, Schema)>,
    },
    Union(Vec<Schema>),
    Fixed {
        name: String,
        size: usize,
    },
}

/// A decoded (or to-be-encoded) value. Unions carry their branch index.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Boolean(bool),
    Int(i32),
    Long(i64),
    Float(f32),
    Double(f64),
    Bytes(Vec<u8>),
    String(String),
    Array(Vec<Value>),
    Map(Vec<(String, Value)>),
    /// Symbol index and name.
    Enum(u32, String),
    /// Field values in schema order, with their names.
    Record(Vec<(String, Value)>),
    Union(u32, Box<Value>),
    Fixed(Vec<u8>),
}

impl Value {
    /// A record field by name; unions are looked through.
    pub fn field(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Record(fields) => fields.iter().find(|(n, _)| n == name).map(|(_, v)| v),
            Value::Union(_, v) => v.field(name),
            _ => None,
        }
    }

    /// The value inside a union (itself otherwise).
    pub fn unwrap_union(&self) -> &Value {
        match self {
            Value::Union(_, v) => v.unwrap_union(),
            v => v,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self.unwrap_union() {
            Value::String(s) => Some(s),
            Value::Enum(_, s) => Some(s),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self.unwrap_union() {
            Value::Int(i) => Some(*i as i64),
            Value::Long(i) => Some(*i),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.unwrap_union(), Value::Null)
    }

    /// Strings of an array value (empty for anything else).
    pub fn strings(&self) -> Vec<String> {
        match self.unwrap_union() {
            Value::Array(items) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "avro: {}", self.0)
    }
}

impl std::error::Error for Error {}

fn err<T>(msg: impl Into<String>) -> Result<T, Error> {
    Err(Error(msg.into()))
}

impl Schema {
    /// Parses a schema from its JSON text.
    pub fn parse(text: &str) -> Result<Schema, Error> {
        let json: Json = serde_json::from_str(text).map_err(|e| Error(e.to_string()))?;
        let mut names = HashMap::new();
        parse_json(&json, None, &mut names)
    }

    /// The fields of a record schema (empty otherwise).
    pub fn fields(&self) -> &[(String, Schema)] {
        match self {
            Schema::Record { fields, .. } => fields,
            _ => &[],
        }
    }

    /// The record inside an optional union (`["null", {record}]`), or self.
    pub fn record_branch(&self) -> Option<&Schema> {
        match self {
            Schema::Record { .. } => Some(self),
            Schema::Union(branches) => branches.iter().find(|b| matches!(b, Schema::Record { .. })),
            _ => None,
        }
    }
}

fn full_name(name: &str, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) if !name.contains('.') && !ns.is_empty() => format!("{ns}.{name}"),
        _ => name.to_string(),
    }
}

fn parse_json(
    j: &Json,
    ns: Option<&str>,
    names: &mut HashMap<String, Schema>,
) -> Result<Schema, Error> {
    match j {
        Json::String(s) => primitive(s).map_or_else(
            || {
                names
                    .get(&full_name(s, ns))
                    .or_else(|| names.get(s.as_str()))
                    .or_else(|| {
                        names
                            .iter()
                            .find(|(k, _)| k.rsplit('.').next() == Some(s))
                            .map(|(_, v)| v)
                    })
                    .cloned()
                    .ok_or_else(|| Error(format!("unknown type {s}")))
            },
            Ok,
        ),
        Json::Array(branches) => Ok(Schema::Union(
            branches
                .iter()
                .map(|b| parse_json(b, ns, names))
                .collect::<Result<_, _>>()?,
        )),
        Json::Object(o) => {
            let t = o
                .get("type")
                .ok_or_else(|| Error("schema object without type".into()))?;
            let Json::String(t) = t else {
                return parse_json(t, ns, names);
            };
            let name = o.get("name").and_then(Json::as_str).unwrap_or("");
            let own_ns = o.get("namespace").and_then(Json::as_str).or(ns);
            match t.as_str() {
                "record" | "error" => {
                    let mut fields = Vec::new();
                    for f in o
                        .get("fields")
                        .and_then(Json::as_array)
                        .into_iter()
                        .flatten()
                    {
                        let fname = f
                            .get("name")
                            .and_then(Json::as_str)
                            .ok_or_else(|| Error("field without name".into()))?;
                        let ftype = f
                            .get("type")
                            .ok_or_else(|| Error(format!("field {fname} without type")))?;
                        fields.push((fname.to_string(), parse_json(ftype, own_ns, names)?));
                    }
                    let s = Schema::Record {
                        name: name.to_string(),
                        fields,
                    };
                    names.insert(full_name(name, own_ns), s.clone());
                    Ok(s)
                }
                "enum" => {
                    let symbols = o
                        .get("symbols")
                        .and_then(Json::as_array)
                        .map(|a| {
                            a.iter()
                                .filter_map(Json::as_str)
                                .map(str::to_string)
                                .collect()
                        })
                        .unwrap_or_default();
                    let s = Schema::Enum {
                        name: name.to_string(),
                        symbols,
                    };
                    names.insert(full_name(name, own_ns), s.clone());
                    Ok(s)
                }
                "fixed" => {
                    let size = o.get("size").and_then(Json::as_u64).unwrap_or(0) as usize;
                    let s = Schema::Fixed {
                        name: name.to_string(),
                        size,
                    };
                    names.insert(full_name(name, own_ns), s.clone());
                    Ok(s)
                }
                "array" => Ok(Schema::Array(Box::new(parse_json(
                    o.get("items").unwrap_or(&Json::Null),
                    ns,
                    names,
                )?))),
                "map" => Ok(Schema::Map(Box::new(parse_json(
                    o.get("values").unwrap_or(&Json::Null),
                    ns,
                    names,
                )?))),
                p => primitive(p).ok_or_else(|| Error(format!("unknown type {p}"))),
            }
        }
        _ => err("schema must be a string, array or object"),
    }
}

fn primitive(s: &str) -> Option<Schema> {
    Some(match s {
        "null" => Schema::Null,
        "boolean" => Schema::Boolean,
        "int" => Schema::Int,
        "long" => Schema::Long,
        "float" => Schema::Float,
        "double" => Schema::Double,
        "bytes" => Schema::Bytes,
        "string" => Schema::String,
        _ => return None,
    })
}

/// The schema id the emulator gives a schema: 16 bytes of SHA-256 over its JSON text,
/// base64url without padding. Salesforce's ids have this shape (22 characters, e.g.
/// "Jx8Hz9ElkIUaBf-heF1ShA" in the Change Data Capture guide's examples) and are
/// described as "Schema fingerprint ... a hash of the schema" (pubsub_api.proto); how
/// Salesforce computes them is not documented.
pub fn schema_id(schema_json: &str) -> String {
    let digest = sha2::Sha256::digest(schema_json.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..16])
}

// ---- encoding ----

pub fn write_long(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

pub fn write_str(out: &mut Vec<u8>, s: &str) {
    write_long(out, s.len() as i64);
    out.extend_from_slice(s.as_bytes());
}

/// Writes a value; the value must match the schema it is meant for (unions carry
/// their branch index, so no schema is needed to write).
pub fn encode(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => {}
        Value::Boolean(b) => out.push(*b as u8),
        Value::Int(i) => write_long(out, *i as i64),
        Value::Long(i) => write_long(out, *i),
        Value::Float(f) => out.extend_from_slice(&f.to_le_bytes()),
        Value::Double(f) => out.extend_from_slice(&f.to_le_bytes()),
        Value::Bytes(b) => {
            write_long(out, b.len() as i64);
            out.extend_from_slice(b);
        }
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            if !items.is_empty() {
                write_long(out, items.len() as i64);
                for i in items {
                    encode(out, i);
                }
            }
            out.push(0);
        }
        Value::Map(entries) => {
            if !entries.is_empty() {
                write_long(out, entries.len() as i64);
                for (k, v) in entries {
                    write_str(out, k);
                    encode(out, v);
                }
            }
            out.push(0);
        }
        Value::Enum(i, _) => write_long(out, *i as i64),
        Value::Record(fields) => {
            for (_, f) in fields {
                encode(out, f);
            }
        }
        Value::Union(i, v) => {
            write_long(out, *i as i64);
            encode(out, v);
        }
        Value::Fixed(b) => out.extend_from_slice(b),
    }
}

// ---- decoding ----

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, Error> {
        let b = *self
            .buf
            .get(self.pos)
            .ok_or_else(|| Error("unexpected end of data".into()))?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&[u8], Error> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or_else(|| Error("unexpected end of data".into()))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn long(&mut self) -> Result<i64, Error> {
        let mut z: u64 = 0;
        let mut shift = 0;
        loop {
            let b = self.byte()?;
            if shift >= 64 {
                return err("varint too long");
            }
            z |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
        }
        Ok(((z >> 1) as i64) ^ -((z & 1) as i64))
    }

    fn len(&mut self) -> Result<usize, Error> {
        let n = self.long()?;
        usize::try_from(n).map_err(|_| Error(format!("negative length {n}")))
    }

    /// Block count of an array or map (a negative count is followed by a byte size).
    fn block(&mut self) -> Result<usize, Error> {
        let n = self.long()?;
        if n < 0 {
            self.long()?;
            return Ok(n.unsigned_abs() as usize);
        }
        Ok(n as usize)
    }
}

/// Decodes one value written with `schema`; trailing bytes are an error.
pub fn decode(schema: &Schema, data: &[u8]) -> Result<Value, Error> {
    let mut r = Reader { buf: data, pos: 0 };
    let v = read(&mut r, schema)?;
    if r.pos != data.len() {
        return err(format!("{} bytes left after the value", data.len() - r.pos));
    }
    Ok(v)
}

fn read(r: &mut Reader<'_>, s: &Schema) -> Result<Value, Error> {
    Ok(match s {
        Schema::Null => Value::Null,
        Schema::Boolean => Value::Boolean(r.byte()? != 0),
        Schema::Int => {
            Value::Int(i32::try_from(r.long()?).map_err(|_| Error("int out of range".into()))?)
        }
        Schema::Long => Value::Long(r.long()?),
        Schema::Float => Value::Float(f32::from_le_bytes(
            r.take(4)?.try_into().unwrap_or_default(),
        )),
        Schema::Double => Value::Double(f64::from_le_bytes(
            r.take(8)?.try_into().unwrap_or_default(),
        )),
        Schema::Bytes => {
            let n = r.len()?;
            Value::Bytes(r.take(n)?.to_vec())
        }
        Schema::String => {
            let n = r.len()?;
            Value::String(String::from_utf8(r.take(n)?.to_vec()).map_err(|e| Error(e.to_string()))?)
        }
        Schema::Array(item) => {
            let mut out = Vec::new();
            loop {
                let n = r.block()?;
                if n == 0 {
                    break;
                }
                for _ in 0..n {
                    out.push(read(r, item)?);
                }
            }
            Value::Array(out)
        }
        Schema::Map(item) => {
            let mut out = Vec::new();
            loop {
                let n = r.block()?;
                if n == 0 {
                    break;
                }
                for _ in 0..n {
                    let k = r.len()?;
                    let k =
                        String::from_utf8(r.take(k)?.to_vec()).map_err(|e| Error(e.to_string()))?;
                    out.push((k, read(r, item)?));
                }
            }
            Value::Map(out)
        }
        Schema::Enum { symbols, .. } => {
            let i = r.len()?;
            let sym = symbols
                .get(i)
                .ok_or_else(|| Error(format!("enum index {i} out of range")))?;
            Value::Enum(i as u32, sym.clone())
        }
        Schema::Record { fields, .. } => Value::Record(
            fields
                .iter()
                .map(|(n, fs)| Ok((n.clone(), read(r, fs)?)))
                .collect::<Result<_, Error>>()?,
        ),
        Schema::Union(branches) => {
            let i = r.len()?;
            let b = branches
                .get(i)
                .ok_or_else(|| Error(format!("union index {i} out of range")))?;
            Value::Union(i as u32, Box::new(read(r, b)?))
        }
        Schema::Fixed { size, .. } => Value::Fixed(r.take(*size)?.to_vec()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let schema = Schema::parse(
            r#"{"type":"record","name":"E","namespace":"x","fields":[
                {"name":"h","type":{"type":"record","name":"H","fields":[
                    {"name":"t","type":{"type":"enum","name":"T","symbols":["A","B"]}},
                    {"name":"ids","type":{"type":"array","items":"string"}}]}},
                {"name":"a","type":["null","long"]},
                {"name":"b","type":["null","H"]},
                {"name":"c","type":["null","double"],"default":null}]}"#,
        )
        .unwrap();
        let v = Value::Record(vec![
            (
                "h".into(),
                Value::Record(vec![
                    ("t".into(), Value::Enum(1, "B".into())),
                    (
                        "ids".into(),
                        Value::Array(vec![Value::String("x".into()), Value::String("yz".into())]),
                    ),
                ]),
            ),
            ("a".into(), Value::Union(1, Box::new(Value::Long(-300)))),
            ("b".into(), Value::Union(0, Box::new(Value::Null))),
            ("c".into(), Value::Union(1, Box::new(Value::Double(1.5)))),
        ]);
        let mut out = Vec::new();
        encode(&mut out, &v);
        assert_eq!(decode(&schema, &out).unwrap(), v);
        assert_eq!(v.field("a").and_then(Value::as_i64), Some(-300));
    }

    #[test]
    fn zigzag() {
        let mut out = Vec::new();
        write_long(&mut out, -1);
        write_long(&mut out, 64);
        assert_eq!(out, vec![0x01, 0x80, 0x01]);
    }
}
