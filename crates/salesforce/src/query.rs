//! SOQL over REST: query, queryAll, continuation pages, counts.

use reqwest::header::HeaderName;
use reqwest::Method;
use serde::{Deserialize, Serialize};
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

    /// Fetches the page a previous page's `next_records_url` points to.
    pub async fn query_more(&self, next_records_url: &str) -> Result<QueryPage> {
        if !next_records_url.starts_with("/services/data/") {
            return Err(Error::Config(format!(
                "next records URL {next_records_url:?} is not a /services/data/ path"
            )));
        }
        self.execute(RequestSpec::new(Method::GET, next_records_url))
            .await?
            .json("query page")
    }

    /// Runs a `SELECT COUNT() FROM ...` query and returns its `totalSize`.
    pub async fn count(&self, soql: &str) -> Result<u64> {
        Ok(self.query(soql, None).await?.total_size)
    }

    async fn run_query(
        &self,
        resource: &str,
        soql: &str,
        batch_size: Option<u32>,
    ) -> Result<QueryPage> {
        let mut spec = RequestSpec::new(Method::GET, resource).query("q", soql);
        if let Some(n) = batch_size {
            spec = spec.header(query_options(), batch_size_header(n));
        }
        self.execute(spec).await?.json("query page")
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
    fn batch_size_is_clamped() {
        assert_eq!(batch_size_header(10), "batchSize=200");
        assert_eq!(batch_size_header(500), "batchSize=500");
        assert_eq!(batch_size_header(5000), "batchSize=2000");
    }
}
