//! An administrator changing a field: its type (text to picklist, text to long text
//! area, number precision, lookup to master-detail...) and its field-level security.
//!
//! Facts modelled, from Salesforce's documentation:
//! - Field-level security: "If the fields parameter is used with fields that don't
//!   exist or aren't visible to the consumer by field-level security, a 400 error
//!   response is returned" — a hidden field is refused exactly as a field that does not
//!   exist ("Delete Records Using sObject Relationships", REST API Developer Guide,
//!   https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api/resources_sobject_relationships_delete.htm),
//!   and describe "returns only the fields that the user has access to"
//!   ("Field-Level Security", Change Data Capture Developer Guide,
//!   https://developer.salesforce.com/docs/atlas.en-us.262.0.change_data_capture.meta/change_data_capture/cdc_security_field.htm;
//!   "Understanding Describe Information Permissions", Apex Developer Guide,
//!   https://developer.salesforce.com/docs/atlas.en-us.apexcode.meta/api/apex_dynamic_permissions.htm).
//!   So a hidden field is absent from describe, from `FIELDS(ALL)` and from records,
//!   and SOQL or a write naming it gets `INVALID_FIELD`, as for a field that does not
//!   exist. Its values are kept and come back when it is shown again.
//! - Type changes ("Considerations for Converting the Field Type of a Custom Field",
//!   Salesforce Help,
//!   https://help.salesforce.com/s/articleView?id=platform.notes_on_changing_custom_field_types.htm&language=en_US&type=5):
//!   data can be lost "changing to Number from any other type", "to Percent", "to
//!   Currency", "to or from type Date or Date/Time", "from Checkbox to any other type",
//!   "from Text to Picklist", "from Text Area (Long) to any type except Email, Phone,
//!   Text, Text Area, or URL"; values that do not convert become null here. Only custom
//!   fields change type ("The option to change the data type of a custom field").
//!   Which values survive a Text to Picklist change is not spelled out there: the
//!   emulator keeps them (an unrestricted picklist holds values outside its list).
//!   A shorter length cuts text and a smaller scale rounds numbers: the emulator's
//!   choice, not confirmed in the documentation.
//! - Master-detail: "When a record of the master object is deleted, its related detail
//!   records are also deleted" and the relationship field is required ("Relationships
//!   Among Objects", SOAP API Developer Guide,
//!   https://developer.salesforce.com/docs/atlas.en-us.196.0.api.meta/api/relationships_among_objects.htm):
//!   describe shows `nillable: false`, deleting a master deletes its details
//!   (`validate::delete_cascading`), and the parent's child relationship
//!   `cascadeDelete: true` (`isCascadeDelete`: "true if the child object is deleted when
//!   the parent object is deleted", "ChildRelationship Class", Apex Reference,
//!   https://developer.salesforce.com/docs/platform/apex-ref/references/apex-ref/apex-class-schema-childrelationship.html).
//!   A lookup converts to master-detail only when every record has a value (stated by
//!   third-party guides, e.g. https://forceposts.blogspot.com/2018/10/changing-field-type-in-salesforce.html;
//!   not found in Salesforce's own pages here).

use crate::app::App;
use crate::schema::{Field, FieldType};
use crate::store::{Column, Val};
use serde_json::Value;

