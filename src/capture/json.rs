//! Rows as jsonb objects keyed by column name: exactly what `to_jsonb(row)` gives, built
//! without its per-call work. to_jsonb looks up every column's type category in the
//! catalog caches, turns numbers into text and parses them back, copies every string,
//! and sorts the keys, for every row; here the categories and the key order (jsonb's:
//! shorter keys first, then bytewise) are worked out once per table, and the common types
//! go into jsonb straight from their datums. The rest go through to_jsonb one value at a
//! time.

use pgrx::pg_sys;
use pgrx::prelude::*;

use super::table;
use super::values::{self, attribute_names, in_place, Value};

/// How a column's values become jsonb values.
enum Kind {
    /// text, varchar, char: the string itself
    Text,
    Bool,
    /// int2, int4, int8 and numeric: a jsonb number (NaN and infinities, which JSON has
    /// no number for, go through to_jsonb, which makes them strings)
    Int2,
    Int4,
    Int8,
    Numeric,
    /// date, timestamp, timestamptz: ISO 8601 strings, as to_jsonb writes them
    DateTime(pg_sys::Oid),
    /// to_jsonb of the single value, called through this (set up for the column's type)
    Other(*mut pg_sys::FmgrInfo),
}

/// One table's columns as jsonb, worked out once (kept with the table's cached rules).
pub struct RowJson {
    /// attributes (0-based) in jsonb key order; dropped columns are left out
    key_order: Vec<usize>,
    names: Vec<Vec<u8>>,
    kinds: Vec<Kind>,
    /// where the Other kinds' call info lives
    memory: pg_sys::MemoryContext,
}

impl RowJson {
    pub unsafe fn new(desc: pg_sys::TupleDesc) -> RowJson {
        let names = attribute_names(desc);
        let mut key_order: Vec<usize> = (0..names.len()).filter(|&i| names[i].is_some()).collect();
        key_order.sort_by(|&a, &b| {
            let (a, b) = (
                names[a].as_deref().unwrap_or(""),
                names[b].as_deref().unwrap_or(""),
            );
            a.len()
                .cmp(&b.len())
                .then_with(|| a.as_bytes().cmp(b.as_bytes()))
        });
        let memory = table::session_context(c"sequin_sf capture jsonb");
        // a dropped column has no type (and is never a key): its kind is never used
        let kinds = (0..names.len())
            .map(|i| match names[i] {
                None => Kind::Bool,
                Some(_) => kind(values::attribute(desc, i).atttypid, memory),
            })
            .collect();
        table::keep_for_session(memory);
        RowJson {
            key_order,
            names: names
                .into_iter()
                .map(|n| n.unwrap_or_default().into_bytes())
                .collect(),
            kinds,
            memory,
        }
    }

    /// A row (its columns by 0-based position) as a jsonb object of the columns
    /// `include` accepts.
    pub unsafe fn object(
        &self,
        attr: impl Fn(usize) -> Value,
        include: impl Fn(usize) -> bool,
    ) -> pg_sys::Datum {
        let mut pairs: Vec<pg_sys::JsonbPair> = Vec::with_capacity(self.key_order.len());
        for &i in self.key_order.iter().filter(|&&i| include(i)) {
            let mut key: pg_sys::JsonbValue = std::mem::zeroed();
            key.type_ = pg_sys::jbvType::jbvString;
            key.val.string.len = self.names[i].len() as i32;
            key.val.string.val = self.names[i].as_ptr().cast_mut().cast();
            pairs.push(pg_sys::JsonbPair {
                key,
                value: self.value(attr(i), &self.kinds[i]),
                order: pairs.len() as u32,
            });
        }
        // The pairs are in jsonb's key order already, with no key twice: the object is
        // encoded in one call. A value that is itself a jsonb container (from to_jsonb)
        // must be unpacked, which pushing it does.
        if pairs
            .iter()
            .any(|p| p.value.type_ == pg_sys::jbvType::jbvBinary)
        {
            return pushed_object(&mut pairs);
        }
        let mut object: pg_sys::JsonbValue = std::mem::zeroed();
        object.type_ = pg_sys::jbvType::jbvObject;
        object.val.object.nPairs = pairs.len() as i32;
        object.val.object.pairs = pairs.as_mut_ptr();
        pg_sys::Datum::from(pg_sys::JsonbValueToJsonb(&mut object))
    }

    unsafe fn value(
        &self,
        (datum, null): (pg_sys::Datum, bool),
        kind: &Kind,
    ) -> pg_sys::JsonbValue {
        let mut v: pg_sys::JsonbValue = std::mem::zeroed();
        if null {
            v.type_ = pg_sys::jbvType::jbvNull;
            return v;
        }
        match kind {
            Kind::Text => {
                let t = in_place(datum.cast_mut_ptr());
                v.type_ = pg_sys::jbvType::jbvString;
                v.val.string.len = pgrx::varlena::varsize_any_exhdr(t) as i32;
                v.val.string.val = pgrx::varlena::vardata_any(t).cast_mut();
            }
            Kind::Bool => {
                v.type_ = pg_sys::jbvType::jbvBool;
                v.val.boolean = datum.value() != 0;
            }
            Kind::Int2 => number(
                &mut v,
                pg_sys::int64_to_numeric(datum.value() as i16 as i64),
            ),
            Kind::Int4 => number(
                &mut v,
                pg_sys::int64_to_numeric(datum.value() as i32 as i64),
            ),
            Kind::Int8 => number(&mut v, pg_sys::int64_to_numeric(datum.value() as i64)),
            Kind::Numeric => {
                let n = pg_sys::pg_detoast_datum(datum.cast_mut_ptr()) as pg_sys::Numeric;
                if pg_sys::numeric_is_nan(n) || pg_sys::numeric_is_inf(n) {
                    return self.value_by_to_jsonb(pg_sys::Datum::from(n), pg_sys::NUMERICOID);
                }
                number(&mut v, n);
            }
            Kind::DateTime(typid) => {
                let s = pg_sys::JsonEncodeDateTime(
                    std::ptr::null_mut(),
                    datum,
                    *typid,
                    std::ptr::null(),
                );
                v.type_ = pg_sys::jbvType::jbvString;
                v.val.string.len = std::ffi::CStr::from_ptr(s).to_bytes().len() as i32;
                v.val.string.val = s;
            }
            Kind::Other(flinfo) => {
                return scalar_or_container(pg_sys::FunctionCall1Coll(
                    *flinfo,
                    pg_sys::InvalidOid,
                    datum,
                ))
            }
        }
        v
    }

