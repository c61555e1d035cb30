//! Record writes: sObject Collections (up to 200 records per call) and single records.

use chrono::{DateTime, Utc};
use reqwest::header::IF_UNMODIFIED_SINCE;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::client::Client;
use crate::de::{http_date, null_default};
use crate::error::{Error, RecordError, Result};
use crate::http::RequestSpec;

/// Salesforce's cap on records per sObject Collections request.
pub const MAX_COLLECTION_RECORDS: usize = 200;
/// Salesforce's cap on ids per sObject Collections retrieve.
pub const MAX_RETRIEVE_IDS: usize = 2000;

/// The outcome for one record of a write, in request order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SaveResult {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub success: bool,
    /// Present for upserts (true = inserted) and some creates.
    #[serde(default)]
    pub created: Option<bool>,
    #[serde(default, deserialize_with = "null_default")]
    pub errors: Vec<RecordError>,
}

fn check_count(n: usize) -> Result<()> {
    if n > MAX_COLLECTION_RECORDS {
        return Err(Error::Config(format!(
            "{n} records in one sObject Collections request; the limit is {MAX_COLLECTION_RECORDS}"
        )));
    }
    Ok(())
}

/// Adds `attributes.type` (which collections require) unless the record carries one.
pub(crate) fn typed_records(object: &str, records: &[Map<String, Value>]) -> Vec<Value> {
    records
        .iter()
        .map(|r| {
            let mut r = r.clone();
            if !r.contains_key("attributes") {
                r.insert("attributes".into(), json!({ "type": object }));
            }
            Value::Object(r)
        })
        .collect()
}

pub(crate) fn collection_body(
    object: &str,
    records: &[Map<String, Value>],
    all_or_none: bool,
) -> Result<Value> {
    check_count(records.len())?;
    Ok(json!({ "allOrNone": all_or_none, "records": typed_records(object, records) }))
}

/// The sObject Collections resource, relative to the versioned root.
pub(crate) const COLLECTIONS: &str = "composite/sobjects";

/// `composite/sobjects/{object}/{ext_id_field}`.
pub(crate) fn upsert_path(object: &str, ext_id_field: &str) -> Result<String> {
    Ok(format!(
        "{COLLECTIONS}/{}/{}",
        crate::path_segment(object)?,
        crate::path_segment(ext_id_field)?
    ))
}

fn check_ids_present(records: &[Map<String, Value>]) -> Result<()> {
    match records
        .iter()
        .position(|r| !r.contains_key("Id") && !r.contains_key("id"))
    {
        Some(i) => Err(Error::Config(format!("record {i} of an update has no Id"))),
        None => Ok(()),
    }
}

pub(crate) fn delete_query(ids: &[String], all_or_none: bool) -> Result<String> {
    check_count(ids.len())?;
    for id in ids {
        crate::path_segment(id)?;
    }
    Ok(format!("ids={}&allOrNone={all_or_none}", ids.join(",")))
}

impl Client {
    /// `POST /composite/sobjects`: creates up to 200 records of `object` (records
    /// that already carry `attributes` keep theirs, so types can be mixed).
    pub async fn create_records(
        &self,
        object: &str,
        records: &[Map<String, Value>],
        all_or_none: bool,
    ) -> Result<Vec<SaveResult>> {
        let body = collection_body(object, records, all_or_none)?;
        self.send_collection(Method::POST, COLLECTIONS.into(), Some(body), "create")
            .await
    }

    /// `PATCH /composite/sobjects`: updates up to 200 records; each must carry `Id`
    /// (or `id`).
    pub async fn update_records(
        &self,
        object: &str,
        records: &[Map<String, Value>],
        all_or_none: bool,
    ) -> Result<Vec<SaveResult>> {
        check_ids_present(records)?;
        let body = collection_body(object, records, all_or_none)?;
        self.send_collection(Method::PATCH, COLLECTIONS.into(), Some(body), "update")
            .await
    }

    /// `PATCH /composite/sobjects/{object}/{ext_id_field}`: inserts or updates up to
    /// 200 records matched on an external id field; `created` tells which happened.
    pub async fn upsert_records(
        &self,
        object: &str,
        ext_id_field: &str,
        records: &[Map<String, Value>],
        all_or_none: bool,
    ) -> Result<Vec<SaveResult>> {
        let body = collection_body(object, records, all_or_none)?;
        let path = upsert_path(object, ext_id_field)?;
        self.send_collection(Method::PATCH, path, Some(body), "upsert")
            .await
    }

    /// `DELETE /composite/sobjects?ids=...`: deletes up to 200 records by id.
    pub async fn delete_records(
        &self,
        ids: &[String],
        all_or_none: bool,
    ) -> Result<Vec<SaveResult>> {
        let path = format!("{COLLECTIONS}?{}", delete_query(ids, all_or_none)?);
        self.send_collection(Method::DELETE, path, None, "delete")
            .await
    }

