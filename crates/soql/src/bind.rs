//! Binding: replacing field paths with the caller's handles, checking literal types
//! when the caller knows them, and compiling the WHERE clause for evaluation.

use std::cmp::Ordering;

use chrono::{DateTime, Utc};

use crate::ast::{CompareOp, Expr, FieldPath, Literal, Operand, OrderItem, Query, SelectItem};
use crate::error::{ErrorCode, SoqlError};
use crate::eval::{compare_rows, Node, RowAccess, Test};

/// A field's value type, as far as filtering cares. Give it via
/// [`Query::bind_typed`] to get Salesforce's type-mismatch errors at bind time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldType {
    /// string, textarea, picklist, email, phone, url, combobox, ...
    Text,
    /// id, reference: text that sorts by exact (case-sensitive) value, and whose
    /// 15-character literals match the stored 18-character form.
    Id,
    /// multipicklist: `;`-separated values; INCLUDES/EXCLUDES work on it.
    MultiPicklist,
    Bool,
    /// int, long
    Int,
    /// double, currency, percent
    Double,
    Date,
    DateTime,
    Time,
    /// Anything else (address, location, base64, anyType): no checks.
    Other,
}

impl FieldType {
    /// Maps a describe `type` value (`"string"`, `"datetime"`, ...).
    pub fn from_describe(sf_type: &str) -> FieldType {
        match sf_type.to_ascii_lowercase().as_str() {
            "id" | "reference" => FieldType::Id,
            "string" | "textarea" | "picklist" | "email" | "phone" | "url" | "combobox"
            | "encryptedstring" => FieldType::Text,
            "multipicklist" => FieldType::MultiPicklist,
            "boolean" => FieldType::Bool,
            "int" | "long" => FieldType::Int,
            "double" | "currency" | "percent" => FieldType::Double,
            "date" => FieldType::Date,
            "datetime" => FieldType::DateTime,
            "time" => FieldType::Time,
            _ => FieldType::Other,
        }
    }

    /// Salesforce's name for the type in filter errors, and whether its literals
    /// are quoted.
    fn describe(self) -> (&'static str, bool) {
        match self {
            FieldType::Text | FieldType::MultiPicklist | FieldType::Other => ("string", true),
            FieldType::Id => ("id", true),
            FieldType::Bool => ("boolean", false),
            FieldType::Int => ("integer", false),
            FieldType::Double => ("double", false),
            FieldType::Date => ("date", false),
            FieldType::DateTime => ("dateTime", false),
            FieldType::Time => ("time", false),
        }
    }

    fn accepts(self, l: &Literal) -> bool {
        matches!(
            (self, l),
            (_, Literal::Null)
                | (FieldType::Other, _)
                | (
                    FieldType::Text | FieldType::Id | FieldType::MultiPicklist,
                    Literal::Text(_)
                )
                | (FieldType::Bool, Literal::Bool(_))
                | (
                    FieldType::Int | FieldType::Double,
                    Literal::Int(_) | Literal::Decimal(_)
                )
                | (FieldType::Date, Literal::Date(_) | Literal::DateFn(_))
                | (
                    FieldType::DateTime,
                    Literal::DateTime(_) | Literal::DateFn(_)
                )
                | (FieldType::Time, Literal::Time(_))
        )
    }
}

/// Resolves a path to its handle and type; the second argument is the WHERE
/// condition it appears in.
type Resolver<'a, H> =
    dyn FnMut(&FieldPath, Option<(CompareOp, &Operand)>) -> Result<(H, FieldType), SoqlError> + 'a;

/// A query whose field references are the caller's handles `H`. The public fields
/// are for reading; the filter used by [`BoundQuery::matches`] is compiled from
/// `where_clause` at bind time.
#[derive(Debug, Clone)]
pub struct BoundQuery<H> {
    pub select: Vec<SelectItem<H>>,
    pub from: String,
    pub where_clause: Option<Expr<H>>,
    pub order_by: Vec<OrderItem<H>>,
    pub limit: Option<u64>,
    pub offset: Option<u64>,
    filter: Option<Node<H>>,
    /// Per ORDER BY key: compare text exactly (ids) instead of case-insensitively.
    order_exact: Vec<bool>,
}

