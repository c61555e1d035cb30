//! The Pub/Sub API server: a tonic client subscribes to change events the way a
//! Salesforce client does (metadata auth, FetchRequests with flow control, Avro
//! payloads decoded with the schema from GetSchema).

mod support;

use pubsub::avro::{Schema, Value as Avro};
use pubsub::pub_sub_client::PubSubClient;
use pubsub::{FetchRequest, FetchResponse, SchemaRequest, TopicRequest};
use reqwest::Method;
use serde_json::json;
use std::collections::HashMap;
use std::time::Duration;
use support::{Org, V};
use tokio::sync::mpsc;
use tonic::transport::Channel;
use tonic::{Code, Request, Status, Streaming};

const KEEPALIVE_MS: &str = "300";

struct Bus {
    org: Org,
    client: PubSubClient<Channel>,
    schemas: HashMap<String, Schema>,
}

struct Sub {
    tx: mpsc::Sender<FetchRequest>,
    rx: Streaming<FetchResponse>,
}

/// A decoded change event.
#[derive(Debug)]
struct Event {
    replay_id: Vec<u8>,
    payload: Avro,
    schema: Schema,
}

impl Event {
    fn header(&self, key: &str) -> &Avro {
        self.payload
            .field("ChangeEventHeader")
            .and_then(|h| h.field(key))
            .unwrap_or_else(|| panic!("no header {key}"))
    }

    fn kind(&self) -> &str {
        self.header("changeType").as_str().unwrap()
    }

    fn ids(&self) -> Vec<String> {
        self.header("recordIds").strings()
    }

    fn names(&self, key: &str) -> Vec<String> {
        pubsub::bitmap::field_names(&self.schema, &self.header(key).strings())
    }

    fn field(&self, name: &str) -> &Avro {
        self.payload
            .field(name)
            .unwrap_or_else(|| panic!("no field {name}"))
    }
}

fn with_auth<T>(org: &Org, msg: T) -> Request<T> {
    let mut r = Request::new(msg);
    let m = r.metadata_mut();
    m.insert("accesstoken", org.token.parse().unwrap());
    m.insert("instanceurl", org.running.base_url().parse().unwrap());
    m.insert("tenantid", org_id(org).parse().unwrap());
    r
}

/// The org id (18 characters), from the identity URL the token endpoint returns.
fn org_id(org: &Org) -> String {
    // An access token starts with the org's 15-character id.
    let org15 = org.token.split('!').next().unwrap().to_string();
    sf_emulator::ids::to18(&org15)
}

impl Bus {
    async fn start(objects: &[&str]) -> Bus {
        let org = Org::start(&[
            "--pubsub-listen",
            "127.0.0.1:0",
            "--pubsub-keepalive-ms",
            KEEPALIVE_MS,
        ])
        .await;
        let addr = org.running.pubsub_addr().expect("pubsub listens");
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let bus = Bus {
            org,
            client: PubSubClient::new(channel),
            schemas: HashMap::new(),
        };
        bus.select(objects).await;
        bus
    }

    async fn select(&self, objects: &[&str]) {
        let (s, body) = self
            .org
            .control(Method::PUT, "cdc", json!({ "objects": objects }))
            .await;
        assert_eq!(s, 200, "{body}");
    }

    async fn subscribe(
        &mut self,
        topic: &str,
        preset: i32,
        replay: Vec<u8>,
        n: i32,
    ) -> Result<Sub, Status> {
        let (tx, rx) = mpsc::channel(16);
        tx.send(FetchRequest {
            topic_name: topic.into(),
            replay_preset: preset,
            replay_id: replay,
            num_requested: n,
            auth_refresh: String::new(),
        })
        .await
        .unwrap();
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
        let resp = self.client.subscribe(with_auth(&self.org, stream)).await?;
        Ok(Sub {
            tx,
            rx: resp.into_inner(),
        })
    }

