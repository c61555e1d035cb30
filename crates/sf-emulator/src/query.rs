//! SOQL over REST: planning (binding field paths to columns), running, pagination
//! with locators, and the JSON result pages. Bulk queries reuse the planner.

use crate::app::App;
use crate::error::ApiError;
use crate::http::{Req, Resp};
use crate::org::ObjRef;
use crate::schema::FieldType;
use crate::store::{RowState, SObject};
use parking_lot::RwLockReadGuard;
use soql::{FieldPath, SelectItem, SoqlError, Value};
use std::sync::Arc;

const MAX_OFFSET: u64 = 2000;
/// The largest LIMIT a query with FIELDS(ALL) or FIELDS(CUSTOM) may have.
const MAX_FIELDS_LIMIT: u64 = 200;
/// The page size when a query selects two or more custom long text area fields.
const LONG_TEXT_BATCH: usize = 200;

/// One step through a reference field to its parent.
#[derive(Clone, Debug)]
pub struct Hop {
    pub from: usize,
    pub ref_col: usize,
    pub to: usize,
    pub rel_name: String,
}

/// A bound field: follow `hops` from the queried row, then read `field` of object `obj`.
#[derive(Clone, Debug)]
pub struct Handle {
    pub hops: Vec<Hop>,
    pub obj: usize,
    pub field: usize,
    /// Canonical dotted path (`Account.Name`), for CSV headers.
    pub path: String,
    /// Set when `field` is a formula: where its value is read instead.
    pub formula: Option<Box<Formula>>,
}

/// A formula field bound to what it reads: follow `hops` from the formula's own row,
/// then read `field` of object `obj` (`field == usize::MAX`: unresolvable, null).
///
/// Formulas are worked out when a record is read, never stored, so a change to the
/// record a cross-object formula reads shows at once in every read of the records
/// that point at it, while their SystemModstamp and LastModifiedDate stay put and
/// `/updated` does not list them:
/// - "sObject fields that contain formulas return the value of the field at the time
///   the SOQL or SOSL query was issued" ("Working with SOQL and SOSL Query Results",
///   Apex Developer Guide,
///   https://developer.salesforce.com/docs/atlas.en-us.236.0.apexcode.meta/apexcode/langCon_apex_SOQL_working_with_results.htm).
/// - Salesforce "computes formula fields dynamically at read time"; SystemModstamp and
///   LastModifiedDate "track changes to the record itself, not changes to formula
///   outputs" ("Ingest Salesforce formula fields incrementally", Databricks
///   documentation, https://docs.databricks.com/aws/en/ingestion/lakeflow-connect/salesforce-formula-fields).
/// - Fivetran warns its incremental sync "may not extract all records affected by
///   formula field changes" ("How to Use the Fivetran REST API To Enable the Syncing
///   of Salesforce Formula Fields",
///   https://fivetran.com/docs/connectors/applications/salesforce/troubleshooting/formula-fields-rest-api).
/// - Change Data Capture carries no formula values: "Formula fields aren't supported
///   in Change Data Capture" ("Change Event Trigger Considerations", Change Data
///   Capture Developer Guide,
///   https://developer.salesforce.com/docs/atlas.en-us.change_data_capture.meta/change_data_capture/cdc_trigger_considerations.htm).
///
/// Roll-up summary fields are different, and not modelled: they are stored on the
/// master and recalculated when a detail record is saved; "Triggers and Order of
/// Execution" (Apex Developer Guide,
/// https://developer.salesforce.com/docs/atlas.en-us.apexcode.meta/apexcode/apex_triggers_order_of_execution.htm)
/// has the step "If the record contains a roll-up summary field or is part of a
/// cross-object workflow, performs calculations and updates the roll-up summary field
/// in the parent record. Parent record goes through save procedure" (the wording as
/// quoted from that page by third-party copies; the page itself was only seen in
/// part), so the master's SystemModstamp moves and an incremental sync sees it. No
/// Salesforce page found says a roll-up can be stale after a detail change.
#[derive(Clone, Debug)]
pub struct Formula {
    pub hops: Vec<Hop>,
    pub obj: usize,
    pub field: usize,
    /// A number formula reading an integer field answers a double, as its type says.
    pub as_double: bool,
}

