//! The Avro schema of one object's change events and how a record's values fill it.
//!
//! | fact | source |
//! | --- | --- |
//! | Event name `<Object>ChangeEvent`, custom `<Name>__ChangeEvent` | "Change Data Capture Events", Platform Events Developer Guide |
//! | The header is the record's first field, `ChangeEventHeader`, with entityName, recordIds, changeType, changeOrigin, transactionKey, sequenceNumber, commitTimestamp, commitNumber, commitUser, nulledFields, diffFields, changedFields in this order | "Change Event Message Structure", Change Data Capture Developer Guide, https://developer.salesforce.com/docs/atlas.en-us.change_data_capture.meta/change_data_capture/cdc_message_structure.htm |
//! | No IsDeleted, no SystemModstamp, no field derived from a formula | same page, "Change Event Fields" |
//! | Compound fields (contact Name, addresses) are nested records; address components are named Street, City, State, PostalCode, Country, Latitude, Longitude, GeocodeAccuracy | "Get Compound Fields in Change Events", https://developer.salesforce.com/docs/atlas.en-us.change_data_capture.meta/change_data_capture/cdc_subscribe_compound_fields.htm |
//! | Every record field is in the Pub/Sub payload; unchanged and empty ones are null | "Change Event Body Fields", https://developer.salesforce.com/docs/atlas.en-us.change_data_capture.meta/change_data_capture/cdc_event_fields_body.htm |
//! | Dates and datetimes are epoch numbers | "Differences Between Change Events Received with Streaming API vs. Pub/Sub API", Streaming API Developer Guide |
//!
//! Not confirmed and chosen here: dates as Avro `int` days and datetimes as `long`
//! milliseconds; the header's changeType as an Avro enum `ChangeType`; the person name
//! record's type name (`PersonName`) and its component order (Salutation, FirstName,
//! LastName, then MiddleName and Suffix when the object has them); the record's
//! namespace `com.sforce.eventbus`; no `doc` attributes; Id, base64 and anyType
//! fields left out of the body (the record id travels in `recordIds`).

use crate::schema::{Derive, FieldType, ObjectDef};
use crate::store::SObject;
use pubsub::avro::Value as Avro;
use serde_json::{json, Value as Json};
use soql::Value;

/// Change types in the order of the header's Avro enum.
pub const CHANGE_TYPES: [&str; 10] = [
    "CREATE",
    "UPDATE",
    "DELETE",
    "UNDELETE",
    "GAP_CREATE",
    "GAP_UPDATE",
    "GAP_DELETE",
    "GAP_UNDELETE",
    "GAP_OVERFLOW",
    "SNAPSHOT",
];

const NAMESPACE: &str = "com.sforce.eventbus";

/// One stored field as the event carries it.
#[derive(Debug, Clone)]
pub struct Part {
    pub name: String,
    pub ftype: FieldType,
    pub col: usize,
}

/// A top-level field of the event after the header (Avro position = index + 1).
#[derive(Debug, Clone)]
pub enum Slot {
    Plain(Part),
    /// A nested record (`MailingAddress`, `Name`) of component fields.
    Compound {
        name: String,
        type_name: &'static str,
        parts: Vec<Part>,
    },
}

/// An object's change-event schema.
#[derive(Debug)]
pub struct Layout {
    pub entity: String,
    pub slots: Vec<Slot>,
    pub schema_json: String,
    pub schema_id: String,
}

/// The fields that make up the contact/lead `Name` compound, in the order used.
const NAME_PARTS: [&str; 5] = [
    "Salutation",
    "FirstName",
    "LastName",
    "MiddleName",
    "Suffix",
];

fn carried_type(t: FieldType) -> bool {
    !matches!(
        t,
        FieldType::Id
            | FieldType::Base64
            | FieldType::AnyType
            | FieldType::Address
            | FieldType::Location
    )
}