    async fn send_collection(
        &self,
        method: Method,
        path: String,
        body: Option<Value>,
        what: &str,
    ) -> Result<Vec<SaveResult>> {
        let mut spec = RequestSpec::new(method, path);
        if let Some(b) = body {
            spec = spec.json(b);
        }
        self.execute(spec)
            .await?
            .json(&format!("collection {what} results"))
    }

    /// `POST /composite/sobjects/{object}` with `{"ids":[..],"fields":[..]}`: reads up
    /// to 2000 records by id in one call. One entry per id, in order; `None` for ids
    /// that do not exist or are deleted.
    pub async fn retrieve_records(
        &self,
        object: &str,
        ids: &[String],
        fields: &[&str],
    ) -> Result<Vec<Option<Map<String, Value>>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        if ids.len() > MAX_RETRIEVE_IDS {
            return Err(Error::Config(format!(
                "{} ids in one sObject Collections retrieve; the limit is {MAX_RETRIEVE_IDS}",
                ids.len()
            )));
        }
        if fields.is_empty() {
            return Err(Error::Config(
                "retrieve_records needs at least one field name".into(),
            ));
        }
        let path = format!("composite/sobjects/{}", crate::path_segment(object)?);
        let body = json!({ "ids": ids, "fields": fields });
        self.execute(RequestSpec::new(Method::POST, path).json(body))
            .await?
            .json("collection retrieve results")
    }

    /// `POST /sobjects/{object}`: creates one record.
    pub async fn create_record(
        &self,
        object: &str,
        fields: &Map<String, Value>,
    ) -> Result<SaveResult> {
        let path = format!("sobjects/{}", crate::path_segment(object)?);
        self.execute(RequestSpec::new(Method::POST, path).json(Value::Object(fields.clone())))
            .await?
            .json("create result")
    }

    /// `GET /sobjects/{object}/{id}`, optionally only the named fields.
    pub async fn get_record(
        &self,
        object: &str,
        id: &str,
        fields: Option<&[&str]>,
    ) -> Result<Map<String, Value>> {
        let path = format!(
            "sobjects/{}/{}",
            crate::path_segment(object)?,
            crate::path_segment(id)?
        );
        let mut spec = RequestSpec::new(Method::GET, path);
        if let Some(f) = fields {
            spec = spec.query("fields", f.join(","));
        }
        self.execute(spec).await?.json("record")
    }

    /// `PATCH /sobjects/{object}/{id}`. With `if_unmodified_since`, Salesforce refuses
    /// the update when the record changed after that time, which surfaces as
    /// [`Error::Conflict`].
    pub async fn update_record(
        &self,
        object: &str,
        id: &str,
        fields: &Map<String, Value>,
        if_unmodified_since: Option<DateTime<Utc>>,
    ) -> Result<()> {
        let path = format!(
            "sobjects/{}/{}",
            crate::path_segment(object)?,
            crate::path_segment(id)?
        );
        let mut spec = RequestSpec::new(Method::PATCH, path).json(Value::Object(fields.clone()));
        if let Some(t) = if_unmodified_since {
            spec = spec.header(IF_UNMODIFIED_SINCE, http_date(t));
        }
        match self.execute(spec).await {
            Ok(_) => Ok(()),
            Err(Error::Api {
                status: 412,
                errors,
                ..
            }) => Err(Error::Conflict {
                message: errors
                    .first()
                    .map(|e| e.message.clone())
                    .unwrap_or_else(|| "precondition failed".into()),
            }),
            Err(e) => Err(e),
        }
    }

    /// `DELETE /sobjects/{object}/{id}`.
    pub async fn delete_record(&self, object: &str, id: &str) -> Result<()> {
        let path = format!(
            "sobjects/{}/{}",
            crate::path_segment(object)?,
            crate::path_segment(id)?
        );
        self.execute(RequestSpec::new(Method::DELETE, path)).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn parses_save_results() {
        let body = r#"[{"id":"003A","success":true,"errors":[]},
          {"success":false,"errors":[{"statusCode":"REQUIRED_FIELD_MISSING","message":"Required fields are missing: [LastName]","fields":["LastName"]}]},
          {"id":"003B","success":true,"errors":[],"created":false}]"#;
        let r: Vec<SaveResult> = serde_json::from_str(body).unwrap();
        assert!(r[0].success && r[0].created.is_none());
        assert!(!r[1].success && r[1].id.is_none());
        assert_eq!(r[1].errors[0].status_code, ErrorCode::RequiredFieldMissing);
        assert_eq!(r[2].created, Some(false));
    }

    #[test]
    fn collection_body_types_records_and_caps_count() {
        let mut rec = Map::new();
        rec.insert("LastName".into(), json!("X"));
        let body = collection_body("Contact", &[rec.clone()], false).unwrap();
        assert_eq!(body["records"][0]["attributes"]["type"], "Contact");
        assert_eq!(body["allOrNone"], false);
        let many = vec![rec; 201];
        assert!(matches!(
            collection_body("Contact", &many, false),
            Err(Error::Config(_))
        ));
    }
}