/// Where `obj` sits in `objs`, added at the end when new.
fn pos_in(objs: &mut Vec<ObjRef>, obj: &ObjRef) -> usize {
    if let Some(i) = objs.iter().position(|o| Arc::ptr_eq(o, obj)) {
        return i;
    }
    objs.push(obj.clone());
    objs.len() - 1
}

/// Binds a formula's path (relationship names, then a field) from object `from` of
/// `objs`, adding the objects it crosses; `ftype` is the formula's own type. Takes one
/// read lock at a time. A path that no longer resolves (a field removed since) reads
/// as null.
pub fn bind_formula(
    app: &App,
    objs: &mut Vec<ObjRef>,
    from: usize,
    path: &[String],
    ftype: FieldType,
) -> Formula {
    let null = Formula {
        hops: Vec::new(),
        obj: from,
        field: usize::MAX,
        as_double: false,
    };
    let Some((last, rels)) = path.split_last() else {
        return null;
    };
    let mut cur = from;
    let mut hops = Vec::new();
    for rel in rels {
        let step = {
            let o = objs[cur].read();
            o.def.relationship(rel).and_then(|f| {
                Some((
                    f.column()?,
                    f.relationship_name.clone().unwrap_or_default(),
                    f.reference_to.first().cloned()?,
                ))
            })
        };
        let Some((ref_col, rel_name, target)) = step else {
            return null;
        };
        let Some(target) = app.org.object(&target) else {
            return null;
        };
        let to = pos_in(objs, &target);
        hops.push(Hop {
            from: cur,
            ref_col,
            to,
            rel_name,
        });
        cur = to;
    }
    let o = objs[cur].read();
    match o.def.field_index(last) {
        // A formula reading a formula is refused when it is added; one that would
        // now (the other changed since) reads as null rather than loop.
        Some(i)
            if !matches!(
                o.def.fields[i].source,
                crate::schema::Source::Formula { .. }
            ) =>
        {
            Formula {
                hops,
                obj: cur,
                field: i,
                as_double: ftype.is_number() && o.def.fields[i].ftype == FieldType::Int,
            }
        }
        _ => null,
    }
}

#[derive(Debug)]
pub enum OutItem {
    Field {
        field: usize,
        name: String,
        /// Set for a formula field: its value is read through this.
        formula: Option<Box<Formula>>,
    },
    Rel {
        name: String,
        ref_col: usize,
        node: OutNode,
    },
}

#[derive(Debug)]
pub struct OutNode {
    pub obj: usize,
    pub items: Vec<OutItem>,
}

#[derive(Debug)]
pub enum Shape {
    Records(OutNode),
    /// `SELECT COUNT() ...`
    Count,
    /// `SELECT COUNT(field) ...`
    CountField(Handle),
}

/// A bound query: the objects it touches (index 0 = FROM), and its output shape.
pub struct Plan {
    pub objs: Vec<ObjRef>,
    pub shape: Shape,
    /// Selected fields in order (for CSV).
    pub columns: Vec<Handle>,
}

/// Read locks on every object of a plan, taken in slot order.
pub struct Locked<'a> {
    guards: Vec<RwLockReadGuard<'a, SObject>>,
}

impl<'a> Locked<'a> {
    pub fn new(objs: &'a [ObjRef]) -> Locked<'a> {
        let mut order: Vec<usize> = (0..objs.len()).collect();
        order.sort_by_key(|&i| objs[i].data_ptr() as usize);
        let mut slots: Vec<Option<RwLockReadGuard<'a, SObject>>> =
            (0..objs.len()).map(|_| None).collect();
        for i in order {
            slots[i] = Some(objs[i].read());
        }
        Locked {
            guards: slots.into_iter().flatten().collect(),
        }
    }

    pub fn obj(&self, i: usize) -> &SObject {
        &self.guards[i]
    }

    /// The parent row a reference column points at.
    fn follow(&self, hop: &Hop, row: usize) -> Option<usize> {
        let Value::Text(id) = self.guards[hop.from].table.cols[hop.ref_col].get(row) else {
            return None;
        };
        let target = &self.guards[hop.to];
        let r = target.row_of(id)?;
        (target.table.row_state(r) != Some(RowState::Purged)).then_some(r)
    }

    pub fn get(&self, h: &Handle, row: usize) -> Value<'_> {
        let mut row = row;
        for hop in &h.hops {
            match self.follow(hop, row) {
                Some(r) => row = r,
                None => return Value::Null,
            }
        }
        match &h.formula {
            None => self.guards[h.obj].value(h.field, row),
            Some(f) => self.eval(f, row),
        }
    }

