//! Tokenizer. Keywords are not distinguished here: they are identifiers the parser
//! compares case-insensitively, because most SOQL keywords are also valid names.

use crate::error::{ErrorCode, SoqlError};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok<'q> {
    /// Identifier or keyword, as written.
    Ident(&'q str),
    /// String literal: the text between the quotes, escapes not yet decoded
    /// (decoding depends on whether the string is a LIKE pattern).
    Str(&'q str),
    /// Number as written, with an optional leading sign.
    Number(&'q str),
    /// `YYYY-MM-DD`.
    Date(&'q str),
    /// `YYYY-MM-DDThh:mm:ss[.fff][Z|±hh[:]mm]`.
    DateTime(&'q str),
    /// `hh:mm:ss[.fff]Z`.
    Time(&'q str),
    LParen,
    RParen,
    Comma,
    Dot,
    Colon,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Eof,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token<'q> {
    pub tok: Tok<'q>,
    /// Character offset of the first character.
    pub pos: usize,
    /// The token's text in the query (empty at end of input).
    pub text: &'q str,
}

struct Lexer<'q> {
    src: &'q str,
    bytes: &'q [u8],
    /// Byte index of the next character.
    i: usize,
    /// Character offset matching `i`.
    chars: usize,
}

impl<'q> Lexer<'q> {
    fn peek(&self, ahead: usize) -> u8 {
        self.bytes.get(self.i + ahead).copied().unwrap_or(0)
    }

    /// Advances over `n` ASCII bytes.
    fn bump_ascii(&mut self, n: usize) {
        self.i += n;
        self.chars += n;
    }

    fn digits_at(&self, from: usize, n: usize) -> bool {
        (from..from + n).all(|k| self.bytes.get(k).is_some_and(u8::is_ascii_digit))
    }

    fn skip_whitespace(&mut self) {
        while let Some(c) = self.src[self.i..].chars().next() {
            if !c.is_whitespace() {
                break;
            }
            self.i += c.len_utf8();
            self.chars += 1;
        }
    }

    fn next_token(&mut self) -> Result<Token<'q>, SoqlError> {
        self.skip_whitespace();
        let start = self.i;
        let pos = self.chars;
        let c = self.peek(0);
        let tok = if self.i >= self.bytes.len() {
            Tok::Eof
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let mut n = 1;
            while self.peek(n).is_ascii_alphanumeric() || self.peek(n) == b'_' {
                n += 1;
            }
            self.bump_ascii(n);
            Tok::Ident(&self.src[start..self.i])
        } else if c == b'\'' {
            return self.string(start, pos);
        } else if c.is_ascii_digit()
            || ((c == b'-' || c == b'+')
                && (self.peek(1).is_ascii_digit()
                    || (self.peek(1) == b'.' && self.peek(2).is_ascii_digit())))
            || (c == b'.' && self.peek(1).is_ascii_digit())
        {
            self.number_or_temporal()
        } else {
            let (tok, n) = match (c, self.peek(1)) {
                (b'(', _) => (Tok::LParen, 1),
                (b')', _) => (Tok::RParen, 1),
                (b',', _) => (Tok::Comma, 1),
                (b'.', _) => (Tok::Dot, 1),
                (b':', _) => (Tok::Colon, 1),
                (b'=', _) => (Tok::Eq, 1),
                (b'!', b'=') => (Tok::Ne, 2),
                (b'<', b'>') => (Tok::Ne, 2),
                (b'<', b'=') => (Tok::Le, 2),
                (b'<', _) => (Tok::Lt, 1),
                (b'>', b'=') => (Tok::Ge, 2),
                (b'>', _) => (Tok::Gt, 1),
                _ => {
                    let ch = self.src[start..].chars().next().unwrap_or('?');
                    return Err(SoqlError::at(
                        ErrorCode::MalformedQuery,
                        self.src,
                        pos,
                        &format!("unexpected token: '{ch}'"),
                    ));
                }
            };
            self.bump_ascii(n);
            tok
        };
        Ok(Token {
            tok,
            pos,
            text: &self.src[start..self.i],
        })
    }

    fn string(&mut self, start: usize, pos: usize) -> Result<Token<'q>, SoqlError> {
        self.bump_ascii(1);
        let body_start = self.i;
        loop {
            let Some(c) = self.src[self.i..].chars().next() else {
                return Err(SoqlError::at(
                    ErrorCode::MalformedQuery,
                    self.src,
                    pos,
                    "unterminated string literal: missing closing quote (')",
                ));
            };
            match c {
                '\'' => {
                    let body = &self.src[body_start..self.i];
                    self.bump_ascii(1);
                    return Ok(Token {
                        tok: Tok::Str(body),
                        pos,
                        text: &self.src[start..self.i],
                    });
                }
                '\\' => {
                    self.bump_ascii(1);
                    if let Some(e) = self.src[self.i..].chars().next() {
                        self.i += e.len_utf8();
                        self.chars += 1;
                    }
                }
                _ => {
                    self.i += c.len_utf8();
                    self.chars += 1;
                }
            }
        }
    }

    /// Numbers, dates, datetimes and times all start with a digit (or sign); the
    /// shape of what follows decides which.
    fn number_or_temporal(&mut self) -> Tok<'q> {
        let start = self.i;
        let i = self.i;
        if self.digits_at(i, 4)
            && self.bytes.get(i + 4) == Some(&b'-')
            && self.digits_at(i + 5, 2)
            && self.bytes.get(i + 7) == Some(&b'-')
            && self.digits_at(i + 8, 2)
        {
            let mut n = 10;
            if matches!(self.bytes.get(i + 10), Some(b'T' | b't')) {
                n += 1;
                while let Some(&b) = self.bytes.get(i + n) {
                    if b.is_ascii_digit() || matches!(b, b':' | b'.' | b'+' | b'-' | b'Z' | b'z') {
                        n += 1;
                    } else {
                        break;
                    }
                }
                self.bump_ascii(n);
                return Tok::DateTime(&self.src[start..self.i]);
            }
            self.bump_ascii(n);
            return Tok::Date(&self.src[start..self.i]);
        }
        if self.digits_at(i, 2)
            && self.bytes.get(i + 2) == Some(&b':')
            && self.digits_at(i + 3, 2)
            && self.bytes.get(i + 5) == Some(&b':')
        {
            let mut n = 6;
            while let Some(&b) = self.bytes.get(i + n) {
                if b.is_ascii_digit() || matches!(b, b':' | b'.' | b'Z' | b'z') {
                    n += 1;
                } else {
                    break;
                }
            }
            self.bump_ascii(n);
            return Tok::Time(&self.src[start..self.i]);
        }
        let mut n = 0;
        if matches!(self.peek(0), b'-' | b'+') {
            n += 1;
        }
        while self.peek(n).is_ascii_digit() {
            n += 1;
        }
        if self.peek(n) == b'.' && self.peek(n + 1).is_ascii_digit() {
            n += 1;
            while self.peek(n).is_ascii_digit() {
                n += 1;
            }
        }
        self.bump_ascii(n);
        Tok::Number(&self.src[start..self.i])
    }
}

/// Splits `src` into tokens, ending with `Tok::Eof`.
pub(crate) fn tokenize(src: &str) -> Result<Vec<Token<'_>>, SoqlError> {
    let mut lx = Lexer {
        src,
        bytes: src.as_bytes(),
        i: 0,
        chars: 0,
    };
    let mut out = Vec::new();
    loop {
        let t = lx.next_token()?;
        let eof = t.tok == Tok::Eof;
        out.push(t);
        if eof {
            return Ok(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<Tok<'_>> {
        tokenize(src).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn punctuation_and_operators() {
        assert_eq!(
            kinds("( ) , . : = != <> < <= > >="),
            vec![
                Tok::LParen,
                Tok::RParen,
                Tok::Comma,
                Tok::Dot,
                Tok::Colon,
                Tok::Eq,
                Tok::Ne,
                Tok::Ne,
                Tok::Lt,
                Tok::Le,
                Tok::Gt,
                Tok::Ge,
                Tok::Eof
            ]
        );
    }

    #[test]
    fn identifiers_keep_case_and_positions_count_chars() {
        let toks = tokenize("SELECT  Account.Name\n\tfrom Contact__c").unwrap();
        let got: Vec<(Tok<'_>, usize)> = toks.into_iter().map(|t| (t.tok, t.pos)).collect();
        assert_eq!(
            got,
            vec![
                (Tok::Ident("SELECT"), 0),
                (Tok::Ident("Account"), 8),
                (Tok::Dot, 15),
                (Tok::Ident("Name"), 16),
                (Tok::Ident("from"), 22),
                (Tok::Ident("Contact__c"), 27),
                (Tok::Eof, 37),
            ]
        );
        // Offsets are in characters, not bytes.
        let toks = tokenize("'é' x").unwrap();
        assert_eq!(toks[1].pos, 4);
    }

    #[test]
    fn strings_keep_raw_escapes() {
        assert_eq!(
            kinds(r"'a\'b' 'c\\' ''"),
            vec![Tok::Str(r"a\'b"), Tok::Str(r"c\\"), Tok::Str(""), Tok::Eof]
        );
    }

    #[test]
    fn unterminated_string_is_an_error() {
        let e = tokenize("x = 'abc").unwrap_err();
        assert_eq!(e.code, ErrorCode::MalformedQuery);
        assert!(e.message.contains("Column:5"), "{}", e.message);
    }

    #[test]
    fn numbers_dates_datetimes_times() {
        assert_eq!(
            kinds("42 -7 3.25 +1 -.5 2024-01-31 2024-01-31T10:20:30Z 2024-01-31T10:20:30.123456-05:00 10:20:30.000Z"),
            vec![
                Tok::Number("42"),
                Tok::Number("-7"),
                Tok::Number("3.25"),
                Tok::Number("+1"),
                Tok::Number("-.5"),
                Tok::Date("2024-01-31"),
                Tok::DateTime("2024-01-31T10:20:30Z"),
                Tok::DateTime("2024-01-31T10:20:30.123456-05:00"),
                Tok::Time("10:20:30.000Z"),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn date_function_with_colon() {
        assert_eq!(
            kinds("LAST_N_DAYS:30"),
            vec![
                Tok::Ident("LAST_N_DAYS"),
                Tok::Colon,
                Tok::Number("30"),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn stray_character_is_reported_with_caret() {
        let e = tokenize("SELECT Id # x").unwrap_err();
        assert_eq!(
            e.message,
            "\nSELECT Id # x\n          ^\nERROR at Row:1:Column:11\nunexpected token: '#'"
        );
    }
}
