//! Query locators, for REST and Tooling queries alike: what a query has left to return,
//! kept for its next pages (`.../query/{locator}-{position}`). A locator expires after
//! 15 idle minutes, and past 1000 open ones the least recently used go; either way its
//! next page answers INVALID_QUERY_LOCATOR.

use std::collections::HashMap;

use parking_lot::Mutex;

use crate::error::ApiError;

const IDLE_MS: i64 = 15 * 60 * 1000;
/// Open query locators kept at once.
const MAX_OPEN: usize = 1000;

struct Held<T> {
    rest: T,
    batch: usize,
    last_used: i64,
}

/// Open locators, each holding `T` (the rows a query has left) and its page size.
pub struct Locators<T> {
    map: Mutex<HashMap<String, Held<T>>>,
    next: Mutex<u64>,
}

impl<T> Default for Locators<T> {
    fn default() -> Self {
        Locators {
            map: Mutex::new(HashMap::new()),
            next: Mutex::new(0),
        }
    }
}

/// Where a next-page request resumes.
pub struct Resumed<T> {
    pub id: String,
    pub position: usize,
    pub rest: T,
    pub batch: usize,
}

impl<T: Clone> Locators<T> {
    /// Opens a locator for `rest`, served `batch` rows per page; returns its id.
    pub fn open(&self, rest: T, batch: usize) -> String {
        let mut n = self.next.lock();
        *n += 1;
        let id = crate::ids::make_id(b"01g", *n);
        let mut map = self.map.lock();
        let now = crate::timefmt::wall_ms();
        map.retain(|_, l| now - l.last_used < IDLE_MS);
        crate::bounded::make_room(&mut map, MAX_OPEN, |l| l.last_used);
        map.insert(
            id.clone(),
            Held {
                rest,
                batch,
                last_used: now,
            },
        );
        id
    }

    /// The locator and position of `{locator}-{position}`, if it is still open.
    pub fn resume(&self, loc: &str) -> Result<Resumed<T>, ApiError> {
        let invalid = || ApiError::bad("INVALID_QUERY_LOCATOR", "invalid query locator");
        let (id, pos) = loc.rsplit_once('-').ok_or_else(invalid)?;
        let position: usize = pos.parse().map_err(|_| invalid())?;
        let mut map = self.map.lock();
        let now = crate::timefmt::wall_ms();
        let l = map.get_mut(id).ok_or_else(invalid)?;
        if now - l.last_used >= IDLE_MS {
            map.remove(id);
            return Err(invalid());
        }
        l.last_used = now;
        Ok(Resumed {
            id: id.to_string(),
            position,
            rest: l.rest.clone(),
            batch: l.batch,
        })
    }

    /// Expires every locator at once (control API).
    pub fn expire_all(&self) {
        self.map.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_locator_resumes_at_its_position_until_expired() {
        let l: Locators<u32> = Locators::default();
        let id = l.open(7, 200);
        let r = l.resume(&format!("{id}-400")).unwrap();
        assert_eq!(
            (r.id.as_str(), r.position, r.rest, r.batch),
            (id.as_str(), 400, 7, 200)
        );
        assert!(l.resume("nonsense").is_err());
        assert!(l.resume(&format!("{id}-x")).is_err());
        l.expire_all();
        assert!(l.resume(&format!("{id}-400")).is_err());
    }
}
