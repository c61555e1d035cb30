//! Appending rows to one of capture's own tables (the write log and its batches, in the
//! synced table's schema) through the executor's single-row insert (constraints,
//! indexes, the table's own triggers), as logical replication applies rows: no plan, no
//! privilege check.

use std::ffi::CStr;
use std::rc::Rc;

use pgrx::pg_sys;
use pgrx::prelude::*;

use super::pg_versions;
use super::values::attribute_names;

/// What capture needs of one of its tables, worked out once per session (cache.rs forgets
/// it when the table changes): where the columns it fills are, and the other columns'
/// defaults, planned and made ready to evaluate (in memory of their own), each marked
/// volatile or not. Readying an expression costs more than evaluating it: a statement
/// writing one log row used to spend more on readying the log's defaults than on them.
pub struct TableShape {
    filled: Vec<usize>,
    defaults: Vec<ColumnDefault>,
    /// partial indexes' predicates, readied as the executor readies them for each
    /// statement (the log's index of unsettled entries is one)
    predicates: Vec<(pg_sys::Oid, *mut pg_sys::ExprState)>,
    memory: pg_sys::MemoryContext,
}

/// A column's default: `volatile` ones (an id's nextval) are evaluated for every row, the
/// others (now(), the backend's pid, constants) once per statement, as their value cannot
/// change within it. The expression keeps no state between evaluations beyond its
/// functions' lookups, so one readied expression serves every statement of the session.
#[derive(Clone, Copy)]
struct ColumnDefault {
    column: usize,
    state: *mut pg_sys::ExprState,
    volatile: bool,
}

impl TableShape {
    /// `filled`: the columns capture gives values, in the order `TableWriter::append`
    /// takes them.
    pub unsafe fn new(rel: pg_sys::Relation, filled: &[&str]) -> TableShape {
        let names = attribute_names((*rel).rd_att);
        let filled: Vec<usize> = filled
            .iter()
            .map(|c| {
                names
                    .iter()
                    .position(|n| n.as_deref() == Some(*c))
                    .unwrap_or_else(|| error!("sequin_sf: {} has no column {c}", rel_name(rel)))
            })
            .collect();
        let memory = session_context(c"sequin_sf capture table defaults");
        let defaults = in_memory(memory, || {
            (0..names.len())
                .filter(|i| names[*i].is_some() && !filled.contains(i))
                .filter_map(|i| {
                    let expr = pg_sys::build_column_default(rel, (i + 1) as i32);
                    (!expr.is_null()).then(|| {
                        let expr = pg_sys::expression_planner(expr.cast());
                        ColumnDefault {
                            column: i,
                            state: pg_sys::ExecInitExpr(expr, std::ptr::null_mut()),
                            volatile: pg_sys::contain_volatile_functions(expr.cast()),
                        }
                    })
                })
                .collect()
        });
        let predicates = in_memory(memory, || index_predicates(rel));
        keep_for_session(memory);
        TableShape {
            filled,
            defaults,
            predicates,
            memory,
        }
    }

    /// Hands the executor the readied predicates of `result`'s open partial indexes.
    unsafe fn ready_predicates(&self, result: *mut pg_sys::ResultRelInfo) {
        for i in 0..(*result).ri_NumIndices as usize {
            let index = *(*result).ri_IndexRelationDescs.add(i);
            let info = *(*result).ri_IndexRelationInfo.add(i);
            if let Some(&(_, state)) = self.predicates.iter().find(|p| p.0 == (*index).rd_id) {
                (*info).ii_PredicateState = state;
            }
        }
    }
}

/// The predicates of `rel`'s partial indexes, readied as ExecPrepareQual readies them.
unsafe fn index_predicates(rel: pg_sys::Relation) -> Vec<(pg_sys::Oid, *mut pg_sys::ExprState)> {
    let indexes = pg_sys::RelationGetIndexList(rel);
    let oids: Vec<pg_sys::Oid> = (0..pg_sys::list_length(indexes))
        .map(|i| pg_sys::list_nth_oid(indexes, i))
        .collect();
    oids.into_iter()
        .filter_map(|oid| {
            let index = pg_sys::index_open(oid, pg_sys::AccessShareLock as i32);
            let predicate = pg_sys::RelationGetIndexPredicate(index);
            pg_sys::index_close(index, pg_sys::NoLock as i32);
            (!predicate.is_null()).then(|| {
                let planned = pg_sys::expression_planner(predicate.cast());
                (
                    oid,
                    pg_sys::ExecInitQual(planned.cast(), std::ptr::null_mut()),
                )
            })
        })
        .collect()
}

