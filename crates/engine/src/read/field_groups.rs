//! REST reads of objects too wide for one query. A `GET /query?q=` naming every field
//! of an object with hundreds of long custom field names is past the 16,384 bytes
//! Salesforce takes for a request's URI and headers (414 "URI Too Long"), well before
//! SOQL's own 100,000 characters. Such a read is split into field groups
//! (`queries::field_groups`): the first group's query is the read's own (its order, its
//! continuation pages); each page of it is completed by one query per other group over
//! the page's key range (`queries::group_query`), joined on Id. A record missing from a
//! group's answer was deleted or changed again in between: it is left out of the page,
//! and the poll that follows brings it (deleted or in its new state).

use std::collections::HashMap;

use salesforce::{Client, QueryPage, RawQueryPage};
use serde_json::{Map, Value};
use sync_core::cursor::parse_sf_datetime;
use sync_core::queries::{self, PageRange};

use super::PAGE_SIZE;

/// The field groups of one split read.
#[derive(Debug, Clone)]
pub(super) struct SplitRead {
    object: String,
    /// Through `queryAll` (polls; backfills of archiving objects) rather than `query`.
    all: bool,
    /// The stamp field a poll's pages are ordered by; `None`: Id order.
    stamp: Option<String>,
    /// The first group (the read's own query) and the others, each starting with Id
    /// (and the stamp field).
    groups: Vec<Vec<String>>,
}

impl SplitRead {
    /// The groups of a read of `fields` of `object` (`stamp`: a poll ordered by that
    /// field, through queryAll; else an Id-ordered backfill or refresh); `None` when one
    /// query holds them all.
    pub(super) fn plan(object: &str, fields: &[&str], stamp: Option<&str>) -> Option<SplitRead> {
        let keys: Vec<&str> = std::iter::once("Id").chain(stamp).collect();
        let groups = queries::field_groups(object, fields, &keys);
        (groups.len() > 1).then(|| SplitRead {
            object: object.to_string(),
            all: stamp.is_some() || queries::backfill_reads_all(object),
            stamp: stamp.map(str::to_string),
            groups: groups
                .into_iter()
                .map(|g| g.into_iter().map(str::to_string).collect())
                .collect(),
        })
    }

    /// The fields of the read's own query.
    pub(super) fn first_fields(&self) -> Vec<&str> {
        self.groups[0].iter().map(String::as_str).collect()
    }

    /// The API calls one page takes: its own and one per other group (more only when a
    /// group's answer runs to a second page).
    pub(super) fn calls_per_page(&self) -> u64 {
        self.groups.len() as u64
    }

    /// The page's key range, from its first and last record (the page is in key order).
    fn range(&self, records: &[Map<String, Value>]) -> Option<PageRange> {
        let (first, last) = (records.first()?, records.last()?);
        let text = |r: &Map<String, Value>, f: &str| r.get(f)?.as_str().map(str::to_string);
        Some(match &self.stamp {
            None => PageRange::Ids {
                first: text(first, "Id")?,
                last: text(last, "Id")?,
            },
            Some(field) => PageRange::Stamps {
                field: field.clone(),
                first: parse_sf_datetime(&text(first, field)?)?,
                last: parse_sf_datetime(&text(last, field)?)?,
            },
        })
    }

    /// Completes a page of the first group's query with the other groups' fields.
    /// Records that some group does not return are left out (see the module's note).
    pub(super) async fn complete(
        &self,
        client: &Client,
        mut records: Vec<Map<String, Value>>,
    ) -> salesforce::Result<Vec<Map<String, Value>>> {
        let Some(range) = self.range(&records) else {
            return Ok(records);
        };
        for group in &self.groups[1..] {
            let fields: Vec<&str> = group.iter().map(String::as_str).collect();
            let Some(soql) = queries::group_query(&self.object, &fields, &range) else {
                return Ok(Vec::new());
            };
            let mut found = self.read_all(client, &soql).await?;
            records.retain_mut(|r| {
                let id = r.get("Id").and_then(Value::as_str).unwrap_or_default();
                let Some(more) = found.remove(id) else {
                    return false;
                };
                for (k, v) in more {
                    if k != "attributes" && !r.contains_key(&k) {
                        r.insert(k, v);
                    }
                }
                true
            });
        }
        Ok(records)
    }

    /// [`SplitRead::complete`] for a page kept as JSON text (backfills).
    pub(super) async fn complete_raw(
        &self,
        client: &Client,
        page: RawQueryPage,
    ) -> salesforce::Result<RawQueryPage> {
        let records = self.complete(client, page.parse_records()?).await?;
        page.with_records(&records)
    }

    /// Every record a group's query returns, by Id, its continuation pages followed.
    async fn read_all(
        &self,
        client: &Client,
        soql: &str,
    ) -> salesforce::Result<HashMap<String, Map<String, Value>>> {
        let mut page: QueryPage = match self.all {
            true => client.query_all(soql, Some(PAGE_SIZE)).await?,
            false => client.query(soql, Some(PAGE_SIZE)).await?,
        };
        let mut out = HashMap::new();
        loop {
            for r in std::mem::take(&mut page.records) {
                if let Some(id) = r.get("Id").and_then(Value::as_str) {
                    out.insert(id.to_string(), r);
                }
            }
            match page.next_records_url.take().filter(|_| !page.done) {
                Some(url) => page = client.query_more(&url).await?,
                None => return Ok(out),
            }
        }
    }
}
