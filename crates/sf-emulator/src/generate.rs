//! Deterministic, realistic, related test data: the same seed gives the same records.

use crate::config::GenerateSpec;
use crate::org::Org;
use crate::schema::{Field, FieldType, ObjectDef, Source};
use crate::store::{Column, RowState};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const FIRST: &[&str] = &[
    "James",
    "Mary",
    "John",
    "Patricia",
    "Robert",
    "Jennifer",
    "Michael",
    "Linda",
    "William",
    "Elizabeth",
    "David",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Charles",
    "Karen",
    "Christopher",
    "Nancy",
    "Daniel",
    "Lisa",
    "Matthew",
    "Betty",
    "Anthony",
    "Margaret",
    "Mark",
    "Sandra",
    "Donald",
    "Ashley",
    "Steven",
    "Kimberly",
    "Paul",
    "Emily",
    "Andrew",
    "Donna",
    "Joshua",
    "Michelle",
    "Kenneth",
    "Carol",
    "Kevin",
    "Amanda",
    "Brian",
    "Dorothy",
    "George",
    "Melissa",
    "Timothy",
    "Deborah",
    "Aiko",
    "Chen",
    "Priya",
    "Mateo",
    "Sofia",
    "Lars",
    "Ingrid",
    "Kwame",
    "Amara",
    "Noah",
    "Zoë",
    "José",
];
const LAST: &[&str] = &[
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Torres",
    "Nguyen",
    "Hill",
    "Flores",
    "Green",
    "Adams",
    "Nelson",
    "Baker",
    "Hall",
    "Rivera",
    "Campbell",
    "Mitchell",
    "Carter",
    "Roberts",
    "O'Brien",
    "Müller",
    "Tanaka",
    "Okafor",
    "Kowalski",
    "Johansson",
    "Rossi",
    "Dubois",
    "Singh",
    "Kim",
];
const COMPANY_A: &[&str] = &[
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Wonka",
    "Cyberdyne",
    "Soylent",
    "Tyrell",
    "Hooli",
    "Vandelay",
    "Massive",
    "Dunder",
    "Pied Piper",
    "Aperture",
    "Black Mesa",
    "Oscorp",
    "Gringotts",
    "Monarch",
    "Blue Sun",
    "Nakatomi",
    "Prestige",
    "Sirius",
    "Zorg",
    "Veridian",
    "Gekko",
    "Duff",
    "Krusty",
    "Bluth",
];
const COMPANY_B: &[&str] = &[
    "Corp",
    "Inc.",
    "Industries",
    "Systems",
    "Labs",
    "Holdings",
    "Group",
    "Partners",
    "Technologies",
    "Logistics",
    "Foods",
    "Energy",
    "Media",
    "Health",
    "Capital",
    "Robotics",
    "Analytics",
    "Outfitters",
    "Dynamics",
    "Networks",
];
const TITLES: &[&str] = &[
    "CEO",
    "CTO",
    "CFO",
    "VP Sales",
    "VP Marketing",
    "Director of Engineering",
    "Account Manager",
    "Sales Rep",
    "Product Manager",
    "Software Engineer",
    "Data Analyst",
    "Office Manager",
    "Buyer",
    "Procurement Lead",
    "Operations Manager",
    "Head of IT",
    "Consultant",
    "Marketing Specialist",
    "Support Engineer",
    "Controller",
];
const DEPARTMENTS: &[&str] = &[
    "Sales",
    "Marketing",
    "Engineering",
    "Finance",
    "Operations",
    "IT",
    "Support",
    "Procurement",
    "Legal",
    "HR",
];
/// (city, state, postal prefix, country, lat, lon)
const CITIES: &[(&str, &str, &str, &str, f64, f64)] = &[
    ("San Francisco", "CA", "941", "USA", 37.7749, -122.4194),
    ("New York", "NY", "100", "USA", 40.7128, -74.0060),
    ("Austin", "TX", "787", "USA", 30.2672, -97.7431),
    ("Chicago", "IL", "606", "USA", 41.8781, -87.6298),
    ("Seattle", "WA", "981", "USA", 47.6062, -122.3321),
    ("Boston", "MA", "021", "USA", 42.3601, -71.0589),
    ("Denver", "CO", "802", "USA", 39.7392, -104.9903),
    ("Atlanta", "GA", "303", "USA", 33.7490, -84.3880),
    ("Toronto", "ON", "M5V", "Canada", 43.6532, -79.3832),
    ("London", "", "EC1", "United Kingdom", 51.5074, -0.1278),
    ("Paris", "", "750", "France", 48.8566, 2.3522),
    ("Berlin", "", "101", "Germany", 52.5200, 13.4050),
    ("Tokyo", "", "100", "Japan", 35.6762, 139.6503),
    ("Sydney", "NSW", "200", "Australia", -33.8688, 151.2093),
];
const STREETS: &[&str] = &[
    "Main St",
    "Market St",
    "Oak Ave",
    "Pine St",
    "Maple Dr",
    "Cedar Ln",
    "Elm St",
    "Washington Blvd",
    "Lake Shore Dr",
    "Mission St",
    "Broadway",
    "High St",
    "Church Rd",
    "Park Ave",
    "2nd St",
    "Sunset Blvd",
];
const DOMAINS: &[&str] = &[
    "example.com",
    "example.org",
    "mail.test",
    "corp.example",
    "acme.test",
];
const PRODUCTS: &[&str] = &[
    "Platform License",
    "Support Plan",
    "Consulting",
    "Training",
    "Hardware Bundle",
    "Add-on Seats",
];

