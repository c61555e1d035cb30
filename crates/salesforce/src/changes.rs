//! `/updated` and `/deleted`: the ids changed or deleted in a time window.

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::Deserialize;

use crate::client::Client;
use crate::de::{format_datetime, null_default, opt_datetime};
use crate::error::Result;
use crate::http::RequestSpec;

/// `GET /sobjects/{Name}/updated/`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdatedIds {
    #[serde(default, deserialize_with = "null_default")]
    pub ids: Vec<String>,
    #[serde(default, deserialize_with = "opt_datetime")]
    pub latest_date_covered: Option<DateTime<Utc>>,
}

/// `GET /sobjects/{Name}/deleted/`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeletedRecords {
    #[serde(default, deserialize_with = "null_default")]
    pub deleted_records: Vec<DeletedRecord>,
    #[serde(default, deserialize_with = "opt_datetime")]
    pub earliest_date_available: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "opt_datetime")]
    pub latest_date_covered: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeletedRecord {
    pub id: String,
    #[serde(deserialize_with = "crate::de::datetime")]
    pub deleted_date: DateTime<Utc>,
}

impl Client {
    /// Ids of records of `object` updated between `start` and `end` (at most 30 days back).
    pub async fn updated(
        &self,
        object: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<UpdatedIds> {
        self.change_window(object, "updated", start, end).await
    }

    /// Records of `object` deleted between `start` and `end` (at most 15 days back),
    /// including those already purged from the recycle bin.
    pub async fn deleted(
        &self,
        object: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<DeletedRecords> {
        self.change_window(object, "deleted", start, end).await
    }

    /// `GET /sobjects/{object}/{resource}/?start=..&end=..`.
    async fn change_window<T: serde::de::DeserializeOwned>(
        &self,
        object: &str,
        resource: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<T> {
        let spec = RequestSpec::new(
            Method::GET,
            format!("sobjects/{}/{resource}/", crate::path_segment(object)?),
        )
        .query("start", format_datetime(start))
        .query("end", format_datetime(end));
        self.execute(spec)
            .await?
            .json(&format!("{resource} records of {object}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_deleted() {
        let body = r#"{"deletedRecords":[{"id":"003A","deletedDate":"2013-05-07T22:07:19.000+0000"}],
                       "earliestDateAvailable":"2013-05-03T15:57:00.000+0000",
                       "latestDateCovered":"2013-05-08T21:20:00.000+0000"}"#;
        let d: DeletedRecords = serde_json::from_str(body).unwrap();
        assert_eq!(d.deleted_records[0].id, "003A");
        assert_eq!(
            d.deleted_records[0].deleted_date.to_rfc3339(),
            "2013-05-07T22:07:19+00:00"
        );
        assert!(d.latest_date_covered.is_some());
        let u: UpdatedIds = serde_json::from_str(
            r#"{"ids":["a","b"],"latestDateCovered":"2013-05-08T21:20:00.000+0000"}"#,
        )
        .unwrap();
        assert_eq!(u.ids.len(), 2);
    }
}
