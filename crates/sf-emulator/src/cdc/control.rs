//! The control API of Change Data Capture (`/__emulator/cdc...`): what Setup's
//! "Change Data Capture" page does (select objects), and the failures a subscriber
//! must survive on a real org, on demand: gap and overflow events, dropped streams,
//! replay ids past the retention window, a user who may not read the selection
//! through the Tooling API (`crate::tooling`), and the org's limit on selected
//! entities (Salesforce without the add-on: 5 across all channels).

use super::bus::{Bus, Pending};
use super::layout::{self, Fill};
use crate::app::App;
use crate::http::{Req, Resp};
use hyper::Method;
use serde_json::{json, Value};
use std::sync::Arc;

fn bad(msg: impl Into<String>) -> Resp {
    Resp::json(400, &json!({"error": msg.into()}))
}

fn not_found(msg: impl Into<String>) -> Resp {
    Resp::json(404, &json!({"error": msg.into()}))
}

fn body(req: &Req) -> Result<Value, Resp> {
    if req.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(&req.body).map_err(|e| bad(format!("body is not JSON: {e}")))
}

/// `segs` follow `/__emulator/cdc`.
pub fn handle(app: &Arc<App>, req: &Req, segs: &[&str]) -> Resp {
    let r = match (&req.method, segs) {
        (&Method::GET, []) => Ok(status(app)),
        (&Method::PUT, []) => select(app, req),
        (&Method::POST, ["gap"]) => gap(app, req),
        (&Method::POST, ["overflow"]) => overflow(app, req),
        (&Method::POST, ["drop_streams"]) => {
            Ok(Resp::json(200, &json!({"dropped": app.cdc.drop_streams()})))
        }
        (&Method::POST, ["expire_replay_ids"]) => {
            Ok(Resp::json(200, &json!({"expired": app.cdc.expire_all()})))
        }
        _ => Err(not_found(format!(
            "no control endpoint {} /__emulator/cdc/{}",
            req.method,
            segs.join("/")
        ))),
    };
    r.unwrap_or_else(|e| e)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The custom channels, as `{"name": "MyChannel__chn", "label": ..., "objects":
/// [...]}` (Setup's page does not show them: they are not in `objects`).
fn channels(app: &App) -> Value {
    app.cdc.read_selection(|s| {
        s.custom
            .iter()
            .map(|c| {
                let objects: Vec<&str> = c.members.iter().map(|m| m.object.as_str()).collect();
                json!({"name": c.full_name, "label": c.label, "objects": objects})
            })
            .collect()
    })
}

fn status(app: &App) -> Resp {
    Resp::json(
        200,
        &json!({
            "objects": app.cdc.selected(),
            "channels": channels(app),
            "entity_limit": app.cdc.entity_limit(),
            "pubsub": app.pubsub_addr.get(),
            "latest_replay_id": hex(&super::bus::replay_id(app.cdc.latest())),
            "retained": app.cdc.retained(),
            "tooling_access": app.tooling.access(),
            "tooling_page_size": app.tooling.page_size(),
        }),
    )
}

/// The object's API name as the org spells it.
fn canonical(app: &App, name: &str) -> Result<String, Resp> {
    app.org
        .object(name)
        .map(|o| o.read().def.name.clone())
        .ok_or_else(|| not_found(format!("no object {name}")))
}

/// Canonical names of `names`, or the first unknown one.
pub fn canonical_names(app: &App, names: &[String]) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for n in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        let c = app
            .org
            .object(n)
            .map(|o| o.read().def.name.clone())
            .ok_or_else(|| format!("no object {n}"))?;
        if !out.contains(&c) {
            out.push(c);
        }
    }
    Ok(out)
}

/// `b[key]` as a whole number, if present.
fn whole_number(b: &Value, key: &str) -> Result<Option<usize>, Resp> {
    match b.get(key) {
        Some(v) => v
            .as_u64()
            .map(|n| Some(n as usize))
            .ok_or_else(|| bad(format!("{key} is a whole number"))),
        None => Ok(None),
    }
}