/// Parents first, so references can point at them.
fn rank(object: &str) -> usize {
    match object.to_ascii_lowercase().as_str() {
        "user" => 0,
        "account" | "product2" | "pricebook2" | "campaign" => 1,
        "contact" | "lead" | "pricebookentry" => 2,
        "opportunity" | "contract" | "asset" => 3,
        _ => 4,
    }
}

pub fn generate_spec(org: &Org, spec: &GenerateSpec, seed: u64) -> Result<(), String> {
    let mut items = spec.0.clone();
    items.sort_by_key(|(o, _)| rank(o));
    for (object, count) in items {
        generate(org, &object, count, seed)?;
    }
    Ok(())
}

/// How one column is filled.
enum Fill {
    First,
    Last,
    Salutation,
    Email,
    Phone,
    Company,
    Title,
    Department,
    Street,
    City,
    State,
    Postal,
    Country,
    Lat,
    Lon,
    Website,
    Pick(Vec<String>, f64),
    Stage,
    Probability,
    Money(f64, f64),
    Int(i64, i64),
    DateRecent,
    DateFuture,
    Birthdate,
    Bool(f64),
    Ref(ParentRows),
    Owner,
    Created,
    Modified,
    ExtId,
    OppName,
    Generic(FieldType),
    UserName,
    Alias,
    /// Base64 of a small generated file.
    Blob,
    /// The decoded length of that file.
    BlobLen,
}

fn blob_text(seq: u64) -> String {
    format!("Generated file {seq} from sf-emulator.\n")
}

struct ParentRows {
    prefix: [u8; 3],
    rows: Vec<u32>,
    cache: Vec<u64>,
}

const COMMON: &[&str] = &[
    "Phone",
    "MobilePhone",
    "Email",
    "Title",
    "Department",
    "Website",
    "Industry",
    "Type",
    "Rating",
    "AnnualRevenue",
    "NumberOfEmployees",
    "LeadSource",
    "Birthdate",
    "Level__c",
    "Tier__c",
    "Active__c",
    "Amount",
    "Probability",
    "CloseDate",
    "StageName",
    "Status",
    "Priority",
    "Origin",
    "Subject",
    "AccountNumber",
    "Salutation",
    "Family",
    "IsActive",
    "ProductCode",
    "Quantity",
    "UnitPrice",
    "ActivityDate",
    "StartDate",
    "EndDate",
    "ForecastCategoryName",
    "Ownership",
    "AccountSource",
    "Amount__c",
    "Status__c",
    "Due_Date__c",
    "Paid__c",
    "Company",
    "Reason",
    "External_Key__c",
    "Field",
    "DataType",
    "OldValue",
    "NewValue",
    "ValidFromDate",
    "ValidToDate",
    "Label",
    "ApiName",
    "MasterLabel",
    "ForecastCategory",
    "Roles",
    "Amount__hst",
    "StageName__hst",
    "CloseDate__hst",
];

