//! The Tooling API (`/services/data/vXX.X/tooling/...`), for one object only:
//! PlatformEventChannelMember, through which a client learns (and changes) which
//! objects are selected for Change Data Capture. Its records are the CDC selection
//! (`app.cdc`, also set by `PUT /__emulator/cdc`), one member of the standard
//! ChangeEvents channel per selected object; creating or deleting a member changes the
//! same selection.
//!
//! | fact | source |
//! | --- | --- |
//! | PlatformEventChannelMember (API 47.0+) "represents an entity selected for Change Data Capture notifications on a standard or custom channel"; REST methods DELETE, GET, HEAD, PATCH, POST, Query; querying needs View Setup and Configuration, creating and deleting Customize Application | "PlatformEventChannelMember", Tooling API Developer Guide, https://developer.salesforce.com/docs/atlas.en-us.api_tooling.meta/api_tooling/tooling_api_objects_platformeventchannelmember.htm |
//! | DeveloperName of a member of the standard channel: `ChangeEvents_AccountChangeEvent`; SelectedEntity: `AccountChangeEvent`, `MyObject__ChangeEvent` for `MyObject__c` | same page; "PlatformEventChannelMember", Metadata API Developer Guide |
//! | The standard ChangeEvents channel is the selection Setup's Change Data Capture page edits | "Select Objects for Change Notifications with Metadata API and Tooling API", Change Data Capture Developer Guide, https://developer.salesforce.com/docs/atlas.en-us.change_data_capture.meta/change_data_capture/cdc_object_selections_metadata.htm |
//! | Query with `GET /services/data/vXX.X/tooling/query?q=SELECT Id, DeveloperName, EventChannel, SelectedEntity FROM PlatformEventChannelMember`; member ids start with `0v8` (`0v8RM0000004VAKYA2`) | "Get Custom Channels and Channel Members", same guide, https://developer.salesforce.com/docs/platform/change-data-capture/guide/cdc-filter-list-channels.html |
//! | A Tooling query result has size, totalSize, done, queryLocator (SOAP only), entityTypeName, records and nextRecordsUrl | "QueryResult", Tooling API Developer Guide, https://developer.salesforce.com/docs/atlas.en-us.api_tooling.meta/api_tooling/tooling_api_objects_queryresult.htm |
//! | Create: `POST .../tooling/sobjects/PlatformEventChannelMember` with `{"FullName": ..., "Metadata": {"eventChannel": ..., "selectedEntity": ...}}`, answered `{"id", "success": true, "errors": [], "warnings": [], "infos": []}` | "Add a Change Event in a New Channel Member", Salesforce Help, https://help.salesforce.com/apex/HTViewHelpDoc?id=platform.ev_relay_create_channel_member_cdc.htm (shown there for a custom channel) |
//!
//! Unconfirmed, and chosen here:
//! - A user without View Setup and Configuration gets `INVALID_TYPE` ("sObject type
//!   '...' is not supported", 400), as for an object that does not exist. No
//!   Salesforce page names the error; users report exactly this for Tooling objects
//!   they could not see until granted that permission
//!   (https://github.com/tprouvot/Salesforce-Inspector-reloaded/issues/1310,
//!   https://github.com/afawcett/apex-toolingapi/issues/19).
//! - `size` equals totalSize; the next page's URL is
//!   `/services/data/vXX.X/tooling/query/<locator>-<position>`, shaped like REST's;
//!   pages honour `Sforce-Query-Options: batchSize` as REST queries do.
//! - Creating a member for a custom channel, an unknown entity or an entity already
//!   selected is refused with 400 `INVALID_INPUT` / `DUPLICATE_VALUE`; Salesforce's
//!   codes for these are not documented.
//!
//! Not modelled: custom channels (only ChangeEvents has members), FilterExpression
//! and enrichment, the FullName and Metadata fields in queries, PATCH.

