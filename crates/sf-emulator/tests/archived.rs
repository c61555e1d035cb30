//! Archived activities: Task and Event records Salesforce archives are left out by
//! `query` (REST and Bulk 2.0 "query" jobs) and returned by `queryAll` (REST and Bulk
//! 2.0 "queryAll" jobs); IsArchived is read-only.

mod support;

use reqwest::Method;
use serde_json::{json, Value};
use support::{error_code, Org, V};

fn ids(page: &Value) -> Vec<String> {
    page["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Id"].as_str().unwrap().to_string())
        .collect()
}

/// The data rows of a Bulk 2.0 query job's results (`operation`: query or queryAll).
async fn bulk_rows(org: &Org, operation: &str, soql: &str) -> Vec<String> {
    let (s, job) = org
        .post("jobs/query", json!({"operation": operation, "query": soql}))
        .await;
    assert_eq!(s, 200, "{job}");
    assert_eq!(job["operation"], operation);
    let id = job["id"].as_str().unwrap().to_string();
    for _ in 0..100 {
        let (_, info) = org
            .call(Method::GET, &format!("{V}/jobs/query/{id}"), None)
            .await;
        if info["state"] == "JobComplete" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let text = org
        .raw(Method::GET, &format!("{V}/jobs/query/{id}/results"), None)
        .await
        .text()
        .await
        .unwrap();
    text.lines().skip(1).map(str::to_string).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archived_activities_only_reach_query_all() {
    let org = Org::start(&["--generate", "Account=3,Contact=3,Task=5,Event=4"]).await;
    let tasks = ids(&org
        .query("SELECT Id, IsArchived FROM Task ORDER BY Id")
        .await);
    let events = ids(&org.query("SELECT Id FROM Event ORDER BY Id").await);
    assert_eq!((tasks.len(), events.len()), (5, 4));
    // nothing is archived until told: generated and created records alike
    let (s, created) = org
        .control(
            Method::POST,
            "records/Task",
            json!([{"Subject": "Call", "Status": "Completed", "Priority": "Normal"}]),
        )
        .await;
    assert_eq!(s, 201);
    let new_task = created["ids"][0].as_str().unwrap().to_string();
    let flags = org
        .query("SELECT IsArchived FROM Task WHERE IsArchived = false")
        .await;
    assert_eq!(flags["totalSize"], 6);
    assert!(flags["records"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["IsArchived"] == false));

    let (_, before) = org
        .control(
            Method::GET,
            &format!("records/Task/{}", tasks[0]),
            json!({}),
        )
        .await;
    for (obj, id) in [("Task", &tasks[0]), ("Event", &events[0])] {
        let (s, b) = org
            .control(
                Method::POST,
                &format!("records/{obj}/{id}/archive"),
                json!({}),
            )
            .await;
        assert_eq!(s, 204, "{b}");
    }
    // archiving moves no stamp
    let (_, after) = org
        .control(
            Method::GET,
            &format!("records/Task/{}", tasks[0]),
            json!({}),
        )
        .await;
    assert_eq!(after["IsArchived"], true);
    assert_eq!(after["SystemModstamp"], before["SystemModstamp"]);
    // and a soft-deleted task, which only queryAll returns too
    let (s, _) = org
        .call(
            Method::DELETE,
            &format!("{V}/sobjects/Task/{}", tasks[1]),
            None,
        )
        .await;
    assert_eq!(s, 204);

    let live = ids(&org.query("SELECT Id FROM Task ORDER BY Id").await);
    assert!(!live.contains(&tasks[0]) && !live.contains(&tasks[1]));
    assert_eq!(live.len(), 4);
    let count = org.query("SELECT COUNT() FROM Task").await;
    assert_eq!(count["totalSize"], 4);
    let all = org
        .query_all("SELECT Id, IsArchived, IsDeleted FROM Task ORDER BY Id")
        .await;
    assert_eq!(all["totalSize"], 6);
    assert_eq!(all["records"][0]["Id"], tasks[0].as_str());
    assert_eq!(all["records"][0]["IsArchived"], true);
    assert_eq!(all["records"][0]["IsDeleted"], false);
    // what a backfill reads: archived rows, no deleted ones
    let kept = org
        .query_all("SELECT Id FROM Task WHERE IsDeleted = false ORDER BY Id")
        .await;
    assert_eq!(kept["totalSize"], 5);
    assert_eq!(kept["records"][0]["Id"], tasks[0].as_str());
    let archived = org
        .query_all("SELECT Id FROM Event WHERE IsArchived = true")
        .await;
    assert_eq!(ids(&archived), vec![events[0].clone()]);
    assert_eq!(org.query("SELECT COUNT() FROM Event").await["totalSize"], 3);

    // Bulk 2.0: "query" jobs leave archived rows out, "queryAll" jobs return them
    let q = bulk_rows(&org, "query", "SELECT Id FROM Event").await;
    assert_eq!(q.len(), 3);
    assert!(!q.iter().any(|l| l.contains(events[0].as_str())));
    let qa = bulk_rows(&org, "queryAll", "SELECT Id, IsArchived FROM Event").await;
    assert_eq!(qa.len(), 4);
    assert!(qa.contains(&format!("\"{}\",\"true\"", events[0])));
    let qa = bulk_rows(
        &org,
        "queryAll",
        "SELECT Id FROM Task WHERE IsDeleted = false",
    )
    .await;
    assert_eq!(qa.len(), 5);

    // an archived record can still be read and updated (it stays archived, and its
    // stamps move as for any update); IsArchived itself cannot be written
    let path = format!("{V}/sobjects/Task/{}", tasks[0]);
    let (s, rec) = org.call(Method::GET, &path, None).await;
    assert_eq!((s.as_u16(), &rec["IsArchived"]), (200, &json!(true)));
    let (s, _) = org
        .call(Method::PATCH, &path, Some(json!({"Subject": "Edited"})))
        .await;
    assert_eq!(s, 204);
    let (_, rec) = org.call(Method::GET, &path, None).await;
    assert_eq!(rec["Subject"], "Edited");
    assert_eq!(rec["IsArchived"], true);
    assert_ne!(rec["SystemModstamp"], before["SystemModstamp"]);
    let (s, b) = org
        .call(Method::PATCH, &path, Some(json!({"IsArchived": false})))
        .await;
    assert_eq!(s, 400, "{b}");
    let (s, b) = org
        .post(
            "sobjects/Task",
            json!({"Subject": "x", "Status": "Completed", "Priority": "Normal", "IsArchived": true}),
        )
        .await;
    assert_eq!(s, 400, "{b}");

    // the describe says it: a read-only boolean
    let (_, d) = org
        .call(Method::GET, &format!("{V}/sobjects/Event/describe"), None)
        .await;
    let f = d["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "IsArchived")
        .expect("Event.IsArchived");
    assert_eq!(f["type"], "boolean");
    assert_eq!(
        (&f["createable"], &f["updateable"]),
        (&json!(false), &json!(false))
    );

    // undone, the task is back in query; only activities archive
    let (s, _) = org
        .control(
            Method::POST,
            &format!("records/Task/{}/archive", tasks[0]),
            json!({"archived": false}),
        )
        .await;
    assert_eq!(s, 204);
    assert!(ids(&org.query("SELECT Id FROM Task").await).contains(&tasks[0]));
    let acct = ids(&org.query("SELECT Id FROM Account LIMIT 1").await).remove(0);
    let (s, b) = org
        .control(
            Method::POST,
            &format!("records/Account/{acct}/archive"),
            json!({}),
        )
        .await;
    assert_eq!((s.as_u16(), error_code(&b)), (400, "INVALID_TYPE"));
    let (s, _) = org
        .control(
            Method::POST,
            &format!("records/Task/{}/archive", tasks[1]),
            json!({}),
        )
        .await;
    assert_eq!(s, 404, "a deleted record is not archived");
    assert!(new_task.starts_with("00T"));
}
