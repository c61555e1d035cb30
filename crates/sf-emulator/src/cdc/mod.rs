//! Change Data Capture: every record change made through the API or the control API,
//! to an object selected for CDC, becomes a change event on the bus that the Pub/Sub
//! API server (`crate::pubsub_api`) delivers.
//!
//! A request runs inside a [`Context`] (the bus and the request's `changeOrigin`);
//! the write path (`validate`) asks [`watch`] before a change and reports the change
//! after it. Outside a context (data generation at start and `POST generate`, which
//! seed the org) and for objects not selected, nothing is captured, and the check
//! costs one atomic load when no object is selected. Events of an `allOrNone`
//! request wait in its undo journal (`txn`) and are published when it commits, as one
//! transaction; a rolled-back change publishes nothing.
//!
//! | fact | source |
//! | --- | --- |
//! | CREATE and UNDELETE carry all fields, UPDATE only the changed ones (others null), DELETE none | "Change Event Body Fields", Change Data Capture Developer Guide, https://developer.salesforce.com/docs/atlas.en-us.change_data_capture.meta/change_data_capture/cdc_event_fields_body.htm |
//! | changedFields lists an update's changed fields, including LastModifiedDate; it is empty for other operations; nulledFields the ones set to null | "ChangeEventHeader Fields", same guide, https://developer.salesforce.com/docs/atlas.en-us.change_data_capture.meta/change_data_capture/cdc_event_fields_header.htm; EventBus.ChangeEventHeader class, Apex Reference |
//! | changeOrigin is `com/salesforce/api/<API>/<version>;client=<id>` (API one of soap, rest, bulkapi, ...), the client id from the call options header, `;client=` left out when none is set; empty for changes not made through an API | EventBus.ChangeEventHeader class (changeorigin), Apex Reference Guide |
//! | Hard-deleting from the Recycle Bin produces no event | "General Considerations", Change Data Capture Developer Guide |
//!
//! Not modelled: merging the same change to several records into one event (each
//! record gets its own event, allowed by "Typically, this field contains one record
//! ID"), diffFields (always empty), enrichment and event filters. Custom channels are
//! modelled (`channels`, `crate::tooling`).

pub mod bus;
pub mod channels;
pub mod control;
pub mod deliveries;
pub mod layout;

pub use bus::{Bus, Pending};

use crate::store::{SObject, Val};
use layout::{Fill, Slot};
use std::sync::Arc;

tokio::task_local! {
    static CONTEXT: Context;
}

/// Where the writes of the current request go, and what caused them.
#[derive(Clone)]
pub struct Context {
    bus: Arc<Bus>,
    origin: Arc<str>,
}

/// Runs `f` (a request) with its writes captured for `bus`, labelled `origin`.
pub async fn within<F: std::future::Future>(bus: &Arc<Bus>, origin: String, f: F) -> F::Output {
    let ctx = Context {
        bus: bus.clone(),
        origin: origin.into(),
    };
    CONTEXT.scope(ctx, f).await
}

/// The changeOrigin of an API call: `com/salesforce/api/rest/61.0;client=NAME`, the
/// client taken from `Sforce-Call-Options: client=NAME, ...`.
pub fn origin(api: &str, version: &str, call_options: Option<&str>) -> String {
    let client = call_options.and_then(|h| {
        h.split(',')
            .filter_map(|p| p.trim().split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("client"))
            .map(|(_, v)| v.trim().to_string())
    });
    match client {
        Some(c) if !c.is_empty() => format!("com/salesforce/api/{api}/{version};client={c}"),
        _ => format!("com/salesforce/api/{api}/{version}"),
    }
}

/// A change about to happen to a selected object, inside a context.
pub struct Watch {
    ctx: Context,
    layout: Arc<layout::Layout>,
}

/// Some when a change to `o` now must produce an event.
pub fn watch(o: &SObject) -> Option<Watch> {
    CONTEXT
        .try_with(|c| {
            c.bus.is_selected(&o.def.name).then(|| Watch {
                ctx: c.clone(),
                layout: c.bus.layout(&o.def),
            })
        })
        .ok()
        .flatten()
}

