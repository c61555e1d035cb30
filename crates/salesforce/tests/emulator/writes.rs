//! sObject Collections create/update/upsert/delete/retrieve with per-record results,
//! and single-record writes.

use chrono::{Duration as ChronoDuration, Utc};
use salesforce::{Error, ErrorCode, SaveResult};
use serde_json::{json, Map, Value};

use crate::support::*;

fn errors_of(r: &SaveResult) -> Vec<&ErrorCode> {
    r.errors.iter().map(|e| &e.status_code).collect()
}

async fn last_names(client: &salesforce::Client) -> Vec<String> {
    let page = client
        .query("SELECT LastName FROM Contact ORDER BY LastName", None)
        .await
        .unwrap();
    page.records
        .iter()
        .map(|r| r["LastName"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn create_with_per_record_errors() {
    let emu = Emu::start().await;
    let client = emu.client();
    let records = vec![
        rec(json!({"LastName": "Ada", "FirstName": "A"})),
        rec(json!({"FirstName": "No last name"})),
        rec(json!({"LastName": "Bo", "Level__c": "Primary"})),
    ];
    let results = client
        .create_records("Contact", &records, false)
        .await
        .unwrap();
    assert_eq!(results.len(), 3);
    assert!(results[0].success && results[2].success);
    for r in [&results[0], &results[2]] {
        let id = r.id.as_deref().unwrap();
        assert!(id.starts_with("003") && id.len() == 18, "{id}");
        assert!(r.errors.is_empty());
    }
    assert!(!results[1].success);
    assert_eq!(results[1].id, None);
    assert_eq!(
        errors_of(&results[1]),
        vec![&ErrorCode::RequiredFieldMissing]
    );
    assert_eq!(results[1].errors[0].fields, vec!["LastName".to_string()]);
    assert_eq!(last_names(&client).await, vec!["Ada", "Bo"]);
}

#[tokio::test]
async fn all_or_none_rolls_back_the_others() {
    let emu = Emu::start().await;
    let client = emu.client();
    let records = vec![
        rec(json!({"LastName": "Ada"})),
        rec(json!({"FirstName": "No last name"})),
    ];
    let results = client
        .create_records("Contact", &records, true)
        .await
        .unwrap();
    assert!(results.iter().all(|r| !r.success));
    assert_eq!(
        errors_of(&results[0]),
        vec![&ErrorCode::AllOrNoneOperationRolledBack]
    );
    assert_eq!(
        errors_of(&results[1]),
        vec![&ErrorCode::RequiredFieldMissing]
    );
    assert!(last_names(&client).await.is_empty());
}

#[tokio::test]
async fn restricted_picklist_and_unknown_field_errors() {
    let emu = Emu::start().await;
    let client = emu.client();
    let records = vec![
        rec(json!({"Name": "Acme", "Tier__c": "Platinum"})),
        rec(json!({"Name": "Acme 2", "Tier__c": "Gold"})),
    ];
    let results = client
        .create_records("Account", &records, false)
        .await
        .unwrap();
    assert_eq!(
        errors_of(&results[0]),
        vec![&ErrorCode::InvalidOrNullForRestrictedPicklist]
    );
    assert!(results[1].success);
    let results = client
        .create_records("Account", &[rec(json!({"Name": "X", "Nope__c": 1}))], false)
        .await
        .unwrap();
    assert_eq!(errors_of(&results[0]), vec![&ErrorCode::InvalidField]);
}

#[tokio::test]
async fn update_and_delete_with_per_record_errors() {
    let emu = Emu::start().await;
    let client = emu.client();
    let ids = emu
        .create(
            "Contact",
            json!([{"LastName": "One"}, {"LastName": "Two"}, {"LastName": "Three"}]),
        )
        .await;
    let updates = vec![
        rec(json!({"Id": ids[0], "Title": "CEO"})),
        rec(json!({"Id": ids[1], "LastName": null})),
        rec(json!({"Id": "003000000000000AAA", "Title": "Ghost"})),
    ];
    let results = client
        .update_records("Contact", &updates, false)
        .await
        .unwrap();
    assert!(results[0].success);
    assert_eq!(results[0].id.as_deref(), Some(ids[0].as_str()));
    assert_eq!(
        errors_of(&results[1]),
        vec![&ErrorCode::RequiredFieldMissing]
    );
    assert!(!results[2].success);
    let got = client
        .get_record("Contact", &ids[0], Some(&["Title", "LastName"]))
        .await
        .unwrap();
    assert_eq!(got["Title"], "CEO");

    // Delete two, one of them twice: the repeat is ENTITY_IS_DELETED.
    client
        .delete_records(&[ids[2].clone()], false)
        .await
        .unwrap();
    let results = client
        .delete_records(&[ids[1].clone(), ids[2].clone()], false)
        .await
        .unwrap();
    assert!(results[0].success);
    assert_eq!(errors_of(&results[1]), vec![&ErrorCode::EntityIsDeleted]);
    assert_eq!(last_names(&client).await, vec!["One"]);
    let missing = client
        .update_records("Contact", &[rec(json!({"Title": "x"}))], false)
        .await
        .unwrap_err();
    assert!(matches!(missing, Error::Config(_)), "{missing:?}");
}

#[tokio::test]
async fn upsert_on_external_id_reports_created() {
    let emu = Emu::start().await;
    let client = emu.client();
    emu.create(
        "Contact",
        json!([{"LastName": "Old", "External_Id__c": "E-1"}]),
    )
    .await;
    let records = vec![
        rec(json!({"External_Id__c": "E-1", "Title": "Updated"})),
        rec(json!({"External_Id__c": "E-2", "LastName": "New"})),
        rec(json!({"External_Id__c": "E-3"})),
    ];
    let results = client
        .upsert_records("Contact", "External_Id__c", &records, false)
        .await
        .unwrap();
    assert!(results[0].success && results[1].success);
    assert_eq!(results[0].created, Some(false));
    assert_eq!(results[1].created, Some(true));
    assert_eq!(
        errors_of(&results[2]),
        vec![&ErrorCode::RequiredFieldMissing]
    );
    let page = client
        .query(
            "SELECT Title FROM Contact WHERE External_Id__c = 'E-1'",
            None,
        )
        .await
        .unwrap();
    assert_eq!(page.records[0]["Title"], "Updated");
}

#[tokio::test]
async fn retrieve_by_ids_in_order_with_nulls() {
    let emu = Emu::start().await;
    let client = emu.client();
    let ids = emu
        .create("Contact", json!([{"LastName": "A"}, {"LastName": "B"}]))
        .await;
    emu.control("DELETE", &format!("records/Contact/{}", ids[0]), None)
        .await;
    let got = client
        .retrieve_records(
            "Contact",
            &[ids[1].clone(), ids[0].clone()],
            &["Id", "LastName"],
        )
        .await
        .unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].as_ref().unwrap()["LastName"], "B");
    assert!(got[1].is_none(), "deleted record comes back as null");
    let err = client
        .retrieve_records("Contact", &ids, &["Nope__c"])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&ErrorCode::InvalidField));
}

