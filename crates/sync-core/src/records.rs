//! Shaping records for the apply statement: REST records lose their `attributes`; Bulk
//! CSV rows become typed JSON records with compound fields rebuilt from components.

use std::collections::HashMap;

use serde_json::{Map, Number, Value};

use crate::mapping::{ColumnSpec, PgType};

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("Bulk result CSV is malformed: {0}")]
    Csv(String),
    #[error("Bulk result CSV has no header row")]
    NoHeader,
    #[error("Bulk result CSV has no Id column")]
    NoId,
    #[error("REST query page is malformed: {0}")]
    Json(String),
    #[error("could not write the page rewritten for COPY: {0}")]
    Write(String),
}

/// Removes `attributes` (type and URL, not data) from a REST record.
pub fn strip_attributes(record: &mut Value) {
    if let Value::Object(map) = record {
        map.remove("attributes");
    }
}

/// The key a component takes inside its compound value: `BillingPostalCode` in
/// `BillingAddress` -> `postalCode`; `Where__Latitude__s` in `Where__c` -> `latitude`.
pub fn compound_key(compound: &str, component: &str) -> String {
    let stem = compound
        .strip_suffix("__c")
        .map(|s| s.to_string())
        .unwrap_or_else(|| {
            compound
                .strip_suffix("Address")
                .unwrap_or(compound)
                .to_string()
        });
    let rest = component.strip_prefix(stem.as_str()).unwrap_or(component);
    let rest = rest
        .strip_suffix("__s")
        .unwrap_or(rest)
        .trim_start_matches('_');
    let mut chars = rest.chars();
    match chars.next() {
        Some(c) => c.to_ascii_lowercase().to_string() + chars.as_str(),
        None => rest.to_string(),
    }
}

fn typed(value: &str, column: &ColumnSpec) -> Value {
    match column.pg_type {
        PgType::Boolean => match value {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            other => Value::String(other.to_string()),
        },
        PgType::Integer | PgType::BigInt => value
            .parse::<i64>()
            .map(|n| Value::Number(n.into()))
            .unwrap_or_else(|_| Value::String(value.to_string())),
        PgType::Numeric => value
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(value.to_string())),
        PgType::Jsonb => {
            serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_string()))
        }
        _ => Value::String(value.to_string()),
    }
}

/// The header row of a Bulk results CSV (the fields it holds, by API name).
pub fn csv_header(csv: impl std::io::Read) -> Result<Vec<String>, RecordError> {
    let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(csv);
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| RecordError::Csv(e.to_string()))?
        .iter()
        .map(str::to_string)
        .collect();
    if header.is_empty() || header.iter().all(String::is_empty) {
        return Err(RecordError::NoHeader);
    }
    Ok(header)
}

/// Converts Bulk CSV results into records shaped like REST records, in chunks of at
/// most `chunk` rows so a large results page never sits in memory as JSON all at once.
pub struct CsvRecords<'a> {
    reader: csv::Reader<&'a [u8]>,
    // For each CSV column: the mapped column (None = unknown, kept as text).
    header: Vec<(String, Option<&'a ColumnSpec>)>,
    // Compound fields to rebuild: compound name -> (component header index, key).
    compounds: Vec<(String, Vec<(usize, String)>)>,
    record: csv::StringRecord,
}

