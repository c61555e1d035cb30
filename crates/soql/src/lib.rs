//! SOQL: parse a query, bind its field references to caller-chosen handles, then
//! filter and order rows without allocating per row.
//!
//! Flow: [`parse`] → [`Query`] → [`Query::bind`] (or [`Query::bind_typed`]) →
//! [`BoundQuery`] → [`BoundQuery::matches`] / [`BoundQuery::compare`].

mod ast;
mod bind;
mod datefn;
mod error;
mod eval;
mod lexer;
mod parser;
mod quote;
mod text;
mod value;

pub use ast::{
    CompareOp, DateFunction, Expr, FieldPath, FieldsKind, Literal, NullsOrder, Operand, OrderItem,
    Query, SelectItem,
};
pub use bind::{BoundQuery, FieldType};
pub use error::{ErrorCode, SoqlError};
pub use eval::RowAccess;
pub use quote::quote;
pub use value::Value;

/// Longest query text accepted, in characters (Salesforce's limit).
pub const MAX_QUERY_LENGTH: usize = 100_000;

/// Parses one SOQL statement.
pub fn parse(soql: &str) -> Result<Query, SoqlError> {
    parser::parse(soql)
}
