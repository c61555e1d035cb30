//! A change event's record fields as the REST API names and writes them.
//!
//! | fact | source |
//! | --- | --- |
//! | Bitmaps (`changedFields`, `nulledFields`, `diffFields`): an array of hex strings; the first marks top-level fields by their position in the Avro schema, `"<pos>-0x<hex>"` marks components of the compound field at `<pos>` by their position in its nested record | "Event Deserialization Considerations", Pub/Sub API Developer Guide, https://developer.salesforce.com/docs/platform/pub-sub-api/guide/event-deserialization-considerations.html (bit order as in `pubsub::bitmap`) |
//! | Compound fields (contact Name, addresses, geolocations) are nested records; their components may be named differently than on the object: the `Street` component of `BillingAddress` is `BillingStreet` on Account | "Get Compound Fields in Change Events", Change Data Capture Developer Guide, https://developer.salesforce.com/docs/atlas.en-us.change_data_capture.meta/change_data_capture/cdc_subscribe_compound_fields.htm |
//! | Pub/Sub payloads hold every field; unchanged and unpopulated ones are null; dates are epoch numbers | "Differences Between Change Events Received with Streaming API vs. Pub/Sub API", Streaming API Developer Guide, https://developer.salesforce.com/docs/atlas.en-us.api_streaming.meta/api_streaming/cdc_event_diff_pubsub_cometd.htm |
//! | `diffFields` values are sent as a diff of the old value, not the value | same page as the bitmaps ("Contains the fields whose values were sent as a data diff") |
//!
//! Naming: an address component `X` of `<Prefix>Address` is `<Prefix>X` (MailingCity,
//! BillingStreet, City for a Lead's `Address`); a geolocation component of `Loc__c`
//! is `Loc__Latitude__s`; name components (Salutation, FirstName, LastName, ...) keep
//! their names. When the object's describe is registered ([`ObjectTypes`]), a field
//! whose `compoundFieldName` is the compound and whose name ends in the component
//! wins over these rules.
//!
//! Values: strings, booleans and numbers as they come; a date (Avro `int`, days since
//! 1970-01-01) as `2024-01-02`; a datetime (Avro `long`, epoch milliseconds) as
//! `2024-01-02T03:04:05.000+0000`, the REST format. The unit of "epoch time" is not
//! documented; days and milliseconds are the emulator's choice. An `int` is only read as
//! a date when the describe says the field is one (the Avro type alone cannot tell a
//! date from an integer); a `long` is read as a datetime unless the describe says
//! otherwise.

use std::collections::{HashMap, HashSet};

use ::pubsub::avro::{Schema, Value as Avro};
use serde_json::{Map, Value as Json};

use crate::describe::{FieldType, SObjectDescribe};

/// The field types and compound components of one object, from its describe.
#[derive(Debug, Clone, Default)]
pub(crate) struct ObjectTypes {
    types: HashMap<String, FieldType>,
    /// (compound field, component name in the event) -> field name on the object.
    components: HashMap<(String, String), String>,
}

impl ObjectTypes {
    pub(crate) fn from_describe(d: &SObjectDescribe) -> ObjectTypes {
        ObjectTypes::from_fields(d.fields.iter().map(|f| {
            (
                f.name.clone(),
                f.field_type.clone(),
                f.compound_field_name.clone(),
            )
        }))
    }

    /// From (field name, type, compound field it is a component of) triples.
    pub(crate) fn from_fields(
        fields: impl IntoIterator<Item = (String, FieldType, Option<String>)>,
    ) -> ObjectTypes {
        let mut out = ObjectTypes::default();
        for (name, field_type, compound) in fields {
            if let Some(compound) = &compound {
                for component in component_candidates(compound, &name) {
                    out.components
                        .insert((compound.clone(), component), name.clone());
                }
            }
            out.types.insert(name, field_type);
        }
        out
    }

    fn field_type(&self, name: &str) -> Option<&FieldType> {
        self.types.get(name)
    }
}

