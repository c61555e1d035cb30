//! Versions, limits, global and object describe with If-Modified-Since.

use chrono::{Duration as ChronoDuration, Utc};
use salesforce::{ErrorCode, FieldType};
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn versions_from_login_host_and_instance() {
    let emu = Emu::start().await;
    let client = emu.client();
    // Before authentication the login host answers, without a token.
    let versions = client.versions().await.unwrap();
    assert_eq!(client.stats().token_requests, 0);
    assert_eq!(client.stats().requests, 0, "not an API call");
    let v61 = versions
        .iter()
        .find(|v| v.version == "61.0")
        .expect("v61.0 listed");
    assert_eq!(v61.url, "/services/data/v61.0");
    assert!(!v61.label.is_empty());
    assert!(versions.iter().all(|v| v.version.ends_with(".0")));
    client.authenticate().await.unwrap();
    assert_eq!(client.versions().await.unwrap(), versions);
}

#[tokio::test]
async fn limits_and_limit_info_header() {
    let emu = Emu::start().await;
    let client = emu.client();
    assert_eq!(client.api_usage(), None);
    assert_eq!(client.last_server_date(), None);
    let limits = client.limits().await.unwrap();
    // The server's clock from the Date header (the emulator runs on this machine).
    let server = client.last_server_date().expect("Date header seen");
    assert!((Utc::now() - server).num_seconds().abs() <= 2, "{server}");
    let daily = &limits["DailyApiRequests"];
    assert_eq!(daily["Max"], json!(100_000));
    assert!(daily["Remaining"].as_u64().unwrap() <= 100_000);
    assert!(limits["DailyBulkV2QueryJobs"]["Max"].as_u64().is_some());
    // Every data response carries Sforce-Limit-Info; the client keeps the latest.
    let usage = client.api_usage().expect("usage seen");
    assert_eq!(usage.max, 100_000);
    assert_eq!(usage.used, emu.api_requests().await);
    client.query("SELECT Id FROM Account", None).await.unwrap();
    let later = client.api_usage().unwrap();
    assert_eq!(later.used, usage.used + 1);
    // The emulator's quota can be set; the header follows.
    emu.set_limits(json!({"api_limit": 5000, "api_used": 4000}))
        .await;
    client.query("SELECT Id FROM Account", None).await.unwrap();
    let u = client.api_usage().unwrap();
    assert_eq!((u.used, u.max), (4001, 5000));
    assert!((u.fraction() - 0.8002).abs() < 1e-9);
}

#[tokio::test]
async fn global_describe_and_if_modified_since() {
    let emu = Emu::start().await;
    let client = emu.client();
    let global = client.describe_global(None).await.unwrap().expect("a body");
    assert_eq!(global.encoding, "UTF-8");
    assert_eq!(global.max_batch_size, 200);
    let by_name = |n: &str| global.sobjects.iter().find(|o| o.name == n);
    let contact = by_name("Contact").expect("Contact listed");
    assert_eq!(contact.key_prefix.as_deref(), Some("003"));
    assert!(contact.queryable && contact.replicateable && contact.createable);
    assert!(!contact.custom);
    assert_eq!(
        by_name("Account").unwrap().key_prefix.as_deref(),
        Some("001")
    );

    let future = Utc::now() + ChronoDuration::hours(1);
    assert_eq!(client.describe_global(Some(future)).await.unwrap(), None);
    let past = Utc::now() - ChronoDuration::days(365);
    assert!(client.describe_global(Some(past)).await.unwrap().is_some());
}

