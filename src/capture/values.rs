//! The rows of a statement's transition tables, and comparing their values.

use std::ffi::CStr;

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
        // as the executor's scan of a transition table does
        let pointer = pg_sys::tuplestore_alloc_read_pointer(store, pg_sys::EXEC_FLAG_REWIND as i32);
        pg_sys::tuplestore_copy_read_pointer(store, 0, pointer);
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

    /// The current row as the transition table stores it (owned by the slot).
    pub unsafe fn minimal_tuple(&self) -> pg_sys::MinimalTuple {
        let mut should_free = false;
        pg_sys::ExecFetchSlotMinimalTuple(self.slot, &mut should_free)
    }

    /// Column `i` (0-based) of the current row.
    pub unsafe fn attr(&self, i: usize) -> Value {
        (
            *(*self.slot).tts_values.add(i),
            *(*self.slot).tts_isnull.add(i),
        )
    }
}

impl Drop for Rows {
    fn drop(&mut self) {
        // SAFETY: the slot was made by MakeSingleTupleTableSlot and is used by nobody else.
        // Not while an error unwinds (a call that raised then would abort the process):
        // the slot lives in the statement's memory, which the error frees.
        if !std::thread::panicking() {
            unsafe { pg_sys::ExecDropSingleTupleTableSlot(self.slot) };
        }
    }
}

/// Whether two values of column `att` are the same value as stored: both NULL, or the
/// same bytes once fetched and decompressed. Not the type's equality: values it calls
/// equal can still read differently (citext 'A' and 'a', a nondeterministic collation's
/// 'é' and 'é', float -0 and 0, numeric 1.0 and 1.00), and a change a user can see must
/// reach Salesforce. Postgres decides "unchanged" the same way where it must not miss a
/// change (datum_image_eq, for logical replication and HOT).
pub unsafe fn same_value(a: Value, b: Value, att: &pg_sys::FormData_pg_attribute) -> bool {
    match (a.1, b.1) {
        (true, true) => true,
        (false, false) => same_image(a.0, b.0, att),
        _ => false,
    }
}

/// Byte-for-byte equal values, compared without fetching an out-of-line value that is
/// the same pointer on both sides.
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
    if att.attlen == -2 {
        return CStr::from_ptr(a.cast_mut_ptr()) == CStr::from_ptr(b.cast_mut_ptr());
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
    let (da, db) = (in_place(va), in_place(vb));
    let (la, lb) = (
        pgrx::varlena::varsize_any_exhdr(da),
        pgrx::varlena::varsize_any_exhdr(db),
    );
    la == lb
        && bytes(pgrx::varlena::vardata_any(da).cast(), la)
            == bytes(pgrx::varlena::vardata_any(db).cast(), lb)
}

/// A varlena value readable where it is: the value itself unless it is stored out of
/// line or compressed (then fetched and decompressed), as pg_detoast_datum_packed gives
/// it, without calling it for the many values that need nothing.
pub unsafe fn in_place(v: *mut pg_sys::varlena) -> *mut pg_sys::varlena {
    if pgrx::varlena::varatt_is_1b_e(v) || pgrx::varlena::varatt_is_4b_c(v) {
        pg_sys::pg_detoast_datum_packed(v)
    } else {
        v
    }
}

unsafe fn bytes<'a>(p: *const u8, n: usize) -> &'a [u8] {
    std::slice::from_raw_parts(p, n)
}

pub unsafe fn attribute<'a>(
    desc: pg_sys::TupleDesc,
    i: usize,
) -> &'a pg_sys::FormData_pg_attribute {
    &*super::pg_versions::attribute(desc, i)
}

/// Attribute names by 0-based position, None for dropped columns.
pub unsafe fn attribute_names(desc: pg_sys::TupleDesc) -> Vec<Option<String>> {
    (0..(*desc).natts as usize)
        .map(|i| {
            let a = attribute(desc, i);
            (!a.attisdropped).then(|| {
                CStr::from_ptr(a.attname.data.as_ptr())
                    .to_string_lossy()
                    .into_owned()
            })
        })
        .collect()
}
