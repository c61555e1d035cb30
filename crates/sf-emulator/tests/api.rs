//! The emulator over real HTTP: validation, limits, collections, composite, Bulk 2.0
//! and bad input, each checked against the shapes Salesforce answers with.

use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};
use sf_emulator::{Config, Running};

const V: &str = "/services/data/v61.0";

struct Org {
    running: Running,
    http: Client,
    token: String,
}

impl Org {
    async fn start(args: &[&str]) -> Org {
        let mut argv = vec!["sf-emulator", "--listen", "127.0.0.1:0"];
        argv.extend_from_slice(args);
        let config = <Config as clap::Parser>::parse_from(argv);
        let running = sf_emulator::start(config).await.expect("emulator starts");
        let http = Client::new();
        let token = http
            .post(format!("{}/services/oauth2/token", running.base_url()))
            .form(&[
                ("grant_type", "refresh_token"),
                ("client_id", "sequin-emulator"),
                ("client_secret", "emulator-secret"),
                ("refresh_token", "emulator-refresh-token"),
            ])
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_string();
        Org {
            running,
            http,
            token,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.running.base_url(), path)
    }

    async fn raw(&self, method: Method, path: &str, body: Option<Value>) -> reqwest::Response {
        let mut r = self
            .http
            .request(method, self.url(path))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send().await.unwrap()
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let r = self.raw(method, path, body).await;
        let status = r.status();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn query(&self, soql: &str) -> Value {
        let r = self
            .http
            .get(self.url(&format!("{V}/query")))
            .query(&[("q", soql)])
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "query {soql}");
        r.json().await.unwrap()
    }