    /// A formula's value for `row` of the object it is defined on.
    pub fn eval(&self, f: &Formula, row: usize) -> Value<'_> {
        let mut row = row;
        for hop in &f.hops {
            match self.follow(hop, row) {
                Some(r) => row = r,
                None => return Value::Null,
            }
        }
        match self.guards[f.obj].value(f.field, row) {
            Value::Int(i) if f.as_double => Value::Double(i as f64),
            v => v,
        }
    }
}

/// Reads whole records of one object (sObject GET, collections retrieve): the object
/// and whatever its formula fields read, locked together as a query's objects are.
pub struct RecordReader {
    objs: Vec<ObjRef>,
    /// (field index, binding) of the object's formula fields.
    formulas: Vec<(usize, Formula)>,
}

impl RecordReader {
    pub fn new(app: &App, obj: &ObjRef) -> RecordReader {
        let paths: Vec<(usize, Vec<String>, FieldType)> = {
            let o = obj.read();
            o.def
                .live_fields()
                .filter_map(|(i, f)| match &f.source {
                    crate::schema::Source::Formula { path } => Some((i, path.clone(), f.ftype)),
                    _ => None,
                })
                .collect()
        };
        let mut objs = vec![obj.clone()];
        let formulas = paths
            .into_iter()
            .map(|(i, p, t)| (i, bind_formula(app, &mut objs, 0, &p, t)))
            .collect();
        RecordReader { objs, formulas }
    }

    /// Read locks on the object (`obj(0)`) and the objects its formulas read.
    pub fn lock(&self) -> Locked<'_> {
        Locked::new(&self.objs)
    }

    /// Appends `row` with `fields` as a JSON record.
    pub fn record(
        &self,
        out: &mut Vec<u8>,
        locked: &Locked<'_>,
        row: usize,
        fields: &[usize],
        v: &str,
    ) {
        let obj = locked.obj(0);
        out.push(b'{');
        crate::jsonw::attributes(out, obj, row, v);
        for &f in fields {
            out.push(b',');
            crate::jsonw::string(out, &obj.def.fields[f].name);
            out.push(b':');
            match self.formulas.iter().find(|(i, _)| *i == f) {
                Some((_, formula)) => crate::jsonw::value(out, locked.eval(formula, row)),
                None => crate::jsonw::field(out, obj, f, row, v),
            }
        }
        out.push(b'}');
    }
}

fn soql_type(t: FieldType) -> soql::FieldType {
    match t {
        FieldType::Multipicklist => soql::FieldType::MultiPicklist,
        FieldType::Boolean => soql::FieldType::Bool,
        FieldType::Int => soql::FieldType::Int,
        FieldType::Double | FieldType::Currency | FieldType::Percent => soql::FieldType::Double,
        FieldType::Date => soql::FieldType::Date,
        FieldType::DateTime => soql::FieldType::DateTime,
        FieldType::Address | FieldType::Location => soql::FieldType::Other,
        FieldType::Id | FieldType::Reference => soql::FieldType::Id,
        _ => soql::FieldType::Text,
    }
}

struct Binder<'a> {
    app: &'a App,
    text: &'a str,
    objs: Vec<ObjRef>,
    bulk: bool,
}

