//! The connection to a Pub/Sub endpoint: one HTTP/2 channel, the session metadata on
//! every call, GetTopic, and GetSchema with a cache by schema id.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use ::pubsub::avro::Schema;
use ::pubsub::pub_sub_client::PubSubClient;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use super::fields::ObjectTypes;
use super::status::{error_from_status, Call, PubSubErrorKind};
use super::subscription::{Replay, Subscription};
use crate::auth::Session;
use crate::client::Client;
use crate::describe::SObjectDescribe;
use crate::error::{Error, Result};

/// Salesforce's global Pub/Sub endpoint ("Pub/Sub API Endpoints": port 443 or 7443).
pub const SALESFORCE_PUBSUB_ENDPOINT: &str = "https://api.pubsub.salesforce.com:7443";

/// Largest gRPC message accepted: a FetchResponse holds up to 100 events, each up to
/// about 1 MB of Avro, so tonic's 4 MB default is too small.
const MAX_MESSAGE_BYTES: usize = 128 * 1024 * 1024;

/// Where and how to reach the Pub/Sub API.
#[derive(Debug, Clone)]
pub struct PubSubConfig {
    /// `https://host:port` (TLS) or `http://host:port` (plain, for the emulator); a
    /// bare `host:port` means TLS.
    pub endpoint: String,
    /// Extra trusted root certificates (PEM), e.g. the emulator's test CA; the webpki
    /// roots are always trusted.
    pub extra_root_ca_pem: Option<String>,
    pub connect_timeout: Duration,
    /// HTTP/2 pings on an idle connection, so a dead one is noticed between
    /// keepalive FetchResponses (which Salesforce sends only every 270 seconds).
    pub http2_keepalive: Duration,
}

impl PubSubConfig {
    /// Defaults: 10 s to connect, HTTP/2 pings every 60 s, webpki roots only.
    pub fn new(endpoint: impl Into<String>) -> PubSubConfig {
        PubSubConfig {
            endpoint: endpoint.into(),
            extra_root_ca_pem: None,
            connect_timeout: Duration::from_secs(10),
            http2_keepalive: Duration::from_secs(60),
        }
    }
}

/// GetTopic's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub topic_name: String,
    /// The org id the topic belongs to.
    pub tenant_guid: String,
    pub can_publish: bool,
    pub can_subscribe: bool,
    /// The schema of the topic's events; empty when events of several schemas share
    /// it (`/data/ChangeEvents` on the emulator; unconfirmed for Salesforce).
    pub schema_id: String,
}

/// A schema from GetSchema, parsed.
#[derive(Debug)]
pub struct EventSchema {
    pub id: String,
    pub json: String,
    pub avro: Schema,
}

/// A Pub/Sub API connection that authenticates with a REST [`Client`]'s session.
/// Cheap to clone; clones share the channel and the caches.
#[derive(Clone)]
pub struct PubSub {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    endpoint: String,
    grpc: PubSubClient<Channel>,
    schemas: Mutex<HashMap<String, Arc<EventSchema>>>,
    types: RwLock<HashMap<String, Arc<ObjectTypes>>>,
}

impl std::fmt::Debug for PubSub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PubSub")
            .field("endpoint", &self.inner.endpoint)
            .finish()
    }
}

/// The endpoint URL with a scheme, and whether it uses TLS.
fn endpoint_url(endpoint: &str) -> Result<(String, bool)> {
    let e = endpoint.trim().trim_end_matches('/');
    if e.is_empty() {
        return Err(Error::Config("the Pub/Sub endpoint is empty".into()));
    }
    if e.starts_with("http://") {
        Ok((e.to_string(), false))
    } else if e.starts_with("https://") {
        Ok((e.to_string(), true))
    } else if e.contains("://") {
        Err(Error::Config(format!(
            "Pub/Sub endpoint {e:?}: use https://host:port (or http:// for a plain emulator)"
        )))
    } else {
        Ok((format!("https://{e}"), true))
    }
}

