//! What the engine needs from the database it keeps in sync, and nothing more: run a
//! statement with parameters in a transaction, and load a page file with `COPY`. The
//! extension implements it with SPI inside a background worker; a program beside the
//! database would implement it over a client connection. The engine never sees either.
//!
//! Values cross as a few plain kinds (`Param`, `Cell`): timestamps go as RFC 3339 text
//! (`TS` formats them in SQL), documents as jsonb, so neither side needs the other's
//! type conversions.

use std::path::Path;

use serde_json::Value;

/// `to_char` format of a timestamptz read as RFC 3339 text in UTC (chrono parses it).
pub const TS: &str = "YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"";

/// A statement's parameter, in the order of `$1`, `$2`, ...
#[derive(Debug, Clone, Copy)]
pub enum Param<'a> {
    Text(Option<&'a str>),
    Int(Option<i64>),
    /// For an `integer` parameter (a function whose argument is `integer`).
    Int4(Option<i32>),
    Float(Option<f64>),
    Bool(Option<bool>),
    Bytes(Option<&'a [u8]>),
    TextArray(&'a [String]),
    IntArray(&'a [i64]),
    Json(&'a Value),
}

impl<'a> From<&'a str> for Param<'a> {
    fn from(v: &'a str) -> Self {
        Param::Text(Some(v))
    }
}
impl<'a> From<&'a String> for Param<'a> {
    fn from(v: &'a String) -> Self {
        Param::Text(Some(v))
    }
}
impl<'a> From<Option<&'a str>> for Param<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Param::Text(v)
    }
}
impl From<i64> for Param<'_> {
    fn from(v: i64) -> Self {
        Param::Int(Some(v))
    }
}
impl From<i32> for Param<'_> {
    fn from(v: i32) -> Self {
        Param::Int4(Some(v))
    }
}
impl From<f64> for Param<'_> {
    fn from(v: f64) -> Self {
        Param::Float(Some(v))
    }
}
impl From<Option<f64>> for Param<'_> {
    fn from(v: Option<f64>) -> Self {
        Param::Float(v)
    }
}
impl From<bool> for Param<'_> {
    fn from(v: bool) -> Self {
        Param::Bool(Some(v))
    }
}
impl<'a> From<&'a [u8]> for Param<'a> {
    fn from(v: &'a [u8]) -> Self {
        Param::Bytes(Some(v))
    }
}
impl<'a> From<&'a [String]> for Param<'a> {
    fn from(v: &'a [String]) -> Self {
        Param::TextArray(v)
    }
}
impl<'a> From<&'a Vec<String>> for Param<'a> {
    fn from(v: &'a Vec<String>) -> Self {
        Param::TextArray(v)
    }
}
impl<'a> From<&'a [i64]> for Param<'a> {
    fn from(v: &'a [i64]) -> Self {
        Param::IntArray(v)
    }
}
impl<'a> From<&'a Value> for Param<'a> {
    fn from(v: &'a Value) -> Self {
        Param::Json(v)
    }
}

/// One value of a result row. Types the engine does not read are given as their text.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    Bytes(Vec<u8>),
    TextArray(Vec<String>),
    Json(Value),
}

/// A result row; columns are counted from 0. A getter returns None for NULL and for a
/// value of another kind (the engine's SQL casts what it reads, so that is a bug).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Row(pub Vec<Cell>);

impl Row {
    fn cell(&self, i: usize) -> &Cell {
        self.0.get(i).unwrap_or(&Cell::Null)
    }

    pub fn text(&self, i: usize) -> Option<String> {
        match self.cell(i) {
            Cell::Text(s) => Some(s.clone()),
            _ => None,
        }
    }

    pub fn i64(&self, i: usize) -> Option<i64> {
        match self.cell(i) {
            Cell::Int(n) => Some(*n),
            _ => None,
        }
    }

    pub fn i32(&self, i: usize) -> Option<i32> {
        self.i64(i).and_then(|n| i32::try_from(n).ok())
    }

    pub fn f64(&self, i: usize) -> Option<f64> {
        match self.cell(i) {
            Cell::Float(n) => Some(*n),
            Cell::Int(n) => Some(*n as f64),
            _ => None,
        }
    }

    pub fn bool(&self, i: usize) -> Option<bool> {
        match self.cell(i) {
            Cell::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn bytes(&self, i: usize) -> Option<Vec<u8>> {
        match self.cell(i) {
            Cell::Bytes(b) => Some(b.clone()),
            _ => None,
        }
    }

    pub fn text_array(&self, i: usize) -> Option<Vec<String>> {
        match self.cell(i) {
            Cell::TextArray(v) => Some(v.clone()),
            _ => None,
        }
    }

    pub fn json(&self, i: usize) -> Option<Value> {
        match self.cell(i) {
            Cell::Json(v) => Some(v.clone()),
            _ => None,
        }
    }
}

/// A statement the database refused, or a connection that failed. The transaction it
/// happened in is rolled back.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct DbError {
    pub message: String,
}

impl DbError {
    pub fn new(message: impl Into<String>) -> Self {
        DbError {
            message: message.into(),
        }
    }
}

/// Statements inside one open transaction.
pub trait Session {
    /// Runs a statement and returns its rows (none for a statement without a result).
    fn query(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, DbError>;

    /// `COPY table (columns) FROM` the page file at `file` (CSV as `sync_core::copy_rows`
    /// writes it).
    fn copy_from_file(
        &mut self,
        table: &str,
        columns: &[String],
        file: &Path,
    ) -> Result<(), DbError>;

    /// Runs a statement for its effect.
    fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<(), DbError> {
        self.query(sql, params).map(drop)
    }

    /// The first row of a statement's result, if any.
    fn query_one(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Option<Row>, DbError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }
}

/// The isolation a transaction runs at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    ReadCommitted,
    /// Every statement sees the database as of the first one.
    RepeatableRead,
}

/// The database: transactions, and a guard that keeps a database error from ending the
/// process.
pub trait Database {
    /// Runs `body` in a transaction of its own: committed when it returns Ok, rolled
    /// back when it returns Err or the database raised an error inside it.
    fn transaction(
        &self,
        isolation: Isolation,
        body: &mut dyn FnMut(&mut dyn Session) -> Result<(), DbError>,
    ) -> Result<(), DbError>;