impl Binder<'_> {
    fn pos_of(&mut self, obj: &ObjRef) -> usize {
        pos_in(&mut self.objs, obj)
    }

    fn resolve(&mut self, path: &FieldPath) -> Result<(Handle, soql::FieldType), SoqlError> {
        let base_name = self.objs[0].read().def.name.clone();
        let mut parts: &[String] = &path.parts;
        if parts.len() > 1 && parts[0].eq_ignore_ascii_case(&base_name) {
            let is_rel = self.objs[0].read().def.relationship(&parts[0]).is_some();
            if !is_rel {
                parts = &parts[1..];
            }
        }
        let mut cur = 0usize;
        let mut hops = Vec::new();
        let mut names = Vec::new();
        for rel in &parts[..parts.len() - 1] {
            let (ref_col, rel_name, target) = {
                let o = self.objs[cur].read();
                let f = o
                    .def
                    .relationship(rel)
                    .ok_or_else(|| SoqlError::invalid_field(self.text, path, &o.def.name))?;
                let col = f
                    .column()
                    .ok_or_else(|| SoqlError::invalid_field(self.text, path, &o.def.name))?;
                (
                    col,
                    f.relationship_name.clone().unwrap_or_default(),
                    f.reference_to.first().cloned().unwrap_or_default(),
                )
            };
            let target = self
                .app
                .org
                .object(&target)
                .ok_or_else(|| SoqlError::invalid_field(self.text, path, &base_name))?;
            let to = self.pos_of(&target);
            hops.push(Hop {
                from: cur,
                ref_col,
                to,
                rel_name: rel_name.clone(),
            });
            names.push(rel_name);
            cur = to;
        }
        let last = &parts[parts.len() - 1];
        let o = self.objs[cur].read();
        let idx = o
            .def
            .field_index(last)
            .ok_or_else(|| SoqlError::invalid_field(self.text, path, &o.def.name))?;
        let f = &o.def.fields[idx];
        if self.bulk && f.ftype == crate::schema::FieldType::Base64 {
            // Bulk API Developer Guide: base64 fields are not supported in Bulk queries.
            return Err(SoqlError::new(
                soql::ErrorCode::InvalidField,
                format!(
                    "{}.{}: base64 fields are not supported in Bulk API queries; read them with the REST API",
                    o.def.name, f.name
                ),
            ));
        }
        if self.bulk && f.is_compound_type() {
            return Err(SoqlError::new(
                soql::ErrorCode::InvalidField,
                "Selecting compound data not supported in Bulk Query",
            ));
        }
        names.push(f.name.clone());
        let (ftype, own_type) = (soql_type(f.ftype), f.ftype);
        let formula_path = match &f.source {
            crate::schema::Source::Formula { path } => Some(path.clone()),
            _ => None,
        };
        drop(o);
        let formula = formula_path
            .map(|p| Box::new(bind_formula(self.app, &mut self.objs, cur, &p, own_type)));
        Ok((
            Handle {
                hops,
                obj: cur,
                field: idx,
                path: names.join("."),
                formula,
            },
            ftype,
        ))
    }
}

fn insert_item(
    node: &mut OutNode,
    hops: &[Hop],
    field: usize,
    name: &str,
    formula: Option<&Formula>,
) {
    match hops.split_first() {
        None => {
            if !node
                .items
                .iter()
                .any(|i| matches!(i, OutItem::Field { field: f, .. } if *f == field))
            {
                node.items.push(OutItem::Field {
                    field,
                    name: name.to_string(),
                    formula: formula.map(|f| Box::new(f.clone())),
                });
            }
        }
        Some((hop, rest)) => {
            let existing = node.items.iter_mut().find_map(|i| match i {
                OutItem::Rel { ref_col, node, .. } if *ref_col == hop.ref_col => Some(node),
                _ => None,
            });
            match existing {
                Some(child) => insert_item(child, rest, field, name, formula),
                None => {
                    let mut child = OutNode {
                        obj: hop.to,
                        items: Vec::new(),
                    };
                    insert_item(&mut child, rest, field, name, formula);
                    node.items.push(OutItem::Rel {
                        name: hop.rel_name.clone(),
                        ref_col: hop.ref_col,
                        node: child,
                    });
                }
            }
        }
    }
}

