//! Builds the emulated org's schema from `catalog.txt`, and fields described by the
//! control API.

use crate::schema::{label_from_name, Derive, Field, FieldType, ObjectDef, PicklistValue, Source};
use std::collections::HashMap;

const CATALOG: &str = include_str!("catalog.txt");

#[derive(Debug, thiserror::Error)]
#[error("catalog line {line}: {msg}")]
pub struct CatalogError {
    pub line: usize,
    pub msg: String,
}

/// The built-in objects, in catalog order.
pub fn builtin() -> Result<Vec<ObjectDef>, CatalogError> {
    let mut objects = Vec::new();
    let mut current: Option<(ObjectDef, ObjectFlags)> = None;
    for (n, raw) in CATALOG.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let err = |msg: String| CatalogError { line: n + 1, msg };
        if let Some(rest) = line.strip_prefix("object ") {
            if let Some((def, flags)) = current.take() {
                objects.push(finish_flagged(def, &flags));
            }
            let cols: Vec<&str> = rest.split('|').map(str::trim).collect();
            let head: Vec<&str> = cols[0].split_whitespace().collect();
            if head.len() != 2 || cols.len() < 3 {
                return Err(err(
                    "object line needs `Name prefix | Label | Plural`".into()
                ));
            }
            let flags = ObjectFlags::parse(cols.get(3).copied().unwrap_or("")).map_err(err)?;
            let mut def = new_object(head[0], head[1], cols[1], cols[2]).map_err(err)?;
            def.createable = !flags.has("nocreate");
            def.updateable = !flags.has("noupdate");
            def.deletable = !flags.has("nodelete");
            def.replicateable = !flags.has("noreplicate");
            def.bulk_queryable = !flags.has("nobulk");
            def.archives = flags.has("archives");
            if flags.has("noisdeleted") {
                def.fields.retain(|f| f.name != "IsDeleted");
                def.reindex();
            }
            current = Some((def, flags));
            continue;
        }
        let Some((def, _)) = current.as_mut() else {
            return Err(err("field before any object".into()));
        };
        parse_field_line(def, line).map_err(err)?;
    }
    if let Some((def, flags)) = current.take() {
        objects.push(finish_flagged(def, &flags));
    }
    Ok(objects)
}

/// The words after an object line's third `|`.
struct ObjectFlags(Vec<String>);

impl ObjectFlags {
    const KNOWN: [&'static str; 13] = [
        "owner",
        "archives",
        "nocreate",
        "noupdate",
        "nodelete",
        "noreplicate",
        "nobulk",
        "noisdeleted",
        "audit=full",
        "audit=created",
        "audit=nomodstamp",
        "audit=nocreated",
        "audit=createdmodstamp",
    ];

    fn parse(s: &str) -> Result<ObjectFlags, String> {
        let words: Vec<String> = s.split_whitespace().map(str::to_string).collect();
        if let Some(bad) = words.iter().find(|w| !Self::KNOWN.contains(&w.as_str())) {
            return Err(format!("unknown object flag {bad}"));
        }
        Ok(ObjectFlags(words))
    }

    fn has(&self, flag: &str) -> bool {
        self.0.iter().any(|w| w == flag)
    }

    fn audit(&self) -> Audit {
        if self.has("audit=created") {
            Audit::CreatedOnly
        } else if self.has("audit=nomodstamp") {
            Audit::NoModstamp
        } else if self.has("audit=nocreated") {
            Audit::NoCreated
        } else if self.has("audit=createdmodstamp") {
            Audit::CreatedAndModstamp
        } else {
            Audit::Full
        }
    }
}

/// Which audit fields an object's describe holds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Audit {
    /// CreatedDate, CreatedById, LastModifiedDate, LastModifiedById, SystemModstamp.
    Full,
    /// CreatedDate and CreatedById only: append-only history and trending rows.
    CreatedOnly,
    /// No SystemModstamp (ContentNote).
    NoModstamp,
    /// No CreatedDate/CreatedById (UserRole).
    NoCreated,
    /// CreatedDate, CreatedById and SystemModstamp, no LastModified* (OpportunityHistory).
    CreatedAndModstamp,
}

fn finish_flagged(def: ObjectDef, flags: &ObjectFlags) -> ObjectDef {
    finish_object_audit(def, flags.has("owner"), flags.audit())
}

