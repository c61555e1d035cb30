//! A Change Data Capture channel of one's own: a custom channel holding only the
//! entities named as its members, so a subscriber receives (and the org counts as
//! delivered) the change events of those objects and no others.
//!
//! | fact relied on | source |
//! | --- | --- |
//! | A custom channel is a Tooling API PlatformEventChannel (`ChannelType` `data` for change events), created with `POST .../tooling/sobjects/PlatformEventChannel` and `{"FullName": "MyChannel__chn", "Metadata": {"channelType": "data", "label": ...}}`; its DeveloperName leaves out the `__chn` suffix | "PlatformEventChannel", Tooling API Developer Guide, https://developer.salesforce.com/docs/atlas.en-us.api_tooling.meta/api_tooling/tooling_api_objects_platformeventchannel.htm; "Create a Channel and Channel Members", Salesforce Help |
//! | Members are PlatformEventChannelMember records, `{"FullName": "MyChannel_chn_AccountChangeEvent", "Metadata": {"eventChannel": "MyChannel__chn", "selectedEntity": "AccountChangeEvent"}}`; the developer name replaces the channel's double underscores by one | "PlatformEventChannelMember", same guide; "Add a Change Event in a New Channel Member", Salesforce Help |
//! | Creating, changing or deleting channels and members needs the Customize Application permission; reading them View Setup and Configuration | the same two pages |
//! | Subscribers of `/data/MyChannel__chn` receive the change events of its members | "Subscription Channels", Change Data Capture Developer Guide |
//! | Without the add-on an org selects at most 5 entities for change events, across all channels | "Change Data Capture Allocations", same guide |
//!
//! Unconfirmed: the error a member over the entity limit gets. Salesforce does not
//! document it; `LIMIT_EXCEEDED` is taken as that answer (the emulator gives it), and
//! any other refusal of one member is reported with Salesforce's own message.

use serde_json::{json, Map, Value};

use crate::client::Client;
use crate::error::{Error, ErrorCode, Result};
use crate::http::RequestSpec;
use reqwest::Method;

/// The permission a user needs to create and change channels, as Setup names it.
pub const CUSTOMIZE_APPLICATION: &str = "Customize Application";

const CHANNEL: &str = "PlatformEventChannel";
const MEMBER: &str = "PlatformEventChannelMember";

/// Why a channel could not be kept.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// The user may not create or read channels: grant the permission named.
    #[error(
        "the Salesforce user cannot create Change Data Capture channels; it needs the \
         \"{permission}\" and \"View Setup and Configuration\" permissions ({source})"
    )]
    MissingPermission {
        permission: &'static str,
        source: Error,
    },
    /// The org already selects as many entities for change events as it may.
    #[error(
        "the org selects as many objects for Change Data Capture as it may, across all \
         channels ({source})"
    )]
    EntityLimit { source: Error },
    /// Any other failure (network, session, quota, ...).
    #[error(transparent)]
    Other(#[from] Error),
}

/// One member of a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelMember {
    pub id: String,
    /// The object whose change events it selects; None for an entity that names none.
    pub object: Option<String>,
}

/// `Name__chn` -> `Name`; an error for anything that is not a custom channel's full
/// name (letters, digits and single underscores), so no name is ever quoted into SOQL.
fn developer_name(full_name: &str) -> Result<&str> {
    ::pubsub::channel::custom_channel_developer_name(full_name)
        .ok_or_else(|| Error::Config(format!("{full_name:?} is not a custom channel name")))
}

fn classify(e: Error) -> ChannelError {
    if super::selection::tooling_access_refused(&e) {
        ChannelError::MissingPermission {
            permission: CUSTOMIZE_APPLICATION,
            source: e,
        }
    } else if e.has_code(&ErrorCode::LimitExceeded) {
        ChannelError::EntityLimit { source: e }
    } else {
        ChannelError::Other(e)
    }
}