impl Drop for TableShape {
    fn drop(&mut self) {
        // SAFETY: the context was made for this shape alone; writers using its expressions
        // hold the shape
        unsafe { delete_context(self.memory) };
    }
}

/// A context for what capture keeps for the session, made under the current context:
/// if readying what goes in it fails, it goes with the statement's memory. Once it is
/// ready, `keep_for_session` moves it under CacheMemoryContext.
pub unsafe fn session_context(name: &'static CStr) -> pg_sys::MemoryContext {
    pg_sys::AllocSetContextCreateInternal(
        pg_sys::CurrentMemoryContext,
        name.as_ptr(),
        pg_sys::ALLOCSET_SMALL_MINSIZE as usize,
        pg_sys::ALLOCSET_SMALL_INITSIZE as usize,
        pg_sys::ALLOCSET_SMALL_MAXSIZE as usize,
    )
}

pub unsafe fn keep_for_session(memory: pg_sys::MemoryContext) {
    pg_sys::MemoryContextSetParent(memory, pg_sys::CacheMemoryContext);
}

/// Deletes a context from a `Drop`, unless an error is unwinding: a Postgres call that
/// raised then would abort the process, and the error's own cleanup frees the
/// statement's memory (a context kept for the session stays, a small leak in a session
/// whose statement failed).
pub unsafe fn delete_context(memory: pg_sys::MemoryContext) {
    if !std::thread::panicking() {
        pg_sys::MemoryContextDelete(memory);
    }
}

/// Runs f with `memory` as the current memory context; the caller's is current again
/// afterwards, also when f raises an error.
pub unsafe fn in_memory<T>(memory: pg_sys::MemoryContext, f: impl FnOnce() -> T) -> T {
    struct Restore(pg_sys::MemoryContext);
    impl Drop for Restore {
        fn drop(&mut self) {
            // SAFETY: a store to Postgres's global, no call: safe while unwinding
            unsafe { pg_sys::CurrentMemoryContext = self.0 };
        }
    }
    let _restore = Restore(pg_sys::CurrentMemoryContext);
    pg_sys::CurrentMemoryContext = memory;
    f()
}

/// The oid of capture's table `name` in `table`'s schema, or an error naming it.
pub unsafe fn sibling(table: pg_sys::Relation, name: &CStr) -> pg_sys::Oid {
    let namespace = (*(*table).rd_rel).relnamespace;
    let oid = pg_sys::get_relname_relid(name.as_ptr(), namespace);
    if oid == pg_sys::InvalidOid {
        error!(
            "{} of synced table {} is missing from its schema",
            name.to_string_lossy(),
            rel_name(table)
        );
    }
    oid
}

/// `s` as a text datum, in the current memory context.
pub unsafe fn text_datum(s: &CStr) -> pg_sys::Datum {
    pg_sys::Datum::from(pg_sys::cstring_to_text(s.as_ptr()))
}

unsafe fn rel_name(rel: pg_sys::Relation) -> String {
    CStr::from_ptr((*(*rel).rd_rel).relname.data.as_ptr())
        .to_string_lossy()
        .into_owned()
}

/// Appends the rows of one statement to one table.
pub struct TableWriter {
    rel: pg_sys::Relation,
    estate: *mut pg_sys::EState,
    result: *mut pg_sys::ResultRelInfo,
    slot: *mut pg_sys::TupleTableSlot,
    /// kept alive while the writer uses its expressions, even if cache.rs forgets it
    shape: Rc<TableShape>,
    /// Defaults evaluated once for the statement: column, value, is null.
    per_statement: Vec<(usize, pg_sys::Datum, bool)>,
}

