//! Whether bytes are a minimal tuple that a column description can read without going
//! past their end: the walk Postgres's deforming makes over a tuple (null bitmap,
//! alignment, each value's length), done on the bytes first, with every length checked
//! against what is there. Plain Rust, no call into Postgres: a kept row of a batch goes
//! through it before a slot reads it (kept.rs).

use super::kept::Column;

#[cfg(target_endian = "big")]
compile_error!("tuple_check reads tuple headers and varlena lengths as little-endian");

// The layout of a MinimalTupleData (htup_details.h), the same on every supported major:
// t_len u32, 6 bytes of padding, t_infomask2 u16, t_infomask u16, t_hoff u8, then the
// null bitmap. t_hoff counts from 8 bytes before the tuple (MINIMAL_TUPLE_OFFSET), as a
// heap tuple header would.
const INFOMASK2_AT: usize = 10;
const INFOMASK_AT: usize = 12;
const HOFF_AT: usize = 14;
const BITS_AT: usize = 15;
const MINIMAL_TUPLE_OFFSET: usize = 8;
const NATTS_MASK: u16 = 0x07FF;
const HASNULL: u16 = 0x0001;
const HASEXTERNAL: u16 = 0x0004;
const MAXALIGN: usize = 8;

/// Ok when `bytes` hold a whole minimal tuple of at most `columns.len()` values, each
/// inside the tuple; Err says what is wrong.
pub fn readable(bytes: &[u8], columns: &[Column]) -> Result<(), String> {
    let u16_at = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]);
    if bytes.len() < BITS_AT {
        return Err(format!(
            "{} bytes are too few for a tuple header",
            bytes.len()
        ));
    }
    let t_len = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    if t_len != bytes.len() {
        return Err(format!(
            "the tuple says {t_len} bytes, {} are stored",
            bytes.len()
        ));
    }
    let natts = (u16_at(INFOMASK2_AT) & NATTS_MASK) as usize;
    if natts > columns.len() {
        return Err(format!("{natts} values for {} columns", columns.len()));
    }
    let infomask = u16_at(INFOMASK_AT);
    if infomask & HASEXTERNAL != 0 {
        return Err("a value is stored out of line".into());
    }
    let hoff = bytes[HOFF_AT] as usize;
    let bitmap = if infomask & HASNULL != 0 {
        natts.div_ceil(8)
    } else {
        0
    };
    let data_at = hoff.wrapping_sub(MINIMAL_TUPLE_OFFSET);
    if !hoff.is_multiple_of(MAXALIGN)
        || hoff < BITS_AT + MINIMAL_TUPLE_OFFSET + bitmap
        || data_at > bytes.len()
    {
        return Err(format!("header size {hoff} is impossible"));
    }
    let is_null = |i: usize| bitmap > 0 && bytes[BITS_AT + i / 8] & (1 << (i % 8)) == 0;
    let data = &bytes[data_at..];
    let mut off = 0usize;
    for (i, c) in columns.iter().enumerate().take(natts) {
        if is_null(i) {
            continue;
        }
        let len = match c.len {
            -1 => {
                // a varlena with a 1-byte header is never aligned; a pad byte is 0
                if data.get(off) == Some(&0) {
                    off = align(off, c.align);
                }
                varlena_len(data, off).map_err(|e| format!("column {}: {e}", i + 1))?
            }
            -2 => {
                let end = data.get(off..).and_then(|d| d.iter().position(|&b| b == 0));
                end.ok_or_else(|| format!("column {}: a cstring runs past the tuple", i + 1))? + 1
            }
            n => {
                off = align(off, c.align);
                n as usize
            }
        };
        if off.checked_add(len).is_none_or(|end| end > data.len()) {
            return Err(format!("column {} runs past the end of the tuple", i + 1));
        }
        off += len;
    }
    Ok(())
}

fn align(off: usize, align: u8) -> usize {
    let to = match align {
        b's' => 2,
        b'i' => 4,
        b'd' => 8,
        _ => 1,
    };
    off.div_ceil(to) * to
}

/// The whole length of the varlena at `off` (header included), as VARSIZE_ANY reads it
/// on a little-endian machine.
fn varlena_len(data: &[u8], off: usize) -> Result<usize, String> {
    let first = *data.get(off).ok_or("a value starts past the tuple")?;
    if first & 0x01 == 0x01 {
        if first == 0x01 {
            return Err("a value is a pointer to storage elsewhere".into());
        }
        return Ok((first >> 1) as usize);
    }
    let header = data
        .get(off..off + 4)
        .ok_or("a value's header runs past the tuple")?;
    let len = (u32::from_le_bytes([header[0], header[1], header[2], header[3]]) >> 2) as usize;
    if len < 4 {
        return Err(format!("a value of {len} bytes is shorter than its header"));
    }
    Ok(len)
}
