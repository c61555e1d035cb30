//! The rows of a statement's transition tables, comparing their values, and the jsonb
//! the log holds (`previous`, `values`), as `to_jsonb()` writes it.

use std::cell::Cell;

use pgrx::pg_sys;
use pgrx::prelude::*;

/// A column's value: the datum and whether it is NULL.
pub type Value = (pg_sys::Datum, bool);

/// Reads a transition table row by row with a read pointer of its own (other triggers
/// of the statement read the same table).
pub struct Rows {
    store: *mut pg_sys::Tuplestorestate,
    pointer: i32,
    slot: *mut pg_sys::TupleTableSlot,
}

impl Rows {
    pub unsafe fn new(store: *mut pg_sys::Tuplestorestate, desc: pg_sys::TupleDesc) -> Rows {
        if store.is_null() {
            error!("sequin_sf._capture_writes() needs the statement's transition table (REFERENCING ... TABLE)");
        }
        let pointer = pg_sys::tuplestore_alloc_read_pointer(store, 0);
        pg_sys::tuplestore_select_read_pointer(store, pointer);
        pg_sys::tuplestore_rescan(store);
        let slot = pg_sys::MakeSingleTupleTableSlot(desc, &pg_sys::TTSOpsMinimalTuple);
        Rows {
            store,
            pointer,
            slot,
        }
    }

    pub unsafe fn next(&self) -> bool {
        pg_sys::tuplestore_select_read_pointer(self.store, self.pointer);
        if !pg_sys::tuplestore_gettupleslot(self.store, true, false, self.slot) {
            return false;
        }
        pg_sys::slot_getallattrs(self.slot);
        true
    }

    pub unsafe fn desc(&self) -> pg_sys::TupleDesc {
        (*self.slot).tts_tupleDescriptor
    }

    /// Column `i` (0-based) of the current row.
    pub unsafe fn attr(&self, i: usize) -> Value {
        (
            *(*self.slot).tts_values.add(i),
            *(*self.slot).tts_isnull.add(i),
        )
    }

    /// The current row as a composite value (what to_jsonb(OLD) takes).
    pub unsafe fn composite(&self) -> pg_sys::Datum {
        pg_sys::ExecFetchSlotHeapTupleDatum(self.slot)
    }
}

impl Drop for Rows {
    fn drop(&mut self) {
        // SAFETY: the slot was made by MakeSingleTupleTableSlot and is used by nobody else
        unsafe { pg_sys::ExecDropSingleTupleTableSlot(self.slot) };
    }
}

/// Whether two values of column `att` are the same by the type's own equality (what IS
/// NOT DISTINCT FROM says), asked only when their stored bytes differ.
pub unsafe fn same_value(a: Value, b: Value, att: &pg_sys::FormData_pg_attribute) -> bool {
    match (a.1, b.1) {
        (true, true) => return true,
        (true, false) | (false, true) => return false,
        _ => {}
    }
    if same_image(a.0, b.0, att) {
        return true;
    }
    let entry = pg_sys::lookup_type_cache(att.atttypid, pg_sys::TYPECACHE_EQ_OPR_FINFO as i32);
    if (*entry).eq_opr_finfo.fn_oid == pg_sys::InvalidOid {
        return false;
    }
    pg_sys::FunctionCall2Coll(&mut (*entry).eq_opr_finfo, att.attcollation, a.0, b.0).value() != 0
}

/// Byte-for-byte equal values (equal values can still differ in bytes, numeric 1.0 and
/// 1.00 say, which the type's equality then decides).
unsafe fn same_image(
    a: pg_sys::Datum,
    b: pg_sys::Datum,
    att: &pg_sys::FormData_pg_attribute,
) -> bool {
    if att.attbyval {
        return a == b;
    }
    if att.attlen > 0 {
        let n = att.attlen as usize;
        return bytes(a.cast_mut_ptr(), n) == bytes(b.cast_mut_ptr(), n);
    }
    if att.attlen != -1 {
        return false;
    }
    let (va, vb) = (
        a.cast_mut_ptr::<pg_sys::varlena>(),
        b.cast_mut_ptr::<pg_sys::varlena>(),
    );
    // an unchanged toasted value keeps its toast pointer: equal without fetching it
    if bytes(va.cast(), pgrx::varlena::varsize_any(va))
        == bytes(vb.cast(), pgrx::varlena::varsize_any(vb))
    {
        return true;
    }
    let (da, db) = (
        pg_sys::pg_detoast_datum_packed(va),
        pg_sys::pg_detoast_datum_packed(vb),
    );
    let (la, lb) = (
        pgrx::varlena::varsize_any_exhdr(da),
        pgrx::varlena::varsize_any_exhdr(db),
    );
    la == lb
        && bytes(pgrx::varlena::vardata_any(da).cast(), la)
            == bytes(pgrx::varlena::vardata_any(db).cast(), lb)
}

