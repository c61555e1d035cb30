//! PlatformEventChannel: the custom channels of Change Data Capture, in creation
//! order. Only change-event (`data`) channels are modelled.

use super::{metadata_str, missing_fields, Key, Object, Row};
use crate::app::App;
use crate::cdc::channels::Refused;
use crate::error::ApiError;
use serde_json::Value;

pub const CHANNEL: &str = "PlatformEventChannel";
/// Key prefix of PlatformEventChannel ids.
const PREFIX: &[u8; 3] = b"0YL";
/// The ChannelType of change-event channels.
const DATA: &str = "data";

fn id(seq: u64) -> String {
    crate::ids::make_id(PREFIX, seq)
}

pub(super) fn rows(app: &App) -> Vec<Row> {
    app.cdc.read_selection(|s| {
        s.custom
            .iter()
            .map(|c| Row {
                object: Object::Channel,
                key: Key::Channel(c.seq),
                cells: vec![
                    id(c.seq),
                    pubsub::channel::custom_channel_developer_name(&c.full_name)
                        .unwrap_or_default()
                        .to_string(),
                    c.label.clone(),
                    DATA.to_string(),
                ],
            })
            .collect()
    })
}

/// INVALID_INPUT unless `full_name` is `<DeveloperName>__chn` with a valid
/// DeveloperName.
fn check_name(full_name: &str) -> Result<(), ApiError> {
    match pubsub::channel::custom_channel_developer_name(full_name) {
        Some(_) => Ok(()),
        None => Err(ApiError::bad(
            "INVALID_INPUT",
            format!(
                "FullName {full_name:?} is not a channel name: it must end in __chn, and the name before it \
                 contain only letters, digits and underscores, begin with a letter, not end with an \
                 underscore and not contain two consecutive underscores"
            ),
        )),
    }
}

/// Creates a custom channel; returns its id.
pub(super) fn create(app: &App, body: &Value) -> Result<String, ApiError> {
    let full_name = body.get("FullName").and_then(Value::as_str);
    let kind = metadata_str(body, "channelType");
    let label = metadata_str(body, "label");
    let (Some(full_name), Some(kind), Some(label)) = (full_name, kind, label) else {
        let missing: Vec<&str> = [
            ("FullName", full_name.is_none()),
            ("channelType", kind.is_none()),
            ("label", label.is_none()),
        ]
        .into_iter()
        .filter_map(|(name, absent)| absent.then_some(name))
        .collect();
        return Err(missing_fields(&missing));
    };
    check_name(full_name)?;
    if kind != DATA {
        return Err(ApiError::bad(
            "INVALID_INPUT",
            format!(
                "channelType {kind:?}: the emulator models only change event channels (\"data\")"
            ),
        ));
    }
    app.cdc
        .change_selection(|s| s.add_channel(full_name.to_string(), label.to_string()))
        .map(id)
        .map_err(|r| match r {
            Refused::Duplicate => ApiError::bad(
                "DUPLICATE_VALUE",
                format!("a channel named {full_name} already exists"),
            ),
            other => ApiError::bad("INVALID_INPUT", format!("{other:?}")),
        })
}
