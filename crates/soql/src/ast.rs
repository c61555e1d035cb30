//! The parsed form of a query. Generic over `P`, the field reference: a
//! [`FieldPath`] after parsing, the caller's handle after binding.

use chrono::NaiveDate;

/// A dotted field reference as written, e.g. `Account.Owner.Name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldPath {
    /// Path segments as written (case kept), e.g. `["Account", "Name"]`.
    pub parts: Vec<String>,
    /// Character offset (0-based) of the reference in the query, for error carets.
    pub pos: usize,
}

impl FieldPath {
    /// The path joined with dots, as written.
    pub fn dotted(&self) -> String {
        self.parts.join(".")
    }
}

/// Which fields `FIELDS(...)` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldsKind {
    All,
    Standard,
    Custom,
}

/// One entry of the SELECT list.
#[derive(Debug, Clone, PartialEq)]
pub enum SelectItem<P = FieldPath> {
    Field(P),
    /// `COUNT()`: the result is a row count only.
    Count,
    /// `COUNT(field)`: number of rows where the field is not null.
    CountField(P),
    /// `FIELDS(ALL|STANDARD|CUSTOM)`: the caller expands it.
    Fields(FieldsKind),
}

/// Comparison operators of a WHERE condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    Eq,
    /// `!=` (Salesforce also accepts `<>`; both parse to this).
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Like,
    In,
    NotIn,
    Includes,
    Excludes,
}

impl CompareOp {
    /// The operator as SOQL text.
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "=",
            CompareOp::Ne => "!=",
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
            CompareOp::Like => "LIKE",
            CompareOp::In => "IN",
            CompareOp::NotIn => "NOT IN",
            CompareOp::Includes => "INCLUDES",
            CompareOp::Excludes => "EXCLUDES",
        }
    }
}

/// Relative date literals (`TODAY`, `LAST_N_DAYS:7`, ...). Each denotes a range of
/// whole days in UTC, resolved against the `now` given at evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DateFunction {
    Yesterday,
    Today,
    Tomorrow,
    LastWeek,
    ThisWeek,
    NextWeek,
    LastMonth,
    ThisMonth,
    NextMonth,
    Last90Days,
    Next90Days,
    LastNDays(u32),
    NextNDays(u32),
    NDaysAgo(u32),
    LastNWeeks(u32),
    NextNWeeks(u32),
    NWeeksAgo(u32),
    LastNMonths(u32),
    NextNMonths(u32),
    NMonthsAgo(u32),
    ThisQuarter,
    LastQuarter,
    NextQuarter,
    LastNQuarters(u32),
    NextNQuarters(u32),
    NQuartersAgo(u32),
    ThisYear,
    LastYear,
    NextYear,
    LastNYears(u32),
    NextNYears(u32),
    NYearsAgo(u32),
}

/// A constant in a WHERE condition.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Literal {
    Null,
    Bool(bool),
    Int(i64),
    Decimal(f64),
    Text(String),
    Date(NaiveDate),
    /// Milliseconds since the Unix epoch, UTC (offsets in the literal are applied).
    DateTime(i64),
    /// Milliseconds since midnight (`10:30:00.000Z`).
    Time(i32),
    DateFn(DateFunction),
}

/// The right-hand side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Single(Literal),
    /// `IN (...)`, `NOT IN (...)`, `INCLUDES (...)`, `EXCLUDES (...)`.
    List(Vec<Literal>),
}

/// A WHERE condition tree. `And`/`Or` hold two or more children.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr<P = FieldPath> {
    And(Vec<Expr<P>>),
    Or(Vec<Expr<P>>),
    Not(Box<Expr<P>>),
    Compare {
        path: P,
        op: CompareOp,
        value: Operand,
    },
}

/// Explicit `NULLS FIRST` / `NULLS LAST`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NullsOrder {
    First,
    Last,
}

/// One ORDER BY key.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderItem<P = FieldPath> {
    pub path: P,
    pub descending: bool,
    /// `None` when the query did not say; see [`OrderItem::nulls_last`].
    pub nulls: Option<NullsOrder>,
}

impl<P> OrderItem<P> {
    /// Whether nulls go after non-null values: only with an explicit `NULLS LAST`
    /// (Salesforce sorts nulls first by default).
    pub fn nulls_last(&self) -> bool {
        self.nulls == Some(NullsOrder::Last)
    }
}

/// A parsed SOQL statement.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub select: Vec<SelectItem>,
    /// Object API name as written (case kept).
    pub from: String,
    /// Character offset of the object name, for INVALID_TYPE carets.
    pub from_pos: usize,
    pub where_clause: Option<Expr>,
    pub order_by: Vec<OrderItem>,
    pub limit: Option<u64>,
    pub offset: Option<u64>,
}

impl Query {
    /// True when the SELECT list is exactly `COUNT()`.
    pub fn is_count(&self) -> bool {
        matches!(self.select.as_slice(), [SelectItem::Count])
    }

    /// Every field reference in the query (SELECT, then WHERE, then ORDER BY).
    pub fn field_paths(&self) -> Vec<&FieldPath> {
        let mut out = Vec::new();
        for item in &self.select {
            match item {
                SelectItem::Field(p) | SelectItem::CountField(p) => out.push(p),
                SelectItem::Count | SelectItem::Fields(_) => {}
            }
        }
        if let Some(w) = &self.where_clause {
            collect_paths(w, &mut out);
        }
        out.extend(self.order_by.iter().map(|o| &o.path));
        out
    }
}

fn collect_paths<'a>(e: &'a Expr, out: &mut Vec<&'a FieldPath>) {
    match e {
        Expr::And(xs) | Expr::Or(xs) => xs.iter().for_each(|x| collect_paths(x, out)),
        Expr::Not(x) => collect_paths(x, out),
        Expr::Compare { path, .. } => out.push(path),
    }
}
