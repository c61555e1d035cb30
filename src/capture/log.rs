//! Appending entries to `<schema>._sync_write_log` through the executor's single-row
//! insert (constraints, indexes, the log's own triggers), as logical replication applies
//! rows: no plan, no privilege check.

use std::ffi::CStr;

use pgrx::pg_sys;
use pgrx::prelude::*;

use super::values::{attribute_names, Value};

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

/// The log columns capture fills (Entry's fields, plus the table and object).
const FILLED: [&str; 7] = [
    "table_name",
    "object_name",
    "row_id",
    "action",
    "api_id",
    "previous",
    "values",
];

/// What capture needs of a log table, worked out once per session (cache.rs forgets it
/// when the table changes): where the filled columns are, and the other columns'
/// defaults (planned expressions, in memory of their own), each marked volatile or not.
pub struct LogShape {
    filled: [usize; 7],
    defaults: Vec<ColumnDefault>,
    memory: pg_sys::MemoryContext,
}

/// A log column's default: `volatile` ones (the id's nextval) are evaluated for every
/// entry, the others (now(), the backend's pid, constants) once per statement, as their
/// value cannot change within it.
#[derive(Clone, Copy)]
struct ColumnDefault {
    column: usize,
    expr: *mut pg_sys::Expr,
    volatile: bool,
}

impl LogShape {
    pub unsafe fn new(rel: pg_sys::Relation) -> LogShape {
        let names = attribute_names((*rel).rd_att);
        let filled = FILLED.map(|c| {
            names
                .iter()
                .position(|n| n.as_deref() == Some(c))
                .unwrap_or_else(|| error!("sequin_sf: the write log has no column {c}"))
        });
        let memory = pg_sys::AllocSetContextCreateInternal(
            pg_sys::CacheMemoryContext,
            c"sequin_sf write log defaults".as_ptr(),
            pg_sys::ALLOCSET_SMALL_MINSIZE as usize,
            pg_sys::ALLOCSET_SMALL_INITSIZE as usize,
            pg_sys::ALLOCSET_SMALL_MAXSIZE as usize,
        );
        let saved = pg_sys::CurrentMemoryContext;
        pg_sys::CurrentMemoryContext = memory;
        let defaults = (0..names.len())
            .filter(|i| names[*i].is_some() && !filled.contains(i))
            .filter_map(|i| {
                let expr = pg_sys::build_column_default(rel, (i + 1) as i32);
                (!expr.is_null()).then(|| {
                    let expr = pg_sys::expression_planner(expr.cast());
                    ColumnDefault {
                        column: i,
                        expr,
                        volatile: pg_sys::contain_volatile_functions(expr.cast()),
                    }
                })
            })
            .collect();
        pg_sys::CurrentMemoryContext = saved;
        LogShape {
            filled,
            defaults,
            memory,
        }
    }
}

impl Drop for LogShape {
    fn drop(&mut self) {
        // SAFETY: the context was made for this shape alone; statements copy what they use
        unsafe { pg_sys::MemoryContextDelete(self.memory) };
    }
}

/// The log of `table`'s schema, opened for inserting.
pub unsafe fn open_log(table: pg_sys::Relation) -> pg_sys::Relation {
    let namespace = (*(*table).rd_rel).relnamespace;
    let log_oid = pg_sys::get_relname_relid(c"_sync_write_log".as_ptr(), namespace);
    if log_oid == pg_sys::InvalidOid {
        let table_name = CStr::from_ptr((*(*table).rd_rel).relname.data.as_ptr());
        error!(
            "the write log of synced table {} is missing (_sync_write_log in its schema)",
            table_name.to_string_lossy()
        );
    }
    pg_sys::table_open(log_oid, pg_sys::RowExclusiveLock as i32)
}

/// Appends the entries of one statement.
pub struct LogWriter {
    rel: pg_sys::Relation,
    estate: *mut pg_sys::EState,
    result: *mut pg_sys::ResultRelInfo,
    slot: *mut pg_sys::TupleTableSlot,
    filled: [usize; 7],
    /// Defaults evaluated for every entry.
    per_entry: Vec<(usize, *mut pg_sys::ExprState)>,
    /// Defaults evaluated once for the statement: column, value, is null.
    per_statement: Vec<(usize, pg_sys::Datum, bool)>,
    table_name: pg_sys::Datum,
    object_name: pg_sys::Datum,
    actions: [pg_sys::Datum; 3],
}

