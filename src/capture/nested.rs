//! Statements run by the triggers of a statement on a synced table: their entries are
//! logged after that statement's own.
//!
//! Postgres fires a statement's AFTER ROW triggers before its AFTER STATEMENT triggers,
//! and capture is an AFTER STATEMENT trigger. So when an application's AFTER ROW trigger
//! changes a synced row again (upper-cases the title just set, stamps the row just
//! inserted), the statement it runs is captured first, and the log, read in id order,
//! would replay the later change before the earlier one.
//!
//! A BEFORE STATEMENT trigger on every synced table (`statement_starts`) opens a frame
//! for the statement; capture, at the statement's end (`statement_ends`), holds the
//! entries of any statement that ran while a shallower frame was open (`Held`) and
//! hands them, after the statement's own, to the frame around it or to the log. Frames
//! are told apart by the trigger depth they fired at: a statement's BEFORE and AFTER
//! STATEMENT triggers fire at the same depth, and the statements its triggers run fire
//! theirs deeper. Statements held this way ran after the statement began, some before
//! its last row changed (those of BEFORE triggers): logging them after it is right all
//! the same, as Postgres refuses a statement whose triggers changed a row it then
//! changes ("tuple to be updated was already modified by an operation triggered by the
//! current command"), so the two never share a row whose order could differ.
//!
//! A held entry is kept in memory as the log row it will be, and written as one (never
//! batched): statements run by row triggers of another statement are few-row in
//! practice; one that changes very many rows holds them all in memory until the
//! statement around it ends.

use std::cell::{Cell, RefCell};
use std::ffi::{CStr, CString};

use pgrx::pg_sys;
use pgrx::prelude::*;

use super::log::{Action, Entry, Log};
use super::table::in_memory;

/// A statement on a synced table that has started and not yet been captured in full.
struct Frame {
    /// the trigger depth its statement triggers fire at
    depth: i32,
    /// the events (insert, update, delete) whose BEFORE STATEMENT trigger fired and
    /// whose capture has not: INSERT ... ON CONFLICT and MERGE fire several, and a query
    /// changing the table in two places may fire BEFORE twice and AFTER once
    open: [bool; 3],
    subxact: pg_sys::SubTransactionId,
    /// entries of statements run while it was open, in the order they were captured
    held: Vec<Held>,
}

/// The entries of one statement, or one event of it, waiting for the statement around
/// it to be captured.
pub struct Held {
    table: pg_sys::Oid,
    object: CString,
    action: Action,
    /// the depth the statement's own triggers fired at
    depth: i32,
    subxact: pg_sys::SubTransactionId,
    /// under the transaction's (or subtransaction's) memory: Postgres frees it if the
    /// subtransaction is rolled back, `write` once the entries are in the log
    memory: pg_sys::MemoryContext,
    /// memory for building one entry, reset once it is kept
    scratch: pg_sys::MemoryContext,
    entries: Vec<HeldEntry>,
}

struct HeldEntry {
    row_id: Option<pg_sys::Datum>,
    api_id: Option<pg_sys::Datum>,
    previous: Option<pg_sys::Datum>,
    values: Option<pg_sys::Datum>,
}

thread_local! {
    static FRAMES: RefCell<Vec<Frame>> = const { RefCell::new(Vec::new()) };
    static LISTENING: Cell<bool> = const { Cell::new(false) };
}

/// What capture learnt as a statement's event ended.
pub struct Ending {
    /// its entries wait for a statement around it
    pub hold: bool,
    depth: i32,
}

unsafe fn trigger_depth() -> i32 {
    // pg_trigger_depth() reads a global and ignores its call info
    let d = pg_sys::pg_trigger_depth(std::ptr::null_mut());
    d.value() as i32
}

fn event(action: Action) -> usize {
    action as usize
}

