//! Which objects the org selected for Change Data Capture.
//!
//! | fact | source |
//! | --- | --- |
//! | The selections of the standard `ChangeEvents` channel (Setup's Change Data Capture page) are PlatformEventChannelMember records with EventChannel `ChangeEvents`, queryable in Tooling API (API 47.0+); SelectedEntity is the change event's name | "Select Objects for Change Notifications with Metadata API and Tooling API", Change Data Capture Developer Guide; PlatformEventChannelMember, Tooling API Developer Guide |
//! | Querying it needs the View Setup and Configuration permission | PlatformEventChannelMember, "Special Access Rules", Tooling API Developer Guide |
//! | Change event names: `<Object>ChangeEvent`, `<Name>__ChangeEvent` for custom object `<Name>__c` | "Change Data Capture Events", Platform Events Developer Guide |

use std::collections::BTreeSet;

use ::pubsub::channel::object_of_change_event;

use crate::client::Client;
use crate::error::Result;

const SELECTION_QUERY: &str = "SELECT SelectedEntity FROM PlatformEventChannelMember \
                               WHERE EventChannel = 'ChangeEvents'";

impl Client {
    /// The API names of the objects selected for Change Data Capture on the standard
    /// channel. A user without View Setup and Configuration gets a 403 (or
    /// INSUFFICIENT_ACCESS) error: see [`crate::Error::status`].
    pub async fn cdc_selected_objects(&self) -> Result<BTreeSet<String>> {
        let records = self.tooling_query_all_pages(SELECTION_QUERY).await?;
        Ok(records
            .iter()
            .filter_map(|r| r.get("SelectedEntity")?.as_str())
            .filter_map(object_of_change_event)
            .collect())
    }
}
