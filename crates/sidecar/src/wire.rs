//! The engine's database over a client connection (the `postgres` crate): statements
//! sent with their parameters' types given, as SPI takes them, so the same SQL
//! means the same on both hosts; `COPY ... FROM STDIN` streams a page file.

use std::cell::RefCell;
use std::error::Error;
use std::path::Path;

use bytes::BytesMut;
use postgres::types::{to_sql_checked, FromSql, IsNull, ToSql, Type};
use postgres::{Client, IsolationLevel, Transaction};
use sync_engine::db::{Cell, Database, DbError, Isolation, Param, Row, Session};

/// One connection, used by one thread: the engine runs its steps one at a time.
pub struct Wire {
    client: RefCell<Client>,
}

impl Wire {
    pub fn new(client: Client) -> Self {
        Wire {
            client: RefCell::new(client),
        }
    }

    /// The connection was lost (the server restarted, a failover): connect again.
    pub fn is_closed(&self) -> bool {
        self.client.borrow().is_closed()
    }
}

/// An error with the errors under it ("error performing TLS handshake: invalid peer
/// certificate: UnknownIssuer"): the client's own text often leaves out the cause.
pub fn describe(e: &postgres::Error) -> String {
    let mut text = e.to_string();
    let mut cause = Error::source(e);
    while let Some(c) = cause {
        text.push_str(&format!(": {c}"));
        cause = c.source();
    }
    text
}

fn db_error(e: postgres::Error) -> DbError {
    match e.as_db_error() {
        Some(d) => match d.detail() {
            Some(detail) => DbError::new(format!("{} ({detail})", d.message())),
            None => DbError::new(d.message()),
        },
        None => DbError::new(describe(&e)),
    }
}

/// The type a parameter is prepared with (what SPI is given for it).
fn param_type(p: &Param<'_>) -> Type {
    match p {
        Param::Text(_) => Type::TEXT,
        Param::Int(_) => Type::INT8,
        Param::Int4(_) => Type::INT4,
        Param::Float(_) => Type::FLOAT8,
        Param::Bool(_) => Type::BOOL,
        Param::Bytes(_) => Type::BYTEA,
        Param::TextArray(_) => Type::TEXT_ARRAY,
        Param::IntArray(_) => Type::INT8_ARRAY,
        Param::Json(_) => Type::JSONB,
    }
}

/// A parameter encoded as the type `param_type` prepared it with.
#[derive(Debug)]
struct Encoded<'a>(Param<'a>);

impl ToSql for Encoded<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        match self.0 {
            Param::Text(v) => v.to_sql(ty, out),
            Param::Int(v) => v.to_sql(ty, out),
            Param::Int4(v) => v.to_sql(ty, out),
            Param::Float(v) => v.to_sql(ty, out),
            Param::Bool(v) => v.to_sql(ty, out),
            Param::Bytes(v) => v.to_sql(ty, out),
            Param::TextArray(v) => v.to_sql(ty, out),
            Param::IntArray(v) => v.to_sql(ty, out),
            Param::Json(v) => postgres::types::Json(v).to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// Column `i` of `row` as `T`, made a cell by `f` (NULL: `Cell::Null`).
fn take<'a, T: FromSql<'a>>(
    row: &'a postgres::Row,
    i: usize,
    f: impl FnOnce(T) -> Cell,
) -> Result<Cell, DbError> {
    let value = row
        .try_get::<_, Option<T>>(i)
        .map_err(|e| DbError::new(format!("result column {}: {e}", i + 1)))?;
    Ok(value.map_or(Cell::Null, f))
}

/// A result value as the engine reads it, by the column's type (as `crate::spi` in the
/// extension reads it).
fn cell(row: &postgres::Row, i: usize) -> Result<Cell, DbError> {
    let ty = row.columns()[i].type_().clone();
    match ty {
        Type::BOOL => take(row, i, Cell::Bool),
        Type::INT2 => take(row, i, |n: i16| Cell::Int(n.into())),
        Type::INT4 => take(row, i, |n: i32| Cell::Int(n.into())),
        Type::INT8 => take(row, i, Cell::Int),
        Type::FLOAT4 => take(row, i, |n: f32| Cell::Float(n.into())),
        Type::FLOAT8 => take(row, i, Cell::Float),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => take(row, i, Cell::Text),
        Type::BYTEA => take(row, i, Cell::Bytes),
        Type::TEXT_ARRAY => take(row, i, Cell::TextArray),
        Type::JSONB | Type::JSON => take(row, i, Cell::Json),
        Type::VOID => Ok(Cell::Null),
        other => Err(DbError::new(format!(
            "result column {} has a type ({other}) the engine does not read; cast it",
            i + 1
        ))),
    }
}

/// The engine's Session over a transaction of the connection (also for work that is
/// not the engine's, such as installing the objects).
pub struct WireSession<'a, 'b> {
    tx: &'a mut Transaction<'b>,
}

impl<'a, 'b> WireSession<'a, 'b> {
    pub fn new(tx: &'a mut Transaction<'b>) -> Self {
        WireSession { tx }
    }
}

impl Session for WireSession<'_, '_> {
    fn query(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, DbError> {
        // parsed, bound and run in one round trip, as an unnamed statement: nothing to
        // prepare first nor close after
        let values: Vec<Encoded> = params.iter().map(|p| Encoded(*p)).collect();
        let typed: Vec<(&(dyn ToSql + Sync), Type)> =
            values.iter().map(|v| (v as _, param_type(&v.0))).collect();
        let rows = self.tx.query_typed(sql, &typed).map_err(db_error)?;
        rows.iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| cell(r, i))
                    .collect::<Result<Vec<_>, _>>()
                    .map(Row)
            })
            .collect()
    }

    fn copy_from_file(
        &mut self,
        table: &str,
        columns: &[String],
        file: &Path,
    ) -> Result<(), DbError> {
        let io = |e: std::io::Error| DbError::new(format!("{}: {e}", file.display()));
        let mut input = std::fs::File::open(file).map_err(io)?;
        let sql = sync_core::sql::copy_page_from_stdin(table, columns);
        let mut writer = self.tx.copy_in(&sql).map_err(db_error)?;
        std::io::copy(&mut input, &mut writer).map_err(io)?;
        writer.finish().map_err(db_error).map(drop)
    }
}

impl Database for Wire {
    fn transaction(
        &self,
        isolation: Isolation,
        body: &mut dyn FnMut(&mut dyn Session) -> Result<(), DbError>,
    ) -> Result<(), DbError> {
        let mut client = self.client.borrow_mut();
        let level = match isolation {
            Isolation::ReadCommitted => IsolationLevel::ReadCommitted,
            Isolation::RepeatableRead => IsolationLevel::RepeatableRead,
        };
        let mut tx = client
            .build_transaction()
            .isolation_level(level)
            .start()
            .map_err(db_error)?;
        match body(&mut WireSession::new(&mut tx)) {
            Ok(()) => tx.commit().map_err(db_error),
            Err(e) => {
                // a rollback that fails leaves the connection closed: reconnected later
                let _ = tx.rollback();
                Err(e)
            }
        }
    }

    /// Errors come back as results over the wire: nothing unwinds.
    fn guarded(&self, body: &mut dyn FnMut()) -> Result<(), String> {
        body();
        Ok(())
    }
}
