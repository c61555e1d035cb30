//! Bulk API 2.0 query jobs: create, poll, page through CSV results, delete.

use std::time::Duration;

use bytes::Bytes;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::client::Client;
use crate::de::null_default;
use crate::error::{Error, Result};
use crate::http::RequestSpec;

/// State of a Bulk API 2.0 job.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum JobState {
    Open,
    #[default]
    UploadComplete,
    InProgress,
    JobComplete,
    Failed,
    Aborted,
    Other(String),
}

impl JobState {
    pub fn as_str(&self) -> &str {
        match self {
            JobState::Open => "Open",
            JobState::UploadComplete => "UploadComplete",
            JobState::InProgress => "InProgress",
            JobState::JobComplete => "JobComplete",
            JobState::Failed => "Failed",
            JobState::Aborted => "Aborted",
            JobState::Other(s) => s,
        }
    }

    /// True once the job will not change any more.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            JobState::JobComplete | JobState::Failed | JobState::Aborted
        )
    }
}

impl Serialize for JobState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for JobState {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(match s.as_str() {
            "Open" => JobState::Open,
            "UploadComplete" => JobState::UploadComplete,
            "InProgress" => JobState::InProgress,
            "JobComplete" => JobState::JobComplete,
            "Failed" => JobState::Failed,
            "Aborted" => JobState::Aborted,
            _ => JobState::Other(s),
        })
    }
}

/// A query job's description as `POST /jobs/query` and `GET /jobs/query/{id}` return it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct JobInfo {
    pub id: String,
    #[serde(deserialize_with = "null_default")]
    pub operation: String,
    #[serde(deserialize_with = "null_default")]
    pub object: String,
    pub state: JobState,
    pub created_date: Option<String>,
    pub system_modstamp: Option<String>,
    #[serde(deserialize_with = "null_default")]
    pub number_records_processed: u64,
    #[serde(deserialize_with = "null_default")]
    pub retries: u64,
    #[serde(deserialize_with = "null_default")]
    pub total_processing_time: u64,
    pub error_message: Option<String>,
    pub api_version: Option<Value>,
}

/// One page of a job's results.
#[derive(Debug, Clone, PartialEq)]
pub struct BulkResultsPage {
    /// The CSV as sent: header row, every value quoted, nulls empty.
    pub csv: Bytes,
    /// Locator for the next page; `None` on the last page.
    pub locator: Option<String>,
    /// `Sforce-NumberOfRecords` of this page.
    pub number_of_records: u64,
}

/// A writer that counts what passes through it (the bytes of a results page).
struct CountingWriter<'a> {
    out: &'a mut (dyn std::io::Write + Send),
    bytes: u64,
}

impl std::io::Write for CountingWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// What a results page's headers say of it.
#[derive(Debug, Clone, PartialEq)]
pub struct BulkPageInfo {
    /// Locator for the next page; `None` on the last page.
    pub locator: Option<String>,
    /// `Sforce-NumberOfRecords` of this page.
    pub number_of_records: u64,
}

impl BulkPageInfo {
    fn from_headers(headers: &reqwest::header::HeaderMap) -> Result<BulkPageInfo> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let locator = header("sforce-locator")
            .map(str::trim)
            .filter(|l| !l.is_empty() && *l != "null")
            .map(str::to_string);
        let number_of_records = match header("sforce-numberofrecords") {
            Some(n) => n.trim().parse().map_err(|_| {
                Error::Decode(format!("Sforce-NumberOfRecords {n:?} is not a number"))
            })?,
            None => {
                return Err(Error::Decode(
                    "bulk results lack the Sforce-NumberOfRecords header".into(),
                ))
            }
        };
        Ok(BulkPageInfo {
            locator,
            number_of_records,
        })
    }
}

fn results_request(
    job_id: &str,
    locator: Option<&str>,
    max_records: Option<u64>,
) -> Result<RequestSpec> {
    let path = format!("jobs/query/{}/results", crate::path_segment(job_id)?);
    let mut spec = RequestSpec::new(Method::GET, path).accept("text/csv");
    if let Some(l) = locator {
        spec = spec.query("locator", l);
    }
    if let Some(n) = max_records {
        spec = spec.query("maxRecords", n.to_string());
    }
    Ok(spec)
}

/// Parsed CSV rows of a results page. Empty values are `None` (Bulk API writes nulls
/// as empty fields).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CsvRows {
    pub header: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
}

impl CsvRows {
    /// The rows as JSON objects keyed by header, values as strings or null.
    pub fn into_records(self) -> Vec<Map<String, Value>> {
        let header = self.header;
        self.rows
            .into_iter()
            .map(|row| {
                header
                    .iter()
                    .cloned()
                    .zip(
                        row.into_iter()
                            .map(|v| v.map_or(Value::Null, Value::String)),
                    )
                    .collect()
            })
            .collect()
    }
}

