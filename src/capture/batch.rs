//! Batches: entries written as one row of `<schema>._sync_write_batch` per thousand, which
//! the worker expands into the log's rows before it reads the log
//! (`sequin_sf._write_expand_batches`). A batched entry takes its log id from the log's
//! own sequence when it is captured, so the log's order is the order of capture whenever
//! and however its entries are written.
//!
//! Outside any subtransaction, a transaction's batches gather the entries of all its
//! statements (one batch per table and action) and are written when full or just before
//! the transaction commits (`Pending`): a transaction of many one-row statements then
//! pays, per statement, for keeping its entries in memory, not for a row of the log with
//! its indexes and the executor set up to write it. Inside a subtransaction a statement's
//! batch is written when the statement ends instead, so that rolling the subtransaction
//! back takes its entries with it, and never those of the transaction around it.

use std::cell::{Cell, RefCell};
use std::ffi::CStr;
use std::rc::Rc;

use pgrx::pg_sys;
use pgrx::prelude::*;

use super::cache;
use super::kept;
use super::log::{Action, Entry, LogTables, ACTIONS};
use super::table::{in_memory, text_datum, TableWriter};
use super::values::Rows;

/// Entries per batch row, which bounds the memory a batch holds.
const BATCH_ENTRIES: usize = 1000;
/// A batch is also written once its entries hold this many bytes (rows before and
/// values): a batch row's arrays must stay far below Postgres's 1 GB for one value, and
/// a statement of wide rows must not hold a thousand of them in memory.
const BATCH_BYTES: usize = 64 << 20;

/// The batch columns capture fills, in `Batch::flush`'s order.
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

/// Entries of one table and action waiting to be written as batch rows.
pub struct Batch {
    table: pg_sys::Oid,
    action: Action,
    /// the batch table, the log's sequence, and the table's columns as the batch holds them
    tables: Rc<LogTables>,
    /// holds the batch's names and row type, and the two below; deleted by `finish`
    memory: pg_sys::MemoryContext,
    /// holds the entries until they are written
    entries: pg_sys::MemoryContext,
    /// memory for building one entry's values, reset once the batch copied them
    scratch: pg_sys::MemoryContext,
    table_name: pg_sys::Datum,
    object_name: pg_sys::Datum,
    action_name: pg_sys::Datum,
    /// the columns, as the kept rows before are read back (kept.rs)
    row_type: pg_sys::Datum,
    ids: Vec<pg_sys::Datum>,
    row_ids: Vec<Option<pg_sys::Datum>>,
    api_ids: Vec<Option<pg_sys::Datum>>,
    previous: Vec<Option<pg_sys::Datum>>,
    values: Vec<Option<pg_sys::Datum>>,
    /// bytes of the entries held (`BATCH_BYTES`)
    held: usize,
}

