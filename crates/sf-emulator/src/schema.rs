//! The object and field model behind describe, validation, storage and queries.

use std::collections::HashMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldType {
    Id,
    String,
    Textarea,
    Boolean,
    Int,
    Double,
    Currency,
    Percent,
    Date,
    DateTime,
    Picklist,
    Multipicklist,
    Combobox,
    Reference,
    Email,
    Phone,
    Url,
    Address,
    Location,
    /// Binary data; REST returns a URL to fetch it, Bulk queries refuse it.
    Base64,
    /// A history row's old/new value, whatever the tracked field's type.
    AnyType,
}

impl FieldType {
    pub fn parse(s: &str) -> Option<FieldType> {
        Some(match s.to_ascii_lowercase().as_str() {
            "id" => FieldType::Id,
            "string" | "text" => FieldType::String,
            "textarea" => FieldType::Textarea,
            "boolean" | "checkbox" => FieldType::Boolean,
            "int" | "integer" => FieldType::Int,
            "double" | "number" => FieldType::Double,
            "currency" => FieldType::Currency,
            "percent" => FieldType::Percent,
            "date" => FieldType::Date,
            "datetime" => FieldType::DateTime,
            "picklist" => FieldType::Picklist,
            "multipicklist" => FieldType::Multipicklist,
            "combobox" => FieldType::Combobox,
            "reference" | "lookup" => FieldType::Reference,
            "email" => FieldType::Email,
            "phone" => FieldType::Phone,
            "url" => FieldType::Url,
            "address" => FieldType::Address,
            "location" => FieldType::Location,
            "base64" => FieldType::Base64,
            "anytype" => FieldType::AnyType,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            FieldType::Id => "id",
            FieldType::String => "string",
            FieldType::Textarea => "textarea",
            FieldType::Boolean => "boolean",
            FieldType::Int => "int",
            FieldType::Double => "double",
            FieldType::Currency => "currency",
            FieldType::Percent => "percent",
            FieldType::Date => "date",
            FieldType::DateTime => "datetime",
            FieldType::Picklist => "picklist",
            FieldType::Multipicklist => "multipicklist",
            FieldType::Combobox => "combobox",
            FieldType::Reference => "reference",
            FieldType::Email => "email",
            FieldType::Phone => "phone",
            FieldType::Url => "url",
            FieldType::Address => "address",
            FieldType::Location => "location",
            FieldType::Base64 => "base64",
            FieldType::AnyType => "anyType",
        }
    }

    pub fn soap_type(self) -> &'static str {
        match self {
            FieldType::Id | FieldType::Reference => "tns:ID",
            FieldType::Boolean => "xsd:boolean",
            FieldType::Int => "xsd:int",
            FieldType::Double | FieldType::Currency | FieldType::Percent => "xsd:double",
            FieldType::Date => "xsd:date",
            FieldType::DateTime => "xsd:dateTime",
            FieldType::Address => "urn:address",
            FieldType::Location => "urn:location",
            FieldType::Base64 => "xsd:base64Binary",
            FieldType::AnyType => "xsd:anyType",
            _ => "xsd:string",
        }
    }

    pub fn is_text(self) -> bool {
        matches!(
            self,
            FieldType::String
                | FieldType::Textarea
                | FieldType::Picklist
                | FieldType::Multipicklist
                | FieldType::Combobox
                | FieldType::Email
                | FieldType::Phone
                | FieldType::Url
        )
    }

    pub fn is_number(self) -> bool {
        matches!(
            self,
            FieldType::Double | FieldType::Currency | FieldType::Percent
        )
    }
}

/// How a stored-but-derived field is recomputed on writes.
#[derive(Clone, Debug, PartialEq)]
pub enum Derive {
    /// `FirstName LastName` (columns); unresolved until the object is finished.
    FullName { first: usize, last: usize },
}

/// What a field's value is made of.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// A stored column (the `Id` too, so queries can borrow it).
    Column(usize),
    /// The recycle-bin flag (kept beside the rows).
    IsDeleted,
    /// `a * b / 100` (Opportunity.ExpectedRevenue).
    PercentOf { amount: usize, percent: usize },
    /// An address or location assembled from its component fields (field indexes).
    Compound { parts: Vec<(String, usize)> },
    /// A formula that reads a field through lookups (`Account.Name`: relationship
    /// names, then the field), or a field of the same record (`Name`). Nothing is
    /// stored: like Salesforce, the value is worked out whenever the record is read, so
    /// a change to the Account shows at once on its Contacts while their
    /// SystemModstamp stays put (sources in `query::Formula`). Paths are bound by name
    /// at read time (`query::bind_formula`), as other objects' layouts can change.
    Formula { path: Vec<String> },
}

