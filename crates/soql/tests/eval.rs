use std::cmp::Ordering;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use soql::{parse, BoundQuery, RowAccess, SoqlError, Value};

const COLS: &[&str] = &[
    "Name",
    "Amount",
    "Employees",
    "CloseDate",
    "CreatedDate",
    "IsActive",
    "Tags__c",
    "Starts__c",
    "Id",
];

/// A test row: one value per entry of COLS.
struct Row(Vec<Value<'static>>);

impl<'r> RowAccess<'r, usize> for &'r Row {
    fn get(&self, field: &usize) -> Value<'r> {
        self.0[*field]
    }
}

fn bind(text: &str) -> BoundQuery<usize> {
    parse(text)
        .unwrap()
        .bind(|p| {
            COLS.iter()
                .position(|c| c.eq_ignore_ascii_case(&p.dotted()))
                .ok_or_else(|| SoqlError::invalid_field(text, p, "Thing"))
        })
        .unwrap()
}

// Wednesday 2024-03-13 15:00:00 UTC.
fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 3, 13, 15, 0, 0).unwrap()
}

fn day(y: i32, m: u32, d: u32) -> i32 {
    NaiveDate::from_ymd_opt(y, m, d)
        .unwrap()
        .signed_duration_since(NaiveDate::default())
        .num_days() as i32
}

fn at(y: i32, m: u32, d: u32, h: u32, mi: u32) -> i64 {
    Utc.with_ymd_and_hms(y, m, d, h, mi, 0)
        .unwrap()
        .timestamp_millis()
}

fn row(name: Option<&'static str>) -> Row {
    let mut r = Row(vec![Value::Null; COLS.len()]);
    if let Some(n) = name {
        r.0[0] = Value::Text(n);
    }
    r
}

fn with(mut r: Row, col: &str, v: Value<'static>) -> Row {
    let i = COLS.iter().position(|c| *c == col).unwrap();
    r.0[i] = v;
    r
}

fn matches(q: &str, r: &Row) -> bool {
    bind(&format!("SELECT Id FROM Thing WHERE {q}")).matches(&r, now())
}

#[test]
fn no_where_matches_everything() {
    assert!(bind("SELECT Id FROM Thing").matches(&&row(None), now()));
}

#[test]
fn text_equality_is_case_insensitive() {
    let r = row(Some("Acme Corp"));
    assert!(matches("Name = 'acme corp'", &r));
    assert!(matches("Name = 'ACME CORP'", &r));
    assert!(!matches("Name = 'Acme'", &r));
    assert!(matches("Name != 'Acme'", &r));
    assert!(!matches("Name != 'ACME corp'", &r));
    assert!(matches("Name IN ('x', 'acme CORP')", &r));
    assert!(!matches("Name NOT IN ('x', 'acme CORP')", &r));
    assert!(matches("Name NOT IN ('x', 'y')", &r));
    assert!(matches("Name > 'abc'", &r));
    assert!(matches("Name < 'B'", &r));
    assert!(matches("Name >= 'ACME CORP' AND Name <= 'acme corp'", &r));
    let r = row(Some("École"));
    assert!(matches("Name = 'école'", &r));
}

#[test]
fn long_in_lists_use_the_hash_index_correctly() {
    let list: Vec<String> = (0..50).map(|i| format!("'Name{i}'")).collect();
    let q = format!("Name IN ({})", list.join(", "));
    assert!(matches(&q, &row(Some("name17"))));
    assert!(matches(&q, &row(Some("NAME49"))));
    assert!(!matches(&q, &row(Some("name50"))));
    assert!(!matches(&q, &row(None)));
    let nq = format!("Name NOT IN ({})", list.join(", "));
    assert!(!matches(&nq, &row(Some("Name3"))));
    assert!(matches(&nq, &row(Some("Other"))));
}

#[test]
fn like() {
    let r = row(Some("Acme Corp"));
    assert!(matches("Name LIKE 'acme%'", &r));
    assert!(matches("Name LIKE '%CORP'", &r));
    assert!(matches("Name LIKE '%me C%'", &r));
    assert!(matches("Name LIKE 'Acm_ Corp'", &r));
    assert!(!matches("Name LIKE 'Acme'", &r));
    assert!(!matches("NOT Name LIKE 'a%'", &r));
    assert!(matches(r"Name LIKE '50\%'", &row(Some("50%"))));
    assert!(!matches(r"Name LIKE '50\%'", &row(Some("500"))));
    assert!(matches(r"Name LIKE 'a\_b'", &row(Some("A_B"))));
    assert!(!matches(r"Name LIKE 'a\_b'", &row(Some("axb"))));
    assert!(!matches("Name LIKE '%'", &row(None)));
    // LIKE on a number never matches.
    let r = with(row(None), "Amount", Value::Double(5.0));
    assert!(!matches("Amount LIKE '5%'", &r));
}

