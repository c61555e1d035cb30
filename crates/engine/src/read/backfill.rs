//! The REST backfill: keyset pages of 2000 records ordered by Id, the page's JSON text
//! handed to Postgres as Salesforce sent it, the cursor saved with each page.

use std::time::Instant;

use salesforce::{ErrorCode, RawQueryPage};
use std::future::Future;
use std::pin::Pin;
use sync_core::ColumnSpec;

use sync_core::progress::BackfillMode;
use sync_core::ranges::Ranges;
use sync_core::{naming, queries};

use super::field_groups::SplitRead;
use super::page_file::{self, fetch_rest_page};
use super::{apply, progress, target, PAGE_SIZE};
use crate::allocations;
use crate::catalog::{CollectionRow, SyncConfig};
use crate::db::tx;
use crate::error::StepError;
use crate::inflight::{RestFetched, RewrittenPage};
use crate::runtime::{CollectionRuntime, SyncRuntime};
use crate::status;

/// The number of records in a page's JSON array and the Id of the last one (the
/// keyset cursor), read without building the records.
pub(super) fn page_ids(records_json: &str) -> Result<(i64, Option<String>), StepError> {
    #[derive(serde::Deserialize)]
    struct IdOnly {
        #[serde(rename = "Id")]
        id: Option<String>,
    }
    let ids: Vec<IdOnly> = serde_json::from_str(records_json).map_err(|e| {
        StepError::Salesforce(salesforce::Error::Decode(format!(
            "backfill page records: {e}"
        )))
    })?;
    let last = ids.last().and_then(|r| r.id.clone());
    Ok((ids.len() as i64, last))
}

/// A REST backfill page as received, with what the backfill needs of it.
struct Received {
    page: RawQueryPage,
    count: i64,
    last_id: Option<String>,
    /// The page ends its query: the last of the backfill, or of its Id range.
    done: bool,
    /// The page rewritten for `COPY` while it was fetched.
    copy: Option<RewrittenPage>,
}

/// Takes a fetched REST page, or turns a QUERY_TIMEOUT into the backfill's next way
/// of reading (`after_query_timeout`).
fn received(
    rt: &mut SyncRuntime,
    cfg: &SyncConfig,
    c: &CollectionRow,
    fetched: Result<RestFetched, StepError>,
) -> Result<Received, StepError> {
    let RestFetched { page, copy } = match fetched {
        Err(StepError::Salesforce(e)) if e.code() == Some(&ErrorCode::QueryTimeout) => {
            return Err(after_query_timeout(rt, cfg, c, e)?);
        }
        other => other?,
    };
    let (count, last_id) = page_ids(page.records_json())?;
    // a page cut by LIMIT (after a QUERY_TIMEOUT) ends its query when Salesforce sent it
    // short (records a split read left out count)
    let done = match rt.collection(&c.object_name)?.rest_limit {
        Some(n) => count + (page.left_out as i64) < i64::from(n),
        None => page.done || page.next_records_url.is_none(),
    };
    Ok(Received {
        page,
        count,
        last_id,
        done,
        copy,
    })
}

