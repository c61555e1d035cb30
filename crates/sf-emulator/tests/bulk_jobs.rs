//! Bulk query jobs that take time, fail, are aborted and expire (`--bulk-job-ms`,
//! `bulk_job_*` faults, `PATCH /__emulator/bulk_jobs/{id}`, results lifetime).

mod support;

use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::{error_code, Org, V};

async fn create_job(org: &Org, soql: &str) -> String {
    let (s, job) = org
        .post("jobs/query", json!({"operation": "query", "query": soql}))
        .await;
    assert_eq!(s, 200, "{job}");
    assert_eq!(job["state"], "UploadComplete");
    job["id"].as_str().unwrap().to_string()
}

async fn status(org: &Org, id: &str) -> Value {
    let (s, info) = org
        .call(Method::GET, &format!("{V}/jobs/query/{id}"), None)
        .await;
    assert_eq!(s, 200, "{info}");
    info
}

async fn results(org: &Org, id: &str) -> (u16, Value, String) {
    let r = org
        .raw(Method::GET, &format!("{V}/jobs/query/{id}/results"), None)
        .await;
    let s = r.status().as_u16();
    let text = r.text().await.unwrap();
    (s, serde_json::from_str(&text).unwrap_or(Value::Null), text)
}

async fn api_used(org: &Org) -> u64 {
    org.stats().await["api_usage"]["used"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk2_jobs_move_through_their_states_over_time() {
    let org = Org::start(&["--generate", "Contact=20", "--bulk-job-ms", "1200"]).await;
    let created = Instant::now();
    let id = create_job(&org, "SELECT Id, LastName FROM Contact").await;
    let used_before = api_used(&org).await;

    let mut seen: Vec<String> = Vec::new();
    let mut polls = 0u64;
    let mut early_results = Vec::new();
    loop {
        let info = status(&org, &id).await;
        polls += 1;
        let state = info["state"].as_str().unwrap().to_string();
        if state == "JobComplete" {
            assert!(
                created.elapsed() >= Duration::from_millis(1200),
                "complete after {:?}, before its 1200 ms",
                created.elapsed()
            );
            assert_eq!(info["numberRecordsProcessed"], 20);
            seen.push(state);
            break;
        }
        assert_eq!(info["numberRecordsProcessed"], 0);
        let (s, body, _) = results(&org, &id).await;
        polls += 1;
        early_results.push((s, error_code(&body).to_string(), body[0]["message"].clone()));
        if seen.last() != Some(&state) {
            seen.push(state);
        }
        assert!(created.elapsed() < Duration::from_secs(30), "{seen:?}");
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    // Only forward moves, through InProgress (polled every ~40 ms over ~900 ms).
    let order = ["UploadComplete", "InProgress", "JobComplete"];
    let idx: Vec<usize> = seen
        .iter()
        .map(|s| order.iter().position(|o| o == s).unwrap())
        .collect();
    assert!(idx.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    assert!(seen.contains(&"InProgress".to_string()), "{seen:?}");
    for (s, code, msg) in &early_results {
        assert_eq!((*s, code.as_str()), (412, "JOB_NOT_COMPLETE"));
        let msg = msg.as_str().unwrap();
        assert!(
            msg.starts_with("can only download query results of successfully completed bulk job with status: JOB_COMPLETE. Current status: "),
            "{msg}"
        );
    }
    assert!(early_results
        .iter()
        .any(|(_, _, m)| m.as_str().unwrap().ends_with("IN_PROGRESS")));
    // Every poll and early results call was an API request.
    assert_eq!(api_used(&org).await - used_before, polls);

    let (s, _, csv) = results(&org, &id).await;
    assert_eq!(s, 200);
    assert_eq!(csv.lines().count(), 21);

    // The run time changes at run time: 0 = complete at the first poll.
    let (s, l) = org
        .control(Method::PUT, "limits", json!({"bulk_job_ms": 0}))
        .await;
    assert_eq!((s.as_u16(), l["bulk_job_ms"].as_u64()), (200, Some(0)));
    let id = create_job(&org, "SELECT Id FROM Contact").await;
    assert_eq!(results(&org, &id).await.0, 412, "not before a poll");
    assert_eq!(status(&org, &id).await["state"], "JobComplete");
    assert_eq!(results(&org, &id).await.0, 200);
    let (_, l) = org.control(Method::GET, "limits", json!({})).await;
    assert_eq!(l["bulk_job_ms"], 0);
    assert_eq!(l["bulk_results_ttl_ms"], 604_800_000u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk2_jobs_fail_abort_and_expire() {
    let org = Org::start(&["--generate", "Account=3"]).await;
    let soql = "SELECT Id, Name FROM Account";
    let (s, _) = org
        .control(
            Method::POST,
            "faults",
            json!({"kind": "bulk_job_failed", "count": 1, "message": "QUERY_TIMEOUT: too slow"}),
        )
        .await;
    assert_eq!(s, 200);
    let failed = create_job(&org, soql).await;
    let info = status(&org, &failed).await;
    assert_eq!(info["state"], "Failed");
    assert_eq!(info["errorMessage"], "QUERY_TIMEOUT: too slow");
    let (s, body, _) = results(&org, &failed).await;
    assert_eq!((s, error_code(&body)), (400, "INVALIDJOBSTATE"));
    // The fault is spent: the next job completes; a request fault rule is untouched.
    let ok = create_job(&org, soql).await;
    assert_eq!(status(&org, &ok).await["state"], "JobComplete");
    assert!(status(&org, &ok).await.get("errorMessage").is_none());

    org.control(
        Method::POST,
        "faults",
        json!({"kind": "bulk_job_failed", "count": 1}),
    )
    .await;
    let id = create_job(&org, soql).await;
    assert_eq!(
        status(&org, &id).await["errorMessage"],
        "Retried more than 15 times"
    );
    org.control(
        Method::POST,
        "faults",
        json!({"kind": "bulk_job_aborted", "count": 1}),
    )
    .await;
    let id = create_job(&org, soql).await;
    assert_eq!(status(&org, &id).await["state"], "Aborted");

    // A long job: the control API ends it; DELETE waits for a terminal state.
    org.control(Method::PUT, "limits", json!({"bulk_job_ms": 600_000}))
        .await;
    let long = create_job(&org, soql).await;
    let (s, body) = org
        .call(Method::DELETE, &format!("{V}/jobs/query/{long}"), None)
        .await;
    assert_eq!((s.as_u16(), error_code(&body)), (400, "API_ERROR"));
    let (s, _) = org
        .control(
            Method::PATCH,
            &format!("bulk_jobs/{long}"),
            json!({"state": "Failed", "errorMessage": "admin says no"}),
        )
        .await;
    assert_eq!(s, 200);
    let info = status(&org, &long).await;
    assert_eq!(
        (info["state"].as_str(), info["errorMessage"].as_str()),
        (Some("Failed"), Some("admin says no"))
    );
    let (s, _) = org
        .control(
            Method::PATCH,
            &format!("bulk_jobs/{long}"),
            json!({"state": "Aborted"}),
        )
        .await;
    assert_eq!(s, 400, "already finished");
    let (s, _) = org
        .control(
            Method::PATCH,
            "bulk_jobs/750000000000000AAA",
            json!({"state": "Aborted"}),
        )
        .await;
    assert_eq!(s, 404);
    let (s, _) = org
        .call(Method::DELETE, &format!("{V}/jobs/query/{long}"), None)
        .await;
    assert_eq!(s, 204);

    // Results expire: a short lifetime, then the job is gone.
    org.control(
        Method::PUT,
        "limits",
        json!({"bulk_job_ms": 0, "bulk_results_ttl_ms": 1500}),
    )
    .await;
    let id = create_job(&org, soql).await;
    assert_eq!(status(&org, &id).await["state"], "JobComplete");
    assert_eq!(results(&org, &id).await.0, 200);
    tokio::time::sleep(Duration::from_millis(1700)).await;
    let (s, body, _) = results(&org, &id).await;
    assert_eq!((s, error_code(&body)), (404, "NOT_FOUND"));
    let (s, body) = org
        .call(Method::GET, &format!("{V}/jobs/query/{id}"), None)
        .await;
    assert_eq!((s.as_u16(), error_code(&body)), (404, "NOT_FOUND"));

    // Or at once, for every finished job; running ones stay.
    org.control(
        Method::PUT,
        "limits",
        json!({"bulk_results_ttl_ms": 604_800_000u64}),
    )
    .await;
    let done = create_job(&org, soql).await;
    status(&org, &done).await;
    org.control(Method::PUT, "limits", json!({"bulk_job_ms": 600_000}))
        .await;
    let running = create_job(&org, soql).await;
    let (s, n) = org
        .control(Method::POST, "expire_bulk_jobs", json!({}))
        .await;
    assert_eq!(s, 200);
    assert!(n["expired"].as_u64().unwrap() >= 1, "{n}");
    let (s, _) = org
        .call(Method::GET, &format!("{V}/jobs/query/{done}"), None)
        .await;
    assert_eq!(s, 404);
    assert_eq!(status(&org, &running).await["state"], "UploadComplete");
}

fn xml_tag<'a>(body: &'a str, tag: &str) -> &'a str {
    let open = format!("<{tag}>");
    let start = body
        .find(&open)
        .map(|i| i + open.len())
        .unwrap_or_else(|| panic!("no <{tag}> in {body}"));
    let end = body[start..].find(&format!("</{tag}>")).unwrap();
    &body[start..start + end]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk1_batches_take_time_fail_abort_and_expire() {
    let org = Org::start(&["--generate", "Contact=12", "--bulk-job-ms", "1000"]).await;
    let base = org.url("/services/async/61.0");
    let base = base.as_str();
    let send = |method: Method, url: String, body: Option<String>| {
        let org = &org;
        async move {
            let mut r = org
                .http
                .request(method, url)
                .header("X-SFDC-Session", &org.token);
            if let Some(b) = body {
                r = r.header("Content-Type", "application/xml").body(b);
            }
            let r = r.send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let new_job = || async {
        let job = "<jobInfo xmlns=\"http://www.force.com/2009/06/asyncapi/dataload\"><operation>query</operation><object>Contact</object><contentType>CSV</contentType></jobInfo>";
        let (s, body) = send(Method::POST, format!("{base}/job"), Some(job.into())).await;
        assert_eq!(s, 201, "{body}");
        xml_tag(&body, "id").to_string()
    };
    let add_batch = |job: String| async move {
        let (s, body) = send(
            Method::POST,
            format!("{base}/job/{job}/batch"),
            Some("SELECT Id FROM Contact".into()),
        )
        .await;
        assert_eq!(s, 201, "{body}");
        assert_eq!(xml_tag(&body, "state"), "Queued");
        xml_tag(&body, "id").to_string()
    };

    let job = new_job().await;
    let started = Instant::now();
    let batch = add_batch(job.clone()).await;
    let mut seen = Vec::new();
    // results were served, so the batch had completed: the next read must say so
    let mut results_served = false;
    let info = loop {
        let (_, body) = send(Method::GET, format!("{base}/job/{job}/batch/{batch}"), None).await;
        let state = xml_tag(&body, "state").to_string();
        if seen.last() != Some(&state) {
            seen.push(state.clone());
        }
        if state == "Completed" {
            assert!(started.elapsed() >= Duration::from_millis(1000));
            break body;
        }
        assert!(
            !results_served,
            "results served before the batch completed: {seen:?}"
        );
        let (s, body) = send(
            Method::GET,
            format!("{base}/job/{job}/batch/{batch}/result"),
            None,
        )
        .await;
        // on a loaded machine the batch may complete between the two requests
        if s == 200 && started.elapsed() >= Duration::from_millis(1000) {
            results_served = true;
            continue;
        }
        assert_eq!((s, xml_tag(&body, "exceptionCode")), (400, "InvalidBatch"));
        assert!(started.elapsed() < Duration::from_secs(30), "{seen:?}");
        tokio::time::sleep(Duration::from_millis(40)).await;
    };
    assert!(seen.contains(&"InProgress".to_string()), "{seen:?}");
    assert_eq!(xml_tag(&info, "numberRecordsProcessed"), "12");

    // Faults: the next batch fails, the one after is never processed (job aborted).
    org.control(Method::PUT, "limits", json!({"bulk_job_ms": 0}))
        .await;
    org.control(
        Method::POST,
        "faults",
        json!({"kind": "bulk_job_failed", "count": 1}),
    )
    .await;
    let failed = add_batch(job.clone()).await;
    let (_, body) = send(
        Method::GET,
        format!("{base}/job/{job}/batch/{failed}"),
        None,
    )
    .await;
    assert_eq!(xml_tag(&body, "state"), "Failed");
    assert_eq!(
        xml_tag(&body, "stateMessage"),
        "Retried more than thirty times"
    );
    let job2 = new_job().await;
    org.control(
        Method::POST,
        "faults",
        json!({"kind": "bulk_job_aborted", "count": 1}),
    )
    .await;
    let lost = add_batch(job2.clone()).await;
    let (_, body) = send(Method::GET, format!("{base}/job/{job2}/batch/{lost}"), None).await;
    assert_eq!(xml_tag(&body, "state"), "NotProcessed");
    let (_, body) = send(Method::GET, format!("{base}/job/{job2}"), None).await;
    assert_eq!(xml_tag(&body, "state"), "Aborted");

    // Expired: the job is gone.
    let (s, _) = org
        .control(Method::POST, "expire_bulk_jobs", json!({}))
        .await;
    assert_eq!(s, 200);
    let (s, body) = send(Method::GET, format!("{base}/job/{job}"), None).await;
    assert_eq!((s, xml_tag(&body, "exceptionCode")), (400, "InvalidJob"));
}
