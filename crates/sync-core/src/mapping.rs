//! Describe fields to columns: names, Postgres types, and which fields each read path
//! (REST or Bulk) can select.

use std::collections::HashSet;

use crate::naming::snake_case;

/// The parts of a Salesforce field describe the mapping needs (the extension converts
/// the client's describe into this so this crate stays free of HTTP types).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldInfo {
    pub name: String,
    /// Describe `type`: `string`, `datetime`, `address`, ...
    pub sf_type: String,
    /// For components of a compound field (`BillingCity`), the compound's name.
    pub compound_field_name: Option<String>,
    pub createable: bool,
    pub updateable: bool,
    pub calculated: bool,
    pub nillable: bool,
    pub restricted_picklist: bool,
    pub external_id: bool,
    /// Active picklist values.
    pub picklist_values: Vec<String>,
}

/// Postgres column types the mapping produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgType {
    Text,
    Boolean,
    Integer,
    BigInt,
    Numeric,
    Date,
    Timestamptz,
    Time,
    Jsonb,
}

impl PgType {
    pub fn as_sql(self) -> &'static str {
        match self {
            PgType::Text => "text",
            PgType::Boolean => "boolean",
            PgType::Integer => "integer",
            PgType::BigInt => "bigint",
            PgType::Numeric => "numeric",
            PgType::Date => "date",
            PgType::Timestamptz => "timestamptz",
            PgType::Time => "time",
            PgType::Jsonb => "jsonb",
        }
    }

    pub fn from_sql(s: &str) -> Option<PgType> {
        Some(match s {
            "text" => PgType::Text,
            "boolean" => PgType::Boolean,
            "integer" => PgType::Integer,
            "bigint" => PgType::BigInt,
            "numeric" => PgType::Numeric,
            "date" => PgType::Date,
            "timestamptz" => PgType::Timestamptz,
            "time" => PgType::Time,
            "jsonb" => PgType::Jsonb,
            _ => return None,
        })
    }

    /// The type of a column as the catalog names it (`format_type(atttypid, NULL)`),
    /// so a column an operator altered is read as what it now is.
    pub fn from_catalog(s: &str) -> Option<PgType> {
        Some(match s {
            "text" | "character varying" | "character" => PgType::Text,
            "timestamp with time zone" => PgType::Timestamptz,
            "time without time zone" => PgType::Time,
            other => return PgType::from_sql(other),
        })
    }

    /// The column type for a describe `type`; `None` for fields we do not sync. A base64
    /// field's column holds the path Salesforce serves its bytes from, which is what
    /// REST queries return for it (`ColumnSpec::is_base64`).
    pub fn for_sf_type(sf_type: &str) -> Option<PgType> {
        Some(match sf_type {
            "boolean" => PgType::Boolean,
            "int" => PgType::Integer,
            "long" => PgType::BigInt,
            "double" | "currency" | "percent" => PgType::Numeric,
            "date" => PgType::Date,
            "datetime" => PgType::Timestamptz,
            "time" => PgType::Time,
            "address" | "location" | "anyType" | "complexvalue" | "json" => PgType::Jsonb,
            _ => PgType::Text,
        })
    }
}

/// What a column does when Salesforce changes its field's type (text to picklist,
/// number to text, date to date/time...). Values already in the column are never lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeFollow {
    /// The column type stays right (text to picklist, a new number precision).
    Same,
    /// Every value converts without loss: the column changes type.
    Alter,
    /// The column keeps its type, which holds the field's new values (a text column of
    /// a field now numeric); the operator may convert it when the values allow.
    Keep,
    /// The column cannot hold the new values: it stops being filled and keeps what it
    /// has until the operator converts it.
    Stop,
}

/// True when a column of type `column` reads every value of a field of type `field`
/// (values are read as the column's type).
pub fn holds(column: PgType, field: PgType) -> bool {
    use PgType::*;
    column == field
        || matches!(
            (column, field),
            (Text | Jsonb, _)
                | (Numeric, Integer | BigInt)
                | (BigInt, Integer)
                | (Timestamptz, Date)
        )
}