/// Parses and binds a query, then finds its rows (filtered, ordered, offset, limited).
pub fn plan(
    app: &App,
    text: &str,
    all: bool,
    bulk: bool,
) -> Result<(Plan, Vec<u32>, soql::BoundQuery<Handle>), ApiError> {
    if text.trim().is_empty() {
        return Err(ApiError::bad("MALFORMED_QUERY", "unexpected token: <EOF>"));
    }
    let q = soql::parse(text)?;
    let base = app
        .org
        .object(&q.from)
        .ok_or_else(|| ApiError::from(SoqlError::invalid_type(text, &q.from)))?;
    // FIELDS(ALL) and FIELDS(CUSTOM) select an unbounded set of fields and are "supported
    // only with LIMIT n where n <= 200"; FIELDS(STANDARD) needs no LIMIT ("FIELDS()",
    // SOQL and SOSL Reference, https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_soql_select_fields.htm).
    // Salesforce refuses it when parsing, with 400 MALFORMED_QUERY "The SOQL FIELDS
    // function must have a LIMIT of at most 200" (the text as a live org answers it,
    // quoted in https://github.com/activepieces/activepieces/issues/14521; the page
    // above shows no error text). Bulk query jobs get the same answer: not confirmed.
    let unbounded = q.select.iter().any(|s| {
        matches!(
            s,
            SelectItem::Fields(soql::FieldsKind::All | soql::FieldsKind::Custom)
        )
    });
    if unbounded && q.limit.is_none_or(|l| l > MAX_FIELDS_LIMIT) {
        return Err(ApiError::bad(
            "MALFORMED_QUERY",
            "The SOQL FIELDS function must have a LIMIT of at most 200",
        ));
    }
    if bulk {
        if q.offset.is_some() {
            return Err(ApiError::bad(
                "API_ERROR",
                "OFFSET is not supported in Bulk Query",
            ));
        }
        if q.select.iter().any(|s| !matches!(s, SelectItem::Field(_))) {
            return Err(ApiError::bad(
                "API_ERROR",
                "Aggregate Relationships not supported in Bulk Query",
            ));
        }
    }
    if q.offset.is_some_and(|o| o > MAX_OFFSET) {
        return Err(ApiError::bad(
            "NUMBER_OUTSIDE_VALID_RANGE",
            "Maximum SOQL offset allowed is 2000",
        ));
    }
    let mut binder = Binder {
        app,
        text,
        objs: vec![base.clone()],
        bulk,
    };
    let bq = q.bind_typed(text, |p| binder.resolve(p))?;
    let mut columns = Vec::new();
    let mut root = OutNode {
        obj: 0,
        items: Vec::new(),
    };
    let mut shape = None;
    for item in &bq.select {
        match item {
            SelectItem::Field(h) => {
                insert_item(
                    &mut root,
                    &h.hops,
                    h.field,
                    h.path.rsplit('.').next().unwrap_or_default(),
                    h.formula.as_deref(),
                );
                columns.push(h.clone());
            }
            SelectItem::Count => shape = Some(Shape::Count),
            SelectItem::CountField(h) => shape = Some(Shape::CountField(h.clone())),
            SelectItem::Fields(kind) => {
                // Picked under the lock, bound after it: binding formulas locks again.
                type Picked = (usize, String, FieldType, Option<Vec<String>>);
                let picked: Vec<Picked> = {
                    let o = base.read();
                    o.def
                        .live_fields()
                        .filter(|(_, f)| {
                            let keep = match kind {
                                soql::FieldsKind::All => true,
                                soql::FieldsKind::Standard => !f.custom,
                                soql::FieldsKind::Custom => f.custom,
                            };
                            let base64 = f.ftype == crate::schema::FieldType::Base64;
                            keep && !(bulk && (f.is_compound_type() || base64))
                        })
                        .map(|(i, f)| {
                            let path = match &f.source {
                                crate::schema::Source::Formula { path } => Some(path.clone()),
                                _ => None,
                            };
                            (i, f.name.clone(), f.ftype, path)
                        })
                        .collect()
                };
                for (i, name, ftype, path) in picked {
                    let formula =
                        path.map(|p| Box::new(bind_formula(app, &mut binder.objs, 0, &p, ftype)));
                    insert_item(&mut root, &[], i, &name, formula.as_deref());
                    columns.push(Handle {
                        hops: Vec::new(),
                        obj: 0,
                        field: i,
                        path: name,
                        formula,
                    });
                }
            }
        }
    }
    let objs = binder.objs;
    let shape = shape.unwrap_or(Shape::Records(root));
    let rows = {
        let locked = Locked::new(&objs);
        let o = locked.obj(0);
        let now = chrono::Utc::now();
        let mut rows: Vec<u32> = Vec::new();
        // `query` leaves archived activities out; `queryAll` returns them.
        let archived = if all { None } else { o.def.archived_column() };
        for (row, &st) in o.table.state.iter().enumerate() {
            let visible = st == RowState::Live as u8 || (all && st == RowState::Deleted as u8);
            if !visible {
                continue;
            }
            if archived.is_some_and(|c| o.table.cols[c].get(row) == Value::Bool(true)) {
                continue;
            }
            if bq.where_clause.is_some() && !bq.matches(&|h: &Handle| locked.get(h, row), now) {
                continue;
            }
            rows.push(row as u32);
        }
        let by_id = id_order(o, &bq.order_by);
        if by_id == Some(true) {
            rows.reverse();
        } else if by_id.is_none() && !bq.order_by.is_empty() {
            let cmp = |a: &u32, b: &u32| {
                bq.compare(&|h: &Handle| locked.get(h, *a as usize), &|h: &Handle| {
                    locked.get(h, *b as usize)
                })
            };
            // With a LIMIT, only the first OFFSET+LIMIT rows need to be in order.
            let keep = bq
                .limit
                .map(|l| (l + bq.offset.unwrap_or(0)) as usize)
                .filter(|&k| k > 0 && k < rows.len() / 2);
            match keep {
                Some(k) => {
                    rows.select_nth_unstable_by(k - 1, cmp);
                    rows.truncate(k);
                    rows.sort_by(cmp);
                }
                None => rows.sort_by(cmp),
            }
        }
        rows
    };
    let mut rows = rows;
    if let Some(off) = bq.offset {
        let off = (off as usize).min(rows.len());
        rows.drain(..off);
    }
    if let Some(lim) = bq.limit {
        rows.truncate(lim as usize);
    }
    Ok((
        Plan {
            objs,
            shape,
            columns,
        },
        rows,
        bq,
    ))
}

