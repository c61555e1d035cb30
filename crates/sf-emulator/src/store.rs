//! Column-wise record storage: one typed vector per stored field, so a million rows
//! stay compact and queries read values without allocating.

use crate::schema::{Derive, FieldType, ObjectDef, Source};
use soql::Value;
use std::collections::HashMap;

const NULL_REF: u64 = u64::MAX;
const LEN_BITS: u32 = 24;
const MAX_LEN: usize = (1 << LEN_BITS) - 1;

/// Strings of one column packed into one arena; each cell is an (offset, length) word.
#[derive(Default)]
pub struct StrCol {
    refs: Vec<u64>,
    arena: Vec<u8>,
}

impl StrCol {
    /// Copies `s` into the arena and returns a cell word that can be pushed many times.
    pub fn intern(&mut self, s: &str) -> u64 {
        let len = s.len().min(MAX_LEN);
        let off = self.arena.len() as u64;
        // A cut at MAX_LEN could split a character: back off to a boundary.
        let mut cut = len;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        self.arena.extend_from_slice(&s.as_bytes()[..cut]);
        (off << LEN_BITS) | cut as u64
    }

    pub fn push_ref(&mut self, r: u64) {
        self.refs.push(r);
    }

    pub fn push(&mut self, s: Option<&str>) {
        let r = match s {
            Some(s) => self.intern(s),
            None => NULL_REF,
        };
        self.refs.push(r);
    }

    pub fn get(&self, row: usize) -> Option<&str> {
        let r = *self.refs.get(row)?;
        if r == NULL_REF {
            return None;
        }
        let off = (r >> LEN_BITS) as usize;
        let len = (r & MAX_LEN as u64) as usize;
        std::str::from_utf8(self.arena.get(off..off + len)?).ok()
    }

    fn set(&mut self, row: usize, s: Option<&str>) {
        let r = match s {
            Some(s) => self.intern(s),
            None => NULL_REF,
        };
        if let Some(slot) = self.refs.get_mut(row) {
            *slot = r;
        }
    }
}

/// Null markers: `u8 2`, `i64::MIN`, NaN, `i32::MIN`.
pub enum Column {
    Str(StrCol),
    Bool(Vec<u8>),
    Int(Vec<i64>),
    Num(Vec<f64>),
    Date(Vec<i32>),
    DateTime(Vec<i64>),
}