/// BEFORE STATEMENT on a synced table, for `action`.
pub unsafe fn statement_starts(action: Action) {
    listen();
    let depth = trigger_depth();
    close_deeper_than(depth);
    let subxact = pg_sys::GetCurrentSubTransactionId();
    FRAMES.with(|f| {
        let mut frames = f.borrow_mut();
        match frames.last_mut() {
            Some(top) if top.depth == depth => top.open[event(action)] = true,
            _ => {
                let mut open = [false; 3];
                open[event(action)] = true;
                frames.push(Frame {
                    depth,
                    open,
                    subxact,
                    held: Vec::new(),
                })
            }
        }
    });
}

/// AFTER STATEMENT on a synced table for `action`, before its entries are captured.
pub unsafe fn statement_ends(action: Action) -> Ending {
    let depth = trigger_depth();
    close_deeper_than(depth);
    FRAMES.with(|f| {
        let mut frames = f.borrow_mut();
        if let Some(top) = frames.last_mut().filter(|t| t.depth == depth) {
            top.open[event(action)] = false;
        }
        Ending {
            hold: frames.iter().any(|f| f.depth < depth),
            depth,
        }
    })
}

/// After the statement's entries for one event are captured: once every event of the
/// statement is, what its frame held follows them.
pub unsafe fn statement_captured(ending: Ending) {
    let done = FRAMES.with(|f| {
        let mut frames = f.borrow_mut();
        match frames.last() {
            Some(top) if top.depth == ending.depth && !top.open.contains(&true) => frames.pop(),
            _ => None,
        }
    });
    if let Some(frame) = done {
        hand_down(frame.held);
    }
}

/// Frames deeper than `depth` belong to statements that have ended without their
/// capture firing for every event that started (a disabled capture trigger): what they
/// hold goes on as if they had.
unsafe fn close_deeper_than(depth: i32) {
    loop {
        let stale = FRAMES.with(|f| {
            let mut frames = f.borrow_mut();
            match frames.last() {
                Some(top) if top.depth > depth => frames.pop(),
                _ => None,
            }
        });
        match stale {
            Some(frame) => hand_down(frame.held),
            None => return,
        }
    }
}

/// Entries of a frame that closed: to the frame around it, or into the log.
unsafe fn hand_down(held: Vec<Held>) {
    let rest = FRAMES.with(|f| match f.borrow_mut().last_mut() {
        Some(below) => {
            below.held.extend(held);
            Vec::new()
        }
        None => held,
    });
    for h in rest {
        h.write();
    }
}

/// A statement's entries, complete: to the nearest frame shallower than the statement.
pub unsafe fn hold(held: Held) {
    let rest = FRAMES.with(|f| {
        let mut frames = f.borrow_mut();
        match frames.iter_mut().rev().find(|f| f.depth < held.depth) {
            Some(around) => {
                around.held.push(held);
                None
            }
            None => Some(held),
        }
    });
    if let Some(h) = rest {
        h.write();
    }
}

impl Held {
    pub unsafe fn new(
        table: pg_sys::Relation,
        object: &CStr,
        action: Action,
        ending: &Ending,
    ) -> Held {
        let memory = pg_sys::AllocSetContextCreateInternal(
            pg_sys::CurTransactionContext,
            c"sequin_sf held entries".as_ptr(),
            pg_sys::ALLOCSET_DEFAULT_MINSIZE as usize,
            pg_sys::ALLOCSET_DEFAULT_INITSIZE as usize,
            pg_sys::ALLOCSET_DEFAULT_MAXSIZE as usize,
        );
        let scratch = pg_sys::AllocSetContextCreateInternal(
            memory,
            c"sequin_sf held entry".as_ptr(),
            pg_sys::ALLOCSET_DEFAULT_MINSIZE as usize,
            pg_sys::ALLOCSET_DEFAULT_INITSIZE as usize,
            pg_sys::ALLOCSET_DEFAULT_MAXSIZE as usize,
        );
        Held {
            table: (*table).rd_id,
            object: object.to_owned(),
            action,
            depth: ending.depth,
            subxact: pg_sys::GetCurrentSubTransactionId(),
            memory,
            scratch,
            entries: Vec::new(),
        }
    }

    pub fn scratch(&self) -> pg_sys::MemoryContext {
        self.scratch
    }

