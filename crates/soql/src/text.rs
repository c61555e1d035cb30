//! Case-insensitive text helpers that work on borrowed strings without allocating.

use std::cmp::Ordering;

fn lower(c: char) -> impl Iterator<Item = char> {
    c.to_lowercase()
}

/// Case-insensitive equality of `a` and `b_lower` (already lowercased).
pub(crate) fn eq_ci(a: &str, b_lower: &str) -> bool {
    let (x, y) = (a.as_bytes(), b_lower.as_bytes());
    // ASCII prefix byte by byte; the first non-ASCII byte on either side sits on a
    // char boundary of both strings, so the rest can be compared by chars.
    let mut i = 0;
    while i < x.len() && i < y.len() && x[i].is_ascii() && y[i].is_ascii() {
        if x[i].to_ascii_lowercase() != y[i] {
            return false;
        }
        i += 1;
    }
    if i == x.len() || i == y.len() {
        return x.len() == y.len();
    }
    a[i..].chars().flat_map(lower).eq(b_lower[i..].chars())
}

/// Case-insensitive ordering of `a` against `b_lower` (already lowercased).
pub(crate) fn cmp_ci_lowered(a: &str, b_lower: &str) -> Ordering {
    a.chars().flat_map(lower).cmp(b_lower.chars())
}

/// Case-insensitive ordering, ties broken by the exact text so sorts are stable
/// across runs. Runs per comparison while sorting, hence the ASCII fast path.
pub(crate) fn cmp_ci(a: &str, b: &str) -> Ordering {
    let (x, y) = (a.as_bytes(), b.as_bytes());
    let mut i = 0;
    while i < x.len() && i < y.len() && x[i].is_ascii() && y[i].is_ascii() {
        let (p, q) = (x[i].to_ascii_lowercase(), y[i].to_ascii_lowercase());
        if p != q {
            return p.cmp(&q);
        }
        i += 1;
    }
    let folded = if i == x.len() || i == y.len() {
        x.len().cmp(&y.len())
    } else {
        a[i..]
            .chars()
            .flat_map(lower)
            .cmp(b[i..].chars().flat_map(lower))
    };
    folded.then_with(|| a.cmp(b))
}

/// FNV-1a over the UTF-8 bytes of the lowercased `s`, for hashed IN lists.
pub(crate) fn hash_ci(s: &str) -> u64 {
    const PRIME: u64 = 0x0100_0000_01b3;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let bytes = s.as_bytes();
    let ascii_len = bytes
        .iter()
        .position(|b| !b.is_ascii())
        .unwrap_or(bytes.len());
    for b in &bytes[..ascii_len] {
        h = (h ^ u64::from(b.to_ascii_lowercase())).wrapping_mul(PRIME);
    }
    for c in s[ascii_len..].chars().flat_map(lower) {
        let mut buf = [0u8; 4];
        for b in c.encode_utf8(&mut buf).bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(PRIME);
        }
    }
    h
}

fn char_eq_ci(a: char, b_lower: char) -> bool {
    a == b_lower || (a.is_ascii() && a.to_ascii_lowercase() == b_lower) || {
        let mut l = a.to_lowercase();
        l.next() == Some(b_lower) && l.next().is_none()
    }
}

/// One element of a compiled LIKE pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LikeElem {
    /// A literal character, lowercased.
    Char(char),
    /// `_`
    One,
    /// `%`
    Any,
}

/// A compiled LIKE pattern. Common shapes get a direct test; anything else runs
/// the general matcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LikePattern {
    elems: Vec<LikeElem>,
    shape: Shape,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Shape {
    /// `abc`, `abc%`, `%abc`, `%abc%` with a lowercased ASCII literal `abc`.
    Exact(Vec<u8>),
    Prefix(Vec<u8>),
    Suffix(Vec<u8>),
    Contains(Vec<u8>),
    General,
}

/// Compiles a LIKE pattern in pattern form (`\x` is a literal `x`).
pub(crate) fn compile_like(pattern: &str) -> LikePattern {
    let mut elems = Vec::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '%' => {
                // Consecutive `%` mean the same as one.
                if elems.last() != Some(&LikeElem::Any) {
                    elems.push(LikeElem::Any);
                }
            }
            '_' => elems.push(LikeElem::One),
            '\\' => {
                if let Some(e) = chars.next() {
                    elems.extend(e.to_lowercase().map(LikeElem::Char));
                }
            }
            _ => elems.extend(c.to_lowercase().map(LikeElem::Char)),
        }
    }
    let shape = shape_of(&elems);
    LikePattern { elems, shape }
}