#[test]
fn nulls() {
    let r = row(None);
    assert!(matches("Name = null", &r));
    assert!(!matches("Name != null", &r));
    assert!(!matches("Name = 'x'", &r));
    assert!(!matches("Name < 'x'", &r));
    assert!(!matches("Name > 'x'", &r));
    assert!(!matches("Name LIKE 'x%'", &r));
    assert!(!matches("Name IN ('x')", &r));
    assert!(!matches("Name NOT IN ('x')", &r));
    assert!(matches("Name IN ('x', null)", &r));
    assert!(!matches("CreatedDate = TODAY", &r));
    // Salesforce includes null values in `!=` a non-null value.
    assert!(matches("Name != 'x'", &r));
    let r = row(Some("x"));
    assert!(!matches("Name = null", &r));
    assert!(matches("Name != null", &r));
}

#[test]
fn numbers_compare_across_int_and_double() {
    let r = with(
        with(row(None), "Amount", Value::Double(10.5)),
        "Employees",
        Value::Int(200),
    );
    assert!(matches("Amount > 10", &r));
    assert!(matches("Amount = 10.5", &r));
    assert!(matches("Amount < 10.6", &r));
    assert!(!matches("Amount >= 11", &r));
    assert!(matches("Employees = 200", &r));
    assert!(matches("Employees = 200.0", &r));
    assert!(matches("Employees >= 199.5", &r));
    assert!(matches("Employees IN (1, 2, 200)", &r));
    assert!(matches("Employees > -5", &r));
    // Type mismatches never match.
    assert!(!matches("Employees = '200'", &r));
    assert!(!matches("Name = 5", &row(Some("5"))));
}

#[test]
fn booleans() {
    let r = with(row(None), "IsActive", Value::Bool(true));
    assert!(matches("IsActive = true", &r));
    assert!(matches("IsActive = TRUE", &r));
    assert!(!matches("IsActive = false", &r));
    assert!(matches("IsActive != false", &r));
}

#[test]
fn logic() {
    let r = with(row(Some("a")), "Employees", Value::Int(1));
    assert!(matches("Name = 'a' AND Employees = 1", &r));
    assert!(!matches("Name = 'a' AND Employees = 2", &r));
    assert!(matches("Name = 'b' OR Employees = 1", &r));
    assert!(matches("NOT Name = 'b'", &r));
    assert!(matches("NOT (Name = 'b' OR Employees = 2)", &r));
    // AND binds tighter than OR.
    assert!(matches("Name = 'a' OR Name = 'b' AND Employees = 2", &r));
    assert!(!matches("(Name = 'a' OR Name = 'b') AND Employees = 2", &r));
}

#[test]
fn datetime_literals() {
    let r = with(
        row(None),
        "CreatedDate",
        Value::DateTime(at(2024, 1, 1, 12, 0)),
    );
    assert!(matches("CreatedDate > 2024-01-01T00:00:00Z", &r));
    assert!(matches("CreatedDate = 2024-01-01T12:00:00.000Z", &r));
    assert!(matches("CreatedDate = 2024-01-01T07:00:00-05:00", &r));
    assert!(matches("CreatedDate < 2024-01-01T12:00:00.001+00:00", &r));
    assert!(!matches("CreatedDate > 2024-01-01T12:00:00Z", &r));
    // A date literal against a datetime value is a type mismatch: false.
    assert!(!matches("CreatedDate > 2023-01-01", &r));
    let r = with(row(None), "CloseDate", Value::Date(day(2024, 1, 31)));
    assert!(matches("CloseDate = 2024-01-31", &r));
    assert!(matches(
        "CloseDate > 2024-01-30 AND CloseDate <= 2024-01-31",
        &r
    ));
    assert!(!matches("CloseDate = 2024-01-31T00:00:00Z", &r));
    let r = with(row(None), "Starts__c", Value::Time(10 * 3_600_000));
    assert!(matches("Starts__c = 10:00:00.000Z", &r));
    assert!(matches("Starts__c < 10:00:01Z", &r));
}