/// `Some(descending)` when the query is ordered by the queried object's own Id only:
/// rows are stored in id order (an id encodes its row number in fixed-width base 62,
/// whose digits sort as ASCII), so no sort is needed.
fn id_order(o: &SObject, order_by: &[soql::OrderItem<Handle>]) -> Option<bool> {
    match order_by {
        [k] if k.path.hops.is_empty()
            && k.path.obj == 0
            && o.def
                .fields
                .get(k.path.field)
                .is_some_and(|f| f.name == "Id") =>
        {
            Some(k.descending)
        }
        _ => None,
    }
}

/// What a REST query has left: its plan and the rows it matched.
pub type Locators = crate::locators::Locators<(Arc<Plan>, Arc<Vec<u32>>)>;

/// "If the SOQL statement selects two or more custom fields of type long text, the batch
/// size can't be greater than 200 records" ("Change the Batch Size in Queries", SOQL and
/// SOSL Reference, https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/api/sforce_api_calls_soql_changing_batch_size.htm).
/// Long text: a text area longer than 255 characters (a plain Text Area holds 255).
fn long_text_cap(plan: &Plan) -> usize {
    let long = plan
        .columns
        .iter()
        .filter(|h| {
            let o = plan.objs[h.obj].read();
            let f = &o.def.fields[h.field];
            f.custom && f.ftype == FieldType::Textarea && f.length > 255
        })
        .count();
    if long >= 2 {
        LONG_TEXT_BATCH
    } else {
        usize::MAX
    }
}

/// The page size a query asked for with `Sforce-Query-Options: batchSize`.
pub(crate) fn batch_size(req: &Req) -> usize {
    req.header("sforce-query-options")
        .and_then(|h| {
            h.split(',')
                .filter_map(|kv| kv.split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("batchSize"))
                .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        })
        .map(|n| n.clamp(200, 2000))
        .unwrap_or(2000)
}

