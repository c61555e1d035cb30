//! Recursive-descent parser over the token list.
//!
//! Grammar (keywords case-insensitive):
//! ```text
//! query   := SELECT items FROM name [USING SCOPE name] [WHERE or] [WITH ...]
//!            [ORDER BY key (, key)*] [LIMIT n] [OFFSET n] [FOR VIEW|REFERENCE|UPDATE] EOF
//! or      := and (OR and)*          and := not (AND not)*
//! not     := NOT not | '(' or ')' | path op operand
//! ```

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};

use crate::ast::{
    CompareOp, DateFunction, Expr, FieldPath, FieldsKind, Literal, NullsOrder, Operand, OrderItem,
    Query, SelectItem,
};
use crate::error::{ErrorCode, SoqlError};
use crate::lexer::{tokenize, Tok, Token};
use crate::MAX_QUERY_LENGTH;

/// Largest OFFSET Salesforce accepts.
const MAX_OFFSET: u64 = 2000;

pub(crate) fn parse(soql: &str) -> Result<Query, SoqlError> {
    if soql.len() > MAX_QUERY_LENGTH && soql.chars().count() > MAX_QUERY_LENGTH {
        return Err(SoqlError::new(
            ErrorCode::MalformedQuery,
            format!("SOQL statements cannot be longer than {MAX_QUERY_LENGTH} characters."),
        ));
    }
    let tokens = tokenize(soql)?;
    let mut p = Parser {
        src: soql,
        toks: tokens,
        at: 0,
        depth: 0,
    };
    p.query()
}

struct Parser<'q> {
    src: &'q str,
    toks: Vec<Token<'q>>,
    at: usize,
    /// Current nesting of `NOT` and parentheses in WHERE.
    depth: usize,
}

/// Deepest WHERE nesting accepted: far beyond real queries, and shallow enough that
/// parsing and evaluating stay well inside a thread's stack whatever a client sends.
const MAX_NESTING: usize = 200;

/// Clause keywords that may not be used as a bare field name where a clause can start.
const CLAUSE_WORDS: &[&str] = &[
    "SELECT", "FROM", "WHERE", "ORDER", "GROUP", "HAVING", "LIMIT", "OFFSET", "WITH", "FOR",
    "USING", "AND", "OR", "NOT", "NULLS", "ASC", "DESC", "LIKE", "IN", "INCLUDES", "EXCLUDES",
    "TYPEOF", "ROLLUP", "CUBE",
];