#[test]
fn datetime_against_date_functions() {
    let dt = |y, m, d, h, mi| {
        with(
            row(None),
            "CreatedDate",
            Value::DateTime(at(y, m, d, h, mi)),
        )
    };
    // now = 2024-03-13 15:00 UTC
    assert!(matches("CreatedDate = TODAY", &dt(2024, 3, 13, 0, 0)));
    assert!(matches("CreatedDate = TODAY", &dt(2024, 3, 13, 23, 59)));
    assert!(!matches("CreatedDate = TODAY", &dt(2024, 3, 14, 0, 0)));
    assert!(!matches("CreatedDate = TODAY", &dt(2024, 3, 12, 23, 59)));
    assert!(matches("CreatedDate > TODAY", &dt(2024, 3, 14, 0, 0)));
    assert!(!matches("CreatedDate > TODAY", &dt(2024, 3, 13, 23, 59)));
    assert!(matches("CreatedDate >= TODAY", &dt(2024, 3, 13, 0, 0)));
    assert!(matches("CreatedDate < TODAY", &dt(2024, 3, 12, 23, 59)));
    assert!(matches("CreatedDate <= TODAY", &dt(2024, 3, 13, 23, 59)));
    assert!(matches("CreatedDate != TODAY", &dt(2024, 3, 12, 0, 0)));
    assert!(matches("CreatedDate = YESTERDAY", &dt(2024, 3, 12, 8, 0)));
    assert!(matches("CreatedDate = TOMORROW", &dt(2024, 3, 14, 8, 0)));
    // LAST_N_DAYS:7 runs from the start of the day 7 days ago up to now.
    assert!(matches(
        "CreatedDate = LAST_N_DAYS:7",
        &dt(2024, 3, 6, 0, 0)
    ));
    assert!(!matches(
        "CreatedDate = LAST_N_DAYS:7",
        &dt(2024, 3, 5, 23, 59)
    ));
    assert!(matches(
        "CreatedDate = LAST_N_DAYS:7",
        &dt(2024, 3, 13, 15, 0)
    ));
    assert!(!matches(
        "CreatedDate = LAST_N_DAYS:7",
        &dt(2024, 3, 13, 15, 1)
    ));
    assert!(matches(
        "CreatedDate < LAST_N_DAYS:7",
        &dt(2024, 3, 5, 23, 59)
    ));
    assert!(matches(
        "CreatedDate = NEXT_N_DAYS:2",
        &dt(2024, 3, 15, 23, 0)
    ));
    assert!(!matches(
        "CreatedDate = NEXT_N_DAYS:2",
        &dt(2024, 3, 13, 23, 0)
    ));
    assert!(matches(
        "CreatedDate = N_DAYS_AGO:3",
        &dt(2024, 3, 10, 1, 0)
    ));
    assert!(matches("CreatedDate = THIS_WEEK", &dt(2024, 3, 10, 0, 0)));
    assert!(!matches("CreatedDate = THIS_WEEK", &dt(2024, 3, 9, 23, 0)));
    assert!(matches("CreatedDate = LAST_WEEK", &dt(2024, 3, 9, 23, 0)));
    assert!(matches("CreatedDate = THIS_MONTH", &dt(2024, 3, 1, 0, 0)));
    assert!(matches("CreatedDate = LAST_MONTH", &dt(2024, 2, 29, 23, 0)));
    assert!(matches("CreatedDate = THIS_YEAR", &dt(2024, 12, 31, 23, 0)));
    assert!(matches(
        "CreatedDate = LAST_90_DAYS",
        &dt(2023, 12, 14, 0, 0)
    ));
    assert!(!matches(
        "CreatedDate = LAST_90_DAYS",
        &dt(2023, 12, 13, 23, 0)
    ));
    assert!(matches(
        "CreatedDate IN (YESTERDAY, TOMORROW)",
        &dt(2024, 3, 14, 3, 0)
    ));
    assert!(!matches(
        "CreatedDate IN (YESTERDAY, TOMORROW)",
        &dt(2024, 3, 13, 3, 0)
    ));
}