#[tokio::test]
async fn collection_limits_are_checked_before_sending() {
    let emu = Emu::start().await;
    let client = emu.client();
    let many: Vec<Map<String, Value>> = (0..201)
        .map(|i| rec(json!({"LastName": format!("N{i}")})))
        .collect();
    let err = client
        .create_records("Contact", &many, false)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Config(_)) && err.to_string().contains("200"),
        "{err}"
    );
    let ids: Vec<String> = (0..201).map(|i| format!("003{i:015}")).collect();
    assert!(matches!(
        client.delete_records(&ids, false).await,
        Err(Error::Config(_))
    ));
    assert_eq!(client.stats().requests, 0);
    // Exactly 200 is fine.
    let results = client
        .create_records("Contact", &many[..200], false)
        .await
        .unwrap();
    assert!(results.iter().all(|r| r.success));
}

#[tokio::test]
async fn single_record_writes_and_conditional_update() {
    let emu = Emu::start().await;
    let client = emu.client();
    let created = client
        .create_record("Contact", &rec(json!({"LastName": "Solo"})))
        .await
        .unwrap();
    assert!(created.success);
    let id = created.id.unwrap();
    let err = client
        .create_record("Contact", &rec(json!({"Id": id, "LastName": "X"})))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&ErrorCode::InvalidField));

    client
        .update_record("Contact", &id, &rec(json!({"Title": "A"})), None)
        .await
        .unwrap();
    // Unchanged since a minute from now: accepted.
    let later = Utc::now() + ChronoDuration::minutes(1);
    client
        .update_record("Contact", &id, &rec(json!({"Title": "B"})), Some(later))
        .await
        .unwrap();
    // Changed since an hour ago: 412, a typed conflict.
    let earlier = Utc::now() - ChronoDuration::hours(1);
    let err = client
        .update_record("Contact", &id, &rec(json!({"Title": "C"})), Some(earlier))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
    assert_eq!(err.status(), Some(412));
    let got = client.get_record("Contact", &id, None).await.unwrap();
    assert_eq!(got["Title"], "B");

    client.delete_record("Contact", &id).await.unwrap();
    let err = client.delete_record("Contact", &id).await.unwrap_err();
    assert_eq!(err.code(), Some(&ErrorCode::EntityIsDeleted));
    assert_eq!(err.status(), Some(404));
}

/// A write whose connection drops has an unknown outcome, and the client never repeats
/// it behind the caller's back.
#[tokio::test]
async fn dropped_write_is_outcome_unknown_and_not_resent() {
    let emu = Emu::start().await;
    let client = emu.ready_client().await;
    emu.fault("drop", 1, Some("/composite/sobjects")).await;
    let before = client.stats().requests;
    let err = client
        .create_records("Contact", &[rec(json!({"LastName": "Maybe"}))], false)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Transport(_)), "{err:?}");
    assert!(err.outcome_unknown() && err.is_transient());
    assert_eq!(client.stats().requests - before, 1, "sent once");
    let stats = emu.stats().await;
    assert_eq!(stats["endpoints"]["collections"], json!(1), "{stats}");
}