fn pick_fill(org: &Org, def: &ObjectDef, f: &Field) -> Option<Fill> {
    let n = f.name.as_str();
    let fill = match n {
        "Id" | "IsDeleted" => return None,
        // Generated activities are not archived (`records/{Object}/{Id}/archive` does it).
        "IsArchived" if def.archives => Fill::Generic(FieldType::Boolean),
        "CreatedDate" => Fill::Created,
        "LastModifiedDate" | "SystemModstamp" => Fill::Modified,
        "CreatedById" | "LastModifiedById" | "OwnerId" => Fill::Owner,
        "FirstName" => Fill::First,
        "LastName" => Fill::Last,
        "Salutation" => Fill::Salutation,
        "Email" | "SuppliedEmail" => Fill::Email,
        "Username" => Fill::UserName,
        "Alias" => Fill::Alias,
        "Phone" | "MobilePhone" => Fill::Phone,
        "Company" => Fill::Company,
        "Title" if def.name != "Note" => Fill::Title,
        "Department" => Fill::Department,
        "Website" => Fill::Website,
        "StageName" => Fill::Stage,
        "Probability" => Fill::Probability,
        "External_Id__c" | "External_Key__c" => Fill::ExtId,
        _ if f.ftype == FieldType::Base64 => Fill::Blob,
        "BodyLength" | "ContentSize" if def.fields.iter().any(|x| x.ftype == FieldType::Base64) => {
            Fill::BlobLen
        }
        "Name" if f.createable && def.name == "Account" => Fill::Company,
        "Name" if f.createable && def.name == "Opportunity" => Fill::OppName,
        "Name" if f.createable => Fill::Generic(FieldType::String),
        _ if f.compound.is_some() => {
            let prefix_end = f
                .compound
                .as_deref()
                .unwrap_or("")
                .trim_end_matches("Address")
                .len();
            // Only the main address of each object is filled: Billing, Mailing.
            if !(n.starts_with("Billing") || n.starts_with("Mailing")) {
                return None;
            }
            match &n[prefix_end..] {
                "Street" => Fill::Street,
                "City" => Fill::City,
                "State" => Fill::State,
                "PostalCode" => Fill::Postal,
                "Country" => Fill::Country,
                "Latitude" => Fill::Lat,
                "Longitude" => Fill::Lon,
                _ => return None,
            }
        }
        _ => {
            // Objects the API cannot create are written by Salesforce itself (history
            // rows, stages): the generator fills their read-only fields too.
            let system_written = !def.createable && !f.calculated;
            if (!f.createable && !system_written) || matches!(f.source, Source::Compound { .. }) {
                return None;
            }
            if f.ftype == FieldType::Reference {
                let target = f.reference_to.first()?;
                if target.eq_ignore_ascii_case(&def.name) && !f.required() {
                    return None;
                }
                let parent = org.object(target)?;
                let p = parent.read();
                let rows: Vec<u32> = p
                    .table
                    .state
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| **s == RowState::Live as u8)
                    .map(|(i, _)| i as u32)
                    .collect();
                if rows.is_empty() {
                    return None;
                }
                let cache = vec![u64::MAX; p.table.rows()];
                return Some(Fill::Ref(ParentRows {
                    prefix: p.def.key_prefix,
                    rows,
                    cache,
                }));
            }
            if !f.required() && !COMMON.contains(&n) {
                return None;
            }
            match f.ftype {
                FieldType::Picklist | FieldType::Multipicklist | FieldType::Combobox
                    if !f.picklist.is_empty() =>
                {
                    Fill::Pick(
                        f.picklist.iter().map(|p| p.value.clone()).collect(),
                        if f.required() { 1.0 } else { 0.8 },
                    )
                }
                FieldType::Currency | FieldType::Double => {
                    if n.contains("Revenue") {
                        Fill::Money(100_000.0, 50_000_000.0)
                    } else if n == "Quantity" {
                        Fill::Int(1, 50)
                    } else {
                        Fill::Money(500.0, 250_000.0)
                    }
                }
                FieldType::Int => Fill::Int(1, 50_000),
                FieldType::Percent => Fill::Int(0, 100),
                FieldType::Date if n == "Birthdate" => Fill::Birthdate,
                FieldType::Date
                    if n.contains("Close") || n.contains("Due") || n.contains("End") =>
                {
                    Fill::DateFuture
                }
                FieldType::Date => Fill::DateRecent,
                FieldType::Boolean => Fill::Bool(0.3),
                t => Fill::Generic(t),
            }
        }
    };
    Some(fill)
}

/// Per-row choices shared by several columns (a person's name, their city).
struct RowCtx {
    first: usize,
    last: usize,
    city: usize,
    company: (usize, usize),
    stage: usize,
    created: i64,
    modified: i64,
    seq: u64,
}

