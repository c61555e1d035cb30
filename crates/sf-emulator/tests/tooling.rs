//! The Tooling API's PlatformEventChannelMember: the Change Data Capture selection as
//! a client reads and changes it, over HTTP.

mod support;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::{error_code, Org, V};

const MEMBERS: &str =
    "SELECT Id, DeveloperName, EventChannel, SelectedEntity FROM PlatformEventChannelMember";

impl Org {
    async fn tooling_query(&self, soql: &str) -> (StatusCode, Value) {
        let r = self
            .http
            .get(self.url(&format!("{V}/tooling/query")))
            .query(&[("q", soql)])
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        let s = r.status();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    async fn selection(&self) -> Value {
        self.control(Method::GET, "cdc", json!({})).await.1["objects"].clone()
    }

    async fn set_cdc(&self, body: Value) {
        let (s, b) = self.control(Method::PUT, "cdc", body).await;
        assert_eq!(s, 200, "{b}");
    }
}

fn entities(page: &Value) -> Vec<&str> {
    page["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["SelectedEntity"].as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_are_the_selected_objects() {
    let org = Org::start(&["--cdc-objects", "Contact,Account"]).await;
    let (s, page) = org
        .tooling_query(&format!("{MEMBERS} WHERE EventChannel = 'ChangeEvents'"))
        .await;
    assert_eq!(s, 200, "{page}");
    assert_eq!(page["totalSize"], 2);
    assert_eq!(page["size"], 2);
    assert_eq!(page["done"], true);
    assert_eq!(page["entityTypeName"], "PlatformEventChannelMember");
    assert!(page.get("nextRecordsUrl").is_none());
    let contact = &page["records"][0];
    let id = contact["Id"].as_str().unwrap();
    assert!(id.starts_with("0v8") && id.len() == 18, "{id}");
    assert_eq!(contact["DeveloperName"], "ChangeEvents_ContactChangeEvent");
    assert_eq!(contact["EventChannel"], "ChangeEvents");
    assert_eq!(contact["SelectedEntity"], "ContactChangeEvent");
    assert_eq!(contact["attributes"]["type"], "PlatformEventChannelMember");
    assert_eq!(
        contact["attributes"]["url"],
        format!("{V}/tooling/sobjects/PlatformEventChannelMember/{id}")
    );
    assert_eq!(
        entities(&page),
        ["ContactChangeEvent", "AccountChangeEvent"]
    );

    // WHERE, ORDER BY, the SELECT list and COUNT() are evaluated.
    let (_, one) = org
        .tooling_query(
            "SELECT selectedentity, SelectedEntity FROM PlatformEventChannelMember WHERE SelectedEntity = 'accountchangeevent'",
        )
        .await;
    assert_eq!(entities(&one), ["AccountChangeEvent"]);
    // Only the fields asked for, once each, named as the object names them.
    assert_eq!(one["records"][0].as_object().unwrap().len(), 2, "{one}");
    let (_, sorted) = org
        .tooling_query(&format!("{MEMBERS} ORDER BY DeveloperName"))
        .await;
    assert_eq!(
        entities(&sorted),
        ["AccountChangeEvent", "ContactChangeEvent"]
    );
    let (_, other) = org
        .tooling_query(&format!("{MEMBERS} WHERE EventChannel = 'Orders__chn'"))
        .await;
    assert_eq!(other["totalSize"], 0);
    let (_, count) = org
        .tooling_query("SELECT COUNT() FROM PlatformEventChannelMember")
        .await;
    assert_eq!(count["totalSize"], 2);

    // The members follow the selection, with stable ids.
    org.set_cdc(json!({"objects": ["Lead", "Contact"]})).await;
    let (_, after) = org.tooling_query(MEMBERS).await;
    assert_eq!(entities(&after), ["LeadChangeEvent", "ContactChangeEvent"]);
    assert_eq!(after["records"][1]["Id"], id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_objects_and_api_usage() {
    let org = Org::start(&[]).await;
    org.set_cdc(json!({"objects": ["invoice__c"]})).await;
    let before = org.stats().await["api_requests_total"].as_u64().unwrap();
    let r = org
        .http
        .get(org.url(&format!("{V}/tooling/query")))
        .query(&[("q", MEMBERS)])
        .bearer_auth(&org.token)
        .send()
        .await
        .unwrap();
    assert!(r.headers().contains_key("sforce-limit-info"));
    let page: Value = r.json().await.unwrap();
    assert_eq!(entities(&page), ["Invoice__ChangeEvent"]);
    assert_eq!(
        page["records"][0]["DeveloperName"],
        "ChangeEvents_Invoice__ChangeEvent"
    );
    let stats = org.stats().await;
    assert_eq!(stats["api_requests_total"].as_u64().unwrap(), before + 1);
    assert_eq!(stats["endpoints"]["tooling_query"], 1, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_objects_and_fields_are_refused() {
    let org = Org::start(&["--cdc-objects", "Contact"]).await;
    let (s, b) = org.tooling_query("SELECT Id FROM ApexClass").await;
    assert_eq!((s.as_u16(), error_code(&b)), (400, "INVALID_TYPE"));
    assert!(
        b[0]["message"]
            .as_str()
            .unwrap()
            .contains("sObject type 'ApexClass' is not supported"),
        "{b}"
    );
    let (s, b) = org
        .tooling_query("SELECT Id, FilterExpression FROM PlatformEventChannelMember")
        .await;
    assert_eq!((s.as_u16(), error_code(&b)), (400, "INVALID_FIELD"));
    let (s, b) = org
        .tooling_query("SELECT COUNT(Id) FROM PlatformEventChannelMember")
        .await;
    assert_eq!((s.as_u16(), error_code(&b)), (400, "MALFORMED_QUERY"));
    let (s, b) = org.tooling_query("SELECT FROM").await;
    assert_eq!((s.as_u16(), error_code(&b)), (400, "MALFORMED_QUERY"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_view_setup_the_object_is_hidden() {
    let org = Org::start(&["--cdc-objects", "Contact"]).await;
    org.set_cdc(json!({"tooling_access": false})).await;
    assert_eq!(org.selection().await, json!(["Contact"]));
    let (s, b) = org.tooling_query(MEMBERS).await;
    assert_eq!((s.as_u16(), error_code(&b)), (400, "INVALID_TYPE"));
    let (s, _) = org
        .post(
            "tooling/sobjects/PlatformEventChannelMember",
            json!({"FullName": "ChangeEvents_LeadChangeEvent",
                   "Metadata": {"eventChannel": "ChangeEvents", "selectedEntity": "LeadChangeEvent"}}),
        )
        .await;
    assert_eq!(s, 404);
    assert_eq!(org.selection().await, json!(["Contact"]));
    org.set_cdc(json!({"tooling_access": true})).await;
    assert_eq!(org.tooling_query(MEMBERS).await.0, 200);
    // A bad flag changes nothing.
    let (s, _) = org
        .control(
            Method::PUT,
            "cdc",
            json!({"objects": [], "tooling_access": "no"}),
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(org.selection().await, json!(["Contact"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_follow_next_records_url() {
    let org = Org::start(&["--cdc-objects", "Contact,Account,Lead"]).await;
    org.set_cdc(json!({"tooling_page_size": 2})).await;
    let (_, first) = org.tooling_query(MEMBERS).await;
    assert_eq!(first["totalSize"], 3);
    assert_eq!(first["done"], false);
    assert_eq!(entities(&first).len(), 2);
    let next = first["nextRecordsUrl"].as_str().unwrap();
    assert!(next.starts_with(&format!("{V}/tooling/query/")), "{next}");
    let (s, second) = org.call(Method::GET, next, None).await;
    assert_eq!(s, 200, "{second}");
    assert_eq!(second["done"], true);
    assert_eq!(entities(&second), ["LeadChangeEvent"]);
    let (s, b) = org
        .call(Method::GET, &format!("{V}/tooling/query/nope-2"), None)
        .await;
    assert_eq!((s.as_u16(), error_code(&b)), (400, "INVALID_QUERY_LOCATOR"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creating_and_deleting_members_changes_the_selection() {
    let org = Org::start(&["--cdc-objects", "Contact"]).await;
    let member = |entity: &str| {
        json!({"FullName": format!("ChangeEvents_{entity}"),
               "Metadata": {"eventChannel": "ChangeEvents", "selectedEntity": entity}})
    };
    let (s, b) = org
        .post(
            "tooling/sobjects/PlatformEventChannelMember",
            member("LeadChangeEvent"),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["success"], true);
    let id = b["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("0v8"), "{id}");
    assert_eq!(org.selection().await, json!(["Contact", "Lead"]));

    let path = format!("{V}/tooling/sobjects/PlatformEventChannelMember/{id}");
    let (s, rec) = org.call(Method::GET, &path, None).await;
    assert_eq!(s, 200);
    assert_eq!(rec["SelectedEntity"], "LeadChangeEvent");

    let (s, b) = org
        .post(
            "tooling/sobjects/PlatformEventChannelMember",
            member("LeadChangeEvent"),
        )
        .await;
    assert_eq!((s.as_u16(), error_code(&b)), (400, "DUPLICATE_VALUE"));
    for bad in [member("NoSuchChangeEvent"), json!({"FullName": "x"})] {
        let (s, _) = org
            .post("tooling/sobjects/PlatformEventChannelMember", bad)
            .await;
        assert_eq!(s, 400);
    }
    let custom_channel = json!({"FullName": "Orders_chn_LeadChangeEvent",
        "Metadata": {"eventChannel": "Orders__chn", "selectedEntity": "LeadChangeEvent"}});
    let (s, _) = org
        .post(
            "tooling/sobjects/PlatformEventChannelMember",
            custom_channel,
        )
        .await;
    assert_eq!(s, 400);

    assert_eq!(org.call(Method::DELETE, &path, None).await.0, 204);
    assert_eq!(org.selection().await, json!(["Contact"]));
    assert_eq!(org.call(Method::DELETE, &path, None).await.0, 404);
    assert_eq!(org.call(Method::GET, &path, None).await.0, 404);
}

const CHANNELS: &str =
    "SELECT Id, DeveloperName, MasterLabel, ChannelType FROM PlatformEventChannel";
const CHANNEL: &str = "tooling/sobjects/PlatformEventChannel";
const MEMBER: &str = "tooling/sobjects/PlatformEventChannelMember";

fn channel(full_name: &str) -> Value {
    json!({"FullName": full_name, "Metadata": {"channelType": "data", "label": "Sales events"}})
}

fn member_of(channel: &str, entity: &str) -> Value {
    json!({"FullName": format!("{}_{entity}", channel.replace("__", "_")),
           "Metadata": {"eventChannel": channel, "selectedEntity": entity}})
}

impl Org {
    /// Creates a Tooling record, asserting 201; returns its id.
    async fn create_tooling(&self, path: &str, body: Value) -> String {
        let (s, b) = self.post(path, body).await;
        assert_eq!(s, 201, "{b}");
        assert_eq!(
            b,
            json!({"id": b["id"], "success": true, "errors": [], "warnings": [], "infos": []})
        );
        b["id"].as_str().unwrap().to_string()
    }

    /// A refused create: its status and errorCode.
    async fn refused(&self, path: &str, body: Value) -> (u16, String) {
        let (s, b) = self.post(path, body).await;
        (s.as_u16(), error_code(&b).to_string())
    }

    async fn channels_status(&self) -> Value {
        self.control(Method::GET, "cdc", json!({})).await.1["channels"].clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_channels_and_their_members() {
    let org = Org::start(&["--cdc-objects", "Contact"]).await;
    let id = org.create_tooling(CHANNEL, channel("Sales__chn")).await;
    assert!(id.starts_with("0YL") && id.len() == 18, "{id}");
    let path = format!("{V}/tooling/sobjects/PlatformEventChannel/{id}");
    let (s, rec) = org.call(Method::GET, &path, None).await;
    assert_eq!(s, 200, "{rec}");
    assert_eq!(rec["Id"], id.as_str());
    assert_eq!(rec["DeveloperName"], "Sales");
    assert_eq!(rec["MasterLabel"], "Sales events");
    assert_eq!(rec["ChannelType"], "data");
    assert_eq!(rec["attributes"]["type"], "PlatformEventChannel");
    // The 15-character id names it too.
    assert_eq!(
        org.call(Method::GET, &path[..path.len() - 3], None).await.0,
        200
    );

    org.create_tooling(CHANNEL, channel("Support__chn")).await;
    let (s, page) = org
        .tooling_query(&format!("{CHANNELS} ORDER BY DeveloperName DESC"))
        .await;
    assert_eq!(s, 200, "{page}");
    assert_eq!(page["entityTypeName"], "PlatformEventChannel");
    assert_eq!(page["totalSize"], 2);
    assert_eq!(page["records"][0]["DeveloperName"], "Support");
    let (_, one) = org
        .tooling_query("SELECT FIELDS(ALL) FROM PlatformEventChannel WHERE DeveloperName = 'sales'")
        .await;
    assert_eq!(one["totalSize"], 1);
    assert_eq!(one["records"][0]["Id"], id.as_str());
    assert_eq!(one["records"][0]["ChannelType"], "data");
    let (s, b) = org
        .tooling_query("SELECT SelectedEntity FROM PlatformEventChannel")
        .await;
    assert_eq!((s.as_u16(), error_code(&b)), (400, "INVALID_FIELD"));

    // Members of the custom channel: their own ids, not the standard channel's.
    let account = org
        .create_tooling(MEMBER, member_of("Sales__chn", "AccountChangeEvent"))
        .await;
    let contact = org
        .create_tooling(MEMBER, member_of("Sales__chn", "ContactChangeEvent"))
        .await;
    assert!(account.starts_with("0v8") && contact.starts_with("0v8"));
    let (_, standard) = org
        .tooling_query(&format!("{MEMBERS} WHERE EventChannel = 'ChangeEvents'"))
        .await;
    assert_eq!(entities(&standard), ["ContactChangeEvent"]);
    assert_ne!(standard["records"][0]["Id"], contact.as_str());
    let (_, sales) = org
        .tooling_query(&format!(
            "{MEMBERS} WHERE EventChannel = 'Sales__chn' ORDER BY SelectedEntity"
        ))
        .await;
    assert_eq!(
        entities(&sales),
        ["AccountChangeEvent", "ContactChangeEvent"]
    );
    let rec = &sales["records"][0];
    assert_eq!(rec["Id"], account.as_str());
    assert_eq!(rec["DeveloperName"], "Sales_chn_AccountChangeEvent");
    assert_eq!(rec["EventChannel"], "Sales__chn");
    let member_path = format!("{V}/tooling/sobjects/PlatformEventChannelMember/{account}");
    let (s, m) = org.call(Method::GET, &member_path, None).await;
    assert_eq!(s, 200);
    assert_eq!(m["SelectedEntity"], "AccountChangeEvent");
    // Setup's page (the control API's "objects") shows the standard channel only.
    assert_eq!(org.selection().await, json!(["Contact"]));
    assert_eq!(
        org.channels_status().await,
        json!([{"name": "Sales__chn", "label": "Sales events", "objects": ["Account", "Contact"]},
               {"name": "Support__chn", "label": "Sales events", "objects": []}])
    );

    // Deleting a member, then the channel (which takes its members with it).
    assert_eq!(org.call(Method::DELETE, &member_path, None).await.0, 204);
    assert_eq!(org.call(Method::GET, &member_path, None).await.0, 404);
    let (_, sales) = org
        .tooling_query(&format!("{MEMBERS} WHERE EventChannel = 'Sales__chn'"))
        .await;
    assert_eq!(entities(&sales), ["ContactChangeEvent"]);
    assert_eq!(org.call(Method::DELETE, &path, None).await.0, 204);
    assert_eq!(org.call(Method::GET, &path, None).await.0, 404);
    assert_eq!(org.call(Method::DELETE, &path, None).await.0, 404);
    let (_, left) = org.tooling_query(MEMBERS).await;
    assert_eq!(entities(&left), ["ContactChangeEvent"]);
    let (_, channels) = org.tooling_query(CHANNELS).await;
    assert_eq!(channels["totalSize"], 1);
    assert_eq!(org.selection().await, json!(["Contact"]));
    // The name is free again.
    org.create_tooling(CHANNEL, channel("Sales__chn")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_queries_page_and_hide_without_view_setup() {
    let org = Org::start(&[]).await;
    for name in ["A__chn", "B__chn", "C__chn"] {
        org.create_tooling(CHANNEL, channel(name)).await;
    }
    org.set_cdc(json!({"tooling_page_size": 2})).await;
    let (_, first) = org.tooling_query(CHANNELS).await;
    assert_eq!(
        (first["totalSize"].as_u64(), first["done"].as_bool()),
        (Some(3), Some(false))
    );
    let next = first["nextRecordsUrl"].as_str().unwrap();
    let (s, second) = org.call(Method::GET, next, None).await;
    assert_eq!(s, 200, "{second}");
    assert_eq!(second["entityTypeName"], "PlatformEventChannel");
    assert_eq!(second["records"][0]["DeveloperName"], "C");
    let (_, count) = org
        .tooling_query("SELECT COUNT() FROM PlatformEventChannel")
        .await;
    assert_eq!(count["totalSize"], 3);

    org.set_cdc(json!({"tooling_access": false})).await;
    let (s, b) = org.tooling_query(CHANNELS).await;
    assert_eq!((s.as_u16(), error_code(&b)), (400, "INVALID_TYPE"));
    assert_eq!(org.post(CHANNEL, channel("D__chn")).await.0, 404);
    org.set_cdc(json!({"tooling_access": true})).await;
    assert_eq!(org.tooling_query(CHANNELS).await.1["totalSize"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_channels_and_members_are_refused() {
    let org = Org::start(&[]).await;
    let invalid = (400, "INVALID_INPUT".to_string());
    for bad in [
        "Sales",
        "Sales__c",
        "Sales__Team__chn",
        "Sales___chn",
        "1Sales__chn",
        "_Sales__chn",
        "Sales Team__chn",
        "__chn",
    ] {
        assert_eq!(org.refused(CHANNEL, channel(bad)).await, invalid, "{bad}");
    }
    let event =
        json!({"FullName": "Orders__chn", "Metadata": {"channelType": "event", "label": "Orders"}});
    assert_eq!(org.refused(CHANNEL, event).await, invalid);
    for missing in [
        json!({"Metadata": {"channelType": "data", "label": "x"}}),
        json!({"FullName": "Orders__chn", "Metadata": {"label": "x"}}),
        json!({"FullName": "Orders__chn", "Metadata": {"channelType": "data"}}),
    ] {
        assert_eq!(
            org.refused(CHANNEL, missing).await,
            (400, "REQUIRED_FIELD_MISSING".to_string())
        );
    }
    org.create_tooling(CHANNEL, channel("Sales__chn")).await;
    let duplicate = (400, "DUPLICATE_VALUE".to_string());
    assert_eq!(org.refused(CHANNEL, channel("Sales__chn")).await, duplicate);
    assert_eq!(org.refused(CHANNEL, channel("SALES__chn")).await, duplicate);

    org.create_tooling(MEMBER, member_of("Sales__chn", "LeadChangeEvent"))
        .await;
    assert_eq!(
        org.refused(MEMBER, member_of("Sales__chn", "LeadChangeEvent"))
            .await,
        duplicate
    );
    assert_eq!(
        org.refused(MEMBER, member_of("Nope__chn", "LeadChangeEvent"))
            .await,
        invalid
    );
    assert_eq!(
        org.refused(MEMBER, member_of("Sales__chn", "NopeChangeEvent"))
            .await,
        invalid
    );
    // The same entity on the standard channel is another member.
    org.create_tooling(MEMBER, member_of("ChangeEvents", "LeadChangeEvent"))
        .await;
    assert_eq!(org.selection().await, json!(["Lead"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_entity_limit_counts_distinct_entities_across_channels() {
    let org = Org::start(&[
        "--cdc-entity-limit",
        "5",
        "--cdc-objects",
        "Contact,Account",
    ])
    .await;
    assert_eq!(
        org.control(Method::GET, "cdc", json!({})).await.1["entity_limit"],
        5
    );
    org.create_tooling(CHANNEL, channel("Sales__chn")).await;
    for entity in ["LeadChangeEvent", "CaseChangeEvent", "AccountChangeEvent"] {
        org.create_tooling(MEMBER, member_of("Sales__chn", entity))
            .await;
    }
    let opportunity = org
        .create_tooling(MEMBER, member_of("ChangeEvents", "OpportunityChangeEvent"))
        .await;
    // Five distinct: Contact, Account, Lead, Case, Opportunity.
    let (s, b) = org
        .post(MEMBER, member_of("Sales__chn", "CampaignChangeEvent"))
        .await;
    assert_eq!((s.as_u16(), error_code(&b)), (400, "LIMIT_EXCEEDED"));
    assert_eq!(
        b[0]["message"],
        "You can select up to 5 entities for Change Data Capture across all channels; 5 are selected."
    );
    assert_eq!(
        org.refused(MEMBER, member_of("ChangeEvents", "CampaignChangeEvent"))
            .await,
        (400, "LIMIT_EXCEEDED".to_string())
    );
    // An entity already selected on one channel may join another.
    org.create_tooling(CHANNEL, channel("Support__chn")).await;
    org.create_tooling(MEMBER, member_of("Support__chn", "LeadChangeEvent"))
        .await;
    org.create_tooling(MEMBER, member_of("Support__chn", "ContactChangeEvent"))
        .await;
    // Deleting the only member of an entity frees its place.
    let path = format!("{V}/tooling/sobjects/PlatformEventChannelMember/{opportunity}");
    assert_eq!(org.call(Method::DELETE, &path, None).await.0, 204);
    org.create_tooling(MEMBER, member_of("Support__chn", "CampaignChangeEvent"))
        .await;
    // The control API (Setup's page in tests) is not limited; the limit can change.
    org.set_cdc(json!({"objects": ["Contact", "Account", "Task", "Event", "Order", "Asset"]}))
        .await;
    assert_eq!(
        org.refused(MEMBER, member_of("Sales__chn", "OpportunityChangeEvent"))
            .await,
        (400, "LIMIT_EXCEEDED".to_string())
    );
    org.set_cdc(json!({"entity_limit": 0})).await;
    org.create_tooling(MEMBER, member_of("Sales__chn", "OpportunityChangeEvent"))
        .await;
    let (s, _) = org
        .control(Method::PUT, "cdc", json!({"entity_limit": -1}))
        .await;
    assert_eq!(s, 400);
}
