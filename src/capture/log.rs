//! Where a statement's entries go: `<schema>._sync_write_log`, one row per entry, while the
//! transaction has captured few; batches (batch.rs) once it has captured more, or for a
//! statement changing many rows; memory, for a statement run by the triggers of another
//! statement on a synced table, until that statement's own entries are logged
//! (nested.rs). sql/capture.sql documents both tables.

use std::ffi::CStr;

use pgrx::pg_sys;

use super::batch::{self, Batch};
use super::cache;
use super::json::RowJson;
use super::kept;
use super::nested::{self, Ending, Held};
use super::pg_versions;
use super::table::{in_memory, sibling, text_datum, TableWriter};
use super::values::{Rows, Value};

/// A transaction's first entries, up to this many, are written as log rows, visible in
/// the log at commit; the others, and all of a statement changing more rows than this,
/// go in batches: one log row per entry costs about as much as the application's own
/// row, a batch a fraction of it, but its entries show in the log only once the worker
/// has expanded them.
pub const BATCH_ABOVE: i64 = 100;

#[derive(Clone, Copy)]
pub enum Action {
    Insert,
    Update,
    Delete,
}

pub const ACTIONS: [&CStr; 3] = [c"insert", c"update", c"delete"];

/// One entry, in the log's own terms; every other column takes its default.
pub struct Entry {
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

/// Where a synced table's entries go, and what its batches record of its columns: worked
/// out once per table and session (cache.rs forgets it when the table, its log or its
/// batch table changes).
pub struct LogTables {
    pub log: pg_sys::Oid,
    pub batch: pg_sys::Oid,
    /// the log's id sequence, which numbers batched entries too
    pub sequence: pg_sys::Oid,
    /// the table's name and columns, as a batch describes them (kept.rs)
    pub description: (String, String),
    /// `description.1` as the bytes of a jsonb value, a batch's `row_type`
    pub row_type: Vec<u8>,
}

impl LogTables {
    pub unsafe fn new(table: pg_sys::Relation) -> LogTables {
        let log = sibling(table, c"_sync_write_log");
        let id = pg_sys::get_attnum(log, c"id".as_ptr());
        let name = CStr::from_ptr((*(*table).rd_rel).relname.data.as_ptr());
        let description = (
            name.to_string_lossy().into_owned(),
            kept::describe((*table).rd_att),
        );
        let row_type = kept::jsonb_bytes(&description.1);
        LogTables {
            log,
            batch: sibling(table, c"_sync_write_batch"),
            sequence: pg_versions::identity_sequence(log, id),
            description,
            row_type,
        }
    }
}

/// The entries of one statement.
pub enum Log {
    Rows(LogRows),
    Batched(Batch),
    Held(Held),
}

/// A statement's entries written as log rows.
pub struct LogRows {
    writer: TableWriter,
    table_name: pg_sys::Datum,
    object_name: pg_sys::Datum,
    action: pg_sys::Datum,
}

impl Log {
    /// Where the entries of a statement's event that changed `rows` rows of `table` go
    /// (`ending`: whether they wait for a statement around it).
    pub unsafe fn open(
        table: pg_sys::Relation,
        object: &CStr,
        action: Action,
        rows: i64,
        ending: &Ending,
    ) -> Log {
        let before = batch::count_captured(rows);
        if ending.hold {
            return Log::Held(Held::new(table, object, action, ending));
        }
        let few = if batch::at_top_level() {
            before + rows <= BATCH_ABOVE
        } else {
            rows <= BATCH_ABOVE
        };
        if !few {
            return Log::Batched(batch::for_statement(table, object, action));
        }
        Log::rows(table, object, action)
    }

    /// Entries of `table` written as rows of its schema's log.
    pub unsafe fn rows(table: pg_sys::Relation, object: &CStr, action: Action) -> Log {
        let writer = TableWriter::open(cache::log_tables(table).log, |rel| {
            cache::table_shape(rel, &LOG_COLUMNS)
        });
        let name = CStr::from_ptr((*(*table).rd_rel).relname.data.as_ptr());
        let (table_name, object_name, action) = in_memory(writer.statement_memory(), || {
            (
                text_datum(name),
                text_datum(object),
                text_datum(ACTIONS[action as usize]),
            )
        });
        Log::Rows(LogRows {
            writer,
            table_name,
            object_name,
            action,
        })
    }

    /// Runs f allocating in memory that lasts until the entry is appended.
    pub unsafe fn in_row_memory<T>(&self, f: impl FnOnce() -> T) -> T {
        match self {
            Log::Rows(l) => in_memory(l.writer.row_memory(), f),
            Log::Batched(b) => in_memory(b.scratch(), f),
            Log::Held(h) => in_memory(h.scratch(), f),
        }
    }

    /// Frees what a row that is not appended left in row memory (`append` does it for
    /// the rows it appends), so a statement's memory does not grow with its rows.
    pub unsafe fn forget_row(&self) {
        match self {
            Log::Rows(l) => l.writer.reset_row_memory(),
            Log::Batched(b) => pg_sys::MemoryContextReset(b.scratch()),
            Log::Held(h) => pg_sys::MemoryContextReset(h.scratch()),
        }
    }

    /// An entry's row before, the current row of `rows`: jsonb for the log (and for
    /// entries held to be written to it), or the row kept as it is for a batch, which the
    /// worker turns into the same jsonb (kept.rs).
    pub unsafe fn previous(&self, rows: &Rows, json: &RowJson) -> pg_sys::Datum {
        match self {
            Log::Rows(_) | Log::Held(_) => {
                self.in_row_memory(|| json.object(|i| rows.attr(i), |_| true))
            }
            Log::Batched(b) => b.keep(rows),
        }
    }

    pub unsafe fn append(&mut self, e: &Entry) {
        let l = match self {
            Log::Rows(l) => l,
            Log::Batched(b) => return b.push(e),
            Log::Held(h) => return h.push(e),
        };
        let not_null = |v: Value| (!v.1).then_some(v.0);
        l.writer.append(&[
            Some(l.table_name),
            Some(l.object_name),
            not_null(e.row_id),
            Some(l.action),
            e.api_id.and_then(not_null),
            e.previous,
            e.values,
        ]);
    }

    pub unsafe fn close(self) {
        match self {
            Log::Rows(l) => l.writer.close(),
            Log::Batched(b) => batch::put_back(b),
            Log::Held(h) => nested::hold(h),
        }
    }
}
