//! The seed-list objects modelled from Salesforce's documentation (catalog.txt): their
//! describes, generated data, refusals and base64 blobs.

mod support;

use reqwest::Method;
use serde_json::{json, Value};
use support::{error_code, Org, V};

fn field_names(describe: &Value) -> Vec<String> {
    describe["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describes_hold_the_documented_cursor_fields_and_flags() {
    let org = Org::start(&[]).await;
    let d = |o: &str| {
        let org = &org;
        let path = format!("{V}/sobjects/{o}/describe");
        async move {
            let (s, b) = org.call(Method::GET, &path, None).await;
            assert_eq!(s, 200, "{path}");
            b
        }
    };
    // History rows: CreatedDate only.
    for o in ["CaseHistory", "OpportunityFieldHistory", "Opportunity__hd"] {
        let b = d(o).await;
        let names = field_names(&b);
        assert!(names.contains(&"CreatedDate".to_string()), "{o}");
        assert!(!names.contains(&"SystemModstamp".to_string()), "{o}");
        assert!(!names.contains(&"LastModifiedDate".to_string()), "{o}");
        assert_eq!(
            (
                b["createable"].clone(),
                b["updateable"].clone(),
                b["deletable"].clone()
            ),
            (json!(false), json!(false), json!(false)),
            "{o}"
        );
    }
    let b = d("OpportunityHistory").await;
    let names = field_names(&b);
    assert!(names.contains(&"SystemModstamp".to_string()));
    assert!(!names.contains(&"LastModifiedDate".to_string()));
    let b = d("ContentNote").await;
    let names = field_names(&b);
    assert!(names.contains(&"LastModifiedDate".to_string()));
    assert!(!names.contains(&"SystemModstamp".to_string()));
    assert_eq!(b["replicateable"], false);
    let content = b["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "Content")
        .unwrap();
    assert_eq!(content["type"], "base64");
    let b = d("UserRole").await;
    let names = field_names(&b);
    assert!(!names.contains(&"CreatedDate".to_string()));
    assert!(!names.contains(&"IsDeleted".to_string()));
    assert!(names.contains(&"SystemModstamp".to_string()));
    let b = d("OpportunityStage").await;
    assert_eq!(
        (b["createable"].clone(), b["replicateable"].clone()),
        (json!(false), json!(false))
    );
    let b = d("ContentDocument").await;
    assert_eq!(
        (b["createable"].clone(), b["updateable"].clone()),
        (json!(false), json!(true))
    );
    let b = d("OpportunityFieldHistory").await;
    let nv = b["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "NewValue")
        .unwrap();
    assert_eq!(nv["type"], "anyType");
    for o in [
        "AccountContactRelation",
        "Attachment",
        "CampaignMemberStatus",
        "Profile",
        "WorkOrder",
    ] {
        let b = d(o).await;
        assert_eq!(b["createable"], true, "{o}");
        assert!(
            field_names(&b).contains(&"SystemModstamp".to_string()),
            "{o}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_objects_generate_query_and_refuse_what_salesforce_refuses() {
    let spec = "Account=5,Contact=10,Opportunity=10,Case=5,Campaign=2,Asset=2,\
                AccountContactRelation=5,Attachment=4,CampaignMemberStatus=3,CaseHistory=6,\
                ContentDocument=3,ContentNote=3,OpportunityFieldHistory=6,OpportunityHistory=6,\
                OpportunityStage=4,Opportunity__hd=4,Profile=2,UserRole=3,WorkOrder=4";
    let org = Org::start(&["--generate", spec]).await;
    for (o, n) in [
        ("OpportunityHistory", 6),
        ("CaseHistory", 6),
        ("Attachment", 4),
        ("WorkOrder", 4),
        ("UserRole", 3),
    ] {
        let r = org.query(&format!("SELECT Id FROM {o}")).await;
        assert_eq!(r["totalSize"], n, "{o}");
    }
    // History rows point at generated parents and carry CreatedDate.
    let r = org
        .query("SELECT Id, OpportunityId, StageName, CreatedDate FROM OpportunityHistory")
        .await;
    let rec = &r["records"][0];
    assert!(rec["OpportunityId"].as_str().unwrap().starts_with("006"));
    assert!(rec["StageName"].is_string());
    assert!(rec["CreatedDate"].is_string());
    // The control API generates them too.
    let (s, _) = org
        .control(
            Method::POST,
            "generate",
            json!({"object": "OpportunityFieldHistory", "count": 2}),
        )
        .await;
    assert!(s.is_success());
    let r = org.query("SELECT Id FROM OpportunityFieldHistory").await;
    assert_eq!(r["totalSize"], 8);

    // A cursor field the object lacks is an unknown column.
    let r = org
        .http
        .get(org.url(&format!("{V}/query")))
        .query(&[(
            "q",
            "SELECT Id FROM CaseHistory WHERE SystemModstamp > 2020-01-01T00:00:00Z",
        )])
        .bearer_auth(&org.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let b: Value = r.json().await.unwrap();
    assert_eq!(error_code(&b), "INVALID_FIELD");

    // Writes the API refuses.
    let (s, b) = org
        .post(
            "sobjects/OpportunityHistory",
            json!({"StageName": "Prospecting"}),
        )
        .await;
    assert_eq!(
        (s.as_u16(), error_code(&b)),
        (400, "INVALID_TYPE_FOR_OPERATION")
    );
    let hist_id = org.query("SELECT Id FROM CaseHistory").await["records"][0]["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, b) = org
        .call(
            Method::PATCH,
            &format!("{V}/sobjects/CaseHistory/{hist_id}"),
            Some(json!({"Field": "Status"})),
        )
        .await;
    assert_eq!(
        (s.as_u16(), error_code(&b)),
        (400, "INVALID_TYPE_FOR_OPERATION")
    );
    let (s, b) = org
        .call(
            Method::DELETE,
            &format!("{V}/sobjects/CaseHistory/{hist_id}"),
            None,
        )
        .await;
    assert_eq!(
        (s.as_u16(), error_code(&b)),
        (400, "INVALID_TYPE_FOR_OPERATION")
    );
    let (s, b) = org
        .post("sobjects/ContentDocument", json!({"Title": "x"}))
        .await;
    assert_eq!(
        (s.as_u16(), error_code(&b)),
        (400, "INVALID_TYPE_FOR_OPERATION")
    );
    // ...and the ones it takes.
    let acct = org.query("SELECT Id FROM Account LIMIT 1").await["records"][0]["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, b) = org
        .post(
            "sobjects/Attachment",
            json!({"ParentId": acct, "Name": "hello.txt", "Body": "aGVsbG8gd29ybGQ="}),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let att = b["id"].as_str().unwrap().to_string();

    // /updated and /deleted only for objects that support getUpdated/getDeleted.
    let win = "?start=2020-01-01T00:00:00Z&end=2030-01-01T00:00:00Z";
    for o in ["ContentNote", "ContentDocument", "OpportunityStage"] {
        for res in ["updated", "deleted"] {
            let (s, b) = org
                .call(Method::GET, &format!("{V}/sobjects/{o}/{res}/{win}"), None)
                .await;
            assert_eq!(
                (s.as_u16(), error_code(&b)),
                (400, "INVALID_TYPE"),
                "{o} {res}"
            );
        }
    }
    let (s, _) = org
        .call(
            Method::GET,
            &format!("{V}/sobjects/OpportunityHistory/updated/{win}"),
            None,
        )
        .await;
    assert_eq!(s, 200);

    // Base64: /query gives the blob's path, which serves the bytes.
    let r = org
        .query(&format!(
            "SELECT Id, Name, Body, BodyLength FROM Attachment WHERE Id = '{att}'"
        ))
        .await;
    let url = r["records"][0]["Body"].as_str().unwrap().to_string();
    assert_eq!(url, format!("{V}/sobjects/Attachment/{att}/Body"));
    let bytes = org.raw(Method::GET, &url, None).await;
    assert_eq!(bytes.status(), 200);
    assert_eq!(bytes.text().await.unwrap(), "hello world");
    let gen = org
        .query("SELECT Id, Body, BodyLength FROM Attachment WHERE Id != null LIMIT 1")
        .await;
    let g = &gen["records"][0];
    let body = org
        .raw(Method::GET, g["Body"].as_str().unwrap(), None)
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(body.len() as i64, g["BodyLength"].as_i64().unwrap());
    let note = org
        .query("SELECT Id, Content FROM ContentNote LIMIT 1")
        .await;
    let nurl = note["records"][0]["Content"].as_str().unwrap();
    assert!(nurl.ends_with("/Content"));
    assert_eq!(org.raw(Method::GET, nurl, None).await.status(), 200);

    // Bulk queries refuse base64 fields, and accept the object without them.
    let (s, b) = org
        .post(
            "jobs/query",
            json!({"operation": "query", "query": "SELECT Id, Body FROM Attachment"}),
        )
        .await;
    assert_eq!(s, 400, "{b}");
    assert!(b[0]["message"].as_str().unwrap().contains("base64"), "{b}");
    let (s, _) = org
        .post(
            "jobs/query",
            json!({"operation": "query", "query": "SELECT Id, Name FROM Attachment"}),
        )
        .await;
    assert_eq!(s, 200);
}