use crate::app::App;
use crate::error::ApiError;
use crate::http::{Req, Resp};
use serde_json::{json, Map, Value};
use soql::{FieldPath, SelectItem, SoqlError};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// The one Tooling object served.
pub const MEMBER: &str = "PlatformEventChannelMember";
/// The standard channel, whose members are the CDC selection.
pub const STANDARD_CHANNEL: &str = "ChangeEvents";
/// Key prefix of PlatformEventChannelMember ids.
const MEMBER_PREFIX: &[u8; 3] = b"0v8";

/// What the control API sets about the Tooling API, and its open query locators.
pub struct Tooling {
    /// Off: the user lacks View Setup and Configuration (`PUT /__emulator/cdc`
    /// `tooling_access`).
    access: AtomicBool,
    /// A page size below what the client asked for (0: none), so a test sees
    /// `nextRecordsUrl` with few selected objects (`tooling_page_size`).
    page_size: AtomicUsize,
    /// The records of each query beyond its first page.
    locators: crate::locators::Locators<Arc<Vec<Value>>>,
}

impl Default for Tooling {
    fn default() -> Tooling {
        Tooling {
            access: AtomicBool::new(true),
            page_size: AtomicUsize::new(0),
            locators: Default::default(),
        }
    }
}

impl Tooling {
    /// Expires every open Tooling query locator (control API).
    pub fn expire_locators(&self) {
        self.locators.expire_all();
    }

    pub fn set_access(&self, on: bool) {
        self.access.store(on, Ordering::SeqCst);
    }

    pub fn access(&self) -> bool {
        self.access.load(Ordering::SeqCst)
    }

    /// 0 turns the cap off.
    pub fn set_page_size(&self, n: usize) {
        self.page_size.store(n, Ordering::SeqCst);
    }

    pub fn page_size(&self) -> usize {
        self.page_size.load(Ordering::SeqCst)
    }
}

/// A field of PlatformEventChannelMember.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Field {
    Id,
    DeveloperName,
    EventChannel,
    SelectedEntity,
}

impl Field {
    fn name(self) -> &'static str {
        FIELDS
            .iter()
            .find(|(f, _, _)| *f == self)
            .map_or("", |(_, n, _)| n)
    }
}

const FIELDS: [(Field, &str, soql::FieldType); 4] = [
    (Field::Id, "Id", soql::FieldType::Id),
    (Field::DeveloperName, "DeveloperName", soql::FieldType::Text),
    (Field::EventChannel, "EventChannel", soql::FieldType::Text),
    (
        Field::SelectedEntity,
        "SelectedEntity",
        soql::FieldType::Text,
    ),
];

/// One channel member: a selected object.
struct Member {
    id: String,
    developer_name: String,
    selected_entity: String,
}

impl Member {
    fn of(app: &App, object: &str) -> Option<Member> {
        let slot = app.org.object(object)?.read().slot;
        let entity = pubsub::channel::change_event_name(object);
        Some(Member {
            // The object's place in the org keeps its member id stable while the
            // selection changes around it.
            id: crate::ids::make_id(MEMBER_PREFIX, slot as u64 + 1),
            developer_name: format!("{STANDARD_CHANNEL}_{entity}"),
            selected_entity: entity,
        })
    }

    fn get(&self, f: Field) -> soql::Value<'_> {
        soql::Value::Text(match f {
            Field::Id => &self.id,
            Field::DeveloperName => &self.developer_name,
            Field::EventChannel => STANDARD_CHANNEL,
            Field::SelectedEntity => &self.selected_entity,
        })
    }

    fn json(&self, fields: &[Field], v: &str) -> Value {
        let mut m = Map::new();
        m.insert(
            "attributes".into(),
            json!({"type": MEMBER, "url": format!("/services/data/v{v}/tooling/sobjects/{MEMBER}/{}", self.id)}),
        );
        for f in fields {
            if let soql::Value::Text(s) = self.get(*f) {
                m.insert(f.name().to_string(), json!(s));
            }
        }
        Value::Object(m)
    }
}

fn members(app: &App) -> Vec<Member> {
    app.cdc
        .selected()
        .iter()
        .filter_map(|o| Member::of(app, o))
        .collect()
}

