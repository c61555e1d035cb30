//! What capture works out once per table and session: a trigger's rules (by trigger
//! oid), where a synced table's entries go (by table oid) and the shape of capture's own
//! tables (by table oid). Postgres announces every change to a table's definition or
//! triggers as a relcache invalidation, on which what depends on that table is forgotten.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use pgrx::pg_sys;
use pgrx::prelude::*;

use super::log::LogTables;
use super::rules::Rules;
use super::table::TableShape;

thread_local! {
    static RULES: RefCell<HashMap<pg_sys::Oid, Rc<Rules>>> = RefCell::new(HashMap::new());
    static LOG_TABLES: RefCell<HashMap<pg_sys::Oid, Rc<LogTables>>> = RefCell::new(HashMap::new());
    static TABLES: RefCell<HashMap<pg_sys::Oid, Rc<TableShape>>> = RefCell::new(HashMap::new());
    static LISTENING: Cell<bool> = const { Cell::new(false) };
}

/// The rules of the trigger being fired.
pub unsafe fn rules(td: &pg_sys::TriggerData) -> Rc<Rules> {
    let tgoid = (*td.tg_trigger).tgoid;
    if let Some(r) = RULES.with(|c| c.borrow().get(&tgoid).cloned()) {
        return r;
    }
    listen();
    let args = trigger_args(&*td.tg_trigger);
    // built outside the borrow: building reads the catalog, which can run forget()
    let r = Rc::new(Rules::new(td.tg_relation, &args));
    RULES.with(|c| c.borrow_mut().insert(tgoid, r.clone()));
    r
}

/// Where the entries of synced table `table` go. A different value than the last call
/// returned means the table, its log or its batch table changed in between.
pub unsafe fn log_tables(table: pg_sys::Relation) -> Rc<LogTables> {
    let oid = (*table).rd_id;
    if let Some(t) = LOG_TABLES.with(|c| c.borrow().get(&oid).cloned()) {
        return t;
    }
    listen();
    let t = Rc::new(LogTables::new(table));
    LOG_TABLES.with(|c| c.borrow_mut().insert(oid, t.clone()));
    t
}

/// The shape of one of capture's open tables, which capture always fills with `filled`.
pub unsafe fn table_shape(rel: pg_sys::Relation, filled: &[&str]) -> Rc<TableShape> {
    let oid = (*rel).rd_id;
    if let Some(s) = TABLES.with(|c| c.borrow().get(&oid).cloned()) {
        return s;
    }
    listen();
    let s = Rc::new(TableShape::new(rel, filled));
    TABLES.with(|c| c.borrow_mut().insert(oid, s.clone()));
    s
}

unsafe fn trigger_args(t: &pg_sys::Trigger) -> Vec<String> {
    (0..t.tgnargs as usize)
        .map(|i| {
            std::ffi::CStr::from_ptr(*t.tgargs.add(i))
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

unsafe fn listen() {
    if !LISTENING.with(Cell::get) {
        pg_sys::CacheRegisterRelcacheCallback(Some(forget), pg_sys::Datum::from(0));
        LISTENING.with(|l| l.set(true));
    }
}

/// Relcache invalidation of one table (or of all, InvalidOid).
#[pg_guard]
unsafe extern "C-unwind" fn forget(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    let all = relid == pg_sys::InvalidOid;
    RULES.with(|c| c.borrow_mut().retain(|_, r| !all && r.relid != relid));
    LOG_TABLES.with(|c| {
        c.borrow_mut()
            .retain(|oid, t| !all && ![*oid, t.log, t.batch].contains(&relid))
    });
    TABLES.with(|c| c.borrow_mut().retain(|oid, _| !all && *oid != relid));
}
