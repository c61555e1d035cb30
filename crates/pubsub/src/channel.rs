//! Change Data Capture channel names ("Subscription Channels", Change Data Capture
//! Developer Guide, https://developer.salesforce.com/docs/atlas.en-us.change_data_capture.meta/change_data_capture/cdc_subscribe_channels.htm):
//! `/data/ChangeEvents` carries every selected object; `/data/<Object>ChangeEvent` a
//! standard object; `/data/<Name>__ChangeEvent` a custom object `<Name>__c`.

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

/// What a topic name asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Channel {
    /// `/data/ChangeEvents`.
    All,
    /// One object's channel; the object's API name (`Contact`, `Invoice__c`).
    Object(String),
}

/// Parses a change-event channel; None for anything else (platform events, typos).
pub fn parse(topic: &str) -> Option<Channel> {
    if topic == ALL_CHANGE_EVENTS {
        return Some(Channel::All);
    }
    let event = topic.strip_prefix("/data/")?;
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