/// How a column of type `column` follows a field whose values now map to `field`
/// (None: a type the sync does not store, such as base64).
pub fn follow_type(column: PgType, field: Option<PgType>) -> TypeFollow {
    use PgType::*;
    let Some(field) = field else {
        return TypeFollow::Stop;
    };
    if column == field {
        return TypeFollow::Same;
    }
    let lossless = matches!(
        (column, field),
        (Integer, BigInt)
            | (Integer | BigInt, Numeric)
            | (Date, Timestamptz)
            | (
                Boolean | Integer | BigInt | Numeric | Date | Timestamptz | Time,
                Text
            )
    );
    if lossless {
        TypeFollow::Alter
    } else if holds(column, field) {
        TypeFollow::Keep
    } else {
        TypeFollow::Stop
    }
}

/// One synced field and the column that holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnSpec {
    pub field: String,
    pub column: String,
    pub pg_type: PgType,
    pub sf_type: String,
    /// Set on components of a compound field (`BillingCity` -> `BillingAddress`).
    pub compound_of: Option<String>,
    pub createable: bool,
    pub updateable: bool,
    pub calculated: bool,
    pub nillable: bool,
    pub restricted_picklist: bool,
    pub external_id: bool,
    pub picklist_values: Vec<String>,
}

impl ColumnSpec {
    /// Compound fields (`address`, `location`) cannot be selected by Bulk queries; they
    /// are rebuilt from their components.
    pub fn is_compound(&self) -> bool {
        self.sf_type == "address" || self.sf_type == "location"
    }

    /// A base64 field (`Attachment.Body`): its column holds the path of the bytes, which
    /// Bulk queries cannot select and the sync never writes.
    pub fn is_base64(&self) -> bool {
        self.sf_type == "base64"
    }
}

/// Columns our tables reserve for themselves; Salesforce names never start with `_`,
/// so these cannot collide after snake-casing, but the check keeps that explicit.
pub const RESERVED_COLUMNS: &[&str] = &["_row_id", "_write_state"];

/// Maps describe fields to columns, in describe order. Two fields whose snake-cased
/// names collide get numeric suffixes so no field is silently dropped.
/// Test fixtures: the columns of fields given as (name, Salesforce type, compound field).
#[cfg(test)]
pub(crate) fn columns_of(fields: &[(&str, &str, Option<&str>)]) -> Vec<ColumnSpec> {
    let infos: Vec<FieldInfo> = fields
        .iter()
        .map(|(name, sf_type, compound)| FieldInfo {
            name: name.to_string(),
            sf_type: sf_type.to_string(),
            compound_field_name: compound.map(str::to_string),
            ..Default::default()
        })
        .collect();
    map_fields(&infos)
}

pub fn map_fields(fields: &[FieldInfo]) -> Vec<ColumnSpec> {
    map_avoiding(&[], fields)
}

/// Maps fields new to an existing table: existing columns keep their names and new
/// fields get names unused so far (including by columns of fields since removed).
pub fn map_new_fields(existing_columns: &[String], fields: &[FieldInfo]) -> Vec<ColumnSpec> {
    map_avoiding(existing_columns, fields)
}

/// Maps `fields` to columns whose names avoid the reserved ones, `taken`, and each other.
fn map_avoiding(taken: &[String], fields: &[FieldInfo]) -> Vec<ColumnSpec> {
    let mut used: HashSet<String> = RESERVED_COLUMNS.iter().map(|s| s.to_string()).collect();
    used.extend(taken.iter().cloned());
    let mut out = Vec::with_capacity(fields.len());
    for f in fields {
        let Some(pg_type) = PgType::for_sf_type(&f.sf_type) else {
            continue;
        };
        let column = unique_name(snake_case(&f.name), &mut used);
        out.push(ColumnSpec {
            field: f.name.clone(),
            column,
            pg_type,
            sf_type: f.sf_type.clone(),
            compound_of: f.compound_field_name.clone(),
            createable: f.createable,
            updateable: f.updateable,
            calculated: f.calculated,
            nillable: f.nillable,
            restricted_picklist: f.restricted_picklist,
            external_id: f.external_id,
            picklist_values: f.picklist_values.clone(),
        });
    }
    out
}

fn unique_name(base: String, used: &mut HashSet<String>) -> String {
    let mut name = base.clone();
    let mut n = 2;
    while used.contains(&name) {
        name = crate::naming::fit_identifier(format!("{base}_{n}"));
        n += 1;
    }
    used.insert(name.clone());
    name
}

