//! PlatformEventChannelMember: the objects each channel selects, the standard
//! ChangeEvents channel's first, then each custom channel's in creation order.

use super::{metadata_str, missing_fields, Key, Object, Row};
use crate::app::App;
use crate::cdc::channels::{Custom, Refused};
use crate::error::ApiError;
use serde_json::Value;

pub const MEMBER: &str = "PlatformEventChannelMember";
/// The standard channel, whose members are the Setup page's selection.
pub const STANDARD_CHANNEL: &str = "ChangeEvents";
/// Key prefix of PlatformEventChannelMember ids.
const PREFIX: &[u8; 3] = b"0v8";
/// Custom channels' members are numbered from here: past any object's slot, so
/// their ids never equal a standard channel member's.
const CUSTOM_BASE: u64 = 62u64.pow(8);

/// `ChangeEvents` + `AccountChangeEvent` -> `ChangeEvents_AccountChangeEvent`;
/// `MyChannel__chn` + ... -> `MyChannel_chn_AccountChangeEvent`.
fn developer_name(channel: &str, entity: &str) -> String {
    format!("{}_{entity}", channel.replace("__", "_"))
}

fn row(id: String, channel: &str, object: &str, key: Key) -> Row {
    let entity = pubsub::channel::change_event_name(object);
    Row {
        object: Object::Member,
        key,
        cells: vec![
            id,
            developer_name(channel, &entity),
            channel.to_string(),
            entity,
        ],
    }
}

/// The id of the standard channel's member for `object`: the object's place in the
/// org keeps it stable while the selection changes around it.
fn standard_id(app: &App, object: &str) -> Option<String> {
    let slot = app.org.object(object)?.read().slot;
    Some(crate::ids::make_id(PREFIX, slot as u64 + 1))
}

fn custom_id(seq: u64) -> String {
    crate::ids::make_id(PREFIX, CUSTOM_BASE + seq)
}

fn standard_rows(app: &App) -> Vec<Row> {
    app.cdc
        .selected()
        .into_iter()
        .filter_map(|o| {
            let id = standard_id(app, &o)?;
            Some(row(id, STANDARD_CHANNEL, &o, Key::Standard(o.clone())))
        })
        .collect()
}

fn custom_rows(channels: &[Custom]) -> Vec<Row> {
    channels
        .iter()
        .flat_map(|c| {
            c.members.iter().map(|m| {
                row(
                    custom_id(m.seq),
                    &c.full_name,
                    &m.object,
                    Key::CustomMember(m.seq),
                )
            })
        })
        .collect()
}

pub(super) fn rows(app: &App) -> Vec<Row> {
    // A copy, so the org's locks are never taken under the selection's.
    let custom = app.cdc.read_selection(|s| s.custom.clone());
    let mut out = standard_rows(app);
    out.extend(custom_rows(&custom));
    out
}

/// The object whose change event `entity` is, as the org spells it.
fn object_of(app: &App, entity: &str) -> Result<String, ApiError> {
    pubsub::channel::object_of_change_event(entity)
        .and_then(|o| app.org.object(&o))
        .map(|o| o.read().def.name.clone())
        .ok_or_else(|| {
            ApiError::bad(
                "INVALID_INPUT",
                format!("no change event {entity} in this org"),
            )
        })
}

fn refusal(r: Refused, channel: &str, entity: &str) -> ApiError {
    match r {
        Refused::Duplicate => ApiError::bad(
            "DUPLICATE_VALUE",
            format!("{entity} is already selected on {channel}"),
        ),
        Refused::UnknownChannel => {
            ApiError::bad("INVALID_INPUT", format!("no channel {channel} in this org"))
        }
        Refused::Limit { limit, selected } => ApiError::bad(
            "LIMIT_EXCEEDED",
            format!(
                "You can select up to {limit} entities for Change Data Capture across all channels; {selected} are selected."
            ),
        ),
    }
}

/// Creates a member (selects its object on its channel); returns its id.
pub(super) fn create(app: &App, body: &Value) -> Result<String, ApiError> {
    let channel = metadata_str(body, "eventChannel");
    let entity = metadata_str(body, "selectedEntity");
    let (Some(channel), Some(entity)) = (channel, entity) else {
        return Err(missing_fields(&["eventChannel", "selectedEntity"]));
    };
    let object = object_of(app, entity)?;
    let id = if channel == STANDARD_CHANNEL {
        app.cdc
            .change_selection(|s| s.add_standard(object.clone()))
            .map(|()| standard_id(app, &object).unwrap_or_default())
    } else {
        app.cdc
            .change_selection(|s| s.add_member(channel, object))
            .map(custom_id)
    };
    id.map_err(|r| refusal(r, channel, entity))
}