impl Query {
    /// Resolves every field reference (SELECT, WHERE, ORDER BY, in that order) with
    /// `resolve`, which returns the caller's handle or an error such as
    /// [`SoqlError::invalid_field`]. Literal/field type mismatches are then found
    /// only at evaluation (the comparison is false).
    pub fn bind<H, F>(&self, mut resolve: F) -> Result<BoundQuery<H>, SoqlError>
    where
        H: Clone,
        F: FnMut(&FieldPath) -> Result<H, SoqlError>,
    {
        self.bind_inner(&mut |p: &FieldPath, _: Option<(CompareOp, &Operand)>| {
            Ok((resolve(p)?, FieldType::Other))
        })
    }

    /// Like [`Query::bind`], but `resolve` also gives each field's type, so WHERE
    /// literals of the wrong type are rejected as Salesforce does (`INVALID_FIELD`,
    /// "value of filter criterion for field 'X' must be of type ...").
    /// `query_text` is the original text, for the error caret.
    pub fn bind_typed<H, F>(
        &self,
        query_text: &str,
        mut resolve: F,
    ) -> Result<BoundQuery<H>, SoqlError>
    where
        H: Clone,
        F: FnMut(&FieldPath) -> Result<(H, FieldType), SoqlError>,
    {
        self.bind_inner(
            &mut |p: &FieldPath, filter: Option<(CompareOp, &Operand)>| {
                let (h, ty) = resolve(p)?;
                if let Some((op, operand)) = filter {
                    check_filter(query_text, p, ty, op, operand)?;
                }
                Ok((h, ty))
            },
        )
    }

    fn bind_inner<H: Clone>(
        &self,
        resolve: &mut Resolver<'_, H>,
    ) -> Result<BoundQuery<H>, SoqlError> {
        let select = self
            .select
            .iter()
            .map(|item| {
                Ok(match item {
                    SelectItem::Field(p) => SelectItem::Field(resolve(p, None)?.0),
                    SelectItem::CountField(p) => SelectItem::CountField(resolve(p, None)?.0),
                    SelectItem::Count => SelectItem::Count,
                    SelectItem::Fields(k) => SelectItem::Fields(*k),
                })
            })
            .collect::<Result<Vec<_>, SoqlError>>()?;
        // Which comparisons are on id fields, in the pre-order both walks share.
        let mut id_compares = Vec::new();
        let where_clause = self
            .where_clause
            .as_ref()
            .map(|e| bind_expr(e, resolve, &mut id_compares))
            .transpose()?;
        let mut order_exact = Vec::with_capacity(self.order_by.len());
        let order_by = self
            .order_by
            .iter()
            .map(|o| {
                let (path, ty) = resolve(&o.path, None)?;
                order_exact.push(ty == FieldType::Id);
                Ok(OrderItem {
                    path,
                    descending: o.descending,
                    nulls: o.nulls,
                })
            })
            .collect::<Result<Vec<_>, SoqlError>>()?;
        let mut ids = id_compares.into_iter();
        let filter = where_clause.as_ref().map(|e| compile(e, &mut ids));
        Ok(BoundQuery {
            select,
            from: self.from.clone(),
            where_clause,
            order_by,
            limit: self.limit,
            offset: self.offset,
            filter,
            order_exact,
        })
    }
}

fn bind_expr<H>(
    e: &Expr,
    resolve: &mut Resolver<'_, H>,
    id_compares: &mut Vec<bool>,
) -> Result<Expr<H>, SoqlError> {
    Ok(match e {
        Expr::And(xs) => Expr::And(
            xs.iter()
                .map(|x| bind_expr(x, resolve, id_compares))
                .collect::<Result<_, _>>()?,
        ),
        Expr::Or(xs) => Expr::Or(
            xs.iter()
                .map(|x| bind_expr(x, resolve, id_compares))
                .collect::<Result<_, _>>()?,
        ),
        Expr::Not(x) => Expr::Not(Box::new(bind_expr(x, resolve, id_compares)?)),
        Expr::Compare { path, op, value } => {
            let (h, ty) = resolve(path, Some((*op, value)))?;
            id_compares.push(ty == FieldType::Id);
            let value = if ty == FieldType::Id {
                widen_ids(value)
            } else {
                value.clone()
            };
            Expr::Compare {
                path: h,
                op: *op,
                value,
            }
        }
    })
}