unsafe fn bytes<'a>(p: *const u8, n: usize) -> &'a [u8] {
    std::slice::from_raw_parts(p, n)
}

thread_local! {
    /// to_jsonb's call info, set up once per session in memory that lasts as long.
    static TO_JSONB: Cell<Option<*mut pg_sys::FmgrInfo>> = const { Cell::new(None) };
}

/// to_jsonb() of a composite value.
pub unsafe fn to_jsonb(row: pg_sys::Datum) -> pg_sys::Datum {
    let flinfo = TO_JSONB.with(|f| match f.get() {
        Some(flinfo) => flinfo,
        None => {
            let flinfo = to_jsonb_info();
            f.set(Some(flinfo));
            flinfo
        }
    });
    pg_sys::FunctionCall1Coll(flinfo, pg_sys::InvalidOid, row)
}

unsafe fn to_jsonb_info() -> *mut pg_sys::FmgrInfo {
    let oid = pg_sys::fmgr_internal_function(c"to_jsonb".as_ptr());
    if oid == pg_sys::InvalidOid {
        error!("sequin_sf: the built-in function to_jsonb is missing");
    }
    let saved = pg_sys::CurrentMemoryContext;
    pg_sys::CurrentMemoryContext = pg_sys::TopMemoryContext;
    let flinfo = pg_sys::palloc0(std::mem::size_of::<pg_sys::FmgrInfo>()) as *mut pg_sys::FmgrInfo;
    pg_sys::fmgr_info_cxt(oid, flinfo, pg_sys::TopMemoryContext);
    // to_jsonb reads its argument's type from the call expression: say "a record" (each
    // value carries its own row type)
    let arg = pg_sys::makeNullConst(pg_sys::RECORDOID, -1, pg_sys::InvalidOid);
    (*flinfo).fn_expr = pg_sys::makeFuncExpr(
        oid,
        pg_sys::JSONBOID,
        pg_sys::lappend(std::ptr::null_mut(), arg.cast()),
        pg_sys::InvalidOid,
        pg_sys::InvalidOid,
        pg_sys::CoercionForm::COERCE_EXPLICIT_CALL,
    )
    .cast();
    pg_sys::CurrentMemoryContext = saved;
    flinfo
}

/// Some columns of a row as a jsonb object (an update's `values`: its changed columns),
/// built with to_jsonb from a row type of just those columns. The last row type is kept
/// for the statement: a statement mostly changes the same columns in every row.
pub struct ColumnsJson {
    memory: pg_sys::MemoryContext,
    columns: Vec<usize>,
    desc: pg_sys::TupleDesc,
}

impl ColumnsJson {
    /// `memory` lasts for the statement.
    pub fn new(memory: pg_sys::MemoryContext) -> ColumnsJson {
        ColumnsJson {
            memory,
            columns: Vec::new(),
            desc: std::ptr::null_mut(),
        }
    }

    /// Columns `columns` (0-based, ascending) of the current row of `rows`.
    pub unsafe fn of(&mut self, rows: &Rows, columns: &[usize]) -> pg_sys::Datum {
        let desc = self.desc_for(rows.desc(), columns);
        let (mut values, mut nulls): (Vec<pg_sys::Datum>, Vec<bool>) =
            columns.iter().map(|&i| rows.attr(i)).unzip();
        let tuple = pg_sys::heap_form_tuple(desc, values.as_mut_ptr(), nulls.as_mut_ptr());
        to_jsonb(pg_sys::heap_copy_tuple_as_datum(tuple, desc))
    }

    unsafe fn desc_for(
        &mut self,
        table: pg_sys::TupleDesc,
        columns: &[usize],
    ) -> pg_sys::TupleDesc {
        if !self.desc.is_null() && self.columns == columns {
            return self.desc;
        }
        let saved = pg_sys::CurrentMemoryContext;
        pg_sys::CurrentMemoryContext = self.memory;
        let desc = pg_sys::CreateTemplateTupleDesc(columns.len() as i32);
        for (k, &i) in columns.iter().enumerate() {
            pg_sys::TupleDescCopyEntry(desc, (k + 1) as i16, table, (i + 1) as i16);
        }
        // registered as an anonymous record type, which to_jsonb looks up by its typmod
        self.desc = pg_sys::BlessTupleDesc(desc);
        pg_sys::CurrentMemoryContext = saved;
        self.columns = columns.to_vec();
        self.desc
    }
}
