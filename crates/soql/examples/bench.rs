//! Rough throughput check: filter and sort 1,000,000 synthetic rows.
//! `cargo run --release -p soql --example bench`

use std::time::Instant;

use chrono::DateTime;
use soql::{parse, RowAccess, Value};

struct Row {
    id: String,
    name: String,
    amount: f64,
    created: i64,
}

impl<'r> RowAccess<'r, u8> for &'r Row {
    fn get(&self, field: &u8) -> Value<'r> {
        match field {
            0 => Value::Text(&self.id),
            1 => Value::Text(&self.name),
            2 => Value::Double(self.amount),
            _ => Value::DateTime(self.created),
        }
    }
}

fn main() -> Result<(), soql::SoqlError> {
    let now = DateTime::from_timestamp(1_710_342_000, 0)
        .ok_or_else(|| soql::SoqlError::new(soql::ErrorCode::MalformedQuery, "bad time"))?;
    let rows: Vec<Row> = (0..1_000_000u32)
        .map(|i| Row {
            id: format!("003{i:015}"),
            name: format!("Contact {} Name", i % 9973),
            amount: f64::from(i % 1000),
            created: now.timestamp_millis() - i64::from(i) * 60_000,
        })
        .collect();
    let queries = [
        "SELECT Id FROM Contact WHERE Name LIKE '%99 name' AND Amount > 100",
        "SELECT Id FROM Contact WHERE CreatedDate = LAST_N_DAYS:30 ORDER BY Name DESC, Id",
        "SELECT Id FROM Contact WHERE Name IN ('contact 1 name','contact 2 name','contact 3 name','contact 4 name','contact 5 name','contact 6 name','contact 7 name','contact 8 name','contact 9 name','contact 10 name') ORDER BY CreatedDate",
        "SELECT Id FROM Contact ORDER BY Name, Amount DESC NULLS LAST",
    ];
    for text in queries {
        let q = parse(text)?.bind(|p| {
            Ok(match p.dotted().as_str() {
                "Id" => 0u8,
                "Name" => 1,
                "Amount" => 2,
                _ => 3,
            })
        })?;
        let t = Instant::now();
        let mut hits: Vec<&Row> = rows.iter().filter(|r| q.matches(r, now)).collect();
        let filtered = t.elapsed();
        hits.sort_by(|a, b| q.compare(a, b));
        println!(
            "{} rows; filter {:?}, sort {:?}: {text}",
            hits.len(),
            filtered,
            t.elapsed() - filtered
        );
    }
    Ok(())
}
