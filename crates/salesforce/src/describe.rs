//! Global and per-object describe: what objects and fields an org has.

use std::fmt;

use chrono::{DateTime, Utc};
use reqwest::header::IF_MODIFIED_SINCE;
use reqwest::Method;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::client::Client;
use crate::de::{http_date, null_default};
use crate::error::Result;
use crate::http::RequestSpec;

/// `GET /sobjects/`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GlobalDescribe {
    #[serde(deserialize_with = "null_default")]
    pub encoding: String,
    #[serde(deserialize_with = "null_default")]
    pub max_batch_size: u32,
    #[serde(deserialize_with = "null_default")]
    pub sobjects: Vec<SObjectSummary>,
}

/// One object in the global describe.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SObjectSummary {
    pub name: String,
    #[serde(deserialize_with = "null_default")]
    pub label: String,
    #[serde(deserialize_with = "null_default")]
    pub label_plural: String,
    pub key_prefix: Option<String>,
    #[serde(deserialize_with = "null_default")]
    pub custom: bool,
    #[serde(deserialize_with = "null_default")]
    pub custom_setting: bool,
    #[serde(deserialize_with = "null_default")]
    pub queryable: bool,
    #[serde(deserialize_with = "null_default")]
    pub replicateable: bool,
    #[serde(deserialize_with = "null_default")]
    pub retrieveable: bool,
    #[serde(deserialize_with = "null_default")]
    pub createable: bool,
    #[serde(deserialize_with = "null_default")]
    pub updateable: bool,
    #[serde(deserialize_with = "null_default")]
    pub deletable: bool,
    #[serde(deserialize_with = "null_default")]
    pub undeletable: bool,
    #[serde(deserialize_with = "null_default")]
    pub searchable: bool,
    #[serde(deserialize_with = "null_default")]
    pub triggerable: bool,
}

/// `GET /sobjects/{Name}/describe`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SObjectDescribe {
    pub name: String,
    #[serde(deserialize_with = "null_default")]
    pub label: String,
    #[serde(deserialize_with = "null_default")]
    pub label_plural: String,
    pub key_prefix: Option<String>,
    #[serde(deserialize_with = "null_default")]
    pub custom: bool,
    #[serde(deserialize_with = "null_default")]
    pub queryable: bool,
    #[serde(deserialize_with = "null_default")]
    pub replicateable: bool,
    #[serde(deserialize_with = "null_default")]
    pub retrieveable: bool,
    #[serde(deserialize_with = "null_default")]
    pub createable: bool,
    #[serde(deserialize_with = "null_default")]
    pub updateable: bool,
    #[serde(deserialize_with = "null_default")]
    pub deletable: bool,
    #[serde(deserialize_with = "null_default")]
    pub undeletable: bool,
    #[serde(deserialize_with = "null_default")]
    pub fields: Vec<FieldDescribe>,
    #[serde(deserialize_with = "null_default")]
    pub child_relationships: Vec<ChildRelationship>,
    #[serde(deserialize_with = "null_default")]
    pub record_type_infos: Vec<serde_json::Value>,
}

