//! query / queryAll paging, COUNT(), /updated and /deleted.

use std::collections::HashSet;

use chrono::{Duration as ChronoDuration, TimeZone, Utc};
use salesforce::de::{format_datetime, parse_datetime};
use salesforce::{ErrorCode, QueryPage};
use serde_json::json;

use crate::support::*;

/// Follows `next_records_url` to the end; returns the pages.
async fn all_pages(client: &salesforce::Client, first: QueryPage) -> Vec<QueryPage> {
    let mut pages = vec![first];
    while let Some(next) = pages.last().unwrap().next_records_url.clone() {
        assert!(!pages.last().unwrap().done);
        let page = client.query_more(&next).await.unwrap();
        pages.push(page);
    }
    assert!(pages.last().unwrap().done);
    pages
}

fn ids(pages: &[QueryPage]) -> Vec<String> {
    pages
        .iter()
        .flat_map(|p| p.records.iter())
        .map(|r| r["Id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn query_pages_of_2000_through_next_records_url() {
    let emu = Emu::start().await;
    emu.generate("Contact", 4_500).await;
    let client = emu.client();
    let first = client
        .query(
            "SELECT Id, LastName, SystemModstamp FROM Contact",
            Some(2000),
        )
        .await
        .unwrap();
    assert_eq!(first.total_size, 4_500);
    let next = first.next_records_url.clone().expect("more pages");
    assert!(next.starts_with("/services/data/v61.0/query/"), "{next}");
    let pages = all_pages(&client, first).await;
    let sizes: Vec<usize> = pages.iter().map(|p| p.records.len()).collect();
    assert_eq!(sizes, vec![2000, 2000, 500]);
    assert!(pages.iter().all(|p| p.total_size == 4_500));
    let all = ids(&pages);
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), 4_500);
    assert!(all.iter().all(|id| id.len() == 18 && id.starts_with("003")));
    let r = &pages[0].records[0];
    assert_eq!(r["attributes"]["type"], "Contact");
    assert!(parse_datetime(r["SystemModstamp"].as_str().unwrap()).is_some());
    // Three HTTP requests: the query and two continuations.
    assert_eq!(client.stats().requests, 3);
}

#[tokio::test]
async fn batch_size_header_is_sent_and_clamped() {
    let emu = Emu::start().await;
    emu.generate("Account", 450).await;
    let client = emu.client();
    let page = client
        .query("SELECT Id FROM Account", Some(200))
        .await
        .unwrap();
    assert_eq!(page.records.len(), 200);
    // Below Salesforce's minimum: sent as 200.
    let page = client
        .query("SELECT Id FROM Account", Some(5))
        .await
        .unwrap();
    assert_eq!(page.records.len(), 200);
    let sizes: Vec<usize> = all_pages(&client, page)
        .await
        .iter()
        .map(|p| p.records.len())
        .collect();
    assert_eq!(sizes, vec![200, 200, 50]);
    // No header: Salesforce's default of 2000.
    let page = client.query("SELECT Id FROM Account", None).await.unwrap();
    assert_eq!(page.records.len(), 450);
    assert!(page.done && page.next_records_url.is_none());
}

#[tokio::test]
async fn query_all_sees_deleted_rows_and_pages() {
    let emu = Emu::start().await;
    emu.generate("Contact", 2_100).await;
    let client = emu.client();
    let first = client
        .query("SELECT Id FROM Contact ORDER BY Id LIMIT 3", None)
        .await
        .unwrap();
    let victim = first.records[1]["Id"].as_str().unwrap().to_string();
    emu.control("DELETE", &format!("records/Contact/{victim}"), None)
        .await;

    assert_eq!(
        client.count("SELECT COUNT() FROM Contact").await.unwrap(),
        2_099
    );
    let page = client
        .query_all("SELECT Id, IsDeleted FROM Contact", Some(2000))
        .await
        .unwrap();
    assert_eq!(page.total_size, 2_100);
    // Continuations of a queryAll are fetched under /query/.
    let next = page.next_records_url.clone().unwrap();
    assert!(next.contains("/query/"), "{next}");
    let pages = all_pages(&client, page).await;
    let deleted: Vec<_> = pages
        .iter()
        .flat_map(|p| p.records.iter())
        .filter(|r| r["IsDeleted"] == json!(true))
        .map(|r| r["Id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(deleted, vec![victim]);
}

#[tokio::test]
async fn count_with_filters_and_datetime_literals() {
    let emu = Emu::start().await;
    emu.generate("Account", 30).await;
    let client = emu.client();
    assert_eq!(
        client.count("SELECT COUNT() FROM Account").await.unwrap(),
        30
    );
    // Generated records carry past stamps; all of them are after 2000.
    let since = format_datetime(Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).unwrap());
    let soql = format!("SELECT COUNT() FROM Account WHERE SystemModstamp > {since}");
    assert_eq!(client.count(&soql).await.unwrap(), 30);
    let later = format_datetime(Utc::now() + ChronoDuration::hours(1));
    let soql = format!("SELECT COUNT() FROM Account WHERE SystemModstamp > {later}");
    assert_eq!(client.count(&soql).await.unwrap(), 0);
}

#[tokio::test]
async fn expired_locator_is_a_typed_error() {
    let emu = Emu::start().await;
    emu.generate("Account", 300).await;
    let client = emu.client();
    let page = client
        .query("SELECT Id FROM Account", Some(200))
        .await
        .unwrap();
    emu.control("POST", "expire_locators", None).await;
    let err = client
        .query_more(page.next_records_url.as_deref().unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&ErrorCode::InvalidQueryLocator));
    assert_eq!(err.status(), Some(400));
    assert!(!err.is_transient());
    // Only Salesforce-given paths are followed.
    let err = client
        .query_more("https://evil.example/x")
        .await
        .unwrap_err();
    assert!(matches!(err, salesforce::Error::Config(_)), "{err:?}");
}

