//! Where a statement's entries go: `<schema>._sync_write_log`, one row per entry, or, for
//! a statement changing many rows, `<schema>._sync_write_batch`, one row per thousand
//! entries, which the worker expands into the log's rows before it reads the log
//! (`sequin_sf._write_expand_batches`). A batched entry takes its log id from the log's
//! own sequence when it is captured, so the log's order is the order of capture either
//! way. sql/capture.sql documents both tables.

use std::ffi::{CStr, CString};

use pgrx::pg_sys;
use pgrx::prelude::*;

use super::cache;
use super::json::RowJson;
use super::kept;
use super::table::{in_memory, sibling, TableWriter};
use super::values::{Rows, Value};

/// Statements changing more rows than this are logged in batches: one log row per entry
/// costs as much as the application's own row, a batch a fraction of it, but its
/// entries show in the log only once the worker has expanded them.
pub const BATCH_ABOVE: i64 = 100;

/// Entries per batch row, which bounds the memory a large statement's capture holds.
const BATCH_ENTRIES: usize = 1000;

#[derive(Clone, Copy)]
pub enum Action {
    Insert,
    Update,
    Delete,
}

const ACTIONS: [&CStr; 3] = [c"insert", c"update", c"delete"];

/// One entry, in the log's own terms; every other column takes its default.
pub struct Entry {
    pub action: Action,
    pub row_id: Value,
    pub api_id: Option<Value>,
    pub previous: Option<pg_sys::Datum>,
    pub values: Option<pg_sys::Datum>,
}

/// The log columns capture fills, in `Log::append`'s order.
const LOG_COLUMNS: [&str; 7] = [
    "table_name",
    "object_name",
    "row_id",
    "action",
    "api_id",
    "previous",
    "values",
];

/// The batch columns capture fills, in `Log::flush`'s order.
const BATCH_COLUMNS: [&str; 10] = [
    "id",
    "table_name",
    "object_name",
    "action",
    "ids",
    "row_ids",
    "api_ids",
    "row_type",
    "previous_rows",
    "values",
];

extern "C-unwind" {
    /// commands/sequence.h (not among pgrx's bindings): called through next_log_id
    fn nextval_internal(relid: pg_sys::Oid, check_permissions: bool) -> i64;
}

/// The next value of the log's id sequence, without a privilege check, as the log's own
/// identity default takes it.
unsafe fn next_log_id(sequence: pg_sys::Oid) -> pg_sys::Datum {
    // a Postgres error raised inside becomes a Rust panic here, as for pg_sys calls
    let id = pg_sys::ffi::pg_guard_ffi_boundary(|| nextval_internal(sequence, false));
    pg_sys::Datum::from(id)
}

/// The entries of one statement.
pub struct Log {
    writer: TableWriter,
    table_name: pg_sys::Datum,
    object_name: pg_sys::Datum,
    actions: [pg_sys::Datum; 3],
    batch: Option<Batch>,
}

/// Entries waiting to be written as one batch row.
struct Batch {
    /// the log's id sequence
    sequence: pg_sys::Oid,
    /// holds the entries' values until they are written
    memory: pg_sys::MemoryContext,
    /// the table's columns, as the kept rows before are read back (kept.rs)
    row_type: pg_sys::Datum,
    action: Option<Action>,
    ids: Vec<pg_sys::Datum>,
    row_ids: Vec<Option<pg_sys::Datum>>,
    api_ids: Vec<Option<pg_sys::Datum>>,
    previous: Vec<Option<pg_sys::Datum>>,
    values: Vec<Option<pg_sys::Datum>>,
}

impl Batch {
    /// An empty batch of `table`'s entries, whose log is `log_oid`, written by `writer`.
    unsafe fn new(table: pg_sys::Relation, log_oid: pg_sys::Oid, writer: &TableWriter) -> Batch {
        let id = pg_sys::get_attnum(log_oid, c"id".as_ptr());
        let row_type = CString::new(kept::describe((*table).rd_att))
            .unwrap_or_else(|e| error!("sequin_sf: {e}"));
        let row_type = in_memory(writer.statement_memory(), || {
            pgrx::fcinfo::direct_function_call_as_datum(
                pg_sys::jsonb_in,
                &[Some(pg_sys::Datum::from(row_type.as_ptr()))],
            )
        })
        .unwrap_or_else(|| error!("sequin_sf: jsonb_in returned NULL"));
        Batch {
            sequence: pg_sys::getIdentitySequence(log_oid, id, false),
            row_type,
            // freed with the writer's statement memory
            memory: pg_sys::AllocSetContextCreateInternal(
                writer.statement_memory(),
                c"sequin_sf write batch".as_ptr(),
                pg_sys::ALLOCSET_DEFAULT_MINSIZE as usize,
                pg_sys::ALLOCSET_DEFAULT_INITSIZE as usize,
                pg_sys::ALLOCSET_DEFAULT_MAXSIZE as usize,
            ),
            action: None,
            ids: Vec::new(),
            row_ids: Vec::new(),
            api_ids: Vec::new(),
            previous: Vec::new(),
            values: Vec::new(),
        }
    }
}

