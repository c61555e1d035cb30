//! `POST /composite`: up to 25 subrequests (at most 5 queries or collection
//! operations) in one API call.

use std::collections::BTreeMap;

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::client::Client;
use crate::de::null_default;
use crate::error::{ApiError, Error, Result};
use crate::http::{parse_error_body, RequestSpec};
use crate::query::{batch_size_header, QueryPage};
use crate::sobjects::{collection_body, delete_query, upsert_path, SaveResult, COLLECTIONS};

/// Salesforce's cap on subrequests per composite request.
pub const MAX_SUBREQUESTS: usize = 25;
/// Salesforce's cap on query and sObject Collections subrequests per composite request.
pub const MAX_QUERY_OR_COLLECTION_SUBREQUESTS: usize = 5;

/// One subrequest. `url` is a full path (`/services/data/v61.0/...`); build them with
/// the `Client::*_subrequest` helpers so the version matches the client's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompositeSubrequest {
    pub method: String,
    pub url: String,
    pub reference_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub http_headers: BTreeMap<String, String>,
}

/// One subresponse, in the order of the subrequests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompositeSubresponse {
    #[serde(default)]
    pub body: Value,
    #[serde(default, deserialize_with = "null_default")]
    pub http_headers: BTreeMap<String, String>,
    pub http_status_code: u16,
    pub reference_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CompositeResponse {
    composite_response: Vec<CompositeSubresponse>,
}

impl CompositeSubresponse {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.http_status_code)
    }

    /// The subrequest's error as an [`Error::Api`], or `None` when it succeeded.
    pub fn error(&self) -> Option<Error> {
        if self.is_success() {
            return None;
        }
        let errors: Vec<ApiError> =
            serde_json::from_value(self.body.clone()).unwrap_or_else(|_| {
                parse_error_body(self.http_status_code, self.body.to_string().as_bytes())
            });
        Some(Error::Api {
            status: self.http_status_code,
            errors,
            retry_after: None,
        })
    }

    /// Reads a query subresponse as a page, or returns the subrequest's error.
    pub fn into_query_page(self) -> Result<QueryPage> {
        if let Some(e) = self.error() {
            return Err(e);
        }
        serde_json::from_value(self.body)
            .map_err(|e| Error::Decode(format!("composite query subresponse: {e}")))
    }

    /// Reads a collection subresponse as save results, or returns its error.
    pub fn into_save_results(self) -> Result<Vec<SaveResult>> {
        if let Some(e) = self.error() {
            return Err(e);
        }
        serde_json::from_value(self.body)
            .map_err(|e| Error::Decode(format!("composite collection subresponse: {e}")))
    }

    /// Reads any successful subresponse body as `T`.
    pub fn into_body<T: serde::de::DeserializeOwned>(self) -> Result<T> {
        if let Some(e) = self.error() {
            return Err(e);
        }
        serde_json::from_value(self.body)
            .map_err(|e| Error::Decode(format!("composite subresponse: {e}")))
    }
}

/// Salesforce limits these per composite request: queries (and their continuations)
/// and sObject Collections calls.
fn is_query_or_collection(url: &str) -> bool {
    let path = url.split('?').next().unwrap_or(url);
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    // Skip `services/data/vNN.N` (or a bare `vNN.N`) to the resource.
    let rest: &[&str] = match segments
        .iter()
        .position(|s| s.starts_with('v') && s.contains('.'))
    {
        Some(i) => &segments[i + 1..],
        None => &segments,
    };
    matches!(
        rest,
        ["query" | "queryAll", ..] | ["composite", "sobjects", ..]
    )
}

impl Client {
    /// Sends the subrequests as one `/composite` call (one API request against the
    /// quota). Each subresponse carries its own status: inspect them individually.
    pub async fn composite(
        &self,
        all_or_none: bool,
        subrequests: Vec<CompositeSubrequest>,
    ) -> Result<Vec<CompositeSubresponse>> {
        if subrequests.is_empty() {
            return Ok(Vec::new());
        }
        if subrequests.len() > MAX_SUBREQUESTS {
            return Err(Error::Config(format!(
                "{} subrequests in one composite request; the limit is {MAX_SUBREQUESTS}",
                subrequests.len()
            )));
        }
        let heavy = subrequests
            .iter()
            .filter(|s| is_query_or_collection(&s.url))
            .count();
        if heavy > MAX_QUERY_OR_COLLECTION_SUBREQUESTS {
            return Err(Error::Config(format!(
                "{heavy} query or sObject Collections subrequests in one composite request; \
                 the limit is {MAX_QUERY_OR_COLLECTION_SUBREQUESTS} (split them over several calls)"
            )));
        }
        let body = json!({ "allOrNone": all_or_none, "compositeRequest": subrequests });
        let response: CompositeResponse = self
            .execute(RequestSpec::new(Method::POST, "composite").json(body))
            .await?
            .json("composite response")?;
        Ok(response.composite_response)
    }

    fn subrequest(
        &self,
        method: &str,
        reference_id: &str,
        url: String,
        body: Option<Value>,
    ) -> CompositeSubrequest {
        CompositeSubrequest {
            method: method.to_string(),
            url,
            reference_id: reference_id.to_string(),
            body,
            http_headers: BTreeMap::new(),
        }
    }