fn endpoint(config: &PubSubConfig) -> Result<Endpoint> {
    let (url, tls) = endpoint_url(&config.endpoint)?;
    let bad = |e: &dyn std::fmt::Display| Error::Config(format!("Pub/Sub endpoint {url}: {e}"));
    let mut ep = Endpoint::from_shared(url.clone())
        .map_err(|e| bad(&e))?
        .connect_timeout(config.connect_timeout)
        .http2_keep_alive_interval(config.http2_keepalive)
        .keep_alive_while_idle(true)
        .tcp_nodelay(true);
    if tls {
        let mut tls_config = ClientTlsConfig::new().with_webpki_roots();
        if let Some(pem) = &config.extra_root_ca_pem {
            tls_config = tls_config.ca_certificate(tonic::transport::Certificate::from_pem(pem));
        }
        ep = ep.tls_config(tls_config).map_err(|e| bad(&e))?;
    } else if config.extra_root_ca_pem.is_some() {
        return Err(bad(&"a root CA was given for a plain http:// endpoint"));
    }
    Ok(ep)
}

impl PubSub {
    /// Opens the HTTP/2 connection (logging in through `client` first if it has no
    /// session yet, since every call needs one). Fails with [`Error::Connect`] when
    /// the endpoint cannot be reached.
    pub async fn connect(client: &Client, config: PubSubConfig) -> Result<PubSub> {
        let ep = endpoint(&config)?;
        client.session_for_metadata(None).await?;
        let channel = ep.connect().await.map_err(|e| {
            Error::Connect(format!(
                "Pub/Sub endpoint {}: {}",
                config.endpoint,
                error_chain(&e)
            ))
        })?;
        let grpc = PubSubClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        Ok(PubSub {
            inner: Arc::new(Inner {
                client: client.clone(),
                endpoint: config.endpoint,
                grpc,
                schemas: Mutex::new(HashMap::new()),
                types: RwLock::new(HashMap::new()),
            }),
        })
    }

    /// The REST client whose session the calls use.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// Registers an object's describe, so its events' values follow the field types
    /// (dates as dates) and its compound components map to the object's field names.
    pub fn register_describe(&self, describe: &SObjectDescribe) {
        let types = Arc::new(ObjectTypes::from_describe(describe));
        if let Ok(mut t) = self.inner.types.write() {
            t.insert(describe.name.clone(), types);
        }
    }

    /// Like [`register_describe`](Self::register_describe), from the fields a caller
    /// kept: (name, describe type such as `date`, compound field it belongs to).
    pub fn register_fields(
        &self,
        object: &str,
        fields: impl IntoIterator<Item = (String, String, Option<String>)>,
    ) {
        let types = Arc::new(ObjectTypes::from_fields(fields.into_iter().map(
            |(name, t, compound)| (name, crate::describe::FieldType::parse(&t), compound),
        )));
        if let Ok(mut t) = self.inner.types.write() {
            t.insert(object.to_string(), types);
        }
    }

    pub(crate) fn types_of(&self, entity: &str) -> Option<Arc<ObjectTypes>> {
        self.inner.types.read().ok()?.get(entity).cloned()
    }

    pub(crate) fn grpc(&self) -> PubSubClient<Channel> {
        self.inner.grpc.clone()
    }

    /// `msg` with the session's `accesstoken`, `instanceurl` and `tenantid` metadata.
    pub(crate) fn request<T>(&self, session: &Session, msg: T) -> Result<tonic::Request<T>> {
        let org_id = session.org_id.as_deref().ok_or_else(|| {
            Error::Config(
                "the session has no org id (tenantid), which the Pub/Sub API requires".into(),
            )
        })?;
        let mut req = tonic::Request::new(msg);
        let meta = req.metadata_mut();
        for (key, value) in [
            (::pubsub::META_ACCESS_TOKEN, session.access_token.as_str()),
            (::pubsub::META_INSTANCE_URL, session.instance_url.as_str()),
            (::pubsub::META_TENANT_ID, org_id),
        ] {
            let v = value.parse().map_err(|_| {
                Error::Config(format!("the session's {key} is not valid gRPC metadata"))
            })?;
            meta.insert(key, v);
        }
        Ok(req)
    }