impl Log {
    /// The log of `table`'s schema, for a statement that changed `rows` rows.
    pub unsafe fn open(table: pg_sys::Relation, object: &CStr, rows: i64) -> Log {
        let log_oid = sibling(table, c"_sync_write_log");
        let (writer, batch) = if rows > BATCH_ABOVE {
            let oid = sibling(table, c"_sync_write_batch");
            let writer = TableWriter::open(oid, |rel| cache::table_shape(rel, &BATCH_COLUMNS));
            let batch = Batch::new(table, log_oid, &writer);
            (writer, Some(batch))
        } else {
            let writer = TableWriter::open(log_oid, |rel| cache::table_shape(rel, &LOG_COLUMNS));
            (writer, None)
        };
        let table_name = CStr::from_ptr((*(*table).rd_rel).relname.data.as_ptr());
        let (table_name, object_name, actions) = in_memory(writer.statement_memory(), || {
            (
                text_datum(table_name),
                text_datum(object),
                ACTIONS.map(|a| text_datum(a)),
            )
        });
        Log {
            writer,
            table_name,
            object_name,
            actions,
            batch,
        }
    }

    /// Runs f allocating in memory that lasts until the entry is appended.
    pub unsafe fn in_row_memory<T>(&self, f: impl FnOnce() -> T) -> T {
        in_memory(self.writer.row_memory(), f)
    }

    /// An entry's row before, the current row of `rows`: jsonb for the log, or the row
    /// kept as it is for a batch, which the worker turns into the same jsonb (kept.rs).
    pub unsafe fn previous(&self, rows: &Rows, json: &RowJson) -> pg_sys::Datum {
        match &self.batch {
            Some(b) => in_memory(b.memory, || kept::keep(rows)),
            None => self.in_row_memory(|| json.object(|i| rows.attr(i), |_| true)),
        }
    }

    pub unsafe fn append(&mut self, e: &Entry) {
        let not_null = |v: Value| (!v.1).then_some(v.0);
        let action = self.actions[e.action as usize];
        let Some(batch) = &mut self.batch else {
            self.writer.append(&[
                Some(self.table_name),
                Some(self.object_name),
                not_null(e.row_id),
                Some(action),
                e.api_id.and_then(not_null),
                e.previous,
                e.values,
            ]);
            return;
        };
        batch.action = Some(e.action);
        batch.ids.push(next_log_id(batch.sequence));
        batch.row_ids.push(not_null(e.row_id));
        // the entry's values live in row memory or in the transition table's current
        // row: the batch keeps copies, and row memory is reused for the next entry (the
        // row before is in the batch's memory already)
        let memory = batch.memory;
        let keep = |d: Option<pg_sys::Datum>| {
            d.map(|d| {
                in_memory(memory, || {
                    pg_sys::Datum::from(pg_sys::pg_detoast_datum_copy(d.cast_mut_ptr()))
                })
            })
        };
        batch.api_ids.push(keep(e.api_id.and_then(not_null)));
        batch.previous.push(e.previous);
        batch.values.push(keep(e.values));
        self.writer.reset_row_memory();
        if batch.ids.len() == BATCH_ENTRIES {
            self.flush();
        }
    }

    /// Writes the batch's entries as one row.
    unsafe fn flush(&mut self) {
        let Some(batch) = &mut self.batch else { return };
        let Some(action) = batch.action.filter(|_| !batch.ids.is_empty()) else {
            return;
        };
        let ids: Vec<Option<pg_sys::Datum>> = batch.ids.iter().copied().map(Some).collect();
        let row = in_memory(batch.memory, || {
            [
                Some(batch.ids[0]),
                Some(self.table_name),
                Some(self.object_name),
                Some(self.actions[action as usize]),
                array(&ids, pg_sys::INT8OID),
                array(&batch.row_ids, pg_sys::INT8OID),
                array(&batch.api_ids, pg_sys::TEXTOID),
                batch
                    .previous
                    .iter()
                    .any(Option::is_some)
                    .then_some(batch.row_type),
                array(&batch.previous, pg_sys::BYTEAOID),
                array(&batch.values, pg_sys::JSONBOID),
            ]
        });
        self.writer.append(&row);
        for v in [
            &mut batch.row_ids,
            &mut batch.api_ids,
            &mut batch.previous,
            &mut batch.values,
        ] {
            v.clear();
        }
        batch.ids.clear();
        pg_sys::MemoryContextReset(batch.memory);
    }

    pub unsafe fn close(mut self) {
        self.flush();
        self.writer.close();
    }
}

/// A one-dimensional array of `elements` (None is NULL), or None when every one is NULL.
unsafe fn array(
    elements: &[Option<pg_sys::Datum>],
    element_type: pg_sys::Oid,
) -> Option<pg_sys::Datum> {
    if elements.iter().all(Option::is_none) {
        return None;
    }
    let mut values: Vec<pg_sys::Datum> = elements
        .iter()
        .map(|e| e.unwrap_or(pg_sys::Datum::from(0)))
        .collect();
    let mut nulls: Vec<bool> = elements.iter().map(Option::is_none).collect();
    let (mut len, mut byval, mut align) = (0i16, false, 0 as std::ffi::c_char);
    pg_sys::get_typlenbyvalalign(element_type, &mut len, &mut byval, &mut align);
    let mut dims = [elements.len() as i32];
    let mut lower = [1i32];
    let a = pg_sys::construct_md_array(
        values.as_mut_ptr(),
        nulls.as_mut_ptr(),
        1,
        dims.as_mut_ptr(),
        lower.as_mut_ptr(),
        element_type,
        len.into(),
        byval,
        align,
    );
    Some(pg_sys::Datum::from(a))
}

unsafe fn text_datum(s: &CStr) -> pg_sys::Datum {
    pg_sys::Datum::from(pg_sys::cstring_to_text(s.as_ptr()))
}