fn write_node(out: &mut Vec<u8>, locked: &Locked<'_>, node: &OutNode, row: usize, v: &str) {
    let obj = locked.obj(node.obj);
    out.push(b'{');
    crate::jsonw::attributes(out, obj, row, v);
    for item in &node.items {
        out.push(b',');
        match item {
            OutItem::Field {
                field,
                name,
                formula,
            } => {
                crate::jsonw::string(out, name);
                out.push(b':');
                match formula {
                    None => crate::jsonw::field(out, obj, *field, row, v),
                    Some(f) => crate::jsonw::value(out, locked.eval(f, row)),
                }
            }
            OutItem::Rel {
                name,
                ref_col,
                node: child,
            } => {
                crate::jsonw::string(out, name);
                out.push(b':');
                let hop = Hop {
                    from: node.obj,
                    ref_col: *ref_col,
                    to: child.obj,
                    rel_name: String::new(),
                };
                match locked.follow(&hop, row) {
                    Some(r) => write_node(out, locked, child, r, v),
                    None => out.extend_from_slice(b"null"),
                }
            }
        }
    }
    out.push(b'}');
}

fn page(
    plan: &Plan,
    rows: &[u32],
    start: usize,
    batch: usize,
    total: usize,
    next: Option<String>,
    v: &str,
) -> Resp {
    let end = (start + batch).min(rows.len());
    let mut out = Vec::with_capacity((end - start) * 400 + 128);
    out.extend_from_slice(b"{\"totalSize\":");
    out.extend_from_slice(itoa::Buffer::new().format(total).as_bytes());
    out.extend_from_slice(b",\"done\":");
    match &next {
        Some(url) => {
            out.extend_from_slice(b"false,\"nextRecordsUrl\":");
            crate::jsonw::string(&mut out, url);
        }
        None => out.extend_from_slice(b"true"),
    }
    out.extend_from_slice(b",\"records\":[");
    if let Shape::Records(root) = &plan.shape {
        let locked = Locked::new(&plan.objs);
        for (i, &row) in rows[start..end].iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_node(&mut out, &locked, root, row as usize, v);
        }
    }
    out.extend_from_slice(b"]}");
    Resp::raw_json(200, out)
}

/// `GET /query?q=` and `/queryAll?q=`.
pub fn query(app: &App, req: &Req, v: &str, all: bool) -> Result<Resp, ApiError> {
    let text = req
        .param("q")
        .ok_or_else(|| ApiError::bad("MALFORMED_QUERY", "A query string has to be specified"))?;
    if text.chars().count() > soql::MAX_QUERY_LENGTH {
        return Err(ApiError::bad("MALFORMED_QUERY", "Query is too long"));
    }
    let (plan, rows, _) = plan(app, text, all, false)?;
    match &plan.shape {
        Shape::Count => {
            return Ok(Resp::raw_json(
                200,
                format!(
                    "{{\"totalSize\":{},\"done\":true,\"records\":[]}}",
                    rows.len()
                )
                .into_bytes(),
            ))
        }
        Shape::CountField(h) => {
            let n = {
                let locked = Locked::new(&plan.objs);
                rows.iter()
                    .filter(|&&r| locked.get(h, r as usize) != Value::Null)
                    .count()
            };
            return Ok(Resp::json(
                200,
                &serde_json::json!({"totalSize": 1, "done": true, "records": [{"attributes": {"type": "AggregateResult"}, "expr0": n}]}),
            ));
        }
        Shape::Records(_) => {}
    }
    let batch = batch_size(req).min(long_text_cap(&plan));
    let total = rows.len();
    if total <= batch {
        return Ok(page(&plan, &rows, 0, batch, total, None, v));
    }
    let plan = Arc::new(plan);
    let rows = Arc::new(rows);
    let id = app.locators.open((plan.clone(), rows.clone()), batch);
    let next = format!("/services/data/v{v}/query/{id}-{batch}");
    Ok(page(&plan, &rows, 0, batch, total, Some(next), v))
}

/// `GET /query/{locator}-{position}`.
pub fn query_more(app: &App, v: &str, loc: &str) -> Result<Resp, ApiError> {
    let crate::locators::Resumed {
        id,
        position: pos,
        rest: (plan, rows),
        batch,
    } = app.locators.resume(loc)?;
    if pos >= rows.len() {
        return Err(ApiError::bad(
            "INVALID_QUERY_LOCATOR",
            "invalid query locator",
        ));
    }
    let end = pos + batch;
    let next = (end < rows.len()).then(|| format!("/services/data/v{v}/query/{id}-{end}"));
    Ok(page(&plan, &rows, pos, batch, rows.len(), next, v))
}