    /// Runs `body`; a database error raised inside it (one that does not come back as a
    /// `Result`: an SPI host's ERROR) aborts the open transaction and is returned as
    /// its message.
    fn guarded(&self, body: &mut dyn FnMut()) -> Result<(), String>;
}

/// A failure inside a transaction: the body's own error, or the database's.
fn run<R, E: From<DbError>>(
    db: &dyn Database,
    isolation: Isolation,
    f: impl FnOnce(&mut dyn Session) -> Result<R, E>,
) -> Result<R, E> {
    let mut f = Some(f);
    let mut out: Option<Result<R, E>> = None;
    let done = db.transaction(isolation, &mut |s| {
        let Some(f) = f.take() else {
            return Err(DbError::new("a transaction body ran twice"));
        };
        let r = f(s);
        let failed = r.is_err();
        out = Some(r);
        if failed {
            Err(DbError::new("rolled back"))
        } else {
            Ok(())
        }
    });
    match (out, done) {
        (Some(Err(e)), _) => Err(e),
        (_, Err(e)) => Err(e.into()),
        (Some(Ok(v)), Ok(())) => Ok(v),
        (None, Ok(())) => Err(DbError::new("a transaction ended without running its body").into()),
    }
}

/// Runs `f` in a transaction of its own (see `Database::transaction`).
pub fn tx<R, E: From<DbError>>(
    db: &dyn Database,
    f: impl FnOnce(&mut dyn Session) -> Result<R, E>,
) -> Result<R, E> {
    run(db, Isolation::ReadCommitted, f)
}

/// Runs `f` in a REPEATABLE READ transaction of its own.
pub fn tx_repeatable_read<R, E: From<DbError>>(
    db: &dyn Database,
    f: impl FnOnce(&mut dyn Session) -> Result<R, E>,
) -> Result<R, E> {
    run(db, Isolation::RepeatableRead, f)
}

/// Runs `f`, turning a database error raised inside it into its message (see
/// `Database::guarded`).
pub fn guarded<R>(db: &dyn Database, f: impl FnOnce() -> R) -> Result<R, String> {
    let mut f = Some(f);
    let mut out = None;
    db.guarded(&mut || {
        if let Some(f) = f.take() {
            out = Some(f());
        }
    })?;
    out.ok_or_else(|| "a guarded body did not run".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    /// A database that records statements; a transaction commits into `committed`.
    #[derive(Default)]
    struct Recorder {
        committed: RefCell<Vec<String>>,
    }

    struct Open(Vec<String>);

    impl Session for Open {
        fn query(&mut self, sql: &str, _: &[Param<'_>]) -> Result<Vec<Row>, DbError> {
            if sql == "fail" {
                return Err(DbError::new("refused"));
            }
            self.0.push(sql.to_string());
            Ok(vec![Row(vec![Cell::Int(1)])])
        }
        fn copy_from_file(&mut self, _: &str, _: &[String], _: &Path) -> Result<(), DbError> {
            Ok(())
        }
    }

    impl Database for Recorder {
        fn transaction(
            &self,
            _: Isolation,
            body: &mut dyn FnMut(&mut dyn Session) -> Result<(), DbError>,
        ) -> Result<(), DbError> {
            let mut s = Open(Vec::new());
            body(&mut s)?;
            self.committed.borrow_mut().extend(s.0);
            Ok(())
        }
        fn guarded(&self, body: &mut dyn FnMut()) -> Result<(), String> {
            body();
            Ok(())
        }
    }

    #[test]
    fn a_body_that_fails_commits_nothing() {
        let db = Recorder::default();
        let r: Result<(), DbError> = tx(&db, |s| {
            s.execute("a", &[])?;
            s.execute("fail", &[])
        });
        assert_eq!(r.unwrap_err().message, "refused");
        assert!(db.committed.borrow().is_empty());
        let n: Result<Option<i64>, DbError> =
            tx(&db, |s| Ok(s.query_one("b", &[])?.and_then(|r| r.i64(0))));
        assert_eq!(n.unwrap(), Some(1));
        assert_eq!(*db.committed.borrow(), vec!["b".to_string()]);
    }

    #[test]
    fn getters_read_their_kind_only() {
        let r = Row(vec![Cell::Int(5), Cell::Null, Cell::Text("x".into())]);
        assert_eq!(r.i64(0), Some(5));
        assert_eq!(r.f64(0), Some(5.0));
        assert_eq!(r.text(0), None);
        assert_eq!(r.text(1), None);
        assert_eq!(r.text(2).as_deref(), Some("x"));
        assert_eq!(r.bool(9), None);
    }
}
