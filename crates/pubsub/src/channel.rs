//! Change Data Capture channel names ("Subscription Channels", Change Data Capture
//! Developer Guide, https://developer.salesforce.com/docs/atlas.en-us.change_data_capture.meta/change_data_capture/cdc_subscribe_channels.htm):
//! `/data/ChangeEvents` carries every selected object; `/data/<Object>ChangeEvent` a
//! standard object; `/data/<Name>__ChangeEvent` a custom object `<Name>__c`;
//! `/data/<Name>__chn` a custom channel, whose DeveloperName is `<Name>` (only
//! underscores and alphanumerics, starting with a letter, no `__`, not ending in `_`:
//! "PlatformEventChannel", Tooling API Developer Guide,
//! https://developer.salesforce.com/docs/atlas.en-us.api_tooling.meta/api_tooling/tooling_api_objects_platformeventchannel.htm).

/// The channel of all change events.
pub const ALL_CHANGE_EVENTS: &str = "/data/ChangeEvents";

/// `Contact` -> `ContactChangeEvent`, `Invoice__c` -> `Invoice__ChangeEvent`.
pub fn change_event_name(object: &str) -> String {
    match object.strip_suffix("__c") {
        Some(base) => format!("{base}__ChangeEvent"),
        None => format!("{object}ChangeEvent"),
    }
}

/// The inverse of [`change_event_name`]: `ContactChangeEvent` -> `Contact`,
/// `Invoice__ChangeEvent` -> `Invoice__c`; None for names that are not a change event
/// of a named object (`ChangeEvents`, `Order_Channel__chn`, a record id).
pub fn object_of_change_event(event: &str) -> Option<String> {
    let is_name =
        |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if let Some(base) = event.strip_suffix("__ChangeEvent") {
        return is_name(base).then(|| format!("{base}__c"));
    }
    let base = event.strip_suffix("ChangeEvent")?;
    is_name(base).then(|| base.to_string())
}

/// `Contact` -> `/data/ContactChangeEvent`.
pub fn object_channel(object: &str) -> String {
    format!("/data/{}", change_event_name(object))
}

/// The suffix of a custom channel's full name (`MyChannel__chn`).
pub const CUSTOM_CHANNEL_SUFFIX: &str = "__chn";

/// Whether `name` is a valid DeveloperName for a channel: letters, digits and
/// underscores, starting with a letter, with no `__` and no trailing `_`.
pub fn is_channel_developer_name(name: &str) -> bool {
    name.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !name.contains("__")
        && !name.ends_with('_')
}

/// The DeveloperName of a custom channel's full name: `MyChannel__chn` ->
/// `MyChannel`; None when the name is not a valid custom channel name.
pub fn custom_channel_developer_name(full_name: &str) -> Option<&str> {
    full_name
        .strip_suffix(CUSTOM_CHANNEL_SUFFIX)
        .filter(|base| is_channel_developer_name(base))
}

/// `MyChannel__chn` -> `/data/MyChannel__chn`.
pub fn custom_channel_topic(full_name: &str) -> String {
    format!("/data/{full_name}")
}

/// What a topic name asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Channel {
    /// `/data/ChangeEvents`.
    All,
    /// One object's channel; the object's API name (`Contact`, `Invoice__c`).
    Object(String),
    /// A custom channel; its full name (`MyChannel__chn`).
    Custom(String),
}

/// Parses a change-event channel; None for anything else (platform events, typos).
/// Whether a custom channel exists is the org's to say.
pub fn parse(topic: &str) -> Option<Channel> {
    if topic == ALL_CHANGE_EVENTS {
        return Some(Channel::All);
    }
    let event = topic.strip_prefix("/data/")?;
    if custom_channel_developer_name(event).is_some() {
        return Some(Channel::Custom(event.to_string()));
    }
    object_of_change_event(event).map(Channel::Object)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(object_channel("Contact"), "/data/ContactChangeEvent");
        assert_eq!(object_channel("Invoice__c"), "/data/Invoice__ChangeEvent");
        assert_eq!(
            parse("/data/Invoice__ChangeEvent"),
            Some(Channel::Object("Invoice__c".into()))
        );
        assert_eq!(
            parse("/data/ContactChangeEvent"),
            Some(Channel::Object("Contact".into()))
        );
        assert_eq!(parse("/data/ChangeEvents"), Some(Channel::All));
        assert_eq!(parse("/event/Foo__e"), None);
        assert_eq!(parse("/data/ChangeEvent"), None);
        assert_eq!(parse("/data/a/bChangeEvent"), None);
    }

    #[test]
    fn custom_channels() {
        assert_eq!(
            custom_channel_topic("MyChannel__chn"),
            "/data/MyChannel__chn"
        );
        assert_eq!(
            parse("/data/MyChannel__chn"),
            Some(Channel::Custom("MyChannel__chn".into()))
        );
        assert_eq!(
            parse(&custom_channel_topic("Sales_Events2__chn")),
            Some(Channel::Custom("Sales_Events2__chn".into()))
        );
        assert_eq!(
            custom_channel_developer_name("MyChannel__chn"),
            Some("MyChannel")
        );
        for bad in [
            "/data/__chn",
            "/data/My__Channel__chn",
            "/data/MyChannel___chn",
            "/data/1Channel__chn",
            "/data/_Channel__chn",
            "/data/My Channel__chn",
            "/data/MyChannel__CHN",
            "/event/MyChannel__chn",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        assert_eq!(custom_channel_developer_name("MyChannel"), None);
        // A custom channel is not a change event of an object.
        assert_eq!(object_of_change_event("MyChannel__chn"), None);
    }

    #[test]
    fn channel_developer_names_follow_salesforce_rules() {
        for good in ["MyChannel", "A", "Sales_Events", "a1_b2"] {
            assert!(is_channel_developer_name(good), "{good}");
        }
        for bad in ["", "1a", "_a", "a_", "a__b", "a-b", "a b", "é"] {
            assert!(!is_channel_developer_name(bad), "{bad}");
        }
    }

    #[test]
    fn change_event_names_map_back_to_objects() {
        for object in ["Contact", "Invoice__c", "ns__Invoice__c", "Account"] {
            assert_eq!(
                object_of_change_event(&change_event_name(object)).as_deref(),
                Some(object)
            );
        }
        assert_eq!(
            object_of_change_event("Invoice__ChangeEvent").as_deref(),
            Some("Invoice__c")
        );
        assert_eq!(
            object_of_change_event("ContactChangeEvent").as_deref(),
            Some("Contact")
        );
        for not_one in [
            "ChangeEvents",
            "ChangeEvent",
            "__ChangeEvent",
            "Order_NorthAmer__e",
            "0v8RM0000004VAKYA2",
            "Bad NameChangeEvent",
        ] {
            assert_eq!(object_of_change_event(not_one), None, "{not_one}");
        }
    }
}
