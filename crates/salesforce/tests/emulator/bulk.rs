//! Bulk API 2.0 query jobs end to end: create, poll, CSV pages with locators, delete.

use std::collections::HashSet;
use std::time::Duration;

use salesforce::{ErrorCode, JobState};

use crate::support::*;

const POLL: Duration = Duration::from_millis(20);
const MAX_WAIT: Duration = Duration::from_secs(60);

/// Reads every page of a completed job; returns (records per page, all rows).
async fn read_all(
    client: &salesforce::Client,
    job_id: &str,
    max_records: Option<u64>,
) -> (Vec<u64>, salesforce::CsvRows) {
    let mut sizes = Vec::new();
    let mut all = salesforce::CsvRows::default();
    let mut locator: Option<String> = None;
    loop {
        let page = client
            .bulk_query_results(job_id, locator.as_deref(), max_records)
            .await
            .unwrap();
        let rows = page.rows().unwrap();
        assert_eq!(rows.rows.len() as u64, page.number_of_records);
        if all.header.is_empty() {
            all.header = rows.header.clone();
        } else {
            assert_eq!(all.header, rows.header, "every page repeats the header");
        }
        sizes.push(page.number_of_records);
        all.rows.extend(rows.rows);
        locator = page.locator;
        if locator.is_none() {
            break;
        }
    }
    (sizes, all)
}

/// Creates a job, waits for it, and reads all its pages in one go.
async fn run_job(
    client: &salesforce::Client,
    soql: &str,
    query_all: bool,
) -> (Vec<u64>, salesforce::CsvRows) {
    let job = client.bulk_query_create(soql, query_all).await.unwrap();
    let done = client
        .bulk_query_wait(&job.id, POLL, MAX_WAIT)
        .await
        .unwrap();
    assert_eq!(done.state, JobState::JobComplete);
    read_all(client, &job.id, None).await
}

/// The error a job creation is refused with.
async fn refused(client: &salesforce::Client, soql: &str) -> salesforce::Error {
    client.bulk_query_create(soql, false).await.unwrap_err()
}

#[tokio::test]
async fn query_job_end_to_end_with_locator_pages() {
    let emu = Emu::start().await;
    emu.generate("Contact", 2_500).await;
    let client = emu.client();
    let soql = "SELECT Id, LastName, Email, Birthdate, IsDeleted, SystemModstamp FROM Contact";
    let job = client.bulk_query_create(soql, false).await.unwrap();
    assert!(job.id.starts_with("750"), "{}", job.id);
    assert_eq!(job.operation, "query");
    assert_eq!(job.object, "Contact");
    assert!(!job.state.is_terminal());

    // Results before completion: 412 JOB_NOT_COMPLETE, not transient in itself but
    // the signal to keep polling.
    // (The emulator completes a job when its status is first read.)
    let err = client
        .bulk_query_results(&job.id, None, None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&ErrorCode::JobNotComplete));
    assert_eq!(err.status(), Some(412));

    let done = client
        .bulk_query_wait(&job.id, POLL, MAX_WAIT)
        .await
        .unwrap();
    assert_eq!(done.state, JobState::JobComplete);
    assert_eq!(done.number_records_processed, 2_500);

    let (sizes, rows) = read_all(&client, &job.id, Some(1_000)).await;
    assert_eq!(sizes, vec![1_000, 1_000, 500]);
    assert_eq!(
        rows.header,
        vec![
            "Id",
            "LastName",
            "Email",
            "Birthdate",
            "IsDeleted",
            "SystemModstamp"
        ]
    );
    let ids: HashSet<String> = rows.rows.iter().map(|r| r[0].clone().unwrap()).collect();
    assert_eq!(ids.len(), 2_500);
    assert!(
        rows.rows.iter().all(|r| r[1].is_some()),
        "LastName is required"
    );
    assert!(rows.rows.iter().all(|r| r[4].as_deref() == Some("false")));
    assert!(rows
        .rows
        .iter()
        .all(|r| salesforce::de::parse_datetime(r[5].as_deref().unwrap()).is_some()));

    // The same ids as the REST API gives.
    let mut rest_ids = HashSet::new();
    let mut page = client.query("SELECT Id FROM Contact", None).await.unwrap();
    loop {
        rest_ids.extend(
            page.records
                .iter()
                .map(|r| r["Id"].as_str().unwrap().to_string()),
        );
        match page.next_records_url.clone() {
            Some(next) => page = client.query_more(&next).await.unwrap(),
            None => break,
        }
    }
    assert_eq!(ids, rest_ids);

    // Without maxRecords, everything fits one page; records() keys by header.
    let (sizes, _) = read_all(&client, &job.id, None).await;
    assert_eq!(sizes, vec![2_500]);
    // Streaming the rows of a page sees the same ids.
    let whole = client
        .bulk_query_results(&job.id, None, None)
        .await
        .unwrap();
    let mut streamed = HashSet::new();
    let header = whole
        .for_each_row(|row| {
            streamed.insert(row[0].unwrap().to_string());
            Ok(())
        })
        .unwrap();
    assert_eq!(header[0], "Id");
    assert_eq!(streamed, ids);
    let first = client
        .bulk_query_results(&job.id, None, Some(1))
        .await
        .unwrap();
    let records = first.records().unwrap();
    assert_eq!(records.len(), 1);
    assert!(records[0]["Id"].as_str().unwrap().starts_with("003"));

    client.bulk_query_delete(&job.id).await.unwrap();
    let err = client.bulk_query_status(&job.id).await.unwrap_err();
    assert_eq!(err.status(), Some(404));
}

