//! Client-side read throughput against the in-process emulator: REST pages parsed into
//! maps, REST pages kept raw, and Bulk 2.0 CSV pages streamed. Prints rows/s and API
//! calls for each, so the worker can pick its backfill path on figures, not guesses.
//!
//! cargo run --release -p salesforce --example throughput -- [ROWS]   (default 200000)
//!
//! The emulator runs in the same process and on the same cores, so the figures are the
//! client and server together; compare them with each other, not with a real org.

use std::time::{Duration, Instant};

use salesforce::{Client, ClientConfig, Credential};

const SOQL: &str = "SELECT Id, FirstName, LastName, Email, Phone, Title, Department, \
                    LeadSource, Birthdate, AccountId, IsDeleted, SystemModstamp FROM Contact";

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rows: u64 = match std::env::args().nth(1) {
        Some(n) => n
            .parse()
            .map_err(|_| format!("ROWS must be a number, got {n:?}"))?,
        None => 200_000,
    };
    let running = sf_emulator::start(sf_emulator::Config::default()).await?;
    let control = reqwest::Client::new();
    control
        .post(format!("{}/__emulator/generate", running.base_url()))
        .json(&serde_json::json!({"object": "Contact", "count": rows}))
        .send()
        .await?
        .error_for_status()?;
    let client = Client::new(ClientConfig::new(Credential::RefreshToken {
        login_url: running.base_url().to_string(),
        client_id: "sequin-emulator".into(),
        client_secret: "emulator-secret".into(),
        refresh_token: "emulator-refresh-token".into(),
    }))?;
    client.authenticate().await?;
    println!("{rows} Contacts, 12 fields, emulator in-process");

    let (n, calls, t) = rest_parsed(&client).await?;
    report("REST pages of 2000, parsed to maps", n, calls, t);
    let (n, calls, t) = rest_raw(&client).await?;
    report("REST pages of 2000, raw JSON text", n, calls, t);
    let (n, calls, t) = bulk(&client, 50_000).await?;
    report("Bulk 2.0, pages of 50000, streamed", n, calls, t);
    running.shutdown().await;
    Ok(())
}

fn report(what: &str, rows: u64, calls: u64, took: Duration) {
    let rate = rows as f64 / took.as_secs_f64();
    println!(
        "{what:<40} {rows:>9} rows  {calls:>5} API calls  {:>7.2} s  {rate:>10.0} rows/s",
        took.as_secs_f64()
    );
}

async fn rest_parsed(client: &Client) -> salesforce::Result<(u64, u64, Duration)> {
    let start = (Instant::now(), client.stats().requests);
    let mut page = client.query(SOQL, Some(2000)).await?;
    let mut n = page.records.len() as u64;
    while let Some(next) = page.next_records_url.take() {
        page = client.query_more(&next).await?;
        n += page.records.len() as u64;
    }
    Ok((n, client.stats().requests - start.1, start.0.elapsed()))
}

async fn rest_raw(client: &Client) -> salesforce::Result<(u64, u64, Duration)> {
    let start = (Instant::now(), client.stats().requests);
    let mut page = client.query_raw(SOQL, Some(2000)).await?;
    let mut n = page.record_count()? as u64;
    while let Some(next) = page.next_records_url.take() {
        page = client.query_more_raw(&next).await?;
        n += page.record_count()? as u64;
    }
    Ok((n, client.stats().requests - start.1, start.0.elapsed()))
}

async fn bulk(client: &Client, page_size: u64) -> salesforce::Result<(u64, u64, Duration)> {
    let start = (Instant::now(), client.stats().requests);
    let job = client.bulk_query_create(SOQL, false).await?;
    client
        .bulk_query_wait(
            &job.id,
            Duration::from_millis(200),
            Duration::from_secs(600),
        )
        .await?;
    let mut n = 0u64;
    let mut locator: Option<String> = None;
    loop {
        let page = client
            .bulk_query_results(&job.id, locator.as_deref(), Some(page_size))
            .await?;
        page.for_each_row(|_| {
            n += 1;
            Ok(())
        })?;
        locator = page.locator;
        if locator.is_none() {
            break;
        }
    }
    client.bulk_query_delete(&job.id).await?;
    Ok((n, client.stats().requests - start.1, start.0.elapsed()))
}
