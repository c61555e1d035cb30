//! `/composite`: several queries in one API call, paging, collections inside,
//! conditional updates inside, limits.

use std::collections::BTreeMap;

use chrono::{Duration as ChronoDuration, Utc};
use salesforce::{CompositeSubrequest, Error, ErrorCode};
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn several_queries_in_one_api_call() {
    let emu = Emu::start().await;
    emu.generate("Account", 20).await;
    emu.generate("Contact", 30).await;
    emu.generate("Lead", 5).await;
    let client = emu.ready_client().await;
    let before_client = client.stats().requests;
    let before_org = emu.api_requests().await;
    let subs = vec![
        client.query_subrequest("accounts", "SELECT Id, Name FROM Account", false, None),
        client.query_subrequest("contacts", "SELECT Id FROM Contact", true, Some(2000)),
        client.query_subrequest("leads", "SELECT COUNT() FROM Lead", false, None),
        client.query_subrequest("broken", "SELECT Id FROM", false, None),
        client.get_subrequest(
            "deleted",
            &format!(
                "sobjects/Contact/deleted/?start={}&end={}",
                salesforce::de::format_datetime(Utc::now() - ChronoDuration::days(1)),
                salesforce::de::format_datetime(Utc::now())
            ),
        ),
    ];
    let responses = client.composite(false, subs).await.unwrap();
    assert_eq!(client.stats().requests - before_client, 1);
    assert_eq!(emu.api_requests().await - before_org, 1, "one API call");
    let refs: Vec<&str> = responses.iter().map(|r| r.reference_id.as_str()).collect();
    assert_eq!(
        refs,
        vec!["accounts", "contacts", "leads", "broken", "deleted"]
    );
    let mut it = responses.into_iter();
    let accounts = it.next().unwrap().into_query_page().unwrap();
    assert_eq!(accounts.records.len(), 20);
    assert!(accounts.records[0]["Name"].is_string());
    assert_eq!(it.next().unwrap().into_query_page().unwrap().total_size, 30);
    assert_eq!(it.next().unwrap().into_query_page().unwrap().total_size, 5);
    let broken = it.next().unwrap();
    assert!(!broken.is_success());
    let err = broken.into_query_page().unwrap_err();
    assert_eq!(err.code(), Some(&ErrorCode::MalformedQuery));
    let deleted: salesforce::DeletedRecords = it.next().unwrap().into_body().unwrap();
    assert!(deleted.deleted_records.is_empty());
}

#[tokio::test]
async fn composite_query_pages_continue_through_query_more_subrequests() {
    let emu = Emu::start().await;
    emu.generate("Contact", 450).await;
    let client = emu.client();
    let first = client
        .composite(
            false,
            vec![client.query_subrequest("c", "SELECT Id FROM Contact", true, Some(200))],
        )
        .await
        .unwrap()
        .remove(0)
        .into_query_page()
        .unwrap();
    assert_eq!(
        first.records.len(),
        200,
        "batch size honoured in a subrequest"
    );
    let mut seen = first.records.len();
    let mut next = first.next_records_url;
    while let Some(url) = next {
        let page = client
            .composite(false, vec![client.query_more_subrequest("more", &url)])
            .await
            .unwrap()
            .remove(0)
            .into_query_page()
            .unwrap();
        seen += page.records.len();
        next = page.next_records_url;
    }
    assert_eq!(seen, 450);
}

#[tokio::test]
async fn collections_and_conditional_updates_inside_composite() {
    let emu = Emu::start().await;
    let client = emu.client();
    let ids = emu
        .create(
            "Contact",
            json!([{"LastName": "Kept"}, {"LastName": "Raced"}]),
        )
        .await;
    let create = client
        .create_records_subrequest(
            "create",
            "Contact",
            &[
                rec(json!({"LastName": "New"})),
                rec(json!({"Title": "bad"})),
            ],
            false,
        )
        .unwrap();
    let update = client
        .update_records_subrequest(
            "update",
            "Contact",
            &[rec(json!({"Id": ids[0], "Title": "Lead"}))],
            false,
        )
        .unwrap();
    let mut guarded = CompositeSubrequest {
        method: "PATCH".into(),
        url: format!("{}/sobjects/Contact/{}", client.data_path(), ids[1]),
        reference_id: "guarded".into(),
        body: Some(json!({"Title": "Overwritten"})),
        http_headers: BTreeMap::new(),
    };
    guarded.http_headers.insert(
        "If-Unmodified-Since".into(),
        salesforce::de::http_date(Utc::now() - ChronoDuration::hours(1)),
    );
    let delete = client
        .delete_records_subrequest("delete", &[ids[0].clone()], false)
        .unwrap();
    let responses = client
        .composite(false, vec![create, update, guarded, delete])
        .await
        .unwrap();
    let mut it = responses.into_iter();
    let created = it.next().unwrap().into_save_results().unwrap();
    assert!(created[0].success);
    assert_eq!(
        created[1].errors[0].status_code,
        ErrorCode::RequiredFieldMissing
    );
    let updated = it.next().unwrap().into_save_results().unwrap();
    assert!(updated[0].success);
    let guarded = it.next().unwrap();
    assert_eq!(guarded.http_status_code, 412);
    assert_eq!(guarded.error().unwrap().status(), Some(412));
    let deleted = it.next().unwrap().into_save_results().unwrap();
    assert!(deleted[0].success);
    let raced = client
        .get_record("Contact", &ids[1], Some(&["Title"]))
        .await
        .unwrap();
    assert!(raced["Title"].is_null(), "the guarded update was refused");
}

#[tokio::test]
async fn all_or_none_composite_rolls_back() {
    let emu = Emu::start().await;
    let client = emu.client();
    let subs = vec![
        client
            .create_records_subrequest("ok", "Contact", &[rec(json!({"LastName": "A"}))], false)
            .unwrap(),
        client.query_subrequest("bad", "SELECT Nope__c FROM Contact", false, None),
    ];
    let responses = client.composite(true, subs).await.unwrap();
    assert!(responses.iter().all(|r| !r.is_success()));
    assert_eq!(
        client.count("SELECT COUNT() FROM Contact").await.unwrap(),
        0
    );
}

#[tokio::test]
async fn composite_limits_are_checked_before_sending() {
    let emu = Emu::start().await;
    let client = emu.client();
    let six: Vec<_> = (0..6)
        .map(|i| client.query_subrequest(&format!("q{i}"), "SELECT Id FROM Account", false, None))
        .collect();
    let err = client.composite(false, six).await.unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    assert!(err.to_string().contains('5'), "{err}");
    let many: Vec<_> = (0..26)
        .map(|i| client.get_subrequest(&format!("g{i}"), "limits"))
        .collect();
    assert!(matches!(
        client.composite(false, many).await,
        Err(Error::Config(_))
    ));
    assert_eq!(client.stats().requests, 0);
    assert!(client.composite(false, vec![]).await.unwrap().is_empty());
    // 25 plain subrequests are fine.
    let ok: Vec<_> = (0..25)
        .map(|i| client.get_subrequest(&format!("g{i}"), "limits"))
        .collect();
    let responses = client.composite(false, ok).await.unwrap();
    assert!(responses.iter().all(|r| r.is_success()));
}