impl Column {
    pub fn for_type(t: FieldType) -> Column {
        match t {
            FieldType::Boolean => Column::Bool(Vec::new()),
            FieldType::Int => Column::Int(Vec::new()),
            FieldType::Double | FieldType::Currency | FieldType::Percent => Column::Num(Vec::new()),
            FieldType::Date => Column::Date(Vec::new()),
            FieldType::DateTime => Column::DateTime(Vec::new()),
            _ => Column::Str(StrCol::default()),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn len(&self) -> usize {
        match self {
            Column::Str(s) => s.refs.len(),
            Column::Bool(v) => v.len(),
            Column::Int(v) => v.len(),
            Column::Num(v) => v.len(),
            Column::Date(v) => v.len(),
            Column::DateTime(v) => v.len(),
        }
    }

    pub fn get(&self, row: usize) -> Value<'_> {
        match self {
            Column::Str(s) => s.get(row).map_or(Value::Null, Value::Text),
            Column::Bool(v) => match v.get(row) {
                Some(0) => Value::Bool(false),
                Some(1) => Value::Bool(true),
                _ => Value::Null,
            },
            Column::Int(v) => match v.get(row) {
                Some(&x) if x != i64::MIN => Value::Int(x),
                _ => Value::Null,
            },
            Column::Num(v) => match v.get(row) {
                Some(&x) if !x.is_nan() => Value::Double(x),
                _ => Value::Null,
            },
            Column::Date(v) => match v.get(row) {
                Some(&x) if x != i32::MIN => Value::Date(x),
                _ => Value::Null,
            },
            Column::DateTime(v) => match v.get(row) {
                Some(&x) if x != i64::MIN => Value::DateTime(x),
                _ => Value::Null,
            },
        }
    }

    pub fn push_null(&mut self) {
        match self {
            Column::Str(s) => s.refs.push(NULL_REF),
            Column::Bool(v) => v.push(2),
            Column::Int(v) => v.push(i64::MIN),
            Column::Num(v) => v.push(f64::NAN),
            Column::Date(v) => v.push(i32::MIN),
            Column::DateTime(v) => v.push(i64::MIN),
        }
    }

    /// Stores `val` (already checked against the field's type).
    pub fn set(&mut self, row: usize, val: &Val) {
        match self {
            Column::Str(s) => s.set(row, val.as_text().as_deref()),
            Column::Bool(v) => {
                if let Some(slot) = v.get_mut(row) {
                    *slot = match val {
                        Val::Bool(b) => *b as u8,
                        _ => 2,
                    }
                }
            }
            Column::Int(v) => {
                if let Some(slot) = v.get_mut(row) {
                    *slot = match val {
                        Val::Int(i) => *i,
                        Val::Num(f) => *f as i64,
                        _ => i64::MIN,
                    }
                }
            }
            Column::Num(v) => {
                if let Some(slot) = v.get_mut(row) {
                    *slot = match val {
                        Val::Num(f) => *f,
                        Val::Int(i) => *i as f64,
                        _ => f64::NAN,
                    }
                }
            }
            Column::Date(v) => {
                if let Some(slot) = v.get_mut(row) {
                    *slot = match val {
                        Val::Date(d) => *d,
                        _ => i32::MIN,
                    }
                }
            }
            Column::DateTime(v) => {
                if let Some(slot) = v.get_mut(row) {
                    *slot = match val {
                        Val::DateTime(d) => *d,
                        _ => i64::MIN,
                    }
                }
            }
        }
    }

    pub fn as_str_mut(&mut self) -> Option<&mut StrCol> {
        match self {
            Column::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// An owned field value, for writes.
#[derive(Clone, Debug, PartialEq)]
pub enum Val {
    Null,
    Bool(bool),
    Int(i64),
    Num(f64),
    Date(i32),
    DateTime(i64),
    Str(String),
}

impl Val {
    pub fn from_value(v: Value<'_>) -> Val {
        match v {
            Value::Null => Val::Null,
            Value::Bool(b) => Val::Bool(b),
            Value::Int(i) => Val::Int(i),
            Value::Double(d) => Val::Num(d),
            Value::Text(t) => Val::Str(t.to_string()),
            Value::Date(d) => Val::Date(d),
            Value::DateTime(d) => Val::DateTime(d),
            Value::Time(t) => Val::Int(t as i64),
        }
    }

    fn as_text(&self) -> Option<std::borrow::Cow<'_, str>> {
        match self {
            Val::Null => None,
            Val::Str(s) => Some(std::borrow::Cow::Borrowed(s)),
            Val::Bool(b) => Some(b.to_string().into()),
            Val::Int(i) => Some(i.to_string().into()),
            Val::Num(f) => Some(f.to_string().into()),
            Val::Date(d) => Some(crate::timefmt::date_string(*d as i64).into()),
            Val::DateTime(d) => Some(crate::timefmt::datetime_string(*d).into()),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RowState {
    Live = 0,
    Deleted = 1,
    Purged = 2,
}

/// The rows of one object.
#[derive(Default)]
pub struct Table {
    pub cols: Vec<Column>,
    /// [`RowState`] per row.
    pub state: Vec<u8>,
    /// Row -> when it went to the recycle bin (or was purged).
    pub deleted_at: HashMap<u32, i64>,
    /// External id / unique field column -> lower-cased value -> rows; built on first use.
    pub unique_index: HashMap<usize, HashMap<String, Vec<u32>>>,
}

impl Table {
    pub fn new(def: &ObjectDef) -> Table {
        let mut t = Table::default();
        t.sync_columns(def);
        t
    }

    /// Adds columns for fields added to `def` since the table was made.
    pub fn sync_columns(&mut self, def: &ObjectDef) {
        let rows = self.state.len();
        let mut types = vec![FieldType::String; def.columns];
        for f in &def.fields {
            if let Source::Column(c) = f.source {
                types[c] = f.ftype;
            }
        }
        for t in types.into_iter().skip(self.cols.len()) {
            let mut col = Column::for_type(t);
            for _ in 0..rows {
                col.push_null();
            }
            self.cols.push(col);
        }
    }

    pub fn rows(&self) -> usize {
        self.state.len()
    }

    pub fn row_state(&self, row: usize) -> Option<RowState> {
        match self.state.get(row) {
            Some(0) => Some(RowState::Live),
            Some(1) => Some(RowState::Deleted),
            Some(2) => Some(RowState::Purged),
            _ => None,
        }
    }

    pub fn live_count(&self) -> usize {
        self.state.iter().filter(|&&s| s == 0).count()
    }

    /// Appends an all-null live row and returns its index.
    pub fn push_null_row(&mut self) -> usize {
        for c in &mut self.cols {
            c.push_null();
        }
        self.state.push(RowState::Live as u8);
        self.state.len() - 1
    }

    pub fn set(&mut self, col: usize, row: usize, val: &Val) {
        if let Some(idx) = self.unique_index.get_mut(&col) {
            if let Some(old) = self.cols[col].get(row).as_text_lower() {
                if let Some(rows) = idx.get_mut(&old) {
                    rows.retain(|&r| r as usize != row);
                }
            }
            if let Val::Str(s) = val {
                idx.entry(s.to_lowercase()).or_default().push(row as u32);
            }
        }
        if let Some(c) = self.cols.get_mut(col) {
            c.set(row, val);
        }
    }

    /// Rows (any state but purged) whose text column `col` equals `value`
    /// case-insensitively, through an index built on first use.
    pub fn lookup(&mut self, col: usize, value: &str) -> Vec<u32> {
        if !self.unique_index.contains_key(&col) {
            let mut idx: HashMap<String, Vec<u32>> = HashMap::new();
            if let Some(c) = self.cols.get(col) {
                for row in 0..self.state.len() {
                    if let Some(s) = c.get(row).as_text_lower() {
                        idx.entry(s).or_default().push(row as u32);
                    }
                }
            }
            self.unique_index.insert(col, idx);
        }
        self.unique_index
            .get(&col)
            .and_then(|idx| idx.get(&value.to_lowercase()))
            .map(|rows| {
                rows.iter()
                    .copied()
                    .filter(|&r| self.state.get(r as usize) != Some(&(RowState::Purged as u8)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Recomputes derived columns (full names) of `row`.
    pub fn derive_row(&mut self, def: &ObjectDef, row: usize) {
        for f in &def.fields {
            if let (Some(Derive::FullName { first, last }), Source::Column(c)) =
                (&f.derive, &f.source)
            {
                let name = full_name(self.cols[*first].get(row), self.cols[*last].get(row));
                self.set(*c, row, &name.map_or(Val::Null, Val::Str));
            }
        }
    }
}

pub fn full_name(first: Value<'_>, last: Value<'_>) -> Option<String> {
    match (first, last) {
        (Value::Text(f), Value::Text(l)) if !f.is_empty() => Some(format!("{f} {l}")),
        (_, Value::Text(l)) => Some(l.to_string()),
        (Value::Text(f), _) => Some(f.to_string()),
        _ => None,
    }
}

trait TextLower {
    fn as_text_lower(&self) -> Option<String>;
}

impl TextLower for Value<'_> {
    fn as_text_lower(&self) -> Option<String> {
        match self {
            Value::Text(t) => Some(t.to_lowercase()),
            _ => None,
        }
    }
}

/// An object's schema and rows, kept under one lock so they never disagree.
pub struct SObject {
    pub def: ObjectDef,
    pub table: Table,
    /// Position in the org's object list; locks are taken in this order.
    pub slot: usize,
}

impl SObject {
    pub fn new(def: ObjectDef, slot: usize) -> SObject {
        let table = Table::new(&def);
        SObject { def, table, slot }
    }

    /// A field's value in `row`; compound fields read as null (see `record_json`).
    pub fn value(&self, field: usize, row: usize) -> Value<'_> {
        let Some(f) = self.def.fields.get(field) else {
            return Value::Null;
        };
        match &f.source {
            Source::Column(c) => self.table.cols[*c].get(row),
            Source::IsDeleted => Value::Bool(self.table.state.get(row).is_some_and(|&s| s != 0)),
            Source::PercentOf { amount, percent } => {
                let num = |c: usize| match self.table.cols[c].get(row) {
                    Value::Double(d) => Some(d),
                    Value::Int(i) => Some(i as f64),
                    _ => None,
                };
                match (num(*amount), num(*percent)) {
                    (Some(a), Some(p)) => Value::Double(a * p / 100.0),
                    _ => Value::Null,
                }
            }
            Source::Compound { .. } => Value::Null,
            // A formula of the same record reads its field here; one that crosses a
            // lookup needs the other object locked too: `query::Locked` reads those.
            Source::Formula { path } => match path.as_slice() {
                [name] => match self.def.field_index(name) {
                    Some(i) if !matches!(self.def.fields[i].source, Source::Formula { .. }) => {
                        self.value(i, row)
                    }
                    _ => Value::Null,
                },
                _ => Value::Null,
            },
        }
    }

    /// The 18-character id of `row`.
    pub fn id_of(&self, row: usize) -> &str {
        match self.table.cols.first().map(|c| c.get(row)) {
            Some(Value::Text(t)) => t,
            _ => "",
        }
    }

    /// Row of an id of this object (any state), or None.
    pub fn row_of(&self, id: &str) -> Option<usize> {
        let (prefix, seq) = crate::ids::decode(id)?;
        if prefix != self.def.key_prefix || seq == 0 {
            return None;
        }
        let row = (seq - 1) as usize;
        (row < self.table.rows()).then_some(row)
    }

    /// Appends a row with its id set and everything else null.
    pub fn new_row(&mut self) -> usize {
        let row = self.table.push_null_row();
        let id = crate::ids::make_id(&self.def.key_prefix, row as u64 + 1);
        self.table.set(0, row, &Val::Str(id));
        row
    }
}