    async fn decode(&mut self, resp: &FetchResponse) -> Vec<Event> {
        let mut out = Vec::new();
        for ce in &resp.events {
            let ev = ce.event.as_ref().unwrap();
            if !self.schemas.contains_key(&ev.schema_id) {
                let info = self
                    .client
                    .get_schema(with_auth(
                        &self.org,
                        SchemaRequest {
                            schema_id: ev.schema_id.clone(),
                        },
                    ))
                    .await
                    .unwrap()
                    .into_inner();
                assert_eq!(info.schema_id, ev.schema_id);
                self.schemas.insert(
                    ev.schema_id.clone(),
                    Schema::parse(&info.schema_json).unwrap(),
                );
            }
            let schema = self.schemas[&ev.schema_id].clone();
            let payload = pubsub::avro::decode(&schema, &ev.payload)
                .expect("payload decodes with its schema");
            out.push(Event {
                replay_id: ce.replay_id.clone(),
                payload,
                schema,
            });
        }
        out
    }

    /// Reads responses until `n` events arrived (keepalives skipped).
    async fn events(&mut self, sub: &mut Sub, n: usize) -> Vec<Event> {
        let mut out = Vec::new();
        while out.len() < n {
            let resp = tokio::time::timeout(Duration::from_secs(5), sub.rx.message())
                .await
                .expect("events arrive in time")
                .expect("stream stays open")
                .expect("stream not ended");
            let evs = self.decode(&resp).await;
            out.extend(evs);
        }
        assert_eq!(out.len(), n, "no more events than requested");
        out
    }

    async fn rest(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut r = self
            .org
            .http
            .request(method, self.org.url(&format!("{V}/{path}")))
            .bearer_auth(&self.org.token)
            .header(
                "Sforce-Call-Options",
                "client=sequin-test, defaultNamespace=x",
            );
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(serde_json::Value::Null))
    }

    async fn create_contact(&self, last: &str) -> String {
        let (s, b) = self
            .rest(
                Method::POST,
                "sobjects/Contact",
                Some(json!({"LastName": last})),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        b["id"].as_str().unwrap().to_string()
    }
}

