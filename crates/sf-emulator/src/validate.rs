//! The one write path: checks values the way Salesforce does, then stores them with
//! audit stamps. REST, collections, composite, bulk ingest and the control API all
//! come through here.

use crate::error::ApiError;
use crate::org::{ObjRef, Org};
use crate::schema::{Field, FieldType, ObjectDef};
use crate::store::{SObject, Val};
use soql::Value;

/// A value as it arrived: JSON (REST) or CSV text (Bulk).
#[derive(Clone, Copy, Debug)]
pub enum Input<'a> {
    Json(&'a serde_json::Value),
    Text(&'a str),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Create,
    Update,
}

/// Field index -> new value.
pub type Changes = Vec<(usize, Val)>;

fn unknown_field(def: &ObjectDef, name: &str) -> ApiError {
    ApiError::bad(
        "INVALID_FIELD",
        format!("No such column '{name}' on sobject of type {}", def.name),
    )
}

/// Checks and converts incoming values: unknown fields, read-only fields, types,
/// lengths, restricted picklists, required fields (on create, with defaults filled
/// in) and validation rules.
pub fn prepare<'a>(
    def: &ObjectDef,
    input: impl IntoIterator<Item = (&'a str, Input<'a>)>,
    mode: Mode,
) -> Result<Changes, ApiError> {
    let mut raw: Vec<(usize, Input<'a>)> = Vec::new();
    let mut readonly = Vec::new();
    for (name, value) in input {
        if name == "attributes" {
            continue;
        }
        if name.eq_ignore_ascii_case("id") {
            if mode == Mode::Create {
                return Err(ApiError::bad(
                    "INVALID_FIELD",
                    "The Id field should not be specified in the sobject data.",
                ));
            }
            continue;
        }
        let Some(idx) = def.field_index(name) else {
            return Err(unknown_field(def, name));
        };
        let f = &def.fields[idx];
        let writable = match mode {
            Mode::Create => f.createable,
            Mode::Update => f.updateable,
        };
        if !writable {
            readonly.push(f.name.clone());
            continue;
        }
        raw.push((idx, value));
    }
    if !readonly.is_empty() {
        return Err(ApiError::bad(
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            format!(
                "Unable to create/update fields: {}. Please check the security settings of this field and verify that it is read/write for your profile or permission set.",
                readonly.join(", ")
            ),
        )
        .with_fields(readonly));
    }
    let mut changes: Changes = Vec::with_capacity(raw.len());
    for (idx, value) in raw {
        let f = &def.fields[idx];
        if let Some(v) = convert(f, value)? {
            changes.retain(|(i, _)| *i != idx);
            changes.push((idx, v));
        }
    }
    if mode == Mode::Create {
        for (idx, f) in def.live_fields() {
            if changes.iter().any(|(i, _)| *i == idx) || !f.createable {
                continue;
            }
            if let Some(d) = &f.default_value {
                if let Some(v) = convert(f, Input::Json(d))? {
                    changes.push((idx, v));
                }
            }
        }
    }
    let missing: Vec<String> = def
        .live_fields()
        .filter(|(idx, f)| {
            f.createable
                && !f.nillable
                && f.ftype != FieldType::Boolean
                && match changes.iter().find(|(i, _)| i == idx) {
                    Some((_, v)) => *v == Val::Null,
                    None => mode == Mode::Create && f.required(),
                }
        })
        .map(|(_, f)| f.name.clone())
        .collect();
    if !missing.is_empty() {
        return Err(ApiError::bad(
            "REQUIRED_FIELD_MISSING",
            format!("Required fields are missing: [{}]", missing.join(", ")),
        )
        .with_fields(missing));
    }
    rules(def, &changes)?;
    Ok(changes)
}

/// The org's validation rules.
fn rules(def: &ObjectDef, changes: &Changes) -> Result<(), ApiError> {
    if def.name == "Opportunity" {
        if let Some(amount) = def.field_index("Amount") {
            if let Some((_, Val::Num(a))) = changes.iter().find(|(i, _)| *i == amount) {
                if *a < 0.0 {
                    return Err(ApiError::bad(
                        "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                        "Amount must not be negative",
                    )
                    .with_fields(vec!["Amount".into()]));
                }
            }
        }
    }
    Ok(())
}

fn json_type_error(f: &Field, v: &serde_json::Value) -> ApiError {
    let (token, text) = match v {
        serde_json::Value::String(s) => ("VALUE_STRING", s.clone()),
        serde_json::Value::Number(n) => {
            if n.is_f64() {
                ("VALUE_NUMBER_FLOAT", n.to_string())
            } else {
                ("VALUE_NUMBER_INT", n.to_string())
            }
        }
        serde_json::Value::Bool(b) => {
            (if *b { "VALUE_TRUE" } else { "VALUE_FALSE" }, b.to_string())
        }
        serde_json::Value::Array(_) => ("START_ARRAY", "[".into()),
        serde_json::Value::Object(_) => ("START_OBJECT", "{".into()),
        serde_json::Value::Null => ("VALUE_NULL", "null".into()),
    };
    let t = match f.ftype {
        FieldType::Boolean => "boolean",
        FieldType::Int => "int",
        FieldType::Double | FieldType::Currency | FieldType::Percent => "double",
        FieldType::Date => "date",
        FieldType::DateTime => "datetime",
        FieldType::Id | FieldType::Reference => "id",
        _ => "string",
    };
    ApiError::bad(
        "JSON_PARSER_ERROR",
        format!("Cannot deserialize instance of {t} from {token} value {text} or request may be missing a required field"),
    )
}

fn text_type_error(f: &Field, v: &str) -> ApiError {
    ApiError::bad(
        "INVALID_TYPE_ON_FIELD_IN_RECORD",
        format!("{}: value not of required type: {v}", f.label),
    )
    .with_fields(vec![f.name.clone()])
}

/// Converts one value; `Ok(None)` means "leave the field alone" (an empty CSV cell).
pub fn convert(f: &Field, input: Input<'_>) -> Result<Option<Val>, ApiError> {
    let text: Option<String> = match input {
        Input::Json(serde_json::Value::Null) => return Ok(Some(null_for(f))),
        Input::Json(serde_json::Value::String(s)) => Some(s.clone()),
        Input::Json(serde_json::Value::Number(n)) => {
            return match f.ftype {
                FieldType::Int => match (n.as_i64(), n.as_f64()) {
                    (Some(i), _) => Ok(Some(Val::Int(i))),
                    (None, Some(x)) if x.fract() == 0.0 => Ok(Some(Val::Int(x as i64))),
                    _ => Err(json_type_error(f, &serde_json::Value::Number(n.clone()))),
                },
                t if t.is_number() => Ok(Some(Val::Num(n.as_f64().unwrap_or(0.0)))),
                FieldType::DateTime => Ok(n.as_i64().map(Val::DateTime)),
                t if t.is_text() => finish_text(f, n.to_string()).map(Some),
                _ => Err(json_type_error(f, &serde_json::Value::Number(n.clone()))),
            }
        }
        Input::Json(serde_json::Value::Bool(b)) => {
            return match f.ftype {
                FieldType::Boolean => Ok(Some(Val::Bool(*b))),
                t if t.is_text() => finish_text(f, b.to_string()).map(Some),
                _ => Err(json_type_error(f, &serde_json::Value::Bool(*b))),
            }
        }
        Input::Json(other) => return Err(json_type_error(f, other)),
        Input::Text(t) => {
            if t.is_empty() {
                return Ok(None);
            }
            if t == "#N/A" {
                return Ok(Some(null_for(f)));
            }
            None.or(Some(t.to_string()))
        }
    };
    let s = text.unwrap_or_default();
    let is_json = matches!(input, Input::Json(_));
    let bad = |f: &Field| -> ApiError {
        if is_json {
            json_type_error(f, &serde_json::Value::String(s.clone()))
        } else {
            text_type_error(f, &s)
        }
    };
    let v = match f.ftype {
        FieldType::Boolean => match s.to_ascii_lowercase().as_str() {
            "true" | "1" => Val::Bool(true),
            "false" | "0" | "" => Val::Bool(false),
            _ => return Err(bad(f)),
        },
        FieldType::Int => match s.trim().parse::<i64>() {
            Ok(i) => Val::Int(i),
            Err(_) if s.trim().is_empty() => Val::Null,
            Err(_) => return Err(bad(f)),
        },
        t if t.is_number() => match s.trim().parse::<f64>() {
            Ok(x) if x.is_finite() => Val::Num(x),
            _ if s.trim().is_empty() => Val::Null,
            _ => return Err(bad(f)),
        },
        FieldType::Date => {
            let d = s.get(..10).and_then(crate::timefmt::parse_date);
            match d {
                Some(d) if s.len() == 10 || crate::timefmt::parse_datetime(&s).is_some() => {
                    Val::Date(d as i32)
                }
                _ if s.trim().is_empty() => Val::Null,
                _ => return Err(bad(f)),
            }
        }
        FieldType::DateTime => match crate::timefmt::parse_datetime(&s) {
            Some(ms) => Val::DateTime(ms),
            None if s.trim().is_empty() => Val::Null,
            None => return Err(bad(f)),
        },
        FieldType::Id | FieldType::Reference => {
            if s.is_empty() {
                Val::Null
            } else {
                match crate::ids::normalize(&s) {
                    Some(id15) => Val::Str(crate::ids::to18(id15)),
                    None => {
                        return Err(ApiError::bad(
                            "MALFORMED_ID",
                            format!("{}: id value of incorrect type: {s}", f.label),
                        )
                        .with_fields(vec![f.name.clone()]))
                    }
                }
            }
        }
        _ => finish_text(f, s.clone())?,
    };
    Ok(Some(v))
}

fn null_for(f: &Field) -> Val {
    if f.ftype == FieldType::Boolean {
        Val::Bool(false)
    } else {
        Val::Null
    }
}

fn finish_text(f: &Field, s: String) -> Result<Val, ApiError> {
    if s.is_empty() {
        return Ok(Val::Null);
    }
    let max = f.length as usize;
    if max > 0 && s.chars().count() > max {
        return Err(ApiError::bad(
            "STRING_TOO_LONG",
            format!("{}: data value too large: {s} (max length={max})", f.label),
        )
        .with_fields(vec![f.name.clone()]));
    }
    match f.ftype {
        FieldType::Email => {
            let ok = match s.split_once('@') {
                Some((local, domain)) => {
                    !local.is_empty()
                        && domain.contains('.')
                        && !domain.starts_with('.')
                        && !domain.ends_with('.')
                        && !s.contains(char::is_whitespace)
                }
                None => false,
            };
            if !ok {
                return Err(ApiError::bad(
                    "INVALID_EMAIL_ADDRESS",
                    format!("{}: invalid email address: {s}", f.label),
                )
                .with_fields(vec![f.name.clone()]));
            }
        }
        FieldType::Picklist | FieldType::Multipicklist if f.restricted => {
            let parts: Vec<&str> = if f.ftype == FieldType::Multipicklist {
                s.split(';').collect()
            } else {
                vec![s.as_str()]
            };
            for p in parts {
                if !f.picklist.iter().any(|v| v.active && v.value == p) {
                    return Err(ApiError::bad(
                        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                        format!("{}: bad value for restricted picklist field: {p}", f.label),
                    )
                    .with_fields(vec![f.name.clone()]));
                }
            }
        }
        _ => {}
    }
    Ok(Val::Str(s))
}

/// Checks that reference values point at live records of an allowed object.
pub fn check_references(org: &Org, def: &ObjectDef, changes: &Changes) -> Result<(), ApiError> {
    for (idx, v) in changes {
        let f = &def.fields[*idx];
        let Val::Str(id) = v else { continue };
        if f.ftype != FieldType::Reference {
            continue;
        }
        let Some(prefix) = crate::ids::prefix_of(id) else {
            continue;
        };
        let target = org.by_prefix(&prefix);
        let allowed = target.as_ref().is_some_and(|t| {
            let t = t.read();
            f.reference_to
                .iter()
                .any(|r| r.eq_ignore_ascii_case(&t.def.name))
        });
        if !allowed {
            return Err(ApiError::bad(
                "FIELD_INTEGRITY_EXCEPTION",
                format!("{}: id value of incorrect type: {id}", f.label),
            )
            .with_fields(vec![f.name.clone()]));
        }
        let exists = target.is_some_and(|t| {
            let t = t.read();
            t.row_of(id)
                .is_some_and(|r| t.table.row_state(r) == Some(crate::store::RowState::Live))
        });
        if !exists {
            return Err(
                ApiError::bad("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")
                    .with_fields(vec![f.name.clone()]),
            );
        }
    }
    Ok(())
}

/// DUPLICATE_VALUE for unique fields already used by another row.
fn check_unique(obj: &mut SObject, changes: &Changes, row: Option<usize>) -> Result<(), ApiError> {
    for (idx, v) in changes {
        let f = &obj.def.fields[*idx];
        let (true, Some(col), Val::Str(s)) = (f.unique, f.column(), v) else {
            continue;
        };
        let name = f.name.clone();
        let others: Vec<u32> = obj
            .table
            .lookup(col, s)
            .into_iter()
            .filter(|&r| Some(r as usize) != row)
            .collect();
        if let Some(&other) = others.first() {
            return Err(ApiError::bad(
                "DUPLICATE_VALUE",
                format!(
                    "duplicate value found: {name} duplicates value on record with id: {}",
                    obj.id_of(other as usize)
                ),
            )
            .with_fields(vec![name]));
        }
    }
    Ok(())
}

/// Stores changes into `row` (a new row when `None`) and stamps the audit fields.
fn apply(obj: &mut SObject, row: Option<usize>, changes: &Changes, user: &str) -> usize {
    let now = crate::timefmt::stamp_ms();
    let created = row.is_none();
    let row = match row {
        Some(r) => r,
        None => obj.new_row(),
    };
    let col = |obj: &SObject, name: &str| obj.def.field(name).and_then(Field::column);
    for (idx, v) in changes {
        if let Some(c) = obj.def.fields[*idx].column() {
            obj.table.set(c, row, v);
        }
    }
    let mut stamps: Vec<(&str, Val)> = vec![
        ("LastModifiedDate", Val::DateTime(now)),
        ("LastModifiedById", Val::Str(user.to_string())),
        ("SystemModstamp", Val::DateTime(now)),
    ];
    if created {
        if let Some(c) = obj.def.archived_column() {
            obj.table.set(c, row, &Val::Bool(false));
        }
        stamps.push(("CreatedDate", Val::DateTime(now)));
        stamps.push(("CreatedById", Val::Str(user.to_string())));
        if let Some(c) = col(obj, "OwnerId") {
            if obj.table.cols[c].get(row) == Value::Null {
                stamps.push(("OwnerId", Val::Str(user.to_string())));
            }
        }
        let numbered: Vec<String> = obj
            .def
            .live_fields()
            .filter(|(_, f)| f.name_field && !f.createable && f.name.ends_with("Number"))
            .map(|(_, f)| f.name.clone())
            .collect();
        for n in numbered {
            if let Some(c) = col(obj, &n) {
                obj.table.set(c, row, &Val::Str(format!("{:08}", row + 1)));
            }
        }
    }
    for (name, v) in stamps {
        if let Some(c) = col(obj, name) {
            obj.table.set(c, row, &v);
        }
    }
    if obj.def.name == "Opportunity" {
        if let Some(Value::Text(stage)) = col(obj, "StageName").map(|c| obj.table.cols[c].get(row))
        {
            let closed = stage.starts_with("Closed");
            let won = stage == "Closed Won";
            if let Some(c) = col(obj, "IsClosed") {
                obj.table.set(c, row, &Val::Bool(closed));
            }
            if let Some(c) = col(obj, "IsWon") {
                obj.table.set(c, row, &Val::Bool(won));
            }
        }
    }
    for (c, first, last) in obj.def.full_name_derives() {
        let name = crate::store::full_name(
            obj.table.cols[first].get(row),
            obj.table.cols[last].get(row),
        );
        obj.table.set(c, row, &name.map_or(Val::Null, Val::Str));
    }
    row
}

/// Creates a record from checked changes; returns its id.
pub fn create(org: &Org, obj: &ObjRef, changes: &Changes) -> Result<String, ApiError> {
    {
        let o = obj.read();
        check_references(org, &o.def, changes)?;
    }
    let mut o = obj.write();
    check_unique(&mut o, changes, None)?;
    let row = apply(&mut o, None, changes, &org.user_id);
    if let Some(w) = crate::cdc::watch(&o) {
        w.created(&o, row);
    }
    crate::txn::created(obj, row);
    Ok(o.id_of(row).to_string())
}

/// The row of a record that can be changed: MALFORMED_ID, NOT_FOUND or
/// ENTITY_IS_DELETED otherwise.
pub fn live_row(obj: &SObject, id: &str) -> Result<usize, ApiError> {
    let Some(id15) = crate::ids::normalize(id) else {
        return Err(ApiError::malformed_id_for(&obj.def.name, id));
    };
    if crate::ids::prefix_of(id15) != Some(obj.def.key_prefix) {
        return Err(ApiError::malformed_id_for(&obj.def.name, id));
    }
    let row = obj.row_of(id15).ok_or_else(ApiError::not_found)?;
    match obj.table.row_state(row) {
        Some(crate::store::RowState::Live) => Ok(row),
        Some(crate::store::RowState::Deleted) => {
            Err(ApiError::new(404, "ENTITY_IS_DELETED", "entity is deleted"))
        }
        _ => Err(ApiError::not_found()),
    }
}

/// Updates a live record.
pub fn update(org: &Org, obj: &ObjRef, id: &str, changes: &Changes) -> Result<(), ApiError> {
    {
        let o = obj.read();
        live_row(&o, id)?;
        check_references(org, &o.def, changes)?;
    }
    let mut o = obj.write();
    let row = live_row(&o, id)?;
    check_unique(&mut o, changes, Some(row))?;
    crate::txn::before_change(obj, &o, row);
    let watch = crate::cdc::watch(&o).map(|w| (w, crate::cdc::snapshot(&o, row)));
    apply(&mut o, Some(row), changes, &org.user_id);
    if let Some((w, before)) = watch {
        w.updated(&o, row, &before);
    }
    Ok(())
}

/// Moves a record to the recycle bin.
pub fn delete(obj: &ObjRef, id: &str) -> Result<(), ApiError> {
    let mut o = obj.write();
    let row = live_row(&o, id)?;
    crate::txn::before_change(obj, &o, row);
    let now = crate::timefmt::stamp_ms();
    o.table.state[row] = crate::store::RowState::Deleted as u8;
    o.table.deleted_at.insert(row as u32, now);
    for name in ["SystemModstamp", "LastModifiedDate"] {
        if let Some(c) = o.def.field(name).and_then(Field::column) {
            o.table.set(c, row, &Val::DateTime(now));
        }
    }
    if let Some(w) = crate::cdc::watch(&o) {
        w.deleted(&o, row);
    }
    Ok(())
}

/// Deletes a record and, as Salesforce does, the records on the detail side of its
/// master-detail relationships ("When a record of the master object is deleted, its
/// related detail records are also deleted": "Relationships Among Objects", SOAP API
/// Developer Guide, https://developer.salesforce.com/docs/atlas.en-us.196.0.api.meta/api/relationships_among_objects.htm),
/// level after level. Undeleting the master does not bring the details back here
/// (Salesforce restores them with it; not modelled).
pub fn delete_cascading(org: &Org, obj: &ObjRef, id: &str) -> Result<(), ApiError> {
    let (name, master_id) = {
        let o = obj.read();
        let row = live_row(&o, id)?;
        (o.def.name.clone(), o.id_of(row).to_string())
    };
    delete(obj, id)?;
    for other in org.objects() {
        let details: Vec<String> = {
            let g = other.read();
            let cols: Vec<usize> = g
                .def
                .fields
                .iter()
                .filter(|f| {
                    !f.removed
                        && f.master_detail
                        && f.reference_to.iter().any(|t| t.eq_ignore_ascii_case(&name))
                })
                .filter_map(Field::column)
                .collect();
            if cols.is_empty() {
                continue;
            }
            (0..g.table.rows())
                .filter(|&r| g.table.row_state(r) == Some(crate::store::RowState::Live))
                .filter(|&r| {
                    cols.iter()
                        .any(|&c| g.table.cols[c].get(r) == Value::Text(&master_id))
                })
                .map(|r| g.id_of(r).to_string())
                .collect()
        };
        for d in details {
            delete_cascading(org, &other, &d)?;
        }
    }
    Ok(())
}

/// Restores a record from the recycle bin.
pub fn undelete(obj: &ObjRef, id: &str) -> Result<(), ApiError> {
    let mut o = obj.write();
    let row = o
        .row_of(id)
        .ok_or_else(|| ApiError::malformed_id_for(&o.def.name, id))?;
    if o.table.row_state(row) != Some(crate::store::RowState::Deleted) {
        return Err(ApiError::bad(
            "UNDELETE_FAILED",
            "Entity is not in the recycle bin",
        ));
    }
    crate::txn::before_change(obj, &o, row);
    let now = crate::timefmt::stamp_ms();
    o.table.state[row] = crate::store::RowState::Live as u8;
    o.table.deleted_at.remove(&(row as u32));
    for name in ["SystemModstamp", "LastModifiedDate"] {
        if let Some(c) = o.def.field(name).and_then(Field::column) {
            o.table.set(c, row, &Val::DateTime(now));
        }
    }
    if let Some(w) = crate::cdc::watch(&o) {
        w.undeleted(&o, row);
    }
    Ok(())
}

/// Salesforce's archiving of an old activity (or, with `archived` false, its undoing):
/// sets the read-only `IsArchived` of a live record of an object that archives (Task,
/// Event), after which `query` leaves it out and `queryAll` returns it. The record's
/// stamps stay put: Salesforce documents none moving when its background process
/// archives (unconfirmed), and no change event is published.
pub fn set_archived(obj: &ObjRef, id: &str, archived: bool) -> Result<(), ApiError> {
    let mut o = obj.write();
    let Some(c) = o.def.archived_column() else {
        return Err(ApiError::bad(
            "INVALID_TYPE",
            format!(
                "{} records are never archived (only Task and Event are)",
                o.def.name
            ),
        ));
    };
    let row = live_row(&o, id)?;
    o.table.set(c, row, &Val::Bool(archived));
    Ok(())
}

/// Removes a record for good (from the recycle bin or live); `/deleted` still lists it.
pub fn purge(obj: &ObjRef, id: &str) -> Result<(), ApiError> {
    let mut o = obj.write();
    let row = o
        .row_of(id)
        .ok_or_else(|| ApiError::malformed_id_for(&o.def.name, id))?;
    match o.table.row_state(row) {
        Some(crate::store::RowState::Purged) | None => Err(ApiError::not_found()),
        Some(state) => {
            crate::txn::before_change(obj, &o, row);
            let now = crate::timefmt::stamp_ms();
            o.table.state[row] = crate::store::RowState::Purged as u8;
            if state == crate::store::RowState::Live {
                o.table.deleted_at.insert(row as u32, now);
                // Purging from the Recycle Bin produces no event ("General
                // Considerations", Change Data Capture Developer Guide); a live
                // record deleted for good is still a deletion.
                if let Some(w) = crate::cdc::watch(&o) {
                    w.deleted(&o, row);
                }
            }
            Ok(())
        }
    }
}

/// A write the API refuses for the whole object (history rows, OpportunityStage,
/// ContentDocument creation...). SOAP API status code INVALID_TYPE_FOR_OPERATION ("the
/// specified sObject type is not valid for the specified operation"); the message text
/// is the emulator's own.
#[derive(Clone, Copy, Debug)]
pub enum WriteOp {
    Create,
    Update,
    Delete,
}

pub fn writable(def: &crate::schema::ObjectDef, op: WriteOp) -> Result<(), ApiError> {
    let (ok, verb) = match op {
        WriteOp::Create => (def.createable, "inserted"),
        WriteOp::Update => (def.updateable, "updated"),
        WriteOp::Delete => (def.deletable, "deleted"),
    };
    if ok {
        return Ok(());
    }
    Err(ApiError::bad(
        "INVALID_TYPE_FOR_OPERATION",
        format!("entity type cannot be {verb}: {}", def.label),
    ))
}