impl<'q> Parser<'q> {
    fn peek(&self) -> &Token<'q> {
        // The token list always ends with Eof and `at` never passes it.
        &self.toks[self.at.min(self.toks.len() - 1)]
    }

    fn peek_at(&self, ahead: usize) -> &Token<'q> {
        &self.toks[(self.at + ahead).min(self.toks.len() - 1)]
    }

    fn advance(&mut self) -> Token<'q> {
        let t = self.peek().clone();
        if t.tok != Tok::Eof {
            self.at += 1;
        }
        t
    }

    fn is_kw(&self, kw: &str) -> bool {
        matches!(self.peek().tok, Tok::Ident(s) if s.eq_ignore_ascii_case(kw))
    }

    fn is_kw_at(&self, ahead: usize, kw: &str) -> bool {
        matches!(self.peek_at(ahead).tok, Tok::Ident(s) if s.eq_ignore_ascii_case(kw))
    }

    fn eat_kw(&mut self, kw: &str) -> bool {
        if self.is_kw(kw) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect_kw(&mut self, kw: &str) -> Result<(), SoqlError> {
        if self.eat_kw(kw) {
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    fn eat(&mut self, tok: &Tok<'_>) -> bool {
        if &self.peek().tok == tok {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, tok: &Tok<'_>) -> Result<(), SoqlError> {
        if self.eat(tok) {
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    fn error_at(&self, pos: usize, detail: &str) -> SoqlError {
        SoqlError::at(ErrorCode::MalformedQuery, self.src, pos, detail)
    }

    /// "unexpected token: 'X'" at the current token.
    fn unexpected(&self) -> SoqlError {
        let t = self.peek();
        let shown = if t.tok == Tok::Eof { "<EOF>" } else { t.text };
        self.error_at(t.pos, &format!("unexpected token: '{shown}'"))
    }

    fn query(&mut self) -> Result<Query, SoqlError> {
        self.expect_kw("SELECT")?;
        let select = self.select_list()?;
        self.expect_kw("FROM")?;
        let (from, from_pos) = self.object_name()?;
        if self.is_kw("USING") && self.is_kw_at(1, "SCOPE") {
            self.at += 2;
            self.ident("scope")?;
        }
        let where_clause = if self.eat_kw("WHERE") {
            Some(self.or_expr()?)
        } else {
            None
        };
        if self.is_kw("WITH") {
            self.with_clause()?;
        }
        if self.is_kw("GROUP") || self.is_kw("HAVING") {
            let t = self.peek();
            return Err(self.error_at(
                t.pos,
                "GROUP BY and HAVING are not supported by this Salesforce emulator",
            ));
        }
        let mut order_by = Vec::new();
        if self.is_kw("ORDER") {
            self.at += 1;
            self.expect_kw("BY")?;
            loop {
                order_by.push(self.order_item()?);
                if !self.eat(&Tok::Comma) {
                    break;
                }
            }
        }
        let limit = if self.eat_kw("LIMIT") {
            Some(self.unsigned("LIMIT")?)
        } else {
            None
        };
        let offset = if self.is_kw("OFFSET") {
            let pos = self.advance().pos;
            let n = self.unsigned("OFFSET")?;
            if n > MAX_OFFSET {
                return Err(SoqlError::at(
                    ErrorCode::NumberOutsideValidRange,
                    self.src,
                    pos,
                    &format!("Maximum SOQL offset allowed is {MAX_OFFSET}"),
                ));
            }
            Some(n)
        } else {
            None
        };
        if self.eat_kw("FOR") {
            if !(self.eat_kw("VIEW") || self.eat_kw("REFERENCE") || self.eat_kw("UPDATE")) {
                return Err(self.unexpected());
            }
        } else if self.is_kw("ALL") && self.is_kw_at(1, "ROWS") {
            // Apex's `ALL ROWS`: queryAll decides visibility, so nothing to record.
            self.at += 2;
        }
        if self.peek().tok != Tok::Eof {
            return Err(self.unexpected());
        }
        Ok(Query {
            select,
            from,
            from_pos,
            where_clause,
            order_by,
            limit,
            offset,
        })
    }

    fn with_clause(&mut self) -> Result<(), SoqlError> {
        self.at += 1;
        if self.eat_kw("SECURITY_ENFORCED")
            || self.eat_kw("SYSTEM_MODE")
            || self.eat_kw("USER_MODE")
        {
            return Ok(());
        }
        let t = self.peek();
        Err(self.error_at(
            t.pos,
            "only WITH SECURITY_ENFORCED is supported by this Salesforce emulator",
        ))
    }

    fn ident(&mut self, _what: &str) -> Result<(&'q str, usize), SoqlError> {
        match self.peek().tok {
            Tok::Ident(s) => {
                let pos = self.peek().pos;
                self.at += 1;
                Ok((s, pos))
            }
            _ => Err(self.unexpected()),
        }
    }

    fn object_name(&mut self) -> Result<(String, usize), SoqlError> {
        if self.peek().tok == Tok::LParen {
            let pos = self.peek().pos;
            return Err(self.error_at(
                pos,
                "subqueries are not supported by this Salesforce emulator",
            ));
        }
        let (name, pos) = self.ident("object")?;
        self.at -= 1;
        let reserved = self.reserved_here();
        self.at += 1;
        if reserved {
            return Err(self.error_at(pos, &format!("unexpected token: '{name}'")));
        }
        if self.peek().tok == Tok::Dot {
            return Err(self.unexpected());
        }
        Ok((name.to_string(), pos))
    }

    /// A dotted field path. Reserved clause words are rejected so that e.g.
    /// `SELECT FROM Account` reports FROM rather than treating it as a field.
    fn path(&mut self) -> Result<FieldPath, SoqlError> {
        let (first, pos) = match self.peek().tok {
            Tok::Ident(s) if !self.reserved_here() => (s, self.peek().pos),
            _ => return Err(self.unexpected()),
        };
        self.at += 1;
        let mut parts = vec![first.to_string()];
        while self.peek().tok == Tok::Dot {
            self.at += 1;
            let (part, _) = self.ident("field")?;
            parts.push(part.to_string());
        }
        Ok(FieldPath { parts, pos })
    }

    /// Whether the identifier at the cursor acts as a keyword rather than a name.
    /// `Order` and `Group` are also standard objects, and any word followed by a
    /// dot is a relationship name (`Order.OrderNumber`).
    fn reserved_here(&self) -> bool {
        let Tok::Ident(word) = self.peek().tok else {
            return false;
        };
        if !is_clause_word(word) || self.peek_at(1).tok == Tok::Dot {
            return false;
        }
        if word.eq_ignore_ascii_case("ORDER") || word.eq_ignore_ascii_case("GROUP") {
            return self.is_kw_at(1, "BY");
        }
        true
    }

    fn select_list(&mut self) -> Result<Vec<SelectItem>, SoqlError> {
        let start = self.peek().pos;
        let mut items = Vec::new();
        loop {
            items.push(self.select_item()?);
            if !self.eat(&Tok::Comma) {
                break;
            }
        }
        if items.len() > 1 && items.iter().any(|i| matches!(i, SelectItem::Count)) {
            return Err(self.error_at(
                start,
                "COUNT() cannot be combined with other fields in the SELECT list",
            ));
        }
        Ok(items)
    }

    fn select_item(&mut self) -> Result<SelectItem, SoqlError> {
        let t = self.peek().clone();
        match t.tok {
            Tok::LParen => {
                return Err(self.error_at(
                    t.pos,
                    "subqueries are not supported by this Salesforce emulator",
                ))
            }
            Tok::Ident(word) if self.peek_at(1).tok == Tok::LParen => {
                self.at += 2;
                if word.eq_ignore_ascii_case("COUNT") {
                    if self.eat(&Tok::RParen) {
                        return Ok(SelectItem::Count);
                    }
                    let path = self.path()?;
                    self.expect(&Tok::RParen)?;
                    self.reject_alias()?;
                    return Ok(SelectItem::CountField(path));
                }
                if word.eq_ignore_ascii_case("FIELDS") {
                    let kind = if self.eat_kw("ALL") {
                        FieldsKind::All
                    } else if self.eat_kw("STANDARD") {
                        FieldsKind::Standard
                    } else if self.eat_kw("CUSTOM") {
                        FieldsKind::Custom
                    } else {
                        return Err(self.unexpected());
                    };
                    self.expect(&Tok::RParen)?;
                    return Ok(SelectItem::Fields(kind));
                }
                return Err(self.error_at(
                    t.pos,
                    &format!("function {word}() is not supported by this Salesforce emulator"),
                ));
            }
            Tok::Ident(word) if word.eq_ignore_ascii_case("TYPEOF") => {
                return Err(
                    self.error_at(t.pos, "TYPEOF is not supported by this Salesforce emulator")
                )
            }
            _ => {}
        }
        let path = self.path()?;
        self.reject_alias()?;
        Ok(SelectItem::Field(path))
    }

    /// Field aliases are only legal with aggregates in SOQL; a stray identifier here
    /// is a syntax error, reported at that identifier.
    fn reject_alias(&self) -> Result<(), SoqlError> {
        match self.peek().tok {
            Tok::Ident(s) if !is_clause_word(s) => Err(self.unexpected()),
            _ => Ok(()),
        }
    }

    fn order_item(&mut self) -> Result<OrderItem, SoqlError> {
        let path = self.path()?;
        let descending = if self.eat_kw("DESC") {
            true
        } else {
            self.eat_kw("ASC");
            false
        };
        let nulls = if self.eat_kw("NULLS") {
            if self.eat_kw("FIRST") {
                Some(NullsOrder::First)
            } else if self.eat_kw("LAST") {
                Some(NullsOrder::Last)
            } else {
                return Err(self.unexpected());
            }
        } else {
            None
        };
        Ok(OrderItem {
            path,
            descending,
            nulls,
        })
    }

    fn unsigned(&mut self, clause: &str) -> Result<u64, SoqlError> {
        let t = self.peek().clone();
        match t.tok {
            Tok::Number(s) => {
                self.at += 1;
                s.parse::<u64>().map_err(|_| {
                    self.error_at(
                        t.pos,
                        &format!("{clause} must be a non-negative integer, found '{s}'"),
                    )
                })
            }
            _ => Err(self.unexpected()),
        }
    }

    fn or_expr(&mut self) -> Result<Expr, SoqlError> {
        let first = self.and_expr()?;
        if !self.is_kw("OR") {
            return Ok(first);
        }
        let mut xs = vec![first];
        while self.eat_kw("OR") {
            xs.push(self.and_expr()?);
        }
        Ok(Expr::Or(xs))
    }

    fn and_expr(&mut self) -> Result<Expr, SoqlError> {
        let first = self.not_expr()?;
        if !self.is_kw("AND") {
            return Ok(first);
        }
        let mut xs = vec![first];
        while self.eat_kw("AND") {
            xs.push(self.not_expr()?);
        }
        Ok(Expr::And(xs))
    }

    fn not_expr(&mut self) -> Result<Expr, SoqlError> {
        let nests = self.is_kw("NOT") || self.peek().tok == Tok::LParen;
        if !nests {
            return self.comparison();
        }
        if self.depth >= MAX_NESTING {
            let pos = self.peek().pos;
            return Err(self.error_at(
                pos,
                &format!("conditions nested more than {MAX_NESTING} levels deep; flatten the WHERE clause"),
            ));
        }
        self.depth += 1;
        let e = if self.eat_kw("NOT") {
            self.not_expr().map(|x| Expr::Not(Box::new(x)))
        } else {
            self.eat(&Tok::LParen);
            self.or_expr()
                .and_then(|e| self.expect(&Tok::RParen).map(|_| e))
        };
        self.depth -= 1;
        e
    }

    fn comparison(&mut self) -> Result<Expr, SoqlError> {
        if let Tok::Ident(w) = self.peek().tok {
            if self.peek_at(1).tok == Tok::LParen && !is_clause_word(w) {
                let pos = self.peek().pos;
                return Err(self.error_at(
                    pos,
                    &format!(
                        "function {w}() is not supported in WHERE by this Salesforce emulator"
                    ),
                ));
            }
        }
        let path = self.path()?;
        let op_tok = self.advance();
        let op = match op_tok.tok {
            Tok::Eq => CompareOp::Eq,
            Tok::Ne => CompareOp::Ne,
            Tok::Lt => CompareOp::Lt,
            Tok::Le => CompareOp::Le,
            Tok::Gt => CompareOp::Gt,
            Tok::Ge => CompareOp::Ge,
            Tok::Ident(w) if w.eq_ignore_ascii_case("LIKE") => CompareOp::Like,
            Tok::Ident(w) if w.eq_ignore_ascii_case("IN") => CompareOp::In,
            Tok::Ident(w) if w.eq_ignore_ascii_case("INCLUDES") => CompareOp::Includes,
            Tok::Ident(w) if w.eq_ignore_ascii_case("EXCLUDES") => CompareOp::Excludes,
            Tok::Ident(w) if w.eq_ignore_ascii_case("NOT") && self.is_kw("IN") => {
                self.at += 1;
                CompareOp::NotIn
            }
            _ => {
                self.at -= usize::from(op_tok.tok != Tok::Eof);
                return Err(self.unexpected());
            }
        };
        let value = match op {
            CompareOp::In | CompareOp::NotIn | CompareOp::Includes | CompareOp::Excludes => {
                Operand::List(self.literal_list()?)
            }
            CompareOp::Like => Operand::Single(self.literal(true)?),
            _ => Operand::Single(self.literal(false)?),
        };
        Ok(Expr::Compare { path, op, value })
    }

    fn literal_list(&mut self) -> Result<Vec<Literal>, SoqlError> {
        self.expect(&Tok::LParen)?;
        if self.is_kw("SELECT") {
            let pos = self.peek().pos;
            return Err(self.error_at(
                pos,
                "semi-join subqueries are not supported by this Salesforce emulator",
            ));
        }
        let mut out = Vec::new();
        loop {
            out.push(self.literal(false)?);
            if !self.eat(&Tok::Comma) {
                break;
            }
        }
        self.expect(&Tok::RParen)?;
        Ok(out)
    }

    fn literal(&mut self, like: bool) -> Result<Literal, SoqlError> {
        let t = self.peek().clone();
        let lit = match t.tok {
            Tok::Str(body) => Literal::Text(decode_string(self.src, &t, body, like)?),
            Tok::Number(s) => parse_number(s)
                .ok_or_else(|| self.error_at(t.pos, &format!("invalid number: '{s}'")))?,
            Tok::Date(s) => Literal::Date(parse_date(s).ok_or_else(|| self.bad_temporal(&t))?),
            Tok::DateTime(s) => {
                Literal::DateTime(parse_datetime(s).ok_or_else(|| self.bad_temporal(&t))?)
            }
            Tok::Time(s) => Literal::Time(parse_time(s).ok_or_else(|| self.bad_temporal(&t))?),
            Tok::Ident(w) => {
                self.at += 1;
                return self.word_literal(w, &t);
            }
            _ => return Err(self.unexpected()),
        };
        self.at += 1;
        Ok(lit)
    }

    fn bad_temporal(&self, t: &Token<'_>) -> SoqlError {
        self.error_at(t.pos, &format!("invalid date/time literal: '{}'", t.text))
    }

    /// `true`, `false`, `null`, or a date function like `TODAY` / `LAST_N_DAYS:7`.
    fn word_literal(&mut self, w: &str, t: &Token<'_>) -> Result<Literal, SoqlError> {
        if w.eq_ignore_ascii_case("null") {
            return Ok(Literal::Null);
        }
        if w.eq_ignore_ascii_case("true") {
            return Ok(Literal::Bool(true));
        }
        if w.eq_ignore_ascii_case("false") {
            return Ok(Literal::Bool(false));
        }
        let upper = w.to_ascii_uppercase();
        if let Some(f) = fixed_date_function(&upper) {
            return Ok(Literal::DateFn(f));
        }
        if let Some(make) = n_date_function(&upper) {
            if !self.eat(&Tok::Colon) {
                return Err(self.unexpected());
            }
            let nt = self.peek().clone();
            let n = match nt.tok {
                Tok::Number(s) => s.parse::<u32>().ok(),
                _ => None,
            };
            let Some(n) = n else {
                return Err(self.unexpected());
            };
            self.at += 1;
            return Ok(Literal::DateFn(make(n)));
        }
        Err(self.error_at(t.pos, &format!("unexpected token: '{w}'")))
    }
}

fn is_clause_word(s: &str) -> bool {
    CLAUSE_WORDS.iter().any(|k| k.eq_ignore_ascii_case(s))
}

fn fixed_date_function(upper: &str) -> Option<DateFunction> {
    use DateFunction::*;
    Some(match upper {
        "YESTERDAY" => Yesterday,
        "TODAY" => Today,
        "TOMORROW" => Tomorrow,
        "LAST_WEEK" => LastWeek,
        "THIS_WEEK" => ThisWeek,
        "NEXT_WEEK" => NextWeek,
        "LAST_MONTH" => LastMonth,
        "THIS_MONTH" => ThisMonth,
        "NEXT_MONTH" => NextMonth,
        "LAST_90_DAYS" => Last90Days,
        "NEXT_90_DAYS" => Next90Days,
        "THIS_QUARTER" => ThisQuarter,
        "LAST_QUARTER" => LastQuarter,
        "NEXT_QUARTER" => NextQuarter,
        "THIS_YEAR" => ThisYear,
        "LAST_YEAR" => LastYear,
        "NEXT_YEAR" => NextYear,
        _ => return None,
    })
}

fn n_date_function(upper: &str) -> Option<fn(u32) -> DateFunction> {
    use DateFunction::*;
    Some(match upper {
        "LAST_N_DAYS" => LastNDays,
        "NEXT_N_DAYS" => NextNDays,
        "N_DAYS_AGO" => NDaysAgo,
        "LAST_N_WEEKS" => LastNWeeks,
        "NEXT_N_WEEKS" => NextNWeeks,
        "N_WEEKS_AGO" => NWeeksAgo,
        "LAST_N_MONTHS" => LastNMonths,
        "NEXT_N_MONTHS" => NextNMonths,
        "N_MONTHS_AGO" => NMonthsAgo,
        "LAST_N_QUARTERS" => LastNQuarters,
        "NEXT_N_QUARTERS" => NextNQuarters,
        "N_QUARTERS_AGO" => NQuartersAgo,
        "LAST_N_YEARS" => LastNYears,
        "NEXT_N_YEARS" => NextNYears,
        "N_YEARS_AGO" => NYearsAgo,
        _ => return None,
    })
}

fn parse_number(s: &str) -> Option<Literal> {
    if s.contains('.') {
        s.parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(Literal::Decimal)
    } else {
        match s.parse::<i64>() {
            Ok(i) => Some(Literal::Int(i)),
            // Beyond i64: still a valid SOQL number, kept as a decimal.
            Err(_) => s
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .map(Literal::Decimal),
        }
    }
}

pub(crate) fn parse_date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

/// `hh:mm:ss` with 0..=9 fractional digits; returns milliseconds since midnight.
fn parse_hms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 8 || b[2] != b':' || b[5] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let (h, m, sec) = (num(0..2)?, num(3..5)?, num(6..8)?);
    if h > 23 || m > 59 || sec > 59 {
        return None;
    }
    let mut ms = 0;
    if b.len() > 8 {
        if b[8] != b'.' {
            return None;
        }
        let frac = &s[9..];
        if frac.is_empty() || frac.len() > 9 || !frac.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        // Only milliseconds are kept; extra digits are truncated.
        let mut digits = frac.bytes().take(3).map(|c| i64::from(c - b'0'));
        for scale in [100, 10, 1] {
            ms += digits.next().unwrap_or(0) * scale;
        }
    }
    Some(((h * 60 + m) * 60 + sec) * 1000 + ms)
}

/// `YYYY-MM-DDThh:mm:ss[.f+](Z|±hh:mm|±hhmm|±hh)`, or no zone (read as UTC).
pub(crate) fn parse_datetime(s: &str) -> Option<i64> {
    let date = parse_date(s.get(..10)?)?;
    if !matches!(s.as_bytes().get(10), Some(b'T' | b't')) {
        return None;
    }
    let rest = &s[11..];
    let zone_at = rest.find(['Z', 'z', '+', '-']).unwrap_or(rest.len());
    let (clock, zone) = rest.split_at(zone_at);
    let ms_of_day = parse_hms(clock)?;
    let offset_minutes: i64 = match zone.as_bytes() {
        [] | [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), tail @ ..] => {
            let digits: Vec<u8> = tail.iter().copied().filter(|c| *c != b':').collect();
            let colon_ok = match tail.len() {
                2 | 4 => !tail.contains(&b':'),
                5 => tail[2] == b':',
                _ => false,
            };
            if !colon_ok || !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let h = i64::from(digits[0] - b'0') * 10 + i64::from(digits[1] - b'0');
            let m = if digits.len() == 4 {
                i64::from(digits[2] - b'0') * 10 + i64::from(digits[3] - b'0')
            } else {
                0
            };
            if h > 18 || m > 59 {
                return None;
            }
            let total = h * 60 + m;
            if *sign == b'-' {
                -total
            } else {
                total
            }
        }
        _ => return None,
    };
    let midnight: NaiveDateTime = date.and_time(NaiveTime::MIN);
    let base = midnight.and_utc().timestamp_millis();
    Some(base + ms_of_day - offset_minutes * 60_000)
}

/// `hh:mm:ss[.fff]Z` → milliseconds since midnight.
fn parse_time(s: &str) -> Option<i32> {
    let clock = s.strip_suffix(['Z', 'z']).unwrap_or(s);
    parse_hms(clock).and_then(|ms| i32::try_from(ms).ok())
}

/// Decodes a string literal body. For LIKE patterns the result stays in pattern
/// form: `\%`, `\_` and a literal backslash (`\\`) remain escaped so the matcher can
/// tell them from wildcards.
fn decode_string(src: &str, t: &Token<'_>, body: &str, like: bool) -> Result<String, SoqlError> {
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some(e) = chars.next() else {
            break;
        };
        match e {
            'n' | 'N' => out.push('\n'),
            'r' | 'R' => out.push('\r'),
            't' | 'T' => out.push('\t'),
            'b' | 'B' => out.push('\u{8}'),
            'f' | 'F' => out.push('\u{c}'),
            '\'' | '"' => out.push(e),
            '\\' if like => out.push_str("\\\\"),
            '\\' => out.push('\\'),
            '%' | '_' if like => {
                out.push('\\');
                out.push(e);
            }
            '%' | '_' => out.push(e),
            'u' | 'U' => {
                let hex: String = chars.clone().take(4).collect();
                let decoded = (hex.len() == 4)
                    .then(|| u32::from_str_radix(&hex, 16).ok())
                    .flatten()
                    .and_then(char::from_u32);
                match decoded {
                    Some(ch) => {
                        for _ in 0..4 {
                            chars.next();
                        }
                        if like && matches!(ch, '%' | '_' | '\\') {
                            out.push('\\');
                        }
                        out.push(ch);
                    }
                    None => return Err(illegal_escape(src, t, body, &format!("\\{e}{hex}"))),
                }
            }
            other => return Err(illegal_escape(src, t, body, &format!("\\{other}"))),
        }
    }
    Ok(out)
}

fn illegal_escape(src: &str, t: &Token<'_>, body: &str, seq: &str) -> SoqlError {
    SoqlError::at(
        ErrorCode::MalformedQuery,
        src,
        t.pos,
        &format!(
            "Invalid string literal '{body}'. Illegal character sequence '{seq}' in string literal."
        ),
    )
}