fn error_code(s: &Status) -> &str {
    s.metadata()
        .get("error-code")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

const LATEST: i32 = 0;
const EARLIEST: i32 = 1;
const CUSTOM: i32 = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_of_each_kind_arrive_with_headers_and_only_changed_fields() {
    let mut bus = Bus::start(&["Contact"]).await;
    bus.select(&["Contact", "Invoice__c"]).await;
    let mut all = bus
        .subscribe("/data/ChangeEvents", LATEST, vec![], 100)
        .await
        .unwrap();
    let mut invoices = bus
        .subscribe("/data/Invoice__ChangeEvent", LATEST, vec![], 10)
        .await
        .unwrap();

    let (s, b) = bus
        .rest(Method::POST, "sobjects/Contact", Some(json!({"LastName": "Lovelace", "FirstName": "Ada", "Phone": "555", "MailingCity": "London"})))
        .await;
    assert_eq!(s, 201, "{b}");
    let id = b["id"].as_str().unwrap().to_string();
    let (s, _) = bus
        .rest(Method::PATCH, &format!("sobjects/Contact/{id}"), Some(json!({"FirstName": "Augusta", "Title": "Countess", "Phone": null, "MailingCity": "Paris"})))
        .await;
    assert_eq!(s, 204);
    let (s, _) = bus
        .rest(Method::DELETE, &format!("sobjects/Contact/{id}"), None)
        .await;
    assert_eq!(s, 204);
    let (s, _) = bus
        .org
        .control(
            Method::POST,
            &format!("records/Contact/{id}/undelete"),
            json!({}),
        )
        .await;
    assert_eq!(s, 204);
    let (s, b) = bus
        .rest(
            Method::POST,
            "sobjects/Invoice__c",
            Some(json!({"Name": "INV-1", "Amount__c": 12.5, "Due_Date__c": "2024-03-01"})),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let invoice = b["id"].as_str().unwrap().to_string();
    // Not selected: no event.
    let (s, _) = bus
        .rest(
            Method::POST,
            "sobjects/Account",
            Some(json!({"Name": "Acme"})),
        )
        .await;
    assert_eq!(s, 201);

    let evs = bus.events(&mut all, 5).await;
    let kinds: Vec<&str> = evs.iter().map(Event::kind).collect();
    assert_eq!(kinds, ["CREATE", "UPDATE", "DELETE", "UNDELETE", "CREATE"]);
    for e in &evs[..4] {
        assert_eq!(e.header("entityName").as_str(), Some("Contact"));
        assert_eq!(e.ids(), vec![id.clone()]);
        assert!(e.header("commitUser").as_str().unwrap().starts_with("005"));
        assert!(e.header("commitTimestamp").as_i64().unwrap() > 1_600_000_000_000);
        assert!(!e.header("transactionKey").as_str().unwrap().is_empty());
        assert_eq!(e.header("sequenceNumber").as_i64(), Some(1));
    }
    // Replay ids grow; commit numbers too.
    assert!(evs.windows(2).all(|w| w[0].replay_id < w[1].replay_id));
    assert!(evs
        .windows(2)
        .all(|w| w[0].header("commitNumber").as_i64() < w[1].header("commitNumber").as_i64()));
    // changeOrigin: the API, its version and the call options' client; none for the
    // control API (a user's change).
    assert_eq!(
        evs[0].header("changeOrigin").as_str(),
        Some("com/salesforce/api/rest/61.0;client=sequin-test")
    );
    assert_eq!(evs[3].header("changeOrigin").as_str(), Some(""));

    // CREATE: every field, compounds nested, changedFields empty.
    let create = &evs[0];
    assert!(create.header("changedFields").strings().is_empty());
    assert_eq!(
        create
            .field("Name")
            .field("LastName")
            .and_then(Avro::as_str),
        Some("Lovelace")
    );
    assert_eq!(
        create
            .field("Name")
            .field("FirstName")
            .and_then(Avro::as_str),
        Some("Ada")
    );
    assert_eq!(
        create
            .field("MailingAddress")
            .field("City")
            .and_then(Avro::as_str),
        Some("London")
    );
    assert_eq!(create.field("Phone").as_str(), Some("555"));
    assert!(create.field("CreatedDate").as_i64().is_some());
    assert!(
        create.payload.field("FirstName").is_none(),
        "name components only inside Name"
    );
    assert!(
        create.payload.field("MailingCity").is_none(),
        "address components only inside the address"
    );
    assert!(create.payload.field("SystemModstamp").is_none());
    assert!(create.payload.field("IsDeleted").is_none());

    // UPDATE: only what changed is set; the bitmaps name it.
    let update = &evs[1];
    let mut changed = update.names("changedFields");
    changed.sort();
    assert_eq!(
        changed,
        [
            "LastModifiedDate",
            "MailingAddress.City",
            "Name.FirstName",
            "Phone",
            "Title"
        ]
    );
    assert_eq!(update.names("nulledFields"), ["Phone"]);
    assert!(update.header("diffFields").strings().is_empty());
    assert_eq!(update.field("Title").as_str(), Some("Countess"));
    assert!(update.field("Phone").is_null());
    assert!(update.field("Email").is_null());
    assert!(
        update.field("CreatedDate").is_null(),
        "unchanged fields are null"
    );
    assert_eq!(
        update
            .field("Name")
            .field("FirstName")
            .and_then(Avro::as_str),
        Some("Augusta")
    );
    assert!(update.field("Name").field("LastName").unwrap().is_null());
    assert_eq!(
        update
            .field("MailingAddress")
            .field("City")
            .and_then(Avro::as_str),
        Some("Paris")
    );
    // The raw first bitmap is Salesforce's hex form.
    assert!(update.header("changedFields").strings()[0].starts_with("0x"));
    assert!(update
        .header("changedFields")
        .strings()
        .iter()
        .any(|s| s.contains("-0x")));

    // DELETE: no values. UNDELETE: all values again.
    assert!(evs[2].field("Title").is_null() && evs[2].field("Name").is_null());
    assert_eq!(evs[3].field("Title").as_str(), Some("Countess"));

    // The custom object's event on both channels.
    assert_eq!(evs[4].header("entityName").as_str(), Some("Invoice__c"));
    assert_eq!(
        evs[4].field("Amount__c"),
        &Avro::Union(1, Box::new(Avro::Double(12.5)))
    );
    // Dates are days since the epoch, booleans booleans.
    assert_eq!(evs[4].field("Due_Date__c").as_i64(), Some(19783));
    assert_eq!(
        evs[4].field("Paid__c"),
        &Avro::Union(1, Box::new(Avro::Boolean(false)))
    );
    let inv = bus.events(&mut invoices, 1).await;
    assert_eq!(inv[0].ids(), vec![invoice]);
    assert_eq!(inv[0].replay_id, evs[4].replay_id);

    // GetTopic names the object's current schema.
    let topic = bus
        .client
        .get_topic(with_auth(
            &bus.org,
            TopicRequest {
                topic_name: "/data/ContactChangeEvent".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(topic.can_subscribe && !topic.can_publish);
    assert_eq!(topic.tenant_guid, org_id(&bus.org));
    assert_eq!(topic.schema_id, evs[0].payload_schema_id(&bus));
}

impl Event {
    fn payload_schema_id(&self, bus: &Bus) -> String {
        bus.schemas
            .iter()
            .find(|(_, s)| **s == self.schema)
            .map(|(id, _)| id.clone())
            .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_control_never_sends_more_than_requested() {
    let mut bus = Bus::start(&["Contact"]).await;
    let mut sub = bus
        .subscribe("/data/ContactChangeEvent", LATEST, vec![], 2)
        .await
        .unwrap();
    for i in 0..5 {
        bus.create_contact(&format!("Flow{i}")).await;
    }
    let first = bus.events(&mut sub, 2).await;
    assert_eq!(first.len(), 2);
    // Nothing more until asked: only keepalives (empty, with a position) arrive.
    let resp = tokio::time::timeout(Duration::from_secs(3), sub.rx.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(resp.events.is_empty(), "no events beyond num_requested");
    assert_eq!(resp.pending_num_requested, 0);
    assert_eq!(resp.latest_replay_id, first[1].replay_id);
    // Asking for 500 counts as 100; three are there.
    sub.tx
        .send(FetchRequest {
            num_requested: 500,
            ..Default::default()
        })
        .await
        .unwrap();
    let rest = bus.events(&mut sub, 3).await;
    let last: Vec<String> = rest
        .iter()
        .map(|e| {
            e.field("Name")
                .field("LastName")
                .and_then(Avro::as_str)
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(last, ["Flow2", "Flow3", "Flow4"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_from_a_stored_id_and_expired_ids_fail() {
    let mut bus = Bus::start(&["Contact"]).await;
    let mut sub = bus
        .subscribe("/data/ChangeEvents", LATEST, vec![], 10)
        .await
        .unwrap();
    for i in 0..4 {
        bus.create_contact(&format!("Replay{i}")).await;
    }
    let evs = bus.events(&mut sub, 4).await;
    drop(sub);
    // After the second event: the third and fourth again.
    let mut again = bus
        .subscribe("/data/ChangeEvents", CUSTOM, evs[1].replay_id.clone(), 10)
        .await
        .unwrap();
    let replayed = bus.events(&mut again, 2).await;
    assert_eq!(replayed[0].replay_id, evs[2].replay_id);
    assert_eq!(replayed[1].replay_id, evs[3].replay_id);
    // EARLIEST: all four.
    let mut earliest = bus
        .subscribe("/data/ChangeEvents", EARLIEST, vec![], 10)
        .await
        .unwrap();
    assert_eq!(
        bus.events(&mut earliest, 4).await[0].replay_id,
        evs[0].replay_id
    );

    // A replay id that is not one of ours.
    let err = bus
        .subscribe("/data/ChangeEvents", CUSTOM, vec![1, 2, 3], 1)
        .await
        .err()
        .unwrap();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(
        error_code(&err),
        "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted"
    );
    assert!(err.message().contains("rpcId: "));

    // Past the retention window (expired through the control API): even the newest id.
    let (s, b) = bus
        .org
        .control(Method::POST, "cdc/expire_replay_ids", json!({}))
        .await;
    assert_eq!((s.as_u16(), b["expired"].as_u64()), (200, Some(4)));
    for id in [&evs[0].replay_id, &evs[3].replay_id] {
        let err = bus
            .subscribe("/data/ChangeEvents", CUSTOM, id.clone(), 1)
            .await
            .err()
            .unwrap();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert_eq!(
            error_code(&err),
            "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted"
        );
    }
    // New events replay normally.
    let mut live = bus
        .subscribe("/data/ChangeEvents", LATEST, vec![], 5)
        .await
        .unwrap();
    bus.create_contact("AfterExpiry").await;
    let fresh = bus.events(&mut live, 1).await;
    let mut from_new = bus
        .subscribe("/data/ChangeEvents", EARLIEST, vec![], 5)
        .await
        .unwrap();
    assert_eq!(
        bus.events(&mut from_new, 1).await[0].replay_id,
        fresh[0].replay_id
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_sessions_and_unknown_topics_fail_as_documented() {
    let mut bus = Bus::start(&["Contact"]).await;
    // Wrong token.
    let mut req = Request::new(TopicRequest {
        topic_name: "/data/ContactChangeEvent".into(),
    });
    req.metadata_mut()
        .insert("accesstoken", "00D000000000001!ARnope".parse().unwrap());
    req.metadata_mut()
        .insert("instanceurl", bus.org.running.base_url().parse().unwrap());
    req.metadata_mut()
        .insert("tenantid", org_id(&bus.org).parse().unwrap());
    let err = bus.client.get_topic(req).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert_eq!(
        error_code(&err),
        "sfdc.platform.eventbus.grpc.service.auth.error"
    );
    // Another org's tenant id.
    let mut req = with_auth(
        &bus.org,
        TopicRequest {
            topic_name: "/data/ContactChangeEvent".into(),
        },
    );
    req.metadata_mut()
        .insert("tenantid", "00D000000000009AAA".parse().unwrap());
    assert_eq!(
        bus.client.get_topic(req).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    // An expired session ends a Subscribe before it starts.
    let (s, _) = bus
        .org
        .control(Method::POST, "expire_tokens", json!({}))
        .await;
    assert_eq!(s, 204);
    let err = bus
        .subscribe("/data/ContactChangeEvent", LATEST, vec![], 1)
        .await
        .err()
        .unwrap();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert_eq!(
        error_code(&err),
        "sfdc.platform.eventbus.grpc.service.auth.error"
    );

    let mut bus = Bus::start(&["Contact"]).await;
    for topic in [
        "/data/NopeChangeEvent",
        "/event/Order__e",
        "/data/contactChangeEvent",
    ] {
        let err = bus.subscribe(topic, LATEST, vec![], 1).await.err().unwrap();
        assert_eq!(err.code(), Code::NotFound, "{topic}");
        let err = bus
            .client
            .get_topic(with_auth(
                &bus.org,
                TopicRequest {
                    topic_name: topic.into(),
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::NotFound, "{topic}");
    }
    let err = bus
        .client
        .get_schema(with_auth(
            &bus.org,
            SchemaRequest {
                schema_id: "nope".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gap_overflow_and_dropped_streams_are_injected() {
    let mut bus = Bus::start(&["Contact"]).await;
    let mut sub = bus
        .subscribe("/data/ContactChangeEvent", LATEST, vec![], 10)
        .await
        .unwrap();
    let id = bus.create_contact("Gap").await;
    let (s, b) = bus
        .org
        .control(
            Method::POST,
            "cdc/gap",
            json!({"object": "Contact", "changeType": "GAP_UPDATE", "ids": [id]}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (s, _) = bus
        .org
        .control(Method::POST, "cdc/overflow", json!({"object": "Contact"}))
        .await;
    assert_eq!(s, 200);
    let (s, _) = bus
        .org
        .control(Method::POST, "cdc/gap", json!({"object": "Account"}))
        .await;
    assert_eq!(s, 400, "Account is not selected");
    let evs = bus.events(&mut sub, 3).await;
    assert_eq!(evs[1].kind(), "GAP_UPDATE");
    assert_eq!(evs[1].ids(), vec![id]);
    assert!(evs[1].field("Name").is_null() && evs[1].field("Phone").is_null());
    assert_eq!(evs[2].kind(), "GAP_OVERFLOW");
    assert!(evs[2].ids().is_empty());
    assert_eq!(evs[2].header("entityName").as_str(), Some("Contact"));

    let (s, b) = bus
        .org
        .control(Method::POST, "cdc/drop_streams", json!({}))
        .await;
    assert_eq!((s.as_u16(), b["dropped"].as_u64()), (200, Some(1)));
    let err = loop {
        match tokio::time::timeout(Duration::from_secs(5), sub.rx.message())
            .await
            .unwrap()
        {
            Ok(Some(r)) => assert!(r.events.is_empty()),
            Ok(None) => panic!("stream ended without a status"),
            Err(e) => break e,
        }
    };
    assert_eq!(err.code(), Code::Unavailable);
    // Resuming after the last event loses nothing.
    bus.create_contact("AfterDrop").await;
    let mut resumed = bus
        .subscribe(
            "/data/ContactChangeEvent",
            CUSTOM,
            evs[2].replay_id.clone(),
            10,
        )
        .await
        .unwrap();
    let after = bus.events(&mut resumed, 1).await;
    assert_eq!(
        after[0]
            .field("Name")
            .field("LastName")
            .and_then(Avro::as_str),
        Some("AfterDrop")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_transaction_per_request_and_rollbacks_publish_nothing() {
    let mut bus = Bus::start(&["Contact"]).await;
    let mut sub = bus
        .subscribe("/data/ChangeEvents", LATEST, vec![], 20)
        .await
        .unwrap();
    let ok = json!({"allOrNone": true, "records": [
        {"attributes": {"type": "Contact"}, "LastName": "Tx1"},
        {"attributes": {"type": "Contact"}, "LastName": "Tx2"}]});
    let (s, b) = bus.rest(Method::POST, "composite/sobjects", Some(ok)).await;
    assert_eq!(s, 200, "{b}");
    let failing = json!({"allOrNone": true, "records": [
        {"attributes": {"type": "Contact"}, "LastName": "Rolled"},
        {"attributes": {"type": "Contact"}, "Email": "no last name"}]});
    let (s, _) = bus
        .rest(Method::POST, "composite/sobjects", Some(failing))
        .await;
    assert!(s == 200 || s == 400);
    bus.create_contact("Single").await;
    let evs = bus.events(&mut sub, 3).await;
    let names: Vec<&str> = evs
        .iter()
        .map(|e| {
            e.field("Name")
                .field("LastName")
                .and_then(Avro::as_str)
                .unwrap()
        })
        .collect();
    assert_eq!(
        names,
        ["Tx1", "Tx2", "Single"],
        "the rolled-back create published nothing"
    );
    assert_eq!(
        evs[0].header("transactionKey"),
        evs[1].header("transactionKey")
    );
    assert_ne!(
        evs[0].header("transactionKey"),
        evs[2].header("transactionKey")
    );
    assert_eq!(evs[0].header("sequenceNumber").as_i64(), Some(1));
    assert_eq!(evs[1].header("sequenceNumber").as_i64(), Some(2));
    assert_eq!(evs[0].header("commitNumber"), evs[1].header("commitNumber"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_ingest_changes_are_captured_with_the_bulk_origin() {
    let mut bus = Bus::start(&["Contact"]).await;
    let mut sub = bus
        .subscribe("/data/ContactChangeEvent", LATEST, vec![], 10)
        .await
        .unwrap();
    let (s, job) = bus
        .rest(Method::POST, "jobs/ingest", Some(json!({"object": "Contact", "operation": "insert", "contentType": "CSV", "lineEnding": "LF"})))
        .await;
    assert_eq!(s, 200, "{job}");
    let id = job["id"].as_str().unwrap().to_string();
    let r = bus
        .org
        .http
        .put(bus.org.url(&format!("{V}/jobs/ingest/{id}/batches")))
        .header("Content-Type", "text/csv")
        .bearer_auth(&bus.org.token)
        .body("LastName,FirstName\nBulk1,A\nBulk2,B\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let (s, _) = bus
        .rest(
            Method::PATCH,
            &format!("jobs/ingest/{id}"),
            Some(json!({"state": "UploadComplete"})),
        )
        .await;
    assert_eq!(s, 200);
    let evs = bus.events(&mut sub, 2).await;
    assert!(evs.iter().all(|e| e.kind() == "CREATE"));
    assert_eq!(
        evs[0].header("changeOrigin").as_str(),
        Some("com/salesforce/api/bulkapi/61.0;client=sequin-test")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_streams_get_keepalives_and_overflow_threshold_applies() {
    let org_args = [
        "--pubsub-listen",
        "127.0.0.1:0",
        "--pubsub-keepalive-ms",
        "200",
        "--cdc-overflow-threshold",
        "2",
    ];
    let org = Org::start(&org_args).await;
    let addr = org.running.pubsub_addr().unwrap();
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut bus = Bus {
        org,
        client: PubSubClient::new(channel),
        schemas: HashMap::new(),
    };
    bus.select(&["Contact"]).await;
    let mut sub = bus
        .subscribe("/data/ChangeEvents", LATEST, vec![], 10)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let resp = sub.rx.message().await.unwrap().unwrap();
    assert!(resp.events.is_empty());
    assert_eq!(resp.latest_replay_id.len(), 8);
    assert_eq!(resp.pending_num_requested, 10);
    assert!(started.elapsed() < Duration::from_secs(2));
    // Three creates in one transaction with a threshold of two changes.
    let recs = json!({"allOrNone": true, "records": [
        {"attributes": {"type": "Contact"}, "LastName": "O1"},
        {"attributes": {"type": "Contact"}, "LastName": "O2"},
        {"attributes": {"type": "Contact"}, "LastName": "O3"}]});
    let (s, _) = bus
        .rest(Method::POST, "composite/sobjects", Some(recs))
        .await;
    assert_eq!(s, 200);
    let evs = bus.events(&mut sub, 3).await;
    let kinds: Vec<&str> = evs.iter().map(Event::kind).collect();
    assert_eq!(kinds, ["CREATE", "CREATE", "GAP_OVERFLOW"]);
    assert!(evs[2].ids().is_empty());
}

impl Bus {
    /// Creates a Tooling record (a channel or a member), asserting 201; returns its id.
    async fn tooling_create(&self, object: &str, body: serde_json::Value) -> String {
        let (s, b) = self
            .rest(
                Method::POST,
                &format!("tooling/sobjects/{object}"),
                Some(body),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        b["id"].as_str().unwrap().to_string()
    }

    async fn add_member(&self, channel: &str, entity: &str) -> String {
        self.tooling_create(
            "PlatformEventChannelMember",
            json!({"FullName": format!("{}_{entity}", channel.replace("__", "_")),
                   "Metadata": {"eventChannel": channel, "selectedEntity": entity}}),
        )
        .await
    }

    async fn create(&self, object: &str, body: serde_json::Value) {
        let (s, b) = self
            .rest(Method::POST, &format!("sobjects/{object}"), Some(body))
            .await;
        assert_eq!(s, 201, "{b}");
    }

    async fn topic_info(&mut self, topic: &str) -> Result<pubsub::TopicInfo, Status> {
        let req = with_auth(
            &self.org,
            TopicRequest {
                topic_name: topic.into(),
            },
        );
        self.client.get_topic(req).await.map(|r| r.into_inner())
    }
}

fn entity_names(evs: &[Event]) -> Vec<&str> {
    evs.iter()
        .map(|e| e.header("entityName").as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_channel_carries_its_members_events_only() {
    // Contact on the standard channel; Account and Lead only on Sales__chn.
    let mut bus = Bus::start(&["Contact"]).await;
    let channel = bus
        .tooling_create(
            "PlatformEventChannel",
            json!({"FullName": "Sales__chn", "Metadata": {"channelType": "data", "label": "Sales"}}),
        )
        .await;
    bus.add_member("Sales__chn", "AccountChangeEvent").await;
    let lead = bus.add_member("Sales__chn", "LeadChangeEvent").await;
    let topic = pubsub::channel::custom_channel_topic("Sales__chn");
    let mut sales = bus.subscribe(&topic, LATEST, vec![], 100).await.unwrap();
    let mut standard = bus
        .subscribe("/data/ChangeEvents", LATEST, vec![], 100)
        .await
        .unwrap();
    let mut accounts = bus
        .subscribe("/data/AccountChangeEvent", LATEST, vec![], 100)
        .await
        .unwrap();

    bus.create_contact("Standard").await;
    bus.create("Account", json!({"Name": "Acme"})).await;
    bus.create("Lead", json!({"LastName": "Lee", "Company": "Acme"}))
        .await;
    // Selected nowhere: no event anywhere.
    bus.create("Opportunity", support::opportunity(10.0)).await;
    // The last event of each stream shows nothing else came before it.
    bus.create_contact("Last").await;

    let evs = bus.events(&mut sales, 2).await;
    assert_eq!(entity_names(&evs), ["Account", "Lead"]);
    let evs = bus.events(&mut standard, 2).await;
    assert_eq!(entity_names(&evs), ["Contact", "Contact"]);
    // An object's own channel carries it when a custom channel selects it.
    let evs = bus.events(&mut accounts, 1).await;
    assert_eq!(entity_names(&evs), ["Account"]);

    // Membership changes reach the open stream: Opportunity in, Lead out.
    bus.add_member("Sales__chn", "OpportunityChangeEvent").await;
    let (s, _) = bus
        .rest(
            Method::DELETE,
            &format!("tooling/sobjects/PlatformEventChannelMember/{lead}"),
            None,
        )
        .await;
    assert_eq!(s, 204);
    bus.create("Lead", json!({"LastName": "Gone", "Company": "Acme"}))
        .await;
    bus.create("Opportunity", support::opportunity(20.0)).await;
    bus.create("Account", json!({"Name": "Last"})).await;
    let evs = bus.events(&mut sales, 2).await;
    assert_eq!(entity_names(&evs), ["Opportunity", "Account"]);

    // GetTopic: subscribable, no single schema.
    let info = bus.topic_info(&topic).await.unwrap();
    assert!(info.can_subscribe && !info.can_publish);
    assert_eq!(info.schema_id, "");
    // Unknown or misspelt custom channels do not exist; nor does a deleted one.
    for unknown in ["/data/Nope__chn", "/data/sales__chn"] {
        let err = bus
            .subscribe(unknown, LATEST, vec![], 1)
            .await
            .err()
            .unwrap();
        assert_eq!(err.code(), Code::NotFound, "{unknown}");
        assert_eq!(error_code(&err), pubsub::errors::TOPIC_NOT_FOUND);
        let err = bus.topic_info(unknown).await.unwrap_err();
        assert_eq!(err.code(), Code::NotFound, "{unknown}");
    }
    let (s, _) = bus
        .rest(
            Method::DELETE,
            &format!("tooling/sobjects/PlatformEventChannel/{channel}"),
            None,
        )
        .await;
    assert_eq!(s, 204);
    assert_eq!(
        bus.topic_info(&topic).await.unwrap_err().code(),
        Code::NotFound
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_custom_channels_replay_their_own_events() {
    let mut bus = Bus::start(&[]).await;
    for name in ["Sales__chn", "Cases__chn"] {
        bus.tooling_create(
            "PlatformEventChannel",
            json!({"FullName": name, "Metadata": {"channelType": "data", "label": name}}),
        )
        .await;
    }
    bus.add_member("Sales__chn", "AccountChangeEvent").await;
    bus.add_member("Cases__chn", "CaseChangeEvent").await;
    bus.add_member("Cases__chn", "AccountChangeEvent").await;
    bus.create("Account", json!({"Name": "Acme"})).await;
    bus.create("Case", json!({"Subject": "Broken"})).await;
    bus.create("Account", json!({"Name": "Last"})).await;
    let mut sales = bus
        .subscribe("/data/Sales__chn", EARLIEST, vec![], 10)
        .await
        .unwrap();
    let evs = bus.events(&mut sales, 2).await;
    assert_eq!(entity_names(&evs), ["Account", "Account"]);
    let mut cases = bus
        .subscribe("/data/Cases__chn", EARLIEST, vec![], 10)
        .await
        .unwrap();
    let evs = bus.events(&mut cases, 3).await;
    assert_eq!(entity_names(&evs), ["Account", "Case", "Account"]);
    // Nothing was on the standard channel.
    let mut standard = bus
        .subscribe("/data/ChangeEvents", EARLIEST, vec![], 10)
        .await
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(3), standard.rx.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(resp.events.is_empty(), "a keepalive, no events");
}
