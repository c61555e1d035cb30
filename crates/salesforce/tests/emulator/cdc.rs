//! Change Data Capture over the Pub/Sub API: the `cdc` client against the emulator's
//! gRPC server (started in-process with its REST side), changes made through the REST
//! client and the control API.

use std::time::Duration;

use salesforce::cdc::{
    object_channel, Batch, ChangeEvent, ChangeType, PubSub, PubSubConfig, PubSubErrorKind, Replay,
    Subscription, ALL_CHANGE_EVENTS,
};
use salesforce::Client;
use serde_json::{json, Value};

use crate::support::*;

/// An emulator with the Pub/Sub API on, a logged-in client and a connection.
struct Cdc {
    emu: Emu,
    client: Client,
    pubsub: PubSub,
}

async fn start(objects: &[&str]) -> Cdc {
    let objects: Vec<String> = objects.iter().map(|s| s.to_string()).collect();
    let emu = Emu::start_with(|c| {
        c.pubsub_listen = Some("127.0.0.1:0".parse().unwrap());
        // Idle streams get a keepalive every 200 ms instead of 270 s.
        c.pubsub_keepalive_ms = 200;
        c.cdc_objects = objects;
    })
    .await;
    let client = emu.ready_client().await;
    let pubsub = PubSub::connect(&client, PubSubConfig::new(plain_endpoint(&emu)))
        .await
        .expect("connects");
    Cdc {
        emu,
        client,
        pubsub,
    }
}

fn plain_endpoint(emu: &Emu) -> String {
    format!(
        "http://{}",
        emu.running.pubsub_addr().expect("pubsub listens")
    )
}

impl Cdc {
    async fn subscribe(&self, topic: &str, replay: Replay, batch: i32) -> Subscription {
        self.pubsub
            .subscribe(topic, replay, batch)
            .await
            .expect("subscribes")
    }

    async fn create(&self, object: &str, fields: Value) -> String {
        let r = self
            .client
            .create_record(object, &rec(fields))
            .await
            .unwrap();
        r.id.expect("created")
    }

    async fn update(&self, object: &str, id: &str, fields: Value) {
        self.client
            .update_record(object, id, &rec(fields), None)
            .await
            .unwrap();
    }
}

/// Batches until `n` events arrived (keepalives skipped); each batch within 5 s.
async fn events(sub: &mut Subscription, n: usize) -> Vec<ChangeEvent> {
    let mut out = Vec::new();
    while out.len() < n {
        let b = next(sub).await.expect("stream stays open");
        out.extend(b.events);
    }
    assert_eq!(out.len(), n, "no more events than expected");
    out
}

