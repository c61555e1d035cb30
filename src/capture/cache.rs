//! What capture works out once per table and session: a trigger's rules (by trigger
//! oid) and the shape of capture's own tables (by table oid). Postgres announces every change to a table's
//! definition or triggers as a relcache invalidation, on which both are forgotten.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use pgrx::pg_sys;
use pgrx::prelude::*;

use super::rules::Rules;
use super::table::TableShape;

thread_local! {
    static RULES: RefCell<HashMap<pg_sys::Oid, Rc<Rules>>> = RefCell::new(HashMap::new());
    static TABLES: RefCell<HashMap<pg_sys::Oid, Rc<TableShape>>> = RefCell::new(HashMap::new());
    static LISTENING: Cell<bool> = const { Cell::new(false) };
    static GENERATION: Cell<u64> = const { Cell::new(0) };
}

/// A number that changes whenever some table's definition may have changed (any relcache
/// invalidation): what was found current at one generation is checked again at another.
pub fn generation() -> u64 {
    GENERATION.with(Cell::get)
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
    GENERATION.with(|g| g.set(g.get() + 1));
    let all = relid == pg_sys::InvalidOid;
    RULES.with(|c| c.borrow_mut().retain(|_, r| !all && r.relid != relid));
    TABLES.with(|c| c.borrow_mut().retain(|oid, _| !all && *oid != relid));
}