/// The slots of `def`'s change events in describe's field order; a compound sits
/// where the compound field itself is listed, its components only inside it.
pub fn slots(def: &ObjectDef) -> Vec<Slot> {
    let full_name = def
        .fields
        .iter()
        .find(|f| f.visible() && matches!(f.derive, Some(Derive::FullName { .. })))
        .map(|f| f.name.clone());
    let in_name = |n: &str| full_name.is_some() && NAME_PARTS.contains(&n);
    let mut out = Vec::new();
    for f in def.fields.iter().filter(|f| f.visible()) {
        if Some(&f.name) == full_name.as_ref() {
            let parts = NAME_PARTS
                .iter()
                .filter_map(|n| def.field(n))
                .filter_map(|p| {
                    p.column().map(|col| Part {
                        name: p.name.clone(),
                        ftype: p.ftype,
                        col,
                    })
                })
                .collect();
            out.push(Slot::Compound {
                name: f.name.clone(),
                type_name: "PersonName",
                parts,
            });
            continue;
        }
        if f.ftype == FieldType::Address {
            let parts: Vec<Part> = def
                .fields
                .iter()
                .filter(|p| p.visible() && p.compound.as_deref() == Some(f.name.as_str()))
                .filter_map(|p| {
                    let prefix = f.name.strip_suffix("Address").unwrap_or("");
                    p.column().map(|col| Part {
                        name: p.name.strip_prefix(prefix).unwrap_or(&p.name).to_string(),
                        ftype: p.ftype,
                        col,
                    })
                })
                .collect();
            if !parts.is_empty() {
                out.push(Slot::Compound {
                    name: f.name.clone(),
                    type_name: "Address",
                    parts,
                });
            }
            continue;
        }
        let skip = f.compound.is_some()
            || in_name(&f.name)
            || f.calculated
            || f.formula.is_some()
            || !carried_type(f.ftype)
            || f.name == "SystemModstamp";
        if skip {
            continue;
        }
        if let Some(col) = f.column() {
            out.push(Slot::Plain(Part {
                name: f.name.clone(),
                ftype: f.ftype,
                col,
            }));
        }
    }
    out
}

/// A hash of everything in `def` that shapes its events: object and field names,
/// types, visibility, formulas, compounds, columns.
pub fn shape_hash(def: &ObjectDef) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    def.name.hash(&mut h);
    for f in &def.fields {
        f.name.hash(&mut h);
        (f.ftype as u8).hash(&mut h);
        (f.visible(), f.calculated, f.formula.is_some(), f.column()).hash(&mut h);
        f.compound.hash(&mut h);
        matches!(f.derive, Some(Derive::FullName { .. })).hash(&mut h);
    }
    h.finish()
}

fn avro_type(t: FieldType) -> &'static str {
    match t {
        FieldType::Boolean => "boolean",
        FieldType::Int => "int",
        FieldType::Double | FieldType::Currency | FieldType::Percent => "double",
        FieldType::Date => "int",
        FieldType::DateTime => "long",
        _ => "string",
    }
}

fn optional(name: &str, t: Json) -> Json {
    json!({"name": name, "type": ["null", t], "default": null})
}

fn header_schema() -> Json {
    let strings = json!({"type": "array", "items": "string"});
    json!({
        "name": "ChangeEventHeader",
        "type": {
            "type": "record",
            "name": "ChangeEventHeader",
            "namespace": NAMESPACE,
            "fields": [
                {"name": "entityName", "type": "string"},
                {"name": "recordIds", "type": strings},
                {"name": "changeType", "type": {"type": "enum", "name": "ChangeType", "namespace": NAMESPACE, "symbols": CHANGE_TYPES}},
                {"name": "changeOrigin", "type": "string"},
                {"name": "transactionKey", "type": "string"},
                {"name": "sequenceNumber", "type": "int"},
                {"name": "commitTimestamp", "type": "long"},
                {"name": "commitNumber", "type": "long"},
                {"name": "commitUser", "type": "string"},
                {"name": "nulledFields", "type": strings},
                {"name": "diffFields", "type": strings},
                {"name": "changedFields", "type": strings},
            ]
        }
    })
}