#[tokio::test]
async fn object_describe_fields_and_schema_change() {
    let emu = Emu::start().await;
    let client = emu.client();
    let d = client.describe("Contact", None).await.unwrap().unwrap();
    assert_eq!(d.name, "Contact");
    assert_eq!(d.key_prefix.as_deref(), Some("003"));
    let unknown: Vec<_> = d
        .fields
        .iter()
        .filter(|f| matches!(f.field_type, FieldType::Unknown(_)))
        .map(|f| format!("{}:{}", f.name, f.field_type))
        .collect();
    assert!(unknown.is_empty(), "unknown field types {unknown:?}");

    let id = d.field("Id").unwrap();
    assert_eq!(id.field_type, FieldType::Id);
    let last = d.field("lastname").unwrap();
    assert_eq!(last.field_type, FieldType::String);
    assert!(!last.nillable && last.createable && last.updateable);
    assert_eq!(last.length, 80);
    let mailing = d.field("MailingAddress").unwrap();
    assert_eq!(mailing.field_type, FieldType::Address);
    assert_eq!(
        d.field("MailingCity")
            .unwrap()
            .compound_field_name
            .as_deref(),
        Some("MailingAddress")
    );
    let account = d.field("AccountId").unwrap();
    assert_eq!(account.field_type, FieldType::Reference);
    assert_eq!(account.reference_to, vec!["Account".to_string()]);
    assert_eq!(account.relationship_name.as_deref(), Some("Account"));
    let source = d.field("LeadSource").unwrap();
    assert_eq!(source.field_type, FieldType::Picklist);
    assert!(source
        .picklist_values
        .iter()
        .any(|p| p.value == "Web" && p.active));
    let stamp = d.field("SystemModstamp").unwrap();
    assert_eq!(stamp.field_type, FieldType::Datetime);
    assert!(!stamp.createable && !stamp.updateable);
    assert!(d.field("External_Id__c").unwrap().external_id);
    assert!(d.field("Name").unwrap().field_type == FieldType::String);
    let accounts = client.describe("Account", None).await.unwrap().unwrap();
    assert!(accounts
        .child_relationships
        .iter()
        .any(|c| c.child_s_object == "Contact" && c.field == "AccountId"));

    // Unchanged since a later time: 304, no body.
    let later = Utc::now() + ChronoDuration::seconds(5);
    assert_eq!(client.describe("Contact", Some(later)).await.unwrap(), None);

    // A new custom field shows up for a client that last looked before the change.
    let before = Utc::now() - ChronoDuration::seconds(2);
    emu.control(
        "POST",
        "schema/Contact/fields",
        Some(json!({"name": "Shoe_Size__c", "type": "double", "label": "Shoe Size"})),
    )
    .await;
    let d = client
        .describe("Contact", Some(before))
        .await
        .unwrap()
        .expect("changed since");
    let shoe = d.field("Shoe_Size__c").expect("new field described");
    assert_eq!(shoe.field_type, FieldType::Double);
    assert!(shoe.custom);
}

#[tokio::test]
async fn describe_of_unknown_object_is_not_found() {
    let emu = Emu::start().await;
    let client = emu.client();
    let err = client.describe("NoSuchThing__c", None).await.unwrap_err();
    assert_eq!(err.status(), Some(404));
    assert_eq!(err.code(), Some(&ErrorCode::NotFound));
    assert!(!err.is_transient());
    // Names that would change the URL path never reach the wire.
    let err = client.describe("Contact/../x", None).await.unwrap_err();
    assert!(matches!(err, salesforce::Error::Config(_)), "{err:?}");
}

#[tokio::test]
async fn custom_object_appears_in_global_describe() {
    let emu = Emu::start().await;
    let client = emu.client();
    client.describe_global(None).await.unwrap().unwrap();
    let before = Utc::now() - ChronoDuration::seconds(2);
    emu.control(
        "POST",
        "schema/objects",
        Some(json!({"name": "Shipment_Log__c", "fields": [{"name": "Amount__c", "type": "currency"}]})),
    )
    .await;
    let global = client
        .describe_global(Some(before))
        .await
        .unwrap()
        .expect("changed since");
    let invoice = global
        .sobjects
        .iter()
        .find(|o| o.name == "Shipment_Log__c")
        .expect("new object listed");
    assert!(invoice.custom && invoice.queryable);
    let d = client
        .describe("Shipment_Log__c", None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        d.field("Amount__c").unwrap().field_type,
        FieldType::Currency
    );
    assert_eq!(d.field("Name").unwrap().field_type, FieldType::String);
    let key = invoice.key_prefix.as_deref().unwrap();
    let created = client
        .create_record(
            "Shipment_Log__c",
            &rec(json!({"Name": "SHP-1", "Amount__c": 12.5})),
        )
        .await
        .unwrap();
    assert!(created.id.unwrap().starts_with(key));
}