/// Reads and applies one REST page of a backfill (counting the rows first).
pub(super) fn backfill_page(
    rt: &mut SyncRuntime,
    cfg: &SyncConfig,
    c: &CollectionRow,
) -> Result<bool, StepError> {
    if c.rows_total.is_none() && !rt.collection(&c.object_name)?.count_timed_out {
        if !rt.try_spend(1) {
            return Ok(false);
        }
        let soql = queries::count_query(&c.object_name);
        let counted = if queries::backfill_reads_all(&c.object_name) {
            rt.call(rt.client.count_all(&soql))
        } else {
            rt.call(rt.client.count(&soql))
        };
        let total = match counted {
            Err(StepError::Salesforce(e)) if e.code() == Some(&ErrorCode::QueryTimeout) => {
                // too many records to count in time: a Bulk job (or, if one failed,
                // REST pages) without a total
                rt.collection_mut(&c.object_name)?.count_timed_out = true;
                return Err(after_query_timeout(rt, cfg, c, e)?);
            }
            other => other?,
        };
        let cr = rt.collection(&c.object_name)?;
        let bulk_readable = queries::bulk_readable(&c.object_name, &cr.columns);
        let mut mode = BackfillMode::for_count(total, cfg.bulk_threshold, bulk_readable);
        // near the org's API ceiling the job is taken where it costs fewer requests
        let cheaper = (mode == BackfillMode::Rest && bulk_readable)
            .then(|| {
                let per_page = calls_per_page(split_read(cr, &c.object_name).as_ref());
                allocations::bulk_saves_requests(
                    total,
                    u64::from(PAGE_SIZE),
                    per_page,
                    rt.client.api_usage(),
                    cfg.org_usage_ceiling,
                )
            })
            .flatten();
        if cheaper.is_some() {
            mode = BackfillMode::Bulk;
        }
        tx(&*rt.db, |s| {
            progress::set_rows_total(s, &cfg.name, &c.object_name, total as i64, mode)?;
            match &cheaper {
                Some(why) => status::set_backfill_note(s, &cfg.name, &c.object_name, Some(why)),
                None => Ok(()),
            }
        })?;
        return Ok(true);
    }
    if c.backfill_mode == Some(BackfillMode::Bulk) {
        return super::bulk::bulk_step(rt, cfg, c);
    }
    if let Some(ranges) = c.backfill_cursor.as_deref().and_then(Ranges::from_cursor) {
        return ranged_page(rt, cfg, c, ranges);
    }
    if splits(rt, cfg, c)? {
        return split_into_ranges(rt, cfg, c);
    }
    let Some(cr) = rt.collections.get_mut(&c.object_name) else {
        return Ok(false);
    };
    let next = cr.next_records_url.take();
    // the page asked for ahead, if it is the one wanted now
    let ahead = cr
        .next_page
        .take()
        .filter(|(url, _)| next.as_ref() == Some(url))
        .map(|(_, a)| a);
    let split = split_read(cr, &c.object_name);
    let at = match next {
        Some(url) => PageAt::Next(url),
        None => PageAt::First(queries::backfill_query(
            &c.object_name,
            &read_fields(cr, split.as_ref()),
            c.backfill_cursor.as_deref(),
            cr.rest_limit,
        )),
    };
    if ahead.is_none() && !rt.try_spend(calls_per_page(split.as_ref())) {
        if let (Some(cr), PageAt::Next(url)) = (rt.collections.get_mut(&c.object_name), at) {
            cr.next_records_url = Some(url);
        }
        return Ok(false);
    }
    let fetch_started = Instant::now();
    // Raw pages: the records' JSON text goes to Postgres as Salesforce sent it.
    let fetched = match ahead {
        Some(a) => rt.fetched(a),
        None => rt.call(fetch_rest_page(
            request_page(rt.client.clone(), &c.object_name, at, split.clone()),
            None,
        )),
    };
    let fetched_in = fetch_started.elapsed();
    let Received {
        page,
        count,
        last_id,
        done,
        copy,
    } = received(rt, cfg, c, fetched)?;
    // the next page is fetched (and rewritten) while this one is applied
    if let Some(url) = page.next_records_url.clone().filter(|_| !done) {
        let columns = copy_columns(rt, cfg, c)?;
        let at = PageAt::Next(url.clone());
        let request = request_page(rt.client.clone(), &c.object_name, at, split.clone());
        if spend_group_calls(rt, split.as_ref()) {
            if let Some(a) = rt.fetch_ahead(fetch_rest_page(request, columns)) {
                rt.collection_mut(&c.object_name)?.next_page = Some((url, a));
            }
        }
    }
    let apply_started = Instant::now();
    let rest = (page.records_json(), count, copy);
    apply_rest_page(rt, cfg, c, rest, last_id.as_deref(), done)?;
    log::info!(
        "sequin_sf: {}: REST page of {count} rows fetched in {:.3} s, applied in {:.3} s",
        c.object_name,
        fetched_in.as_secs_f64(),
        apply_started.elapsed().as_secs_f64()
    );
    if let Some(cr) = rt.collections.get_mut(&c.object_name) {
        cr.next_records_url = if done { None } else { page.next_records_url };
    }
    Ok(!done)
}

/// Which page of an Id-ordered read (a backfill's, a refresh's) to ask for.
pub(super) enum PageAt {
    /// The first page of this query.
    First(String),
    /// The page a previous page's `nextRecordsUrl` points to.
    Next(String),
}