    /// A `GET query` (or `queryAll`) subrequest.
    pub fn query_subrequest(
        &self,
        reference_id: &str,
        soql: &str,
        query_all: bool,
        batch_size: Option<u32>,
    ) -> CompositeSubrequest {
        let resource = if query_all { "queryAll" } else { "query" };
        let q: String = url::form_urlencoded::byte_serialize(soql.as_bytes()).collect();
        let mut sub = self.subrequest(
            "GET",
            reference_id,
            format!("{}/{resource}?q={q}", self.data_path()),
            None,
        );
        if let Some(n) = batch_size {
            sub.http_headers
                .insert("Sforce-Query-Options".into(), batch_size_header(n));
        }
        sub
    }

    /// A subrequest fetching the page behind a `next_records_url`.
    pub fn query_more_subrequest(
        &self,
        reference_id: &str,
        next_records_url: &str,
    ) -> CompositeSubrequest {
        self.subrequest("GET", reference_id, next_records_url.to_string(), None)
    }

    /// A `GET` subrequest on a path relative to the versioned root
    /// (e.g. `sobjects/Contact/deleted/?start=...&end=...`).
    pub fn get_subrequest(&self, reference_id: &str, relative_path: &str) -> CompositeSubrequest {
        self.versioned_subrequest(
            "GET",
            reference_id,
            relative_path.trim_start_matches('/'),
            None,
        )
    }

    /// A `POST /composite/sobjects` (create) subrequest.
    pub fn create_records_subrequest(
        &self,
        reference_id: &str,
        object: &str,
        records: &[Map<String, Value>],
        all_or_none: bool,
    ) -> Result<CompositeSubrequest> {
        let body = collection_body(object, records, all_or_none)?;
        Ok(self.versioned_subrequest("POST", reference_id, COLLECTIONS, Some(body)))
    }

    /// A `PATCH /composite/sobjects` (update) subrequest; each record needs `Id`.
    pub fn update_records_subrequest(
        &self,
        reference_id: &str,
        object: &str,
        records: &[Map<String, Value>],
        all_or_none: bool,
    ) -> Result<CompositeSubrequest> {
        let body = collection_body(object, records, all_or_none)?;
        Ok(self.versioned_subrequest("PATCH", reference_id, COLLECTIONS, Some(body)))
    }

    /// A `PATCH /composite/sobjects/{object}/{ext_id_field}` (upsert) subrequest.
    pub fn upsert_records_subrequest(
        &self,
        reference_id: &str,
        object: &str,
        ext_id_field: &str,
        records: &[Map<String, Value>],
        all_or_none: bool,
    ) -> Result<CompositeSubrequest> {
        let body = collection_body(object, records, all_or_none)?;
        let path = upsert_path(object, ext_id_field)?;
        Ok(self.versioned_subrequest("PATCH", reference_id, &path, Some(body)))
    }

    /// A `DELETE /composite/sobjects?ids=..` subrequest.
    pub fn delete_records_subrequest(
        &self,
        reference_id: &str,
        ids: &[String],
        all_or_none: bool,
    ) -> Result<CompositeSubrequest> {
        let path = format!("{COLLECTIONS}?{}", delete_query(ids, all_or_none)?);
        Ok(self.versioned_subrequest("DELETE", reference_id, &path, None))
    }

    /// A subrequest on a path relative to `/services/data/vNN.N/`.
    fn versioned_subrequest(
        &self,
        method: &str,
        reference_id: &str,
        relative_path: &str,
        body: Option<Value>,
    ) -> CompositeSubrequest {
        let url = format!("{}/{relative_path}", self.data_path());
        self.subrequest(method, reference_id, url, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn recognises_query_and_collection_urls() {
        for url in [
            "/services/data/v61.0/query?q=SELECT+Id+FROM+Contact",
            "/services/data/v61.0/queryAll/?q=x",
            "/services/data/v61.0/query/01gXX-2000",
            "/services/data/v61.0/composite/sobjects",
            "/services/data/v61.0/composite/sobjects?ids=a,b",
            "/services/data/v61.0/composite/sobjects/Contact/External_Id__c",
        ] {
            assert!(is_query_or_collection(url), "{url}");
        }
        for url in [
            "/services/data/v61.0/sobjects/Contact/003A",
            "/services/data/v61.0/sobjects/Contact/deleted/?start=a&end=b",
            "/services/data/v61.0/limits",
        ] {
            assert!(!is_query_or_collection(url), "{url}");
        }
    }

    #[test]
    fn subresponse_errors_and_pages() {
        let body = r#"{"compositeResponse":[
          {"body":{"totalSize":1,"done":true,"records":[{"Id":"003A"}]},"httpHeaders":{},"httpStatusCode":200,"referenceId":"r1"},
          {"body":[{"errorCode":"MALFORMED_QUERY","message":"bad"}],"httpHeaders":{},"httpStatusCode":400,"referenceId":"r2"}]}"#;
        let r: CompositeResponse = serde_json::from_str(body).unwrap();
        let mut it = r.composite_response.into_iter();
        let page = it.next().unwrap().into_query_page().unwrap();
        assert_eq!(page.records.len(), 1);
        let err = it.next().unwrap().into_query_page().unwrap_err();
        assert_eq!(err.code(), Some(&ErrorCode::MalformedQuery));
        assert_eq!(err.status(), Some(400));
    }
}
