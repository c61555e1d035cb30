//! A synced table as capture sees it: which columns are sent, and the rules Salesforce
//! enforces on them (read-only columns, restricted picklists), checked row by row. The
//! refusal itself, with its wording, is `sequin_sf._refuse_write` (sql/capture.sql).

use std::ffi::{CStr, CString};

use pgrx::pg_sys;
use pgrx::prelude::*;

use super::json::{self, RowJson};
use super::values::{attribute, attribute_names, in_place, same_value, Rows};

pub struct Rules {
    pub relid: pg_sys::Oid,
    pub object: CString,
    /// 0-based attribute numbers of _row_id and id
    pub row_id: usize,
    pub id: Option<usize>,
    /// per attribute: a column that maps to a Salesforce field
    sent: Vec<bool>,
    /// sent columns the operation may not set (insert) or change (update)
    refused: Vec<usize>,
    /// sent restricted picklist columns and their allowed values
    picklists: Vec<(usize, Vec<String>)>,
    /// the trigger's arguments, as _refuse_write takes them
    refused_json: String,
    picklists_json: String,
    /// rows as the log's jsonb
    pub json: RowJson,
}

impl Rules {
    /// From the trigger's arguments (see `_capture_writes`) and the table's columns.
    pub unsafe fn new(rel: pg_sys::Relation, args: &[String]) -> Rules {
        let [object, refused_json, picklists_json, sent_names @ ..] = args else {
            error!("sequin_sf._capture_writes() takes the object, the refused columns, the picklists, then the columns sent");
        };
        let names = attribute_names((*rel).rd_att);
        let find = |name: &str| names.iter().position(|n| n.as_deref() == Some(name));
        let row_id = find("_row_id")
            .unwrap_or_else(|| error!("sequin_sf: a captured table needs a _row_id column"));
        let id = find("id");
        // the log's row_id is a bigint and its api_id text: values of other types would be
        // handed to it as they are
        check_type(rel, row_id, &[pg_sys::INT8OID], "bigint");
        if let Some(i) = id {
            check_type(rel, i, &[pg_sys::TEXTOID, pg_sys::VARCHAROID], "text");
        }
        // only the columns named when capture was installed: one added to the table since
        // maps to no field, and changing only it is no change
        let sent: Vec<bool> = names
            .iter()
            .map(|n| {
                n.as_deref()
                    .is_some_and(|n| n != "_row_id" && sent_names.iter().any(|s| s == n))
            })
            .collect();
        let sent_column = |name: &String| find(name).filter(|&i| sent[i]);
        let refused_map: serde_json::Map<String, serde_json::Value> = parse(refused_json);
        let picklist_map: serde_json::Map<String, serde_json::Value> = parse(picklists_json);
        let mut refused: Vec<usize> = refused_map.keys().filter_map(sent_column).collect();
        refused.sort_unstable();
        let picklists = picklist_map
            .iter()
            .filter_map(|(name, allowed)| {
                let allowed = allowed
                    .as_array()?
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_string));
                Some((sent_column(name)?, allowed.collect()))
            })
            .collect();
        Rules {
            relid: (*rel).rd_id,
            object: CString::new(object.as_str())
                .unwrap_or_else(|_| error!("sequin_sf: an object name holds a NUL character")),
            row_id,
            id,
            sent,
            refused,
            picklists,
            refused_json: refused_json.clone(),
            picklists_json: picklists_json.clone(),
            json: RowJson::new((*rel).rd_att),
        }
    }

    pub unsafe fn desc(&self, rel: pg_sys::Relation) -> pg_sys::TupleDesc {
        (*rel).rd_att
    }

    /// The sent columns an update changed.
    pub unsafe fn changed_columns(&self, old: &Rows, new: &Rows) -> Vec<usize> {
        let desc = old.desc();
        (0..self.sent.len())
            .filter(|&i| self.sent[i] && !same_value(old.attr(i), new.attr(i), attribute(desc, i)))
            .collect()
    }

    /// The sent columns a new row sets (not NULL).
    pub unsafe fn set_columns(&self, row: &Rows) -> Vec<usize> {
        (0..self.sent.len())
            .filter(|&i| self.sent[i] && !row.attr(i).1)
            .collect()
    }

    /// A new row sets a column Salesforce does not let us set, or a picklist value it
    /// does not allow.
    pub unsafe fn insert_refused(&self, row: &Rows) -> bool {
        self.refused.iter().any(|&i| !row.attr(i).1)
            || self
                .picklists
                .iter()
                .any(|(i, allowed)| !self.allowed(row, *i, allowed))
    }

    /// An update changes such a column, or sets a picklist to such a value.
    pub unsafe fn update_refused(&self, new: &Rows, changed: &[usize]) -> bool {
        changed.iter().any(|i| {
            self.refused.binary_search(i).is_ok()
                || self
                    .picklists
                    .iter()
                    .any(|(p, allowed)| p == i && !self.allowed(new, *i, allowed))
        })
    }

    /// The value as text (what `value::text` gives) is one of `allowed`. Text and varchar
    /// are read in place; other types go through their output function.
    unsafe fn allowed(&self, row: &Rows, i: usize, allowed: &[String]) -> bool {
        let (value, null) = row.attr(i);
        if null {
            return true;
        }
        let att = attribute(row.desc(), i);
        let is_one = |text: &[u8]| allowed.iter().any(|a| a.as_bytes() == text);
        if att.atttypid == pg_sys::TEXTOID || att.atttypid == pg_sys::VARCHAROID {
            let t = in_place(value.cast_mut_ptr());
            let len = pgrx::varlena::varsize_any_exhdr(t);
            return is_one(std::slice::from_raw_parts(
                pgrx::varlena::vardata_any(t).cast(),
                len,
            ));
        }
        let mut output = pg_sys::InvalidOid;
        let mut varlena = false;
        pg_sys::getTypeOutputInfo(att.atttypid, &mut output, &mut varlena);
        let text = CStr::from_ptr(pg_sys::OidOutputFunctionCall(output, value)).to_bytes();
        // char(n) to text drops the padding spaces
        let text = if att.atttypid == pg_sys::BPCHAROID {
            &text[..text.iter().rposition(|&b| b != b' ').map_or(0, |p| p + 1)]
        } else {
            text
        };
        is_one(text)
    }

    /// Raises the refusal of a row, `values` being what it sets (insert) or changes (update).
    pub unsafe fn refuse(&self, rel: pg_sys::Relation, op: &str, values: pg_sys::Datum) {
        let refuse_write = Spi::get_one::<pg_sys::Oid>(
            "SELECT 'sequin_sf._refuse_write(pg_catalog.text, pg_catalog.text, pg_catalog.text,\
             pg_catalog.jsonb, pg_catalog.jsonb, pg_catalog.jsonb)'::pg_catalog.regprocedure::pg_catalog.oid",
        )
        .ok()
        .flatten()
        .unwrap_or_else(|| error!("sequin_sf._refuse_write is missing"));
        let schema = CStr::from_ptr(pg_sys::get_namespace_name((*(*rel).rd_rel).relnamespace));
        let table = CStr::from_ptr((*(*rel).rd_rel).relname.data.as_ptr());
        let text = |s: &CStr| pg_sys::Datum::from(pg_sys::cstring_to_text(s.as_ptr()));
        let op = CString::new(op).unwrap_or_default();
        // _refuse_write is granted to nobody: called here without a privilege check, as
        // the plpgsql trigger that ran as the extension's owner called it
        pg_sys::OidFunctionCall6Coll(
            refuse_write,
            pg_sys::InvalidOid,
            text(schema),
            text(table),
            text(&op),
            values,
            json::from_text(&self.refused_json),
            json::from_text(&self.picklists_json),
        );
    }
}

/// Refuses a table whose column `i` (a key capture writes to the log) is not of one of
/// `types`: the table was altered after the sync created it.
unsafe fn check_type(rel: pg_sys::Relation, i: usize, types: &[pg_sys::Oid], wanted: &str) {
    let att = attribute((*rel).rd_att, i);
    if !types.contains(&att.atttypid) {
        let column = CStr::from_ptr(att.attname.data.as_ptr()).to_string_lossy();
        let table = CStr::from_ptr((*(*rel).rd_rel).relname.data.as_ptr()).to_string_lossy();
        let is = CStr::from_ptr(pg_sys::format_type_be(att.atttypid)).to_string_lossy();
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
            format!("sequin_sf cannot capture changes of {table}: its column {column} is {is}, not {wanted}"),
            format!("The sync created {column} as {wanted}; ALTER TABLE ... ALTER COLUMN {column} TYPE {wanted} to write to the table again.")
        );
    }
}

fn parse(json: &str) -> serde_json::Map<String, serde_json::Value> {
    serde_json::from_str(json).unwrap_or_else(|e| {
        error!("sequin_sf._capture_writes(): a rule argument is not a JSON object: {e}")
    })
}
