//! Which objects each Change Data Capture channel selects: the standard ChangeEvents
//! channel (Setup's Change Data Capture page, `PUT /__emulator/cdc`) and the custom
//! channels created through the Tooling API, with the org's limit on selected
//! entities. The bus keeps one [`Selection`] under a lock; the Tooling API reads and
//! changes it through the bus.
//!
//! Names are compared case-insensitively (API names and DeveloperNames are unique
//! regardless of case); a channel keeps the spelling it was created with, which is
//! the one its topic must use ("The channel name is case-sensitive", "Subscription
//! Channels", Change Data Capture Developer Guide).

/// A member of a custom channel: one selected object.
#[derive(Debug, Clone)]
pub struct Member {
    /// Sequence number of the member's id (its own sequence, apart from the standard
    /// channel's slot-based ids).
    pub seq: u64,
    /// The object's API name (`Contact`, `Invoice__c`).
    pub object: String,
}

/// A custom channel (`MyChannel__chn`) and its members.
#[derive(Debug, Clone)]
pub struct Custom {
    /// Sequence number of the channel's id.
    pub seq: u64,
    /// `MyChannel__chn`.
    pub full_name: String,
    pub label: String,
    pub members: Vec<Member>,
}

impl Custom {
    fn has(&self, object: &str) -> bool {
        self.members
            .iter()
            .any(|m| m.object.eq_ignore_ascii_case(object))
    }
}

/// Why a selection change was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The channel already has that object, or a channel of that name exists.
    Duplicate,
    /// No custom channel of that name.
    UnknownChannel,
    /// Selecting the object would pass the entity limit; `selected` is how many
    /// distinct entities are selected now.
    Limit { limit: usize, selected: usize },
}

/// Every channel's selection.
#[derive(Debug, Default)]
pub struct Selection {
    /// The standard ChangeEvents channel, in the order selected.
    pub standard: Vec<String>,
    pub custom: Vec<Custom>,
    /// Most distinct entities selected across all channels (0: no limit); checked
    /// only by the Tooling API.
    pub entity_limit: usize,
    last_channel: u64,
    last_member: u64,
}

fn contains(names: &[String], object: &str) -> bool {
    names.iter().any(|n| n.eq_ignore_ascii_case(object))
}

impl Selection {
    pub fn new(entity_limit: usize) -> Selection {
        Selection {
            entity_limit,
            ..Default::default()
        }
    }

    /// Whether any channel selects anything (writes are then watched).
    pub fn any(&self) -> bool {
        !self.standard.is_empty() || self.custom.iter().any(|c| !c.members.is_empty())
    }

    pub fn on_standard(&self, object: &str) -> bool {
        contains(&self.standard, object)
    }

    /// Whether any channel, standard or custom, selects `object`.
    pub fn anywhere(&self, object: &str) -> bool {
        self.on_standard(object) || self.custom.iter().any(|c| c.has(object))
    }

    pub fn channel(&self, full_name: &str) -> Option<&Custom> {
        self.custom
            .iter()
            .find(|c| c.full_name.eq_ignore_ascii_case(full_name))
    }

    /// Distinct objects selected across all channels: an object on two channels
    /// counts once.
    pub fn distinct(&self) -> usize {
        let mut seen: Vec<&str> = Vec::new();
        let all = self.standard.iter().chain(
            self.custom
                .iter()
                .flat_map(|c| c.members.iter().map(|m| &m.object)),
        );
        for name in all {
            if !seen.iter().any(|s| s.eq_ignore_ascii_case(name)) {
                seen.push(name);
            }
        }
        seen.len()
    }

    /// Refuses `object` when it is selected nowhere yet and one more distinct entity
    /// would pass the limit.
    fn check_limit(&self, object: &str) -> Result<(), Refused> {
        if self.entity_limit == 0 || self.anywhere(object) {
            return Ok(());
        }
        let selected = self.distinct();
        if selected >= self.entity_limit {
            return Err(Refused::Limit {
                limit: self.entity_limit,
                selected,
            });
        }
        Ok(())
    }

    /// Selects `object` on the standard channel, as creating its member does.
    pub fn add_standard(&mut self, object: String) -> Result<(), Refused> {
        if self.on_standard(&object) {
            return Err(Refused::Duplicate);
        }
        self.check_limit(&object)?;
        self.standard.push(object);
        Ok(())
    }

