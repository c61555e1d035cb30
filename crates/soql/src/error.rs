//! Errors with Salesforce's codes and message layout.

use crate::ast::FieldPath;

/// Salesforce `errorCode` values this crate produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    MalformedQuery,
    InvalidField,
    InvalidType,
    InvalidQueryFilterOperator,
    NumberOutsideValidRange,
}

impl ErrorCode {
    /// The wire form, e.g. `MALFORMED_QUERY`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::MalformedQuery => "MALFORMED_QUERY",
            ErrorCode::InvalidField => "INVALID_FIELD",
            ErrorCode::InvalidType => "INVALID_TYPE",
            ErrorCode::InvalidQueryFilterOperator => "INVALID_QUERY_FILTER_OPERATOR",
            ErrorCode::NumberOutsideValidRange => "NUMBER_OUTSIDE_VALID_RANGE",
        }
    }
}

/// A query error: `code` and `message` go straight into Salesforce's error body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct SoqlError {
    pub code: ErrorCode,
    pub message: String,
}

impl SoqlError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        SoqlError {
            code,
            message: message.into(),
        }
    }

    /// An error pointing at character offset `pos` of `query`, laid out like
    /// Salesforce: the query, a caret line, `ERROR at Row:R:Column:C`, then `detail`.
    ///
    /// Only the line holding the error is echoed, so the caret lines up under it.
    pub fn at(code: ErrorCode, query: &str, pos: usize, detail: &str) -> Self {
        let mut row = 1;
        let mut line_start = 0; // byte index of the current line
        let mut col = 1;
        for (seen, (byte, c)) in query.char_indices().enumerate() {
            if seen == pos {
                break;
            }
            if c == '\n' {
                row += 1;
                line_start = byte + 1;
                col = 1;
            } else {
                col += 1;
            }
        }
        let line_end = query[line_start..]
            .find('\n')
            .map_or(query.len(), |i| line_start + i);
        let line = query[line_start..line_end].trim_end_matches('\r');
        let caret_pad = " ".repeat(col - 1);
        SoqlError {
            code,
            message: format!("\n{line}\n{caret_pad}^\nERROR at Row:{row}:Column:{col}\n{detail}"),
        }
    }

    /// `INVALID_FIELD` for a field the object does not have. The column named is
    /// the last segment of the path for a parent reference (`Account.Foo` names
    /// `Foo` on the object the caller passes).
    pub fn invalid_field(query: &str, path: &FieldPath, object: &str) -> Self {
        let column = path.parts.last().map_or("", String::as_str);
        SoqlError::at(
            ErrorCode::InvalidField,
            query,
            path.pos,
            &format!(
                "No such column '{column}' on entity '{object}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names."
            ),
        )
    }

    /// `INVALID_TYPE` for an object that does not exist; the caret points at the
    /// object name after FROM (found by parsing `query`; at the start if that fails).
    pub fn invalid_type(query: &str, object: &str) -> Self {
        let pos = crate::parse(query).map_or(0, |q| q.from_pos);
        SoqlError::at(
            ErrorCode::InvalidType,
            query,
            pos,
            &format!(
                "sObject type '{object}' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names."
            ),
        )
    }
}