/// Parses Bulk API CSV: RFC 4180 quoting, embedded quotes, commas and newlines.
pub fn parse_csv(data: &[u8]) -> Result<CsvRows> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(data);
    let header = reader
        .headers()
        .map_err(|e| Error::Decode(format!("bulk results CSV header: {e}")))?
        .iter()
        .map(str::to_string)
        .collect::<Vec<_>>();
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record =
            record.map_err(|e| Error::Decode(format!("bulk results CSV row {}: {e}", i + 1)))?;
        rows.push(
            record
                .iter()
                .map(|v| (!v.is_empty()).then(|| v.to_string()))
                .collect(),
        );
    }
    Ok(CsvRows { header, rows })
}

impl BulkResultsPage {
    pub fn rows(&self) -> Result<CsvRows> {
        if self.csv.is_empty() {
            return Ok(CsvRows::default());
        }
        parse_csv(&self.csv)
    }

    /// Calls `f` with each row of the page without building them all in memory
    /// (values borrowed from the page; empty fields are `None`), after checking every
    /// row has as many values as `header`. Returns the header. Stops at the first
    /// error `f` returns.
    pub fn for_each_row<F>(&self, mut f: F) -> Result<Vec<String>>
    where
        F: FnMut(&[Option<&str>]) -> Result<()>,
    {
        if self.csv.is_empty() {
            return Ok(Vec::new());
        }
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(false)
            .from_reader(&self.csv[..]);
        let header: Vec<String> = reader
            .headers()
            .map_err(|e| Error::Decode(format!("bulk results CSV header: {e}")))?
            .iter()
            .map(str::to_string)
            .collect();
        let mut record = csv::StringRecord::new();
        let mut n = 0usize;
        loop {
            let more = reader
                .read_record(&mut record)
                .map_err(|e| Error::Decode(format!("bulk results CSV row {}: {e}", n + 1)))?;
            if !more {
                break;
            }
            n += 1;
            let values: Vec<Option<&str>> = record
                .iter()
                .map(|v| (!v.is_empty()).then_some(v))
                .collect();
            f(&values)?;
        }
        Ok(header)
    }

    pub fn records(&self) -> Result<Vec<Map<String, Value>>> {
        Ok(self.rows()?.into_records())
    }
}

impl Client {
    /// `POST /jobs/query`: starts a query job (CSV, comma, LF).
    pub async fn bulk_query_create(&self, soql: &str, query_all: bool) -> Result<JobInfo> {
        let body = json!({
            "operation": if query_all { "queryAll" } else { "query" },
            "query": soql,
            "contentType": "CSV",
            "columnDelimiter": "COMMA",
            "lineEnding": "LF",
        });
        self.execute(RequestSpec::new(Method::POST, "jobs/query").json(body))
            .await?
            .json("bulk query job")
    }

    /// `GET /jobs/query/{id}`.
    pub async fn bulk_query_status(&self, job_id: &str) -> Result<JobInfo> {
        let path = format!("jobs/query/{}", crate::path_segment(job_id)?);
        self.execute(RequestSpec::new(Method::GET, path))
            .await?
            .json("bulk query job")
    }

    /// `GET /jobs/query/{id}/results`. Before the job completes Salesforce answers 412
    /// `JOB_NOT_COMPLETE` (an [`Error::Api`]).
    pub async fn bulk_query_results(
        &self,
        job_id: &str,
        locator: Option<&str>,
        max_records: Option<u64>,
    ) -> Result<BulkResultsPage> {
        let raw = self
            .execute(results_request(job_id, locator, max_records)?)
            .await?;
        let info = BulkPageInfo::from_headers(&raw.headers)?;
        self.count_bulk_result_bytes(raw.body.len() as u64);
        Ok(BulkResultsPage {
            csv: raw.body,
            locator: info.locator,
            number_of_records: info.number_of_records,
        })
    }

    /// [`Client::bulk_query_results`] with the CSV written to `out` as it arrives, so
    /// a page of any size is never held in memory.
    pub async fn bulk_query_results_into(
        &self,
        job_id: &str,
        locator: Option<&str>,
        max_records: Option<u64>,
        out: &mut (dyn std::io::Write + Send),
    ) -> Result<BulkPageInfo> {
        let mut counted = CountingWriter { out, bytes: 0 };
        let headers = self
            .execute_into(results_request(job_id, locator, max_records)?, &mut counted)
            .await?;
        self.count_bulk_result_bytes(counted.bytes);
        BulkPageInfo::from_headers(&headers)
    }

