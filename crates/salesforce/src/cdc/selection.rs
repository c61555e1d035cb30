//! Which objects the org selected for Change Data Capture.
//!
//! | fact | source |
//! | --- | --- |
//! | The selections of the standard `ChangeEvents` channel (Setup's Change Data Capture page) are PlatformEventChannelMember records with EventChannel `ChangeEvents`, queryable in Tooling API (API 47.0+); SelectedEntity is the change event's name | "Select Objects for Change Notifications with Metadata API and Tooling API", Change Data Capture Developer Guide; PlatformEventChannelMember, Tooling API Developer Guide |
//! | Querying it needs the View Setup and Configuration permission | PlatformEventChannelMember, "Special Access Rules", Tooling API Developer Guide |
//! | Change event names: `<Object>ChangeEvent`, `<Name>__ChangeEvent` for custom object `<Name>__c` | "Change Data Capture Events", Platform Events Developer Guide |

use std::collections::BTreeSet;

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

/// `ContactChangeEvent` -> `Contact`, `Invoice__ChangeEvent` -> `Invoice__c`; None
/// for a name that is not a change event's.
pub fn object_of_change_event(event: &str) -> Option<String> {
    if let Some(custom) = event.strip_suffix("__ChangeEvent") {
        return (!custom.is_empty()).then(|| format!("{custom}__c"));
    }
    event
        .strip_suffix("ChangeEvent")
        .filter(|o| !o.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_event_names_map_back_to_objects() {
        assert_eq!(
            object_of_change_event("ContactChangeEvent").as_deref(),
            Some("Contact")
        );
        assert_eq!(
            object_of_change_event("Invoice__ChangeEvent").as_deref(),
            Some("Invoice__c")
        );
        assert_eq!(
            object_of_change_event("ns__Thing__ChangeEvent").as_deref(),
            Some("ns__Thing__c")
        );
        assert_eq!(object_of_change_event("ChangeEvent"), None);
        assert_eq!(object_of_change_event("Contact"), None);
    }
}