impl SObjectDescribe {
    pub fn field(&self, name: &str) -> Option<&FieldDescribe> {
        self.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ChildRelationship {
    #[serde(deserialize_with = "null_default")]
    pub child_s_object: String,
    #[serde(deserialize_with = "null_default")]
    pub field: String,
    pub relationship_name: Option<String>,
    #[serde(deserialize_with = "null_default")]
    pub cascade_delete: bool,
}

/// One field of an object describe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct FieldDescribe {
    pub name: String,
    #[serde(deserialize_with = "null_default")]
    pub label: String,
    #[serde(rename = "type")]
    pub field_type: FieldType,
    #[serde(deserialize_with = "null_default")]
    pub soap_type: String,
    #[serde(deserialize_with = "null_default")]
    pub length: u32,
    #[serde(deserialize_with = "null_default")]
    pub byte_length: u32,
    #[serde(deserialize_with = "null_default")]
    pub digits: u32,
    #[serde(deserialize_with = "null_default")]
    pub precision: u32,
    #[serde(deserialize_with = "null_default")]
    pub scale: u32,
    #[serde(deserialize_with = "null_default")]
    pub nillable: bool,
    #[serde(deserialize_with = "null_default")]
    pub createable: bool,
    #[serde(deserialize_with = "null_default")]
    pub updateable: bool,
    #[serde(deserialize_with = "null_default")]
    pub calculated: bool,
    pub calculated_formula: Option<String>,
    #[serde(deserialize_with = "null_default")]
    pub defaulted_on_create: bool,
    #[serde(deserialize_with = "null_default")]
    pub external_id: bool,
    #[serde(deserialize_with = "null_default")]
    pub id_lookup: bool,
    #[serde(deserialize_with = "null_default")]
    pub unique: bool,
    #[serde(deserialize_with = "null_default")]
    pub custom: bool,
    pub compound_field_name: Option<String>,
    #[serde(deserialize_with = "null_default")]
    pub reference_to: Vec<String>,
    pub relationship_name: Option<String>,
    #[serde(deserialize_with = "null_default")]
    pub picklist_values: Vec<PicklistValue>,
    #[serde(deserialize_with = "null_default")]
    pub restricted_picklist: bool,
    #[serde(deserialize_with = "null_default")]
    pub filterable: bool,
    #[serde(deserialize_with = "null_default")]
    pub sortable: bool,
    #[serde(deserialize_with = "null_default")]
    pub deprecated_and_hidden: bool,
}

impl Default for FieldDescribe {
    fn default() -> Self {
        FieldDescribe {
            name: String::new(),
            label: String::new(),
            field_type: FieldType::String,
            soap_type: String::new(),
            length: 0,
            byte_length: 0,
            digits: 0,
            precision: 0,
            scale: 0,
            nillable: false,
            createable: false,
            updateable: false,
            calculated: false,
            calculated_formula: None,
            defaulted_on_create: false,
            external_id: false,
            id_lookup: false,
            unique: false,
            custom: false,
            compound_field_name: None,
            reference_to: Vec::new(),
            relationship_name: None,
            picklist_values: Vec::new(),
            restricted_picklist: false,
            filterable: false,
            sortable: false,
            deprecated_and_hidden: false,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PicklistValue {
    #[serde(deserialize_with = "null_default")]
    pub active: bool,
    #[serde(deserialize_with = "null_default")]
    pub default_value: bool,
    pub label: Option<String>,
    pub valid_for: Option<String>,
    #[serde(deserialize_with = "null_default")]
    pub value: String,
}

macro_rules! field_types {
    ($($variant:ident => $text:literal,)*) => {
        /// Field `type` values of describe. Types this client does not know arrive as
        /// `Unknown` instead of failing the whole describe.
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum FieldType {
            $($variant,)*
            Unknown(String),
        }

        impl FieldType {
            pub fn as_str(&self) -> &str {
                match self {
                    $(FieldType::$variant => $text,)*
                    FieldType::Unknown(s) => s,
                }
            }

            pub fn parse(s: &str) -> FieldType {
                match s {
                    $($text => FieldType::$variant,)*
                    other => FieldType::Unknown(other.to_string()),
                }
            }
        }
    };
}

field_types! {
    Id => "id",
    String => "string",
    Textarea => "textarea",
    Boolean => "boolean",
    Int => "int",
    Long => "long",
    Double => "double",
    Currency => "currency",
    Percent => "percent",
    Date => "date",
    Datetime => "datetime",
    Time => "time",
    Picklist => "picklist",
    Multipicklist => "multipicklist",
    Combobox => "combobox",
    Reference => "reference",
    Email => "email",
    Phone => "phone",
    Url => "url",
    Encryptedstring => "encryptedstring",
    Base64 => "base64",
    AnyType => "anyType",
    Address => "address",
    Location => "location",
    Complexvalue => "complexvalue",
    Json => "json",
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for FieldType {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for FieldType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        Ok(FieldType::parse(s.as_deref().unwrap_or("")))
    }
}

impl Client {
    /// `GET /sobjects/`. `None` when nothing changed since `if_modified_since` (304).
    pub async fn describe_global(
        &self,
        if_modified_since: Option<DateTime<Utc>>,
    ) -> Result<Option<GlobalDescribe>> {
        let mut spec = RequestSpec::new(Method::GET, "sobjects/");
        if let Some(t) = if_modified_since {
            spec = spec.header(IF_MODIFIED_SINCE, http_date(t));
        }
        let raw = self.execute(spec).await?;
        if raw.status == 304 {
            return Ok(None);
        }
        raw.json("global describe").map(Some)
    }

    /// `GET /sobjects/{object}/describe`. `None` when unchanged since
    /// `if_modified_since` (304).
    pub async fn describe(
        &self,
        object: &str,
        if_modified_since: Option<DateTime<Utc>>,
    ) -> Result<Option<SObjectDescribe>> {
        let mut spec = RequestSpec::new(
            Method::GET,
            format!("sobjects/{}/describe", crate::path_segment(object)?),
        );
        if let Some(t) = if_modified_since {
            spec = spec.header(IF_MODIFIED_SINCE, http_date(t));
        }
        let raw = self.execute(spec).await?;
        if raw.status == 304 {
            return Ok(None);
        }
        raw.json(&format!("describe of {object}")).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_object_describe_tolerantly() {
        let body = r#"{
          "name":"Account","label":"Account","keyPrefix":"001","custom":false,"queryable":true,
          "somethingNew":{"x":1},
          "fields":[
            {"name":"Id","label":"Account ID","type":"id","soapType":"tns:ID","length":18,
             "nillable":false,"createable":false,"updateable":false,"calculated":false,
             "calculatedFormula":null,"referenceTo":[],"relationshipName":null,
             "picklistValues":[],"filterable":true,"sortable":true,"idLookup":true},
            {"name":"BillingAddress","type":"address","compoundFieldName":null,"length":0,
             "precision":null,"scale":null},
            {"name":"BillingCity","type":"string","compoundFieldName":"BillingAddress","length":40},
            {"name":"Industry","type":"picklist","restrictedPicklist":true,
             "picklistValues":[{"active":true,"defaultValue":false,"label":"Agriculture","validFor":null,"value":"Agriculture"}]},
            {"name":"Score__c","type":"double","precision":18,"scale":2,"custom":true,
             "calculated":true,"calculatedFormula":"1+1"},
            {"name":"OwnerId","type":"reference","referenceTo":["User"],"relationshipName":"Owner"},
            {"name":"Weird__c","type":"fancyNewType"}
          ],
          "childRelationships":[{"childSObject":"Contact","field":"AccountId","relationshipName":"Contacts","cascadeDelete":false}]
        }"#;
        let d: SObjectDescribe = serde_json::from_str(body).unwrap();
        assert_eq!(d.name, "Account");
        assert_eq!(d.key_prefix.as_deref(), Some("001"));
        assert_eq!(d.fields.len(), 7);
        assert_eq!(d.fields[0].field_type, FieldType::Id);
        assert!(d.fields[0].id_lookup);
        assert_eq!(d.fields[1].field_type, FieldType::Address);
        assert_eq!(d.fields[1].precision, 0);
        assert_eq!(
            d.field("billingcity")
                .unwrap()
                .compound_field_name
                .as_deref(),
            Some("BillingAddress")
        );
        let industry = d.field("Industry").unwrap();
        assert!(industry.restricted_picklist);
        assert_eq!(industry.picklist_values[0].value, "Agriculture");
        let score = d.field("Score__c").unwrap();
        assert_eq!((score.precision, score.scale), (18, 2));
        assert_eq!(score.calculated_formula.as_deref(), Some("1+1"));
        assert_eq!(d.field("OwnerId").unwrap().reference_to, vec!["User"]);
        assert_eq!(
            d.field("Weird__c").unwrap().field_type,
            FieldType::Unknown("fancyNewType".into())
        );
        assert_eq!(d.child_relationships[0].child_s_object, "Contact");
    }

    #[test]
    fn every_documented_type_is_known() {
        for t in [
            "id",
            "string",
            "textarea",
            "boolean",
            "int",
            "long",
            "double",
            "currency",
            "percent",
            "date",
            "datetime",
            "time",
            "picklist",
            "multipicklist",
            "combobox",
            "reference",
            "email",
            "phone",
            "url",
            "encryptedstring",
            "base64",
            "anyType",
            "address",
            "location",
            "complexvalue",
            "json",
        ] {
            let parsed = FieldType::parse(t);
            assert!(!matches!(parsed, FieldType::Unknown(_)), "{t}");
            assert_eq!(parsed.as_str(), t);
        }
    }

    #[test]
    fn parses_global_describe() {
        let body = r#"{"encoding":"UTF-8","maxBatchSize":200,"sobjects":[
          {"name":"Account","label":"Account","keyPrefix":"001","custom":false,"queryable":true,
           "replicateable":true,"retrieveable":true,"createable":true,"updateable":true,
           "deletable":true,"customSetting":false,"urls":{"sobject":"/x"}},
          {"name":"Foo__c","keyPrefix":null,"custom":true}]}"#;
        let g: GlobalDescribe = serde_json::from_str(body).unwrap();
        assert_eq!(g.max_batch_size, 200);
        assert_eq!(g.sobjects.len(), 2);
        assert!(g.sobjects[0].replicateable);
        assert!(g.sobjects[1].custom);
        assert_eq!(g.sobjects[1].key_prefix, None);
    }
}
