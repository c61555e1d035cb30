//! Global and per-object describe.

use crate::app::App;
use crate::error::ApiError;
use crate::http::{Req, Resp};
use crate::org::ObjRef;
use crate::schema::{Field, FieldType, ObjectDef};
use serde_json::{json, Map, Value};

/// Salesforce's answer to an unknown object name in a URL.
pub fn unknown_object(_name: &str) -> ApiError {
    ApiError::not_found()
}

pub fn lookup(app: &App, name: &str) -> Result<ObjRef, ApiError> {
    app.org.object(name).ok_or_else(|| unknown_object(name))
}

fn urls(v: &str, def: &ObjectDef) -> Value {
    let b = format!("/services/data/v{v}/sobjects/{}", def.name);
    json!({
        "compactLayouts": format!("{b}/describe/compactLayouts"),
        "rowTemplate": format!("{b}/{{ID}}"),
        "approvalLayouts": format!("{b}/describe/approvalLayouts"),
        "defaultValues": format!("{b}/defaultValues?recordTypeId&fields"),
        "listviews": format!("{b}/listviews"),
        "describe": format!("{b}/describe"),
        "quickActions": format!("{b}/quickActions"),
        "layouts": format!("{b}/describe/layouts"),
        "sobject": b,
    })
}

fn object_flags(v: &str, def: &ObjectDef) -> Map<String, Value> {
    let o = json!({
        "activateable": false,
        "associateEntityType": null,
        "associateParentEntity": null,
        "createable": def.createable,
        "custom": def.custom,
        "customSetting": false,
        "deepCloneable": false,
        "deletable": def.deletable,
        "deprecatedAndHidden": false,
        "feedEnabled": false,
        "hasSubtypes": false,
        "isInterface": false,
        "isSubtype": false,
        "keyPrefix": def.prefix_str(),
        "label": def.label,
        "labelPlural": def.label_plural,
        "layoutable": true,
        "mergeable": matches!(def.name.as_str(), "Account" | "Contact" | "Lead"),
        "mruEnabled": true,
        "name": def.name,
        "queryable": true,
        "replicateable": def.replicateable,
        "retrieveable": true,
        "searchable": true,
        "triggerable": true,
        "undeletable": def.deletable,
        "updateable": def.updateable,
        "urls": urls(v, def),
    });
    match o {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Whether the schema is unchanged since the request's `If-Modified-Since`.
fn unchanged_since(req: &Req, modified_ms: i64) -> bool {
    req.header("if-modified-since")
        .and_then(crate::timefmt::parse_http_date)
        .is_some_and(|since| modified_ms <= since)
}

/// `GET /sobjects/`, honouring `If-Modified-Since`.
pub fn global(app: &App, req: &Req, v: &str) -> Result<Resp, ApiError> {
    let modified = app.org.schema_modified_ms();
    if unchanged_since(req, modified) {
        return Ok(Resp::empty(304));
    }
    let sobjects: Vec<Value> = app
        .org
        .objects()
        .iter()
        .map(|o| Value::Object(object_flags(v, &o.read().def)))
        .collect();
    Ok(Resp::json(
        200,
        &json!({"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": sobjects}),
    )
    .header("last-modified", crate::timefmt::http_date(modified)))
}

/// `GET /sobjects/{Name}`: object info and recently viewed records (none).
pub fn basic(app: &App, v: &str, name: &str) -> Result<Resp, ApiError> {
    let obj = lookup(app, name)?;
    let info = Value::Object(object_flags(v, &obj.read().def));
    Ok(Resp::json(
        200,
        &json!({"objectDescribe": info, "recentItems": []}),
    ))
}

fn field_json(f: &Field) -> Value {
    let text_len = if f.ftype.is_text() || matches!(f.ftype, FieldType::Id | FieldType::Reference) {
        f.length
    } else {
        0
    };
    let picklist: Vec<Value> = f
        .picklist
        .iter()
        .map(|p| json!({"active": p.active, "defaultValue": p.default, "label": p.label, "validFor": null, "value": p.value}))
        .collect();
    let numeric = f.ftype.is_number();
    let default_value = f
        .default_value
        .clone()
        .filter(|_| !matches!(f.ftype, FieldType::Picklist | FieldType::Multipicklist))
        .unwrap_or(Value::Null);
    json!({
        "aggregatable": f.sortable() && f.ftype != FieldType::Boolean,
        "aiPredictionField": false,
        "autoNumber": false,
        "byteLength": text_len * 3,
        "calculated": f.calculated,
        "calculatedFormula": f.formula,
        "cascadeDelete": f.master_detail,
        "caseSensitive": false,
        "compoundFieldName": f.compound,
        "controllerName": null,
        "createable": f.createable,
        "custom": f.custom,
        "defaultValue": default_value,
        "defaultValueFormula": null,
        "defaultedOnCreate": f.defaulted_on_create,
        "dependentPicklist": false,
        "deprecatedAndHidden": false,
        "digits": if f.ftype == FieldType::Int { f.precision } else { 0 },
        "displayLocationInDecimal": false,
        "encrypted": false,
        "externalId": f.external_id,
        "extraTypeInfo": match f.ftype {
            FieldType::Textarea if f.length > 255 => json!("plaintextarea"),
            FieldType::Textarea => json!("plaintextarea"),
            _ => Value::Null,
        },
        "filterable": f.filterable(),
        "filteredLookupInfo": null,
        "formulaTreatNullNumberAsZero": false,
        "groupable": f.sortable() && !numeric && f.ftype != FieldType::DateTime,
        "highScaleNumber": false,
        "htmlFormatted": false,
        "idLookup": f.id_lookup,
        "inlineHelpText": null,
        "label": f.label,
        "length": text_len,
        "mask": null,
        "maskType": null,
        "name": f.name,
        "nameField": f.name_field,
        "namePointing": f.reference_to.len() > 1,
        "nillable": f.nillable,
        "permissionable": f.nillable && f.createable,
        "picklistValues": picklist,
        "polymorphicForeignKey": f.reference_to.len() > 1,
        "precision": if numeric { f.precision } else { 0 },
        "queryByDistance": false,
        "referenceTargetField": null,
        "referenceTo": f.reference_to,
        "relationshipName": f.relationship_name,
        "relationshipOrder": null,
        "restrictedDelete": false,
        "restrictedPicklist": f.restricted,
        "scale": if numeric { f.scale } else { 0 },
        "searchPrefilterable": false,
        "soapType": f.ftype.soap_type(),
        "sortable": f.sortable(),
        "type": f.ftype.name(),
        "unique": f.unique,
        "updateable": f.updateable,
        "writeRequiresMasterRead": false,
    })
}

/// `GET /sobjects/{Name}/describe`.
pub fn object(app: &App, req: &Req, v: &str, name: &str) -> Result<Resp, ApiError> {
    let obj = lookup(app, name)?;
    let modified = app.org.schema_modified_ms();
    if unchanged_since(req, modified) {
        return Ok(Resp::empty(304));
    }
    let (mut out, target) = {
        let o = obj.read();
        let mut m = object_flags(v, &o.def);
        let fields: Vec<Value> = o.def.live_fields().map(|(_, f)| field_json(f)).collect();
        m.insert("fields".into(), Value::Array(fields));
        (m, o.def.name.clone())
    };
    let mut children = Vec::new();
    for other in app.org.objects() {
        let o = other.read();
        for (_, f) in o.def.live_fields() {
            if f.reference_to
                .iter()
                .any(|t| t.eq_ignore_ascii_case(&target))
            {
                children.push(json!({
                    "cascadeDelete": f.master_detail,
                    "childSObject": o.def.name,
                    "deprecatedAndHidden": false,
                    "field": f.name,
                    "junctionIdListNames": [],
                    "junctionReferenceTo": [],
                    "relationshipName": f.child_relationship,
                    "restrictedDelete": false,
                }));
            }
        }
    }
    out.insert("childRelationships".into(), Value::Array(children));
    out.insert("actionOverrides".into(), json!([]));
    out.insert("compactLayoutable".into(), json!(true));
    out.insert("listviewable".into(), Value::Null);
    out.insert("lookupLayoutable".into(), Value::Null);
    out.insert("namedLayoutInfos".into(), json!([]));
    out.insert("networkScopeFieldName".into(), Value::Null);
    out.insert("searchLayoutable".into(), json!(true));
    out.insert("sobjectDescribeOption".into(), json!("FULL"));
    out.insert(
        "supportedScopes".into(),
        json!([{"label": "All", "name": "everything"}]),
    );
    out.insert(
        "recordTypeInfos".into(),
        json!([{
            "active": true,
            "available": true,
            "defaultRecordTypeMapping": true,
            "developerName": "Master",
            "master": true,
            "name": "Master",
            "recordTypeId": "012000000000000AAA",
            "urls": {"layout": format!("/services/data/v{v}/sobjects/{target}/describe/layouts/012000000000000AAA")},
        }]),
    );
    Ok(Resp::json(200, &Value::Object(out))
        .header("last-modified", crate::timefmt::http_date(modified)))
}
