//! What Salesforce does with queries that select unbounded or very wide field sets, and
//! with queries that run too long (the `query_timeout` fault).

mod support;

use reqwest::Method;
use serde_json::{json, Value};
use support::{error_code, Org, V};

async fn query_raw(org: &Org, path: &str, soql: Option<&str>) -> (u16, Value) {
    let mut r = org.http.get(org.url(path)).bearer_auth(&org.token);
    if let Some(q) = soql {
        r = r.query(&[("q", q)]);
    }
    let r = r.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn soql(org: &Org, q: &str) -> (u16, Value) {
    query_raw(org, &format!("{V}/query"), Some(q)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_all_and_custom_need_a_limit_of_at_most_200() {
    let org = Org::start(&["--generate", "Contact=250"]).await;
    for q in [
        "SELECT FIELDS(ALL) FROM Contact",
        "SELECT FIELDS(ALL) FROM Contact LIMIT 201",
        "SELECT Id, FIELDS(CUSTOM) FROM Contact",
    ] {
        let (s, b) = soql(&org, q).await;
        assert_eq!((s, error_code(&b)), (400, "MALFORMED_QUERY"), "{q}");
        assert_eq!(
            b[0]["message"],
            "The SOQL FIELDS function must have a LIMIT of at most 200"
        );
    }
    let (s, b) = soql(&org, "SELECT FIELDS(ALL) FROM Contact LIMIT 200").await;
    assert_eq!((s, b["totalSize"].as_u64()), (200, Some(200)));
    let (s, b) = soql(&org, "SELECT FIELDS(CUSTOM) FROM Contact LIMIT 10").await;
    assert_eq!((s, b["totalSize"].as_u64()), (200, Some(10)));
    let (s, b) = soql(&org, "SELECT FIELDS(STANDARD) FROM Contact").await;
    assert_eq!(
        (s, b["totalSize"].as_u64()),
        (200, Some(250)),
        "no LIMIT needed"
    );
    let (s, b) = org
        .post(
            "jobs/query",
            json!({"operation": "query", "query": "SELECT FIELDS(ALL) FROM Contact"}),
        )
        .await;
    assert_eq!((s.as_u16(), error_code(&b)), (400, "MALFORMED_QUERY"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_long_text_fields_cap_pages_at_200_records() {
    let org = Org::start(&["--generate", "Contact=450"]).await;
    for name in ["Story__c", "Notes__c"] {
        let (s, b) = org
            .control(
                Method::POST,
                "schema/Contact/fields",
                json!({"name": name, "type": "textarea", "length": 32768}),
            )
            .await;
        assert_eq!(s, 201, "{b}");
    }
    let (s, b) = soql(&org, "SELECT Id, Story__c FROM Contact").await;
    assert_eq!(s, 200);
    assert_eq!(
        b["records"].as_array().unwrap().len(),
        450,
        "one long text field: no cap"
    );
    let (s, first) = soql(&org, "SELECT Id, Story__c, Notes__c FROM Contact").await;
    assert_eq!(s, 200);
    assert_eq!(first["totalSize"], 450);
    assert_eq!(first["records"].as_array().unwrap().len(), 200);
    let mut next = first["nextRecordsUrl"].as_str().unwrap().to_string();
    let mut sizes = vec![200];
    loop {
        let (s, page) = query_raw(&org, &next, None).await;
        assert_eq!(s, 200);
        sizes.push(page["records"].as_array().unwrap().len());
        match page["nextRecordsUrl"].as_str() {
            Some(n) => next = n.to_string(),
            None => break,
        }
    }
    assert_eq!(sizes, vec![200, 200, 50]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_timeouts_hit_soql_queries_only() {
    let org = Org::start(&["--generate", "Contact=2500"]).await;
    let (s, first) = soql(&org, "SELECT Id FROM Contact").await;
    assert_eq!(s, 200);
    let next = first["nextRecordsUrl"].as_str().unwrap().to_string();
    let (s, _) = org
        .control(
            Method::POST,
            "faults",
            json!({"kind": "query_timeout", "count": 2}),
        )
        .await;
    assert_eq!(s, 200);
    // Not a query: untouched.
    let (s, _) = org
        .call(Method::GET, &format!("{V}/sobjects/Contact/describe"), None)
        .await;
    assert_eq!(s, 200);
    let (s, b) = org
        .post(
            "jobs/query",
            json!({"operation": "query", "query": "SELECT Id FROM Contact"}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    for (path, q) in [
        (format!("{V}/query"), Some("SELECT Id FROM Contact")),
        (next.clone(), None),
    ] {
        let (s, b) = query_raw(&org, &path, q).await;
        assert_eq!((s, error_code(&b)), (400, "QUERY_TIMEOUT"), "{path}");
        assert_eq!(
            b[0]["message"],
            "Your query request was running for too long."
        );
    }
    // Spent: the same locator still serves its page.
    let (s, page) = query_raw(&org, &next, None).await;
    assert_eq!(
        (s, page["records"].as_array().map(Vec::len)),
        (200, Some(500))
    );
}

/// A field list `n` fields long, each named like a long custom field (the emulator
/// answers an unknown field with INVALID_FIELD, so the URI check must come first).
fn wide_select(n: usize) -> String {
    let fields: Vec<String> = (0..n)
        .map(|i| format!("Custom_Field_With_A_Long_Name_{i:04}__c"))
        .collect();
    format!("SELECT Id, {} FROM Contact", fields.join(", "))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uris_and_soql_past_salesforces_lengths_are_refused_as_salesforce_does() {
    let org = Org::start(&["--generate", "Contact=3"]).await;
    let get = |q: String, extra: usize| {
        let r = org
            .http
            .get(org.url(&format!("{V}/query")))
            .bearer_auth(&org.token)
            .header("X-Padding", "p".repeat(extra))
            .query(&[("q", q)]);
        async move {
            let r = r.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.text().await.unwrap())
        }
    };
    // 800 fields of 38 characters: ~31,000 characters, past 16,384 bytes of URI
    let (s, body) = get(wide_select(800), 1).await;
    assert_eq!(s, 414);
    assert!(body.contains("URI Too Long"), "{body}");
    // a URI that fits alone but not with the headers
    let (s, body) = get(wide_select(300), 6_000).await;
    assert_eq!(s, 431);
    assert!(body.contains("Request Header Fields Too Large"), "{body}");
    // under both: the query itself is read (and these fields do not exist)
    let (s, body) = get(wide_select(300), 1).await;
    assert_eq!(s, 400);
    assert!(body.contains("INVALID_FIELD"), "{body}");
    // in a body (a Bulk job) only the SOQL limit applies: 100,000 characters
    let (s, b) = org
        .post(
            "jobs/query",
            json!({"operation": "query", "query": wide_select(2_700)}),
        )
        .await;
    assert_eq!((s.as_u16(), error_code(&b)), (400, "MALFORMED_QUERY"));
    assert!(b[0]["message"]
        .as_str()
        .unwrap()
        .contains("100000 characters"));
}
