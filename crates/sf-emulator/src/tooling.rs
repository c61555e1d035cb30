//! The Tooling API (`/services/data/vXX.X/tooling/...`), for two objects only:
//! PlatformEventChannel (the custom channels of Change Data Capture) and
//! PlatformEventChannelMember (which objects a channel selects), through which a
//! client learns and changes what is selected for Change Data Capture. Their records
//! are the bus's selection (`app.cdc`, `crate::cdc::channels`): the members of the
//! standard ChangeEvents channel are the objects Setup's page selects (also set by
//! `PUT /__emulator/cdc`), one per selected object; custom channels and their members
//! exist only here. Creating or deleting a record changes the same selection.
//!
//! | fact | source |
//! | --- | --- |
//! | PlatformEventChannelMember (API 47.0+) "represents an entity selected for Change Data Capture notifications on a standard or custom channel"; REST methods DELETE, GET, HEAD, PATCH, POST, Query; querying needs View Setup and Configuration, creating and deleting Customize Application; EventChannel and SelectedEntity can't be updated | "PlatformEventChannelMember", Tooling API Developer Guide, https://developer.salesforce.com/docs/atlas.en-us.api_tooling.meta/api_tooling/tooling_api_objects_platformeventchannelmember.htm |
//! | DeveloperName of a member: `ChannelName_EventName`, a custom channel's double underscores replaced by one (`ChangeEvents_AccountChangeEvent`, `MyChannel_chn_AccountChangeEvent`); SelectedEntity: `AccountChangeEvent`, `MyObject__ChangeEvent` for `MyObject__c` | same page; "PlatformEventChannelMember", Metadata API Developer Guide |
//! | PlatformEventChannel (API 47.0+) represents a custom channel; REST methods DELETE, GET, HEAD, PATCH, POST, Query; querying needs View Setup and Configuration, creating and deleting Customize Application; ChannelType `data` (change events) or `event` (platform events); DeveloperName is the name without `__chn` (`MyChannel` for `MyChannel__chn`): underscores and alphanumerics, begins with a letter, no trailing underscore, no two consecutive underscores, unique in the org | "PlatformEventChannel", Tooling API Developer Guide, https://developer.salesforce.com/docs/atlas.en-us.api_tooling.meta/api_tooling/tooling_api_objects_platformeventchannel.htm |
//! | Create a channel: `POST .../tooling/sobjects/PlatformEventChannel` with `{"FullName": "MyChannel__chn", "Metadata": {"channelType": "data", "label": "My Channel"}}`; a member: `POST .../tooling/sobjects/PlatformEventChannelMember` with `{"FullName": "MyChannel_chn_AccountChangeEvent", "Metadata": {"eventChannel": "MyChannel__chn", "selectedEntity": "AccountChangeEvent"}}`; both answered `{"id", "success": true, "errors": [], "warnings": [], "infos": []}` | "Create a Channel and Channel Members", Salesforce Help, https://help.salesforce.com/apex/HTViewHelpDoc?id=platform.ev_relay_create_channel_section.htm; "Add a Change Event in a New Channel Member", https://help.salesforce.com/apex/HTViewHelpDoc?id=platform.ev_relay_create_channel_member_cdc.htm |
//! | A channel id starts with `0YL` (the example answer's `0YLRM0000004CEI4A2`) | "Create a Custom Channel and Add Platform Events with Tooling API", Platform Events Developer Guide, https://developer.salesforce.com/docs/atlas.en-us.platform_events.meta/platform_events/platform_events_custom_channel_tooling_api.htm |
//! | The standard ChangeEvents channel is the selection Setup's Change Data Capture page edits; custom channels are not shown there | "Select Objects for Change Notifications with Metadata API and Tooling API", Change Data Capture Developer Guide, https://developer.salesforce.com/docs/atlas.en-us.change_data_capture.meta/change_data_capture/cdc_object_selections_metadata.htm; "Compose Streams of Change Data Capture Notifications with Custom Channels", same guide |
//! | Query with `GET /services/data/vXX.X/tooling/query?q=SELECT Id, DeveloperName, EventChannel, SelectedEntity FROM PlatformEventChannelMember` (`WHERE EventChannel = 'MyChannel__chn'`: a channel's members); member ids start with `0v8` (`0v8RM0000004VAKYA2`) | "Get Custom Channels and Channel Members", same guide, https://developer.salesforce.com/docs/platform/change-data-capture/guide/cdc-filter-list-channels.html |
//! | Without the add-on an org selects at most 5 entities for Change Data Capture, across all channels | "Change Data Capture Allocations", same guide, https://developer.salesforce.com/docs/atlas.en-us.change_data_capture.meta/change_data_capture/cdc_allocations.htm |
//! | A Tooling query result has size, totalSize, done, queryLocator (SOAP only), entityTypeName, records and nextRecordsUrl | "QueryResult", Tooling API Developer Guide, https://developer.salesforce.com/docs/atlas.en-us.api_tooling.meta/api_tooling/tooling_api_objects_queryresult.htm |
//!
//! Unconfirmed, and chosen here:
//! - A user without View Setup and Configuration gets `INVALID_TYPE` ("sObject type
//!   '...' is not supported", 400), as for an object that does not exist, for both
//!   objects. No Salesforce page names the error; users report exactly this for
//!   Tooling objects they could not see until granted that permission
//!   (https://github.com/tprouvot/Salesforce-Inspector-reloaded/issues/1310,
//!   https://github.com/afawcett/apex-toolingapi/issues/19).
//! - `size` equals totalSize; the next page's URL is
//!   `/services/data/vXX.X/tooling/query/<locator>-<position>`, shaped like REST's;
//!   pages honour `Sforce-Query-Options: batchSize` as REST queries do.
//! - Refusals: 400 `REQUIRED_FIELD_MISSING` for a missing FullName, channelType, label,
//!   eventChannel or selectedEntity; `INVALID_INPUT` for a bad channel name (not
//!   `<DeveloperName>__chn`), a channelType other than `data` (platform event
//!   channels are not modelled), an unknown channel or entity; `DUPLICATE_VALUE` for a
//!   channel name taken (compared without case) or an entity already on that
//!   channel; `LIMIT_EXCEEDED` ("You can select up to 5 entities for Change Data
//!   Capture across all channels; 5 are selected.") when a member would add a
//!   distinct entity past the limit (`--cdc-entity-limit`, `PUT /__emulator/cdc
//!   {"entity_limit": N}`; 0, the default, is none). Salesforce's codes and wording
//!   for these are not documented.
//! - An entity on two channels counts once toward the limit.
//! - EventChannel holds the channel's full name (`ChangeEvents`, `MyChannel__chn`).
//! - Deleting a channel deletes its members. A member's FullName is not kept: its
//!   DeveloperName is always the documented `ChannelName_EventName` form.
//! - Only custom channels are PlatformEventChannel records (not ChangeEvents).
//! - Custom channels' member ids come from their own sequence, numbered past any
//!   object's slot, so they never equal the standard channel's (slot-based) ids.
//!
//! Not modelled: platform event (`event`) channels, FilterExpression and enrichment,
//! the FullName and Metadata fields in queries, PATCH, HEAD.

