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
