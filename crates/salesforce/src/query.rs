//! SOQL over REST: query, queryAll, continuation pages, counts.

use reqwest::header::HeaderName;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::client::Client;
use crate::de::null_default;
use crate::error::{Error, Result};
use crate::http::RequestSpec;

/// One page of query results.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryPage {
    #[serde(default, deserialize_with = "null_default")]
    pub total_size: u64,
    #[serde(default = "yes")]
    pub done: bool,
    /// Path of the next page (`/services/data/v61.0/query/01g...-2000`); `None` when done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_records_url: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub records: Vec<Map<String, Value>>,
}

fn yes() -> bool {
    true
}

/// One page of query results with the records left as the JSON text Salesforce sent
/// (an array), for callers that hand them on (e.g. to Postgres' `jsonb_to_recordset`)
/// without building a map per record.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawQueryPage {
    #[serde(default, deserialize_with = "null_default")]
    pub total_size: u64,
    #[serde(default = "yes")]
    pub done: bool,
    #[serde(default)]
    pub next_records_url: Option<String>,
    #[serde(default = "empty_array")]
    pub records: Box<RawValue>,
    /// Records Salesforce sent that the caller took out of `records` since (by
    /// [`RawQueryPage::with_records`]): a page's length says whether a query with a
    /// LIMIT has more only with them counted.
    #[serde(skip)]
    pub left_out: usize,
}

fn empty_array() -> Box<RawValue> {
    RawValue::from_string("[]".to_string()).expect("[] is JSON")
}

impl RawQueryPage {
    /// The records as JSON text: `[{"attributes":{...},"Id":"003...",...},...]`.
    pub fn records_json(&self) -> &str {
        self.records.get()
    }

    /// How many records the page holds (walks the JSON without building values).
    pub fn record_count(&self) -> Result<usize> {
        serde_json::from_str::<Vec<serde::de::IgnoredAny>>(self.records.get())
            .map(|v| v.len())
            .map_err(|e| Error::Decode(format!("query page records: {e}")))
    }

    /// The page with `records` in place of its own (those it no longer holds counted in
    /// `left_out`): a page of a wide object joined from the queries of its field groups.
    pub fn with_records(mut self, records: &[Map<String, Value>]) -> Result<RawQueryPage> {
        let before = self.record_count()?;
        self.left_out += before.saturating_sub(records.len());
        let text = serde_json::to_string(records)
            .map_err(|e| Error::Decode(format!("query page records: {e}")))?;
        self.records = RawValue::from_string(text)
            .map_err(|e| Error::Decode(format!("query page records: {e}")))?;
        Ok(self)
    }

    /// Parses the records into maps, as [`QueryPage`] holds them.
    pub fn parse_records(&self) -> Result<Vec<Map<String, Value>>> {
        serde_json::from_str(self.records.get())
            .map_err(|e| Error::Decode(format!("query page records: {e}")))
    }
}

/// Salesforce accepts 200..=2000 and treats the value as a hint.
pub const MIN_BATCH_SIZE: u32 = 200;
pub const MAX_BATCH_SIZE: u32 = 2000;

pub(crate) fn batch_size_header(batch_size: u32) -> String {
    format!(
        "batchSize={}",
        batch_size.clamp(MIN_BATCH_SIZE, MAX_BATCH_SIZE)
    )
}

fn query_options() -> HeaderName {
    HeaderName::from_static("sforce-query-options")
}

impl Client {
    /// `GET /query?q=`: live records only. `batch_size` (200..2000) sets
    /// `Sforce-Query-Options`; Salesforce may return other page sizes.
    pub async fn query(&self, soql: &str, batch_size: Option<u32>) -> Result<QueryPage> {
        self.run_query("query", soql, batch_size).await
    }

    /// `GET /queryAll?q=`: includes soft-deleted and archived records (`IsDeleted`).
    pub async fn query_all(&self, soql: &str, batch_size: Option<u32>) -> Result<QueryPage> {
        self.run_query("queryAll", soql, batch_size).await
    }

    /// `GET /tooling/query?q=`: SOQL on Tooling API objects (setup and metadata, such
    /// as PlatformEventChannelMember). The answer is a query page like REST's (plus
    /// `size`, `entityTypeName`, which are not kept); its `next_records_url` (under
    /// `/tooling/query/`) goes to [`Client::query_more`].
    pub async fn tooling_query(&self, soql: &str) -> Result<QueryPage> {
        self.run_query("tooling/query", soql, None).await
    }