    async fn control(&self, method: Method, path: &str, body: Value) -> (StatusCode, Value) {
        let r = self
            .http
            .request(method, self.url(&format!("/__emulator/{path}")))
            .json(&body)
            .send()
            .await
            .unwrap();
        let s = r.status();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    async fn stats(&self) -> Value {
        self.control(Method::GET, "stats", json!({})).await.1
    }
}

fn error_code(body: &Value) -> &str {
    body[0]["errorCode"].as_str().unwrap_or("")
}

fn opportunity(amount: f64) -> Value {
    json!({"Name": "Deal", "StageName": "Prospecting", "CloseDate": "2024-06-30", "Amount": amount})
}

// ------------------------------------------------------------------ validation

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_errors_match_salesforce() {
    let org = Org::start(&[]).await;
    let post = |obj: &str, body: Value| {
        let path = format!("{V}/sobjects/{obj}");
        let org = &org;
        async move { org.call(Method::POST, &path, Some(body)).await }
    };

    let (s, b) = post("Contact", json!({"FirstName": "No last name"})).await;
    assert_eq!(s, 400);
    assert_eq!(error_code(&b), "REQUIRED_FIELD_MISSING");
    assert_eq!(b[0]["fields"], json!(["LastName"]));
    assert_eq!(b[0]["message"], "Required fields are missing: [LastName]");

    let (s, b) = post("Contact", json!({"LastName": "X", "Shoe_Size__c": 9})).await;
    assert_eq!((s.as_u16(), error_code(&b)), (400, "INVALID_FIELD"));

    let (s, b) = post(
        "Contact",
        json!({"LastName": "X", "SystemModstamp": "2020-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(
        (s.as_u16(), error_code(&b)),
        (400, "INVALID_FIELD_FOR_INSERT_UPDATE")
    );

    let (s, b) = post("Opportunity", json!({"Name": "X", "StageName": "Prospecting", "CloseDate": "2024-01-01", "ExpectedRevenue": 5})).await;
    assert_eq!(
        (s.as_u16(), error_code(&b)),
        (400, "INVALID_FIELD_FOR_INSERT_UPDATE"),
        "formula fields are read-only"
    );

    let (s, b) = post("Contact", json!({"LastName": "X", "Birthdate": true})).await;
    assert_eq!(
        (s.as_u16(), error_code(&b)),
        (400, "JSON_PARSER_ERROR"),
        "a boolean is not a date"
    );

    let (s, b) = post("Contact", json!({"LastName": "X", "Email": "not-an-email"})).await;
    assert_eq!((s.as_u16(), error_code(&b)), (400, "INVALID_EMAIL_ADDRESS"));

    let (s, b) = post(
        "Opportunity",
        json!({"Name": "X", "StageName": "Dreaming", "CloseDate": "2024-01-01"}),
    )
    .await;
    assert_eq!(
        (s.as_u16(), error_code(&b)),
        (400, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST")
    );
    assert_eq!(b[0]["fields"], json!(["StageName"]));

    let (s, b) = post("Opportunity", opportunity(-5.0)).await;
    assert_eq!(
        (s.as_u16(), error_code(&b)),
        (400, "FIELD_CUSTOM_VALIDATION_EXCEPTION")
    );
    assert_eq!(b[0]["message"], "Amount must not be negative");

    let (s, b) = post(
        "Contact",
        json!({"LastName": "X", "AccountId": "001Em000000zzzzAAA"}),
    )
    .await;
    assert_eq!(s, 400);
    assert!(
        ["INVALID_CROSS_REFERENCE_KEY", "MALFORMED_ID"].contains(&error_code(&b)),
        "{b}"
    );

    // The same rule guards updates.
    let (s, b) = post("Opportunity", opportunity(10.0)).await;
    assert_eq!(s, 201);
    let id = b["id"].as_str().unwrap().to_string();
    let (s, b) = org
        .call(
            Method::PATCH,
            &format!("{V}/sobjects/Opportunity/{id}"),
            Some(json!({"Amount": -1})),
        )
        .await;
    assert_eq!(
        (s.as_u16(), error_code(&b)),
        (400, "FIELD_CUSTOM_VALIDATION_EXCEPTION")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_are_18_characters_with_checksums_and_15_also_work() {
    let org = Org::start(&["--generate", "Account=3"]).await;
    let rows = org.query("SELECT Id FROM Account ORDER BY Id").await;
    let ids: Vec<&str> = rows["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3);
    for id in &ids {
        assert_eq!(id.len(), 18);
        assert_eq!(sf_emulator::ids::to18(&id[..15]), *id);
    }
    let (s, b) = org
        .call(
            Method::GET,
            &format!("{V}/sobjects/Account/{}", &ids[1][..15]),
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(b["Id"], ids[1]);
    let one = org
        .query(&format!(
            "SELECT Id FROM Account WHERE Id = '{}'",
            &ids[2][..15]
        ))
        .await;
    assert_eq!(one["totalSize"], 1);
    assert_eq!(one["records"][0]["Id"], ids[2]);
    // A wrong checksum is a malformed id.
    let bad = format!("{}ZZZ", &ids[0][..15]);
    let (s, b) = org
        .call(Method::GET, &format!("{V}/sobjects/Account/{bad}"), None)
        .await;
    assert_eq!((s.as_u16(), error_code(&b)), (400, "MALFORMED_ID"));
}

// ------------------------------------------------------------------ limits

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_is_reported_and_enforced() {
    let org = Org::start(&["--api-limit", "5"]).await;
    let r = org.raw(Method::GET, &format!("{V}/limits"), None).await;
    assert_eq!(r.headers()["sforce-limit-info"], "api-usage=1/5");
    let limits: Value = r.json().await.unwrap();
    assert_eq!(
        limits["DailyApiRequests"],
        json!({"Max": 5, "Remaining": 4})
    );
    for n in 2..=5 {
        let r = org.raw(Method::GET, &format!("{V}/sobjects"), None).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["sforce-limit-info"], format!("api-usage={n}/5"));
    }
    let r = org.raw(Method::GET, &format!("{V}/sobjects"), None).await;
    assert_eq!(r.status(), 403);
    assert_eq!(r.headers()["sforce-limit-info"], "api-usage=5/5");
    let b: Value = r.json().await.unwrap();
    assert_eq!(error_code(&b), "REQUEST_LIMIT_EXCEEDED");
    assert_eq!(b[0]["message"], "TotalRequests Limit exceeded.");
    // The control API is never counted and can refill the quota.
    let (s, _) = org
        .control(Method::PUT, "limits", json!({"api_used": 0}))
        .await;
    assert_eq!(s, 200);
    let r = org.raw(Method::GET, &format!("{V}/sobjects"), None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(org.stats().await["api_usage"]["used"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_tokens_and_bad_tokens_get_invalid_session() {
    let org = Org::start(&[]).await;
    let r = org
        .http
        .get(org.url(&format!("{V}/limits")))
        .bearer_auth("nonsense")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(error_code(&r.json().await.unwrap()), "INVALID_SESSION_ID");
    assert_eq!(
        org.call(Method::GET, &format!("{V}/limits"), None).await.0,
        200
    );
    org.control(Method::POST, "expire_tokens", json!({})).await;
    let (s, b) = org.call(Method::GET, &format!("{V}/limits"), None).await;
    assert_eq!((s.as_u16(), error_code(&b)), (401, "INVALID_SESSION_ID"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counted_faults_hit_matching_paths_then_stop() {
    let org = Org::start(&[]).await;
    let (s, _) = org
        .control(
            Method::POST,
            "faults",
            json!({"kind": "unable_to_lock_row", "count": 1, "path_contains": "/composite"}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        org.call(Method::GET, &format!("{V}/limits"), None).await.0,
        200
    );
    let body = json!({"records": [{"attributes": {"type": "Contact"}, "LastName": "A"}]});
    let (s, b) = org
        .call(
            Method::POST,
            &format!("{V}/composite/sobjects"),
            Some(body.clone()),
        )
        .await;
    assert_eq!((s.as_u16(), error_code(&b)), (400, "UNABLE_TO_LOCK_ROW"));
    let (s, b) = org
        .call(Method::POST, &format!("{V}/composite/sobjects"), Some(body))
        .await;
    assert_eq!(s, 200);
    assert_eq!(b[0]["success"], true);
}

// ------------------------------------------------------------------ collections

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collections_report_per_record_and_honour_all_or_none() {
    let org = Org::start(&[]).await;
    let path = format!("{V}/composite/sobjects");
    let rec = |last: Option<&str>| match last {
        Some(l) => json!({"attributes": {"type": "Contact"}, "LastName": l}),
        None => json!({"attributes": {"type": "Contact"}, "FirstName": "no last name"}),
    };
    let (s, b) = org
        .call(
            Method::POST,
            &path,
            Some(
                json!({"allOrNone": false, "records": [rec(Some("A")), rec(None), rec(Some("C"))]}),
            ),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(b[0]["success"], true);
    assert_eq!(b[1]["success"], false);
    assert_eq!(b[1]["errors"][0]["statusCode"], "REQUIRED_FIELD_MISSING");
    assert!(b[1].get("id").is_none());
    let ok = [
        b[0]["id"].as_str().unwrap().to_string(),
        b[2]["id"].as_str().unwrap().to_string(),
    ];

    // allOrNone: nothing is written when one record fails.
    let before = org.query("SELECT COUNT() FROM Contact").await["totalSize"].clone();
    let (_, b) = org
        .call(
            Method::POST,
            &path,
            Some(json!({"allOrNone": true, "records": [rec(Some("D")), rec(None)]})),
        )
        .await;
    assert_eq!(
        b[0]["errors"][0]["statusCode"],
        "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    );
    assert_eq!(b[1]["errors"][0]["statusCode"], "REQUIRED_FIELD_MISSING");
    assert_eq!(
        org.query("SELECT COUNT() FROM Contact").await["totalSize"],
        before
    );
    assert_eq!(
        org.query("SELECT Id FROM Contact WHERE LastName = 'D'")
            .await["totalSize"],
        0
    );

    // allOrNone update: the good record's change is undone.
    let upd = json!({"allOrNone": true, "records": [
        {"attributes": {"type": "Contact"}, "id": ok[0], "Title": "Changed"},
        {"attributes": {"type": "Contact"}, "id": ok[1], "Email": "bad address"},
    ]});
    let (_, b) = org.call(Method::PATCH, &path, Some(upd)).await;
    assert_eq!(
        b[0]["errors"][0]["statusCode"],
        "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    );
    assert_eq!(b[0]["id"], ok[0].as_str());
    assert_eq!(b[1]["errors"][0]["statusCode"], "INVALID_EMAIL_ADDRESS");
    let (_, got) = org
        .call(
            Method::GET,
            &format!("{V}/sobjects/Contact/{}", ok[0]),
            None,
        )
        .await;
    assert_eq!(got["Title"], Value::Null);

    let upd =
        json!({"records": [{"attributes": {"type": "Contact"}, "id": ok[0], "Title": "Changed"}]});
    let (_, b) = org.call(Method::PATCH, &path, Some(upd)).await;
    assert_eq!(b[0], json!({"id": ok[0], "success": true, "errors": []}));

    // Upsert by external id: first creates, then updates.
    let up = |last: &str| json!({"records": [{"attributes": {"type": "Contact"}, "External_Id__c": "X-1", "LastName": last}]});
    let (_, b) = org
        .call(
            Method::PATCH,
            &format!("{path}/Contact/External_Id__c"),
            Some(up("One")),
        )
        .await;
    assert_eq!(
        (b[0]["success"].clone(), b[0]["created"].clone()),
        (json!(true), json!(true))
    );
    let (_, b2) = org
        .call(
            Method::PATCH,
            &format!("{path}/Contact/External_Id__c"),
            Some(up("Two")),
        )
        .await;
    assert_eq!(b2[0]["created"], false);
    assert_eq!(b2[0]["id"], b[0]["id"]);

    // Delete with a bad id in the list.
    let ids = format!("{},{},nonsense", ok[0], ok[1]);
    let r = org
        .http
        .delete(org.url(&path))
        .query(&[("ids", ids.as_str())])
        .bearer_auth(&org.token)
        .send()
        .await
        .unwrap();
    let b: Value = r.json().await.unwrap();
    assert_eq!(
        [
            b[0]["success"].clone(),
            b[1]["success"].clone(),
            b[2]["success"].clone()
        ],
        [json!(true), json!(true), json!(false)]
    );
    assert_eq!(b[2]["errors"][0]["statusCode"], "MALFORMED_ID");

    // 201 records: refused as a whole.
    let many: Vec<Value> = (0..201).map(|i| rec(Some(&i.to_string()))).collect();
    let (s, b) = org
        .call(Method::POST, &path, Some(json!({"records": many})))
        .await;
    assert_eq!((s.as_u16(), error_code(&b)), (400, "EXCEEDED_ID_LIMIT"));
    let two_hundred: Vec<Value> = (0..200).map(|i| rec(Some(&i.to_string()))).collect();
    let (s, b) = org
        .call(Method::POST, &path, Some(json!({"records": two_hundred})))
        .await;
    assert_eq!(s, 200);
    assert_eq!(b.as_array().unwrap().len(), 200);
}

// ------------------------------------------------------------------ composite

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composite_resolves_references_and_counts_once() {
    let org = Org::start(&[]).await;
    let before = org.stats().await;
    let body = json!({"compositeRequest": [
        {"method": "POST", "url": format!("{V}/sobjects/Account"), "referenceId": "acct", "body": {"Name": "Ref Co"}},
        {"method": "POST", "url": format!("{V}/sobjects/Contact"), "referenceId": "ct",
         "body": {"LastName": "Ref", "AccountId": "@{acct.id}"}},
        {"method": "GET", "url": format!("{V}/query?q=SELECT+Id,Account.Name+FROM+Contact+WHERE+Id='@{{ct.id}}'"), "referenceId": "q"},
        {"method": "PATCH", "url": format!("{V}/sobjects/Account/@{{q.records[0].Account.attributes.url}}"), "referenceId": "bad"},
        {"method": "PATCH", "url": format!("{V}/sobjects/Contact/@{{ct.id}}"), "referenceId": "old",
         "httpHeaders": {"If-Unmodified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}, "body": {"Title": "T"}},
        {"method": "GET", "url": format!("{V}/sobjects/Contact/@{{missing.id}}"), "referenceId": "dangling"},
    ]});
    let (s, b) = org
        .call(Method::POST, &format!("{V}/composite"), Some(body))
        .await;
    assert_eq!(s, 200);
    let out = b["compositeResponse"].as_array().unwrap();
    let codes: Vec<u64> = out
        .iter()
        .map(|r| r["httpStatusCode"].as_u64().unwrap())
        .collect();
    assert_eq!(&codes[..3], &[201, 201, 200]);
    assert_eq!(out[2]["body"]["records"][0]["Account"]["Name"], "Ref Co");
    assert!(out[0]["httpHeaders"]["Location"]
        .as_str()
        .unwrap()
        .ends_with(out[0]["body"]["id"].as_str().unwrap()));
    assert!(
        codes[3] >= 400,
        "a nonsense id fails only its own subrequest"
    );
    assert_eq!(
        codes[4], 412,
        "If-Unmodified-Since in httpHeaders is honoured"
    );
    assert_eq!(out[5]["httpStatusCode"], 400);
    assert_eq!(out[5]["body"][0]["errorCode"], "PROCESSING_HALTED");
    assert_eq!(out[5]["referenceId"], "dangling");
    let after = org.stats().await;
    let diff = |k: &str| {
        after["endpoints"][k].as_u64().unwrap() - before["endpoints"][k].as_u64().unwrap()
    };
    assert_eq!(
        after["api_requests_total"].as_u64().unwrap()
            - before["api_requests_total"].as_u64().unwrap(),
        1
    );
    assert_eq!(diff("composite"), 1);
    assert_eq!(
        diff("sobject_create") + diff("query"),
        0,
        "subrequests are not counted as calls"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composite_all_or_none_rolls_back_and_limits_apply() {
    let org = Org::start(&[]).await;
    let body = json!({"allOrNone": true, "compositeRequest": [
        {"method": "POST", "url": format!("{V}/sobjects/Account"), "referenceId": "a", "body": {"Name": "Rolled Back Co"}},
        {"method": "POST", "url": format!("{V}/sobjects/Opportunity"), "referenceId": "o", "body": opportunity(-1.0)},
        {"method": "POST", "url": format!("{V}/sobjects/Account"), "referenceId": "c", "body": {"Name": "Never"}},
    ]});
    let (_, b) = org
        .call(Method::POST, &format!("{V}/composite"), Some(body))
        .await;
    let out = b["compositeResponse"].as_array().unwrap();
    assert_eq!(out[0]["httpStatusCode"], 400);
    assert_eq!(out[0]["body"][0]["errorCode"], "PROCESSING_HALTED");
    assert_eq!(
        out[1]["body"][0]["errorCode"],
        "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    );
    assert_eq!(out[2]["body"][0]["errorCode"], "PROCESSING_HALTED");
    assert_eq!(
        org.query("SELECT COUNT() FROM Account").await["totalSize"],
        0
    );
    let deleted = org
        .http
        .get(org.url(&format!("{V}/queryAll")))
        .query(&[("q", "SELECT Id FROM Account")])
        .bearer_auth(&org.token)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(
        deleted["totalSize"], 0,
        "a rolled-back create is not in the recycle bin either"
    );

    let sub = |i: usize| json!({"method": "GET", "url": format!("{V}/limits"), "referenceId": format!("r{i}")});
    let (s, b) = org
        .call(
            Method::POST,
            &format!("{V}/composite"),
            Some(json!({"compositeRequest": (0..26).map(sub).collect::<Vec<_>>()})),
        )
        .await;
    assert_eq!((s.as_u16(), error_code(&b)), (400, "LIMIT_EXCEEDED"));
    let q = |i: usize| json!({"method": "GET", "url": format!("{V}/query?q=SELECT+Id+FROM+Account"), "referenceId": format!("q{i}")});
    let (s, _) = org
        .call(
            Method::POST,
            &format!("{V}/composite"),
            Some(json!({"compositeRequest": (0..6).map(q).collect::<Vec<_>>()})),
        )
        .await;
    assert_eq!(s, 400, "at most 5 queries");
    let (s, b) = org
        .call(
            Method::POST,
            &format!("{V}/composite"),
            Some(json!({"compositeRequest": (0..5).map(q).collect::<Vec<_>>()})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composite_batch_counts_each_subrequest() {
    let org = Org::start(&[]).await;
    let before = org.stats().await["api_requests_total"].as_u64().unwrap();
    let body = json!({"batchRequests": [
        {"method": "GET", "url": "v61.0/limits"},
        {"method": "POST", "url": "v61.0/sobjects/Contact", "richInput": {"FirstName": "x"}},
        {"method": "POST", "url": "v61.0/sobjects/Contact", "richInput": {"LastName": "ok"}},
    ]});
    let (s, b) = org
        .call(Method::POST, &format!("{V}/composite/batch"), Some(body))
        .await;
    assert_eq!(s, 200);
    assert_eq!(b["hasErrors"], true);
    let codes: Vec<u64> = b["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["statusCode"].as_u64().unwrap())
        .collect();
    assert_eq!(codes, vec![200, 400, 201]);
    assert_eq!(
        org.stats().await["api_requests_total"].as_u64().unwrap() - before,
        3
    );
}

// ------------------------------------------------------------------ bulk 2.0

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk2_query_pages_csv_with_locators() {
    let org = Org::start(&["--generate", "Account=5,Contact=250"]).await;
    let (s, job) = org
        .call(Method::POST, &format!("{V}/jobs/query"), Some(json!({"operation": "query", "query": "SELECT Id, LastName, Account.Name, IsDeleted FROM Contact"})))
        .await;
    assert_eq!(s, 200);
    assert_eq!(job["state"], "UploadComplete");
    let id = job["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("750"));
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
        .call(
            Method::POST,
            &format!("{V}/jobs/query"),
            Some(json!({"operation": "query", "query": "SELECT MailingAddress FROM Contact"})),
        )
        .await;
    assert_eq!((s.as_u16(), error_code(&b)), (400, "INVALID_FIELD"));
    let (s, _) = org
        .call(
            Method::POST,
            &format!("{V}/jobs/query"),
            Some(json!({"operation": "query", "query": "SELECT Id FROM Contact LIMIT 5 OFFSET 2"})),
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
    let (s, job) = org
        .call(Method::POST, &format!("{V}/jobs/ingest"), Some(json!({"object": "Contact", "operation": "insert", "contentType": "CSV", "lineEnding": "LF"})))
        .await;
    assert_eq!(s, 200);
    assert_eq!(job["state"], "Open");
    let id = job["id"].as_str().unwrap().to_string();
    let csv = "LastName,FirstName,Email\nLovelace,Ada,ada@example.com\n,Nobody,\n\"Hopper, Jr\",Grace,#N/A\n";
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
        .call(
            Method::POST,
            &format!("{V}/jobs/ingest"),
            Some(json!({"object": "Contact", "operation": "upsert"})),
        )
        .await;
    assert_eq!((s.as_u16(), error_code(&b)), (400, "INVALIDJOB"));
}

// ------------------------------------------------------------------ query

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_orders_pages_and_limits_like_salesforce() {
    let org = Org::start(&["--seed", "7", "--generate", "Account=20,Contact=3000"]).await;
    let all = org
        .query("SELECT Id, LastName FROM Contact ORDER BY LastName, Id")
        .await;
    assert_eq!(all["totalSize"], 3000);
    assert_eq!(all["done"], false);
    assert_eq!(all["records"].as_array().unwrap().len(), 2000);
    let next = all["nextRecordsUrl"].as_str().unwrap().to_string();
    let (s, more) = org.call(Method::GET, &next, None).await;
    assert_eq!(s, 200);
    assert_eq!(more["done"], true);
    assert!(more.get("nextRecordsUrl").is_none());
    let mut names: Vec<(String, String)> = all["records"]
        .as_array()
        .unwrap()
        .iter()
        .chain(more["records"].as_array().unwrap())
        .map(|r| {
            (
                r["LastName"].as_str().unwrap().to_string(),
                r["Id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let got = names.clone();
    names.sort_by(|a, b| {
        a.0.to_lowercase()
            .cmp(&b.0.to_lowercase())
            .then(a.0.cmp(&b.0))
            .then(a.1.cmp(&b.1))
    });
    assert_eq!(got, names);

    // LIMIT takes the first rows of the full order (a partial sort must agree).
    let top = org
        .query("SELECT Id, LastName FROM Contact ORDER BY LastName DESC, Id LIMIT 7 OFFSET 3")
        .await;
    let top: Vec<String> = top["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Id"].as_str().unwrap().to_string())
        .collect();
    let full = org
        .query("SELECT Id, LastName FROM Contact ORDER BY LastName DESC, Id LIMIT 10")
        .await;
    let full: Vec<String> = full["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(top, full[3..].to_vec());

    // Keyset paging by Id: strictly ascending, no gaps.
    let ids = org
        .query("SELECT Id FROM Contact ORDER BY Id DESC LIMIT 3")
        .await;
    let ids: Vec<&str> = ids["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Id"].as_str().unwrap())
        .collect();
    assert!(ids[0] > ids[1] && ids[1] > ids[2]);
    let after = org
        .query(&format!(
            "SELECT Id FROM Contact WHERE Id > '{}' ORDER BY Id",
            ids[2]
        ))
        .await;
    assert_eq!(after["totalSize"], 2);

    org.control(Method::POST, "expire_locators", json!({}))
        .await;
    let (s, b) = org.call(Method::GET, &next, None).await;
    assert_eq!((s.as_u16(), error_code(&b)), (400, "INVALID_QUERY_LOCATOR"));
}

// ------------------------------------------------------------------ bad input

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_errors_and_the_server_keeps_serving() {
    let org = Org::start(&["--generate", "Account=2"]).await;
    let send = |method: Method, path: String, body: &'static str| {
        let org = &org;
        async move {
            let r = org
                .http
                .request(method, org.url(&path))
                .bearer_auth(&org.token)
                .header("Content-Type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            let s = r.status().as_u16();
            (s, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let cases: Vec<(Method, String, &'static str, u16, &str)> = vec![
        (
            Method::POST,
            format!("{V}/sobjects/Contact"),
            "{not json",
            400,
            "JSON_PARSER_ERROR",
        ),
        (
            Method::POST,
            format!("{V}/sobjects/Contact"),
            "[1,2]",
            400,
            "JSON_PARSER_ERROR",
        ),
        (
            Method::POST,
            format!("{V}/sobjects/Contact"),
            "",
            400,
            "JSON_PARSER_ERROR",
        ),
        (
            Method::POST,
            format!("{V}/sobjects/Nope__c"),
            "{}",
            404,
            "NOT_FOUND",
        ),
        (
            Method::GET,
            format!("{V}/sobjects/Contact/0"),
            "",
            400,
            "MALFORMED_ID",
        ),
        (
            Method::GET,
            format!("{V}/query?q=SELECT+Id+FORM+Contact"),
            "",
            400,
            "MALFORMED_QUERY",
        ),
        (
            Method::GET,
            format!("{V}/query?q=SELECT+Nope+FROM+Contact"),
            "",
            400,
            "INVALID_FIELD",
        ),
        (
            Method::GET,
            format!("{V}/query?q=SELECT+Id+FROM+Nope"),
            "",
            400,
            "INVALID_TYPE",
        ),
        (
            Method::GET,
            format!("{V}/query?q="),
            "",
            400,
            "MALFORMED_QUERY",
        ),
        (
            Method::GET,
            format!("{V}/query?q=SELECT+Id+FROM+Contact+WHERE+Name+%3D+%27%5C"),
            "",
            400,
            "MALFORMED_QUERY",
        ),
        (
            Method::GET,
            format!("{V}/query/01gnonsense-2000"),
            "",
            400,
            "INVALID_QUERY_LOCATOR",
        ),
        (
            Method::POST,
            format!("{V}/composite"),
            "{\"compositeRequest\": 5}",
            400,
            "JSON_PARSER_ERROR",
        ),
        (
            Method::POST,
            format!("{V}/composite"),
            "{\"compositeRequest\": [{\"method\":\"GET\"}]}",
            400,
            "INVALID_INPUT",
        ),
        (
            Method::POST,
            format!("{V}/composite/sobjects"),
            "{\"records\": [1, \"x\", null]}",
            200,
            "",
        ),
        (
            Method::POST,
            format!("{V}/composite/batch"),
            "{\"batchRequests\": []}",
            400,
            "LIMIT_EXCEEDED",
        ),
        (
            Method::POST,
            format!("{V}/jobs/query"),
            "{\"operation\":\"query\",\"query\":\"SELECT\"}",
            400,
            "MALFORMED_QUERY",
        ),
        (
            Method::GET,
            format!("{V}/jobs/query/750000000000000AAA/results"),
            "",
            404,
            "NOT_FOUND",
        ),
        (
            Method::GET,
            "/services/data/v20.0/limits".to_string(),
            "",
            404,
            "NOT_FOUND",
        ),
        (
            Method::GET,
            format!(
                "{V}/sobjects/Contact/updated?start=2024-01-01T00:00:00Z&end=2024-01-01T00:00:30Z"
            ),
            "",
            400,
            "INVALID_REPLICATION_DATE",
        ),
        (
            Method::GET,
            format!("{V}/sobjects/Contact/deleted?start=yesterday&end=2024-01-01T00:00:30Z"),
            "",
            400,
            "INVALID_REPLICATION_DATE",
        ),
        (
            Method::PUT,
            format!("{V}/sobjects/Contact"),
            "{}",
            405,
            "METHOD_NOT_ALLOWED",
        ),
    ];
    for (method, path, body, status, code) in cases {
        let (s, b) = send(method.clone(), path.clone(), body).await;
        assert_eq!(s, status, "{method} {path} {body}: {b}");
        if !code.is_empty() {
            assert_eq!(error_code(&b), code, "{method} {path} {body}: {b}");
        } else {
            assert!(
                b.as_array().unwrap().iter().all(|r| r["success"] == false),
                "{b}"
            );
        }
    }
    // Still serving.
    assert_eq!(
        org.query("SELECT COUNT() FROM Account").await["totalSize"],
        2
    );
}

// ------------------------------------------------------------------ bulk 1.0

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

// ------------------------------------------------------------------ schema, long requests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_changes_show_in_describe_and_writes() {
    let org = Org::start(&[]).await;
    let r = org.raw(Method::GET, &format!("{V}/sobjects"), None).await;
    assert_eq!(r.status(), 200);
    let since = "Tue, 01 Jan 2030 00:00:00 GMT";
    let cached = org
        .http
        .get(org.url(&format!("{V}/sobjects")))
        .bearer_auth(&org.token)
        .header("If-Modified-Since", since)
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), 304);
    let now = org
        .http
        .get(org.url(&format!("{V}/sobjects/Contact/describe")))
        .bearer_auth(&org.token)
        .send()
        .await
        .unwrap();
    let stamp = now
        .headers()
        .get("last-modified")
        .map(|h| h.to_str().unwrap().to_string());
    let (s, _) = org
        .control(
            Method::POST,
            "schema/Contact/fields",
            json!({"name": "Badge__c", "type": "string", "length": 20, "externalId": true}),
        )
        .await;
    assert_eq!(s, 201);
    if let Some(stamp) = stamp {
        let r = org
            .http
            .get(org.url(&format!("{V}/sobjects/Contact/describe")))
            .bearer_auth(&org.token)
            .header("If-Modified-Since", stamp)
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            200,
            "a schema change invalidates If-Modified-Since"
        );
    }
    let (_, d) = org
        .call(Method::GET, &format!("{V}/sobjects/Contact/describe"), None)
        .await;
    let f = d["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "Badge__c")
        .unwrap()
        .clone();
    assert_eq!(
        (f["externalId"].clone(), f["custom"].clone()),
        (json!(true), json!(true))
    );
    let (s, b) = org
        .call(
            Method::PATCH,
            &format!("{V}/sobjects/Contact/Badge__c/B-7"),
            Some(json!({"LastName": "Upserted"})),
        )
        .await;
    assert_eq!((s.as_u16(), b["created"].clone()), (201, json!(true)));
    let q = org
        .query("SELECT LastName FROM Contact WHERE Badge__c = 'B-7'")
        .await;
    assert_eq!(q["records"][0]["LastName"], "Upserted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_requests_are_capped() {
    // Latency is set after start: it applies to the token call too.
    let org = Org::start(&["--long-request-limit", "1"]).await;
    org.control(Method::PUT, "limits", json!({"latency_ms": 20000}))
        .await;
    // A raw connection, so nothing on the client side outlives the test.
    let mut slow = tokio::net::TcpStream::connect(org.running.addr())
        .await
        .unwrap();
    let request = format!(
        "GET {V}/limits HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n",
        org.token
    );
    tokio::io::AsyncWriteExt::write_all(&mut slow, request.as_bytes())
        .await
        .unwrap();
    for _ in 0..500 {
        let (_, l) = org.control(Method::GET, "limits", json!({})).await;
        if l["long_requests_running"] == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let (s, b) = org.call(Method::GET, &format!("{V}/limits"), None).await;
    assert_eq!(
        (s.as_u16(), error_code(&b)),
        (403, "REQUEST_LIMIT_EXCEEDED")
    );
    assert_eq!(b[0]["message"], "ConcurrentPerOrgLongTxn Limit exceeded.");
    drop(slow);
    org.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_responses_and_per_record_faults() {
    let org = Org::start(&[]).await;
    // drop_after: the write happens, the client gets no response.
    org.control(
        Method::POST,
        "faults",
        json!({"kind": "drop_after", "count": 1, "path_contains": "/sobjects/Contact"}),
    )
    .await;
    let sent = org
        .http
        .post(org.url(&format!("{V}/sobjects/Contact")))
        .bearer_auth(&org.token)
        .json(&json!({"LastName": "Ghost"}))
        .send()
        .await;
    assert!(sent.is_err(), "the connection closes without an answer");
    assert_eq!(
        org.query("SELECT Id FROM Contact WHERE LastName = 'Ghost'")
            .await["totalSize"],
        1
    );

    // per_record: one record of a collection fails, the others go through.
    let (s, rules) = org
        .control(
            Method::POST,
            "faults",
            json!({"kind": "unable_to_lock_row", "count": 1, "per_record": true}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(rules["faults"][0]["per_record"], true);
    let body = json!({"records": [
        {"attributes": {"type": "Contact"}, "LastName": "L1"},
        {"attributes": {"type": "Contact"}, "LastName": "L2"},
    ]});
    let (s, b) = org
        .call(Method::POST, &format!("{V}/composite/sobjects"), Some(body))
        .await;
    assert_eq!(s, 200, "a per-record fault does not fail the request");
    assert_eq!(b[0]["errors"][0]["statusCode"], "UNABLE_TO_LOCK_ROW");
    assert_eq!(b[1]["success"], true);
    assert_eq!(
        org.query("SELECT Id FROM Contact WHERE LastName = 'L1'")
            .await["totalSize"],
        0
    );
}

// ------------------------------------------------------------------ jwt bearer

fn signed_jwt(key: &rsa::RsaPrivateKey, claims: &Value) -> String {
    use base64::Engine;
    use rsa::signature::{SignatureEncoding, Signer};
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let head = b64.encode(br#"{"alg":"RS256"}"#);
    let body = b64.encode(serde_json::to_vec(claims).unwrap());
    let signing = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(key.clone());
    let sig = signing.sign(format!("{head}.{body}").as_bytes()).to_bytes();
    format!("{head}.{body}.{}", b64.encode(sig))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_bearer_checks_signature_issuer_subject_audience_and_expiry() {
    use rsa::pkcs8::{EncodePublicKey, LineEnding};
    let mut rng = rand08::thread_rng();
    let key = rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap();
    let other = rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap();
    let dir = std::env::temp_dir().join(format!("sf-emu-jwt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pem = dir.join("jwt.pub");
    std::fs::write(
        &pem,
        key.to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap(),
    )
    .unwrap();
    let org = Org::start(&["--jwt-public-key", pem.to_str().unwrap()]).await;
    let exp = chrono::Utc::now().timestamp() + 300;
    let grant = |assertion: String| {
        let org = &org;
        async move {
            let r = org
                .http
                .post(org.url("/services/oauth2/token"))
                .form(&[
                    ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                    ("assertion", assertion.as_str()),
                ])
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let claims = |aud: Value, sub: &str, exp: i64| json!({"iss": "sequin-emulator", "sub": sub, "aud": aud, "exp": exp});
    for aud in [
        json!("https://login.salesforce.com"),
        json!("https://test.salesforce.com"),
        json!(org.running.base_url()),
    ] {
        let (s, b) = grant(signed_jwt(
            &key,
            &claims(aud.clone(), "admin@emulator.test", exp),
        ))
        .await;
        assert_eq!(s, 200, "aud {aud}: {b}");
        assert!(b["access_token"].as_str().is_some());
    }
    let (s, b) = grant(signed_jwt(
        &key,
        &claims(json!("https://evil.example"), "admin@emulator.test", exp),
    ))
    .await;
    assert_eq!(
        (s, b["error_description"].as_str()),
        (400, Some("audience is invalid"))
    );
    let (s, b) = grant(signed_jwt(
        &key,
        &claims(
            json!("https://login.salesforce.com"),
            "admin@emulator.test",
            exp - 600,
        ),
    ))
    .await;
    assert_eq!((s, b["error"].as_str()), (400, Some("invalid_grant")));
    let (s, _) = grant(signed_jwt(
        &key,
        &claims(json!("https://login.salesforce.com"), "someone@else", exp),
    ))
    .await;
    assert_eq!(s, 400);
    let (s, _) = grant(signed_jwt(
        &other,
        &claims(
            json!("https://login.salesforce.com"),
            "admin@emulator.test",
            exp,
        ),
    ))
    .await;
    assert_eq!(s, 400, "signed by a key the org does not trust");
    let _ = std::fs::remove_dir_all(&dir);
}

// ------------------------------------------------------------------ generation

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_data_is_deterministic_and_related() {
    let soql = "SELECT Id, FirstName, LastName, Email, Account.Name, MailingCity, Birthdate FROM Contact ORDER BY Id";
    let a = Org::start(&["--seed", "5", "--generate", "Account=10,Contact=300"]).await;
    let b = Org::start(&["--seed", "5", "--generate", "Contact=300,Account=10"]).await;
    let c = Org::start(&["--seed", "6", "--generate", "Account=10,Contact=300"]).await;
    let (ra, rb, rc) = (
        a.query(soql).await,
        b.query(soql).await,
        c.query(soql).await,
    );
    let strip = |v: &Value| -> Vec<Value> {
        v["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let mut r = r.clone();
                r.as_object_mut().unwrap().remove("attributes");
                r
            })
            .collect()
    };
    assert_eq!(
        strip(&ra),
        strip(&rb),
        "same seed, same org (whatever the --generate order)"
    );
    assert_ne!(strip(&ra), strip(&rc), "another seed, another org");
    let records = strip(&ra);
    let with_account = records.iter().filter(|r| r["Account"].is_object()).count();
    assert!(
        with_account > 250,
        "contacts belong to accounts: {with_account}/300"
    );
    assert!(
        records.iter().all(|r| r["LastName"].is_string()),
        "required fields are filled"
    );
    let emails: std::collections::HashSet<&str> =
        records.iter().filter_map(|r| r["Email"].as_str()).collect();
    assert!(
        emails.len() > 250,
        "emails look like people's, mostly distinct"
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
    let all = org
        .http
        .get(org.url(&format!("{V}/queryAll")))
        .query(&[("q", "SELECT Id, IsDeleted FROM Contact")])
        .bearer_auth(&org.token)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(
        all["totalSize"], 1,
        "the hard-deleted record is gone, the deleted one is in the bin"
    );
    assert_eq!(all["records"][0]["Id"], id1.as_str());
    assert_eq!(all["records"][0]["IsDeleted"], true);
}