#[test]
fn date_against_date_functions() {
    let d = |y, m, dd| with(row(None), "CloseDate", Value::Date(day(y, m, dd)));
    assert!(matches("CloseDate = TODAY", &d(2024, 3, 13)));
    assert!(matches("CloseDate > TODAY", &d(2024, 3, 14)));
    assert!(matches("CloseDate = LAST_N_DAYS:7", &d(2024, 3, 6)));
    assert!(matches("CloseDate = LAST_N_DAYS:7", &d(2024, 3, 13)));
    assert!(!matches("CloseDate = LAST_N_DAYS:7", &d(2024, 3, 14)));
    assert!(matches("CloseDate = NEXT_N_DAYS:7", &d(2024, 3, 20)));
    assert!(matches("CloseDate = THIS_QUARTER", &d(2024, 1, 1)));
    assert!(!matches("CloseDate = THIS_QUARTER", &d(2024, 4, 1)));
    // Date functions never match a text value.
    assert!(!matches("Name = TODAY", &row(Some("2024-03-13"))));
}

#[test]
fn includes_excludes() {
    let r = with(row(None), "Tags__c", Value::Text("Red;Green; Blue"));
    assert!(matches("Tags__c INCLUDES ('red')", &r));
    assert!(matches("Tags__c INCLUDES ('red;blue')", &r));
    assert!(!matches("Tags__c INCLUDES ('red;yellow')", &r));
    assert!(matches("Tags__c INCLUDES ('red;yellow', 'green')", &r));
    assert!(!matches("Tags__c EXCLUDES ('green')", &r));
    assert!(matches("Tags__c EXCLUDES ('yellow', 'red;pink')", &r));
    assert!(matches("Tags__c = 'red;green; blue'", &r));
    assert!(!matches("Tags__c INCLUDES ('red')", &row(None)));
}

fn sorted(text: &str, rows: &[Row]) -> Vec<usize> {
    let q = bind(text);
    let mut idx: Vec<usize> = (0..rows.len()).collect();
    idx.sort_by(|&a, &b| q.compare(&&rows[a], &&rows[b]));
    idx
}

#[test]
fn order_by_nulls_first_by_default_and_last_on_request() {
    let rows = [row(Some("b")), row(None), row(Some("A")), row(Some("c"))];
    assert_eq!(
        sorted("SELECT Id FROM T ORDER BY Name", &rows),
        [1, 2, 0, 3]
    );
    assert_eq!(
        sorted("SELECT Id FROM T ORDER BY Name ASC NULLS FIRST", &rows),
        [1, 2, 0, 3]
    );
    assert_eq!(
        sorted("SELECT Id FROM T ORDER BY Name NULLS LAST", &rows),
        [2, 0, 3, 1]
    );
    assert_eq!(
        sorted("SELECT Id FROM T ORDER BY Name DESC", &rows),
        [1, 3, 0, 2]
    );
    assert_eq!(
        sorted("SELECT Id FROM T ORDER BY Name DESC NULLS LAST", &rows),
        [3, 0, 2, 1]
    );
}

#[test]
fn order_by_several_keys() {
    let r = |name: &'static str, amount: Option<f64>, id: &'static str| {
        let mut x = with(row(Some(name)), "Id", Value::Text(id));
        if let Some(a) = amount {
            x = with(x, "Amount", Value::Double(a));
        }
        x
    };
    let rows = [
        r("b", Some(1.0), "1"),
        r("a", Some(5.0), "2"),
        r("b", Some(3.0), "3"),
        r("a", None, "4"),
        r("b", Some(3.0), "0"),
    ];
    assert_eq!(
        sorted("SELECT Id FROM T ORDER BY Name, Amount DESC, Id", &rows),
        [3, 1, 4, 2, 0]
    );
    assert_eq!(
        sorted(
            "SELECT Id FROM T ORDER BY Name DESC, Amount NULLS LAST, Id DESC",
            &rows
        ),
        [0, 2, 4, 1, 3]
    );
    // Without ORDER BY every pair compares equal.
    let q = bind("SELECT Id FROM T");
    assert_eq!(q.compare(&&rows[0], &&rows[1]), Ordering::Equal);
}

#[test]
fn order_by_numbers_and_dates() {
    let rows = [
        with(row(None), "Amount", Value::Double(2.5)),
        with(row(None), "Amount", Value::Int(-3)),
        with(row(None), "Amount", Value::Int(10)),
    ];
    assert_eq!(sorted("SELECT Id FROM T ORDER BY Amount", &rows), [1, 0, 2]);
    let rows = [
        with(
            row(None),
            "CreatedDate",
            Value::DateTime(at(2024, 1, 2, 0, 0)),
        ),
        with(
            row(None),
            "CreatedDate",
            Value::DateTime(at(2023, 1, 2, 0, 0)),
        ),
    ];
    assert_eq!(
        sorted("SELECT Id FROM T ORDER BY CreatedDate DESC", &rows),
        [0, 1]
    );
}