/// Event component names a field of `compound` may appear under: its own name, and
/// its name without the compound's prefix (`MailingCity` of `MailingAddress` -> `City`;
/// `Loc__Latitude__s` of `Loc__c` -> `Latitude`).
fn component_candidates(compound: &str, field: &str) -> Vec<String> {
    let mut out = vec![field.to_string()];
    if let Some(prefix) = compound.strip_suffix("Address") {
        if let Some(rest) = field.strip_prefix(prefix).filter(|r| !r.is_empty()) {
            out.push(rest.to_string());
        }
    }
    if let Some(base) = compound.strip_suffix("__c") {
        if let Some(rest) = field
            .strip_prefix(base)
            .and_then(|r| r.strip_prefix("__"))
            .and_then(|r| r.strip_suffix("__s"))
        {
            out.push(rest.to_string());
        }
    }
    out
}

/// The REST name of component `component` of compound field `compound`.
pub(crate) fn component_name(
    compound: &str,
    component: &str,
    types: Option<&ObjectTypes>,
) -> String {
    if let Some(name) = types.and_then(|t| {
        t.components
            .get(&(compound.to_string(), component.to_string()))
    }) {
        return name.clone();
    }
    if let Some(prefix) = compound.strip_suffix("Address") {
        return format!("{prefix}{component}");
    }
    if let Some(base) = compound.strip_suffix("__c") {
        return format!("{base}__{component}__s");
    }
    component.to_string()
}

/// One field a bitmap marks: a top-level position, and a component position inside
/// it for compound fields.
type Marked = (usize, Option<usize>);

/// Positions a bitmap array marks, as Salesforce lays it out.
fn marked(bitmaps: &[String]) -> Vec<Marked> {
    let mut out = Vec::new();
    for b in bitmaps {
        match b.split_once('-') {
            None => out.extend(
                ::pubsub::bitmap::decode(b)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|p| (p, None)),
            ),
            Some((parent, child)) => {
                let Ok(p) = parent.trim().parse::<usize>() else {
                    continue;
                };
                out.extend(
                    ::pubsub::bitmap::decode(child)
                        .unwrap_or_default()
                        .into_iter()
                        .map(|c| (p, Some(c))),
                );
            }
        }
    }
    out
}

/// The top-level fields of an event schema after the header, with their positions.
fn record_fields(schema: &Schema) -> impl Iterator<Item = (usize, &str, &Schema)> {
    schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, (name, _))| name != "ChangeEventHeader")
        .map(|(i, (name, s))| (i, name.as_str(), s))
}

/// The REST names of the fields a bitmap array marks. A compound position marked at
/// the top level without nested entries stands for all of its components.
pub(crate) fn names(
    schema: &Schema,
    bitmaps: &[String],
    types: Option<&ObjectTypes>,
) -> Vec<String> {
    let marks = marked(bitmaps);
    let fields = schema.fields();
    let mut out: Vec<String> = Vec::new();
    let mut push = |n: String| {
        if !out.contains(&n) {
            out.push(n);
        }
    };
    for (pos, component) in &marks {
        let Some((name, fschema)) = fields.get(*pos) else {
            continue;
        };
        if name == "ChangeEventHeader" {
            continue;
        }
        match (fschema.record_branch(), component) {
            (Some(rec), Some(c)) => {
                if let Some((cname, _)) = rec.fields().get(*c) {
                    push(component_name(name, cname, types));
                }
            }
            (Some(rec), None) => {
                let nested = marks.iter().any(|(p, c)| p == pos && c.is_some());
                if !nested {
                    for (cname, _) in rec.fields() {
                        push(component_name(name, cname, types));
                    }
                }
            }
            (None, _) => push(name.clone()),
        }
    }
    out
}

/// What a change event's body carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Body {
    /// Every field of the record (CREATE, UNDELETE): nulls are values.
    Whole,
    /// Only changed fields (UPDATE): nulls are "unchanged" unless nulledFields names them.
    Changes,
    /// No field values (DELETE, gap and overflow events).
    Nothing,
}

