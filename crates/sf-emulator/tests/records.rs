//! Records, validation, ids, SOQL paging, schema changes and generated data over HTTP.

mod support;

use reqwest::Method;
use serde_json::{json, Value};
use support::{error_code, opportunity, Org, V};

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
