//! Cross-object formula fields (`POST /__emulator/schema/{Object}/fields` with a
//! `formula`): worked out when read, so they follow the record they read at once in
//! every read path, while the reading record's SystemModstamp and LastModifiedDate
//! stay put and `/updated` does not list it.

mod support;

use reqwest::Method;
use serde_json::{json, Value};
use support::{error_code, Org, V};

async fn add_field(org: &Org, obj: &str, body: Value) -> (u16, Value) {
    let (s, b) = org
        .control(Method::POST, &format!("schema/{obj}/fields"), body)
        .await;
    (s.as_u16(), b)
}

async fn create(org: &Org, obj: &str, rec: Value) -> String {
    let (s, b) = org.post(&format!("sobjects/{obj}"), rec).await;
    assert_eq!(s, 201, "{b}");
    b["id"].as_str().unwrap().to_string()
}

async fn update(org: &Org, obj: &str, id: &str, body: Value) {
    let (s, b) = org
        .call(
            Method::PATCH,
            &format!("{V}/sobjects/{obj}/{id}"),
            Some(body),
        )
        .await;
    assert_eq!(s, 204, "{b}");
}

async fn get(org: &Org, obj: &str, id: &str) -> Value {
    let (s, b) = org
        .call(Method::GET, &format!("{V}/sobjects/{obj}/{id}"), None)
        .await;
    assert_eq!(s, 200, "{b}");
    b
}

