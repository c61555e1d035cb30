//! What capture needs from Postgres's C API that differs between the majors sequin_sf
//! builds for (15 to 18, one cargo feature each). Every `#[cfg(feature = "pgNN")]` of
//! capture is here, one function per difference, so the rest of capture reads the same
//! on every version.

use pgrx::pg_sys;

/// Attribute `i` (0-based) of a tuple descriptor. 18 keeps a compact copy of each
/// attribute before the full ones, so the array is no longer a field of the struct.
pub unsafe fn attribute(desc: pg_sys::TupleDesc, i: usize) -> *mut pg_sys::FormData_pg_attribute {
    #[cfg(any(feature = "pg15", feature = "pg16", feature = "pg17"))]
    {
        (*desc).attrs.as_mut_ptr().add(i)
    }
    #[cfg(feature = "pg18")]
    {
        pg_sys::TupleDescAttr(desc, i as i32)
    }
}

/// To be called once attribute `i` of a descriptor built by hand is filled: what
/// Postgres derives from it for fast access is worked out again (the cached offset
/// before 18, the compact attribute from 18 on).
pub unsafe fn attribute_filled(desc: pg_sys::TupleDesc, i: usize) {
    #[cfg(any(feature = "pg15", feature = "pg16", feature = "pg17"))]
    {
        (*attribute(desc, i)).attcacheoff = -1;
    }
    #[cfg(feature = "pg18")]
    {
        pg_sys::populate_compact_attribute(desc, i as i32);
    }
}

/// A minimal tuple of `values`/`nulls` (one per attribute of `desc`). 18 can reserve
/// room before the tuple (`extra`); capture needs none.
pub unsafe fn form_minimal_tuple(
    desc: pg_sys::TupleDesc,
    values: *mut pg_sys::Datum,
    nulls: *mut bool,
) -> pg_sys::MinimalTuple {
    #[cfg(any(feature = "pg15", feature = "pg16", feature = "pg17"))]
    {
        pg_sys::heap_form_minimal_tuple(desc, values, nulls)
    }
    #[cfg(feature = "pg18")]
    {
        pg_sys::heap_form_minimal_tuple(desc, values, nulls, 0)
    }
}

/// The sequence behind identity column `attnum` of relation `rel`. From 17 on the
/// lookup takes the opened relation instead of its oid.
pub unsafe fn identity_sequence(rel: pg_sys::Oid, attnum: pg_sys::AttrNumber) -> pg_sys::Oid {
    #[cfg(any(feature = "pg15", feature = "pg16"))]
    {
        pg_sys::getIdentitySequence(rel, attnum, false)
    }
    #[cfg(any(feature = "pg17", feature = "pg18"))]
    {
        // capture is about to write this relation: the lock is held to the end of the
        // transaction in any case
        let opened = pg_sys::relation_open(rel, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        let sequence = pg_sys::getIdentitySequence(opened, attnum, false);
        pg_sys::relation_close(opened, pg_sys::NoLock as pg_sys::LOCKMODE);
        sequence
    }
}

/// Gives `estate` a range table of the one relation `rte`. From 16 on an entry's
/// permissions live apart from it (`RTEPermissionInfo`), and the executor looks them up
/// when it words a constraint violation (which columns the user may see): an entry
/// without one fails there with "invalid perminfoindex 0" instead of the violation.
/// 18 also wants the range-table indexes left after partition pruning: all of them.
pub unsafe fn init_range_table(estate: *mut pg_sys::EState, rte: *mut pg_sys::RangeTblEntry) {
    let rtable = pg_sys::lappend(std::ptr::null_mut(), rte.cast());
    #[cfg(feature = "pg15")]
    {
        pg_sys::ExecInitRangeTable(estate, rtable);
    }
    #[cfg(any(feature = "pg16", feature = "pg17", feature = "pg18"))]
    {
        let mut perminfos: *mut pg_sys::List = std::ptr::null_mut();
        let perminfo = pg_sys::addRTEPermissionInfo(&mut perminfos, rte);
        (*perminfo).requiredPerms = pg_sys::ACL_INSERT as pg_sys::AclMode;
        #[cfg(any(feature = "pg16", feature = "pg17"))]
        pg_sys::ExecInitRangeTable(estate, rtable, perminfos);
        #[cfg(feature = "pg18")]
        pg_sys::ExecInitRangeTable(estate, rtable, perminfos, pg_sys::bms_make_singleton(1));
    }
}