/// The relationship path of a formula that only reads a field, like `Account.Name`,
/// `Account.Owner.Email` or `TEXT(Account.Rating)`; `None` for anything else.
pub fn formula_path(formula: &str) -> Option<Vec<String>> {
    let mut text = formula.trim();
    // Salesforce wants a picklist wrapped in TEXT() to use it as text; a bare picklist
    // path is accepted too (the emulator does not check picklists in formulas).
    if let Some(inner) = text
        .get(..5)
        .filter(|h| h.eq_ignore_ascii_case("text("))
        .and_then(|_| text[5..].strip_suffix(')'))
    {
        text = inner.trim();
    }
    let parts: Vec<String> = text.split('.').map(|p| p.trim().to_string()).collect();
    let ident = |p: &String| {
        !p.is_empty()
            && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !p.starts_with(|c: char| c.is_ascii_digit())
    };
    (parts.len() <= MAX_FORMULA_HOPS + 1 && parts.iter().all(ident)).then_some(parts)
}

/// Relationships a formula path may cross (the emulator's own cap).
pub const MAX_FORMULA_HOPS: usize = 10;

#[derive(Clone, Debug)]
pub struct PicklistValue {
    pub value: String,
    pub label: String,
    pub active: bool,
    pub default: bool,
}

#[derive(Clone, Debug)]
pub struct Field {
    pub name: String,
    pub label: String,
    pub ftype: FieldType,
    pub length: u32,
    pub precision: u32,
    pub scale: u32,
    pub nillable: bool,
    pub createable: bool,
    pub updateable: bool,
    pub calculated: bool,
    pub formula: Option<String>,
    pub defaulted_on_create: bool,
    pub default_value: Option<serde_json::Value>,
    pub external_id: bool,
    pub id_lookup: bool,
    pub unique: bool,
    pub custom: bool,
    pub name_field: bool,
    pub compound: Option<String>,
    pub reference_to: Vec<String>,
    pub relationship_name: Option<String>,
    /// Name of the child relationship on the referenced object (`Contacts`).
    pub child_relationship: Option<String>,
    pub picklist: Vec<PicklistValue>,
    pub restricted: bool,
    pub source: Source,
    /// Stored, but recomputed from other columns on every write.
    pub derive: Option<Derive>,
    /// Removed at run time: hidden everywhere, its column kept so row layouts stay put.
    pub removed: bool,
    /// Hidden from the API user by field-level security (see `fieldchange`): absent
    /// like a removed field, its values kept for when it is shown again.
    pub hidden: bool,
    /// A master-detail relationship (required; detail rows go with their master).
    pub master_detail: bool,
}

impl Field {
    pub fn new(name: &str, ftype: FieldType) -> Field {
        let (length, precision, scale) = match ftype {
            FieldType::Id | FieldType::Reference => (18, 0, 0),
            FieldType::String | FieldType::Combobox => (255, 0, 0),
            FieldType::Textarea => (32000, 0, 0),
            FieldType::Email | FieldType::Url => (255, 0, 0),
            FieldType::Phone => (40, 0, 0),
            FieldType::Picklist | FieldType::Multipicklist => (255, 0, 0),
            FieldType::Double => (0, 18, 0),
            FieldType::Currency => (0, 18, 2),
            FieldType::Percent => (0, 3, 0),
            FieldType::Int => (0, 9, 0),
            _ => (0, 0, 0),
        };
        Field {
            name: name.to_string(),
            label: label_from_name(name),
            ftype,
            length,
            precision,
            scale,
            nillable: true,
            createable: true,
            updateable: true,
            calculated: false,
            formula: None,
            defaulted_on_create: ftype == FieldType::Boolean,
            default_value: if ftype == FieldType::Boolean {
                Some(serde_json::Value::Bool(false))
            } else {
                None
            },
            external_id: false,
            id_lookup: false,
            unique: false,
            custom: name.ends_with("__c"),
            name_field: false,
            compound: None,
            reference_to: Vec::new(),
            relationship_name: None,
            child_relationship: None,
            picklist: Vec::new(),
            restricted: false,
            source: Source::Column(0),
            derive: None,
            removed: false,
            hidden: false,
            master_detail: false,
        }
    }

    /// Required on create: the user must send it.
    pub fn required(&self) -> bool {
        self.createable
            && !self.nillable
            && !self.defaulted_on_create
            && self.ftype != FieldType::Boolean
    }

    pub fn column(&self) -> Option<usize> {
        match self.source {
            Source::Column(c) => Some(c),
            _ => None,
        }
    }