fn push_text(col: &mut Column, s: Option<&str>) {
    if let Some(c) = col.as_str_mut() {
        c.push(s);
    } else {
        col.push_null();
    }
}

/// Appends `count` generated records to `object`; returns how many were made.
pub fn generate(org: &Org, object: &str, count: usize, seed: u64) -> Result<usize, String> {
    let obj = org
        .object(object)
        .ok_or_else(|| format!("unknown object {object}"))?;
    let def = obj.read().def.clone();
    let mut fills: Vec<(usize, Fill)> = Vec::new();
    for (_, f) in def.live_fields() {
        if let (Some(col), Some(fill)) = (f.column(), pick_fill(org, &def, f)) {
            fills.push((col, fill));
        }
    }
    let derives = def.full_name_derives();
    let stages: Vec<String> = def
        .field("StageName")
        .map(|f| f.picklist.iter().map(|p| p.value.clone()).collect())
        .unwrap_or_default();
    let today = crate::timefmt::wall_ms().div_euclid(crate::timefmt::MS_PER_DAY)
        * crate::timefmt::MS_PER_DAY;
    let admin = org.user_id.clone();
    let mut name_hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in def.name.bytes() {
        name_hash = (name_hash ^ b as u64).wrapping_mul(0x100_0000_01b3);
    }
    const CHUNK: usize = 50_000;
    let mut done = 0usize;
    // Interned cells reused across rows: vocabulary index -> cell word, per column.
    let mut vocab_cache: Vec<Vec<u64>> = vec![Vec::new(); def.columns];
    while done < count {
        let n = CHUNK.min(count - done);
        let mut o = obj.write();
        let start_row = o.table.rows();
        let mut rng = ChaCha8Rng::seed_from_u64(
            seed ^ name_hash ^ (start_row as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
        );
        let prefix = o.def.key_prefix;
        let admin_ref = o.table.cols[0].as_str_mut().map(|_| ());
        let _ = admin_ref;
        let mut admin_cells: Vec<u64> = vec![u64::MAX; def.columns];
        for i in 0..n {
            let row = start_row + i;
            let created = today - rng.random_range(1..730) * crate::timefmt::MS_PER_DAY
                + rng.random_range(0..crate::timefmt::MS_PER_DAY);
            let modified = created + rng.random_range(0..(today - created).max(1));
            let ctx = RowCtx {
                first: rng.random_range(0..FIRST.len()),
                last: rng.random_range(0..LAST.len()),
                city: rng.random_range(0..CITIES.len()),
                company: (
                    rng.random_range(0..COMPANY_A.len()),
                    rng.random_range(0..COMPANY_B.len()),
                ),
                stage: if stages.is_empty() {
                    0
                } else {
                    rng.random_range(0..stages.len())
                },
                created,
                modified,
                seq: row as u64 + 1,
            };
            o.table.state.push(RowState::Live as u8);
            let id = crate::ids::make_id(&prefix, ctx.seq);
            push_text(&mut o.table.cols[0], Some(&id));
            let mut filled = vec![false; def.columns];
            filled[0] = true;
            for (col, fill) in fills.iter_mut() {
                let c = &mut o.table.cols[*col];
                filled[*col] = true;
                fill_cell(
                    c,
                    fill,
                    &ctx,
                    &mut rng,
                    &stages,
                    &admin,
                    &mut admin_cells[*col],
                    &mut vocab_cache[*col],
                );
            }
            for (col, first, last) in &derives {
                let name = crate::store::full_name(
                    o.table.cols[*first].get(row),
                    o.table.cols[*last].get(row),
                );
                push_text(&mut o.table.cols[*col], name.as_deref());
                filled[*col] = true;
            }
            for (c, done_col) in filled.iter().enumerate() {
                if !done_col {
                    o.table.cols[c].push_null();
                }
            }
        }
        // Derived flags that depend on other generated columns.
        if def.name == "Opportunity" {
            if let (Some(sc), Some(cc), Some(wc)) = (
                def.field("StageName").and_then(Field::column),
                def.field("IsClosed").and_then(Field::column),
                def.field("IsWon").and_then(Field::column),
            ) {
                for row in start_row..start_row + n {
                    let (closed, won) = match o.table.cols[sc].get(row) {
                        soql::Value::Text(s) => (s.starts_with("Closed"), s == "Closed Won"),
                        _ => (false, false),
                    };
                    o.table.cols[cc].set(row, &crate::store::Val::Bool(closed));
                    o.table.cols[wc].set(row, &crate::store::Val::Bool(won));
                }
            }
        }
        o.table.unique_index.clear();
        done += n;
    }
    Ok(count)
}

#[allow(clippy::too_many_arguments)]
fn fill_cell(
    c: &mut Column,
    fill: &mut Fill,
    ctx: &RowCtx,
    rng: &mut ChaCha8Rng,
    stages: &[String],
    admin: &str,
    admin_cell: &mut u64,
    cache: &mut Vec<u64>,
) {
    use crate::store::Val;
    // Repeated vocabulary values are interned once per column.
    let mut vocab = |c: &mut Column, key: usize, s: &str| {
        if let Some(sc) = c.as_str_mut() {
            if cache.len() <= key {
                cache.resize(key + 1, u64::MAX);
            }
            if cache[key] == u64::MAX {
                cache[key] = sc.intern(s);
            }
            sc.push_ref(cache[key]);
        } else {
            c.push_null();
        }
    };
    let row_len = c.len();
    match fill {
        Fill::First => vocab(c, ctx.first, FIRST[ctx.first]),
        Fill::Last => vocab(c, ctx.last, LAST[ctx.last]),
        Fill::Salutation => {
            let s = if ctx.first.is_multiple_of(2) {
                "Mr."
            } else {
                "Ms."
            };
            vocab(c, ctx.first % 2, s)
        }
        Fill::Email => {
            let s = format!(
                "{}.{}{}@{}",
                FIRST[ctx.first].to_lowercase(),
                LAST[ctx.last].to_lowercase().replace(['\'', ' '], ""),
                ctx.seq,
                DOMAINS[(ctx.seq % DOMAINS.len() as u64) as usize]
            );
            push_text(c, Some(&s))
        }
        Fill::UserName => push_text(c, Some(&format!("user{}@emulator.test", ctx.seq))),
        Fill::Alias => push_text(c, Some(&format!("u{}", ctx.seq % 10_000_000))),
        Fill::Phone => {
            let s = format!(
                "({:03}) 555-{:04}",
                200 + rng.random_range(0..800),
                rng.random_range(0..10_000)
            );
            push_text(c, Some(&s))
        }
        Fill::Company => {
            let (a, b) = ctx.company;
            let s = format!("{} {} {}", COMPANY_A[a], COMPANY_B[b], ctx.seq);
            push_text(c, Some(&s))
        }
        Fill::OppName => {
            let (a, _) = ctx.company;
            let p = (ctx.seq % PRODUCTS.len() as u64) as usize;
            let s = format!("{} - {} {}", COMPANY_A[a], PRODUCTS[p], ctx.seq);
            push_text(c, Some(&s))
        }
        Fill::Title => {
            let k = rng.random_range(0..TITLES.len());
            vocab(c, k, TITLES[k])
        }
        Fill::Department => {
            let k = rng.random_range(0..DEPARTMENTS.len());
            vocab(c, k, DEPARTMENTS[k])
        }
        Fill::Street => {
            let s = format!(
                "{} {}",
                rng.random_range(1..9999),
                STREETS[rng.random_range(0..STREETS.len())]
            );
            push_text(c, Some(&s))
        }
        Fill::City => vocab(c, ctx.city, CITIES[ctx.city].0),
        Fill::State => {
            let st = CITIES[ctx.city].1;
            if st.is_empty() {
                c.push_null()
            } else {
                vocab(c, ctx.city, st)
            }
        }
        Fill::Postal => {
            let s = format!("{}{:02}", CITIES[ctx.city].2, ctx.seq % 100);
            push_text(c, Some(&s))
        }
        Fill::Country => vocab(c, ctx.city, CITIES[ctx.city].3),
        Fill::Lat | Fill::Lon => {
            let base = if matches!(fill, Fill::Lat) {
                CITIES[ctx.city].4
            } else {
                CITIES[ctx.city].5
            };
            c.push_null();
            c.set(
                row_len,
                &Val::Num(((base + rng.random_range(-0.05..0.05)) * 1e6).round() / 1e6),
            );
        }
        Fill::Website => {
            let (a, _) = ctx.company;
            let s = format!(
                "https://www.{}.example.com",
                COMPANY_A[a].to_lowercase().replace(' ', "")
            );
            vocab(c, a, &s)
        }
        Fill::Pick(values, p) => {
            if rng.random_bool(*p) {
                let k = rng.random_range(0..values.len());
                let v = values[k].clone();
                vocab(c, k, &v)
            } else {
                c.push_null()
            }
        }
        Fill::Stage => {
            if stages.is_empty() {
                c.push_null()
            } else {
                vocab(c, ctx.stage, &stages[ctx.stage])
            }
        }
        Fill::Probability => {
            let p = if stages.is_empty() {
                10
            } else {
                (ctx.stage * 100 / stages.len().max(1)) as i64
            };
            c.push_null();
            let p = if stages.get(ctx.stage).is_some_and(|s| s == "Closed Won") {
                100
            } else if stages.get(ctx.stage).is_some_and(|s| s == "Closed Lost") {
                0
            } else {
                p
            };
            c.set(row_len, &Val::Num(p as f64));
        }
        Fill::Money(lo, hi) => {
            c.push_null();
            let v = (rng.random_range(*lo..*hi) / 100.0).round() * 100.0;
            c.set(row_len, &Val::Num(v));
        }
        Fill::Int(lo, hi) => {
            c.push_null();
            c.set(row_len, &Val::Int(rng.random_range(*lo..=*hi)));
        }
        Fill::DateRecent => {
            c.push_null();
            let d = (ctx.created / crate::timefmt::MS_PER_DAY) as i32;
            c.set(row_len, &Val::Date(d));
        }
        Fill::DateFuture => {
            c.push_null();
            let d = (ctx.created / crate::timefmt::MS_PER_DAY) as i32 + rng.random_range(15..400);
            c.set(row_len, &Val::Date(d));
        }
        Fill::Birthdate => {
            c.push_null();
            let d = -rng.random_range(0..12_000) + 9000;
            c.set(row_len, &Val::Date(d));
        }
        Fill::Bool(p) => {
            c.push_null();
            c.set(row_len, &Val::Bool(rng.random_bool(*p)));
        }
        Fill::Ref(parents) => {
            let k = rng.random_range(0..parents.rows.len());
            let prow = parents.rows[k] as usize;
            if let Some(sc) = c.as_str_mut() {
                if parents.cache[prow] == u64::MAX {
                    parents.cache[prow] =
                        sc.intern(&crate::ids::make_id(&parents.prefix, prow as u64 + 1));
                }
                sc.push_ref(parents.cache[prow]);
            } else {
                c.push_null();
            }
        }
        Fill::Owner => {
            if let Some(sc) = c.as_str_mut() {
                if *admin_cell == u64::MAX {
                    *admin_cell = sc.intern(admin);
                }
                sc.push_ref(*admin_cell);
            } else {
                c.push_null();
            }
        }
        Fill::Created => {
            c.push_null();
            c.set(row_len, &Val::DateTime(ctx.created));
        }
        Fill::Modified => {
            c.push_null();
            c.set(row_len, &Val::DateTime(ctx.modified));
        }
        Fill::ExtId => push_text(c, Some(&format!("EXT-{:08}", ctx.seq))),
        Fill::Blob => {
            use base64::Engine;
            let b64 = base64::engine::general_purpose::STANDARD.encode(blob_text(ctx.seq));
            push_text(c, Some(&b64))
        }
        Fill::BlobLen => {
            c.push_null();
            c.set(row_len, &Val::Int(blob_text(ctx.seq).len() as i64));
        }
        Fill::Generic(t) => match t {
            FieldType::String | FieldType::Textarea | FieldType::Combobox | FieldType::AnyType => {
                push_text(c, Some(&format!("Record {}", ctx.seq)))
            }
            FieldType::Email => push_text(c, Some(&format!("user{}@example.com", ctx.seq))),
            FieldType::Url => push_text(c, Some("https://example.com")),
            FieldType::Phone => push_text(c, Some("(555) 555-0100")),
            FieldType::Date => {
                c.push_null();
                c.set(
                    row_len,
                    &Val::Date((ctx.created / crate::timefmt::MS_PER_DAY) as i32),
                );
            }
            FieldType::DateTime => {
                c.push_null();
                c.set(row_len, &Val::DateTime(ctx.created));
            }
            FieldType::Boolean => {
                c.push_null();
                c.set(row_len, &Val::Bool(false));
            }
            _ => c.push_null(),
        },
    }
}
