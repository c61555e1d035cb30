//! The connection string, in either of libpq's forms (`postgresql://...?k=v&...` or
//! `k=v k='v'...`). The Postgres client library knows `sslmode` only as `disable`,
//! `prefer` and `require`, and none of libpq's certificate words; a connection string
//! copied from a managed service's console says `sslmode=verify-full` and names its CA
//! file in `sslrootcert`. So those words are taken out here, for `tls` to act on, and
//! the rest is handed to the client library as it was written.

use std::path::PathBuf;

use tokio_postgres_rustls::MakeRustlsConnect;

use crate::tls;

/// Where the database is and how its connections are made.
#[derive(Clone)]
pub struct Database {
    /// The connection string as the client library read it.
    config: postgres::Config,
    tls: MakeRustlsConnect,
    /// The server's certificate is not checked (`--tls-no-verify`).
    pub unchecked: bool,
}

impl Database {
    /// From the connection string and the TLS options; a connection string or options
    /// that cannot work are refused with why.
    pub fn new(
        conninfo: &str,
        ca_file: Option<PathBuf>,
        no_verify: bool,
    ) -> Result<Database, String> {
        let (url, words) = split(conninfo)?;
        let config = url
            .parse::<postgres::Config>()
            .map_err(|e| format!("the connection string: {}", crate::wire::describe(&e)))?;
        let checking = tls::checking(&words, ca_file, no_verify)?;
        Ok(Database {
            config,
            tls: tls::connector(&checking)?,
            unchecked: checking.roots.is_none(),
        })
    }

    /// A connection, named `application_name` in pg_stat_activity.
    pub fn connect(&self, application_name: &str) -> Result<postgres::Client, String> {
        let mut config = self.config.clone();
        config.application_name(application_name);
        config
            .connect(self.tls.clone())
            .map_err(|e| crate::wire::describe(&e))
    }
}

/// libpq's TLS words of a connection string.
#[derive(Debug, Default, PartialEq)]
pub struct TlsWords {
    /// `sslmode`, as written.
    pub mode: Option<String>,
    /// `sslrootcert`: a CA file, or `system` (the public CAs).
    pub root_cert: Option<String>,
    /// `sslcert` and `sslkey`: a client certificate and its key (PEM files).
    pub client_cert: Option<String>,
    pub client_key: Option<String>,
}

impl TlsWords {
    /// Takes the word if it is one of these; false for any other.
    fn take(&mut self, key: &str, value: &str) -> bool {
        let slot = match key {
            "sslmode" => &mut self.mode,
            "sslrootcert" => &mut self.root_cert,
            "sslcert" => &mut self.client_cert,
            "sslkey" => &mut self.client_key,
            _ => return false,
        };
        *slot = Some(value.to_string());
        true
    }

    /// The `sslmode` the client library is given: whether TLS is used. libpq's two
    /// checking modes use it always; how they check is `tls`'s part.
    fn client_mode(&self) -> Result<Option<&'static str>, String> {
        Ok(match self.mode.as_deref() {
            None => None,
            Some("disable") => Some("disable"),
            // libpq's `allow` tries without TLS first: the nearest the client library
            // has is to use TLS where the server offers it
            Some("allow") | Some("prefer") => Some("prefer"),
            Some("require") | Some("verify-ca") | Some("verify-full") => Some("require"),
            Some(other) => {
                return Err(format!(
                "sslmode={other} in the connection string is not one of disable, allow, prefer, \
                     require, verify-ca, verify-full"
            ))
            }
        })
    }
}

/// The connection string without libpq's TLS words (their `sslmode` replaced by the
/// client library's), and the words.
pub fn split(conninfo: &str) -> Result<(String, TlsWords), String> {
    let mut words = TlsWords::default();
    let trimmed = conninfo.trim();
    let is_uri = trimmed.starts_with("postgres://") || trimmed.starts_with("postgresql://");
    let rest = if is_uri {
        split_uri(trimmed, &mut words)?
    } else {
        split_key_values(trimmed, &mut words)?
    };
    let Some(mode) = words.client_mode()? else {
        return Ok((rest, words));
    };
    let with_mode = if is_uri {
        let joiner = if rest.contains('?') { '&' } else { '?' };
        format!("{rest}{joiner}sslmode={mode}")
    } else {
        format!("{rest} sslmode={mode}").trim_start().to_string()
    };
    Ok((with_mode, words))
}