/// The member whose id is `id`, if its object is selected.
fn member_by_id(app: &App, id: &str) -> Option<(String, Member)> {
    let (prefix, seq) = crate::ids::decode(id)?;
    if &prefix != MEMBER_PREFIX || seq == 0 {
        return None;
    }
    let object = app.org.by_slot(seq as usize - 1)?.read().def.name.clone();
    if !app.cdc.is_selected(&object) {
        return None;
    }
    Member::of(app, &object).map(|m| (object, m))
}

/// INVALID_TYPE for an object other than PlatformEventChannelMember, and for it when
/// the user may not see it (see the module comment).
fn check_object(
    app: &App,
    object: &str,
    not_found: impl FnOnce() -> ApiError,
) -> Result<(), ApiError> {
    if object.eq_ignore_ascii_case(MEMBER) && app.tooling.access() {
        Ok(())
    } else {
        Err(not_found())
    }
}

fn resolve(text: &str, p: &FieldPath) -> Result<(Field, soql::FieldType), SoqlError> {
    let name = match p.parts.as_slice() {
        [one] => one,
        _ => return Err(SoqlError::invalid_field(text, p, MEMBER)),
    };
    FIELDS
        .iter()
        .find(|(_, n, _)| n.eq_ignore_ascii_case(name))
        .map(|(f, _, t)| (*f, *t))
        .ok_or_else(|| SoqlError::invalid_field(text, p, MEMBER))
}

/// The SELECT list's fields, each once, under their own names as REST queries answer
/// them; FIELDS(...) is every field.
fn selected_fields(bound: &soql::BoundQuery<Field>) -> Vec<Field> {
    let mut out: Vec<Field> = Vec::new();
    for item in &bound.select {
        let add: Vec<Field> = match item {
            SelectItem::Field(f) => vec![*f],
            SelectItem::Fields(_) => FIELDS.iter().map(|(f, _, _)| *f).collect(),
            SelectItem::Count | SelectItem::CountField(_) => Vec::new(),
        };
        for f in add {
            if !out.contains(&f) {
                out.push(f);
            }
        }
    }
    out
}

/// MALFORMED_QUERY for `COUNT(field)`, which the emulator does not answer here.
fn check_no_count_field(text: &str, q: &soql::Query) -> Result<(), SoqlError> {
    match q.select.iter().find_map(|i| match i {
        SelectItem::CountField(p) => Some(p),
        _ => None,
    }) {
        Some(p) => Err(SoqlError::at(
            soql::ErrorCode::MalformedQuery,
            text,
            p.pos,
            "COUNT(field) on PlatformEventChannelMember is not modelled by the emulator",
        )),
        None => Ok(()),
    }
}

/// `GET /tooling/query?q=`.
pub fn query(app: &App, req: &Req, v: &str) -> Result<Resp, ApiError> {
    let text = req
        .param("q")
        .ok_or_else(|| ApiError::bad("MALFORMED_QUERY", "A query string has to be specified"))?;
    let q = soql::parse(text)?;
    check_object(app, &q.from, || {
        SoqlError::invalid_type(text, &q.from).into()
    })?;
    let bound = q.bind_typed(text, |p| resolve(text, p))?;
    check_no_count_field(text, &q)?;
    let now = chrono::Utc::now();
    let mut rows: Vec<Member> = members(app)
        .into_iter()
        .filter(|m| bound.matches(&|f: &Field| m.get(*f), now))
        .collect();
    rows.sort_by(|a, b| bound.compare(&|f: &Field| a.get(*f), &|f: &Field| b.get(*f)));
    let offset = bound.offset.unwrap_or(0) as usize;
    let limit = bound.limit.map_or(usize::MAX, |l| l as usize);
    let rows: Vec<&Member> = rows.iter().skip(offset).take(limit).collect();
    if bound.is_count() {
        return Ok(page_resp(rows.len(), &[], None));
    }
    let fields = selected_fields(&bound);
    let records: Vec<Value> = rows.iter().map(|m| m.json(&fields, v)).collect();
    Ok(first_page(app, req, v, records))
}

fn batch_size(app: &App, req: &Req) -> usize {
    let asked = crate::query::batch_size(req);
    match app.tooling.page_size() {
        0 => asked,
        cap => asked.min(cap),
    }
}

