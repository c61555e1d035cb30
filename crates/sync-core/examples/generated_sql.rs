//! Prints, as one JSON object, the SQL sync-core generates for a sample Contact mapping
//! (table DDL, a new column, applying a page, removing hard-deleted records), so that
//! tests/test_generated_sql.py can execute it against a real Postgres.
//!
//!     cargo run -q --release -p sync-core --example generated_sql

use serde_json::json;
use sync_core::mapping::{map_fields, FieldInfo};
use sync_core::sql::{add_column, apply_page, create_table, delete_ids, ApplyTarget};

fn field(name: &str, sf_type: &str) -> FieldInfo {
    FieldInfo {
        name: name.into(),
        sf_type: sf_type.into(),
        ..Default::default()
    }
}

fn main() {
    let columns = map_fields(&[
        field("Id", "id"),
        field("LastName", "string"),
        field("Birthdate", "date"),
        field("Amount__c", "currency"),
        field("MailingAddress", "address"),
        field("IsDeleted", "boolean"),
        field("SystemModstamp", "datetime"),
    ]);
    let added = map_fields(&[field("Level__c", "picklist")]);
    let target = |events| ApplyTarget {
        schema: "gen",
        table: "contact",
        collection_id: "gen:contact",
        columns: &columns,
        stamp_field: Some("SystemModstamp"),
        emit_events: events,
    };
    let doc = json!({
        "create_table": create_table("gen", "contact", &columns),
        "add_column": add_column("gen", "contact", &added[0]),
        "apply_page": apply_page(&target(true)),
        "apply_page_quiet": apply_page(&target(false)),
        "delete_ids": delete_ids(&target(true)),
    });
    println!("{doc}");
}