mod channels;
mod members;

use crate::app::App;
use crate::error::ApiError;
use crate::http::{Req, Resp};
use serde_json::{json, Map, Value};
use soql::{FieldPath, FieldType, SelectItem, SoqlError};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// What the control API sets about the Tooling API, and its open query locators.
pub struct Tooling {
    /// Off: the user lacks View Setup and Configuration (`PUT /__emulator/cdc`
    /// `tooling_access`).
    access: AtomicBool,
    /// A page size below what the client asked for (0: none), so a test sees
    /// `nextRecordsUrl` with few selected objects (`tooling_page_size`).
    page_size: AtomicUsize,
    /// The records of each query beyond its first page.
    locators: crate::locators::Locators<Arc<Listing>>,
}

/// A query's records, kept for its next pages.
struct Listing {
    object: &'static str,
    records: Vec<Value>,
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

/// A field of a served object.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Field {
    Id,
    DeveloperName,
    EventChannel,
    SelectedEntity,
    MasterLabel,
    ChannelType,
}

type FieldDef = (Field, &'static str, FieldType);

const MEMBER_FIELDS: [FieldDef; 4] = [
    (Field::Id, "Id", FieldType::Id),
    (Field::DeveloperName, "DeveloperName", FieldType::Text),
    (Field::EventChannel, "EventChannel", FieldType::Text),
    (Field::SelectedEntity, "SelectedEntity", FieldType::Text),
];

const CHANNEL_FIELDS: [FieldDef; 4] = [
    (Field::Id, "Id", FieldType::Id),
    (Field::DeveloperName, "DeveloperName", FieldType::Text),
    (Field::MasterLabel, "MasterLabel", FieldType::Text),
    (Field::ChannelType, "ChannelType", FieldType::Text),
];

/// A served Tooling object.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Object {
    Channel,
    Member,
}

