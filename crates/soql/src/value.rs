//! Borrowed row values handed to the evaluator.

/// One field's value in a row, borrowed from the caller's storage.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Double(f64),
    Text(&'a str),
    /// Days since 1970-01-01.
    Date(i32),
    /// Milliseconds since the Unix epoch, UTC.
    DateTime(i64),
    /// Milliseconds since midnight.
    Time(i32),
}
