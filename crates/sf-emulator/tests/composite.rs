//! sObject Collections, `/composite` and `/composite/batch` over HTTP.

mod support;

use reqwest::Method;
use serde_json::{json, Value};
use support::{error_code, opportunity, Org, V};

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
    let deleted = org.query_all("SELECT Id FROM Account").await;
    assert_eq!(
        deleted["totalSize"], 0,
        "a rolled-back create is not in the recycle bin either"
    );

    let sub = |i: usize| json!({"method": "GET", "url": format!("{V}/limits"), "referenceId": format!("r{i}")});
    let (s, b) = org
        .post(
            "composite",
            json!({"compositeRequest": (0..26).map(sub).collect::<Vec<_>>()}),
        )
        .await;
    assert_eq!((s.as_u16(), error_code(&b)), (400, "LIMIT_EXCEEDED"));
    let q = |i: usize| json!({"method": "GET", "url": format!("{V}/query?q=SELECT+Id+FROM+Account"), "referenceId": format!("q{i}")});
    let (s, _) = org
        .post(
            "composite",
            json!({"compositeRequest": (0..6).map(q).collect::<Vec<_>>()}),
        )
        .await;
    assert_eq!(s, 400, "at most 5 queries");
    let (s, b) = org
        .post(
            "composite",
            json!({"compositeRequest": (0..5).map(q).collect::<Vec<_>>()}),
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