impl Object {
    fn name(self) -> &'static str {
        match self {
            Object::Channel => channels::CHANNEL,
            Object::Member => members::MEMBER,
        }
    }

    /// The object named `name` (any case).
    fn named(name: &str) -> Option<Object> {
        [Object::Channel, Object::Member]
            .into_iter()
            .find(|o| o.name().eq_ignore_ascii_case(name))
    }

    /// Its fields, Id first.
    fn fields(self) -> &'static [FieldDef] {
        match self {
            Object::Channel => &CHANNEL_FIELDS,
            Object::Member => &MEMBER_FIELDS,
        }
    }

    fn all_fields(self) -> Vec<Field> {
        self.fields().iter().map(|(f, _, _)| *f).collect()
    }

    /// Every record, as the selection is now.
    fn rows(self, app: &App) -> Vec<Row> {
        match self {
            Object::Channel => channels::rows(app),
            Object::Member => members::rows(app),
        }
    }
}

/// What deleting a record changes in the selection.
enum Key {
    /// A member of the standard channel: the object's API name.
    Standard(String),
    /// A member of a custom channel: its sequence number.
    CustomMember(u64),
    /// A custom channel: its sequence number.
    Channel(u64),
}

/// One record: a value per field of its object, in the object's order.
struct Row {
    object: Object,
    key: Key,
    cells: Vec<String>,
}

impl Row {
    fn id(&self) -> &str {
        &self.cells[0]
    }

    /// Where `f` is among the object's fields.
    fn index(&self, f: Field) -> Option<usize> {
        self.object.fields().iter().position(|(g, _, _)| *g == f)
    }

    fn get(&self, f: Field) -> soql::Value<'_> {
        self.index(f)
            .map_or(soql::Value::Null, |i| soql::Value::Text(&self.cells[i]))
    }

    /// Whether `id` (15 or 18 characters) names this record.
    fn is(&self, id: &str) -> bool {
        crate::ids::normalize(id).is_some_and(|id15| self.id().starts_with(id15))
    }

    fn json(&self, fields: &[Field], v: &str) -> Value {
        let object = self.object.name();
        let mut m = Map::new();
        m.insert(
            "attributes".into(),
            json!({"type": object, "url": format!("/services/data/v{v}/tooling/sobjects/{object}/{}", self.id())}),
        );
        // In the order asked for.
        for f in fields {
            if let Some(i) = self.index(*f) {
                m.insert(self.object.fields()[i].1.to_string(), json!(self.cells[i]));
            }
        }
        Value::Object(m)
    }
}

/// The served object named `name`, unless the user may not see it (see the module
/// comment): then, as for any other name, `not_found()`.
fn check_object(
    app: &App,
    name: &str,
    not_found: impl FnOnce() -> ApiError,
) -> Result<Object, ApiError> {
    match Object::named(name) {
        Some(o) if app.tooling.access() => Ok(o),
        _ => Err(not_found()),
    }
}

fn resolve(object: Object, text: &str, p: &FieldPath) -> Result<FieldDef, SoqlError> {
    let name = match p.parts.as_slice() {
        [one] => one,
        _ => return Err(SoqlError::invalid_field(text, p, object.name())),
    };
    object
        .fields()
        .iter()
        .find(|(_, n, _)| n.eq_ignore_ascii_case(name))
        .copied()
        .ok_or_else(|| SoqlError::invalid_field(text, p, object.name()))
}