impl Batch {
    /// An empty batch of `table`'s `action` entries, in memory under `parent`.
    unsafe fn new(
        table: pg_sys::Relation,
        object: &CStr,
        action: Action,
        parent: pg_sys::MemoryContext,
    ) -> Batch {
        let tables = cache::log_tables(table);
        let memory = pg_sys::AllocSetContextCreateInternal(
            parent,
            c"sequin_sf write batch".as_ptr(),
            pg_sys::ALLOCSET_DEFAULT_MINSIZE as usize,
            pg_sys::ALLOCSET_DEFAULT_INITSIZE as usize,
            pg_sys::ALLOCSET_DEFAULT_MAXSIZE as usize,
        );
        let child = |name: &CStr| {
            pg_sys::AllocSetContextCreateInternal(
                memory,
                name.as_ptr(),
                pg_sys::ALLOCSET_DEFAULT_MINSIZE as usize,
                pg_sys::ALLOCSET_DEFAULT_INITSIZE as usize,
                pg_sys::ALLOCSET_DEFAULT_MAXSIZE as usize,
            )
        };
        let entries = child(c"sequin_sf write batch entries");
        let scratch = child(c"sequin_sf write batch entry");
        let name = CStr::from_ptr((*(*table).rd_rel).relname.data.as_ptr());
        let row_type = in_memory(memory, || {
            let bytes = &tables.row_type;
            let copy = pg_sys::palloc(bytes.len()).cast::<u8>();
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), copy, bytes.len());
            pg_sys::Datum::from(copy)
        });
        Batch {
            table: (*table).rd_id,
            action,
            tables,
            memory,
            entries,
            scratch,
            table_name: in_memory(memory, || text_datum(name)),
            object_name: in_memory(memory, || text_datum(object)),
            action_name: in_memory(memory, || text_datum(ACTIONS[action as usize])),
            row_type,
            ids: Vec::new(),
            row_ids: Vec::new(),
            api_ids: Vec::new(),
            previous: Vec::new(),
            values: Vec::new(),
            held: 0,
        }
    }

    /// Memory that lasts until the next entry is pushed.
    pub fn scratch(&self) -> pg_sys::MemoryContext {
        self.scratch
    }

    /// The current row of `rows` kept as it is, for an entry's row before.
    pub unsafe fn keep(&self, rows: &Rows) -> pg_sys::Datum {
        in_memory(self.entries, || kept::keep(rows))
    }

    /// Adds an entry (its row before already kept by `keep`); writes the batch when full.
    pub unsafe fn push(&mut self, e: &Entry) {
        let not_null = |v: (pg_sys::Datum, bool)| (!v.1).then_some(v.0);
        self.ids.push(next_log_id(self.tables.sequence));
        self.row_ids.push(not_null(e.row_id));
        // the entry's values live in scratch memory or in the transition table's current
        // row: the batch keeps copies
        let memory = self.entries;
        let keep = |d: Option<pg_sys::Datum>| {
            d.map(|d| {
                in_memory(memory, || {
                    pg_sys::Datum::from(pg_sys::pg_detoast_datum_copy(d.cast_mut_ptr()))
                })
            })
        };
        self.api_ids.push(keep(e.api_id.and_then(not_null)));
        self.previous.push(e.previous);
        self.values.push(keep(e.values));
        let size = |d: Option<&Option<pg_sys::Datum>>| {
            d.copied()
                .flatten()
                .map_or(0, |d| pgrx::varlena::varsize_any(d.cast_mut_ptr()))
        };
        self.held += size(self.previous.last()) + size(self.values.last());
        pg_sys::MemoryContextReset(self.scratch);
        if self.ids.len() == BATCH_ENTRIES || self.held >= BATCH_BYTES {
            self.flush();
        }
    }

    /// Writes the entries held as one batch row.
    unsafe fn flush(&mut self) {
        if self.ids.is_empty() {
            return;
        }
        let ids: Vec<Option<pg_sys::Datum>> = self.ids.iter().copied().map(Some).collect();
        let row = in_memory(self.entries, || {
            [
                Some(self.ids[0]),
                Some(self.table_name),
                Some(self.object_name),
                Some(self.action_name),
                array(&ids, pg_sys::INT8OID),
                array(&self.row_ids, pg_sys::INT8OID),
                array(&self.api_ids, pg_sys::TEXTOID),
                self.previous
                    .iter()
                    .any(Option::is_some)
                    .then_some(self.row_type),
                array(&self.previous, pg_sys::BYTEAOID),
                array(&self.values, pg_sys::JSONBOID),
            ]
        });
        let mut writer = TableWriter::open(self.tables.batch, |rel| {
            cache::table_shape(rel, &BATCH_COLUMNS)
        });
        writer.append(&row);
        writer.close();
        for v in [
            &mut self.row_ids,
            &mut self.api_ids,
            &mut self.previous,
            &mut self.values,
        ] {
            v.clear();
        }
        self.ids.clear();
        self.held = 0;
        pg_sys::MemoryContextReset(self.entries);
    }

    /// Writes what is held and frees the batch's memory. A sync dropped in the
    /// transaction took its batch table along, and the entries with it.
    pub unsafe fn finish(mut self) {
        if pg_sys::get_rel_relkind(self.tables.batch) != 0 {
            self.flush();
        }
        pg_sys::MemoryContextDelete(self.memory);
    }

    /// Whether entries of `table` captured now can join this batch: they go to the same
    /// tables, and its name and columns are still those the batch holds (an ALTER TABLE
    /// in the transaction starts another batch).
    unsafe fn describes(&mut self, table: pg_sys::Relation) -> bool {
        let now = cache::log_tables(table);
        if !Rc::ptr_eq(&now, &self.tables) {
            let (a, b) = (&*now, &*self.tables);
            if (a.log, a.batch, &a.description) != (b.log, b.batch, &b.description) {
                return false;
            }
            self.tables = now;
        }
        true
    }
}