#[tokio::test]
async fn query_all_job_includes_deleted_rows() {
    let emu = Emu::start().await;
    let ids = emu
        .create(
            "Account",
            serde_json::json!([{"Name": "Live"}, {"Name": "Binned"}]),
        )
        .await;
    emu.control("DELETE", &format!("records/Account/{}", ids[1]), None)
        .await;
    let client = emu.client();
    let (_, rows) = run_job(&client, "SELECT Id, Name, IsDeleted FROM Account", true).await;
    let mut got: Vec<(String, String)> = rows
        .rows
        .iter()
        .map(|r| (r[1].clone().unwrap(), r[2].clone().unwrap()))
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("Binned".to_string(), "true".to_string()),
            ("Live".to_string(), "false".to_string())
        ]
    );
    // A plain query job does not see the deleted one.
    let (_, rows) = run_job(&client, "SELECT Id FROM Account", false).await;
    assert_eq!(rows.rows.len(), 1);
}

#[tokio::test]
async fn empty_result_and_nulls() {
    let emu = Emu::start().await;
    emu.create("Contact", serde_json::json!([{"LastName": "Only"}]))
        .await;
    let client = emu.client();
    let soql = "SELECT Id, FirstName FROM Contact WHERE LastName = 'Nobody'";
    let (sizes, rows) = run_job(&client, soql, false).await;
    assert_eq!(sizes, vec![0]);
    assert!(rows.rows.is_empty());
    let (_, rows) = run_job(&client, "SELECT Id, FirstName FROM Contact", false).await;
    assert_eq!(
        rows.rows[0][1], None,
        "a null FirstName is an empty CSV value"
    );
}

#[tokio::test]
async fn bulk_refuses_what_it_cannot_do() {
    let emu = Emu::start().await;
    let client = emu.client();
    // Compound fields cannot be selected in a Bulk query.
    let err = refused(&client, "SELECT Id, MailingAddress FROM Contact").await;
    assert_eq!(err.status(), Some(400));
    assert!(err.to_string().contains("compound"), "{err}");
    assert!(!err.is_transient());
    let err = refused(&client, "SELECT Id FROM Contact LIMIT 5 OFFSET 2").await;
    assert_eq!(err.status(), Some(400));
    let err = refused(&client, "SELECT Id FRM Contact").await;
    assert_eq!(err.code(), Some(&ErrorCode::MalformedQuery));
}

#[tokio::test]
async fn abort_and_results_of_an_aborted_job() {
    let emu = Emu::start().await;
    let client = emu.client();
    let job = client
        .bulk_query_create("SELECT Id FROM Contact", false)
        .await
        .unwrap();
    let aborted = client.bulk_query_abort(&job.id).await.unwrap();
    assert_eq!(aborted.state, JobState::Aborted);
    let done = client
        .bulk_query_wait(&job.id, POLL, MAX_WAIT)
        .await
        .unwrap();
    assert_eq!(done.state, JobState::Aborted);
    let err = client
        .bulk_query_results(&job.id, None, None)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert_eq!(err.code(), Some(&ErrorCode::InvalidJobState));
    // Aborting a finished job is refused.
    let err = client.bulk_query_abort(&job.id).await.unwrap_err();
    assert_eq!(err.code(), Some(&ErrorCode::InvalidJobState));
    // Unknown job ids are NOT_FOUND; ids that would change the path never leave.
    let err = client
        .bulk_query_status("750000000000000AAA")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&ErrorCode::NotFound));
    assert!(matches!(
        client.bulk_query_status("../limits").await,
        Err(salesforce::Error::Config(_))
    ));
}