fn shape_of(elems: &[LikeElem]) -> Shape {
    let lead = elems.first() == Some(&LikeElem::Any);
    let trail = elems.len() > usize::from(lead) && elems.last() == Some(&LikeElem::Any);
    let inner = &elems[usize::from(lead)..elems.len() - usize::from(trail)];
    let mut lit = Vec::with_capacity(inner.len());
    for e in inner {
        match e {
            LikeElem::Char(c) if c.is_ascii() => lit.push(*c as u8),
            _ => return Shape::General,
        }
    }
    match (lead, trail) {
        (false, false) => Shape::Exact(lit),
        (false, true) => Shape::Prefix(lit),
        (true, false) => Shape::Suffix(lit),
        (true, true) => Shape::Contains(lit),
    }
}

fn ascii_eq_lowered(text: &[u8], lit: &[u8]) -> bool {
    text.len() == lit.len()
        && text
            .iter()
            .zip(lit)
            .all(|(t, l)| t.to_ascii_lowercase() == *l)
}

impl LikePattern {
    pub(crate) fn matches(&self, text: &str) -> bool {
        let t = text.as_bytes();
        // The literal is ASCII, so byte offsets into non-ASCII text still line up
        // with whole ASCII characters: a non-ASCII byte never equals a literal byte.
        match &self.shape {
            Shape::Exact(l) if text.is_ascii() => ascii_eq_lowered(t, l),
            Shape::Prefix(l) => t.len() >= l.len() && ascii_eq_lowered(&t[..l.len()], l),
            Shape::Suffix(l) => t.len() >= l.len() && ascii_eq_lowered(&t[t.len() - l.len()..], l),
            Shape::Contains(l) => {
                l.is_empty() || t.windows(l.len()).any(|w| ascii_eq_lowered(w, l))
            }
            _ => like_matches(text, &self.elems),
        }
    }
}

/// Case-insensitive LIKE match: iterative wildcard matching that backtracks only to
/// the most recent `%`, so it is linear for the usual `abc%` / `%abc%` patterns.
fn like_matches(text: &str, pat: &[LikeElem]) -> bool {
    let t = text.as_bytes();
    let mut ti = 0usize; // byte index into text
    let mut pi = 0usize;
    let mut star: Option<(usize, usize)> = None; // (pattern index after %, text index)
    let next_char = |i: usize| -> Option<(char, usize)> {
        let c = text[i..].chars().next()?;
        Some((c, i + c.len_utf8()))
    };
    while ti < t.len() {
        let step = match pat.get(pi) {
            Some(LikeElem::Any) => {
                star = Some((pi + 1, ti));
                pi += 1;
                continue;
            }
            Some(LikeElem::One) => next_char(ti).map(|(_, n)| n),
            Some(LikeElem::Char(p)) => match next_char(ti) {
                Some((c, n)) if char_eq_ci(c, *p) => Some(n),
                _ => None,
            },
            None => None,
        };
        match step {
            Some(n) => {
                ti = n;
                pi += 1;
            }
            None => match star {
                Some((sp, st)) => {
                    let Some((_, n)) = next_char(st) else {
                        return false;
                    };
                    star = Some((sp, n));
                    ti = n;
                    pi = sp;
                }
                None => return false,
            },
        }
    }
    pat[pi..].iter().all(|e| *e == LikeElem::Any)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn like(text: &str, pat: &str) -> bool {
        let compiled = compile_like(pat);
        let general = like_matches(text, &compiled.elems);
        assert_eq!(compiled.matches(text), general, "{text:?} LIKE {pat:?}");
        general
    }

    #[test]
    fn like_wildcards_and_case() {
        assert!(like("Acme Corp", "acme%"));
        assert!(like("Acme Corp", "%CORP"));
        assert!(like("Acme Corp", "%me c%"));
        assert!(like("Acme", "a_me"));
        assert!(!like("Acme", "a_e"));
        assert!(like("", "%"));
        assert!(!like("", "_"));
        assert!(like("abc", "%%%"));
        assert!(like("aXbXc", "a%b%c"));
        assert!(!like("aXbX", "a%b%c"));
        assert!(like("mississippi", "%iss%ppi"));
        assert!(like("Ünïcödé", "üNÏ%É"));
        assert!(like("日本語", "_本_"));
    }

    #[test]
    fn like_escapes() {
        // Pattern form: `\%` is a literal percent sign, `\\` a literal backslash.
        assert!(like("50%", r"50\%"));
        assert!(!like("500", r"50\%"));
        assert!(like("a_b", r"a\_b"));
        assert!(!like("axb", r"a\_b"));
        assert!(like(r"a\b", r"a\\b"));
    }

    #[test]
    fn case_insensitive_compare() {
        assert!(eq_ci("HeLLo", "hello"));
        assert!(!eq_ci("Hello!", "hello"));
        assert!(eq_ci("ÉCOLE", "école"));
        assert_eq!(cmp_ci("apple", "Banana"), Ordering::Less);
        assert_eq!(cmp_ci("B", "a"), Ordering::Greater);
        assert_ne!(cmp_ci("a", "A"), Ordering::Equal);
        assert_eq!(hash_ci("ABC"), hash_ci("abc"));
        assert_eq!(hash_ci("ÉCOLE"), hash_ci("école"));
    }
}