impl TableWriter {
    /// Opens table `oid` for inserting; `shape` is its shape (cache.rs).
    pub unsafe fn open(
        oid: pg_sys::Oid,
        shape: impl FnOnce(pg_sys::Relation) -> Rc<TableShape>,
    ) -> TableWriter {
        let rel = pg_sys::table_open(oid, pg_sys::RowExclusiveLock as i32);
        let shape = shape(rel);
        let estate = pg_sys::CreateExecutorState();
        let (result, slot, per_statement) = in_memory((*estate).es_query_cxt, || {
            let result = result_relation(estate, rel);
            shape.ready_predicates(result);
            let slot = pg_sys::table_slot_create(rel, &mut (*estate).es_tupleTable);
            // values that last the statement: this context is freed with the executor state
            let statement = pg_sys::CreateExprContext(estate);
            let per_statement = shape
                .defaults
                .iter()
                .filter(|d| !d.volatile)
                .map(|d| {
                    let mut null = false;
                    let v = pg_sys::ExecEvalExprSwitchContext(d.state, statement, &mut null);
                    (d.column, v, null)
                })
                .collect();
            (result, slot, per_statement)
        });
        // an AFTER trigger someone put on the table fires at close()
        pg_sys::AfterTriggerBeginQuery();
        TableWriter {
            rel,
            estate,
            result,
            slot,
            shape,
            per_statement,
        }
    }

    /// Memory that lasts until close().
    pub unsafe fn statement_memory(&self) -> pg_sys::MemoryContext {
        (*self.estate).es_query_cxt
    }

    /// Memory that lasts until the next row is appended (or reset_row_memory()).
    pub unsafe fn row_memory(&self) -> pg_sys::MemoryContext {
        (*self.row_context()).ecxt_per_tuple_memory
    }

    pub unsafe fn reset_row_memory(&self) {
        pg_sys::MemoryContextReset(self.row_memory());
    }

    unsafe fn row_context(&self) -> *mut pg_sys::ExprContext {
        if (*self.estate).es_per_tuple_exprcontext.is_null() {
            pg_sys::MakePerTupleExprContext(self.estate)
        } else {
            (*self.estate).es_per_tuple_exprcontext
        }
    }

    /// Appends one row: `values` of the filled columns in the shape's order (None is
    /// NULL); every other column takes its default.
    pub unsafe fn append(&mut self, filled: &[Option<pg_sys::Datum>]) {
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
        for d in self.shape.defaults.iter().filter(|d| d.volatile) {
            values[d.column] =
                pg_sys::ExecEvalExprSwitchContext(d.state, econtext, &mut nulls[d.column]);
        }
        for (&i, v) in self.shape.filled.iter().zip(filled) {
            nulls[i] = v.is_none();
            values[i] = v.unwrap_or(pg_sys::Datum::from(0));
        }
        pg_sys::ExecStoreVirtualTuple(slot);
        pg_sys::ExecSimpleRelationInsert(self.result, self.estate, slot);
        pg_sys::ExecClearTuple(slot);
        self.reset_row_memory();
    }

    pub unsafe fn close(self) {
        pg_sys::AfterTriggerEndQuery(self.estate);
        // the result relation's indices, and relations an AFTER trigger of the table had
        // the executor open, as ExecEndPlan closes them
        pg_sys::ExecCloseResultRelations(self.estate);
        pg_sys::ExecResetTupleTable((*self.estate).es_tupleTable, false);
        pg_sys::FreeExecutorState(self.estate);
        pg_sys::table_close(self.rel, pg_sys::NoLock as i32);
    }
}

/// The table as the result relation of a one-table range table, as the executor's
/// constraint checks and error reports expect, registered where ExecInitResultRelation
/// registers one (so an AFTER trigger on the table finds it, ExecGetTriggerResultRel,
/// instead of opening another). The executor state lives for one statement; what
/// TableShape readies once per session (default expressions, index predicates) holds
/// no pointer into it: those ExprStates are built without a parent PlanState, which
/// only subplans need and neither a column default nor an index predicate may contain
/// (Postgres refuses subqueries in both), and each evaluation is given this
/// statement's expression context.
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
    pg_versions::init_range_table(estate, rte);
    let result =
        pg_sys::palloc0(std::mem::size_of::<pg_sys::ResultRelInfo>()) as *mut pg_sys::ResultRelInfo;
    (*result).type_ = pg_sys::NodeTag::T_ResultRelInfo;
    pg_sys::InitResultRelInfo(result, rel, 1, std::ptr::null_mut(), 0);
    // the array ExecInitResultRelation allocates for the range table's one entry
    (*estate).es_result_relations =
        pg_sys::palloc0(std::mem::size_of::<*mut pg_sys::ResultRelInfo>()).cast();
    *(*estate).es_result_relations = result;
    (*estate).es_opened_result_relations =
        pg_sys::lappend((*estate).es_opened_result_relations, result.cast());
    (*estate).es_output_cid = pg_sys::GetCurrentCommandId(true);
    pg_sys::ExecOpenIndices(result, false);
    result
}