thread_local! {
    /// The batches of the transaction running, outside any subtransaction.
    static PENDING: RefCell<Vec<Batch>> = const { RefCell::new(Vec::new()) };
    /// Entries the transaction running has captured so far.
    static CAPTURED: Cell<i64> = const { Cell::new(0) };
    static LISTENING: Cell<bool> = const { Cell::new(false) };
}

/// Counts `rows` more entries of the transaction running; returns how many it had.
pub unsafe fn count_captured(rows: i64) -> i64 {
    listen();
    CAPTURED.with(|c| {
        let before = c.get();
        c.set(before + rows);
        before
    })
}

/// Whether capture runs outside any subtransaction, where the transaction's batches
/// gather entries until it commits.
pub unsafe fn at_top_level() -> bool {
    pg_sys::GetCurrentTransactionNestLevel() == 1
}

/// The batch for `table`'s `action` entries of one statement: the transaction's (taken
/// out of it until `put_back`) at top level, else one of the statement's own.
pub unsafe fn for_statement(table: pg_sys::Relation, object: &CStr, action: Action) -> Batch {
    if !at_top_level() {
        return Batch::new(table, object, action, pg_sys::CurTransactionContext);
    }
    // taken out, not borrowed: what runs while the statement adds its entries may read
    // invalidations, and with them run cache.rs's callback
    let found = PENDING.with(|p| {
        let mut p = p.borrow_mut();
        let i = p
            .iter()
            .position(|b| b.table == (*table).rd_id && b.action as usize == action as usize);
        i.map(|i| p.swap_remove(i))
    });
    if let Some(mut b) = found {
        if b.describes(table) {
            return b;
        }
        // the table changed since: its entries so far go as they were described
        b.finish();
    }
    Batch::new(table, object, action, pg_sys::TopTransactionContext)
}

/// Ends a statement's use of `batch`: the transaction's goes back to it, a statement's
/// own is written.
pub unsafe fn put_back(batch: Batch) {
    if at_top_level() {
        PENDING.with(|p| p.borrow_mut().push(batch));
    } else {
        batch.finish();
    }
}

unsafe fn listen() {
    if !LISTENING.with(Cell::get) {
        pg_sys::RegisterXactCallback(Some(at_transaction_end), std::ptr::null_mut());
        LISTENING.with(|l| l.set(true));
    }
}

/// Writes the transaction's batches just before it commits (or is prepared); forgets
/// them when it ends (their memory goes with the transaction's).
#[pg_guard]
unsafe extern "C-unwind" fn at_transaction_end(
    event: pg_sys::XactEvent::Type,
    _arg: *mut std::ffi::c_void,
) {
    match event {
        pg_sys::XactEvent::XACT_EVENT_PRE_COMMIT | pg_sys::XactEvent::XACT_EVENT_PRE_PREPARE => {
            let batches = PENDING.with(|p| std::mem::take(&mut *p.borrow_mut()));
            for b in batches {
                b.finish();
            }
        }
        pg_sys::XactEvent::XACT_EVENT_COMMIT
        | pg_sys::XactEvent::XACT_EVENT_ABORT
        | pg_sys::XactEvent::XACT_EVENT_PREPARE => {
            PENDING.with(|p| p.borrow_mut().clear());
            CAPTURED.with(|c| c.set(0));
        }
        _ => {}
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

/// Whether the transaction running has captured changes of synced tables (some of which
/// may still wait in its batches, written only as it commits).
#[pg_extern(volatile, parallel_unsafe)]
fn _captured_in_transaction() -> bool {
    CAPTURED.with(Cell::get) > 0
}
