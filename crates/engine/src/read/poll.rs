//! Live changes: a poll round is a `queryAll` on the stamp field of up to 5 collections
//! per `/composite` call, with the `/deleted` checks riding along in the same call.

use std::time::Instant;

use chrono::Utc;
use salesforce::CompositeSubresponse;
use serde_json::{Map, Value};
use sync_core::{cursor, naming, queries, schedule};

use super::field_groups::SplitRead;
use super::{apply, progress, records_json, target, PAGE_SIZE};
use crate::catalog::{CollectionRow, SyncConfig};
use crate::db::tx;
use crate::error::StepError;
use crate::runtime::SyncRuntime;

/// One poll round over the live collections. Returns false when the budget did not
/// allow all of it: the next try resumes with the first group not polled yet, so under
/// a short budget the last collections are not starved by the first ones.
pub(super) fn poll_round(
    rt: &mut SyncRuntime,
    cfg: &SyncConfig,
    live: &[&CollectionRow],
) -> Result<bool, StepError> {
    let overlap = chrono::Duration::milliseconds((cfg.poll_overlap_secs * 1000.0) as i64);
    let groups: Vec<&[&CollectionRow]> = live.chunks(schedule::QUERIES_PER_COMPOSITE).collect();
    for group in groups.iter().skip(rt.poll_groups_done) {
        if !rt.try_spend(1) {
            return Ok(false);
        }
        let started = Utc::now();
        let mut subs = Vec::new();
        let mut deleted_windows = Vec::new();
        // each collection's field groups, when its fields need more than one query
        let mut splits = Vec::new();
        for (i, c) in group.iter().enumerate() {
            let cr = rt.collection(&c.object_name)?;
            let stamp = c.stamp_field.as_deref().unwrap_or("SystemModstamp");
            let since = cursor::poll_since(c.poll_cursor.unwrap_or(started), overlap);
            let fields = queries::rest_fields(&cr.columns);
            let split = SplitRead::plan(&c.object_name, &fields, Some(stamp));
            let soql = {
                let fields = split.as_ref().map_or(fields, SplitRead::first_fields);
                queries::poll_query(&c.object_name, &fields, stamp, since)
            };
            splits.push(split);
            subs.push(
                rt.client
                    .query_subrequest(&format!("q{i}"), &soql, true, Some(PAGE_SIZE)),
            );
            // /deleted refuses objects that are not replicateable (INVALID_TYPE): their
            // hard deletes cannot be seen; soft deletes still come through queryAll
            if c.replicateable != Some(false) && cr.deleted.due(Instant::now()) {
                let (start, end) =
                    cursor::deleted_window(c.deleted_cursor.unwrap_or(started), started, overlap);
                let path = format!(
                    "sobjects/{}/deleted/?start={}&end={}",
                    c.object_name,
                    cursor::soql_datetime(start),
                    cursor::soql_datetime(end)
                );
                subs.push(rt.client.get_subrequest(&format!("d{i}"), &path));
                deleted_windows.push((i, start, end));
            }
        }
        let responses = rt.call(rt.client.composite(false, subs))?;
        for resp in responses {
            let (kind, idx) = resp.reference_id.split_at(1);
            let Some((c, split)) = idx
                .parse::<usize>()
                .ok()
                .and_then(|i| Some((group.get(i)?, splits.get(i)?.as_ref())))
            else {
                continue;
            };
            if kind == "q" {
                apply_poll_response(rt, cfg, (c, split), resp, started, overlap)?;
            } else if let Some((_, start, end)) = deleted_windows
                .iter()
                .find(|(i, _, _)| group[*i].object_name == c.object_name)
            {
                apply_deleted_response(rt, cfg, c, resp, (*start, *end))?;
            }
        }
        rt.poll_groups_done += 1;
    }
    rt.poll_groups_done = 0;
    Ok(true)
}

