//! Which objects the org selected for Change Data Capture: only those have change
//! events, so a sync subscribes for them and keeps polling the others.
//!
//! | fact relied on | source |
//! | --- | --- |
//! | The selection made on Setup's Change Data Capture page is the standard channel `ChangeEvents`; its members are Tooling API PlatformEventChannelMember records | "Select Objects for Change Notifications with Metadata API and Tooling API", Change Data Capture Developer Guide, https://developer.salesforce.com/docs/atlas.en-us.change_data_capture.meta/change_data_capture/cdc_object_selections_metadata.htm |
//! | PlatformEventChannelMember exists from API 47.0; querying it needs the View Setup and Configuration permission; SelectedEntity is the change event (`AccountChangeEvent`, `MyObject__ChangeEvent` for `MyObject__c`) | "PlatformEventChannelMember", Tooling API Developer Guide, https://developer.salesforce.com/docs/atlas.en-us.api_tooling.meta/api_tooling/tooling_api_objects_platformeventchannelmember.htm |
//! | The query runs as `GET /services/data/vXX.X/tooling/query?q=SELECT ... FROM PlatformEventChannelMember` | "Get Custom Channels and Channel Members", same guide, https://developer.salesforce.com/docs/platform/change-data-capture/guide/cdc-filter-list-channels.html |
//!
//! Unconfirmed:
//! - What a user without View Setup and Configuration gets. No Salesforce page says;
//!   users report `INVALID_TYPE` ("sObject type '...' is not supported") for Tooling
//!   objects they could query once granted that permission
//!   (https://github.com/tprouvot/Salesforce-Inspector-reloaded/issues/1310,
//!   https://github.com/afawcett/apex-toolingapi/issues/19). Since the object exists
//!   from API 47.0 (checked before asking), `INVALID_TYPE` is read as the missing
//!   permission, and so are `INSUFFICIENT_ACCESS` and `INSUFFICIENT_ACCESS_OR_READONLY`
//!   in case an org answers that way.
//! - That SelectedEntity holds a change event name for custom objects too. The guide
//!   shows it holding an id for custom platform events on custom channels; a value
//!   that names no object is returned in [`CdcSelection::unrecognized`] rather than
//!   guessed at, and its object, if any, is simply polled.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::client::Client;
use crate::error::{Error, ErrorCode, Result};

/// The permission a user needs to read the selection, as Setup names it.
pub const VIEW_SETUP_PERMISSION: &str = "View Setup and Configuration";

/// The first API version with PlatformEventChannelMember.
const MIN_API_VERSION: u32 = 47;

const SELECTION_QUERY: &str = "SELECT SelectedEntity FROM PlatformEventChannelMember \
                               WHERE EventChannel = 'ChangeEvents'";

/// The objects selected for Change Data Capture on the standard channel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CdcSelection {
    /// API names of the selected objects (`Contact`, `Invoice__c`).
    pub objects: BTreeSet<String>,
    /// SelectedEntity values that name no object (see the module comment).
    pub unrecognized: Vec<String>,
}

/// Why the selection could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SelectionError {
    /// The user may not read it: grant the permission named, or poll every object.
    #[error(
        "the Salesforce user cannot read which objects are selected for Change Data \
         Capture; it needs the \"{permission}\" permission ({source})"
    )]
    MissingPermission {
        permission: &'static str,
        source: Error,
    },
    /// Any other failure of the query (network, session, quota, ...).
    #[error(transparent)]
    Other(#[from] Error),
}

impl Client {
    /// The objects selected for Change Data Capture on the standard `ChangeEvents`
    /// channel (Setup's Change Data Capture page), read through the Tooling API,
    /// every page of it. A user without View Setup and Configuration gets
    /// [`SelectionError::MissingPermission`].
    pub async fn cdc_selection(&self) -> Result<CdcSelection, SelectionError> {
        check_api_version(self.api_version())?;
        let mut page = self
            .tooling_query(SELECTION_QUERY)
            .await
            .map_err(classify)?;
        let mut selection = CdcSelection::default();
        loop {
            add_members(&mut selection, &page.records);
            match page.next_records_url.take() {
                Some(next) if !page.done => {
                    page = self.query_more(&next).await.map_err(classify)?;
                }
                _ => return Ok(selection),
            }
        }
    }
}

