//! Undo journals for `allOrNone`: while a journal is active on the current task, every
//! write records how to undo itself, so a failed all-or-none request can put every row
//! back as it was. Outside a journal, writes record nothing and cost nothing extra.
//! The journal also holds the request's change events (`cdc`): a rollback discards
//! the events of the changes it undoes, and the rest are published together when the
//! outermost scope ends, as one transaction.

use crate::org::ObjRef;
use crate::store::{SObject, Val};
use std::cell::RefCell;

/// How to undo one write.
enum Undo {
    /// The row was created by the request: rolling back hides it for good (its id
    /// stays used, as in Salesforce) without listing it in `/deleted`.
    Created { obj: ObjRef, row: usize },
    /// The row existed: every column, its state and its recycle-bin time as before.
    Changed {
        obj: ObjRef,
        row: usize,
        cols: Vec<Val>,
        state: u8,
        deleted_at: Option<i64>,
    },
    /// A change event waiting for the request to finish; undoing it drops it.
    Event(Box<crate::cdc::Pending>),
}

tokio::task_local! {
    static JOURNAL: RefCell<Vec<Undo>>;
}

/// Whether writes on this task are being journaled.
fn active() -> bool {
    JOURNAL.try_with(|_| ()).is_ok()
}

/// Records that `row` of `obj` was just created (call with the write lock released).
pub fn created(obj: &ObjRef, row: usize) {
    let _ = JOURNAL.try_with(|j| {
        j.borrow_mut().push(Undo::Created {
            obj: obj.clone(),
            row,
        })
    });
}

/// Records the state of `row` before it changes; `o` is the locked object.
pub fn before_change(obj: &ObjRef, o: &SObject, row: usize) {
    if !active() {
        return;
    }
    let cols = o
        .table
        .cols
        .iter()
        .map(|c| Val::from_value(c.get(row)))
        .collect();
    let undo = Undo::Changed {
        obj: obj.clone(),
        row,
        cols,
        state: o.table.state.get(row).copied().unwrap_or(0),
        deleted_at: o.table.deleted_at.get(&(row as u32)).copied(),
    };
    let _ = JOURNAL.try_with(|j| j.borrow_mut().push(undo));
}

/// A position in the active journal, to roll back to.
#[derive(Clone, Copy, Debug)]
pub struct Mark(usize);

fn mark() -> Mark {
    Mark(JOURNAL.try_with(|j| j.borrow().len()).unwrap_or(0))
}

/// Undoes every write recorded after `m`, newest first.
fn rollback_to(m: Mark) {
    let undos: Vec<Undo> = JOURNAL
        .try_with(|j| {
            let mut j = j.borrow_mut();
            let at = m.0.min(j.len());
            j.split_off(at)
        })
        .unwrap_or_default();
    for u in undos.into_iter().rev() {
        undo(u);
    }
}

fn undo(u: Undo) {
    match u {
        Undo::Event(_) => {}
        Undo::Created { obj, row } => {
            let mut o = obj.write();
            if let Some(s) = o.table.state.get_mut(row) {
                *s = crate::store::RowState::Purged as u8;
            }
            o.table.deleted_at.remove(&(row as u32));
        }
        Undo::Changed {
            obj,
            row,
            cols,
            state,
            deleted_at,
        } => {
            let mut o = obj.write();
            for (c, v) in cols.iter().enumerate() {
                o.table.set(c, row, v);
            }
            if let Some(s) = o.table.state.get_mut(row) {
                *s = state;
            }
            match deleted_at {
                Some(t) => o.table.deleted_at.insert(row as u32, t),
                None => o.table.deleted_at.remove(&(row as u32)),
            };
        }
    }
}

/// A unit of work that can be rolled back: joins the task's journal when there is
/// one (a collection inside `/composite`), or starts one.
pub struct Scope {
    start: Mark,
}

impl Scope {
    /// Rolls back everything written since the scope started.
    pub fn rollback(&self) {
        rollback_to(self.start);
    }
}

/// Runs `f` with writes journaled, giving it a [`Scope`] to roll back with.
pub fn sync_scope<R>(f: impl FnOnce(&Scope) -> R) -> R {
    if active() {
        let s = Scope { start: mark() };
        f(&s)
    } else {
        JOURNAL.sync_scope(RefCell::new(Vec::new()), || {
            let s = Scope { start: mark() };
            let r = f(&s);
            publish_events();
            r
        })
    }
}

/// Async form of [`sync_scope`] for `/composite`, whose subrequests await.
pub async fn scope<R, F, Fut>(f: F) -> R
where
    F: FnOnce(Scope) -> Fut,
    Fut: std::future::Future<Output = R>,
{
    if active() {
        let s = Scope { start: mark() };
        f(s).await
    } else {
        JOURNAL
            .scope(RefCell::new(Vec::new()), async move {
                let s = Scope { start: mark() };
                let r = f(s).await;
                publish_events();
                r
            })
            .await
    }
}

/// Hands a change event to the active journal, or publishes it now when there is none
/// (a single write is its own transaction).
pub fn emit(p: crate::cdc::Pending) {
    let mut p = Some(p);
    let _ = JOURNAL.try_with(|j| {
        if let Some(p) = p.take() {
            j.borrow_mut().push(Undo::Event(Box::new(p)));
        }
    });
    if let Some(p) = p {
        crate::cdc::commit(vec![p]);
    }
}

/// Publishes the events still in the journal (the request is ending).
fn publish_events() {
    let events: Vec<crate::cdc::Pending> = JOURNAL
        .try_with(|j| {
            let mut j = j.borrow_mut();
            let mut out = Vec::new();
            for u in std::mem::take(&mut *j) {
                if let Undo::Event(p) = u {
                    out.push(*p);
                }
            }
            out
        })
        .unwrap_or_default();
    crate::cdc::commit(events);
}
