//! Keeping maps of jobs and locators bounded: long runs would otherwise hold every
//! result set ever asked for.

use std::collections::HashMap;
use std::hash::Hash;

/// Removes entries, smallest `order` first (the oldest or least recently used), until
/// there is room for one more below `max`.
pub fn make_room<K, V, O>(map: &mut HashMap<K, V>, max: usize, order: impl Fn(&V) -> O)
where
    K: Clone + Eq + Hash,
    O: Ord,
{
    while map.len() >= max.max(1) {
        let first = map
            .iter()
            .min_by_key(|(_, v)| order(v))
            .map(|(k, _)| k.clone());
        match first {
            Some(k) => map.remove(&k),
            None => break,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_the_oldest_first() {
        let mut m: HashMap<&str, i64> = [("a", 3), ("b", 1), ("c", 2)].into_iter().collect();
        make_room(&mut m, 3, |v| *v);
        assert!(!m.contains_key("b") && m.len() == 2);
        make_room(&mut m, 2, |v| *v);
        assert_eq!(m.keys().copied().collect::<Vec<_>>(), vec!["a"]);
    }
}
