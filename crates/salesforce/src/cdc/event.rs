//! One change event, decoded: the `ChangeEventHeader` as typed fields and the record's
//! values as REST names them.
//!
//! | fact | source |
//! | --- | --- |
//! | The event record's first field is `ChangeEventHeader` with entityName, recordIds, changeType, changeOrigin, transactionKey, sequenceNumber, commitTimestamp (epoch ms), commitNumber, commitUser, nulledFields, diffFields, changedFields | "ChangeEventHeader Fields", Change Data Capture Developer Guide, https://developer.salesforce.com/docs/atlas.en-us.change_data_capture.meta/change_data_capture/cdc_event_fields_header.htm |
//! | changeType: CREATE, UPDATE, DELETE, UNDELETE, and GAP_CREATE, GAP_UPDATE, GAP_DELETE, GAP_UNDELETE, GAP_OVERFLOW | same page; "Gap Events" and "Overflow Events", same guide |
//! | CREATE and UNDELETE carry all fields, UPDATE the changed ones, DELETE none; gap events carry no field values | "Change Event Body Fields", https://developer.salesforce.com/docs/atlas.en-us.change_data_capture.meta/change_data_capture/cdc_event_fields_body.htm; "Gap Events" |
//! | One event may name several records (recordIds) when the same change hit them in one transaction | "ChangeEventHeader Fields" (recordIds) |
//! | changeOrigin `com/salesforce/api/<api>/<version>;client=<name>` names the API and the client of the call options header | EventBus.ChangeEventHeader class, Apex Reference Guide |

use ::pubsub::avro::Value as Avro;
use ::pubsub::ProducerEvent;
use serde_json::{Map, Value as Json};

use super::connection::EventSchema;
use super::fields::{self, Body, ObjectTypes};
use crate::error::{Error, Result};

/// The kind of change an event reports.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ChangeType {
    Create,
    Update,
    Delete,
    Undelete,
    /// A change that could not be captured with its values: re-read the record.
    GapCreate,
    GapUpdate,
    GapDelete,
    GapUndelete,
    /// Too many changes in one transaction: the rest of the entity's changes are not
    /// sent (recordIds is empty); re-read the entity.
    GapOverflow,
    /// Any other value (`SNAPSHOT` and kinds added later), verbatim.
    Other(String),
}

impl ChangeType {
    pub fn parse(s: &str) -> ChangeType {
        match s {
            "CREATE" => ChangeType::Create,
            "UPDATE" => ChangeType::Update,
            "DELETE" => ChangeType::Delete,
            "UNDELETE" => ChangeType::Undelete,
            "GAP_CREATE" => ChangeType::GapCreate,
            "GAP_UPDATE" => ChangeType::GapUpdate,
            "GAP_DELETE" => ChangeType::GapDelete,
            "GAP_UNDELETE" => ChangeType::GapUndelete,
            "GAP_OVERFLOW" => ChangeType::GapOverflow,
            other => ChangeType::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            ChangeType::Create => "CREATE",
            ChangeType::Update => "UPDATE",
            ChangeType::Delete => "DELETE",
            ChangeType::Undelete => "UNDELETE",
            ChangeType::GapCreate => "GAP_CREATE",
            ChangeType::GapUpdate => "GAP_UPDATE",
            ChangeType::GapDelete => "GAP_DELETE",
            ChangeType::GapUndelete => "GAP_UNDELETE",
            ChangeType::GapOverflow => "GAP_OVERFLOW",
            ChangeType::Other(s) => s,
        }
    }

    /// True for events that carry no trustworthy values (the GAP_ kinds and
    /// GAP_OVERFLOW): the records must be read again.
    pub fn is_gap(&self) -> bool {
        matches!(
            self,
            ChangeType::GapCreate
                | ChangeType::GapUpdate
                | ChangeType::GapDelete
                | ChangeType::GapUndelete
                | ChangeType::GapOverflow
        )
    }

    fn body(&self) -> Body {
        match self {
            ChangeType::Create | ChangeType::Undelete => Body::Whole,
            ChangeType::Update => Body::Changes,
            _ => Body::Nothing,
        }
    }
}

impl std::fmt::Display for ChangeType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A decoded change event.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEvent {
    /// Where the event sits in the stream; store it with what the event produced and
    /// pass it back with [`Replay::After`](super::Replay::After) to resume after it.
    pub replay_id: Vec<u8>,
    /// The event's UUID (`ProducerEvent.id`).
    pub event_id: String,
    pub schema_id: String,
    /// The object's API name (`Contact`, `Invoice__c`).
    pub entity: String,
    pub change_type: ChangeType,
    pub record_ids: Vec<String>,
    /// The API and client that made the change; empty for changes made in the UI.
    pub change_origin: String,
    /// Identifies the transaction; events of one transaction share it.
    pub transaction_key: String,
    /// The change's place in its transaction, from 1.
    pub sequence_number: i64,
    /// When the transaction committed, epoch milliseconds.
    pub commit_timestamp: i64,
    /// Increases with each committed transaction.
    pub commit_number: i64,
    /// The user id that made the change.
    pub commit_user: String,
    /// REST names of the fields an UPDATE changed (empty for other kinds).
    pub changed_fields: Vec<String>,
    /// REST names of the fields an UPDATE set to null (present in `fields` as null).
    pub nulled_fields: Vec<String>,
    /// REST names of the fields whose value was sent as a diff: they are left out of
    /// `fields`; read the record to learn their value.
    pub diff_fields: Vec<String>,
    /// The record's values keyed by REST name: every field for CREATE and UNDELETE
    /// (empty ones as null), the changed ones for UPDATE (nulled ones as null), none
    /// for DELETE and gap events.
    pub fields: Map<String, Json>,
}