async fn next(sub: &mut Subscription) -> salesforce::Result<Batch> {
    tokio::time::timeout(Duration::from_secs(5), sub.next_batch())
        .await
        .expect("a batch or keepalive within 5 s")
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_of_each_kind_arrive_decoded_on_both_channels() {
    let cdc = start(&["Contact", "Invoice__c"]).await;
    let invoice_describe = cdc
        .client
        .describe("Invoice__c", None)
        .await
        .unwrap()
        .unwrap();
    cdc.pubsub.register_describe(&invoice_describe);
    let mut all = cdc.subscribe(ALL_CHANGE_EVENTS, Replay::Latest, 20).await;
    let mut invoices = cdc
        .subscribe(&object_channel("Invoice__c"), Replay::Latest, 20)
        .await;
    assert_eq!(invoices.topic(), "/data/Invoice__ChangeEvent");

    let id = cdc
        .create(
            "Contact",
            json!({"FirstName": "Ada", "LastName": "Lovelace", "Phone": "555", "MailingCity": "London"}),
        )
        .await;
    cdc.update(
        "Contact",
        &id,
        json!({"FirstName": "Augusta", "Title": "Countess", "Phone": null, "MailingCity": "Paris"}),
    )
    .await;
    cdc.client.delete_record("Contact", &id).await.unwrap();
    cdc.emu
        .control(
            "POST",
            &format!("records/Contact/{id}/undelete"),
            Some(json!({})),
        )
        .await;
    let inv = cdc
        .create(
            "Invoice__c",
            json!({"Name": "INV-1", "Amount__c": 12.5, "Due_Date__c": "2024-03-01", "Notes__c": "first"}),
        )
        .await;
    cdc.update(
        "Invoice__c",
        &inv,
        json!({"Paid__c": true, "Notes__c": null, "Due_Date__c": "2024-04-02"}),
    )
    .await;

    let evs = events(&mut all, 6).await;
    let kinds: Vec<&ChangeType> = evs.iter().map(|e| &e.change_type).collect();
    assert_eq!(
        kinds,
        [
            &ChangeType::Create,
            &ChangeType::Update,
            &ChangeType::Delete,
            &ChangeType::Undelete,
            &ChangeType::Create,
            &ChangeType::Update
        ]
    );
    for e in &evs[..4] {
        assert_eq!(e.entity, "Contact");
        assert_eq!(e.record_ids, std::slice::from_ref(&id));
        assert!(e.commit_user.starts_with("005"), "{}", e.commit_user);
        assert!(e.commit_time().unwrap().timestamp() > 1_600_000_000);
        assert!(!e.transaction_key.is_empty() && !e.event_id.is_empty());
        assert_eq!(e.sequence_number, 1);
    }
    assert!(evs.windows(2).all(|w| w[0].replay_id < w[1].replay_id));
    assert!(evs
        .windows(2)
        .all(|w| w[0].commit_number < w[1].commit_number));
    assert!(evs[0].change_origin.starts_with("com/salesforce/api/rest/"));
    // The control API is not an API call: no origin, no client.
    assert_eq!(evs[3].change_origin, "");
    assert_eq!(evs[3].origin_client(), None);

    // CREATE: every field, compounds flattened to REST names, nulls as null.
    let create = &evs[0].fields;
    assert_eq!(create["FirstName"], "Ada");
    assert_eq!(create["LastName"], "Lovelace");
    assert_eq!(create["Phone"], "555");
    assert_eq!(create["MailingCity"], "London");
    assert_eq!(create["MailingStreet"], Value::Null);
    assert_eq!(create["Title"], Value::Null);
    let created = create["CreatedDate"].as_str().unwrap();
    // The REST datetime format, 2024-01-02T03:04:05.000+0000.
    assert_eq!(created.len(), 28, "{created}");
    assert!(
        created.ends_with("+0000") && &created[10..11] == "T",
        "{created}"
    );
    assert!(!create.contains_key("Name") && !create.contains_key("MailingAddress"));
    assert!(evs[0].changed_fields.is_empty());

    // UPDATE: only the changed fields; the nulled one present as null.
    let update = &evs[1];
    assert_eq!(
        sorted(update.changed_fields.clone()),
        [
            "FirstName",
            "LastModifiedDate",
            "MailingCity",
            "Phone",
            "Title"
        ]
    );
    assert_eq!(update.nulled_fields, ["Phone"]);
    assert!(update.diff_fields.is_empty());
    let mut keys: Vec<&String> = update.fields.keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "FirstName",
            "LastModifiedDate",
            "MailingCity",
            "Phone",
            "Title"
        ]
    );
    assert_eq!(update.fields["FirstName"], "Augusta");
    assert_eq!(update.fields["Title"], "Countess");
    assert_eq!(update.fields["MailingCity"], "Paris");
    assert_eq!(update.fields["Phone"], Value::Null);

    // DELETE: ids, no values. UNDELETE: the whole record again.
    assert!(evs[2].fields.is_empty());
    assert_eq!(evs[3].fields["Title"], "Countess");
    assert_eq!(evs[3].fields["FirstName"], "Augusta");

    // The custom object: typed values (the describe makes the date a date).
    let ic = &evs[4];
    assert_eq!(
        (ic.entity.as_str(), &ic.record_ids),
        ("Invoice__c", &vec![inv.clone()])
    );
    assert_eq!(ic.fields["Name"], "INV-1");
    assert_eq!(ic.fields["Amount__c"], 12.5);
    assert_eq!(ic.fields["Due_Date__c"], "2024-03-01");
    assert_eq!(ic.fields["Paid__c"], false);
    let iu = &evs[5];
    assert_eq!(
        sorted(iu.changed_fields.clone()),
        ["Due_Date__c", "LastModifiedDate", "Notes__c", "Paid__c"]
    );
    assert_eq!(iu.nulled_fields, ["Notes__c"]);
    assert_eq!(iu.fields["Paid__c"], true);
    assert_eq!(iu.fields["Notes__c"], Value::Null);
    assert_eq!(iu.fields["Due_Date__c"], "2024-04-02");
    assert_eq!(iu.fields.len(), 4);

    // The per-object channel carries the invoice's events only, with the same ids.
    let only = events(&mut invoices, 2).await;
    assert_eq!(only[0].replay_id, ic.replay_id);
    assert_eq!(only[1], *iu);

    // Topic and schema calls; schemas were fetched once per schema.
    let topic = cdc.pubsub.topic("/data/ContactChangeEvent").await.unwrap();
    assert!(topic.can_subscribe && !topic.can_publish);
    assert_eq!(topic.schema_id, evs[0].schema_id);
    let schema = cdc.pubsub.schema(&topic.schema_id).await.unwrap();
    assert!(schema.json.contains("ChangeEventHeader"));
    assert_eq!(cdc.pubsub.cached_schemas(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_control_keepalives_and_resuming_from_a_stored_replay_id() {
    let cdc = start(&["Contact"]).await;
    let mut sub = cdc
        .subscribe("/data/ContactChangeEvent", Replay::Latest, 2)
        .await;
    // Idle: a keepalive with the position to resume from.
    let idle = next(&mut sub).await.unwrap();
    assert!(idle.is_keepalive());
    let idle_point = idle.resume_replay_id.clone().expect("keepalive position");
    assert_eq!(sub.resume_replay_id(), Some(idle_point.as_slice()));

    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            cdc.create("Contact", json!({"LastName": format!("Flow{i}")}))
                .await,
        );
    }
    // Never more than the two asked for at a time; the next two are asked for only
    // when the caller comes back.
    let mut seen = Vec::new();
    while seen.len() < 5 {
        let b = next(&mut sub).await.unwrap();
        assert!(b.events.len() <= 2, "batch of {}", b.events.len());
        assert!(sub.outstanding() <= 2);
        if let Some(last) = b.events.last() {
            assert_eq!(b.resume_replay_id.as_ref(), Some(&last.replay_id));
        }
        seen.extend(b.events);
    }
    let names: Vec<&str> = seen
        .iter()
        .map(|e| e.fields["LastName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Flow0", "Flow1", "Flow2", "Flow3", "Flow4"]);
    drop(sub);

    // After the second event: the third to fifth again.
    let mut again = cdc
        .subscribe(
            ALL_CHANGE_EVENTS,
            Replay::After(seen[1].replay_id.clone()),
            10,
        )
        .await;
    let replayed = events(&mut again, 3).await;
    assert_eq!(replayed[0].record_ids, [ids[2].clone()]);
    assert_eq!(replayed[2].replay_id, seen[4].replay_id);
    // From the keepalive position: all five, nothing earlier.
    let mut from_idle = cdc
        .subscribe(ALL_CHANGE_EVENTS, Replay::After(idle_point), 10)
        .await;
    assert_eq!(
        events(&mut from_idle, 5).await[0].record_ids,
        [ids[0].clone()]
    );
    // EARLIEST: everything retained.
    let mut earliest = cdc.subscribe(ALL_CHANGE_EVENTS, Replay::Earliest, 10).await;
    assert_eq!(
        events(&mut earliest, 5).await[4].replay_id,
        seen[4].replay_id
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_replay_ids_gaps_overflows_and_dropped_streams() {
    let cdc = start(&["Contact"]).await;
    let mut sub = cdc.subscribe(ALL_CHANGE_EVENTS, Replay::Latest, 10).await;
    let id = cdc.create("Contact", json!({"LastName": "Gap"})).await;
    cdc.emu
        .control(
            "POST",
            "cdc/gap",
            Some(json!({"object": "Contact", "changeType": "GAP_UPDATE", "ids": [id]})),
        )
        .await;
    cdc.emu
        .control("POST", "cdc/overflow", Some(json!({"object": "Contact"})))
        .await;
    let evs = events(&mut sub, 3).await;
    assert_eq!(evs[1].change_type, ChangeType::GapUpdate);
    assert!(evs[1].change_type.is_gap());
    assert_eq!(evs[1].record_ids, std::slice::from_ref(&id));
    assert!(evs[1].fields.is_empty() && evs[1].changed_fields.is_empty());
    assert_eq!(evs[2].change_type, ChangeType::GapOverflow);
    assert_eq!(evs[2].entity, "Contact");
    assert!(evs[2].record_ids.is_empty() && evs[2].fields.is_empty());

    // A dropped stream: a distinct, retryable error; resuming loses nothing.
    let dropped = cdc.emu.control("POST", "cdc/drop_streams", None).await;
    assert_eq!(dropped["dropped"], 1);
    let err = loop {
        match next(&mut sub).await {
            Ok(b) => assert!(b.is_keepalive(), "no events after the drop"),
            Err(e) => break e,
        }
    };
    assert!(err.is_stream_dropped(), "{err:?}");
    assert_eq!(sub.resume_from(), Replay::After(evs[2].replay_id.clone()));
    assert!(err.is_transient());
    assert_eq!(err.pubsub_error_kind(), Some(PubSubErrorKind::Unavailable));
    let resume = sub.resume_replay_id().unwrap().to_vec();
    cdc.create("Contact", json!({"LastName": "AfterDrop"}))
        .await;
    let mut resumed = cdc
        .subscribe(ALL_CHANGE_EVENTS, Replay::After(resume), 10)
        .await;
    let after = events(&mut resumed, 1).await;
    assert_eq!(after[0].fields["LastName"], "AfterDrop");

    // Past the retention window: a distinct error the caller falls back on.
    let expired = cdc.emu.control("POST", "cdc/expire_replay_ids", None).await;
    assert!(expired["expired"].as_u64().unwrap() >= 4);
    let err = cdc
        .pubsub
        .subscribe(
            ALL_CHANGE_EVENTS,
            Replay::After(after[0].replay_id.clone()),
            10,
        )
        .await
        .unwrap_err();
    assert!(err.is_replay_id_invalid(), "{err:?}");
    assert!(!err.is_transient() && !err.is_stream_dropped());
    assert_eq!(err.status(), Some(400));
    let text = err.to_string();
    assert!(
        text.contains("replayid.corrupted") && text.contains("rpcId"),
        "{text}"
    );
    // LATEST still works after the fallback.
    let mut fresh = cdc.subscribe(ALL_CHANGE_EVENTS, Replay::Latest, 10).await;
    cdc.create("Contact", json!({"LastName": "Fresh"})).await;
    assert_eq!(events(&mut fresh, 1).await[0].fields["LastName"], "Fresh");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_refresh_and_bad_tokens_and_topics_fail_clearly() {
    let cdc = start(&["Contact"]).await;
    // An expired session is refreshed once, transparently.
    cdc.emu.control("POST", "expire_tokens", None).await;
    let before = cdc.client.stats().token_requests;
    let mut sub = cdc
        .subscribe("/data/ContactChangeEvent", Replay::Latest, 5)
        .await;
    assert_eq!(cdc.client.stats().token_requests, before + 1);
    cdc.create("Contact", json!({"LastName": "Refreshed"}))
        .await;
    assert_eq!(events(&mut sub, 1).await[0].fields["LastName"], "Refreshed");

    // Unknown topics, malformed batch sizes.
    for topic in ["/data/NopeChangeEvent", "/event/Order__e"] {
        let err = cdc.pubsub.topic(topic).await.unwrap_err();
        assert_eq!(err.pubsub_error_kind(), Some(PubSubErrorKind::UnknownTopic));
        let err = cdc
            .pubsub
            .subscribe(topic, Replay::Latest, 1)
            .await
            .unwrap_err();
        assert_eq!(err.pubsub_error_kind(), Some(PubSubErrorKind::UnknownTopic));
        assert!(err.to_string().contains("Change Data Capture"), "{err}");
    }
    let err = cdc.pubsub.schema("nope").await.unwrap_err();
    assert_eq!(
        err.pubsub_error_kind(),
        Some(PubSubErrorKind::UnknownSchema)
    );
    assert!(matches!(
        cdc.pubsub
            .subscribe(ALL_CHANGE_EVENTS, Replay::Latest, 101)
            .await,
        Err(salesforce::Error::Config(_))
    ));

    // A token this Pub/Sub server never issued (another org's session): refused
    // even after a fresh login, as an auth error.
    let other = Emu::start().await;
    let stranger = other.ready_client().await;
    let wrong = PubSub::connect(&stranger, PubSubConfig::new(plain_endpoint(&cdc.emu)))
        .await
        .unwrap();
    let tokens = stranger.stats().token_requests;
    let err = wrong.topic("/data/ContactChangeEvent").await.unwrap_err();
    assert_eq!(
        err.pubsub_error_kind(),
        Some(PubSubErrorKind::Auth),
        "{err:?}"
    );
    assert_eq!(err.status(), Some(401));
    assert!(!err.is_transient());
    assert_eq!(stranger.stats().token_requests, tokens + 1, "one refresh");
    let err = wrong
        .subscribe(ALL_CHANGE_EVENTS, Replay::Latest, 1)
        .await
        .unwrap_err();
    assert_eq!(err.pubsub_error_kind(), Some(PubSubErrorKind::Auth));

    // Nothing listening: a connect error.
    let nowhere = PubSub::connect(&cdc.client, PubSubConfig::new("http://127.0.0.1:1")).await;
    assert!(matches!(nowhere, Err(salesforce::Error::Connect(_))));
}

/// A throwaway certificate for 127.0.0.1, made with the openssl command line tool.
fn make_cert(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let status = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("the openssl command line tool is installed");
    assert!(status.success(), "openssl could not make a certificate");
    (cert, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribes_over_tls_with_an_extra_root_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(dir.path());
    let (c, k) = (cert.clone(), key.clone());
    let emu = Emu::start_with(|cfg| {
        cfg.tls_cert = Some(c);
        cfg.tls_key = Some(k);
        cfg.pubsub_listen = Some("127.0.0.1:0".parse().unwrap());
        cfg.cdc_objects = vec!["Contact".into()];
    })
    .await;
    let pem = std::fs::read_to_string(&cert).unwrap();
    let mut rest = salesforce::ClientConfig::new(emu.refresh_credential());
    rest.extra_root_ca_pem = Some(pem.clone());
    let client = Client::new(rest).unwrap();
    let addr = emu.running.pubsub_addr().unwrap();
    let mut config = PubSubConfig::new(format!("https://{addr}"));
    config.extra_root_ca_pem = Some(pem);
    let pubsub = PubSub::connect(&client, config).await.unwrap();
    let mut sub = pubsub
        .subscribe(ALL_CHANGE_EVENTS, Replay::Latest, 5)
        .await
        .unwrap();
    client
        .create_record("Contact", &rec(json!({"LastName": "Tls"})))
        .await
        .unwrap();
    assert_eq!(events(&mut sub, 1).await[0].fields["LastName"], "Tls");

    // Without the CA: no connection.
    let untrusting = PubSub::connect(&client, PubSubConfig::new(format!("https://{addr}"))).await;
    assert!(matches!(untrusting, Err(salesforce::Error::Connect(_))));
}