    unsafe fn value_by_to_jsonb(
        &self,
        datum: pg_sys::Datum,
        typid: pg_sys::Oid,
    ) -> pg_sys::JsonbValue {
        let flinfo = to_jsonb_info(typid, pg_sys::CurrentMemoryContext);
        scalar_or_container(pg_sys::FunctionCall1Coll(flinfo, pg_sys::InvalidOid, datum))
    }
}

impl Drop for RowJson {
    fn drop(&mut self) {
        // SAFETY: the context holds this table's call info alone, used by nobody else
        unsafe { table::delete_context(self.memory) };
    }
}

unsafe fn kind(typid: pg_sys::Oid, memory: pg_sys::MemoryContext) -> Kind {
    match typid {
        pg_sys::TEXTOID | pg_sys::VARCHAROID | pg_sys::BPCHAROID => Kind::Text,
        pg_sys::BOOLOID => Kind::Bool,
        pg_sys::INT2OID => Kind::Int2,
        pg_sys::INT4OID => Kind::Int4,
        pg_sys::INT8OID => Kind::Int8,
        pg_sys::NUMERICOID => Kind::Numeric,
        pg_sys::DATEOID | pg_sys::TIMESTAMPOID | pg_sys::TIMESTAMPTZOID => Kind::DateTime(typid),
        _ => Kind::Other(to_jsonb_info(typid, memory)),
    }
}

/// An object of `pairs` built by pushing them one by one.
unsafe fn pushed_object(pairs: &mut [pg_sys::JsonbPair]) -> pg_sys::Datum {
    let mut state: *mut pg_sys::JsonbParseState = std::ptr::null_mut();
    pg_sys::pushJsonbValue(
        &mut state,
        pg_sys::JsonbIteratorToken::WJB_BEGIN_OBJECT,
        std::ptr::null_mut(),
    );
    for p in pairs {
        pg_sys::pushJsonbValue(&mut state, pg_sys::JsonbIteratorToken::WJB_KEY, &mut p.key);
        pg_sys::pushJsonbValue(
            &mut state,
            pg_sys::JsonbIteratorToken::WJB_VALUE,
            &mut p.value,
        );
    }
    let object = pg_sys::pushJsonbValue(
        &mut state,
        pg_sys::JsonbIteratorToken::WJB_END_OBJECT,
        std::ptr::null_mut(),
    );
    pg_sys::Datum::from(pg_sys::JsonbValueToJsonb(object))
}

unsafe fn number(v: &mut pg_sys::JsonbValue, n: pg_sys::Numeric) {
    v.type_ = pg_sys::jbvType::jbvNumeric;
    v.val.numeric = n;
}

/// A jsonb datum as a value to push: its scalar, or its object or array.
unsafe fn scalar_or_container(jsonb: pg_sys::Datum) -> pg_sys::JsonbValue {
    let jb = pg_sys::pg_detoast_datum(jsonb.cast_mut_ptr()) as *mut pg_sys::Jsonb;
    let mut v: pg_sys::JsonbValue = std::mem::zeroed();
    if !pg_sys::JsonbExtractScalar(&mut (*jb).root, &mut v) {
        v.type_ = pg_sys::jbvType::jbvBinary;
        v.val.binary.data = &mut (*jb).root;
        v.val.binary.len = pgrx::varlena::varsize_any(jb.cast()) as i32;
    }
    v
}

/// `text` parsed as a jsonb value, in the current memory context.
pub unsafe fn from_text(text: &str) -> pg_sys::Datum {
    let text = std::ffi::CString::new(text).unwrap_or_else(|e| error!("sequin_sf: {e}"));
    pgrx::fcinfo::direct_function_call_as_datum(
        pg_sys::jsonb_in,
        &[Some(pg_sys::Datum::from(text.as_ptr()))],
    )
    .unwrap_or_else(|| error!("sequin_sf: jsonb_in returned NULL"))
}

/// Call info for to_jsonb of values of type `typid`, in `memory`: to_jsonb reads its
/// argument's type from the call expression, so the info carries one.
pub unsafe fn to_jsonb_info(
    typid: pg_sys::Oid,
    memory: pg_sys::MemoryContext,
) -> *mut pg_sys::FmgrInfo {
    let oid = pg_sys::fmgr_internal_function(c"to_jsonb".as_ptr());
    if oid == pg_sys::InvalidOid {
        error!("sequin_sf: the built-in function to_jsonb is missing");
    }
    let saved = pg_sys::CurrentMemoryContext;
    pg_sys::CurrentMemoryContext = memory;
    let flinfo = pg_sys::palloc0(std::mem::size_of::<pg_sys::FmgrInfo>()) as *mut pg_sys::FmgrInfo;
    pg_sys::fmgr_info_cxt(oid, flinfo, memory);
    let arg = pg_sys::makeNullConst(typid, -1, pg_sys::InvalidOid);
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