/// `postgresql://user@host/db?sslmode=verify-full&application_name=x`: the query's TLS
/// words out, the other parameters kept as written.
fn split_uri(uri: &str, words: &mut TlsWords) -> Result<String, String> {
    let Some((base, query)) = uri.split_once('?') else {
        return Ok(uri.to_string());
    };
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if !words.take(&percent_decode(key)?, &percent_decode(value)?) {
            kept.push(pair);
        }
    }
    Ok(if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    })
}

fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    format!(
                        "the connection string has a bad %-escape at {:?}",
                        &text[i..]
                    )
                })?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map_err(|_| "the connection string's %-escapes are not UTF-8".to_string())
}

/// `host=db port=5432 sslmode = verify-full sslrootcert='/etc/ca dir/ca.pem'`: every
/// pair read (values quoted with `'`, `\` escaping), the TLS words out, the others
/// written back quoted.
fn split_key_values(text: &str, words: &mut TlsWords) -> Result<String, String> {
    let mut kept = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(format!(
                "the connection string's \"{key}\" has no \"=value\""
            ));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\'') => break,
                    Some('\\') => value.extend(chars.next()),
                    Some(c) => value.push(c),
                    None => {
                        return Err(format!(
                            "the connection string's \"{key}\" has no closing quote"
                        ))
                    }
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        if !words.take(&key, &value) {
            let quoted = value.replace('\\', "\\\\").replace('\'', "\\'");
            kept.push(format!("{key}='{quoted}'"));
        }
    }
    Ok(kept.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_loses_its_tls_words_and_keeps_the_others() {
        let (rest, words) = split(
            "postgresql://app:p%40ss@db.example.com:5432/sales?sslmode=verify-full\
             &sslrootcert=%2Fetc%2Frds%20ca.pem&application_name=x",
        )
        .unwrap();
        assert_eq!(
            rest,
            "postgresql://app:p%40ss@db.example.com:5432/sales?application_name=x&sslmode=require"
        );
        assert_eq!(words.mode.as_deref(), Some("verify-full"));
        assert_eq!(words.root_cert.as_deref(), Some("/etc/rds ca.pem"));
    }

    #[test]
    fn uri_without_query_or_words_is_unchanged() {
        let plain = "postgres://u@h/d";
        assert_eq!(
            split(plain).unwrap(),
            (plain.to_string(), TlsWords::default())
        );
        let (rest, _) = split("postgres://u@h/d?sslmode=disable").unwrap();
        assert_eq!(rest, "postgres://u@h/d?sslmode=disable");
    }

    #[test]
    fn key_values_are_read_with_quotes_and_spaces() {
        let (rest, words) = split(
            "host=127.0.0.1 port = 5432 dbname='my db' password='it\\'s' \
             sslmode=verify-ca sslrootcert = '/ca dir/ca.pem' sslcert=/c.pem sslkey=/k.pem",
        )
        .unwrap();
        assert_eq!(
            rest,
            "host='127.0.0.1' port='5432' dbname='my db' password='it\\'s' sslmode=require"
        );
        assert_eq!(words.mode.as_deref(), Some("verify-ca"));
        assert_eq!(words.root_cert.as_deref(), Some("/ca dir/ca.pem"));
        assert_eq!(words.client_cert.as_deref(), Some("/c.pem"));
        assert_eq!(words.client_key.as_deref(), Some("/k.pem"));
        // the rewritten string parses as the client library reads it
        let config: postgres::Config = rest.parse().unwrap();
        assert_eq!(config.get_dbname(), Some("my db"));
        assert_eq!(config.get_password(), Some(&b"it's"[..]));
    }

    #[test]
    fn modes_map_to_the_client_librarys() {
        for (given, handed) in [
            ("allow", "prefer"),
            ("prefer", "prefer"),
            ("verify-ca", "require"),
        ] {
            let (rest, _) = split(&format!("host=h sslmode={given}")).unwrap();
            assert_eq!(rest, format!("host='h' sslmode={handed}"));
        }
        let wrong = split("host=h sslmode=verify").unwrap_err();
        assert!(wrong.contains("verify-full"), "{wrong}");
        assert!(split("host=h dbname='open")
            .unwrap_err()
            .contains("closing quote"));
        assert!(split("host").unwrap_err().contains("=value"));
        assert!(split("postgres://h/d?sslrootcert=%zz")
            .unwrap_err()
            .contains("%-escape"));
    }
}