/// A page of an Id-ordered read of `object`, as raw JSON. A first page goes through
/// `queryAll` for objects whose archived records `query` leaves out
/// (`queries::backfill_reads_all`; the query itself leaves deleted records out), else
/// through `query`; the next pages come from `nextRecordsUrl` either way. A `split`
/// read's page is joined with its other field groups' fields.
pub(super) fn request_page(
    client: salesforce::Client,
    object: &str,
    at: PageAt,
    split: Option<SplitRead>,
) -> impl Future<Output = salesforce::Result<RawQueryPage>> + Send + 'static {
    let all = queries::backfill_reads_all(object);
    async move {
        let page = match at {
            PageAt::First(soql) if all => client.query_all_raw(&soql, Some(PAGE_SIZE)).await?,
            PageAt::First(soql) => client.query_raw(&soql, Some(PAGE_SIZE)).await?,
            PageAt::Next(url) => client.query_more_raw(&url).await?,
        };
        match split {
            Some(split) => split.complete_raw(&client, page).await,
            None => Ok(page),
        }
    }
}

/// The field groups a REST backfill of the collection reads in, when one query cannot
/// name all its fields.
fn split_read(cr: &CollectionRuntime, object: &str) -> Option<SplitRead> {
    SplitRead::plan(object, &queries::rest_fields(&cr.columns), None)
}

/// The fields a REST backfill's own query selects: all, or the first group's.
fn read_fields<'a>(cr: &'a CollectionRuntime, split: Option<&'a SplitRead>) -> Vec<&'a str> {
    match split {
        Some(s) => s.first_fields(),
        None => queries::rest_fields(&cr.columns),
    }
}

/// The API calls a REST page takes (one, or one per field group).
pub(super) fn calls_per_page(split: Option<&SplitRead>) -> u64 {
    split.map_or(1, SplitRead::calls_per_page)
}

/// Takes from the budget the calls of a page asked for ahead beyond the one
/// `fetch_ahead` takes: its other field groups'. False when the budget has not them.
fn spend_group_calls(rt: &mut SyncRuntime, split: Option<&SplitRead>) -> bool {
    match calls_per_page(split) - 1 {
        0 => true,
        more => rt.try_spend(more),
    }
}

/// The columns a page requested now is rewritten for (`page_file::fetch_rest_page`):
/// while the backfill's rows are new to the table and no events are kept, as only then
/// does the page go in with `COPY`.
fn copy_columns(
    rt: &SyncRuntime,
    cfg: &SyncConfig,
    c: &CollectionRow,
) -> Result<Option<Vec<ColumnSpec>>, StepError> {
    let cr = rt.collection(&c.object_name)?;
    Ok(pages_copied(cfg, cr).then(|| cr.columns.clone()))
}

/// Whether a REST page goes in with `COPY`: while the backfill's rows are new to the
/// table, and without events (those come from the upsert statement,
/// `apply::apply_records`).
fn pages_copied(cfg: &SyncConfig, cr: &CollectionRuntime) -> bool {
    cr.rows_new && !cfg.backfill_events
}

/// Stores a REST page with the cursor past it (`None`: unchanged), copied straight into
/// the table while the backfill's rows are new to it.
fn apply_rest_page(
    rt: &mut SyncRuntime,
    cfg: &SyncConfig,
    c: &CollectionRow,
    (records, count, copy): (&str, i64, Option<RewrittenPage>),
    cursor: Option<&str>,
    done: bool,
) -> Result<(), StepError> {
    let cr = rt.collection(&c.object_name)?;
    let cid = naming::collection_id(&c.object_name);
    let t = target(cfg, c, cr, &cid, cfg.backfill_events);
    let mut rows_new = pages_copied(cfg, cr);
    let rewritten = match (rows_new, copy) {
        (false, _) => None,
        (true, Some(copy)) => Some(copy),
        (true, None) => Some(page_file::rest_page_file(records, &cr.columns)?),
    };
    let rest_page = apply::RestPage {
        records,
        count,
        last_id: cursor,
        done,
        copy: rewritten.as_ref().map(|(page, copy)| apply::CopyFile {
            path: &page.0,
            columns: &copy.columns,
        }),
    };
    let db = &*rt.db;
    let applied = super::insert_new_or_upsert(db, &c.object_name, &mut rows_new, |mode| {
        tx(db, |s| {
            apply::apply_backfill_page(s, &cfg.name, &t, &c.object_name, &rest_page, mode)
        })
    });
    if !rows_new {
        rt.collection_mut(&c.object_name)?.rows_new = false;
    }
    applied.map(|_| ())
}

