//! Rows kept as they are: a batched update or delete keeps its row before as a minimal
//! tuple (a bytea), with a description of the table's columns for the batch, and the worker
//! turns it into the log's jsonb when it unpacks the batch (`_batch_rows_json`). Building
//! that jsonb was most of what capture added to a large UPDATE.
//!
//! The description travels with the batch, so a row is read back with the columns it
//! was written with, whatever ALTER TABLE did to the table meanwhile.

use pgrx::pg_sys;
use pgrx::prelude::*;
use serde::{Deserialize, Serialize};

use super::json::{self, RowJson};
use super::pg_versions;
use super::tuple_check;
use super::values::{attribute, attribute_names, Rows};

/// One column of a kept row: what reading it back needs. `name` is None for a dropped
/// column, whose bytes still take their place in rows written before the drop.
#[derive(Serialize, Deserialize)]
pub(super) struct Column {
    name: Option<String>,
    #[serde(rename = "type")]
    type_oid: u32,
    pub(super) len: i16,
    byval: bool,
    pub(super) align: u8,
}

/// The columns of `desc`, as the batch's `row_type` (jsonb text).
pub unsafe fn describe(desc: pg_sys::TupleDesc) -> String {
    let columns: Vec<Column> = attribute_names(desc)
        .into_iter()
        .enumerate()
        .map(|(i, name)| {
            let a = attribute(desc, i);
            Column {
                name,
                type_oid: a.atttypid.to_u32(),
                len: a.attlen,
                byval: a.attbyval,
                align: a.attalign as u8,
            }
        })
        .collect();
    serde_json::to_string(&columns).unwrap_or_else(|e| error!("sequin_sf: {e}"))
}

/// The bytes of the jsonb value of `text` (a description), which a batch copies as its
/// `row_type`: parsing it for every batch cost more than the rest of a small batch.
pub unsafe fn jsonb_bytes(text: &str) -> Vec<u8> {
    let v = json::from_text(text).cast_mut_ptr::<pg_sys::varlena>();
    let bytes = std::slice::from_raw_parts(v.cast::<u8>(), pgrx::varlena::varsize_any(v)).to_vec();
    pg_sys::pfree(v.cast());
    bytes
}

/// The current row of `rows` as a bytea holding a minimal tuple, in the current memory
/// context. Values stored out of line are fetched: the table's toast may have been
/// vacuumed by the time the row is read back.
pub unsafe fn keep(rows: &Rows) -> pg_sys::Datum {
    let stored = rows.minimal_tuple();
    let desc = rows.desc();
    let n = (*desc).natts as usize;
    // As stored, when it holds every column (not a row from before an ADD COLUMN, whose
    // added columns read as their default) and nothing out of line: one copy.
    let mask = (*stored).t_infomask;
    if u32::from(mask) & pg_sys::HEAP_HASEXTERNAL == 0
        && (u32::from((*stored).t_infomask2) & pg_sys::HEAP_NATTS_MASK) as usize == n
    {
        return bytea_of(stored);
    }
    let mut values = Vec::with_capacity(n);
    let mut nulls = Vec::with_capacity(n);
    for i in 0..n {
        let (v, null) = rows.attr(i);
        let external = !null
            && attribute(desc, i).attlen == -1
            && pgrx::varlena::varatt_is_1b_e(v.cast_mut_ptr());
        values.push(if external {
            pg_sys::Datum::from(pg_sys::pg_detoast_datum_packed(v.cast_mut_ptr()))
        } else {
            v
        });
        nulls.push(null);
    }
    // a minimal tuple: the row's columns and nothing that names the table's row type,
    // which may have changed by the time the row is read back
    let tuple = pg_versions::form_minimal_tuple(desc, values.as_mut_ptr(), nulls.as_mut_ptr());
    let out = bytea_of(tuple);
    pg_sys::heap_free_minimal_tuple(tuple);
    out
}

/// A copy of a minimal tuple as a bytea, in the current memory context.
unsafe fn bytea_of(tuple: pg_sys::MinimalTuple) -> pg_sys::Datum {
    let len = (*tuple).t_len as usize;
    let header = pg_sys::VARHDRSZ;
    let out = pg_sys::palloc(header + len) as *mut pg_sys::varlena;
    pgrx::varlena::set_varsize_4b(out, (header + len) as i32);
    std::ptr::copy_nonoverlapping(tuple as *const u8, (out as *mut u8).add(header), len);
    pg_sys::Datum::from(out)
}