    /// Fetches the page a previous page's `next_records_url` points to.
    pub async fn query_more(&self, next_records_url: &str) -> Result<QueryPage> {
        check_next_url(next_records_url)?;
        self.execute(RequestSpec::new(Method::GET, next_records_url))
            .await?
            .json("query page")
    }

    /// [`Client::query`] with the records left as JSON text.
    pub async fn query_raw(&self, soql: &str, batch_size: Option<u32>) -> Result<RawQueryPage> {
        self.execute(query_spec("query", soql, batch_size))
            .await?
            .json("query page")
    }

    /// [`Client::query_all`] with the records left as JSON text.
    pub async fn query_all_raw(&self, soql: &str, batch_size: Option<u32>) -> Result<RawQueryPage> {
        self.execute(query_spec("queryAll", soql, batch_size))
            .await?
            .json("query page")
    }

    /// [`Client::query_more`] with the records left as JSON text.
    pub async fn query_more_raw(&self, next_records_url: &str) -> Result<RawQueryPage> {
        check_next_url(next_records_url)?;
        self.execute(RequestSpec::new(Method::GET, next_records_url))
            .await?
            .json("query page")
    }

    /// Runs a `SELECT COUNT() FROM ...` query and returns its `totalSize`.
    pub async fn count(&self, soql: &str) -> Result<u64> {
        Ok(self.query(soql, None).await?.total_size)
    }

    /// [`Client::count`] through `/queryAll`: archived and soft-deleted records count
    /// too (unless the query's WHERE leaves them out).
    pub async fn count_all(&self, soql: &str) -> Result<u64> {
        Ok(self.query_all(soql, None).await?.total_size)
    }

    async fn run_query(
        &self,
        resource: &str,
        soql: &str,
        batch_size: Option<u32>,
    ) -> Result<QueryPage> {
        self.execute(query_spec(resource, soql, batch_size))
            .await?
            .json("query page")
    }
}

fn query_spec(resource: &str, soql: &str, batch_size: Option<u32>) -> RequestSpec {
    let mut spec = RequestSpec::new(Method::GET, resource).query("q", soql);
    if let Some(n) = batch_size {
        spec = spec.header(query_options(), batch_size_header(n));
    }
    spec
}

fn check_next_url(next_records_url: &str) -> Result<()> {
    if next_records_url.starts_with("/services/data/") {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "next records URL {next_records_url:?} is not a /services/data/ path"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_query_page() {
        let body = r#"{"totalSize":3222,"done":false,
          "nextRecordsUrl":"/services/data/v61.0/query/01gXX-2000",
          "records":[{"attributes":{"type":"Contact","url":"/x"},"Id":"003A","Name":"N",
                      "Account":null,"Owner":{"attributes":{"type":"User"},"Name":"O"}}]}"#;
        let p: QueryPage = serde_json::from_str(body).unwrap();
        assert_eq!(p.total_size, 3222);
        assert!(!p.done);
        assert_eq!(
            p.next_records_url.as_deref(),
            Some("/services/data/v61.0/query/01gXX-2000")
        );
        assert_eq!(p.records[0]["Id"], "003A");
        assert!(p.records[0]["Account"].is_null());
        let last: QueryPage =
            serde_json::from_str(r#"{"totalSize":1,"done":true,"records":[]}"#).unwrap();
        assert!(last.done && last.next_records_url.is_none());
    }

    #[test]
    fn raw_page_keeps_record_text() {
        let body = r#"{"totalSize":2,"done":false,"nextRecordsUrl":"/services/data/v61.0/query/x-1",
          "records":[{"attributes":{"type":"Contact"},"Id":"003A","Name":"Ünïcode \"q\""},{"Id":"003B"}]}"#;
        let p: RawQueryPage = serde_json::from_str(body).unwrap();
        assert_eq!(p.total_size, 2);
        assert!(!p.done);
        assert!(p.records_json().starts_with("[{\"attributes\""));
        assert_eq!(p.record_count().unwrap(), 2);
        let parsed = p.parse_records().unwrap();
        assert_eq!(parsed[0]["Name"], "Ünïcode \"q\"");
        let empty: RawQueryPage = serde_json::from_str(r#"{"totalSize":0,"done":true}"#).unwrap();
        assert_eq!(empty.records_json(), "[]");
        assert_eq!(empty.record_count().unwrap(), 0);
    }

    #[test]
    fn batch_size_is_clamped() {
        assert_eq!(batch_size_header(10), "batchSize=200");
        assert_eq!(batch_size_header(500), "batchSize=500");
        assert_eq!(batch_size_header(5000), "batchSize=2000");
    }
}