/// The field whose value moves forward on every change (the poll cursor), in order of
/// preference; objects without one can be backfilled but not polled.
pub fn modstamp_field(columns: &[ColumnSpec]) -> Option<&str> {
    ["SystemModstamp", "LastModifiedDate", "CreatedDate"]
        .into_iter()
        .find(|name| {
            columns
                .iter()
                .any(|c| c.field == *name && c.pg_type == PgType::Timestamptz)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: &str, t: &str) -> FieldInfo {
        FieldInfo {
            name: name.into(),
            sf_type: t.into(),
            ..Default::default()
        }
    }

    #[test]
    fn maps_types_and_names() {
        let cols = map_fields(&[
            field("Id", "id"),
            field("FirstName", "string"),
            field("IsDeleted", "boolean"),
            field("NumberOfEmployees", "int"),
            field("BigCount__c", "long"),
            field("AnnualRevenue", "currency"),
            field("Probability", "percent"),
            field("Score__c", "double"),
            field("Birthdate", "date"),
            field("SystemModstamp", "datetime"),
            field("Alarm__c", "time"),
            field("MailingAddress", "address"),
            field("Where__c", "location"),
            field("Anything__c", "anyType"),
            field("Photo__c", "base64"),
            field("Status__c", "picklist"),
        ]);
        let got: Vec<(&str, &str)> = cols
            .iter()
            .map(|c| (c.column.as_str(), c.pg_type.as_sql()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("id", "text"),
                ("first_name", "text"),
                ("is_deleted", "boolean"),
                ("number_of_employees", "integer"),
                ("big_count__c", "bigint"),
                ("annual_revenue", "numeric"),
                ("probability", "numeric"),
                ("score__c", "numeric"),
                ("birthdate", "date"),
                ("system_modstamp", "timestamptz"),
                ("alarm__c", "time"),
                ("mailing_address", "jsonb"),
                ("where__c", "jsonb"),
                ("anything__c", "jsonb"),
                ("photo__c", "text"),
                ("status__c", "text"),
            ]
        );
        assert!(cols
            .iter()
            .find(|c| c.field == "MailingAddress")
            .unwrap()
            .is_compound());
        assert_eq!(modstamp_field(&cols), Some("SystemModstamp"));
    }

    #[test]
    fn columns_follow_type_changes_only_without_loss() {
        use PgType::*;
        use TypeFollow::*;
        // picklist, long text area, email...: all text
        assert_eq!(follow_type(Text, Some(Text)), Same);
        assert_eq!(follow_type(Integer, Some(Numeric)), Alter);
        assert_eq!(follow_type(Integer, Some(BigInt)), Alter);
        assert_eq!(follow_type(Numeric, Some(Text)), Alter);
        assert_eq!(follow_type(Boolean, Some(Text)), Alter);
        assert_eq!(follow_type(Timestamptz, Some(Text)), Alter);
        assert_eq!(follow_type(Date, Some(Timestamptz)), Alter);
        // the column reads the new values as they are; converting may lose some
        assert_eq!(follow_type(Text, Some(Numeric)), Keep);
        assert_eq!(follow_type(Numeric, Some(Integer)), Keep);
        assert_eq!(follow_type(Timestamptz, Some(Date)), Keep);
        assert_eq!(follow_type(Jsonb, Some(Text)), Keep);
        // neither
        assert_eq!(follow_type(Numeric, Some(Boolean)), Stop);
        assert_eq!(follow_type(Date, Some(Numeric)), Stop);
        assert_eq!(follow_type(Numeric, None), Stop);
        assert_eq!(PgType::from_catalog("character varying"), Some(Text));
        assert_eq!(
            PgType::from_catalog("timestamp with time zone"),
            Some(Timestamptz)
        );
        assert_eq!(PgType::from_catalog("numeric"), Some(Numeric));
        assert_eq!(PgType::from_catalog("point"), None);
    }

    #[test]
    fn colliding_names_get_suffixes() {
        let cols = map_fields(&[field("Foo_Bar", "string"), field("FooBar", "string")]);
        assert_eq!(cols[0].column, "foo_bar");
        assert_eq!(cols[1].column, "foo_bar_2");
    }

    #[test]
    fn new_fields_avoid_existing_columns() {
        let cols = map_new_fields(&["foo_bar".into()], &[field("FooBar", "string")]);
        assert_eq!(cols[0].column, "foo_bar_2");
    }

    #[test]
    fn modstamp_falls_back() {
        let cols = map_fields(&[field("Id", "id"), field("CreatedDate", "datetime")]);
        assert_eq!(modstamp_field(&cols), Some("CreatedDate"));
        assert_eq!(modstamp_field(&map_fields(&[field("Id", "id")])), None);
    }
}