fn check_api_version(version: &str) -> Result<(), SelectionError> {
    let major = version
        .split('.')
        .next()
        .and_then(|m| m.parse::<u32>().ok())
        .unwrap_or(0);
    if major >= MIN_API_VERSION {
        return Ok(());
    }
    Err(Error::Config(format!(
        "reading the Change Data Capture selection needs API version \
         {MIN_API_VERSION}.0 or later; the client uses {version}"
    ))
    .into())
}

/// The missing permission, told apart from other failures (see the module comment).
/// Whether a Tooling API call was refused for a missing permission: the object reads
/// as one that does not exist (`INVALID_TYPE`, see the module comment), or an access
/// error, in case an org answers that way.
pub(super) fn tooling_access_refused(e: &Error) -> bool {
    [
        ErrorCode::InvalidType,
        ErrorCode::InsufficientAccess,
        ErrorCode::InsufficientAccessOrReadonly,
    ]
    .iter()
    .any(|c| e.has_code(c))
}

fn classify(e: Error) -> SelectionError {
    if tooling_access_refused(&e) {
        SelectionError::MissingPermission {
            permission: VIEW_SETUP_PERMISSION,
            source: e,
        }
    } else {
        SelectionError::Other(e)
    }
}

fn add_members(selection: &mut CdcSelection, records: &[Map<String, Value>]) {
    for entity in records
        .iter()
        .filter_map(|r| r.get("SelectedEntity").and_then(Value::as_str))
    {
        match ::pubsub::channel::object_of_change_event(entity) {
            Some(object) => {
                selection.objects.insert(object);
            }
            None => selection.unrecognized.push(entity.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ApiError;
    use serde_json::json;

    fn api(status: u16, code: &str) -> Error {
        Error::Api {
            status,
            errors: vec![ApiError {
                error_code: ErrorCode::parse(code),
                message: "m".into(),
                fields: vec![],
            }],
            retry_after: None,
        }
    }

    #[test]
    fn hidden_or_refused_object_means_missing_permission() {
        for (status, code) in [
            (400, "INVALID_TYPE"),
            (403, "INSUFFICIENT_ACCESS"),
            (403, "INSUFFICIENT_ACCESS_OR_READONLY"),
        ] {
            let e = classify(api(status, code));
            assert!(
                matches!(
                    e,
                    SelectionError::MissingPermission {
                        permission: VIEW_SETUP_PERMISSION,
                        ..
                    }
                ),
                "{code}: {e:?}"
            );
            assert!(
                e.to_string().contains("View Setup and Configuration"),
                "{e}"
            );
        }
        for other in [
            api(400, "MALFORMED_QUERY"),
            api(403, "REQUEST_LIMIT_EXCEEDED"),
            Error::Timeout("t".into()),
        ] {
            assert!(matches!(classify(other), SelectionError::Other(_)));
        }
    }

    #[test]
    fn versions_before_47_are_refused_before_asking() {
        assert!(check_api_version("47.0").is_ok());
        assert!(check_api_version("61.0").is_ok());
        let e = check_api_version("46.0").unwrap_err();
        assert!(
            matches!(e, SelectionError::Other(Error::Config(_))),
            "{e:?}"
        );
    }

    #[test]
    fn members_map_to_objects() {
        let records: Vec<Map<String, Value>> = [
            json!({"SelectedEntity": "ContactChangeEvent"}),
            json!({"SelectedEntity": "Invoice__ChangeEvent"}),
            json!({"SelectedEntity": "0v8RM0000004VAKYA2"}),
            json!({"SelectedEntity": null}),
        ]
        .into_iter()
        .map(|v| v.as_object().cloned().unwrap())
        .collect();
        let mut s = CdcSelection::default();
        add_members(&mut s, &records);
        assert_eq!(
            s.objects.iter().map(String::as_str).collect::<Vec<_>>(),
            ["Contact", "Invoice__c"]
        );
        assert_eq!(s.unrecognized, ["0v8RM0000004VAKYA2"]);
    }
}