/// Kept rows back as the log's jsonb text (to_jsonb of the row). Only the worker calls
/// it, through `_write_expand_batches`: it reads its bytes as tuples of the description
/// it is given (EXECUTE is revoked from PUBLIC). Bytes capture did not write (an edit of
/// the batch table, corruption, a bug) are checked before Postgres reads them: a row
/// that cannot be read safely comes back as `!` and the reason (JSON text never starts
/// with `!`), and its entry is logged as failed with that reason, never read out of
/// bounds, which would crash the worker and, with it, the whole server.
#[pg_extern(volatile, parallel_unsafe)]
fn _batch_rows_json(row_type: &str, rows: Array<&[u8]>) -> Vec<Option<String>> {
    let columns = match serde_json::from_str::<Vec<Column>>(row_type)
        .map_err(|e| e.to_string())
        .and_then(|c| check_columns(&c).map(|()| c))
    {
        Ok(columns) => columns,
        Err(e) => {
            let why = format!("!the batch's description of its columns is unusable: {e}");
            return rows.iter().map(|r| r.map(|_| why.clone())).collect();
        }
    };
    // SAFETY: the description was checked against the types it names, and each row is
    // checked against the description before a slot reads it
    unsafe {
        let desc = descriptor(&columns);
        let json = RowJson::new(desc);
        // read through a slot, as the executor reads a transition table's tuples
        let slot = pg_sys::MakeSingleTupleTableSlot(desc, &pg_sys::TTSOpsMinimalTuple);
        let out = rows
            .iter()
            .map(|row| {
                row.map(|bytes| {
                    if let Err(e) = tuple_check::readable(bytes, &columns) {
                        return format!("!the row before this change, kept in its batch, cannot be read ({e}); the change was not sent");
                    }
                    // a copy, so the tuple sits at the alignment its columns assume
                    let data = pg_sys::palloc(bytes.len().max(1)) as *mut u8;
                    std::ptr::copy_nonoverlapping(bytes.as_ptr(), data, bytes.len());
                    pg_sys::ExecStoreMinimalTuple(data.cast(), slot, false);
                    pg_sys::slot_getallattrs(slot);
                    let attr = |i: usize| (*(*slot).tts_values.add(i), *(*slot).tts_isnull.add(i));
                    let jsonb = json.object(attr, |_| true);
                    let text = pgrx::fcinfo::direct_function_call::<&std::ffi::CStr>(
                        pg_sys::jsonb_out,
                        &[Some(jsonb)],
                    )
                    .map(|t| t.to_string_lossy().into_owned())
                    .unwrap_or_default();
                    pg_sys::ExecClearTuple(slot);
                    pg_sys::pfree(data.cast());
                    text
                })
            })
            .collect();
        pg_sys::ExecDropSingleTupleTableSlot(slot);
        out
    }
}

/// Each named column of a description as the catalog has its type (width, passing,
/// alignment), and a dropped one's within what a tuple can hold: the description decides
/// how many bytes each value takes and whether a value is a pointer.
fn check_columns(columns: &[Column]) -> Result<(), String> {
    for (i, c) in columns.iter().enumerate() {
        if !matches!(c.align, b'c' | b's' | b'i' | b'd')
            || !(c.len > 0 || c.len == -1 || c.len == -2)
            || (c.byval && !matches!(c.len, 1 | 2 | 4 | 8))
        {
            return Err(format!(
                "column {} has an impossible width or alignment",
                i + 1
            ));
        }
        if c.name.is_some() {
            let (mut len, mut byval, mut align) = (0i16, false, 0 as std::ffi::c_char);
            // SAFETY: a catalog lookup; an unknown type is an ERROR, not a crash
            unsafe {
                pg_sys::get_typlenbyvalalign(
                    pg_sys::Oid::from(c.type_oid),
                    &mut len,
                    &mut byval,
                    &mut align,
                )
            };
            if (len, byval, align as u8) != (c.len, c.byval, c.align) {
                return Err(format!(
                    "column {} does not match its type {}",
                    i + 1,
                    c.type_oid
                ));
            }
        }
    }
    Ok(())
}

/// A tuple descriptor of `columns`, built from the description alone (a dropped column
/// keeps its width and alignment, which reading the columns after it needs).
unsafe fn descriptor(columns: &[Column]) -> pg_sys::TupleDesc {
    let desc = pg_sys::CreateTemplateTupleDesc(columns.len() as i32);
    for (i, c) in columns.iter().enumerate() {
        let a = &mut *pg_versions::attribute(desc, i);
        *a = std::mem::zeroed();
        if let Some(name) = &c.name {
            let bytes = name.as_bytes();
            let n = bytes.len().min(a.attname.data.len() - 1);
            for (k, b) in bytes[..n].iter().enumerate() {
                a.attname.data[k] = *b as std::ffi::c_char;
            }
        }
        a.attnum = (i + 1) as i16;
        a.atttypid = pg_sys::Oid::from(c.type_oid);
        a.atttypmod = -1;
        a.attlen = c.len;
        a.attbyval = c.byval;
        a.attalign = c.align as std::ffi::c_char;
        a.attisdropped = c.name.is_none();
        a.attislocal = true;
        pg_versions::attribute_filled(desc, i);
    }
    desc
}