/// A new object holding only `Id` and `IsDeleted`.
pub fn new_object(
    name: &str,
    prefix: &str,
    label: &str,
    plural: &str,
) -> Result<ObjectDef, String> {
    let p = prefix.as_bytes();
    if p.len() != 3 || !p.iter().all(u8::is_ascii_alphanumeric) {
        return Err(format!("bad key prefix {prefix:?}"));
    }
    let mut def = ObjectDef {
        name: name.to_string(),
        label: label.to_string(),
        label_plural: plural.to_string(),
        key_prefix: [p[0], p[1], p[2]],
        custom: name.ends_with("__c"),
        createable: true,
        updateable: true,
        deletable: true,
        replicateable: true,
        bulk_queryable: true,
        archives: false,
        fields: Vec::new(),
        by_name: HashMap::new(),
        columns: 0,
    };
    let mut id = Field::new("Id", FieldType::Id);
    id.label = format!("{label} ID");
    id.nillable = false;
    id.createable = false;
    id.updateable = false;
    id.defaulted_on_create = true;
    id.id_lookup = true;
    def.push_field(id);
    let mut del = Field::new("IsDeleted", FieldType::Boolean);
    del.label = "Deleted".into();
    del.nillable = false;
    del.createable = false;
    del.updateable = false;
    del.source = Source::IsDeleted;
    def.push_field(del);
    Ok(def)
}

/// Adds owner and audit fields after the declared ones.
pub fn finish_object(def: ObjectDef, owner: bool) -> ObjectDef {
    finish_object_audit(def, owner, Audit::Full)
}

/// Adds owner and the given audit fields after the declared ones.
pub fn finish_object_audit(mut def: ObjectDef, owner: bool, audit: Audit) -> ObjectDef {
    if owner {
        let mut f = Field::new("OwnerId", FieldType::Reference);
        f.label = "Owner ID".into();
        f.nillable = false;
        f.defaulted_on_create = true;
        f.reference_to = vec!["User".into()];
        f.relationship_name = Some("Owner".into());
        def.push_field(f);
    }
    for (name, label, ftype, rel) in [
        ("CreatedDate", "Created Date", FieldType::DateTime, None),
        (
            "CreatedById",
            "Created By ID",
            FieldType::Reference,
            Some("CreatedBy"),
        ),
        (
            "LastModifiedDate",
            "Last Modified Date",
            FieldType::DateTime,
            None,
        ),
        (
            "LastModifiedById",
            "Last Modified By ID",
            FieldType::Reference,
            Some("LastModifiedBy"),
        ),
        (
            "SystemModstamp",
            "System Modstamp",
            FieldType::DateTime,
            None,
        ),
    ] {
        let keep = match audit {
            Audit::Full => true,
            Audit::CreatedOnly => name.starts_with("Created"),
            Audit::NoModstamp => name != "SystemModstamp",
            Audit::NoCreated => !name.starts_with("Created"),
            Audit::CreatedAndModstamp => !name.starts_with("LastModified"),
        };
        if !keep {
            continue;
        }
        let mut f = Field::new(name, ftype);
        f.label = label.into();
        f.nillable = false;
        f.createable = false;
        f.updateable = false;
        f.defaulted_on_create = true;
        if let Some(r) = rel {
            f.reference_to = vec!["User".into()];
            f.relationship_name = Some(r.into());
        }
        def.push_field(f);
    }
    resolve_derived(&mut def);
    def
}

/// Points derived fields (full names, formulas, compound addresses) at their columns.
pub fn resolve_derived(def: &mut ObjectDef) {
    let col = |def: &ObjectDef, name: &str| def.field(name).and_then(Field::column);
    let mut updates = Vec::new();
    let mut derives = Vec::new();
    for (i, f) in def.fields.iter().enumerate() {
        if let Some(Derive::FullName { .. }) = f.derive {
            if let (Some(first), Some(last)) = (col(def, "FirstName"), col(def, "LastName")) {
                derives.push((i, Derive::FullName { first, last }));
            }
        }
        match &f.source {
            Source::PercentOf { .. } => {
                let names: Vec<&str> = f
                    .formula
                    .as_deref()
                    .unwrap_or("")
                    .split(|c: char| !c.is_alphanumeric() && c != '_')
                    .filter(|s| !s.is_empty() && !s.chars().all(|c| c.is_ascii_digit()))
                    .collect();
                if let [a, b] = names.as_slice() {
                    if let (Some(amount), Some(percent)) = (col(def, a), col(def, b)) {
                        updates.push((i, Source::PercentOf { amount, percent }));
                    }
                }
            }
            Source::Compound { .. } if f.ftype == FieldType::Address => {
                let prefix = f.name.strip_suffix("Address").unwrap_or("");
                let mut parts = Vec::new();
                for (key, suffix) in ADDRESS_PARTS {
                    if let Some(c) = col(def, &format!("{prefix}{suffix}")) {
                        parts.push((key.to_string(), c));
                    }
                }
                updates.push((i, Source::Compound { parts }));
            }
            _ => {}
        }
    }
    for (i, s) in updates {
        def.fields[i].source = s;
    }
    for (i, d) in derives {
        def.fields[i].derive = Some(d);
    }
}