#[tokio::test]
async fn updated_and_deleted_windows() {
    let emu = Emu::start().await;
    let client = emu.client();
    let start = Utc::now() - ChronoDuration::minutes(1);
    let ids = emu
        .create(
            "Contact",
            json!([{"LastName": "Kept"}, {"LastName": "Gone"}, {"LastName": "Purged"}]),
        )
        .await;
    assert_eq!(ids.len(), 3);
    emu.control(
        "PATCH",
        &format!("records/Contact/{}", ids[0]),
        Some(json!({"Title": "CTO"})),
    )
    .await;
    emu.control("DELETE", &format!("records/Contact/{}", ids[1]), None)
        .await;
    emu.control(
        "DELETE",
        &format!("records/Contact/{}?purge=true", ids[2]),
        None,
    )
    .await;
    // The window ends at the server's "now", exclusive: let the clock pass the last
    // change's millisecond so the changes are inside it.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let end = Utc::now() + ChronoDuration::minutes(1);

    let updated = client.updated("Contact", start, end).await.unwrap();
    // Created and changed records are listed (whether records in the recycle bin are
    // too is unconfirmed); purged ones are gone.
    assert!(updated.ids.contains(&ids[0]), "{:?}", updated.ids);
    assert!(!updated.ids.contains(&ids[2]), "{:?}", updated.ids);
    let covered = updated.latest_date_covered.expect("latestDateCovered");
    assert!(covered <= end && covered >= start);

    let deleted = client.deleted("Contact", start, end).await.unwrap();
    let mut got: Vec<_> = deleted
        .deleted_records
        .iter()
        .map(|d| d.id.clone())
        .collect();
    got.sort();
    let mut want = vec![ids[1].clone(), ids[2].clone()];
    want.sort();
    assert_eq!(got, want, "soft-deleted and purged records both listed");
    for d in &deleted.deleted_records {
        assert!(d.deleted_date >= start && d.deleted_date <= end);
    }
    assert!(deleted.earliest_date_available.is_some());
    assert!(deleted.latest_date_covered.is_some());

    // A window before everything holds nothing.
    let old = client
        .updated(
            "Contact",
            start - ChronoDuration::days(2),
            start - ChronoDuration::days(1),
        )
        .await
        .unwrap();
    assert!(old.ids.is_empty());
}

/// The raw variants page the same way and keep the records' JSON text intact.
#[tokio::test]
async fn raw_query_pages_match_parsed_ones() {
    let emu = Emu::start().await;
    emu.generate("Contact", 2_300).await;
    let client = emu.client();
    let soql = "SELECT Id, LastName, Account.Name FROM Contact ORDER BY Id";
    let mut raw = client.query_raw(soql, Some(2000)).await.unwrap();
    let mut parsed = client.query(soql, Some(2000)).await.unwrap();
    let mut pages = 0;
    loop {
        pages += 1;
        assert_eq!(raw.total_size, 2_300);
        assert_eq!(raw.record_count().unwrap(), parsed.records.len());
        assert_eq!(raw.parse_records().unwrap(), parsed.records);
        match (
            raw.next_records_url.clone(),
            parsed.next_records_url.clone(),
        ) {
            (Some(a), Some(b)) => {
                raw = client.query_more_raw(&a).await.unwrap();
                parsed = client.query_more(&b).await.unwrap();
            }
            (None, None) => break,
            other => panic!("paging differs: {other:?}"),
        }
    }
    assert_eq!(pages, 2);
    let all = client
        .query_all_raw("SELECT Id FROM Contact", None)
        .await
        .unwrap();
    assert_eq!(all.total_size, 2_300);
    assert!(all.records_json().starts_with('['));
}
