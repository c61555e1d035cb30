//! Emulator benchmark: prints how fast the emulator generates 1,000,000 Contacts, how
//! much memory it then holds, and how fast it serves them through `/query` pages of
//! 2000 and through Bulk API 2.0 CSV, over real HTTP on loopback. Prints figures and
//! their ratio to the targets; asserts nothing.
//!
//! Runs the release `sf-emulator` binary found next to this one, as a separate
//! process, so its memory is measured alone. `--contacts N` changes the size.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

const TARGET_GENERATE_S: f64 = 15.0;
const TARGET_RSS_GIB: f64 = 2.0;
const TARGET_QUERY_RPS: f64 = 150_000.0;
const TARGET_BULK_RPS: f64 = 300_000.0;

/// A minimal keep-alive HTTP/1.1 client: the emulator always answers with a
/// Content-Length, and a hand-rolled client keeps client overhead out of the figures.
struct Http {
    reader: BufReader<TcpStream>,
    host: String,
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Http {
    fn connect(addr: &str) -> Result<Http, String> {
        let s = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
        let _ = s.set_nodelay(true);
        Ok(Http {
            reader: BufReader::with_capacity(1 << 20, s),
            host: addr.to_string(),
        })
    }

    fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Reply, String> {
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n",
            self.host,
            body.len()
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        let stream = self.reader.get_mut();
        stream
            .write_all(req.as_bytes())
            .map_err(|e| e.to_string())?;
        stream.write_all(body).map_err(|e| e.to_string())?;
        self.read_reply()
    }

    fn read_reply(&mut self) -> Result<Reply, String> {
        let mut line = String::new();
        self.reader
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line {line:?}"))?;
        let mut headers = Vec::new();
        let mut length = 0usize;
        loop {
            line.clear();
            self.reader
                .read_line(&mut line)
                .map_err(|e| e.to_string())?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v
                        .trim()
                        .parse()
                        .map_err(|_| "bad content-length".to_string())?;
                }
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        let mut body = vec![0u8; length];
        self.reader
            .read_exact(&mut body)
            .map_err(|e| e.to_string())?;
        Ok(Reply {
            status,
            headers,
            body,
        })
    }
}

struct Emulator {
    child: Child,
    addr: String,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_emulator() -> Result<Emulator, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let bin = exe.with_file_name("sf-emulator");
    let mut child = Command::new(&bin)
        .args(["--listen", "127.0.0.1:0", "--api-limit", "100000000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| {
            format!(
                "cannot start {}: {e} (build it: cargo build --release -p sf-emulator)",
                bin.display()
            )
        })?;
    let out = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(out).lines();
    let first = lines
        .next()
        .ok_or("emulator exited before listening")?
        .map_err(|e| e.to_string())?;
    let url = first
        .strip_prefix("listening on http://")
        .ok_or_else(|| format!("unexpected first line {first:?}"))?;
    Ok(Emulator {
        child,
        addr: url.trim().to_string(),
    })
}

fn rss_kib(pid: u32, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn json_field<'a>(body: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("\"{key}\":");
    let start = body.find(&pat)? + pat.len();
    let rest = body[start..].trim_start();
    if let Some(r) = rest.strip_prefix('"') {
        return r.split('"').next();
    }
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    Some(rest[..end].trim())
}

fn generate(http: &mut Http, object: &str, count: usize) -> Result<f64, String> {
    let body = format!("{{\"object\":\"{object}\",\"count\":{count},\"seed\":42}}");
    let t = Instant::now();
    let r = http.send(
        "POST",
        "/__emulator/generate",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )?;
    if r.status != 200 {
        return Err(format!("generate {object}: {} {}", r.status, r.text()));
    }
    Ok(t.elapsed().as_secs_f64())
}

fn token(http: &mut Http) -> Result<String, String> {
    let form = "grant_type=refresh_token&client_id=sequin-emulator&client_secret=emulator-secret&refresh_token=emulator-refresh-token";
    let r = http.send(
        "POST",
        "/services/oauth2/token",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        form.as_bytes(),
    )?;
    json_field(&r.text(), "access_token")
        .map(str::to_string)
        .ok_or_else(|| format!("no token: {}", r.text()))
}

fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            b' ' => "+".to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Follows a query through all its pages; returns (records, bytes, seconds).
fn run_query(http: &mut Http, auth: &str, soql: &str) -> Result<(usize, usize, f64), String> {
    let t = Instant::now();
    let mut path = format!("/services/data/v61.0/query?q={}", encode(soql));
    let mut records = 0usize;
    let mut bytes = 0usize;
    let mut total = None;
    loop {
        let r = http.send("GET", &path, &[("Authorization", auth)], b"")?;
        if r.status != 200 {
            return Err(format!("query page: {} {}", r.status, r.text()));
        }
        bytes += r.body.len();
        // The page header is at the front; no need to parse 2000 records to count them.
        let head = String::from_utf8_lossy(&r.body[..r.body.len().min(512)]).into_owned();
        let size: usize = json_field(&head, "totalSize")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        total.get_or_insert(size);
        let next = json_field(&head, "nextRecordsUrl").map(str::to_string);
        let remaining = total.unwrap_or(0) - records;
        records += remaining.min(2000);
        match next {
            Some(n) => path = n,
            None => break,
        }
    }
    Ok((records, bytes, t.elapsed().as_secs_f64()))
}

/// Runs a Bulk 2.0 query job and downloads every page; returns (records, bytes, seconds).
fn run_bulk(
    http: &mut Http,
    auth: &str,
    soql: &str,
    page: usize,
) -> Result<(usize, usize, f64), String> {
    let t = Instant::now();
    let body = format!("{{\"operation\":\"query\",\"query\":\"{soql}\"}}");
    let r = http.send(
        "POST",
        "/services/data/v61.0/jobs/query",
        &[
            ("Authorization", auth),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    )?;
    let id = json_field(&r.text(), "id")
        .map(str::to_string)
        .ok_or_else(|| format!("bulk create: {} {}", r.status, r.text()))?;
    loop {
        let r = http.send(
            "GET",
            &format!("/services/data/v61.0/jobs/query/{id}"),
            &[("Authorization", auth)],
            b"",
        )?;
        match json_field(&r.text(), "state") {
            Some("JobComplete") => break,
            Some("Failed" | "Aborted") | None => return Err(format!("bulk job: {}", r.text())),
            _ => std::thread::sleep(std::time::Duration::from_millis(50)),
        }
    }
    let mut records = 0usize;
    let mut bytes = 0usize;
    let mut locator = String::new();
    loop {
        let mut path = format!("/services/data/v61.0/jobs/query/{id}/results?maxRecords={page}");
        if !locator.is_empty() {
            path.push_str(&format!("&locator={locator}"));
        }
        let r = http.send(
            "GET",
            &path,
            &[("Authorization", auth), ("Accept", "text/csv")],
            b"",
        )?;
        if r.status != 200 {
            return Err(format!("bulk results: {} {}", r.status, r.text()));
        }
        bytes += r.body.len();
        records += r
            .header("Sforce-NumberOfRecords")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or("no Sforce-NumberOfRecords")?;
        match r.header("Sforce-Locator") {
            Some("null") | None => break,
            Some(l) => locator = l.to_string(),
        }
    }
    Ok((records, bytes, t.elapsed().as_secs_f64()))
}

/// The same-run baseline: MB/s of plain bytes over the same loopback connection and
/// client, i.e. the most any API response could reach here.
fn loopback_mb_s(http: &mut Http) -> Result<f64, String> {
    let chunk = 8 << 20;
    let t = Instant::now();
    let mut bytes = 0usize;
    for _ in 0..64 {
        let r = http.send("GET", &format!("/__emulator/blob/{chunk}"), &[], b"")?;
        bytes += r.body.len();
    }
    Ok(bytes as f64 / t.elapsed().as_secs_f64() / 1e6)
}

fn report(
    name: &str,
    (records, bytes, secs): (usize, usize, f64),
    target: f64,
    baseline_mb_s: f64,
) {
    let rps = records as f64 / secs;
    let mb_s = bytes as f64 / secs / 1e6;
    println!(
        "{name:<44} {records:>8} records in {secs:>5.2} s = {rps:>9.0} rec/s ({:.2}x target {target:.0}), {mb_s:>6.1} MB/s ({:.2}x loopback)",
        rps / target,
        mb_s / baseline_mb_s
    );
}

fn main() {
    if let Err(e) = run() {
        eprintln!("emulator-bench: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let contacts: usize = args
        .iter()
        .position(|a| a == "--contacts")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let emu = start_emulator()?;
    let pid = emu.child.id();
    let mut http = Http::connect(&emu.addr)?;
    let base_rss = rss_kib(pid, "VmRSS:").unwrap_or(0);
    let accounts = (contacts / 10).max(1);
    let acc_s = generate(&mut http, "Account", accounts)?;
    let gen_s = generate(&mut http, "Contact", contacts)?;
    let rss = rss_kib(pid, "VmRSS:").unwrap_or(0);
    let hwm = rss_kib(pid, "VmHWM:").unwrap_or(0);
    println!("generate {accounts} Accounts                             {acc_s:>6.2} s");
    println!(
        "generate {contacts} Contacts                          {gen_s:>6.2} s  = {:.0} records/s  ({:.2}x of the {TARGET_GENERATE_S} s budget)",
        contacts as f64 / gen_s,
        gen_s / TARGET_GENERATE_S
    );
    let gib = |k: u64| k as f64 / 1024.0 / 1024.0;
    println!(
        "RSS after generation: {:.2} GiB (peak {:.2} GiB, empty org {:.0} MiB)  ({:.2}x of the {TARGET_RSS_GIB} GiB budget)",
        gib(rss),
        gib(hwm),
        base_rss as f64 / 1024.0,
        gib(rss) / TARGET_RSS_GIB
    );
    let baseline = loopback_mb_s(&mut http)?;
    println!("baseline: plain bytes over the same loopback HTTP connection: {baseline:.0} MB/s");
    let auth = format!("Bearer {}", token(&mut http)?);
    let narrow = "SELECT Id, FirstName, LastName, Email, AccountId, SystemModstamp FROM Contact";
    report(
        "/query pages of 2000, 6 fields",
        run_query(&mut http, &auth, narrow)?,
        TARGET_QUERY_RPS,
        baseline,
    );
    report(
        "/query pages of 2000, 6 fields ORDER BY Id",
        run_query(&mut http, &auth, &format!("{narrow} ORDER BY Id"))?,
        TARGET_QUERY_RPS,
        baseline,
    );
    // Every field FIELDS(ALL) would select, named: FIELDS(ALL) itself needs LIMIT 200.
    let contact = sf_emulator::catalog::builtin()
        .map_err(|e| e.to_string())?
        .into_iter()
        .find(|o| o.name == "Contact")
        .ok_or("the catalog has no Contact")?;
    let names: Vec<&str> = contact
        .live_fields()
        .map(|(_, f)| f.name.as_str())
        .collect();
    let all = format!("SELECT {} FROM Contact", names.join(", "));
    report(
        &format!("/query pages of 2000, all {} fields", names.len()),
        run_query(&mut http, &auth, &all)?,
        TARGET_QUERY_RPS,
        baseline,
    );
    report(
        "Bulk 2.0 CSV, 6 fields, pages of 100000",
        run_bulk(&mut http, &auth, narrow, 100_000)?,
        TARGET_BULK_RPS,
        baseline,
    );
    let wide = "SELECT Id, AccountId, FirstName, LastName, Salutation, Title, Department, Email, Phone, MobilePhone, MailingStreet, MailingCity, MailingState, MailingPostalCode, MailingCountry, LeadSource, Birthdate, OwnerId, CreatedDate, LastModifiedDate, SystemModstamp, IsDeleted FROM Contact";
    report(
        "Bulk 2.0 CSV, 22 fields, pages of 100000",
        run_bulk(&mut http, &auth, wide, 100_000)?,
        TARGET_BULK_RPS,
        baseline,
    );
    Ok(())
}