#[test]
fn closures_work_as_row_access() {
    let q = bind("SELECT Id FROM T WHERE Name = 'x' ORDER BY Name");
    let data = [String::from("X"), String::from("y")];
    let a = |_: &usize| Value::Text(data[0].as_str());
    let b = |_: &usize| Value::Text(data[1].as_str());
    assert!(q.matches(&a, now()));
    assert!(!q.matches(&b, now()));
    assert_eq!(q.compare(&a, &b), Ordering::Less);
}

#[test]
fn bound_query_keeps_structure() {
    let q = bind(
        "SELECT Name, COUNT(Id) FROM Thing WHERE Amount > 1 ORDER BY Name DESC LIMIT 5 OFFSET 2",
    );
    assert_eq!(
        q.select,
        vec![soql::SelectItem::Field(0), soql::SelectItem::CountField(8)]
    );
    assert_eq!(q.from, "Thing");
    assert_eq!((q.limit, q.offset), (Some(5), Some(2)));
    assert_eq!(q.order_by[0].path, 0);
    assert!(matches!(
        q.where_clause,
        Some(soql::Expr::Compare { path: 1, .. })
    ));
    assert!(!q.is_count());
}

fn bind_typed(text: &str) -> BoundQuery<usize> {
    use soql::FieldType;
    parse(text)
        .unwrap()
        .bind_typed(text, |p| {
            let i = COLS
                .iter()
                .position(|c| c.eq_ignore_ascii_case(&p.dotted()))
                .ok_or_else(|| SoqlError::invalid_field(text, p, "Thing"))?;
            let ty = if COLS[i] == "Id" {
                FieldType::Id
            } else {
                FieldType::Other
            };
            Ok((i, ty))
        })
        .unwrap()
}

#[test]
fn ids_sort_exactly_and_names_case_insensitively() {
    // Salesforce ids sort by value: digits, then upper case, then lower case.
    let lower = with(row(Some("b")), "Id", Value::Text("003Em000000000aIAA"));
    let upper = with(row(Some("B")), "Id", Value::Text("003Em000000000AIAQ"));
    let q = bind_typed("SELECT Id FROM Thing ORDER BY Id");
    assert_eq!(q.compare(&&upper, &&lower), Ordering::Less);
    let q = bind_typed("SELECT Id FROM Thing ORDER BY Id DESC");
    assert_eq!(q.compare(&&upper, &&lower), Ordering::Greater);
    // Untyped binding knows no ids: text compares case-insensitively first.
    let q = bind("SELECT Id FROM Thing ORDER BY Id");
    assert_eq!(q.compare(&&upper, &&lower), Ordering::Greater);
}

#[test]
fn fifteen_character_id_literals_match_stored_eighteen() {
    let r = with(row(None), "Id", Value::Text("001D000000IqhSLIAZ"));
    assert_eq!(soql::id18("001D000000IqhSL"), "001D000000IqhSLIAZ");
    let q = bind_typed("SELECT Id FROM Thing WHERE Id = '001D000000IqhSL'");
    assert!(q.matches(&&r, now()));
    let q = bind_typed("SELECT Id FROM Thing WHERE Id IN ('001D000000IqhSL', 'x')");
    assert!(q.matches(&&r, now()));
    // Same letters, different case: a different record.
    let q = bind_typed("SELECT Id FROM Thing WHERE Id = '001D000000IQHSL'");
    assert!(!q.matches(&&r, now()));
}

#[test]
fn id_ranges_compare_exactly() {
    let lower = with(row(None), "Id", Value::Text("003Em000000000aIAA"));
    let upper = with(row(None), "Id", Value::Text("003Em000000000AIAQ"));
    let q = bind_typed("SELECT Id FROM Thing WHERE Id > '003Em000000000AIAQ'");
    assert!(q.matches(&&lower, now()));
    assert!(!q.matches(&&upper, now()));
    let q = bind_typed("SELECT Id FROM Thing WHERE Id <= '003Em000000000A'");
    assert!(q.matches(&&upper, now()));
    assert!(!q.matches(&&lower, now()));
}