fn first_page(app: &App, req: &Req, v: &str, records: Vec<Value>) -> Resp {
    let batch = batch_size(app, req);
    if records.len() <= batch {
        return page_resp(records.len(), &records, None);
    }
    let total = records.len();
    let records = Arc::new(records);
    let id = app.tooling.locators.open(records.clone(), batch);
    let next = format!("/services/data/v{v}/tooling/query/{id}-{batch}");
    page_resp(total, &records[..batch], Some(next))
}

/// `GET /tooling/query/{locator}-{position}`.
pub fn query_more(app: &App, v: &str, loc: &str) -> Result<Resp, ApiError> {
    let crate::locators::Resumed {
        id,
        position: pos,
        rest: records,
        batch,
    } = app.tooling.locators.resume(loc)?;
    if pos >= records.len() {
        return Err(ApiError::bad(
            "INVALID_QUERY_LOCATOR",
            "invalid query locator",
        ));
    }
    let end = (pos + batch).min(records.len());
    let next =
        (end < records.len()).then(|| format!("/services/data/v{v}/tooling/query/{id}-{end}"));
    Ok(page_resp(records.len(), &records[pos..end], next))
}

fn page_resp(total: usize, records: &[Value], next: Option<String>) -> Resp {
    let mut body = json!({
        "size": total,
        "totalSize": total,
        "done": next.is_none(),
        "queryLocator": null,
        "entityTypeName": MEMBER,
        "records": records,
    });
    if let Some(n) = next {
        body["nextRecordsUrl"] = json!(n);
    }
    Resp::json(200, &body)
}

/// `POST /tooling/sobjects/{object}`: selects an object for CDC.
pub fn create(app: &App, req: &Req, object: &str) -> Result<Resp, ApiError> {
    // An sObject resource of an unknown object is 404 NOT_FOUND, as in REST.
    check_object(app, object, ApiError::not_found)?;
    let body = req.json()?;
    let meta = body.get("Metadata").unwrap_or(&Value::Null);
    let channel = meta.get("eventChannel").and_then(Value::as_str);
    let entity = meta.get("selectedEntity").and_then(Value::as_str);
    let (Some(channel), Some(entity)) = (channel, entity) else {
        return Err(ApiError::bad(
            "REQUIRED_FIELD_MISSING",
            "Required fields are missing: [eventChannel, selectedEntity]",
        ));
    };
    if channel != STANDARD_CHANNEL {
        return Err(ApiError::bad(
            "INVALID_INPUT",
            format!("the emulator models only the {STANDARD_CHANNEL} channel, not {channel}"),
        ));
    }
    let name = pubsub::channel::object_of_change_event(entity)
        .and_then(|o| app.org.object(&o))
        .map(|o| o.read().def.name.clone())
        .ok_or_else(|| {
            ApiError::bad(
                "INVALID_INPUT",
                format!("no change event {entity} in this org"),
            )
        })?;
    if !app.cdc.add_selected(name.clone()) {
        return Err(ApiError::bad(
            "DUPLICATE_VALUE",
            format!("{entity} is already selected on {STANDARD_CHANNEL}"),
        ));
    }
    let id = Member::of(app, &name).map(|m| m.id).unwrap_or_default();
    Ok(Resp::json(
        201,
        &json!({"id": id, "success": true, "errors": [], "warnings": [], "infos": []}),
    ))
}

/// `GET` and `DELETE /tooling/sobjects/{object}/{id}`.
pub fn record(app: &App, req: &Req, v: &str, object: &str, id: &str) -> Result<Resp, ApiError> {
    check_object(app, object, ApiError::not_found)?;
    let (name, member) = member_by_id(app, id).ok_or_else(ApiError::not_found)?;
    match req.method {
        hyper::Method::GET => {
            let all: Vec<Field> = FIELDS.iter().map(|(f, _, _)| *f).collect();
            Ok(Resp::json(200, &member.json(&all, v)))
        }
        hyper::Method::DELETE => {
            app.cdc.remove_selected(&name);
            Ok(Resp::empty(204))
        }
        ref m => Err(ApiError::method_not_allowed(m.as_str())),
    }
}