impl ChangeEvent {
    /// The commit time as a UTC datetime.
    pub fn commit_time(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        chrono::DateTime::from_timestamp_millis(self.commit_timestamp)
    }

    /// The `client=` part of `change_origin` (the `Sforce-Call-Options` client of the
    /// call that made the change), to recognise one's own writes.
    pub fn origin_client(&self) -> Option<&str> {
        self.change_origin
            .split(';')
            .filter_map(|p| p.trim().strip_prefix("client="))
            .next()
    }
}

fn header_str(h: &Avro, key: &str) -> String {
    h.field(key)
        .and_then(Avro::as_str)
        .unwrap_or_default()
        .to_string()
}

fn header_i64(h: &Avro, key: &str) -> i64 {
    h.field(key).and_then(Avro::as_i64).unwrap_or_default()
}

fn header_strings(h: &Avro, key: &str) -> Vec<String> {
    h.field(key).map(Avro::strings).unwrap_or_default()
}

/// Decodes one delivered event with its schema; `types` (from the entity's describe)
/// refine names and value formats.
pub(crate) fn decode(
    replay_id: Vec<u8>,
    event: &ProducerEvent,
    schema: &EventSchema,
    types: impl FnOnce(&str) -> Option<std::sync::Arc<ObjectTypes>>,
) -> Result<ChangeEvent> {
    let payload = ::pubsub::avro::decode(&schema.avro, &event.payload).map_err(|e| {
        Error::Decode(format!(
            "change event {} does not decode with schema {}: {e}",
            event.id, schema.id
        ))
    })?;
    let header = payload.field("ChangeEventHeader").ok_or_else(|| {
        Error::Decode(format!(
            "event {} (schema {}) has no ChangeEventHeader: not a change event",
            event.id, schema.id
        ))
    })?;
    let entity = header_str(header, "entityName");
    let types = types(&entity);
    let types = types.as_deref();
    let change_type = ChangeType::parse(&header_str(header, "changeType"));
    let names = |key: &str| fields::names(&schema.avro, &header_strings(header, key), types);
    let changed_fields = names("changedFields");
    let nulled_fields = names("nulledFields");
    let diff_fields = names("diffFields");
    let values = fields::values(
        &schema.avro,
        &payload,
        change_type.body(),
        &nulled_fields,
        &diff_fields,
        types,
    );
    Ok(ChangeEvent {
        replay_id,
        event_id: event.id.clone(),
        schema_id: schema.id.clone(),
        record_ids: header_strings(header, "recordIds"),
        change_origin: header_str(header, "changeOrigin"),
        transaction_key: header_str(header, "transactionKey"),
        sequence_number: header_i64(header, "sequenceNumber"),
        commit_timestamp: header_i64(header, "commitTimestamp"),
        commit_number: header_i64(header, "commitNumber"),
        commit_user: header_str(header, "commitUser"),
        entity,
        change_type,
        changed_fields,
        nulled_fields,
        diff_fields,
        fields: values,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_types_round_trip_and_gaps_are_gaps() {
        for t in [
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
        ] {
            assert_eq!(ChangeType::parse(t).as_str(), t);
        }
        assert!(ChangeType::GapOverflow.is_gap() && ChangeType::GapUpdate.is_gap());
        assert!(!ChangeType::Update.is_gap());
        assert!(!ChangeType::parse("SNAPSHOT").is_gap());
    }

    #[test]
    fn origin_client_is_the_call_options_client() {
        let mut e = ChangeEvent {
            replay_id: vec![1],
            event_id: String::new(),
            schema_id: String::new(),
            entity: "Contact".into(),
            change_type: ChangeType::Update,
            record_ids: Vec::new(),
            change_origin: "com/salesforce/api/rest/61.0;client=sequin_sf".into(),
            transaction_key: String::new(),
            sequence_number: 1,
            commit_timestamp: 0,
            commit_number: 0,
            commit_user: String::new(),
            changed_fields: Vec::new(),
            nulled_fields: Vec::new(),
            diff_fields: Vec::new(),
            fields: Map::new(),
        };
        assert_eq!(e.origin_client(), Some("sequin_sf"));
        e.change_origin = "com/salesforce/api/soap/61.0".into();
        assert_eq!(e.origin_client(), None);
        assert_eq!(e.commit_time().unwrap().timestamp(), 0);
    }
}
