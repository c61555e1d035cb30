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
pub use datefn::{civil_from_days, days_from_civil};
pub use error::{ErrorCode, SoqlError};
pub use eval::RowAccess;
pub use quote::quote;
pub use value::Value;

/// Longest query text accepted, in characters (Salesforce's limit).
pub const MAX_QUERY_LENGTH: usize = 100_000;

/// The 18-character form of a 15-character Salesforce id: a 3-character suffix
/// encoding which of its characters are upper case (5 per suffix character).
pub fn id18(id15: &str) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
    let b = id15.as_bytes();
    let mut out = id15.to_string();
    for chunk in 0..3 {
        let mut bits = 0usize;
        for j in 0..5 {
            if b.get(chunk * 5 + j).is_some_and(u8::is_ascii_uppercase) {
                bits |= 1 << j;
            }
        }
        out.push(ALPHABET[bits] as char);
    }
    out
}

/// Parses one SOQL statement.
pub fn parse(soql: &str) -> Result<Query, SoqlError> {
    parser::parse(soql)
}
