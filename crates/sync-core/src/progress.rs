//! Where a collection's sync stands: backfilling or live, and how its backfill reads
//! (the `state` and `backfill_mode` columns of `sequin_sf._collections`).

/// A collection is backfilled once, then kept live by polls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CollectionState {
    Backfilling,
    Live,
}

impl CollectionState {
    pub fn parse(s: &str) -> Option<CollectionState> {
        match s {
            "backfilling" => Some(CollectionState::Backfilling),
            "live" => Some(CollectionState::Live),
            _ => None,
        }
    }
}

/// How a backfill reads: REST query pages, or one Bulk API 2.0 query job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackfillMode {
    Rest,
    Bulk,
}

impl BackfillMode {
    pub fn as_str(self) -> &'static str {
        match self {
            BackfillMode::Rest => "rest",
            BackfillMode::Bulk => "bulk",
        }
    }

    pub fn parse(s: &str) -> Option<BackfillMode> {
        match s {
            "rest" => Some(BackfillMode::Rest),
            "bulk" => Some(BackfillMode::Bulk),
            _ => None,
        }
    }

    /// Bulk for collections of at least `bulk_threshold` rows: fewer API calls and a
    /// faster load; REST below it, where a job's fixed cost does not pay off, and for
    /// objects Bulk cannot read whole (`bulk_readable` false: a base64 field).
    pub fn for_count(rows: u64, bulk_threshold: i64, bulk_readable: bool) -> BackfillMode {
        if bulk_readable && rows as i64 >= bulk_threshold {
            BackfillMode::Bulk
        } else {
            BackfillMode::Rest
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_the_threshold_picks_the_mode() {
        for m in [BackfillMode::Rest, BackfillMode::Bulk] {
            assert_eq!(BackfillMode::parse(m.as_str()), Some(m));
        }
        assert_eq!(CollectionState::parse("live"), Some(CollectionState::Live));
        assert_eq!(CollectionState::parse("paused"), None);
        assert_eq!(
            BackfillMode::for_count(49_999, 50_000, true),
            BackfillMode::Rest
        );
        assert_eq!(
            BackfillMode::for_count(50_000, 50_000, true),
            BackfillMode::Bulk
        );
        assert_eq!(
            BackfillMode::for_count(50_000, 50_000, false),
            BackfillMode::Rest
        );
    }
}