impl Client {
    /// The id of the custom channel `full_name` (`Name__chn`), if it exists.
    pub async fn find_channel(&self, full_name: &str) -> Result<Option<String>, ChannelError> {
        let soql = format!(
            "SELECT Id FROM {CHANNEL} WHERE DeveloperName = '{}'",
            developer_name(full_name)?
        );
        let page = self.tooling_query(&soql).await.map_err(classify)?;
        Ok(page
            .records
            .first()
            .and_then(|r| r.get("Id"))
            .and_then(Value::as_str)
            .map(str::to_string))
    }

    /// Creates the change-event channel `full_name` (`Name__chn`); returns its id.
    pub async fn create_channel(
        &self,
        full_name: &str,
        label: &str,
    ) -> Result<String, ChannelError> {
        let body = json!({
            "FullName": full_name,
            "Metadata": {"channelType": "data", "label": label},
        });
        self.tooling_create(CHANNEL, body).await
    }

    /// Deletes the channel whose id is `id` (its members first, as a channel with
    /// members may be refused).
    pub async fn delete_channel(&self, full_name: &str, id: &str) -> Result<(), ChannelError> {
        for m in self.channel_members(full_name).await? {
            self.remove_channel_member(&m.id).await?;
        }
        self.tooling_delete(CHANNEL, id).await
    }

    /// The members of channel `full_name`, every page of them.
    pub async fn channel_members(
        &self,
        full_name: &str,
    ) -> Result<Vec<ChannelMember>, ChannelError> {
        developer_name(full_name)?;
        let soql =
            format!("SELECT Id, SelectedEntity FROM {MEMBER} WHERE EventChannel = '{full_name}'");
        let mut page = self.tooling_query(&soql).await.map_err(classify)?;
        let mut out = Vec::new();
        loop {
            out.extend(page.records.iter().filter_map(member));
            match page.next_records_url.take() {
                Some(next) if !page.done => {
                    page = self.query_more(&next).await.map_err(classify)?
                }
                _ => return Ok(out),
            }
        }
    }

    /// Selects `object`'s change events on channel `full_name`; returns the member's id.
    /// [`ChannelError::EntityLimit`] when the org may select no more objects.
    pub async fn add_channel_member(
        &self,
        full_name: &str,
        object: &str,
    ) -> Result<String, ChannelError> {
        let entity = ::pubsub::channel::change_event_name(object);
        let body = json!({
            "FullName": format!("{}_chn_{entity}", developer_name(full_name)?),
            "Metadata": {"eventChannel": full_name, "selectedEntity": entity},
        });
        self.tooling_create(MEMBER, body).await
    }

    pub async fn remove_channel_member(&self, id: &str) -> Result<(), ChannelError> {
        self.tooling_delete(MEMBER, id).await
    }

    async fn tooling_create(&self, object: &str, body: Value) -> Result<String, ChannelError> {
        let path = format!("tooling/sobjects/{object}");
        let answer: Map<String, Value> = self
            .execute(RequestSpec::new(Method::POST, path).json(body))
            .await
            .map_err(classify)?
            .json("tooling create result")?;
        answer
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| Error::Decode(format!("{object} created without an id")).into())
    }

    async fn tooling_delete(&self, object: &str, id: &str) -> Result<(), ChannelError> {
        let path = format!("tooling/sobjects/{object}/{}", crate::path_segment(id)?);
        self.execute(RequestSpec::new(Method::DELETE, path))
            .await
            .map_err(classify)?;
        Ok(())
    }
}

fn member(r: &Map<String, Value>) -> Option<ChannelMember> {
    let id = r.get("Id")?.as_str()?.to_string();
    let entity = r
        .get("SelectedEntity")
        .and_then(Value::as_str)
        .unwrap_or("");
    Some(ChannelMember {
        id,
        object: ::pubsub::channel::object_of_change_event(entity),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_custom_channel_names_reach_a_query() {
        assert_eq!(
            developer_name("SequinSf_emu_1a2b__chn").unwrap(),
            "SequinSf_emu_1a2b"
        );
        assert!(developer_name("x' OR Id != '__chn").is_err());
        assert!(developer_name("ChangeEvents").is_err());
        assert!(developer_name("__chn").is_err());
    }
}
