//! The engine's `Session` on SPI, inside whatever transaction is open (a backend's, or
//! one a worker started: `worker::spi`): each statement in an SPI connection of its own,
//! so its memory is freed once its rows are read; results as the engine's plain cells.

use std::path::Path;

use pgrx::spi::SpiTupleTable;
use pgrx::{datum::DatumWithOid, pg_sys, JsonB, PgBuiltInOids};
use sync_engine::db::{Cell, DbError, Param, Row, Session};

/// Statements through SPI in the open transaction.
pub struct SpiSession;

fn spi_error(e: pgrx::spi::Error) -> DbError {
    DbError::new(e.to_string())
}

fn datum(p: &Param<'_>) -> DatumWithOid<'static> {
    match *p {
        Param::Text(v) => v.map(str::to_string).into(),
        Param::Int(v) => v.into(),
        Param::Int4(v) => v.into(),
        Param::Float(v) => v.into(),
        Param::Bool(v) => v.into(),
        Param::Bytes(v) => v.map(<[u8]>::to_vec).into(),
        Param::TextArray(v) => v.to_vec().into(),
        Param::IntArray(v) => v.to_vec().into(),
        Param::Json(v) => JsonB(v.clone()).into(),
    }
}

fn get<T: pgrx::IntoDatum + pgrx::FromDatum>(
    row: &pgrx::spi::SpiHeapTupleData,
    i: usize,
) -> Result<Option<T>, DbError> {
    row.get::<T>(i).map_err(spi_error)
}

/// A result value as the engine reads it, by the column's type. The engine's SQL casts
/// anything else to one of these.
fn cell(row: &pgrx::spi::SpiHeapTupleData, i: usize, oid: pg_sys::Oid) -> Result<Cell, DbError> {
    use PgBuiltInOids as T;
    let unread = || {
        DbError::new(format!(
            "result column {i} has a type (oid {oid:?}) the engine does not read; cast it"
        ))
    };
    let Ok(builtin) = PgBuiltInOids::from_u32(oid.to_u32()) else {
        return Err(unread());
    };
    let some = |v: Option<Cell>| v.unwrap_or(Cell::Null);
    Ok(match builtin {
        T::BOOLOID => some(get::<bool>(row, i)?.map(Cell::Bool)),
        T::INT2OID => some(get::<i16>(row, i)?.map(|n| Cell::Int(n.into()))),
        T::INT4OID => some(get::<i32>(row, i)?.map(|n| Cell::Int(n.into()))),
        T::INT8OID => some(get::<i64>(row, i)?.map(Cell::Int)),
        T::FLOAT4OID => some(get::<f32>(row, i)?.map(|n| Cell::Float(n.into()))),
        T::FLOAT8OID => some(get::<f64>(row, i)?.map(Cell::Float)),
        T::TEXTOID | T::VARCHAROID | T::BPCHAROID => some(get::<String>(row, i)?.map(Cell::Text)),
        T::BYTEAOID => some(get::<Vec<u8>>(row, i)?.map(Cell::Bytes)),
        T::TEXTARRAYOID => some(get::<Vec<String>>(row, i)?.map(Cell::TextArray)),
        T::JSONBOID => some(get::<JsonB>(row, i)?.map(|j| Cell::Json(j.0))),
        T::VOIDOID => Cell::Null,
        _ => return Err(unread()),
    })
}

fn rows(table: SpiTupleTable) -> Result<Vec<Row>, DbError> {
    // a statement without a result (an UPDATE without RETURNING) has no tuple table
    let Ok(n) = table.columns() else {
        return Ok(Vec::new());
    };
    if table.is_empty() {
        return Ok(Vec::new());
    }
    let mut types = Vec::with_capacity(n);
    for i in 1..=n {
        types.push(table.column_type_oid(i).map_err(spi_error)?.value());
    }
    let mut out = Vec::with_capacity(table.len());
    for row in table {
        let mut cells = Vec::with_capacity(n);
        for (i, oid) in types.iter().enumerate() {
            cells.push(cell(&row, i + 1, *oid)?);
        }
        out.push(Row(cells));
    }
    Ok(out)
}

impl Session for SpiSession {
    fn query(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, DbError> {
        let args: Vec<DatumWithOid> = params.iter().map(datum).collect();
        pgrx::Spi::connect_mut(|c| rows(c.update(sql, None, &args).map_err(spi_error)?))
    }

    fn copy_from_file(
        &mut self,
        table: &str,
        columns: &[String],
        file: &Path,
    ) -> Result<(), DbError> {
        let sql = sync_core::sql::copy_page(table, columns, &file.to_string_lossy());
        self.execute(&sql, &[])
    }
}