/// Applies `{"hidden":B}` and/or `{"type":T,"length","precision","scale","values",
/// "masterDetail":B}` to `obj.field`; returns the field's name.
pub fn change(app: &App, obj: &str, field: &str, b: &Value) -> Result<String, String> {
    let o = app
        .org
        .object(obj)
        .ok_or_else(|| format!("no object {obj}"))?;
    let mut g = o.write();
    let idx = g
        .def
        .fields
        .iter()
        .position(|f| !f.removed && f.name.eq_ignore_ascii_case(field))
        .ok_or_else(|| format!("no field {obj}.{field}"))?;
    let name = g.def.fields[idx].name.clone();
    let shape_keys = [
        "type",
        "length",
        "precision",
        "scale",
        "values",
        "masterDetail",
    ];
    if shape_keys.iter().any(|k| b.get(*k).is_some()) {
        let old = g.def.fields[idx].clone();
        let new = reshaped(&old, b)?;
        if new.master_detail && !old.master_detail {
            if let Some(c) = old.column() {
                let t = &g.table;
                let empty = (0..t.rows())
                    .filter(|&r| t.row_state(r) == Some(crate::store::RowState::Live))
                    .any(|r| matches!(t.cols[c].get(r), soql::Value::Null));
                if empty {
                    return Err(format!(
                        "{obj}.{name} cannot become master-detail: some records have no value in it"
                    ));
                }
            }
        }
        if let Some(c) = old.column() {
            let rows = g.table.rows();
            let converted = convert(&g.table.cols[c], rows, &old, &new);
            g.table.cols[c] = converted;
        }
        g.def.fields[idx] = new;
    }
    if let Some(h) = b.get("hidden") {
        let h = h.as_bool().ok_or("\"hidden\" must be true or false")?;
        let f = &g.def.fields[idx];
        if h && (f.name_field || f.ftype == FieldType::Id || f.required()) {
            return Err(format!(
                "{obj}.{name} cannot be hidden: it is the Id, the name or a required field, which every user sees"
            ));
        }
        g.def.fields[idx].hidden = h;
    }
    g.def.reindex();
    drop(g);
    app.org.schema_changed();
    Ok(name)
}

/// The field after the change asked for, or why it cannot be made.
fn reshaped(old: &Field, b: &Value) -> Result<Field, String> {
    if !old.custom {
        return Err(format!(
            "{} is a standard field: only custom fields change type",
            old.name
        ));
    }
    if old.calculated || old.is_compound_type() {
        return Err(format!(
            "{} is a formula or compound field: its type cannot change",
            old.name
        ));
    }
    let ftype = match b.get("type").and_then(Value::as_str) {
        Some(t) => FieldType::parse(t).ok_or_else(|| format!("unknown field type {t:?}"))?,
        None => old.ftype,
    };
    if matches!(
        ftype,
        FieldType::Id | FieldType::Address | FieldType::Location | FieldType::AnyType
    ) {
        return Err(format!("a field cannot become {}", ftype.name()));
    }
    if (ftype == FieldType::Reference) != (old.ftype == FieldType::Reference) {
        return Err(format!(
            "{}: a relationship field stays a relationship field (lookup or master-detail)",
            old.name
        ));
    }
    let mut f = if ftype == old.ftype {
        old.clone()
    } else {
        let mut f = Field::new(&old.name, ftype);
        f.label = old.label.clone();
        f.custom = old.custom;
        f.source = old.source.clone();
        f.nillable = old.nillable;
        f.hidden = old.hidden;
        f.external_id = old.external_id
            && matches!(
                ftype,
                FieldType::String | FieldType::Email | FieldType::Double | FieldType::Int
            );
        f.id_lookup = f.external_id;
        f.unique = old.unique && f.external_id;
        if ftype == FieldType::Textarea {
            // A Long Text Area's default length.
            f.length = 32768;
        }
        f
    };
    let num = |k: &str| b.get(k).and_then(Value::as_u64).map(|x| x as u32);
    if let Some(l) = num("length") {
        f.length = l;
    }
    if let Some(p) = num("precision") {
        f.precision = p;
    }
    if let Some(s) = num("scale") {
        f.scale = s;
    }
    if f.ftype.is_number() && f.scale > f.precision {
        return Err(format!(
            "scale {} is larger than precision {}",
            f.scale, f.precision
        ));
    }
    if let Some(vals) = b.get("values").and_then(Value::as_array) {
        f.picklist.clear();
        let names: Vec<&str> = vals.iter().filter_map(Value::as_str).collect();
        crate::catalog::set_picklist(&mut f, names.into_iter());
    }
    if let Some(md) = b.get("masterDetail") {
        let md = md
            .as_bool()
            .ok_or("\"masterDetail\" must be true or false")?;
        if ftype != FieldType::Reference {
            return Err("only a relationship field can be master-detail".into());
        }
        f.master_detail = md;
        f.nillable = !md;
    }
    Ok(f)
}