impl<'a> CsvRecords<'a> {
    pub fn new(csv_bytes: &'a [u8], columns: &'a [ColumnSpec]) -> Result<Self, RecordError> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(false)
            .from_reader(csv_bytes);
        let headers = reader
            .headers()
            .map_err(|e| RecordError::Csv(e.to_string()))?
            .clone();
        if headers.is_empty() {
            return Err(RecordError::NoHeader);
        }
        let by_field: HashMap<&str, &ColumnSpec> =
            columns.iter().map(|c| (c.field.as_str(), c)).collect();
        let header: Vec<(String, Option<&ColumnSpec>)> = headers
            .iter()
            .map(|h| (h.to_string(), by_field.get(h).copied()))
            .collect();
        let compounds = columns
            .iter()
            .filter(|c| c.is_compound())
            .map(|c| {
                let parts = header
                    .iter()
                    .enumerate()
                    .filter(|(_, (_, spec))| {
                        spec.is_some_and(|s| s.compound_of.as_deref() == Some(c.field.as_str()))
                    })
                    .map(|(i, (name, _))| (i, compound_key(&c.field, name)))
                    .collect();
                (c.field.clone(), parts)
            })
            .collect();
        Ok(CsvRecords {
            reader,
            header,
            compounds,
            record: csv::StringRecord::new(),
        })
    }

    /// The next chunk of up to `chunk` records; empty at the end.
    pub fn next_chunk(&mut self, chunk: usize) -> Result<Vec<Value>, RecordError> {
        let mut out = Vec::with_capacity(chunk.min(10_000));
        while out.len() < chunk {
            let more = self
                .reader
                .read_record(&mut self.record)
                .map_err(|e| RecordError::Csv(e.to_string()))?;
            if !more {
                break;
            }
            out.push(Value::Object(self.convert()));
        }
        Ok(out)
    }

    fn convert(&self) -> Map<String, Value> {
        let mut map = Map::with_capacity(self.header.len() + self.compounds.len());
        for (i, (name, spec)) in self.header.iter().enumerate() {
            let raw = self.record.get(i).unwrap_or("");
            let value = if raw.is_empty() {
                Value::Null
            } else {
                match spec {
                    Some(spec) => typed(raw, spec),
                    None => Value::String(raw.to_string()),
                }
            };
            map.insert(name.clone(), value);
        }
        for (compound, parts) in &self.compounds {
            let mut obj = Map::new();
            let mut any = false;
            for (i, key) in parts {
                let v = map.get(&self.header[*i].0).cloned().unwrap_or(Value::Null);
                any |= !v.is_null();
                obj.insert(key.clone(), v);
            }
            map.insert(
                compound.clone(),
                if any { Value::Object(obj) } else { Value::Null },
            );
        }
        map
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::columns_of;

    fn cols() -> Vec<ColumnSpec> {
        columns_of(&[
            ("Id", "id", None),
            ("Name", "string", None),
            ("IsActive__c", "boolean", None),
            ("NumberOfEmployees", "int", None),
            ("AnnualRevenue", "currency", None),
            ("BillingStreet", "textarea", Some("BillingAddress")),
            ("BillingCity", "string", Some("BillingAddress")),
            ("BillingPostalCode", "string", Some("BillingAddress")),
            ("BillingLatitude", "double", Some("BillingAddress")),
            ("BillingAddress", "address", None),
        ])
    }

    #[test]
    fn compound_keys() {
        assert_eq!(
            compound_key("BillingAddress", "BillingPostalCode"),
            "postalCode"
        );
        assert_eq!(
            compound_key("BillingAddress", "BillingGeocodeAccuracy"),
            "geocodeAccuracy"
        );
        assert_eq!(compound_key("Address", "Street"), "street");
        assert_eq!(compound_key("Where__c", "Where__Latitude__s"), "latitude");
    }

    #[test]
    fn csv_rows_become_typed_records() {
        let c = cols();
        let csv = b"\"Id\",\"Name\",\"IsActive__c\",\"NumberOfEmployees\",\"AnnualRevenue\",\"BillingStreet\",\"BillingCity\",\"BillingPostalCode\",\"BillingLatitude\"\n\
\"001A\",\"Acme, Inc\",\"true\",\"12\",\"1000.5\",\"1 Main\nSt\",\"Paris\",\"\",\"48.85\"\n\
\"001B\",\"\",\"false\",\"\",\"\",\"\",\"\",\"\",\"\"\n";
        let mut rows = CsvRecords::new(csv, &c).unwrap();
        let chunk = rows.next_chunk(1).unwrap();
        assert_eq!(
            chunk[0],
            serde_json::json!({
                "Id": "001A", "Name": "Acme, Inc", "IsActive__c": true, "NumberOfEmployees": 12,
                "AnnualRevenue": 1000.5, "BillingStreet": "1 Main\nSt", "BillingCity": "Paris",
                "BillingPostalCode": null, "BillingLatitude": 48.85,
                "BillingAddress": {"street": "1 Main\nSt", "city": "Paris", "postalCode": null, "latitude": 48.85}
            })
        );
        let chunk = rows.next_chunk(10).unwrap();
        assert_eq!(chunk.len(), 1);
        assert_eq!(chunk[0]["Name"], Value::Null);
        assert_eq!(chunk[0]["IsActive__c"], Value::Bool(false));
        assert_eq!(chunk[0]["BillingAddress"], Value::Null);
        assert!(rows.next_chunk(10).unwrap().is_empty());
    }

    #[test]
    fn reads_csv_header() {
        assert_eq!(
            csv_header(&b"\"Id\",\"Name\"\n\"1\",\"x\"\n"[..]).unwrap(),
            vec!["Id", "Name"]
        );
        assert!(csv_header(&b""[..]).is_err());
    }

    #[test]
    fn strips_attributes() {
        let mut r = serde_json::json!({"attributes": {"type": "Contact"}, "Id": "003"});
        strip_attributes(&mut r);
        assert_eq!(r, serde_json::json!({"Id": "003"}));
    }
}