    /// Visible to the API user: not removed, not hidden by field-level security.
    pub fn visible(&self) -> bool {
        !self.removed && !self.hidden
    }

    pub fn is_compound_type(&self) -> bool {
        matches!(self.ftype, FieldType::Address | FieldType::Location)
    }

    pub fn filterable(&self) -> bool {
        !self.is_compound_type()
            && !matches!(
                self.ftype,
                FieldType::Textarea | FieldType::Base64 | FieldType::AnyType
            )
    }

    pub fn sortable(&self) -> bool {
        !self.is_compound_type()
            && !matches!(
                self.ftype,
                FieldType::Textarea | FieldType::Multipicklist | FieldType::Base64
            )
    }
}

/// `AnnualRevenue` -> `Annual Revenue`, `Level__c` -> `Level`.
pub fn label_from_name(name: &str) -> String {
    let base = name.strip_suffix("__c").unwrap_or(name);
    let mut out = String::new();
    let chars: Vec<char> = base.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c == '_' {
            out.push(' ');
            continue;
        }
        if i > 0 && c.is_uppercase() {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            if prev.is_lowercase() || (prev.is_uppercase() && next_lower) {
                out.push(' ');
            }
        }
        out.push(c);
    }
    out
}

#[derive(Clone, Debug)]
pub struct ObjectDef {
    pub name: String,
    pub label: String,
    pub label_plural: String,
    pub key_prefix: [u8; 3],
    pub custom: bool,
    pub createable: bool,
    /// What the API allows on the object (describe's flags; refused otherwise).
    pub updateable: bool,
    pub deletable: bool,
    /// `/updated` and `/deleted` (getUpdated/getDeleted) serve it.
    pub replicateable: bool,
    /// Bulk API query jobs accept it.
    pub bulk_queryable: bool,
    /// Salesforce archives its old records (Task, Event): `query` (REST and Bulk) leaves
    /// out rows whose `IsArchived` is true, `queryAll` returns them.
    pub archives: bool,
    pub fields: Vec<Field>,
    /// Lower-cased field name -> index into `fields` (live fields only).
    pub by_name: HashMap<String, usize>,
    pub columns: usize,
}

impl ObjectDef {
    pub fn prefix_str(&self) -> &str {
        std::str::from_utf8(&self.key_prefix).unwrap_or("000")
    }

    pub fn field(&self, name: &str) -> Option<&Field> {
        self.by_name
            .get(&name.to_ascii_lowercase())
            .map(|&i| &self.fields[i])
    }

    pub fn field_index(&self, name: &str) -> Option<usize> {
        self.by_name.get(&name.to_ascii_lowercase()).copied()
    }

    /// The `IsArchived` column of an object that archives records (`archives`).
    pub fn archived_column(&self) -> Option<usize> {
        if !self.archives {
            return None;
        }
        self.field("IsArchived").and_then(Field::column)
    }

    pub fn live_fields(&self) -> impl Iterator<Item = (usize, &Field)> {
        self.fields.iter().enumerate().filter(|(_, f)| f.visible())
    }

    pub fn reindex(&mut self) {
        self.by_name = self
            .fields
            .iter()
            .enumerate()
            .filter(|(_, f)| f.visible())
            .map(|(i, f)| (f.name.to_ascii_lowercase(), i))
            .collect();
    }

    /// The reference field whose relationship is called `rel` (`Account` -> AccountId).
    pub fn relationship(&self, rel: &str) -> Option<&Field> {
        self.fields.iter().find(|f| {
            f.visible()
                && f.relationship_name
                    .as_deref()
                    .is_some_and(|r| r.eq_ignore_ascii_case(rel))
        })
    }

    /// (name column, first-name column, last-name column) of derived full names.
    pub fn full_name_derives(&self) -> Vec<(usize, usize, usize)> {
        self.fields
            .iter()
            .filter_map(|f| match (&f.derive, &f.source) {
                (Some(Derive::FullName { first, last }), Source::Column(c)) => {
                    Some((*c, *first, *last))
                }
                _ => None,
            })
            .collect()
    }

    pub fn name_field(&self) -> Option<&Field> {
        self.fields.iter().find(|f| f.name_field && f.visible())
    }

    /// Appends a field; stored fields get the next column.
    pub fn push_field(&mut self, mut f: Field) -> usize {
        if matches!(f.source, Source::Column(_)) {
            f.source = Source::Column(self.columns);
            self.columns += 1;
        }
        self.fields.push(f);
        let idx = self.fields.len() - 1;
        self.by_name
            .insert(self.fields[idx].name.to_ascii_lowercase(), idx);
        idx
    }
}
