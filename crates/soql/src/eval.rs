//! Row evaluation: WHERE matching and ORDER BY comparison, on a filter compiled at
//! bind time (lowercased text, compiled LIKE patterns, hashed IN lists).

use std::cmp::Ordering;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::ast::{CompareOp, DateFunction, Literal, OrderItem};
use crate::datefn::{range, DateRange, MS_PER_DAY};
use crate::text::{cmp_ci, cmp_ci_lowered, compile_like, eq_ci, hash_ci, LikePattern};
use crate::value::Value;

/// Gives the evaluator a row's value for a bound field handle `H`. Values borrow
/// from the row for `'r`.
///
/// Implemented for any `Fn(&H) -> Value<'r>` closure, so
/// `bq.matches(&|h: &usize| row.value(*h), now)` works; implement it on a small
/// row-view struct for sorting.
pub trait RowAccess<'r, H: ?Sized> {
    fn get(&self, field: &H) -> Value<'r>;
}

impl<'r, H: ?Sized, F> RowAccess<'r, H> for F
where
    F: Fn(&H) -> Value<'r>,
{
    fn get(&self, field: &H) -> Value<'r> {
        self(field)
    }
}

/// A literal prepared for comparison.
#[derive(Debug, Clone)]
pub(crate) enum Const {
    Null,
    Bool(bool),
    Int(i64),
    Num(f64),
    /// Lowercased text.
    Text(String),
    /// Days since 1970-01-01.
    Date(i64),
    DateTime(i64),
    Time(i32),
    DateFn(DateFunction),
}

impl Const {
    pub(crate) fn from_literal(l: &Literal) -> Const {
        match l {
            Literal::Null => Const::Null,
            Literal::Bool(b) => Const::Bool(*b),
            Literal::Int(i) => Const::Int(*i),
            Literal::Decimal(x) => Const::Num(*x),
            Literal::Text(s) => Const::Text(s.to_lowercase()),
            Literal::Date(d) => Const::Date(
                d.signed_duration_since(chrono::NaiveDate::default())
                    .num_days(),
            ),
            Literal::DateTime(ms) => Const::DateTime(*ms),
            Literal::Time(ms) => Const::Time(*ms),
            Literal::DateFn(f) => Const::DateFn(*f),
        }
    }
}

