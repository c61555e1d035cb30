//! Bulk API 2.0 query and ingest jobs and Bulk API 1.0 query jobs over HTTP.

mod support;

use reqwest::Method;
use serde_json::{json, Value};
use support::{error_code, Org, V};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk2_query_pages_csv_with_locators() {
    let org = Org::start(&["--generate", "Account=5,Contact=250"]).await;
    let (s, job) = org.post("jobs/query", json!({"operation": "query", "query": "SELECT Id, LastName, Account.Name, IsDeleted FROM Contact"})).await;
    assert_eq!(s, 200);
    assert_eq!(job["state"], "UploadComplete");
    let id = job["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("750"));
    let (_, list) = org
        .call(Method::GET, &format!("{V}/jobs/query"), None)
        .await;
    assert_eq!(list["done"], true);
    assert_eq!(list["records"][0]["id"], id.as_str());
    let results = format!("{V}/jobs/query/{id}/results");
    let (s, b) = org.call(Method::GET, &results, None).await;
    assert_eq!((s.as_u16(), error_code(&b)), (412, "JOB_NOT_COMPLETE"));
    let (_, info) = org
        .call(Method::GET, &format!("{V}/jobs/query/{id}"), None)
        .await;
    assert_eq!(info["state"], "JobComplete");
    assert_eq!(info["numberRecordsProcessed"], 250);

    let mut locator = String::new();
    let mut rows = 0;
    let mut pages = 0;
    loop {
        let mut q = vec![("maxRecords", "100".to_string())];
        if !locator.is_empty() {
            q.push(("locator", locator.clone()));
        }
        let r = org
            .http
            .get(org.url(&results))
            .query(&q)
            .bearer_auth(&org.token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let n: usize = r.headers()["sforce-numberofrecords"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let next = r.headers()["sforce-locator"].to_str().unwrap().to_string();
        let text = r.text().await.unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "\"Id\",\"LastName\",\"Account.Name\",\"IsDeleted\""
        );
        assert_eq!(lines.len() - 1, n);
        assert!(
            lines[1].starts_with("\"003") && lines[1].ends_with(",\"false\""),
            "{}",
            lines[1]
        );
        rows += n;
        pages += 1;
        if next == "null" {
            break;
        }
        locator = next;
    }
    assert_eq!((rows, pages), (250, 3));

    let (s, b) = org
        .post(
            "jobs/query",
            json!({"operation": "query", "query": "SELECT MailingAddress FROM Contact"}),
        )
        .await;
    assert_eq!((s.as_u16(), error_code(&b)), (400, "INVALID_FIELD"));
    let (s, _) = org
        .post(
            "jobs/query",
            json!({"operation": "query", "query": "SELECT Id FROM Contact LIMIT 5 OFFSET 2"}),
        )
        .await;
    assert_eq!(s, 400);
    let r = org
        .http
        .get(org.url(&results))
        .query(&[("locator", "garbage!")])
        .bearer_auth(&org.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk2_ingest_applies_rows_and_reports_each() {
    let org = Org::start(&[]).await;
    let (s, job) = org.post("jobs/ingest", json!({"object": "Contact", "operation": "insert", "contentType": "CSV", "lineEnding": "LF"})).await;
    assert_eq!(s, 200);
    assert_eq!(job["state"], "Open");
    let id = job["id"].as_str().unwrap().to_string();
    let csv = "\u{feff}LastName,FirstName,Email\nLovelace,Ada,ada@example.com\n,Nobody,\n\"Hopper, Jr\",Grace,#N/A\n";
    let r = org
        .http
        .put(org.url(&format!("{V}/jobs/ingest/{id}/batches")))
        .header("Content-Type", "text/csv")
        .bearer_auth(&org.token)
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let (s, _) = org
        .call(
            Method::PATCH,
            &format!("{V}/jobs/ingest/{id}"),
            Some(json!({"state": "UploadComplete"})),
        )
        .await;
    assert_eq!(s, 200);
    let (_, info) = org
        .call(Method::GET, &format!("{V}/jobs/ingest/{id}"), None)
        .await;
    assert_eq!(info["state"], "JobComplete");
    assert_eq!(info["numberRecordsProcessed"], 3);
    assert_eq!(info["numberRecordsFailed"], 1);
    let get = |kind: &str| {
        let u = org.url(&format!("{V}/jobs/ingest/{id}/{kind}"));
        let org = &org;
        async move {
            org.http
                .get(u)
                .bearer_auth(&org.token)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    let ok = get("successfulResults").await;
    let lines: Vec<&str> = ok.lines().collect();
    assert_eq!(
        lines[0],
        "\"sf__Id\",\"sf__Created\",\"LastName\",\"FirstName\",\"Email\""
    );
    assert_eq!(lines.len(), 3);
    assert!(lines[2].contains("\"Hopper, Jr\""));
    let failed = get("failedResults").await;
    assert!(
        failed
            .lines()
            .nth(1)
            .unwrap()
            .contains("REQUIRED_FIELD_MISSING:Required fields are missing: [LastName]"),
        "{failed}"
    );
    let q = org
        .query("SELECT LastName, Email FROM Contact WHERE FirstName = 'Grace'")
        .await;
    assert_eq!(q["records"][0]["LastName"], "Hopper, Jr");
    assert_eq!(q["records"][0]["Email"], Value::Null);

    let (s, b) = org
        .post(
            "jobs/ingest",
            json!({"object": "Contact", "operation": "upsert"}),
        )
        .await;
    assert_eq!((s.as_u16(), error_code(&b)), (400, "INVALIDJOB"));
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
async fn bulk1_query_job_in_xml() {
    let org = Org::start(&["--generate", "Account=4,Contact=30"]).await;
    let base = org.url("/services/async/61.0");
    let post = |url: String, ct: &'static str, body: String| {
        let org = &org;
        async move {
            let r = org
                .http
                .post(url)
                .header("X-SFDC-Session", &org.token)
                .header("Content-Type", ct)
                .body(body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let get = |url: String| {
        let org = &org;
        async move {
            let r = org
                .http
                .get(url)
                .header("X-SFDC-Session", &org.token)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let job_xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><jobInfo xmlns=\"http://www.force.com/2009/06/asyncapi/dataload\"><operation>query</operation><object>Contact</object><contentType>CSV</contentType></jobInfo>";
    let (s, body) = post(
        format!("{base}/job"),
        "application/xml; charset=UTF-8",
        job_xml.into(),
    )
    .await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(xml_tag(&body, "state"), "Open");
    let job = xml_tag(&body, "id").to_string();

    let (s, body) = post(
        format!("{base}/job/{job}/batch"),
        "text/csv",
        "SELECT Id, LastName, Account.Name FROM Contact".into(),
    )
    .await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(xml_tag(&body, "state"), "Queued");
    let batch = xml_tag(&body, "id").to_string();
    let (s, body) = get(format!("{base}/job/{job}/batch/{batch}/result")).await;
    assert_eq!(
        s, 400,
        "results before the batch reported Completed: {body}"
    );
    assert_eq!(xml_tag(&body, "exceptionCode"), "InvalidBatch");

    let (_, body) = get(format!("{base}/job/{job}/batch/{batch}")).await;
    assert_eq!(xml_tag(&body, "state"), "Completed");
    assert_eq!(xml_tag(&body, "numberRecordsProcessed"), "30");
    let (_, body) = get(format!("{base}/job/{job}/batch/{batch}/result")).await;
    let result = xml_tag(&body, "result").to_string();
    let (s, csv) = get(format!("{base}/job/{job}/batch/{batch}/result/{result}")).await;
    assert_eq!(s, 200);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "\"Id\",\"LastName\",\"Account.Name\"");
    assert_eq!(lines.len(), 31);

    // A bad query fails its batch, not the job.
    let (_, body) = post(
        format!("{base}/job/{job}/batch"),
        "text/csv",
        "SELECT Nope FROM Contact".into(),
    )
    .await;
    let bad = xml_tag(&body, "id").to_string();
    let (_, body) = get(format!("{base}/job/{job}/batch/{bad}")).await;
    assert_eq!(xml_tag(&body, "state"), "Failed");
    assert!(xml_tag(&body, "stateMessage").contains("INVALID_FIELD"));

    let close = "<jobInfo xmlns=\"http://www.force.com/2009/06/asyncapi/dataload\"><state>Closed</state></jobInfo>";
    let (s, body) = post(format!("{base}/job/{job}"), "application/xml", close.into()).await;
    assert_eq!((s, xml_tag(&body, "state")), (200, "Closed"));
    assert_eq!(xml_tag(&body, "numberBatchesTotal"), "2");

    // JSON job bodies get JSON job info; load operations are refused clearly.
    let (s, body) = post(
        format!("{base}/job"),
        "application/json",
        r#"{"operation":"queryAll","object":"Account","contentType":"CSV"}"#.into(),
    )
    .await;
    assert_eq!(s, 201);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["state"], "Open");
    let (s, body) = post(
        format!("{base}/job"),
        "application/json",
        r#"{"operation":"insert","object":"Account"}"#.into(),
    )
    .await;
    assert_eq!(s, 400);
    assert!(body.contains("Bulk API 2.0"), "{body}");
    // A bad session is answered in Bulk 1.0's shape.
    let r = org
        .http
        .get(format!("{base}/job/{job}"))
        .header("X-SFDC-Session", "nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        xml_tag(&r.text().await.unwrap(), "exceptionCode"),
        "InvalidSessionId"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk2_ingest_upsert_update_and_deletes() {
    let org = Org::start(&[]).await;
    let run = |op: &'static str, ext: Option<&'static str>, csv: String| {
        let org = &org;
        async move {
            let mut body = json!({"object": "Contact", "operation": op, "lineEnding": "LF"});
            if let Some(f) = ext {
                body["externalIdFieldName"] = json!(f);
            }
            let (s, job) = org
                .call(Method::POST, &format!("{V}/jobs/ingest"), Some(body))
                .await;
            assert_eq!(s, 200, "{job}");
            let id = job["id"].as_str().unwrap().to_string();
            let r = org
                .http
                .put(org.url(&format!("{V}/jobs/ingest/{id}/batches")))
                .bearer_auth(&org.token)
                .header("Content-Type", "text/csv")
                .body(csv)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
            org.call(
                Method::PATCH,
                &format!("{V}/jobs/ingest/{id}"),
                Some(json!({"state": "UploadComplete"})),
            )
            .await;
            let (_, info) = org
                .call(Method::GET, &format!("{V}/jobs/ingest/{id}"), None)
                .await;
            assert_eq!(info["state"], "JobComplete");
            let ok = org
                .http
                .get(org.url(&format!("{V}/jobs/ingest/{id}/successfulResults")))
                .bearer_auth(&org.token)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            (info, ok)
        }
    };
    let (info, ok) = run(
        "upsert",
        Some("External_Id__c"),
        "External_Id__c,LastName\nE-1,First\nE-2,Second\n".into(),
    )
    .await;
    assert_eq!(
        (
            info["numberRecordsProcessed"].clone(),
            info["numberRecordsFailed"].clone()
        ),
        (json!(2), json!(0))
    );
    assert!(
        ok.lines().skip(1).all(|l| l.contains("\"true\"")),
        "both created: {ok}"
    );
    let (_, ok) = run(
        "upsert",
        Some("External_Id__c"),
        "External_Id__c,LastName\nE-1,Renamed\n".into(),
    )
    .await;
    assert!(
        ok.lines().nth(1).unwrap().contains("\"false\""),
        "matched, not created: {ok}"
    );
    let q = org
        .query("SELECT Id, LastName FROM Contact WHERE External_Id__c = 'E-1'")
        .await;
    assert_eq!(q["records"][0]["LastName"], "Renamed");
    let id1 = q["records"][0]["Id"].as_str().unwrap().to_string();
    let id2 = org
        .query("SELECT Id FROM Contact WHERE External_Id__c = 'E-2'")
        .await["records"][0]["Id"]
        .as_str()
        .unwrap()
        .to_string();

    let (info, _) = run(
        "update",
        None,
        format!("Id,Title\n{id1},Boss\n{},Nobody\n", "003Em000000zzzzAAA"),
    )
    .await;
    assert_eq!(info["numberRecordsFailed"], 1);
    let (_, got) = org
        .call(Method::GET, &format!("{V}/sobjects/Contact/{id1}"), None)
        .await;
    assert_eq!(got["Title"], "Boss");

    run("delete", None, format!("Id\n{id1}\n")).await;
    run("hardDelete", None, format!("Id\n{id2}\n")).await;
    let all = org.query_all("SELECT Id, IsDeleted FROM Contact").await;
    assert_eq!(
        all["totalSize"], 1,
        "the hard-deleted record is gone, the deleted one is in the bin"
    );
    assert_eq!(all["records"][0]["Id"], id1.as_str());
    assert_eq!(all["records"][0]["IsDeleted"], true);
}
