//! Salesforce API names to Postgres identifiers.

/// Postgres truncates identifiers longer than this many bytes.
pub const MAX_IDENT: usize = 63;

/// Snake-cases a Salesforce API name: `FirstName` -> `first_name`, `AccountId` ->
/// `account_id`, `Level__c` -> `level__c`, `OpportunityLineItem` ->
/// `opportunity_line_item`, `SLAExpirationDate__c` -> `sla_expiration_date__c`.
/// Existing underscores are kept as they are, so custom suffixes stay recognisable.
pub fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() {
            let prev = if i > 0 { Some(chars[i - 1]) } else { None };
            let next = chars.get(i + 1).copied();
            let boundary = match prev {
                None => false,
                Some('_') => false,
                Some(p) if p.is_ascii_lowercase() || p.is_ascii_digit() => true,
                // An acronym ends where an uppercase letter starts a lowercase word: "SLAExp"
                Some(p) if p.is_ascii_uppercase() => next.is_some_and(|n| n.is_ascii_lowercase()),
                Some(_) => false,
            };
            if boundary && !out.ends_with('_') {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    fit_identifier(out)
}

/// Keeps an identifier within Postgres's limit; long names get a short hash suffix so
/// two long names sharing a prefix stay distinct.
pub fn fit_identifier(name: String) -> String {
    if name.len() <= MAX_IDENT {
        return name;
    }
    let hash = fnv1a(name.as_bytes());
    let mut cut = MAX_IDENT - 9;
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}_{:08x}", &name[..cut], hash as u32)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// The event stream's collection id: `salesforce:contact`.
pub fn collection_id(object: &str) -> String {
    format!("salesforce:{}", snake_case(object))
}

/// Quotes an identifier for SQL text.
pub fn quote_ident(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// Quotes a string literal for SQL text.
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Whether `name` is acceptable as a schema name we create: lowercase letters, digits
/// and `_`, starting with a letter or `_` (so it never needs quoting in user queries).
pub fn is_plain_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= MAX_IDENT
}

/// Levenshtein distance, case-insensitive, for "did you mean" suggestions.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Up to `limit` names from `candidates` close to `wanted` (prefix, substring or small
/// edit distance), nearest first.
pub fn near_names<'a>(wanted: &str, candidates: &'a [String], limit: usize) -> Vec<&'a str> {
    let w = wanted.to_lowercase();
    let mut scored: Vec<(usize, &str)> = candidates
        .iter()
        .filter_map(|c| {
            let lc = c.to_lowercase();
            let d = edit_distance(&w, &lc);
            let close = d <= (w.len() / 3).max(2)
                || (w.len() >= 3 && (lc.starts_with(&w) || lc.contains(&w)));
            close.then_some((d, c.as_str()))
        })
        .collect();
    scored.sort();
    scored.into_iter().take(limit).map(|(_, c)| c).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_cases_api_names() {
        assert_eq!(snake_case("FirstName"), "first_name");
        assert_eq!(snake_case("AccountId"), "account_id");
        assert_eq!(snake_case("Level__c"), "level__c");
        assert_eq!(snake_case("Id"), "id");
        assert_eq!(snake_case("OpportunityLineItem"), "opportunity_line_item");
        assert_eq!(snake_case("My_Object__c"), "my_object__c");
        assert_eq!(snake_case("SLAExpirationDate__c"), "sla_expiration_date__c");
        assert_eq!(snake_case("SystemModstamp"), "system_modstamp");
        assert_eq!(snake_case("NumberOfEmployees"), "number_of_employees");
        assert_eq!(snake_case("Location__Latitude__s"), "location__latitude__s");
        assert_eq!(snake_case("ns__Field__c"), "ns__field__c");
        assert_eq!(snake_case("Address2Line"), "address2_line");
    }

    #[test]
    fn long_names_fit_and_stay_distinct() {
        let a = snake_case(&format!("{}A__c", "Very".repeat(20)));
        let b = snake_case(&format!("{}B__c", "Very".repeat(20)));
        assert!(a.len() <= MAX_IDENT && b.len() <= MAX_IDENT);
        assert_ne!(a, b);
    }

    #[test]
    fn suggests_near_names() {
        let names: Vec<String> = ["Contact", "Account", "Contract", "Opportunity", "Lead"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let near = near_names("Contat", &names, 3);
        assert_eq!(near[0], "Contact");
        assert!(near_names("Zebra", &names, 3).is_empty());
        assert_eq!(near_names("opportunit", &names, 3), vec!["Opportunity"]);
    }

    #[test]
    fn identifiers() {
        assert!(is_plain_identifier("salesforce"));
        assert!(is_plain_identifier("acme_2"));
        assert!(!is_plain_identifier("Acme"));
        assert!(!is_plain_identifier("a-b"));
        assert!(!is_plain_identifier(""));
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("O'Brien"), "'O''Brien'");
        assert_eq!(collection_id("Contact"), "salesforce:contact");
    }
}