/// The column's values in the field's new type; what does not convert is lost (null).
fn convert(col: &Column, rows: usize, old: &Field, new: &Field) -> Column {
    let mut out = Column::for_type(new.ftype);
    for _ in 0..rows {
        out.push_null();
    }
    for r in 0..rows {
        let v = convert_value(col.get(r), old, new);
        out.set(r, &v);
    }
    out
}

fn convert_value(v: soql::Value<'_>, old: &Field, new: &Field) -> Val {
    use soql::Value as V;
    let number = |x: f64| -> Val {
        let scale = new.scale.min(17) as i32;
        let m = 10f64.powi(scale);
        let x = (x * m).round() / m;
        let int_digits = new.precision.saturating_sub(new.scale).min(308) as i32;
        if x.abs() >= 10f64.powi(int_digits) {
            Val::Null
        } else {
            Val::Num(x)
        }
    };
    match (new.ftype, v) {
        (_, V::Null) => Val::Null,
        (FieldType::Boolean, V::Bool(b)) => Val::Bool(b),
        // "Changing from Checkbox to any other type" loses data.
        (_, V::Bool(_)) => Val::Null,
        (FieldType::Int, V::Int(i)) => Val::Int(i),
        (FieldType::Int, V::Double(d)) => Val::Int(d.round() as i64),
        (FieldType::Int, V::Text(t)) => match t.trim().parse::<f64>() {
            Ok(d) if d.is_finite() && d.abs() < 1e18 => Val::Int(d.round() as i64),
            _ => Val::Null,
        },
        (FieldType::Double | FieldType::Currency | FieldType::Percent, V::Double(d)) => number(d),
        (FieldType::Double | FieldType::Currency | FieldType::Percent, V::Int(i)) => {
            number(i as f64)
        }
        (FieldType::Double | FieldType::Currency | FieldType::Percent, V::Text(t)) => {
            t.trim().parse::<f64>().map(number).unwrap_or(Val::Null)
        }
        (FieldType::Date, V::Date(d)) => Val::Date(d),
        (FieldType::DateTime, V::DateTime(d)) => Val::DateTime(d),
        // "Changing to or from type Date or Date/Time" loses data.
        (FieldType::Date | FieldType::DateTime, _) | (_, V::Date(_) | V::DateTime(_)) => Val::Null,
        (t, v) if t.is_text() || t == FieldType::Reference || t == FieldType::Base64 => {
            let text = match v {
                V::Text(s) => s.to_string(),
                V::Int(i) => i.to_string(),
                V::Double(d) => d.to_string(),
                _ => return Val::Null,
            };
            if old.ftype == FieldType::Multipicklist && t != FieldType::Multipicklist {
                return Val::Null;
            }
            if t == FieldType::Multipicklist && old.ftype != FieldType::Multipicklist {
                // Values outside the new list are deleted from the records.
                return if new.picklist.iter().any(|p| p.value == text) {
                    Val::Str(text)
                } else {
                    Val::Null
                };
            }
            let max = if new.length > 0 {
                new.length as usize
            } else {
                usize::MAX
            };
            Val::Str(text.chars().take(max).collect())
        }
        _ => Val::Null,
    }
}

/// The field's describe-relevant shape for the control API's answer.
pub fn summary(app: &App, obj: &str, field: &str) -> Value {
    let Some(o) = app.org.object(obj) else {
        return Value::Null;
    };
    let g = o.read();
    let Some(f) = g
        .def
        .fields
        .iter()
        .find(|f| !f.removed && f.name.eq_ignore_ascii_case(field))
    else {
        return Value::Null;
    };
    serde_json::json!({
        "object": g.def.name,
        "field": f.name,
        "type": f.ftype.name(),
        "length": f.length,
        "precision": f.precision,
        "scale": f.scale,
        "masterDetail": f.master_detail,
        "hidden": f.hidden,
    })
}