/// The record's field values keyed by REST name: for [`Body::Whole`] every field, for
/// [`Body::Changes`] the set ones plus the `nulled` ones as null (minus the `diff`
/// ones, whose value is a diff), for [`Body::Nothing`] none.
pub(crate) fn values(
    schema: &Schema,
    payload: &Avro,
    body: Body,
    nulled: &[String],
    diff: &[String],
    types: Option<&ObjectTypes>,
) -> Map<String, Json> {
    let mut out = Map::new();
    if body == Body::Nothing {
        return out;
    }
    let nulled: HashSet<&str> = nulled.iter().map(String::as_str).collect();
    let diff: HashSet<&str> = diff.iter().map(String::as_str).collect();
    let mut put = |name: String, v: &Avro| {
        if diff.contains(name.as_str()) {
            return;
        }
        let field_type = types.and_then(|t| t.field_type(&name));
        if !v.is_null() {
            out.insert(name, json_value(v, field_type));
        } else if body == Body::Whole || nulled.contains(name.as_str()) {
            out.insert(name, Json::Null);
        }
    };
    for (_, name, fschema) in record_fields(schema) {
        let value = payload.field(name).unwrap_or(&Avro::Null);
        match fschema.record_branch() {
            Some(rec) => {
                for (cname, _) in rec.fields() {
                    let cv = value.field(cname).unwrap_or(&Avro::Null);
                    put(component_name(name, cname, types), cv);
                }
            }
            None => put(name.to_string(), value),
        }
    }
    out
}

/// One Avro value as REST writes it, given the field's describe type when known.
fn json_value(v: &Avro, field_type: Option<&FieldType>) -> Json {
    match (v.unwrap_union(), field_type) {
        (Avro::Null, _) => Json::Null,
        (Avro::Boolean(b), _) => Json::Bool(*b),
        (Avro::Int(days), Some(FieldType::Date)) => date(*days as i64),
        (Avro::Long(days), Some(FieldType::Date)) => date(*days),
        (Avro::Int(ms), Some(FieldType::Time)) => time(*ms as i64),
        (Avro::Long(ms), Some(FieldType::Time)) => time(*ms),
        (Avro::Int(i), _) => Json::from(*i),
        (Avro::Long(ms), None | Some(FieldType::Datetime)) => datetime(*ms),
        (Avro::Long(i), _) => Json::from(*i),
        (Avro::Float(f), _) => number(*f as f64),
        (Avro::Double(f), _) => number(*f),
        (Avro::String(s), _) => Json::String(s.clone()),
        (Avro::Enum(_, s), _) => Json::String(s.clone()),
        (Avro::Bytes(b) | Avro::Fixed(b), _) => {
            use base64::Engine;
            Json::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        (Avro::Array(items), _) => Json::Array(items.iter().map(|i| json_value(i, None)).collect()),
        (Avro::Map(entries), _) => Json::Object(
            entries
                .iter()
                .map(|(k, v)| (k.clone(), json_value(v, None)))
                .collect(),
        ),
        (Avro::Record(fields), _) => Json::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), json_value(v, None)))
                .collect(),
        ),
        (Avro::Union(..), _) => Json::Null,
    }
}

fn number(f: f64) -> Json {
    serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number)
}

/// Days since 1970-01-01 as `YYYY-MM-DD`.
fn date(days: i64) -> Json {
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
    let d = chrono::TimeDelta::try_days(days).and_then(|t| epoch.checked_add_signed(t));
    d.map_or(Json::Null, |d| {
        Json::String(d.format("%Y-%m-%d").to_string())
    })
}

/// Epoch milliseconds as REST writes datetimes (`2024-01-02T03:04:05.000+0000`).
fn datetime(ms: i64) -> Json {
    chrono::DateTime::from_timestamp_millis(ms).map_or(Json::Null, |t| {
        Json::String(t.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string())
    })
}