/// The row's stored values before an update, to tell what it changed.
pub fn snapshot(o: &SObject, row: usize) -> Vec<Val> {
    o.table
        .cols
        .iter()
        .map(|c| Val::from_value(c.get(row)))
        .collect()
}

impl Watch {
    pub fn created(self, o: &SObject, row: usize) {
        self.whole(o, row, "CREATE");
    }

    pub fn undeleted(self, o: &SObject, row: usize) {
        self.whole(o, row, "UNDELETE");
    }

    pub fn deleted(self, o: &SObject, row: usize) {
        let body = layout::encode_body(&self.layout, None, &Fill::Nothing);
        self.emit(o, row, "DELETE", body, Vec::new(), Vec::new(), 1);
    }

    fn whole(self, o: &SObject, row: usize, kind: &'static str) {
        let body = layout::encode_body(&self.layout, Some((o, row)), &Fill::All);
        self.emit(o, row, kind, body, Vec::new(), Vec::new(), 1);
    }

    /// An update: only the fields whose stored value differs from `before`.
    pub fn updated(self, o: &SObject, row: usize, before: &[Val]) {
        // An update always lists LastModifiedDate, even when the stamp equals the
        // previous one (two writes in the same millisecond).
        let stamp = o.def.field("LastModifiedDate").and_then(|f| f.column());
        let differs = |c: usize| {
            Some(c) == stamp
                || before
                    .get(c)
                    .is_none_or(|b| *b != Val::from_value(o.table.cols[c].get(row)))
        };
        let is_null = |c: usize| o.table.cols[c].get(row) == soql::Value::Null;
        let mut changed_cols = Vec::new();
        let (mut changed_top, mut nulled_top) = (Vec::new(), Vec::new());
        let (mut changed_nested, mut nulled_nested) = (Vec::new(), Vec::new());
        for (i, slot) in self.layout.slots.iter().enumerate() {
            // Position 0 is the header.
            let pos = i + 1;
            match slot {
                Slot::Plain(p) if differs(p.col) => {
                    changed_cols.push(p.col);
                    changed_top.push(pos);
                    if is_null(p.col) {
                        nulled_top.push(pos);
                    }
                }
                Slot::Plain(_) => {}
                Slot::Compound { parts, .. } => {
                    let (mut ch, mut nu) = (Vec::new(), Vec::new());
                    for (j, p) in parts.iter().enumerate() {
                        if differs(p.col) {
                            changed_cols.push(p.col);
                            ch.push(j);
                            if is_null(p.col) {
                                nu.push(j);
                            }
                        }
                    }
                    if !ch.is_empty() {
                        changed_nested.push((pos, ch));
                    }
                    if !nu.is_empty() {
                        nulled_nested.push((pos, nu));
                    }
                }
            }
        }
        let body = layout::encode_body(&self.layout, Some((o, row)), &Fill::Columns(&changed_cols));
        let changed = pubsub::bitmap::field_list(&changed_top, &changed_nested);
        let nulled = pubsub::bitmap::field_list(&nulled_top, &nulled_nested);
        let weight = changed_cols.len().max(1);
        self.emit(o, row, "UPDATE", body, changed, nulled, weight);
    }

    #[allow(clippy::too_many_arguments)]
    fn emit(
        self,
        o: &SObject,
        row: usize,
        kind: &'static str,
        body: Vec<u8>,
        changed: Vec<String>,
        nulled: Vec<String>,
        weight: usize,
    ) {
        let p = Pending {
            bus: self.ctx.bus,
            layout: self.layout,
            change_type: kind,
            record_ids: vec![o.id_of(row).to_string()],
            origin: self.ctx.origin,
            changed,
            nulled,
            body,
            weight,
        };
        crate::txn::emit(p);
    }
}

/// Publishes one transaction's changes (all captured by the same emulator).
pub fn commit(changes: Vec<Pending>) {
    if let Some(first) = changes.first() {
        let bus = first.bus.clone();
        bus.commit(changes);
    }
}