const ADDRESS_PARTS: [(&str, &str); 8] = [
    ("city", "City"),
    ("country", "Country"),
    ("geocodeAccuracy", "GeocodeAccuracy"),
    ("latitude", "Latitude"),
    ("longitude", "Longitude"),
    ("postalCode", "PostalCode"),
    ("state", "State"),
    ("street", "Street"),
];

/// A type name with its optional `(length)` or `(precision, scale)`.
type TypeSpec = (String, Option<(u32, Option<u32>)>);

fn parse_type(spec: &str) -> Result<TypeSpec, String> {
    match spec.split_once('(') {
        None => Ok((spec.to_string(), None)),
        Some((t, rest)) => {
            let inner = rest.strip_suffix(')').ok_or("unclosed (")?;
            let mut nums = inner.split(',').map(|s| s.trim().parse::<u32>());
            let a = nums.next().ok_or("empty ()")?.map_err(|e| e.to_string())?;
            let b = match nums.next() {
                Some(r) => Some(r.map_err(|e| e.to_string())?),
                None => None,
            };
            Ok((t.to_string(), Some((a, b))))
        }
    }
}

fn parse_field_line(def: &mut ObjectDef, line: &str) -> Result<(), String> {
    let cols: Vec<&str> = line.split('|').map(str::trim).collect();
    if cols.len() < 2 {
        return Err("field line needs `Name | type`".into());
    }
    let name = cols[0];
    let (tname, size) = parse_type(cols[1])?;
    let attrs = cols.get(2).copied().unwrap_or("");
    let label = cols.get(3).copied().filter(|s| !s.is_empty());
    let values = cols.get(4).copied().unwrap_or("");
    match tname.as_str() {
        "address" => {
            add_address(def, name, label.unwrap_or(name));
            return Ok(());
        }
        "fullname" => {
            let mut f = Field::new(name, FieldType::String);
            f.length = 121;
            f.createable = false;
            f.updateable = false;
            f.derive = Some(Derive::FullName { first: 0, last: 0 });
            f.label = label.unwrap_or("Full Name").to_string();
            apply_attrs(&mut f, attrs)?;
            def.push_field(f);
            return Ok(());
        }
        _ => {}
    }
    let ftype = FieldType::parse(&tname).ok_or_else(|| format!("unknown type {tname}"))?;
    let mut f = Field::new(name, ftype);
    if let Some((a, b)) = size {
        if ftype.is_number() || ftype == FieldType::Int {
            f.precision = a;
            f.scale = b.unwrap_or(0);
        } else {
            f.length = a;
        }
    }
    if let Some(l) = label {
        f.label = l.to_string();
    }
    apply_attrs(&mut f, attrs)?;
    set_picklist(
        &mut f,
        values.split(';').map(str::trim).filter(|s| !s.is_empty()),
    );
    def.push_field(f);
    Ok(())
}

/// Sets picklist values; a leading `*` marks the default.
pub fn set_picklist<'a>(f: &mut Field, values: impl Iterator<Item = &'a str>) {
    for v in values {
        let (default, v) = match v.strip_prefix('*') {
            Some(rest) => (true, rest),
            None => (false, v),
        };
        if default {
            f.defaulted_on_create = true;
            f.default_value = Some(serde_json::Value::String(v.to_string()));
        }
        f.picklist.push(PicklistValue {
            value: v.to_string(),
            label: v.to_string(),
            active: true,
            default,
        });
    }
}

