//! `matches` and `compare` must not allocate per row: count allocations made on
//! this thread while they run.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use chrono::{TimeZone, Utc};
use soql::{parse, RowAccess, Value};

struct Counting;

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ARMED.with(Cell::get) {
            COUNT.with(|c| c.set(c.get() + 1));
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

struct Row {
    name: String,
    amount: f64,
    created: i64,
    tags: String,
}

impl<'r> RowAccess<'r, usize> for &'r Row {
    fn get(&self, field: &usize) -> Value<'r> {
        match field {
            0 => Value::Text(&self.name),
            1 => Value::Double(self.amount),
            2 => Value::DateTime(self.created),
            _ => Value::Text(&self.tags),
        }
    }
}

#[test]
fn evaluation_does_not_allocate() {
    let names: Vec<String> = (0..20).map(|i| format!("'Name{i}'")).collect();
    let text = format!(
        "SELECT Name FROM T WHERE (Name LIKE '%me 1%' OR Name IN ({}) OR Name = 'ÉCOLE') \
         AND Name != 'x' AND Amount >= 10 AND NOT Amount IN (3, 4.5) AND CreatedDate = LAST_N_DAYS:30 \
         AND CreatedDate < THIS_YEAR OR Tags__c INCLUDES ('a;b') \
         ORDER BY Name DESC NULLS LAST, Amount, CreatedDate",
        names.join(",")
    );
    let q = parse(&text)
        .unwrap()
        .bind(|p| {
            Ok(match p.dotted().as_str() {
                "Name" => 0usize,
                "Amount" => 1,
                "CreatedDate" => 2,
                _ => 3,
            })
        })
        .unwrap();
    let now = Utc.with_ymd_and_hms(2024, 3, 13, 15, 0, 0).unwrap();
    let rows: Vec<Row> = (0..2000)
        .map(|i| Row {
            name: if i % 3 == 0 {
                format!("Name{i}")
            } else {
                format!("Acme {i} École")
            },
            amount: f64::from(i % 50),
            created: now.timestamp_millis() - i64::from(i) * 3_600_000,
            tags: if i % 7 == 0 {
                "a;b;c".into()
            } else {
                "c".into()
            },
        })
        .collect();

    ARMED.with(|a| a.set(true));
    let mut hits = 0;
    for r in &rows {
        if q.matches(&r, now) {
            hits += 1;
        }
    }
    let mut order = 0i64;
    for pair in rows.windows(2) {
        order += q.compare(&&pair[0], &&pair[1]) as i64;
    }
    ARMED.with(|a| a.set(false));

    assert_eq!(COUNT.with(Cell::get), 0);
    assert!(hits > 0 && hits < rows.len());
    assert_ne!(order, 0);
}