/// The Avro schema JSON of an entity's events.
pub fn schema_json(entity: &str, slots: &[Slot]) -> String {
    let mut fields = vec![header_schema()];
    let mut defined: Vec<&str> = Vec::new();
    for slot in slots {
        match slot {
            Slot::Plain(p) => fields.push(optional(&p.name, json!(avro_type(p.ftype)))),
            Slot::Compound {
                name,
                type_name,
                parts,
            } => {
                // Avro names a type once per schema; later uses refer to it by name.
                let t = if defined.contains(type_name) {
                    json!(type_name)
                } else {
                    defined.push(type_name);
                    let inner: Vec<Json> = parts
                        .iter()
                        .map(|p| optional(&p.name, json!(avro_type(p.ftype))))
                        .collect();
                    json!({"type": "record", "name": type_name, "namespace": NAMESPACE, "fields": inner})
                };
                fields.push(optional(name, t));
            }
        }
    }
    let schema = json!({
        "type": "record",
        "name": pubsub::channel::change_event_name(entity),
        "namespace": NAMESPACE,
        "fields": fields,
    });
    schema.to_string()
}

pub fn build(entity: &str, slots: Vec<Slot>) -> Layout {
    let schema_json = schema_json(entity, &slots);
    let schema_id = pubsub::avro::schema_id(&schema_json);
    Layout {
        entity: entity.to_string(),
        slots,
        schema_json,
        schema_id,
    }
}

/// A stored value as the event's Avro type.
pub fn avro_value(t: FieldType, v: Value<'_>) -> Avro {
    let inner = match (avro_type(t), v) {
        (_, Value::Null) => return Avro::Union(0, Box::new(Avro::Null)),
        ("boolean", Value::Bool(b)) => Avro::Boolean(b),
        ("int", Value::Int(i)) => Avro::Int(i.clamp(i32::MIN as i64, i32::MAX as i64) as i32),
        ("int", Value::Date(d)) => Avro::Int(d),
        ("double", Value::Double(d)) => Avro::Double(d),
        ("double", Value::Int(i)) => Avro::Double(i as f64),
        ("long", Value::DateTime(ms)) => Avro::Long(ms),
        (_, Value::Text(s)) => Avro::String(s.to_string()),
        // A value whose stored type differs from the field's (after a type change):
        // sent as text rather than dropped.
        (_, Value::Bool(b)) => Avro::String(b.to_string()),
        (_, Value::Int(i)) => Avro::String(i.to_string()),
        (_, Value::Double(d)) => Avro::String(d.to_string()),
        (_, Value::Date(d)) => Avro::String(crate::timefmt::date_string(d as i64)),
        (_, Value::DateTime(ms)) => Avro::String(crate::timefmt::datetime_string(ms)),
        (_, Value::Time(t)) => Avro::String(t.to_string()),
    };
    Avro::Union(1, Box::new(inner))
}

pub fn null() -> Avro {
    Avro::Union(0, Box::new(Avro::Null))
}

/// Which columns an event sets: all of them (create, undelete), some (update), none
/// (delete, gap and overflow events).
pub enum Fill<'a> {
    All,
    Columns(&'a [usize]),
    Nothing,
}

impl Fill<'_> {
    fn has(&self, col: usize) -> bool {
        match self {
            Fill::All => true,
            Fill::Columns(c) => c.contains(&col),
            Fill::Nothing => false,
        }
    }
}

/// The Avro encoding of the event's record fields (everything after the header).
pub fn encode_body(layout: &Layout, o: Option<(&SObject, usize)>, fill: &Fill<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 * layout.slots.len());
    let read = |col: usize, t: FieldType| match o {
        Some((o, row)) => avro_value(t, o.table.cols[col].get(row)),
        None => null(),
    };
    for slot in &layout.slots {
        let v = match slot {
            Slot::Plain(p) if fill.has(p.col) => read(p.col, p.ftype),
            Slot::Plain(_) => null(),
            Slot::Compound { parts, .. } => {
                let values: Vec<(String, Avro)> = parts
                    .iter()
                    .map(|p| {
                        let v = if fill.has(p.col) {
                            read(p.col, p.ftype)
                        } else {
                            null()
                        };
                        (p.name.clone(), v)
                    })
                    .collect();
                if values.iter().all(|(_, v)| v.is_null()) {
                    null()
                } else {
                    Avro::Union(1, Box::new(Avro::Record(values)))
                }
            }
        };
        pubsub::avro::encode(&mut out, &v);
    }
    out
}