/// A Bulk API 2.0 query's CSV result (one page).
async fn bulk2_csv(org: &Org, soql: &str) -> String {
    let (s, job) = org
        .post("jobs/query", json!({"operation": "query", "query": soql}))
        .await;
    assert_eq!(s, 200, "{job}");
    let id = job["id"].as_str().unwrap();
    for _ in 0..100 {
        let (_, info) = org
            .call(Method::GET, &format!("{V}/jobs/query/{id}"), None)
            .await;
        if info["state"] == "JobComplete" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let r = org
        .raw(Method::GET, &format!("{V}/jobs/query/{id}/results"), None)
        .await;
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

fn stamp_ms(v: &Value) -> i64 {
    chrono::DateTime::parse_from_str(v.as_str().unwrap(), "%Y-%m-%dT%H:%M:%S%.3f%z")
        .unwrap()
        .timestamp_millis()
}

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

async fn updated_ids(org: &Org, obj: &str, start_ms: i64) -> Vec<String> {
    let r = org
        .http
        .get(org.url(&format!("{V}/sobjects/{obj}/updated/")))
        .query(&[("start", iso(start_ms)), ("end", iso(start_ms + 120_000))])
        .bearer_auth(&org.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let b: Value = r.json().await.unwrap();
    b["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_object_formula_follows_parent_without_touching_child() {
    let org = Org::start(&[]).await;
    let (s, b) = add_field(
        &org,
        "Contact",
        json!({"name": "Account_Name__c", "type": "string", "formula": "Account.Name"}),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let (s, b) = add_field(
        &org,
        "Contact",
        json!({"name": "Parent_Name__c", "type": "string", "formula": "Account.Parent.Name"}),
    )
    .await;
    assert_eq!(s, 201, "{b}");

    let parent = create(&org, "Account", json!({"Name": "Holding"})).await;
    let acct = create(&org, "Account", json!({"Name": "Acme", "ParentId": parent})).await;
    let contact = create(
        &org,
        "Contact",
        json!({"LastName": "Lee", "AccountId": acct}),
    )
    .await;
    let orphan = create(&org, "Contact", json!({"LastName": "Solo"})).await;

    let before = get(&org, "Contact", &contact).await;
    assert_eq!(before["Account_Name__c"], "Acme");
    assert_eq!(before["Parent_Name__c"], "Holding");
    assert_eq!(
        get(&org, "Contact", &orphan).await["Account_Name__c"],
        Value::Null
    );

    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let after_create = stamp_ms(&before["SystemModstamp"]) + 1;
    update(&org, "Account", &acct, json!({"Name": "Acme Renamed"})).await;
    update(&org, "Account", &parent, json!({"Name": "Holding II"})).await;

    // sObject GET.
    let after = get(&org, "Contact", &contact).await;
    assert_eq!(after["Account_Name__c"], "Acme Renamed");
    assert_eq!(after["Parent_Name__c"], "Holding II");
    assert_eq!(after["SystemModstamp"], before["SystemModstamp"]);
    assert_eq!(after["LastModifiedDate"], before["LastModifiedDate"]);

    // REST query and queryAll, with the formula in WHERE and ORDER BY too.
    let soql = format!(
        "SELECT Id, Account_Name__c, Parent_Name__c, SystemModstamp, LastModifiedDate FROM Contact WHERE Id = '{contact}'"
    );
    for q in [org.query(&soql).await, org.query_all(&soql).await] {
        let r = &q["records"][0];
        assert_eq!(r["Account_Name__c"], "Acme Renamed");
        assert_eq!(r["Parent_Name__c"], "Holding II");
        assert_eq!(r["SystemModstamp"], before["SystemModstamp"]);
        assert_eq!(r["LastModifiedDate"], before["LastModifiedDate"]);
    }
    let q = org
        .query("SELECT Id FROM Contact WHERE Account_Name__c = 'Acme Renamed' ORDER BY Account_Name__c")
        .await;
    assert_eq!(q["totalSize"], 1);
    assert_eq!(q["records"][0]["Id"], contact.as_str());
    // Through a relationship, and with FIELDS(ALL).
    let q = org
        .query(&format!(
            "SELECT ReportsTo.Account_Name__c, FIELDS(ALL) FROM Contact WHERE Id = '{contact}' LIMIT 1"
        ))
        .await;
    assert_eq!(q["records"][0]["Account_Name__c"], "Acme Renamed");

    // Bulk API 2.0.
    let csv = bulk2_csv(
        &org,
        &format!("SELECT Id, Account_Name__c, Parent_Name__c FROM Contact WHERE Id = '{contact}'"),
    )
    .await;
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "\"Id\",\"Account_Name__c\",\"Parent_Name__c\"");
    assert_eq!(
        lines[1],
        format!("\"{contact}\",\"Acme Renamed\",\"Holding II\"")
    );

    // Composite and sObject Collections retrieve read the same way.
    let (s, b) = org
        .post(
            "composite",
            json!({"compositeRequest": [{"method": "GET", "referenceId": "c",
                "url": format!("{V}/sobjects/Contact/{contact}?fields=Account_Name__c")}]}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b["compositeResponse"][0]["body"]["Account_Name__c"],
        "Acme Renamed"
    );
    let (s, b) = org
        .call(
            Method::GET,
            &format!("{V}/composite/sobjects/Contact?ids={contact}&fields=Account_Name__c"),
            None,
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b[0]["Account_Name__c"], "Acme Renamed");

    // The Accounts changed; the Contact did not, so /updated does not list it.
    let ids = updated_ids(&org, "Contact", after_create).await;
    assert!(!ids.contains(&contact), "{ids:?}");
    let ids = updated_ids(&org, "Account", after_create).await;
    assert!(ids.contains(&acct) && ids.contains(&parent), "{ids:?}");

    // Moving the Contact to no Account is a change of the Contact itself.
    update(&org, "Contact", &contact, json!({"AccountId": null})).await;
    let moved = get(&org, "Contact", &contact).await;
    assert_eq!(moved["Account_Name__c"], Value::Null);
    assert!(stamp_ms(&moved["SystemModstamp"]) > stamp_ms(&before["SystemModstamp"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn formula_fields_are_described_and_read_only() {
    let org = Org::start(&[]).await;
    let (s, b) = add_field(
        &org,
        "Contact",
        json!({"name": "Account_Rating__c", "type": "string", "formula": "TEXT(Account.Rating)"}),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let (s, b) = add_field(
        &org,
        "Contact",
        json!({"name": "Account_Employees__c", "type": "double", "formula": "Account.NumberOfEmployees"}),
    )
    .await;
    assert_eq!(s, 201, "{b}");

    let (_, d) = org
        .call(Method::GET, &format!("{V}/sobjects/Contact/describe"), None)
        .await;
    let f = d["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "Account_Rating__c")
        .unwrap();
    assert_eq!(f["type"], "string");
    assert_eq!(f["calculated"], true);
    assert_eq!(f["calculatedFormula"], "TEXT(Account.Rating)");
    assert_eq!(f["createable"], false);
    assert_eq!(f["updateable"], false);
    assert_eq!(f["nillable"], true);
    assert_eq!(f["filterable"], true);
    assert_eq!(f["custom"], true);

    let acct = create(
        &org,
        "Account",
        json!({"Name": "Acme", "Rating": "Hot", "NumberOfEmployees": 12}),
    )
    .await;
    let contact = create(
        &org,
        "Contact",
        json!({"LastName": "Lee", "AccountId": acct}),
    )
    .await;
    let c = get(&org, "Contact", &contact).await;
    assert_eq!(c["Account_Rating__c"], "Hot");
    assert_eq!(c["Account_Employees__c"], json!(12.0));

    // Writes to a formula are refused like those to any calculated field.
    let (s, b) = org
        .post(
            "sobjects/Contact",
            json!({"LastName": "X", "Account_Rating__c": "Cold"}),
        )
        .await;
    assert_eq!(
        (s.as_u16(), error_code(&b)),
        (400, "INVALID_FIELD_FOR_INSERT_UPDATE")
    );
    let (s, b) = org
        .call(
            Method::PATCH,
            &format!("{V}/sobjects/Contact/{contact}"),
            Some(json!({"Account_Rating__c": "Cold"})),
        )
        .await;
    assert_eq!(
        (s.as_u16(), error_code(&b)),
        (400, "INVALID_FIELD_FOR_INSERT_UPDATE")
    );
    assert_eq!(
        get(&org, "Contact", &contact).await["Account_Rating__c"],
        "Hot"
    );

    // Bad formulas are refused when the field is added.
    for (body, why) in [
        (
            json!({"name": "A__c", "type": "string", "formula": "Account.Nope"}),
            "no field",
        ),
        (
            json!({"name": "B__c", "type": "string", "formula": "Acount.Name"}),
            "no relationship",
        ),
        (
            json!({"name": "C__c", "type": "double", "formula": "Account.Name"}),
            "type",
        ),
        (
            json!({"name": "D__c", "type": "string", "formula": "Account.Name & 'x'"}),
            "path",
        ),
        (
            json!({"name": "E__c", "type": "string", "formula": "Account_Rating__c"}),
            "formula",
        ),
    ] {
        let (s, b) = add_field(&org, "Contact", body.clone()).await;
        assert_eq!(s, 400, "{body} was accepted: {b}");
        assert!(b["error"].as_str().unwrap().contains(why), "{b}");
    }
}