    /// Keeps a copy of the entry (its values may live in scratch memory or in the
    /// transition table's current row).
    pub unsafe fn push(&mut self, e: &Entry) {
        let copy = |d: Option<pg_sys::Datum>| {
            d.map(|d| {
                in_memory(self.memory, || {
                    pg_sys::Datum::from(pg_sys::pg_detoast_datum_copy(d.cast_mut_ptr()))
                })
            })
        };
        let not_null = |v: (pg_sys::Datum, bool)| (!v.1).then_some(v.0);
        let entry = HeldEntry {
            // bigint: passed by value
            row_id: not_null(e.row_id),
            api_id: copy(e.api_id.and_then(not_null)),
            previous: copy(e.previous),
            values: copy(e.values),
        };
        self.entries.push(entry);
        pg_sys::MemoryContextReset(self.scratch);
    }

    /// Writes the entries as log rows, taking their ids now, and frees them. A table
    /// dropped since (in the transaction) took its entries along.
    unsafe fn write(self) {
        let rel = pg_sys::RelationIdGetRelation(self.table);
        if !rel.is_null() {
            let mut log = Log::rows(rel, &self.object, self.action);
            for e in &self.entries {
                log.append(&Entry {
                    row_id: (
                        e.row_id.unwrap_or(pg_sys::Datum::from(0)),
                        e.row_id.is_none(),
                    ),
                    api_id: e.api_id.map(|d| (d, false)),
                    previous: e.previous,
                    values: e.values,
                });
            }
            log.close();
            pg_sys::RelationClose(rel);
        }
        pg_sys::MemoryContextDelete(self.memory);
    }
}

unsafe fn listen() {
    if !LISTENING.with(Cell::get) {
        pg_sys::RegisterXactCallback(Some(at_transaction_end), std::ptr::null_mut());
        pg_sys::RegisterSubXactCallback(Some(at_subtransaction_end), std::ptr::null_mut());
        LISTENING.with(|l| l.set(true));
    }
}

/// Writes whatever frames still hold just before the transaction commits (frames left
/// open by a disabled capture trigger); forgets them when it ends, as their memory goes
/// with the transaction.
#[pg_guard]
unsafe extern "C-unwind" fn at_transaction_end(
    event: pg_sys::XactEvent::Type,
    _arg: *mut std::ffi::c_void,
) {
    match event {
        pg_sys::XactEvent::XACT_EVENT_PRE_COMMIT | pg_sys::XactEvent::XACT_EVENT_PRE_PREPARE => {
            let frames = FRAMES.with(|f| std::mem::take(&mut *f.borrow_mut()));
            for h in frames.into_iter().flat_map(|f| f.held) {
                h.write();
            }
        }
        pg_sys::XactEvent::XACT_EVENT_COMMIT
        | pg_sys::XactEvent::XACT_EVENT_ABORT
        | pg_sys::XactEvent::XACT_EVENT_PREPARE => {
            FRAMES.with(|f| f.borrow_mut().clear());
        }
        _ => {}
    }
}

/// A subtransaction rolled back takes the frames it opened and the entries it held
/// (Postgres frees their memory); one committed hands both to its parent.
#[pg_guard]
unsafe extern "C-unwind" fn at_subtransaction_end(
    event: pg_sys::SubXactEvent::Type,
    mine: pg_sys::SubTransactionId,
    parent: pg_sys::SubTransactionId,
    _arg: *mut std::ffi::c_void,
) {
    FRAMES.with(|f| {
        let mut frames = f.borrow_mut();
        match event {
            pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB => {
                frames.retain(|f| f.subxact != mine);
                for f in frames.iter_mut() {
                    f.held.retain(|h| h.subxact != mine);
                }
            }
            pg_sys::SubXactEvent::SUBXACT_EVENT_COMMIT_SUB => {
                for f in frames.iter_mut() {
                    if f.subxact == mine {
                        f.subxact = parent;
                    }
                    for h in f.held.iter_mut().filter(|h| h.subxact == mine) {
                        h.subxact = parent;
                    }
                }
            }
            _ => {}
        }
    });
}