fn apply_attrs(f: &mut Field, attrs: &str) -> Result<(), String> {
    // `calc="..."` may hold spaces: take it out first.
    let mut rest = attrs.to_string();
    if let Some(start) = rest.find("calc=\"") {
        let after = &rest[start + 6..];
        let end = after.find('"').ok_or("unclosed calc")?;
        let text = &after[..end];
        f.formula = Some(text.to_string());
        f.calculated = true;
        f.createable = false;
        f.updateable = false;
        f.source = match crate::schema::formula_path(text) {
            Some(path) => Source::Formula { path },
            None => Source::PercentOf {
                amount: 0,
                percent: 0,
            },
        };
        rest = format!("{}{}", &rest[..start], &after[end + 1..]);
    }
    for a in rest.split_whitespace() {
        match a.split_once('=') {
            None => match a {
                "req" => f.nillable = false,
                "ro" => {
                    f.createable = false;
                    f.updateable = false;
                }
                "noupd" => f.updateable = false,
                "name" => {
                    f.name_field = true;
                    f.id_lookup = true;
                }
                "idlookup" => f.id_lookup = true,
                "unique" => f.unique = true,
                "ext" => {
                    f.external_id = true;
                    f.id_lookup = true;
                }
                "restricted" => f.restricted = true,
                other => return Err(format!("unknown attribute {other}")),
            },
            Some((k, v)) => match k {
                "to" => f.reference_to = v.split(',').map(str::to_string).collect(),
                "rel" => f.relationship_name = Some(v.to_string()),
                "child" => f.child_relationship = Some(v.to_string()),
                "default" => {
                    f.defaulted_on_create = true;
                    f.default_value = Some(match v {
                        "true" => serde_json::Value::Bool(true),
                        "false" => serde_json::Value::Bool(false),
                        _ => serde_json::Value::String(v.to_string()),
                    });
                }
                other => return Err(format!("unknown attribute {other}")),
            },
        }
    }
    if !f.nillable && !f.createable {
        f.defaulted_on_create = true;
    }
    Ok(())
}

fn add_address(def: &mut ObjectDef, prefix: &str, label: &str) {
    let compound = format!("{prefix}Address");
    let label_prefix = label.strip_suffix(" Address").unwrap_or(label);
    let parts: [(&str, FieldType, u32, &str); 8] = [
        ("Street", FieldType::Textarea, 255, "Street"),
        ("City", FieldType::String, 40, "City"),
        ("State", FieldType::String, 80, "State/Province"),
        ("PostalCode", FieldType::String, 20, "Zip/Postal Code"),
        ("Country", FieldType::String, 80, "Country"),
        ("Latitude", FieldType::Double, 0, "Latitude"),
        ("Longitude", FieldType::Double, 0, "Longitude"),
        (
            "GeocodeAccuracy",
            FieldType::Picklist,
            40,
            "Geocode Accuracy",
        ),
    ];
    for (suffix, ftype, len, l) in parts {
        let mut f = Field::new(&format!("{prefix}{suffix}"), ftype);
        f.label = format!("{label_prefix} {l}");
        f.compound = Some(compound.clone());
        if ftype == FieldType::Double {
            f.precision = 18;
            f.scale = 15;
        } else {
            f.length = len;
        }
        if ftype == FieldType::Picklist {
            f.restricted = true;
            set_picklist(
                &mut f,
                [
                    "Address",
                    "NearAddress",
                    "Block",
                    "Street",
                    "ExtendedZip",
                    "Zip",
                    "City",
                    "County",
                    "State",
                    "Unknown",
                ]
                .into_iter(),
            );
        }
        def.push_field(f);
    }
    let mut f = Field::new(&compound, FieldType::Address);
    f.label = label.to_string();
    f.createable = false;
    f.updateable = false;
    f.source = Source::Compound { parts: Vec::new() };
    def.push_field(f);
}