    /// The current session, or a fresh one when `stale` is the generation of a token
    /// the Pub/Sub API refused.
    pub(crate) async fn session(&self, stale: Option<u64>) -> Result<Arc<Session>> {
        self.inner.client.session_for_metadata(stale).await
    }

    /// Runs a unary call; on an auth failure refreshes the session once and retries.
    async fn unary<T, R, F, Fut>(&self, call: Call, msg: T, send: F) -> Result<R>
    where
        T: Clone,
        F: Fn(PubSubClient<Channel>, tonic::Request<T>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<R>, tonic::Status>>,
    {
        let mut session = self.session(None).await?;
        let mut refreshed = false;
        loop {
            let req = self.request(&session, msg.clone())?;
            match send(self.grpc(), req).await {
                Ok(resp) => return Ok(resp.into_inner()),
                Err(status) => {
                    let err = error_from_status(&status, call);
                    if err.pubsub_error_kind() == Some(PubSubErrorKind::Auth) && !refreshed {
                        refreshed = true;
                        session = self.session(Some(session.generation)).await?;
                        continue;
                    }
                    return Err(err);
                }
            }
        }
    }

    /// GetTopic: whether the topic exists for this org and what its schema is.
    pub async fn topic(&self, topic_name: &str) -> Result<TopicInfo> {
        let msg = ::pubsub::TopicRequest {
            topic_name: topic_name.to_string(),
        };
        let info = self
            .unary(
                Call::Topic,
                msg,
                |mut c, r| async move { c.get_topic(r).await },
            )
            .await?;
        Ok(TopicInfo {
            topic_name: info.topic_name,
            tenant_guid: info.tenant_guid,
            can_publish: info.can_publish,
            can_subscribe: info.can_subscribe,
            schema_id: info.schema_id,
        })
    }

    /// GetSchema, cached by id: a schema id names one schema forever ("Schema
    /// fingerprint", pubsub_api.proto), so each is fetched once.
    pub async fn schema(&self, schema_id: &str) -> Result<Arc<EventSchema>> {
        if let Some(s) = self.cached_schema(schema_id) {
            return Ok(s);
        }
        let msg = ::pubsub::SchemaRequest {
            schema_id: schema_id.to_string(),
        };
        let info = self
            .unary(Call::Schema, msg, |mut c, r| async move {
                c.get_schema(r).await
            })
            .await?;
        let avro = Schema::parse(&info.schema_json).map_err(|e| {
            Error::Decode(format!(
                "schema {schema_id} is not a valid Avro schema: {e}"
            ))
        })?;
        let schema = Arc::new(EventSchema {
            id: schema_id.to_string(),
            json: info.schema_json,
            avro,
        });
        if let Ok(mut cache) = self.inner.schemas.lock() {
            cache.insert(schema_id.to_string(), schema.clone());
        }
        Ok(schema)
    }

    fn cached_schema(&self, schema_id: &str) -> Option<Arc<EventSchema>> {
        self.inner.schemas.lock().ok()?.get(schema_id).cloned()
    }

    /// How many schemas were fetched and kept so far.
    pub fn cached_schemas(&self) -> usize {
        self.inner.schemas.lock().map(|c| c.len()).unwrap_or(0)
    }

    /// Subscribes to `topic_name` (`/data/ChangeEvents`, `/data/ContactChangeEvent`,
    /// ...) from `replay`, asking for `batch` events at a time (1 to 100). Fails at once
    /// on a bad session, an unknown topic or an invalid replay id.
    pub async fn subscribe(
        &self,
        topic_name: &str,
        replay: Replay,
        batch: i32,
    ) -> Result<Subscription> {
        Subscription::open(self.clone(), topic_name, replay, batch).await
    }
}

/// A transport error with its causes, which tonic keeps out of its Display.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_default_to_tls() {
        assert_eq!(
            endpoint_url("api.pubsub.salesforce.com:7443").unwrap(),
            ("https://api.pubsub.salesforce.com:7443".into(), true)
        );
        assert_eq!(
            endpoint_url("http://127.0.0.1:9000/").unwrap(),
            ("http://127.0.0.1:9000".into(), false)
        );
        assert!(endpoint_url("grpc://x:1").is_err());
        assert!(endpoint_url(" ").is_err());
    }
}