/// Milliseconds after midnight as REST writes times (`03:04:05.000Z`). The Avro form
/// of time fields is not documented; this reading is a guess kept for numbers only.
fn time(ms: i64) -> Json {
    let ms = ms.rem_euclid(86_400_000);
    Json::String(format!(
        "{:02}:{:02}:{:02}.{:03}Z",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Schema {
        Schema::parse(
            r#"{"type":"record","name":"ContactChangeEvent","fields":[
              {"name":"ChangeEventHeader","type":{"type":"record","name":"H","fields":[]}},
              {"name":"Name","type":["null",{"type":"record","name":"PersonName","fields":[
                 {"name":"Salutation","type":["null","string"]},
                 {"name":"FirstName","type":["null","string"]},
                 {"name":"LastName","type":["null","string"]}]}]},
              {"name":"Phone","type":["null","string"]},
              {"name":"MailingAddress","type":["null",{"type":"record","name":"Address","fields":[
                 {"name":"Street","type":["null","string"]},
                 {"name":"City","type":["null","string"]}]}]},
              {"name":"Birthdate","type":["null","int"]},
              {"name":"LastModifiedDate","type":["null","long"]},
              {"name":"Score","type":["null","double"]}]}"#,
        )
        .unwrap()
    }

    fn some(v: Avro) -> Avro {
        Avro::Union(1, Box::new(v))
    }

    fn none() -> Avro {
        Avro::Union(0, Box::new(Avro::Null))
    }

    #[test]
    fn bitmaps_name_top_level_and_nested_fields_the_rest_way() {
        let s = schema();
        // Phone (2), LastModifiedDate (5); Name.FirstName; MailingAddress.City.
        let changed = vec!["0x24".to_string(), "1-0x02".into(), "3-0x02".into()];
        assert_eq!(
            names(&s, &changed, None),
            ["Phone", "LastModifiedDate", "FirstName", "MailingCity"]
        );
        // A compound marked whole stands for its components.
        assert_eq!(
            names(&s, &["0x08".into()], None),
            ["MailingStreet", "MailingCity"]
        );
        assert!(names(&s, &[], None).is_empty());
    }

    #[test]
    fn update_values_hold_set_and_nulled_fields_only() {
        let s = schema();
        let payload = Avro::Record(vec![
            ("ChangeEventHeader".into(), Avro::Record(vec![])),
            (
                "Name".into(),
                some(Avro::Record(vec![
                    ("Salutation".into(), none()),
                    ("FirstName".into(), some(Avro::String("Ada".into()))),
                    ("LastName".into(), none()),
                ])),
            ),
            ("Phone".into(), none()),
            ("MailingAddress".into(), none()),
            ("Birthdate".into(), some(Avro::Int(19724))),
            (
                "LastModifiedDate".into(),
                some(Avro::Long(1_704_164_645_000)),
            ),
            ("Score".into(), some(Avro::Double(2.5))),
        ]);
        let nulled = vec!["Phone".to_string(), "MailingCity".into()];
        let d: SObjectDescribe = serde_json::from_value(serde_json::json!({
            "name": "Contact", "fields": [
                {"name": "Birthdate", "type": "date"},
                {"name": "LastModifiedDate", "type": "datetime"}]
        }))
        .unwrap();
        let types = ObjectTypes::from_describe(&d);
        let v = values(&s, &payload, Body::Changes, &nulled, &[], Some(&types));
        assert_eq!(
            Json::Object(v),
            serde_json::json!({
                "FirstName": "Ada",
                "Phone": null,
                "MailingCity": null,
                "Birthdate": "2024-01-02",
                "LastModifiedDate": "2024-01-02T03:04:05.000+0000",
                "Score": 2.5,
            })
        );
        // Without the describe an int stays a number; a long is still a datetime.
        let v = values(&s, &payload, Body::Changes, &[], &[], None);
        assert_eq!(v["Birthdate"], Json::from(19724));
        assert_eq!(v["LastModifiedDate"], "2024-01-02T03:04:05.000+0000");
        // A whole record names every field; a diff field is left to the caller.
        let v = values(&s, &payload, Body::Whole, &[], &["Score".into()], None);
        assert_eq!(v.len(), 8, "nine fields, minus the diff one");
        assert_eq!(v["MailingStreet"], Json::Null);
        assert!(!v.contains_key("Score"));
        assert!(values(&s, &payload, Body::Nothing, &[], &[], None).is_empty());
    }

    #[test]
    fn component_names_follow_the_object() {
        assert_eq!(
            component_name("BillingAddress", "Street", None),
            "BillingStreet"
        );
        assert_eq!(component_name("Address", "City", None), "City");
        assert_eq!(component_name("Name", "LastName", None), "LastName");
        assert_eq!(
            component_name("Loc__c", "Latitude", None),
            "Loc__Latitude__s"
        );
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(time(3_723_004), "01:02:03.004Z");
    }
}