/// A field described by the control API:
/// `{"name":"Level2__c","type":"string","label":"..","length":80,"values":["A","B"],
///   "restricted":true,"required":false,"externalId":false,"unique":false,
///   "referenceTo":"Account","relationshipName":"Foo__r","precision":18,"scale":2}`.
pub fn field_from_json(v: &serde_json::Value) -> Result<Field, String> {
    let name = v
        .get("name")
        .and_then(|n| n.as_str())
        .ok_or("field needs a \"name\"")?;
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("invalid field name {name:?}"));
    }
    let tname = v.get("type").and_then(|t| t.as_str()).unwrap_or("string");
    let ftype = FieldType::parse(tname).ok_or_else(|| format!("unknown field type {tname:?}"))?;
    if matches!(
        ftype,
        FieldType::Id | FieldType::Address | FieldType::Location
    ) {
        return Err(format!("fields of type {tname} cannot be added"));
    }
    let mut f = Field::new(name, ftype);
    f.custom = name.ends_with("__c");
    f.label = v
        .get("label")
        .and_then(|l| l.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| label_from_name(name));
    let num = |k: &str| v.get(k).and_then(|x| x.as_u64()).map(|x| x as u32);
    if let Some(l) = num("length") {
        f.length = l;
    }
    if let Some(p) = num("precision") {
        f.precision = p;
    }
    if let Some(s) = num("scale") {
        f.scale = s;
    }
    let flag = |k: &str| v.get(k).and_then(|x| x.as_bool()).unwrap_or(false);
    if flag("required") {
        f.nillable = false;
    }
    f.restricted = flag("restricted");
    f.unique = flag("unique");
    if flag("externalId") {
        f.external_id = true;
        f.id_lookup = true;
    }
    if let Some(vals) = v
        .get("values")
        .or_else(|| v.get("picklistValues"))
        .and_then(|x| x.as_array())
    {
        let names: Vec<String> = vals
            .iter()
            .filter_map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .or_else(|| x.get("value").and_then(|y| y.as_str()).map(str::to_string))
            })
            .collect();
        set_picklist(&mut f, names.iter().map(String::as_str));
    }
    if ftype == FieldType::Reference {
        let to = v
            .get("referenceTo")
            .and_then(|x| x.as_str())
            .ok_or("a reference field needs \"referenceTo\"")?;
        f.reference_to = vec![to.to_string()];
        f.relationship_name = Some(
            v.get("relationshipName")
                .and_then(|x| x.as_str())
                .map(str::to_string)
                .unwrap_or_else(|| match name.strip_suffix("__c") {
                    Some(base) => format!("{base}__r"),
                    None => name.strip_suffix("Id").unwrap_or(name).to_string(),
                }),
        );
    }
    if let Some(d) = v.get("defaultValue") {
        if !d.is_null() {
            f.defaulted_on_create = true;
            f.default_value = Some(d.clone());
        }
    }
    if let Some(text) = v
        .get("formula")
        .or_else(|| v.get("calculatedFormula"))
        .and_then(|x| x.as_str())
    {
        let path = crate::schema::formula_path(text).ok_or_else(|| {
            format!("formula {text:?}: the emulator evaluates only a field or a path of lookups to one, such as Account.Name or TEXT(Account.Rating)")
        })?;
        if formula_kind(ftype).is_none() || ftype == FieldType::Reference {
            return Err(format!("a formula cannot be of type {tname}"));
        }
        // Formula fields are read-only, optional and never defaulted, unique or
        // external ids: whatever else the description says does not apply.
        f.formula = Some(text.to_string());
        f.calculated = true;
        f.createable = false;
        f.updateable = false;
        f.nillable = true;
        f.defaulted_on_create = false;
        f.default_value = None;
        f.unique = false;
        f.external_id = false;
        f.id_lookup = false;
        f.source = Source::Formula { path };
    }
    Ok(f)
}

/// The formula return type a field type matches (Salesforce's names), if any.
fn formula_kind(t: FieldType) -> Option<&'static str> {
    match t {
        FieldType::Boolean => Some("Checkbox"),
        FieldType::Int | FieldType::Double | FieldType::Currency | FieldType::Percent => {
            Some("Number")
        }
        FieldType::Date => Some("Date"),
        FieldType::DateTime => Some("Date/Time"),
        FieldType::Id | FieldType::Reference => Some("Text"),
        t if t.is_text() => Some("Text"),
        _ => None,
    }
}

