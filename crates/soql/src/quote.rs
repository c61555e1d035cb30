//! SOQL text forms of literals.

use std::fmt;

use crate::ast::{
    CompareOp, DateFunction, Expr, FieldPath, FieldsKind, Literal, NullsOrder, Operand, Query,
    SelectItem,
};
use crate::datefn::{civil_from_days, MS_PER_DAY};

/// A SOQL string literal for `s`: single-quoted, with `\\`, `\'`, `\"`, `\n`, `\r`,
/// `\t` escaped. (`%`/`_` are left alone: escape them yourself for LIKE.)
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            _ => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// Writes epoch milliseconds as `YYYY-MM-DDThh:mm:ssZ` (with `.fff` when non-zero).
pub(crate) fn write_datetime(f: &mut impl fmt::Write, ms: i64) -> fmt::Result {
    let day = ms.div_euclid(MS_PER_DAY);
    let in_day = ms.rem_euclid(MS_PER_DAY);
    let (y, m, d) = civil_from_days(day);
    let (h, min, s, milli) = (
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000,
    );
    write!(f, "{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}")?;
    if milli != 0 {
        write!(f, ".{milli:03}")?;
    }
    f.write_str("Z")
}

impl fmt::Display for DateFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use DateFunction::*;
        let (name, n) = match *self {
            Yesterday => ("YESTERDAY", None),
            Today => ("TODAY", None),
            Tomorrow => ("TOMORROW", None),
            LastWeek => ("LAST_WEEK", None),
            ThisWeek => ("THIS_WEEK", None),
            NextWeek => ("NEXT_WEEK", None),
            LastMonth => ("LAST_MONTH", None),
            ThisMonth => ("THIS_MONTH", None),
            NextMonth => ("NEXT_MONTH", None),
            Last90Days => ("LAST_90_DAYS", None),
            Next90Days => ("NEXT_90_DAYS", None),
            LastNDays(n) => ("LAST_N_DAYS", Some(n)),
            NextNDays(n) => ("NEXT_N_DAYS", Some(n)),
            NDaysAgo(n) => ("N_DAYS_AGO", Some(n)),
            LastNWeeks(n) => ("LAST_N_WEEKS", Some(n)),
            NextNWeeks(n) => ("NEXT_N_WEEKS", Some(n)),
            NWeeksAgo(n) => ("N_WEEKS_AGO", Some(n)),
            LastNMonths(n) => ("LAST_N_MONTHS", Some(n)),
            NextNMonths(n) => ("NEXT_N_MONTHS", Some(n)),
            NMonthsAgo(n) => ("N_MONTHS_AGO", Some(n)),
            ThisQuarter => ("THIS_QUARTER", None),
            LastQuarter => ("LAST_QUARTER", None),
            NextQuarter => ("NEXT_QUARTER", None),
            LastNQuarters(n) => ("LAST_N_QUARTERS", Some(n)),
            NextNQuarters(n) => ("NEXT_N_QUARTERS", Some(n)),
            NQuartersAgo(n) => ("N_QUARTERS_AGO", Some(n)),
            ThisYear => ("THIS_YEAR", None),
            LastYear => ("LAST_YEAR", None),
            NextYear => ("NEXT_YEAR", None),
            LastNYears(n) => ("LAST_N_YEARS", Some(n)),
            NextNYears(n) => ("NEXT_N_YEARS", Some(n)),
            NYearsAgo(n) => ("N_YEARS_AGO", Some(n)),
        };
        f.write_str(name)?;
        match n {
            Some(n) => write!(f, ":{n}"),
            None => Ok(()),
        }
    }
}