    /// Polls `GET /jobs/query/{id}` every `poll_every` until the job is JobComplete,
    /// Failed or Aborted, and returns its final info (check `state`; a Failed job's
    /// `error_message` says why). Gives up with [`Error::Timeout`] after `max_wait`.
    /// Each poll is one API request.
    pub async fn bulk_query_wait(
        &self,
        job_id: &str,
        poll_every: Duration,
        max_wait: Duration,
    ) -> Result<JobInfo> {
        let started = tokio::time::Instant::now();
        loop {
            let info = self.bulk_query_status(job_id).await?;
            if info.state.is_terminal() {
                return Ok(info);
            }
            if started.elapsed() + poll_every > max_wait {
                return Err(Error::Timeout(format!(
                    "Bulk API query job {job_id} is still {} after {:?}; poll it later with \
                     bulk_query_status or abort it",
                    info.state.as_str(),
                    started.elapsed()
                )));
            }
            tokio::time::sleep(poll_every).await;
        }
    }

    /// `PATCH /jobs/query/{id}` with `state: Aborted`.
    pub async fn bulk_query_abort(&self, job_id: &str) -> Result<JobInfo> {
        let path = format!("jobs/query/{}", crate::path_segment(job_id)?);
        self.execute(RequestSpec::new(Method::PATCH, path).json(json!({"state": "Aborted"})))
            .await?
            .json("bulk query job")
    }

    /// `DELETE /jobs/query/{id}`: removes the job and its results.
    pub async fn bulk_query_delete(&self, job_id: &str) -> Result<()> {
        let path = format!("jobs/query/{}", crate::path_segment(job_id)?);
        self.execute(RequestSpec::new(Method::DELETE, path)).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_newlines_and_nulls() {
        let data = b"\"Id\",\"Name\",\"Description\",\"IsDeleted\"\n\
\"003A\",\"O'Brien, \"\"Pat\"\"\",\"line one\nline two\",\"false\"\n\
\"003B\",\"\",\"\",\"true\"\n";
        let rows = parse_csv(data).unwrap();
        assert_eq!(rows.header, vec!["Id", "Name", "Description", "IsDeleted"]);
        assert_eq!(rows.rows.len(), 2);
        assert_eq!(rows.rows[0][1].as_deref(), Some("O'Brien, \"Pat\""));
        assert_eq!(rows.rows[0][2].as_deref(), Some("line one\nline two"));
        assert_eq!(rows.rows[1][1], None);
        let records = rows.into_records();
        assert_eq!(records[1]["IsDeleted"], "true");
        assert!(records[1]["Name"].is_null());
    }

    #[test]
    fn for_each_row_streams_and_checks_shape() {
        let page = BulkResultsPage {
            csv: Bytes::from_static(b"\"Id\",\"Name\"\n\"1\",\"\"\n\"2\",\"B, b\"\n"),
            locator: None,
            number_of_records: 2,
        };
        let mut seen = Vec::new();
        let header = page
            .for_each_row(|row| {
                seen.push((row[0].map(str::to_string), row[1].map(str::to_string)));
                Ok(())
            })
            .unwrap();
        assert_eq!(header, vec!["Id", "Name"]);
        assert_eq!(
            seen,
            vec![
                (Some("1".into()), None),
                (Some("2".into()), Some("B, b".into()))
            ]
        );
        // The callback's error stops the walk and comes back.
        let mut calls = 0;
        let err = page
            .for_each_row(|_| {
                calls += 1;
                Err(Error::Config("stop".into()))
            })
            .unwrap_err();
        assert!(matches!(err, Error::Config(_)));
        assert_eq!(calls, 1);
        let ragged = BulkResultsPage {
            csv: Bytes::from_static(b"\"a\",\"b\"\n\"1\"\n"),
            locator: None,
            number_of_records: 1,
        };
        assert!(matches!(
            ragged.for_each_row(|_| Ok(())),
            Err(Error::Decode(_))
        ));
    }

    #[test]
    fn csv_ragged_row_is_an_error() {
        assert!(matches!(
            parse_csv(b"\"a\",\"b\"\n\"1\"\n"),
            Err(Error::Decode(_))
        ));
    }

    #[test]
    fn job_info_parses() {
        let j: JobInfo = serde_json::from_str(
            r#"{"id":"750A","operation":"query","object":"Contact","state":"JobComplete",
                "numberRecordsProcessed":42,"errorMessage":null,"apiVersion":61.0,"extra":1}"#,
        )
        .unwrap();
        assert_eq!(j.state, JobState::JobComplete);
        assert!(j.state.is_terminal());
        assert_eq!(j.number_records_processed, 42);
    }
}