/// Checks that a formula field of `start` reads a field that exists, through lookups
/// that exist, and that its type matches the formula's. Locks one object at a time;
/// `start` may be an object not yet in the org.
pub fn check_formula(org: &crate::org::Org, start: &ObjectDef, f: &Field) -> Result<(), String> {
    let Source::Formula { path } = &f.source else {
        return Ok(());
    };
    let text = f.formula.as_deref().unwrap_or_default();
    let fail = |msg: String| format!("{}.{} formula {text:?}: {msg}", start.name, f.name);
    let Some((last, rels)) = path.split_last() else {
        return Err(fail("empty".into()));
    };
    // Runs `step` on the named object's schema, under its lock only while it runs.
    let with_def = |name: &str, step: &mut dyn FnMut(&ObjectDef) -> Result<String, String>| {
        if name.eq_ignore_ascii_case(&start.name) {
            return step(start);
        }
        let obj = org
            .object(name)
            .ok_or_else(|| fail(format!("no object {name}")))?;
        let o = obj.read();
        step(&o.def)
    };
    let mut cur = start.name.clone();
    for rel in rels {
        cur = with_def(&cur, &mut |def| {
            let r = def
                .relationship(rel)
                .ok_or_else(|| fail(format!("{} has no relationship {rel}", def.name)))?;
            r.reference_to
                .first()
                .cloned()
                .ok_or_else(|| fail(format!("{}.{} points nowhere", def.name, r.name)))
        })?;
    }
    with_def(&cur, &mut |def| {
        let target = def
            .field(last)
            .ok_or_else(|| fail(format!("no field {last} on {}", def.name)))?;
        if matches!(target.source, Source::Formula { .. }) {
            return Err(fail(format!(
                "{}.{} is itself a path formula: the emulator does not chain them",
                def.name, target.name
            )));
        }
        let (want, got) = (formula_kind(f.ftype), formula_kind(target.ftype));
        match (want, got) {
            (Some(w), Some(g)) if w == g && !target.is_compound_type() => Ok(String::new()),
            _ => Err(fail(format!(
                "{}.{} is of type {}, which a {} formula cannot return",
                def.name,
                target.name,
                target.ftype.name(),
                f.ftype.name()
            ))),
        }
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_parses() {
        let objs = builtin().unwrap();
        assert!(objs.len() >= 22);
        let contact = objs.iter().find(|o| o.name == "Contact").unwrap();
        assert!(contact.field("MailingAddress").is_some());
        assert_eq!(
            contact.field("MailingCity").unwrap().compound.as_deref(),
            Some("MailingAddress")
        );
        assert!(contact.field("LastName").unwrap().required());
        assert!(!contact.field("Name").unwrap().createable);
        let opp = objs.iter().find(|o| o.name == "Opportunity").unwrap();
        assert!(matches!(
            opp.field("ExpectedRevenue").unwrap().source,
            Source::PercentOf { .. }
        ));
        assert!(opp.field("StageName").unwrap().restricted);
    }

    #[test]
    fn formulas_that_read_a_path() {
        let path = |s: &str| crate::schema::formula_path(s);
        assert_eq!(path("Account.Name").unwrap(), ["Account", "Name"]);
        assert_eq!(
            path(" text( Account.Owner.Alias ) ").unwrap(),
            ["Account", "Owner", "Alias"]
        );
        assert_eq!(path("Name").unwrap(), ["Name"]);
        for other in [
            "Amount * Probability / 100",
            "Account..Name",
            "",
            "1Account.Name",
        ] {
            assert!(path(other).is_none(), "{other}");
        }
        let f = field_from_json(&serde_json::json!({
            "name": "Account_Name__c", "type": "string", "formula": "Account.Name",
            "required": true, "externalId": true
        }))
        .unwrap();
        assert!(f.calculated && !f.createable && !f.updateable && f.nillable);
        assert!(!f.external_id && f.column().is_none());
        assert_eq!(f.formula.as_deref(), Some("Account.Name"));
        let mut def = new_object("Thing__c", "a0X", "Thing", "Things").unwrap();
        parse_field_line(
            &mut def,
            r#"Acct_Name__c | string | calc="Account__r.Name""#,
        )
        .unwrap();
        parse_field_line(
            &mut def,
            r#"Rev__c | currency | calc="Amount__c * Pct__c / 100""#,
        )
        .unwrap();
        assert_eq!(
            def.field("Acct_Name__c").unwrap().source,
            Source::Formula {
                path: vec!["Account__r".into(), "Name".into()]
            }
        );
        assert!(matches!(
            def.field("Rev__c").unwrap().source,
            Source::PercentOf { .. }
        ));
    }
}