/// Ranges a REST backfill is split into at most: each holds a query cursor open, and
/// Salesforce allows a user few at a time (polls and other syncs need theirs).
const MAX_RANGES: usize = 5;

/// Whether a REST backfill that has not started is read in Id ranges: when more than
/// one request may be in flight besides the worker's own (`max_concurrent_requests`
/// 3 or more) and there are pages enough to share.
fn splits(rt: &SyncRuntime, cfg: &SyncConfig, c: &CollectionRow) -> Result<bool, StepError> {
    let cr = rt.collection(&c.object_name)?;
    Ok(c.backfill_cursor.is_none()
        && cr.next_records_url.is_none()
        && cr.rest_limit.is_none()
        && !cr.unsplittable
        && cfg.max_concurrent_requests >= 3
        && c.rows_total.unwrap_or(0) >= 4 * i64::from(PAGE_SIZE))
}

/// Reads the smallest and largest Id and stores the ranges as the backfill's cursor.
fn split_into_ranges(
    rt: &mut SyncRuntime,
    cfg: &SyncConfig,
    c: &CollectionRow,
) -> Result<bool, StepError> {
    if !rt.try_spend(2) {
        return Ok(false);
    }
    let all = queries::backfill_reads_all(&c.object_name);
    let edge = |descending: bool| {
        let client = rt.client.clone();
        let soql = queries::edge_query(&c.object_name, descending);
        async move {
            match all {
                true => client.query_all(&soql, None).await,
                false => client.query(&soql, None).await,
            }
        }
    };
    let first = rt.call(edge(false))?;
    let last = rt.call(edge(true))?;
    let id = |p: &salesforce::QueryPage| {
        p.records
            .first()
            .and_then(|r| r.get("Id"))
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    let n = (cfg.max_concurrent_requests.max(1) as usize).min(MAX_RANGES);
    let ranges = match (id(&first), id(&last)) {
        (Some(lo), Some(hi)) => Ranges::split(&lo, &hi, n),
        _ => Ranges { ranges: Vec::new() },
    };
    if ranges.ranges.len() < 2 {
        rt.collection_mut(&c.object_name)?.unsplittable = true;
        return Ok(true);
    }
    let cursor = ranges.to_cursor();
    tx(&*rt.db, |s| {
        progress::set_backfill_cursor(s, &cfg.name, &c.object_name, &cursor)
    })?;
    Ok(true)
}

type PageRequest = Pin<Box<dyn Future<Output = salesforce::Result<RestFetched>> + Send>>;

/// Asks ahead for the next page of every range that has none in flight, within
/// `max_concurrent_requests` and the budget.
fn request_ranges(
    rt: &mut SyncRuntime,
    cfg: &SyncConfig,
    c: &CollectionRow,
    ranges: &Ranges,
) -> Result<(), StepError> {
    let columns = copy_columns(rt, cfg, c)?;
    let cr = rt.collection(&c.object_name)?;
    let split = split_read(cr, &c.object_name);
    let fields = read_fields(cr, split.as_ref());
    let wanted: Vec<(String, PageRequest)> = ranges
        .ranges
        .iter()
        .filter(|r| cr.ranges.get(&r.key()).is_none_or(|f| f.ahead.is_none()))
        .map(|r| {
            let at = match cr.ranges.get(&r.key()).and_then(|f| f.next_url.clone()) {
                Some(url) => PageAt::Next(url),
                None => PageAt::First(r.query(&c.object_name, &fields, cr.rest_limit)),
            };
            let page = request_page(rt.client.clone(), &c.object_name, at, split.clone());
            let req: PageRequest = Box::pin(fetch_rest_page(page, columns.clone()));
            (r.key(), req)
        })
        .collect();
    // Ranges set while more requests were allowed go on one page at a time when only
    // one may be in flight now (the sync holding back, or its limit lowered): each
    // page is read when asked for, and the ranges still take turns.
    let one_at_a_time = rt.one_at_a_time();
    for (key, req) in wanted {
        if !spend_group_calls(rt, split.as_ref()) {
            break;
        }
        let started = match one_at_a_time {
            true => rt.fetch_now(req),
            false => rt.fetch_ahead(req),
        };
        let Some(ahead) = started else {
            break;
        };
        rt.collection_mut(&c.object_name)?
            .ranges
            .entry(key)
            .or_default()
            .ahead = Some(ahead);
        if one_at_a_time {
            break;
        }
    }
    Ok(())
}

/// Applies the next page of a ranged REST backfill (the ranges take turns), with
/// every range's next page requested ahead.
fn ranged_page(
    rt: &mut SyncRuntime,
    cfg: &SyncConfig,
    c: &CollectionRow,
    mut ranges: Ranges,
) -> Result<bool, StepError> {
    request_ranges(rt, cfg, c, &ranges)?;
    let cr = rt.collection_mut(&c.object_name)?;
    let n = ranges.ranges.len();
    let Some(i) = (0..n).map(|k| (cr.range_turn + k) % n.max(1)).find(|&i| {
        cr.ranges
            .get(&ranges.ranges[i].key())
            .is_some_and(|f| f.ahead.is_some())
    }) else {
        // nothing could be asked for (the budget): later
        return Ok(false);
    };
    cr.range_turn = i + 1;
    let key = ranges.ranges[i].key();
    let ahead = cr
        .ranges
        .get_mut(&key)
        .and_then(|f| f.ahead.take())
        .ok_or(StepError::Stopping)?;
    let fetch_started = Instant::now();
    let fetched = rt.fetched(ahead);
    let fetched_in = fetch_started.elapsed();
    let Received {
        page,
        count,
        last_id,
        done: range_done,
        copy,
    } = received(rt, cfg, c, fetched)?;
    if range_done {
        ranges.ranges.remove(i);
        rt.collection_mut(&c.object_name)?.ranges.remove(&key);
    } else {
        if let Some(id) = &last_id {
            ranges.ranges[i].after = Some(id.clone());
        }
        rt.collection_mut(&c.object_name)?
            .ranges
            .entry(key)
            .or_default()
            .next_url = page.next_records_url.clone();
        // this range's next page comes while this one is applied
        request_ranges(rt, cfg, c, &ranges)?;
    }
    let done = ranges.ranges.is_empty();
    let cursor = ranges.to_cursor();
    let apply_started = Instant::now();
    let rest = (page.records_json(), count, copy);
    apply_rest_page(rt, cfg, c, rest, Some(&cursor), done)?;
    log::info!(
        "sequin_sf: {}: REST page of {count} rows (range {} of {n}) fetched in {:.3} s, applied in {:.3} s",
        c.object_name,
        i + 1,
        fetched_in.as_secs_f64(),
        apply_started.elapsed().as_secs_f64()
    );
    Ok(!done)
}

/// The smallest REST page cut tried after QUERY_TIMEOUTs.
const MIN_REST_LIMIT: u32 = 200;

/// A REST backfill query ran past Salesforce's time limit. Salesforce's advice for long
/// queries is the Bulk API (it retries a query that times out and splits it by primary
/// key): the backfill switches to a Bulk job, unless one already failed for this
/// collection or Bulk cannot read it (a base64 field); then pages are cut smaller (a
/// LIMIT on the keyset query), down to 200 records. Returns the error to report; the
/// step is retried with backoff.
fn after_query_timeout(
    rt: &mut SyncRuntime,
    cfg: &SyncConfig,
    c: &CollectionRow,
    e: salesforce::Error,
) -> Result<StepError, StepError> {
    let db = rt.db.clone();
    let cr = rt.collection_mut(&c.object_name)?;
    let message = if !cr.bulk_failed && queries::bulk_readable(&c.object_name, &cr.columns) {
        tx(&*db, |s| {
            progress::switch_backfill(s, &cfg.name, &c.object_name, BackfillMode::Bulk)
        })?;
        format!("{e}; backfilling through a Bulk query job instead")
    } else {
        let limit = cr.rest_limit.unwrap_or(PAGE_SIZE);
        if limit <= MIN_REST_LIMIT {
            return Ok(e.into());
        }
        let cut = (limit / 2).max(MIN_REST_LIMIT);
        cr.rest_limit = Some(cut);
        format!("{e}; reading pages of {cut} records instead")
    };
    Ok(StepError::Collection {
        object: c.object_name.clone(),
        message,
    })
}