/// `PUT /__emulator/cdc`: any of `objects` (the standard channel's selection, not
/// limited: it stands for Setup's page), `tooling_access` (false: the user lacks View
/// Setup and Configuration, so the Tooling API hides PlatformEventChannel and
/// PlatformEventChannelMember), `tooling_page_size` (Tooling query pages hold at most
/// this many records; 0 lifts the cap) and `entity_limit` (most distinct objects
/// Tooling API members may select across all channels; 0: no limit). Checked whole
/// before anything changes.
fn select(app: &App, req: &Req) -> Result<Resp, Resp> {
    let b = body(req)?;
    let known = [
        "objects",
        "tooling_access",
        "tooling_page_size",
        "entity_limit",
    ];
    if !b
        .as_object()
        .is_some_and(|m| m.keys().any(|k| known.contains(&k.as_str())))
    {
        return Err(bad(
            "need \"objects\": an array of object names, \"tooling_access\", \"tooling_page_size\" or \"entity_limit\"",
        ));
    }
    let names = match b.get("objects") {
        Some(v) => Some(object_names(app, v)?),
        None => None,
    };
    let access = match b.get("tooling_access") {
        Some(v) => Some(
            v.as_bool()
                .ok_or_else(|| bad("tooling_access is true or false"))?,
        ),
        None => None,
    };
    let page = whole_number(&b, "tooling_page_size")?;
    let limit = whole_number(&b, "entity_limit")?;
    if let Some(n) = names {
        app.cdc.select(n);
    }
    if let Some(a) = access {
        app.tooling.set_access(a);
    }
    if let Some(p) = page {
        app.tooling.set_page_size(p);
    }
    if let Some(l) = limit {
        app.cdc.set_entity_limit(l);
    }
    Ok(status(app))
}

fn object_names(app: &App, v: &Value) -> Result<Vec<String>, Resp> {
    let names: Vec<String> = v
        .as_array()
        .ok_or_else(|| bad("need \"objects\": an array of object names"))?
        .iter()
        .map(|v| {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(|| bad("object names are strings"))
        })
        .collect::<Result<_, _>>()?;
    canonical_names(app, &names).map_err(not_found)
}

/// A header-only event for `object` (selected for CDC), published as its own
/// transaction.
fn header_only(
    app: &App,
    bus: &Arc<Bus>,
    object: &str,
    kind: &'static str,
    ids: Vec<String>,
) -> Result<(), Resp> {
    let name = canonical(app, object)?;
    // Selected on any channel, standard or custom.
    if !bus.is_selected(&name) {
        return Err(bad(format!(
            "{name} is not selected for Change Data Capture"
        )));
    }
    let obj = app
        .org
        .object(&name)
        .ok_or_else(|| not_found(format!("no object {name}")))?;
    let layout = bus.layout(&obj.read().def);
    let body = layout::encode_body(&layout, None, &Fill::Nothing);
    bus.commit(vec![Pending {
        bus: bus.clone(),
        layout,
        change_type: kind,
        record_ids: ids,
        origin: "".into(),
        changed: Vec::new(),
        nulled: Vec::new(),
        body,
        weight: 1,
    }]);
    Ok(())
}

fn gap(app: &App, req: &Req) -> Result<Resp, Resp> {
    let b = body(req)?;
    let object = b
        .get("object")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("need \"object\""))?;
    let kind = b
        .get("changeType")
        .and_then(Value::as_str)
        .unwrap_or("GAP_UPDATE");
    let kind: &'static str = ["GAP_CREATE", "GAP_UPDATE", "GAP_DELETE", "GAP_UNDELETE"]
        .into_iter()
        .find(|k| *k == kind)
        .ok_or_else(|| {
            bad(format!(
                "changeType {kind}: use GAP_CREATE, GAP_UPDATE, GAP_DELETE or GAP_UNDELETE"
            ))
        })?;
    let ids: Vec<String> = b
        .get("ids")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    header_only(app, &app.cdc, object, kind, ids)?;
    Ok(status(app))
}

fn overflow(app: &App, req: &Req) -> Result<Resp, Resp> {
    let b = body(req)?;
    let object = b
        .get("object")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("need \"object\""))?;
    // An overflow event names the object but no records ("Overflow Events").
    header_only(app, &app.cdc, object, "GAP_OVERFLOW", Vec::new())?;
    Ok(status(app))
}