    /// Deselects `object` from the standard channel; false when it was not selected.
    pub fn remove_standard(&mut self, object: &str) -> bool {
        let before = self.standard.len();
        self.standard.retain(|n| !n.eq_ignore_ascii_case(object));
        self.standard.len() != before
    }

    /// Creates a custom channel; returns its id's sequence number.
    pub fn add_channel(&mut self, full_name: String, label: String) -> Result<u64, Refused> {
        if self.channel(&full_name).is_some() {
            return Err(Refused::Duplicate);
        }
        self.last_channel += 1;
        self.custom.push(Custom {
            seq: self.last_channel,
            full_name,
            label,
            members: Vec::new(),
        });
        Ok(self.last_channel)
    }

    /// Deletes the channel with id sequence `seq`, and its members with it.
    pub fn remove_channel(&mut self, seq: u64) -> Option<Custom> {
        let at = self.custom.iter().position(|c| c.seq == seq)?;
        Some(self.custom.remove(at))
    }

    /// Adds `object` to the custom channel `channel`; returns the member's id
    /// sequence number.
    pub fn add_member(&mut self, channel: &str, object: String) -> Result<u64, Refused> {
        let at = self
            .custom
            .iter()
            .position(|c| c.full_name.eq_ignore_ascii_case(channel))
            .ok_or(Refused::UnknownChannel)?;
        if self.custom[at].has(&object) {
            return Err(Refused::Duplicate);
        }
        self.check_limit(&object)?;
        self.last_member += 1;
        let seq = self.last_member;
        self.custom[at].members.push(Member { seq, object });
        Ok(seq)
    }

    /// Removes the custom channel member with id sequence `seq`.
    pub fn remove_member(&mut self, seq: u64) -> bool {
        self.custom.iter_mut().any(|c| {
            let before = c.members.len();
            c.members.retain(|m| m.seq != seq);
            c.members.len() != before
        })
    }

    /// The objects of the custom channel `full_name`, spelled exactly so (a topic's
    /// name is case-sensitive); None when there is no such channel.
    pub fn members_of(&self, full_name: &str) -> Option<Vec<String>> {
        self.custom
            .iter()
            .find(|c| c.full_name == full_name)
            .map(|c| c.members.iter().map(|m| m.object.clone()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_counts_distinct_entities_across_channels() {
        let mut s = Selection::new(3);
        s.standard = vec!["Contact".into(), "Account".into()];
        s.add_channel("Sales__chn".into(), "Sales".into()).unwrap();
        // Already selected on the standard channel: no new entity.
        assert!(s.add_member("Sales__chn", "contact".into()).is_ok());
        assert!(s.add_member("sales__CHN", "Lead".into()).is_ok());
        assert_eq!(s.distinct(), 3);
        assert_eq!(
            s.add_member("Sales__chn", "Case".into()),
            Err(Refused::Limit {
                limit: 3,
                selected: 3
            })
        );
        assert_eq!(
            s.add_standard("Case".into()),
            Err(Refused::Limit {
                limit: 3,
                selected: 3
            })
        );
        // Lead is selected on the custom channel: adding it to the standard one is free.
        assert!(s.add_standard("Lead".into()).is_ok());
        assert_eq!(
            s.add_member("Sales__chn", "Lead".into()),
            Err(Refused::Duplicate)
        );
        assert_eq!(
            s.add_member("Other__chn", "Lead".into()),
            Err(Refused::UnknownChannel)
        );
    }

    #[test]
    fn deleting_a_channel_deletes_its_members() {
        let mut s = Selection::new(0);
        let seq = s.add_channel("Sales__chn".into(), "Sales".into()).unwrap();
        assert_eq!(
            s.add_channel("SALES__chn".into(), "x".into()),
            Err(Refused::Duplicate)
        );
        let m = s.add_member("Sales__chn", "Lead".into()).unwrap();
        assert!(s.any() && s.anywhere("lead") && !s.on_standard("Lead"));
        assert_eq!(s.members_of("Sales__chn"), Some(vec!["Lead".to_string()]));
        assert_eq!(s.members_of("sales__chn"), None);
        assert!(s.remove_member(m));
        assert!(!s.remove_member(m));
        s.add_member("Sales__chn", "Lead".into()).unwrap();
        assert!(s.remove_channel(seq).is_some());
        assert!(!s.any() && !s.anywhere("Lead"));
        assert!(s.remove_channel(seq).is_none());
    }
}