/// 15-character id literals in their 18-character form, which is what rows hold.
fn widen_ids(operand: &Operand) -> Operand {
    let widen = |l: &Literal| match l {
        Literal::Text(s) if s.len() == 15 && s.bytes().all(|b| b.is_ascii_alphanumeric()) => {
            Literal::Text(crate::id18(s))
        }
        other => other.clone(),
    };
    match operand {
        Operand::Single(l) => Operand::Single(widen(l)),
        Operand::List(ls) => Operand::List(ls.iter().map(widen).collect()),
    }
}

/// `ids` yields, per comparison in pre-order, whether its field is an id.
fn compile<H: Clone>(e: &Expr<H>, ids: &mut impl Iterator<Item = bool>) -> Node<H> {
    match e {
        Expr::And(xs) => Node::And(xs.iter().map(|x| compile(x, ids)).collect()),
        Expr::Or(xs) => Node::Or(xs.iter().map(|x| compile(x, ids)).collect()),
        Expr::Not(x) => Node::Not(Box::new(compile(x, ids))),
        Expr::Compare { path, op, value } => {
            let exact = ids.next().unwrap_or(false);
            let test = match value {
                Operand::Single(l) => Test::compile(*op, Some(l), &[], exact),
                Operand::List(ls) => Test::compile(*op, None, ls, exact),
            };
            Node::Test(path.clone(), test)
        }
    }
}

/// Salesforce's bind-time checks of a WHERE condition against the field's type.
fn check_filter(
    query: &str,
    path: &FieldPath,
    ty: FieldType,
    op: CompareOp,
    operand: &Operand,
) -> Result<(), SoqlError> {
    let field = path.dotted();
    match op {
        CompareOp::Like if !matches!(ty, FieldType::Text | FieldType::Other) => {
            return Err(SoqlError::at(
                ErrorCode::InvalidQueryFilterOperator,
                query,
                path.pos,
                &format!(
                    "invalid operator on field '{field}': LIKE is only valid on string fields"
                ),
            ));
        }
        CompareOp::Includes | CompareOp::Excludes
            if !matches!(ty, FieldType::MultiPicklist | FieldType::Other) =>
        {
            return Err(SoqlError::at(
                ErrorCode::InvalidQueryFilterOperator,
                query,
                path.pos,
                "includes or excludes operator only valid on multipicklist field",
            ));
        }
        _ => {}
    }
    let literals: &[Literal] = match operand {
        Operand::Single(l) => std::slice::from_ref(l),
        Operand::List(ls) => ls,
    };
    if !literals.iter().all(|l| ty.accepts(l)) {
        let (type_name, quoted) = ty.describe();
        return Err(SoqlError::at(
            ErrorCode::InvalidField,
            query,
            path.pos,
            &format!(
                "value of filter criterion for field '{field}' must be of type {type_name} and should {}be enclosed in quotes",
                if quoted { "" } else { "not " }
            ),
        ));
    }
    Ok(())
}

impl<H> BoundQuery<H> {
    /// Whether `row` satisfies the WHERE clause (true without one). `now` anchors
    /// relative date literals (UTC days). Does not allocate.
    pub fn matches<'r, R: RowAccess<'r, H> + ?Sized>(&self, row: &R, now: DateTime<Utc>) -> bool {
        match &self.filter {
            Some(f) => f.eval(row, now.timestamp_millis()),
            None => true,
        }
    }

    /// ORDER BY comparison of two rows (Equal without ORDER BY). Does not allocate.
    /// The two rows may be of different types (e.g. two closures).
    pub fn compare<'a, 'b, A, B>(&self, a: &A, b: &B) -> Ordering
    where
        A: RowAccess<'a, H> + ?Sized,
        B: RowAccess<'b, H> + ?Sized,
    {
        compare_rows(&self.order_by, &self.order_exact, a, b)
    }

    /// True when the SELECT list is exactly `COUNT()`.
    pub fn is_count(&self) -> bool {
        matches!(self.select.as_slice(), [SelectItem::Count])
    }
}
