//! `changedFields`, `nulledFields` and `diffFields` as Pub/Sub API sends them: "A
//! bitmap field is an array of strings. The first element of the array contains a
//! bitmap for the individual non-compound fields"; a compound field's components come
//! as `"<position>-0x<bitmap>"`, the position being the compound field's place among
//! the top-level fields of the Avro schema and the bitmap indexing the fields of its
//! nested record. A bit set to 1 marks the field at that position of the schema
//! (example: `['0x650004E0','4-0x10','7-0x06']`). Source: "Event Deserialization
//! Considerations", Pub/Sub API Developer Guide,
//! https://developer.salesforce.com/docs/platform/pub-sub-api/guide/event-deserialization-considerations.html.
//!
//! Bit order: position `i` is bit `i` of the hexadecimal number (bit 0 the lowest),
//! as Salesforce's own decoding example reads it (it reverses the binary string of
//! the hex digits and takes the index of each 1). The emulator writes whole bytes in
//! upper case; whether Salesforce pads to a fixed width is not documented.

use crate::avro::Schema;

/// `0x..` for a set of positions; None when the set is empty.
pub fn encode(positions: &[usize]) -> Option<String> {
    let max = *positions.iter().max()?;
    let mut bytes = vec![0u8; max / 8 + 1];
    for &p in positions {
        bytes[p / 8] |= 1 << (p % 8);
    }
    let mut s = String::from("0x");
    for b in bytes.iter().rev() {
        s.push_str(&format!("{b:02X}"));
    }
    Some(s)
}

/// The positions a `0x..` string marks.
pub fn decode(hex: &str) -> Option<Vec<usize>> {
    let digits = hex.strip_prefix("0x").or_else(|| hex.strip_prefix("0X"))?;
    let mut out = Vec::new();
    for (i, c) in digits.chars().rev().enumerate() {
        let nibble = c.to_digit(16)? as usize;
        for bit in 0..4 {
            if nibble & (1 << bit) != 0 {
                out.push(i * 4 + bit);
            }
        }
    }
    Some(out)
}

/// The header value for top-level positions and, per compound field position, the
/// positions of its changed components.
pub fn field_list(top: &[usize], nested: &[(usize, Vec<usize>)]) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(t) = encode(top) {
        out.push(t);
    }
    for (parent, children) in nested {
        if let Some(c) = encode(children) {
            out.push(format!("{parent}-{c}"));
        }
    }
    out
}

/// Field names a header value stands for, with `Compound.Component` for nested
/// entries (the form the Streaming API uses), given the event's Avro schema.
pub fn field_names(schema: &Schema, bitmaps: &[String]) -> Vec<String> {
    let fields = schema.fields();
    let mut out = Vec::new();
    for b in bitmaps {
        match b.split_once('-') {
            None => {
                for p in decode(b).unwrap_or_default() {
                    if let Some((name, _)) = fields.get(p) {
                        out.push(name.clone());
                    }
                }
            }
            Some((parent, child)) => {
                let Some((pname, pschema)) =
                    parent.parse::<usize>().ok().and_then(|p| fields.get(p))
                else {
                    continue;
                };
                let Some(rec) = pschema.record_branch() else {
                    continue;
                };
                for p in decode(child).unwrap_or_default() {
                    if let Some((cname, _)) = rec.fields().get(p) {
                        out.push(format!("{pname}.{cname}"));
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_example_decodes_as_salesforce_reads_it() {
        // The guide's example value; Salesforce's decoder reverses the bit string, so
        // the set positions are these.
        assert_eq!(
            decode("0x650004E0").unwrap(),
            vec![5, 6, 7, 10, 24, 26, 29, 30]
        );
        assert_eq!(
            encode(&[5, 6, 7, 10, 24, 26, 29, 30]).unwrap(),
            "0x650004E0"
        );
        assert_eq!(encode(&[4]).unwrap(), "0x10");
        assert_eq!(encode(&[1, 2]).unwrap(), "0x06");
        assert_eq!(encode(&[]), None);
        assert_eq!(
            field_list(&[1], &[(4, vec![4]), (7, vec![1, 2])]),
            vec!["0x02", "4-0x10", "7-0x06"]
        );
    }
}