/// Applies a poll query's answer for `c` and its next pages, each completed by the
/// other field groups' queries when `split`.
fn apply_poll_response(
    rt: &mut SyncRuntime,
    cfg: &SyncConfig,
    (c, split): (&CollectionRow, Option<&SplitRead>),
    resp: CompositeSubresponse,
    started: chrono::DateTime<Utc>,
    overlap: chrono::Duration,
) -> Result<(), StepError> {
    let stamp = c
        .stamp_field
        .clone()
        .unwrap_or_else(|| "SystemModstamp".into());
    let mut page = match resp.into_query_page() {
        Ok(p) => p,
        Err(e) => {
            // A field deleted in Salesforce fails the query until the describe says so:
            // re-check the describe now instead of at its next period.
            if e.has_code(&salesforce::ErrorCode::InvalidField) {
                if let Some(cr) = rt.collections.get_mut(&c.object_name) {
                    cr.describe.force();
                }
            }
            let msg = format!("polling {}: {e}", c.object_name);
            tx(&*rt.db, |s| {
                crate::status::set_collection_error(s, &cfg.name, &c.object_name, &msg)
            })?;
            return Ok(());
        }
    };
    let mut cur = c.poll_cursor.unwrap_or(started - overlap);
    let window_start = cursor::poll_since(cur, overlap);
    loop {
        let stamp_of =
            |r: &Map<String, Value>| r.get(&stamp).and_then(Value::as_str).map(str::to_string);
        let id_of =
            |r: &Map<String, Value>| r.get("Id").and_then(Value::as_str).map(str::to_string);
        if let Some(cr) = rt.collections.get(&c.object_name) {
            page.records.retain(|r| match (id_of(r), stamp_of(r)) {
                (Some(id), Some(st)) => cr.applied.get(&id) != Some(&st),
                _ => true,
            });
        }
        if let Some(split) = split.filter(|_| !page.records.is_empty()) {
            // the other field groups' calls: without them the page cannot be applied, and
            // the next round reads it again from the cursor
            if !rt.try_spend(split.calls_per_page() - 1) {
                break;
            }
            let records = std::mem::take(&mut page.records);
            page.records = rt.call(split.complete(&rt.client, records))?;
        }
        let fresh: Vec<(String, String)> = page
            .records
            .iter()
            .filter_map(|r| Some((id_of(r)?, stamp_of(r)?)))
            .collect();
        let newest = page
            .records
            .iter()
            .filter_map(|r| {
                r.get(&stamp)
                    .and_then(Value::as_str)
                    .and_then(cursor::parse_sf_datetime)
            })
            .max();
        cur = cursor::advance(cur, newest);
        let next = page.next_records_url.clone().filter(|_| !page.done);
        let cr = rt.collection(&c.object_name)?;
        let cid = naming::collection_id(&c.object_name);
        let t = target(cfg, c, cr, &cid, true);
        let caught_up = if next.is_none() { Some(started) } else { None };
        if page.records.is_empty() {
            tx(&*rt.db, |s| {
                progress::record_poll(s, &cfg.name, &c.object_name, cur, caught_up)
            })?;
        } else {
            let records = records_json(std::mem::take(&mut page.records));
            let at = (cur, caught_up);
            tx(&*rt.db, |s| {
                apply::apply_poll_page(s, &cfg.name, &t, &c.object_name, records, at)
            })?;
        }
        if let Some(cr) = rt.collections.get_mut(&c.object_name) {
            cr.applied.extend(fresh);
            cr.applied
                .retain(|_, st| cursor::parse_sf_datetime(st).is_some_and(|t| t >= window_start));
        }
        let Some(url) = next else { break };
        if !rt.try_spend(1) {
            break;
        }
        page = rt.call(rt.client.query_more(&url))?;
    }
    Ok(())
}

fn apply_deleted_response(
    rt: &mut SyncRuntime,
    cfg: &SyncConfig,
    c: &CollectionRow,
    resp: CompositeSubresponse,
    (start, end): (chrono::DateTime<Utc>, chrono::DateTime<Utc>),
) -> Result<(), StepError> {
    let deleted: salesforce::DeletedRecords = match resp.into_body() {
        Ok(d) => d,
        Err(e) => {
            let msg = format!("checking deletions of {}: {e}", c.object_name);
            tx(&*rt.db, |s| {
                crate::status::set_collection_error(s, &cfg.name, &c.object_name, &msg)
            })?;
            return Ok(());
        }
    };
    // Salesforce may cover less of the window than asked ("latestDateCovered ... less
    // than or equal to endDate", getDeleted(), SOAP API Developer Guide): the next
    // window starts where this one's coverage ended.
    let end = deleted
        .latest_date_covered
        .map_or(end, |covered| covered.min(end));
    if let Some(earliest) = deleted.earliest_date_available.filter(|e| *e > start) {
        // the delete log no longer reaches back to the window's start
        log::warn!(
            "sequin_sf: {}.{}: Salesforce's delete log starts at {earliest}, after {start}: \
             records deleted in between cannot be seen and may remain in the table",
            cfg.schema_name,
            c.table_name
        );
    }
    let ids: Vec<String> = deleted.deleted_records.into_iter().map(|d| d.id).collect();
    let cr = rt.collection(&c.object_name)?;
    let cid = naming::collection_id(&c.object_name);
    let t = target(cfg, c, cr, &cid, true);
    tx(&*rt.db, |s| {
        apply::apply_deleted(s, &cfg.name, &t, &c.object_name, ids, end)
    })?;
    if let Some(cr) = rt.collections.get_mut(&c.object_name) {
        cr.deleted.mark(Instant::now());
    }
    Ok(())
}
