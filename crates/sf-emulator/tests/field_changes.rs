//! An administrator changes field types and field-level security
//! (`PATCH /__emulator/schema/{Object}/fields/{Field}`).

mod support;

use reqwest::Method;
use serde_json::{json, Value};
use support::{error_code, Org, V};

async fn describe_field(org: &Org, obj: &str, field: &str) -> Option<Value> {
    let (s, d) = org
        .call(Method::GET, &format!("{V}/sobjects/{obj}/describe"), None)
        .await;
    assert_eq!(s, 200);
    d["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == field)
        .cloned()
}

async fn change(org: &Org, obj: &str, field: &str, body: Value) -> (u16, Value) {
    let (s, b) = org
        .control(Method::PATCH, &format!("schema/{obj}/fields/{field}"), body)
        .await;
    (s.as_u16(), b)
}

async fn add_field(org: &Org, obj: &str, body: Value) {
    let (s, b) = org
        .control(Method::POST, &format!("schema/{obj}/fields"), body)
        .await;
    assert_eq!(s, 201, "{b}");
}

async fn create(org: &Org, obj: &str, rec: Value) -> String {
    let (s, b) = org
        .control(Method::POST, &format!("records/{obj}"), json!([rec]))
        .await;
    assert_eq!(s, 201, "{b}");
    b["ids"][0].as_str().unwrap().to_string()
}

async fn value(org: &Org, obj: &str, field: &str, id: &str) -> Value {
    let q = org
        .query(&format!("SELECT {field} FROM {obj} WHERE Id = '{id}'"))
        .await;
    q["records"][0][field].clone()
}

/// A SOQL query's error: (status, errorCode, message).
async fn query_error(org: &Org, soql: &str) -> (u16, String, String) {
    let r = org
        .http
        .get(org.url(&format!("{V}/query")))
        .query(&[("q", soql)])
        .bearer_auth(&org.token)
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    let b: Value = r.json().await.unwrap();
    (
        s,
        error_code(&b).to_string(),
        b[0]["message"].as_str().unwrap_or("").to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn field_types_change_and_values_follow() {
    let org = Org::start(&[]).await;
    add_field(
        &org,
        "Contact",
        json!({"name": "Notes__c", "type": "string", "length": 255}),
    )
    .await;
    add_field(
        &org,
        "Contact",
        json!({"name": "Tier__c", "type": "string", "length": 40}),
    )
    .await;
    add_field(
        &org,
        "Contact",
        json!({"name": "Score__c", "type": "double", "precision": 18, "scale": 2}),
    )
    .await;
    add_field(
        &org,
        "Contact",
        json!({"name": "Code__c", "type": "string", "length": 20}),
    )
    .await;
    let a = create(
        &org,
        "Contact",
        json!({"LastName": "A", "Notes__c": "long story", "Tier__c": "Gold", "Score__c": 12.34, "Code__c": "42"}),
    )
    .await;
    let b = create(
        &org,
        "Contact",
        json!({"LastName": "B", "Tier__c": "Platinum", "Score__c": 12345.5, "Code__c": "n/a"}),
    )
    .await;

    // Text -> Long Text Area: the values stay; describe shows a long text area.
    let (s, r) = change(&org, "Contact", "Notes__c", json!({"type": "textarea"})).await;
    assert_eq!((s, r["type"].as_str()), (200, Some("textarea")), "{r}");
    let d = describe_field(&org, "Contact", "Notes__c").await.unwrap();
    assert_eq!(
        (
            d["type"].as_str(),
            d["length"].as_u64(),
            d["filterable"].as_bool()
        ),
        (Some("textarea"), Some(32768), Some(false))
    );
    assert_eq!(value(&org, "Contact", "Notes__c", &a).await, "long story");

    // Text -> Picklist: the list is the one given; records keep their values.
    let (s, _) = change(
        &org,
        "Contact",
        "Tier__c",
        json!({"type": "picklist", "values": ["Gold", "Silver"]}),
    )
    .await;
    assert_eq!(s, 200);
    let d = describe_field(&org, "Contact", "Tier__c").await.unwrap();
    assert_eq!(d["type"], "picklist");
    let vals: Vec<&str> = d["picklistValues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["value"].as_str().unwrap())
        .collect();
    assert_eq!(vals, ["Gold", "Silver"]);
    assert_eq!(value(&org, "Contact", "Tier__c", &b).await, "Platinum");

    // Number precision: fewer decimals round, too many digits are lost.
    let (s, _) = change(
        &org,
        "Contact",
        "Score__c",
        json!({"precision": 4, "scale": 0}),
    )
    .await;
    assert_eq!(s, 200);
    let d = describe_field(&org, "Contact", "Score__c").await.unwrap();
    assert_eq!(
        (d["precision"].as_u64(), d["scale"].as_u64()),
        (Some(4), Some(0))
    );
    assert_eq!(value(&org, "Contact", "Score__c", &a).await, json!(12.0));
    assert_eq!(value(&org, "Contact", "Score__c", &b).await, Value::Null);

    // Text -> Number: what parses is kept, the rest is lost.
    let (s, _) = change(
        &org,
        "Contact",
        "Code__c",
        json!({"type": "double", "precision": 18, "scale": 0}),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(value(&org, "Contact", "Code__c", &a).await, json!(42.0));
    assert_eq!(value(&org, "Contact", "Code__c", &b).await, Value::Null);
    // ...and to a whole number, rounded.
    let (s, _) = change(&org, "Contact", "Code__c", json!({"type": "int"})).await;
    assert_eq!(s, 200);
    assert_eq!(value(&org, "Contact", "Code__c", &a).await, json!(42));
    let q = org.query("SELECT Id FROM Contact WHERE Code__c > 40").await;
    assert_eq!(q["totalSize"], 1, "filters use the new type");

    // Standard fields keep their type; unknown types and fields are refused.
    assert_eq!(
        change(&org, "Contact", "LastName", json!({"type": "picklist"}))
            .await
            .0,
        400
    );
    assert_eq!(
        change(&org, "Contact", "Notes__c", json!({"type": "blob"}))
            .await
            .0,
        400
    );
    assert_eq!(
        change(&org, "Contact", "Nope__c", json!({"type": "string"}))
            .await
            .0,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookup_becomes_master_detail_when_every_record_has_a_parent() {
    let org = Org::start(&[]).await;
    add_field(
        &org,
        "Contact",
        json!({"name": "Sponsor__c", "type": "reference", "referenceTo": "Account"}),
    )
    .await;
    let acct = create(&org, "Account", json!({"Name": "Acme"})).await;
    let c1 = create(
        &org,
        "Contact",
        json!({"LastName": "One", "Sponsor__c": acct}),
    )
    .await;
    let c2 = create(&org, "Contact", json!({"LastName": "Two"})).await;
    let d = describe_field(&org, "Contact", "Sponsor__c").await.unwrap();
    assert_eq!(
        (d["nillable"].as_bool(), d["cascadeDelete"].as_bool()),
        (Some(true), Some(false))
    );

    let (s, r) = change(&org, "Contact", "Sponsor__c", json!({"masterDetail": true})).await;
    assert_eq!(s, 400, "a record without a parent: {r}");
    let (s, _) = org
        .control(
            Method::PATCH,
            &format!("records/Contact/{c2}"),
            json!({"Sponsor__c": acct}),
        )
        .await;
    assert_eq!(s, 204);
    let (s, r) = change(&org, "Contact", "Sponsor__c", json!({"masterDetail": true})).await;
    assert_eq!((s, r["masterDetail"].as_bool()), (200, Some(true)), "{r}");
    let d = describe_field(&org, "Contact", "Sponsor__c").await.unwrap();
    assert_eq!(
        (
            d["type"].as_str(),
            d["nillable"].as_bool(),
            d["cascadeDelete"].as_bool()
        ),
        (Some("reference"), Some(false), Some(true))
    );
    let (_, ad) = org
        .call(Method::GET, &format!("{V}/sobjects/Account/describe"), None)
        .await;
    let child = ad["childRelationships"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["field"] == "Sponsor__c")
        .unwrap();
    assert_eq!(child["cascadeDelete"], true);
    assert_eq!(
        value(&org, "Contact", "Sponsor__c", &c1).await,
        acct.as_str()
    );
    // A required relationship: a new detail record without a master is refused.
    let (s, b) = org
        .post("sobjects/Contact", json!({"LastName": "Orphan"}))
        .await;
    assert_eq!(
        (s.as_u16(), error_code(&b)),
        (400, "REQUIRED_FIELD_MISSING")
    );
    // Deleting the master deletes its details (to the recycle bin).
    let other = create(&org, "Account", json!({"Name": "Other"})).await;
    let kept = create(
        &org,
        "Contact",
        json!({"LastName": "Kept", "Sponsor__c": other}),
    )
    .await;
    let (s, _) = org
        .call(
            Method::DELETE,
            &format!("{V}/sobjects/Account/{acct}"),
            None,
        )
        .await;
    assert_eq!(s, 204);
    let all = org
        .query_all("SELECT Id, IsDeleted FROM Contact ORDER BY LastName")
        .await;
    let state: Vec<(String, bool)> = all["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["Id"].as_str().unwrap().to_string(),
                r["IsDeleted"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(state, vec![(kept, false), (c1, true), (c2, true)]);
    // A relationship stays a relationship.
    assert_eq!(
        change(&org, "Contact", "Sponsor__c", json!({"type": "string"}))
            .await
            .0,
        400
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_field_hidden_by_field_level_security_is_absent_as_if_it_did_not_exist() {
    let org = Org::start(&[]).await;
    let id = create(
        &org,
        "Contact",
        json!({"LastName": "Lovelace", "Title": "Countess"}),
    )
    .await;
    let missing = query_error(&org, "SELECT Id, Nope FROM Contact").await;
    assert_eq!((missing.0, missing.1.as_str()), (400, "INVALID_FIELD"));

    let (s, r) = change(&org, "Contact", "Title", json!({"hidden": true})).await;
    assert_eq!((s, r["hidden"].as_bool()), (200, Some(true)), "{r}");
    assert!(describe_field(&org, "Contact", "Title").await.is_none());
    let hidden = query_error(&org, "SELECT Id, Title FROM Contact").await;
    assert_eq!(
        (hidden.0, hidden.1.as_str(), hidden.2.clone()),
        (400, "INVALID_FIELD", missing.2.replace("Nope", "Title")),
        "the same answer as for a field that does not exist"
    );
    let q = org.query("SELECT FIELDS(ALL) FROM Contact LIMIT 200").await;
    assert!(
        q["records"][0].get("Title").is_none(),
        "{}",
        q["records"][0]
    );
    let (_, rec) = org
        .call(Method::GET, &format!("{V}/sobjects/Contact/{id}"), None)
        .await;
    assert!(rec.get("Title").is_none() && rec["LastName"] == "Lovelace");
    let (s, b) = org
        .call(
            Method::PATCH,
            &format!("{V}/sobjects/Contact/{id}"),
            Some(json!({"Title": "Duchess"})),
        )
        .await;
    assert_eq!((s.as_u16(), error_code(&b)), (400, "INVALID_FIELD"));
    let (s, b) = org
        .post(
            "jobs/query",
            json!({"operation": "query", "query": "SELECT Id, Title FROM Contact"}),
        )
        .await;
    assert_eq!((s.as_u16(), error_code(&b)), (400, "INVALID_FIELD"));

    // Shown again, with its values.
    let (s, _) = change(&org, "Contact", "Title", json!({"hidden": false})).await;
    assert_eq!(s, 200);
    assert!(describe_field(&org, "Contact", "Title").await.is_some());
    assert_eq!(value(&org, "Contact", "Title", &id).await, "Countess");

    // Required and name fields are seen by everyone.
    assert_eq!(
        change(&org, "Contact", "LastName", json!({"hidden": true}))
            .await
            .0,
        400
    );
    assert_eq!(
        change(&org, "Account", "Name", json!({"hidden": true}))
            .await
            .0,
        400
    );
}