/// The SELECT list's fields, each once, under their own names as REST queries answer
/// them; FIELDS(...) is every field.
fn selected_fields(object: Object, bound: &soql::BoundQuery<Field>) -> Vec<Field> {
    let mut out: Vec<Field> = Vec::new();
    for item in &bound.select {
        let add: Vec<Field> = match item {
            SelectItem::Field(f) => vec![*f],
            SelectItem::Fields(_) => object.all_fields(),
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
fn check_no_count_field(object: Object, text: &str, q: &soql::Query) -> Result<(), SoqlError> {
    match q.select.iter().find_map(|i| match i {
        SelectItem::CountField(p) => Some(p),
        _ => None,
    }) {
        Some(p) => Err(SoqlError::at(
            soql::ErrorCode::MalformedQuery,
            text,
            p.pos,
            &format!(
                "COUNT(field) on {} is not modelled by the emulator",
                object.name()
            ),
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
    let object = check_object(app, &q.from, || {
        SoqlError::invalid_type(text, &q.from).into()
    })?;
    let bound = q.bind_typed(text, |p| resolve(object, text, p).map(|(f, _, t)| (f, t)))?;
    check_no_count_field(object, text, &q)?;
    let now = chrono::Utc::now();
    let mut rows: Vec<Row> = object
        .rows(app)
        .into_iter()
        .filter(|r| bound.matches(&|f: &Field| r.get(*f), now))
        .collect();
    rows.sort_by(|a, b| bound.compare(&|f: &Field| a.get(*f), &|f: &Field| b.get(*f)));
    let offset = bound.offset.unwrap_or(0) as usize;
    let limit = bound.limit.map_or(usize::MAX, |l| l as usize);
    let rows: Vec<&Row> = rows.iter().skip(offset).take(limit).collect();
    if bound.is_count() {
        return Ok(page_resp(object.name(), rows.len(), &[], None));
    }
    let fields = selected_fields(object, &bound);
    let records: Vec<Value> = rows.iter().map(|r| r.json(&fields, v)).collect();
    Ok(first_page(app, req, v, object.name(), records))
}

fn batch_size(app: &App, req: &Req) -> usize {
    let asked = crate::query::batch_size(req);
    match app.tooling.page_size() {
        0 => asked,
        cap => asked.min(cap),
    }
}

fn first_page(app: &App, req: &Req, v: &str, object: &'static str, records: Vec<Value>) -> Resp {
    let batch = batch_size(app, req);
    if records.len() <= batch {
        return page_resp(object, records.len(), &records, None);
    }
    let listing = Arc::new(Listing { object, records });
    let id = app.tooling.locators.open(listing.clone(), batch);
    let next = format!("/services/data/v{v}/tooling/query/{id}-{batch}");
    page_resp(
        object,
        listing.records.len(),
        &listing.records[..batch],
        Some(next),
    )
}

/// `GET /tooling/query/{locator}-{position}`.
pub fn query_more(app: &App, v: &str, loc: &str) -> Result<Resp, ApiError> {
    let crate::locators::Resumed {
        id,
        position: pos,
        rest: listing,
        batch,
    } = app.tooling.locators.resume(loc)?;
    let records = &listing.records;
    if pos >= records.len() {
        return Err(ApiError::bad(
            "INVALID_QUERY_LOCATOR",
            "invalid query locator",
        ));
    }
    let end = (pos + batch).min(records.len());
    let next =
        (end < records.len()).then(|| format!("/services/data/v{v}/tooling/query/{id}-{end}"));
    Ok(page_resp(
        listing.object,
        records.len(),
        &records[pos..end],
        next,
    ))
}

fn page_resp(object: &str, total: usize, records: &[Value], next: Option<String>) -> Resp {
    let mut body = json!({
        "size": total,
        "totalSize": total,
        "done": next.is_none(),
        "queryLocator": null,
        "entityTypeName": object,
        "records": records,
    });
    if let Some(n) = next {
        body["nextRecordsUrl"] = json!(n);
    }
    Resp::json(200, &body)
}

/// The answer to a create.
fn created(id: &str) -> Resp {
    Resp::json(
        201,
        &json!({"id": id, "success": true, "errors": [], "warnings": [], "infos": []}),
    )
}

/// REQUIRED_FIELD_MISSING naming the fields missing.
fn missing_fields(names: &[&str]) -> ApiError {
    ApiError::bad(
        "REQUIRED_FIELD_MISSING",
        format!("Required fields are missing: [{}]", names.join(", ")),
    )
}

/// `body.Metadata[key]` as a string.
fn metadata_str<'a>(body: &'a Value, key: &str) -> Option<&'a str> {
    body.get("Metadata")
        .and_then(|m| m.get(key))
        .and_then(Value::as_str)
}

/// `POST /tooling/sobjects/{object}`: creates a channel or a member.
pub fn create(app: &App, req: &Req, object: &str) -> Result<Resp, ApiError> {
    // An sObject resource of an unknown object is 404 NOT_FOUND, as in REST.
    let object = check_object(app, object, ApiError::not_found)?;
    let body = req.json()?;
    let id = match object {
        Object::Channel => channels::create(app, &body)?,
        Object::Member => members::create(app, &body)?,
    };
    Ok(created(&id))
}

/// `GET` and `DELETE /tooling/sobjects/{object}/{id}`.
pub fn record(app: &App, req: &Req, v: &str, object: &str, id: &str) -> Result<Resp, ApiError> {
    let object = check_object(app, object, ApiError::not_found)?;
    let row = object
        .rows(app)
        .into_iter()
        .find(|r| r.is(id))
        .ok_or_else(ApiError::not_found)?;
    match req.method {
        hyper::Method::GET => Ok(Resp::json(200, &row.json(&object.all_fields(), v))),
        hyper::Method::DELETE => {
            delete(app, &row.key);
            Ok(Resp::empty(204))
        }
        ref m => Err(ApiError::method_not_allowed(m.as_str())),
    }
}

fn delete(app: &App, key: &Key) {
    app.cdc.change_selection(|s| match key {
        Key::Standard(object) => {
            s.remove_standard(object);
        }
        Key::CustomMember(seq) => {
            s.remove_member(*seq);
        }
        Key::Channel(seq) => {
            s.remove_channel(*seq);
        }
    });
}