impl LogWriter {
    /// `rel` is `open_log(table)`, `shape` its shape.
    pub unsafe fn new(
        rel: pg_sys::Relation,
        shape: &LogShape,
        table: pg_sys::Relation,
        object: &CStr,
    ) -> LogWriter {
        let table_name = CStr::from_ptr((*(*table).rd_rel).relname.data.as_ptr());
        let estate = pg_sys::CreateExecutorState();
        let saved = pg_sys::CurrentMemoryContext;
        pg_sys::CurrentMemoryContext = (*estate).es_query_cxt;
        let result = result_relation(estate, rel);
        let slot = pg_sys::table_slot_create(rel, &mut (*estate).es_tupleTable);
        let init = |d: &ColumnDefault| {
            let expr = pg_sys::copyObjectImpl(d.expr.cast()).cast();
            pg_sys::ExecInitExpr(expr, std::ptr::null_mut())
        };
        let per_entry = shape
            .defaults
            .iter()
            .filter(|d| d.volatile)
            .map(|d| (d.column, init(d)))
            .collect();
        // values that last the statement: this context is freed with the executor state
        let statement = pg_sys::CreateExprContext(estate);
        let per_statement = shape
            .defaults
            .iter()
            .filter(|d| !d.volatile)
            .map(|d| {
                let mut null = false;
                let v = pg_sys::ExecEvalExprSwitchContext(init(d), statement, &mut null);
                (d.column, v, null)
            })
            .collect();
        let writer = LogWriter {
            rel,
            estate,
            result,
            slot,
            filled: shape.filled,
            per_entry,
            per_statement,
            table_name: text_datum(table_name),
            object_name: text_datum(object),
            actions: ACTIONS.map(|a| text_datum(a)),
        };
        pg_sys::CurrentMemoryContext = saved;
        // an AFTER trigger someone put on the log fires at close()
        pg_sys::AfterTriggerBeginQuery();
        writer
    }

    unsafe fn row_context(&self) -> *mut pg_sys::ExprContext {
        if (*self.estate).es_per_tuple_exprcontext.is_null() {
            pg_sys::MakePerTupleExprContext(self.estate)
        } else {
            (*self.estate).es_per_tuple_exprcontext
        }
    }

    /// Runs f allocating in memory that lasts until the next entry is appended.
    pub unsafe fn in_row_memory<T>(&self, f: impl FnOnce() -> T) -> T {
        let saved = pg_sys::CurrentMemoryContext;
        pg_sys::CurrentMemoryContext = (*self.row_context()).ecxt_per_tuple_memory;
        let out = f();
        pg_sys::CurrentMemoryContext = saved;
        out
    }

    pub unsafe fn append(&mut self, e: &Entry) {
        let slot = self.slot;
        let econtext = self.row_context();
        pg_sys::ExecClearTuple(slot);
        let natts = (*(*slot).tts_tupleDescriptor).natts as usize;
        let values = std::slice::from_raw_parts_mut((*slot).tts_values, natts);
        let nulls = std::slice::from_raw_parts_mut((*slot).tts_isnull, natts);
        nulls.fill(true);
        for &(i, value, null) in &self.per_statement {
            (values[i], nulls[i]) = (value, null);
        }
        for &(i, state) in &self.per_entry {
            values[i] = pg_sys::ExecEvalExprSwitchContext(state, econtext, &mut nulls[i]);
        }
        let not_null = |v: Value| (!v.1).then_some(v.0);
        let filled = [
            Some(self.table_name),
            Some(self.object_name),
            not_null(e.row_id),
            Some(self.actions[e.action as usize]),
            e.api_id.and_then(not_null),
            e.previous,
            e.values,
        ];
        for (k, v) in filled.into_iter().enumerate() {
            let i = self.filled[k];
            nulls[i] = v.is_none();
            values[i] = v.unwrap_or(pg_sys::Datum::from(0));
        }
        pg_sys::ExecStoreVirtualTuple(slot);
        pg_sys::ExecSimpleRelationInsert(self.result, self.estate, slot);
        pg_sys::ExecClearTuple(slot);
        pg_sys::MemoryContextReset((*econtext).ecxt_per_tuple_memory);
    }

    pub unsafe fn close(self) {
        pg_sys::AfterTriggerEndQuery(self.estate);
        pg_sys::ExecCloseIndices(self.result);
        pg_sys::ExecResetTupleTable((*self.estate).es_tupleTable, false);
        pg_sys::FreeExecutorState(self.estate);
        pg_sys::table_close(self.rel, pg_sys::NoLock as i32);
    }
}

/// The log as the result relation of a one-table range table, as the executor's
/// constraint checks and error reports expect.
unsafe fn result_relation(
    estate: *mut pg_sys::EState,
    rel: pg_sys::Relation,
) -> *mut pg_sys::ResultRelInfo {
    let rte =
        pg_sys::palloc0(std::mem::size_of::<pg_sys::RangeTblEntry>()) as *mut pg_sys::RangeTblEntry;
    (*rte).type_ = pg_sys::NodeTag::T_RangeTblEntry;
    (*rte).rtekind = pg_sys::RTEKind::RTE_RELATION;
    (*rte).relid = (*rel).rd_id;
    (*rte).relkind = (*(*rel).rd_rel).relkind;
    (*rte).rellockmode = pg_sys::RowExclusiveLock as i32;
    pg_sys::ExecInitRangeTable(estate, pg_sys::lappend(std::ptr::null_mut(), rte.cast()));
    let result =
        pg_sys::palloc0(std::mem::size_of::<pg_sys::ResultRelInfo>()) as *mut pg_sys::ResultRelInfo;
    (*result).type_ = pg_sys::NodeTag::T_ResultRelInfo;
    pg_sys::InitResultRelInfo(result, rel, 1, std::ptr::null_mut(), 0);
    (*estate).es_output_cid = pg_sys::GetCurrentCommandId(true);
    pg_sys::ExecOpenIndices(result, false);
    result
}

unsafe fn text_datum(s: &CStr) -> pg_sys::Datum {
    pg_sys::Datum::from(pg_sys::cstring_to_text(s.as_ptr()))
}