/// SOQL text that parses back to the same literal. (A LIKE pattern's text is kept
/// in pattern form, so it prints with its escapes doubled.)
impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Null => f.write_str("null"),
            Literal::Bool(b) => write!(f, "{b}"),
            Literal::Int(i) => write!(f, "{i}"),
            Literal::Decimal(x) => {
                if x.fract() == 0.0 && x.abs() < 1e15 {
                    write!(f, "{x:.1}")
                } else {
                    write!(f, "{x}")
                }
            }
            Literal::Text(s) => f.write_str(&quote(s)),
            Literal::Date(d) => write!(f, "{}", d.format("%Y-%m-%d")),
            Literal::DateTime(ms) => write_datetime(f, *ms),
            Literal::Time(ms) => {
                let ms = i64::from(*ms);
                write!(
                    f,
                    "{:02}:{:02}:{:02}.{:03}Z",
                    ms / 3_600_000,
                    ms / 60_000 % 60,
                    ms / 1000 % 60,
                    ms % 1000
                )
            }
            Literal::DateFn(d) => write!(f, "{d}"),
        }
    }
}

/// Quotes a LIKE pattern already in pattern form: its `\\%`, `\\_` and `\\\\` escapes
/// are written as they are.
fn quote_pattern(p: &str) -> String {
    let mut out = String::with_capacity(p.len() + 2);
    out.push('\'');
    let mut chars = p.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                out.push('\\');
                if let Some(e) = chars.next() {
                    out.push(e);
                }
            }
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            _ => out.push(c),
        }
    }
    out.push('\'');
    out
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.parts.join("."))
    }
}

/// SOQL text of a condition; `And`/`Or` children that are themselves `And`/`Or`
/// are parenthesised.
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let group = |f: &mut fmt::Formatter<'_>, xs: &[Expr], sep: &str| -> fmt::Result {
            for (i, x) in xs.iter().enumerate() {
                if i > 0 {
                    f.write_str(sep)?;
                }
                match x {
                    Expr::And(_) | Expr::Or(_) => write!(f, "({x})")?,
                    _ => write!(f, "{x}")?,
                }
            }
            Ok(())
        };
        match self {
            Expr::And(xs) => group(f, xs, " AND "),
            Expr::Or(xs) => group(f, xs, " OR "),
            Expr::Not(x) => match **x {
                Expr::Compare { .. } | Expr::Not(_) => write!(f, "NOT {x}"),
                _ => write!(f, "NOT ({x})"),
            },
            Expr::Compare { path, op, value } => {
                write!(f, "{path} {} ", op.as_str())?;
                match value {
                    Operand::Single(Literal::Text(p)) if *op == CompareOp::Like => {
                        f.write_str(&quote_pattern(p))
                    }
                    Operand::Single(l) => write!(f, "{l}"),
                    Operand::List(ls) => {
                        f.write_str("(")?;
                        for (i, l) in ls.iter().enumerate() {
                            if i > 0 {
                                f.write_str(", ")?;
                            }
                            write!(f, "{l}")?;
                        }
                        f.write_str(")")
                    }
                }
            }
        }
    }
}

/// Normalised SOQL text of the query (keywords upper-case, single spaces).
impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SELECT ")?;
        for (i, item) in self.select.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            match item {
                SelectItem::Field(p) => write!(f, "{p}")?,
                SelectItem::Count => f.write_str("COUNT()")?,
                SelectItem::CountField(p) => write!(f, "COUNT({p})")?,
                SelectItem::Fields(k) => f.write_str(match k {
                    FieldsKind::All => "FIELDS(ALL)",
                    FieldsKind::Standard => "FIELDS(STANDARD)",
                    FieldsKind::Custom => "FIELDS(CUSTOM)",
                })?,
            }
        }
        write!(f, " FROM {}", self.from)?;
        if let Some(w) = &self.where_clause {
            write!(f, " WHERE {w}")?;
        }
        for (i, o) in self.order_by.iter().enumerate() {
            f.write_str(if i == 0 { " ORDER BY " } else { ", " })?;
            write!(f, "{}", o.path)?;
            if o.descending {
                f.write_str(" DESC")?;
            }
            match o.nulls {
                Some(NullsOrder::First) => f.write_str(" NULLS FIRST")?,
                Some(NullsOrder::Last) => f.write_str(" NULLS LAST")?,
                None => {}
            }
        }
        if let Some(n) = self.limit {
            write!(f, " LIMIT {n}")?;
        }
        if let Some(n) = self.offset {
            write!(f, " OFFSET {n}")?;
        }
        Ok(())
    }
}
