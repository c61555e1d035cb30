//! A plain-text HTTP endpoint for scrapers and health checks (`/metrics`, `/healthz`),
//! served from a thread of its own so that a scrape never waits for a sync's step nor a
//! step for a scrape. Each host decides what a path answers: sequin-sf reads the
//! database over a connection of the endpoint's own; the extension's database worker
//! answers from what its main loop last read (a thread cannot use SPI).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

/// A path's answer: the HTTP status line's tail (`200 OK`) and the body.
pub type Answer = (&'static str, String);

/// The address a listen setting names: `host:port`, or a bare port (`9187`, `:9187`)
/// on loopback, so that turning the endpoint on never opens it to the network unless
/// an address says so.
pub fn listen_address(setting: &str) -> Result<SocketAddr, String> {
    let s = setting.trim();
    let port_only = s.strip_prefix(':').unwrap_or(s);
    if let Ok(port) = port_only.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.parse::<SocketAddr>().map_err(|_| {
        format!("{setting:?} is not an address: give host:port (127.0.0.1:9187) or a port (9187, on loopback)")
    })
}

/// Binds `address` and answers each request with `answer(path)` from a new thread.
pub fn serve(
    address: SocketAddr,
    mut answer: impl FnMut(&str) -> Answer + Send + 'static,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(address)?;
    let bound = listener.local_addr()?;
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let _ = reply(stream, &mut answer);
        }
    });
    Ok(bound)
}

fn reply(stream: TcpStream, answer: &mut impl FnMut(&str) -> Answer) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("");
    let (status, body) = answer(path);
    let mut out = stream;
    write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// The answer to a path no endpoint serves.
pub fn not_found() -> Answer {
    (
        "404 Not Found",
        "not found: try /healthz or /metrics\n".to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn a_bare_port_listens_on_loopback() {
        assert_eq!(
            listen_address("9187").unwrap().to_string(),
            "127.0.0.1:9187"
        );
        assert_eq!(
            listen_address(":9187").unwrap().to_string(),
            "127.0.0.1:9187"
        );
        assert_eq!(
            listen_address("0.0.0.0:80").unwrap().to_string(),
            "0.0.0.0:80"
        );
        assert!(listen_address("localhost").is_err());
    }

    #[test]
    fn paths_get_their_answers() {
        let addr = serve(listen_address("0").unwrap(), |path| match path {
            "/metrics" => ("200 OK", "m 1\n".into()),
            _ => not_found(),
        })
        .unwrap();
        let get = |path: &str| {
            let mut s = TcpStream::connect(addr).unwrap();
            write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        };
        let m = get("/metrics");
        assert!(
            m.starts_with("HTTP/1.1 200 OK") && m.ends_with("\r\n\r\nm 1\n"),
            "{m}"
        );
        assert!(get("/other").starts_with("HTTP/1.1 404"));
    }
}