/// The relational part of a single-value comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rel {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Rel {
    fn holds(self, o: Ordering) -> bool {
        match self {
            Rel::Eq => o == Ordering::Equal,
            Rel::Ne => o != Ordering::Equal,
            Rel::Lt => o == Ordering::Less,
            Rel::Le => o != Ordering::Greater,
            Rel::Gt => o == Ordering::Greater,
            Rel::Ge => o != Ordering::Less,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Test {
    IsNull,
    NotNull,
    Rel(Rel, Const),
    /// An ordering comparison of ids: by exact value, as ids sort.
    RelExact(Rel, String),
    Like(LikePattern),
    /// `IN` / `NOT IN`. `by_hash` indexes the text entries when the list is long.
    In {
        values: Vec<Const>,
        by_hash: Option<HashIndex>,
        has_null: bool,
        negate: bool,
    },
    /// `INCLUDES` / `EXCLUDES`: each entry is a set of lowercased values that must
    /// all be selected (`'a;b'`).
    Includes {
        sets: Vec<Vec<String>>,
        negate: bool,
    },
}

/// Keys of the IN index are already hashes; pass them through.
#[derive(Default)]
pub(crate) struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type HashIndex = HashMap<u64, Vec<usize>, BuildHasherDefault<PassThrough>>;

/// Text IN lists longer than this are hashed.
const HASH_IN_OVER: usize = 8;

impl Test {
    /// `exact`: the field is an id, so `<`, `<=`, `>`, `>=` compare case-sensitively.
    pub(crate) fn compile(
        op: CompareOp,
        single: Option<&Literal>,
        list: &[Literal],
        exact: bool,
    ) -> Test {
        let rel = |r| match single {
            Some(Literal::Null) if r == Rel::Eq => Test::IsNull,
            Some(Literal::Null) if r == Rel::Ne => Test::NotNull,
            Some(Literal::Text(t)) if exact && !matches!(r, Rel::Eq | Rel::Ne) => {
                Test::RelExact(r, t.clone())
            }
            Some(l) => Test::Rel(r, Const::from_literal(l)),
            None => Test::In {
                values: list.iter().map(Const::from_literal).collect(),
                by_hash: None,
                has_null: false,
                negate: r == Rel::Ne,
            },
        };
        match op {
            CompareOp::Eq => rel(Rel::Eq),
            CompareOp::Ne => rel(Rel::Ne),
            CompareOp::Lt => rel(Rel::Lt),
            CompareOp::Le => rel(Rel::Le),
            CompareOp::Gt => rel(Rel::Gt),
            CompareOp::Ge => rel(Rel::Ge),
            CompareOp::Like => match single {
                Some(Literal::Text(p)) => Test::Like(compile_like(p)),
                // LIKE with a non-text operand never matches (bind_typed rejects it).
                _ => Test::In {
                    values: Vec::new(),
                    by_hash: None,
                    has_null: false,
                    negate: false,
                },
            },
            CompareOp::In | CompareOp::NotIn => {
                let items: Vec<&Literal> = single.into_iter().chain(list).collect();
                let values: Vec<Const> = items
                    .iter()
                    .filter(|l| !matches!(l, Literal::Null))
                    .map(|l| Const::from_literal(l))
                    .collect();
                let has_null = items.iter().any(|l| matches!(l, Literal::Null));
                let by_hash = (values.len() > HASH_IN_OVER).then(|| {
                    let mut m = HashIndex::default();
                    for (i, v) in values.iter().enumerate() {
                        if let Const::Text(s) = v {
                            m.entry(hash_ci(s)).or_default().push(i);
                        }
                    }
                    m
                });
                Test::In {
                    values,
                    by_hash,
                    has_null,
                    negate: op == CompareOp::NotIn,
                }
            }
            CompareOp::Includes | CompareOp::Excludes => {
                let sets = single
                    .into_iter()
                    .chain(list)
                    .filter_map(|l| match l {
                        Literal::Text(s) => Some(
                            s.split(';')
                                .map(|p| p.trim().to_lowercase())
                                .filter(|p| !p.is_empty())
                                .collect(),
                        ),
                        _ => None,
                    })
                    .collect();
                Test::Includes {
                    sets,
                    negate: op == CompareOp::Excludes,
                }
            }
        }
    }

    fn eval(&self, v: Value<'_>, now_ms: i64) -> bool {
        match self {
            Test::IsNull => v == Value::Null,
            Test::NotNull => v != Value::Null,
            // Salesforce returns rows whose value is null for `!=` a non-null value.
            Test::Rel(Rel::Ne, c) if v == Value::Null => !matches!(c, Const::Null),
            Test::Rel(_, _) if v == Value::Null => false,
            Test::Rel(r, Const::DateFn(f)) => in_range_rel(*r, v, range(*f, now_ms)),
            Test::Rel(r, c) => compare_const(v, c).is_some_and(|o| r.holds(o)),
            Test::RelExact(r, t) => match v {
                Value::Text(s) => r.holds(s.cmp(t.as_str())),
                _ => false,
            },
            Test::Like(p) => match v {
                Value::Text(s) => p.matches(s),
                _ => false,
            },
            Test::In {
                values,
                by_hash,
                has_null,
                negate,
            } => {
                if v == Value::Null {
                    return *has_null && !*negate;
                }
                let found = match (by_hash, v) {
                    (Some(index), Value::Text(s)) => index
                        .get(&hash_ci(s))
                        .is_some_and(|ids| ids.iter().any(|&i| const_eq(v, &values[i], now_ms))),
                    _ => values.iter().any(|c| const_eq(v, c, now_ms)),
                };
                found != *negate
            }
            Test::Includes { sets, negate } => match v {
                Value::Text(s) => {
                    let hit = sets
                        .iter()
                        .any(|set| !set.is_empty() && set.iter().all(|want| selected(s, want)));
                    hit != *negate
                }
                _ => false,
            },
        }
    }
}

/// Whether a multi-select value (`a;b;c`) has `want` (lowercased) selected.
fn selected(value: &str, want: &str) -> bool {
    value.split(';').any(|p| eq_ci(p.trim(), want))
}

fn const_eq(v: Value<'_>, c: &Const, now_ms: i64) -> bool {
    match c {
        Const::DateFn(f) => in_range_rel(Rel::Eq, v, range(*f, now_ms)),
        Const::Text(s) => matches!(v, Value::Text(t) if eq_ci(t, s)),
        _ => compare_const(v, c) == Some(Ordering::Equal),
    }
}

/// Compares a row value with a constant; `None` when the types do not compare.
fn compare_const(v: Value<'_>, c: &Const) -> Option<Ordering> {
    match (v, c) {
        (Value::Text(t), Const::Text(s)) => Some(cmp_ci_lowered(t, s)),
        (Value::Bool(a), Const::Bool(b)) => Some(a.cmp(b)),
        (Value::Int(a), Const::Int(b)) => Some(a.cmp(b)),
        (Value::Int(a), Const::Num(b)) => (a as f64).partial_cmp(b),
        (Value::Double(a), Const::Int(b)) => a.partial_cmp(&(*b as f64)),
        (Value::Double(a), Const::Num(b)) => a.partial_cmp(b),
        (Value::Date(a), Const::Date(b)) => Some(i64::from(a).cmp(b)),
        (Value::DateTime(a), Const::DateTime(b)) => Some(a.cmp(b)),
        (Value::Time(a), Const::Time(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

/// A comparison against a date-function range: `=` means inside it, `<` before
/// its start, `>` after its end, and so on.
fn in_range_rel(r: Rel, v: Value<'_>, range: DateRange) -> bool {
    let (x, start, end) = match v {
        Value::Date(d) => (i64::from(d), range.start_day, range.end_day),
        Value::DateTime(ms) => (ms, range.start_ms, range.end_ms),
        _ => return false,
    };
    match r {
        Rel::Eq => start <= x && x < end,
        Rel::Ne => !(start <= x && x < end),
        Rel::Lt => x < start,
        Rel::Le => x < end,
        Rel::Gt => x >= end,
        Rel::Ge => x >= start,
    }
}

/// The compiled WHERE tree.
#[derive(Debug, Clone)]
pub(crate) enum Node<H> {
    And(Vec<Node<H>>),
    Or(Vec<Node<H>>),
    Not(Box<Node<H>>),
    Test(H, Test),
}

impl<H> Node<H> {
    pub(crate) fn eval<'r, R: RowAccess<'r, H> + ?Sized>(&self, row: &R, now_ms: i64) -> bool {
        match self {
            Node::And(xs) => xs.iter().all(|x| x.eval(row, now_ms)),
            Node::Or(xs) => xs.iter().any(|x| x.eval(row, now_ms)),
            Node::Not(x) => !x.eval(row, now_ms),
            Node::Test(h, t) => t.eval(row.get(h), now_ms),
        }
    }
}

/// Rank of a value's type, so mixed-type columns still sort consistently.
fn type_rank(v: &Value<'_>) -> u8 {
    match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Int(_) | Value::Double(_) => 2,
        Value::Text(_) => 3,
        Value::Date(_) => 4,
        Value::DateTime(_) => 5,
        Value::Time(_) => 6,
    }
}

/// Ascending order of two non-null values (text case-insensitively, as Salesforce
/// sorts in English locales).
pub(crate) fn compare_values(a: Value<'_>, b: Value<'_>) -> Ordering {
    match (a, b) {
        (Value::Text(x), Value::Text(y)) => cmp_ci(x, y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(&y),
        (Value::Int(x), Value::Int(y)) => x.cmp(&y),
        (Value::Int(x), Value::Double(y)) => (x as f64).total_cmp(&y),
        (Value::Double(x), Value::Int(y)) => x.total_cmp(&(y as f64)),
        (Value::Double(x), Value::Double(y)) => x.total_cmp(&y),
        (Value::Date(x), Value::Date(y)) => x.cmp(&y),
        (Value::DateTime(x), Value::DateTime(y)) => x.cmp(&y),
        (Value::Time(x), Value::Time(y)) => x.cmp(&y),
        (Value::Date(x), Value::DateTime(y)) => (i64::from(x) * MS_PER_DAY).cmp(&y),
        (Value::DateTime(x), Value::Date(y)) => x.cmp(&(i64::from(y) * MS_PER_DAY)),
        _ => type_rank(&a).cmp(&type_rank(&b)),
    }
}

/// `exact[i]` (when present) makes key `i` compare text by exact value, as ids sort.
pub(crate) fn compare_rows<'a, 'b, H, A, B>(
    keys: &[OrderItem<H>],
    exact: &[bool],
    a: &A,
    b: &B,
) -> Ordering
where
    A: RowAccess<'a, H> + ?Sized,
    B: RowAccess<'b, H> + ?Sized,
{
    for (i, k) in keys.iter().enumerate() {
        let (va, vb) = (a.get(&k.path), b.get(&k.path));
        let o = match (va == Value::Null, vb == Value::Null) {
            (true, true) => Ordering::Equal,
            // NULLS FIRST/LAST place nulls regardless of ASC/DESC.
            (true, false) if k.nulls_last() => Ordering::Greater,
            (true, false) => Ordering::Less,
            (false, true) if k.nulls_last() => Ordering::Less,
            (false, true) => Ordering::Greater,
            (false, false) => {
                let o = match (va, vb) {
                    (Value::Text(x), Value::Text(y)) if exact.get(i) == Some(&true) => x.cmp(y),
                    _ => compare_values(va, vb),
                };
                if k.descending {
                    o.reverse()
                } else {
                    o
                }
            }
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}
