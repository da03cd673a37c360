//! PAX extended header records (POSIX.1-2001), read strictly by their length.
//!
//! The data of a PAX header (`x` or `g`) is a sequence of records
//! `"%d %s=%s\n"`: a decimal length that counts the whole record (its own
//! digits, the space, the key, `=`, the value and the final newline), then the
//! key and the value. The value may hold any byte, newlines and NULs included
//! (binary extended attributes do), so a record ends where its length says, as
//! GNU tar, libarchive and Go read it, never at the next newline.
//!
//! Anything else is refused as a whole: other readers would see other records
//! (or none), and an archive that tools read differently is refused (see
//! SECURITY.md). Refused: a length that is not plain ASCII digits, that leaves
//! no room for its own space and newline, or that runs past the data; a record
//! whose last byte is not a newline; a record without `=`; an empty key or one
//! holding a NUL byte; bytes after the last record (NUL padding included).

use std::fmt;

/// One record: a key and its value, borrowed from the header's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Record<'a> {
    pub key: &'a [u8],
    pub value: &'a [u8],
}

/// Why PAX data was refused, and the offset of the record at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Malformed {
    /// Byte offset of the record in the header's data.
    pub offset: usize,
    pub reason: &'static str,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "malformed PAX extended header record at byte {}: {}",
            self.offset, self.reason
        )
    }
}

impl std::error::Error for Malformed {}

/// Splits the data of a PAX header into its records, in order (duplicates
/// kept: the caller decides which wins). All or nothing.
pub(crate) fn parse(data: &[u8]) -> Result<Vec<Record<'_>>, Malformed> {
    let mut records = Vec::new();
    let mut offset = 0;
    while offset < data.len() {
        let (record, len) = one(&data[offset..]).map_err(|reason| Malformed { offset, reason })?;
        records.push(record);
        offset += len;
    }
    Ok(records)
}

/// Reads the record at the start of `data`: the record and its length.
fn one(data: &[u8]) -> Result<(Record<'_>, usize), &'static str> {
    let digits = data.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return Err(if data.iter().all(|b| *b == 0) {
            "NUL padding after the last record"
        } else {
            "the record does not start with its decimal length"
        });
    }
    if data.get(digits) != Some(&b' ') {
        return Err("the record length is not followed by a space");
    }
    let len = data[..digits]
        .iter()
        .try_fold(0usize, |n, d| {
            n.checked_mul(10)?.checked_add(usize::from(d - b'0'))
        })
        .ok_or("the record length is out of range")?;
    // The digits, the space and the newline at least.
    if len < digits + 2 {
        return Err("the record length is too small");
    }
    if len > data.len() {
        return Err("the record length runs past the end of the header");
    }
    let record = &data[..len];
    let Some((b'\n', body)) = record[digits + 1..].split_last() else {
        return Err("the record does not end with a newline");
    };
    let Some(equals) = body.iter().position(|b| *b == b'=') else {
        return Err("the record has no `=`");
    };
    let (key, value) = (&body[..equals], &body[equals + 1..]);
    if key.is_empty() {
        return Err("the record has an empty key");
    }
    if key.contains(&0) {
        return Err("the record key holds a NUL byte");
    }
    Ok((Record { key, value }, len))
}

/// A decimal number as GNU tar requires it in a PAX record (`size`, `uid`,
/// `gid`): ASCII digits only (leading zeros too, as many as there are), no
/// sign, no blanks, fitting a `u64`.
pub(crate) fn decimal(value: &[u8]) -> Option<u64> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    value.iter().try_fold(0u64, |n, d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// The `size` the `tar` crate frames an entry's data with: the first `size`
/// record it can read, looking no further than the first record it cannot
/// split (it splits at newlines). `None` when it uses the header's size field.
/// Replicates `tar` 0.4's `pax_extensions_value`, so that the caller can refuse
/// an archive the crate would frame differently from these records.
pub(crate) fn size_as_the_tar_crate_reads_it(data: &[u8]) -> Option<u64> {
    for record in tar::PaxExtensions::new(data) {
        let record = record.ok()?;
        if record.key_bytes() == b"size" {
            return record.value().ok()?.parse::<u64>().ok();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record with its length prefix.
    fn record(key: &[u8], value: &[u8]) -> Vec<u8> {
        let body = [b" ", key, b"=", value, b"\n"].concat();
        let mut len = body.len() + 1;
        while len.to_string().len() + body.len() != len {
            len += 1;
        }
        [len.to_string().as_bytes(), &body].concat()
    }

    fn reason(data: &[u8]) -> &'static str {
        parse(data).unwrap_err().reason
    }

    #[test]
    fn well_formed() {
        let data = [
            record(b"path", b"a/b"),
            record(b"size", b"12"),
            record(b"comment", b""),
        ]
        .concat();
        let records = parse(&data).unwrap();
        let pairs: Vec<_> = records.iter().map(|r| (r.key, r.value)).collect();
        assert_eq!(
            pairs,
            [
                (&b"path"[..], &b"a/b"[..]),
                (b"size", b"12"),
                (b"comment", b"")
            ]
        );
        assert_eq!(parse(b"").unwrap(), []);
        // The length counts its own digits: 9 bytes follow it, 11 in all.
        assert_eq!(record(b"k", b"12345"), b"11 k=12345\n");
        assert_eq!(parse(b"11 k=12345\n").unwrap()[0].value, b"12345");
        // Leading zeros are still decimal (GNU tar, Go and the tar crate agree).
        assert_eq!(parse(b"07 k=v\n").unwrap()[0].value, b"v");
    }

    #[test]
    fn values_hold_any_byte() {
        let binary: Vec<u8> = (0..=255).collect();
        let data = [
            record(b"SCHILY.xattr.user.bin", &binary),
            record(b"SCHILY.xattr.user.nl", b"\n\n12 path=x\n"),
            record(b"size", b"7"),
        ]
        .concat();
        let records = parse(&data).unwrap();
        assert_eq!(records.len(), 3);
        assert_eq!(records[0].value, &binary[..]);
        assert_eq!(records[1].value, b"\n\n12 path=x\n");
        assert_eq!(
            (records[2].key, records[2].value),
            (&b"size"[..], &b"7"[..])
        );
        // `=` in a value: the key ends at the first one.
        let r = parse(b"9 k=a=b=\n").unwrap()[0];
        assert_eq!((r.key, r.value), (&b"k"[..], &b"a=b="[..]));
    }

    #[test]
    fn malformed_lengths() {
        assert_eq!(
            reason(b"x5 k=v\n"),
            "the record does not start with its decimal length"
        );
        assert_eq!(
            reason(b" 7 k=v\n"),
            "the record does not start with its decimal length"
        );
        assert_eq!(
            reason(b"+7 k=v\n"),
            "the record does not start with its decimal length"
        );
        assert_eq!(
            reason(b"7\tk=v\n"),
            "the record length is not followed by a space"
        );
        assert_eq!(reason(b"7"), "the record length is not followed by a space");
        assert_eq!(reason(b"1 "), "the record length is too small");
        assert_eq!(reason(b"2 k=v\n"), "the record length is too small");
        assert_eq!(
            reason(b"8 k=v\n"),
            "the record length runs past the end of the header"
        );
        assert_eq!(
            reason(b"9999999999999999999 k=v\n"),
            "the record length runs past the end of the header"
        );
        assert_eq!(
            reason(b"999999999999999999999 k=v\n"),
            "the record length is out of range"
        );
        assert_eq!(
            reason(b"18446744073709551616 k=v\n"),
            "the record length is out of range"
        );
        // Leading zeros are not a range error.
        assert_eq!(
            reason(b"00000000000000000000000000000008 k=v\n"),
            "the record length is too small"
        );
    }

    #[test]
    fn malformed_records() {
        // The corpus's `13 path=name`: 12 bytes, its newline missing.
        assert_eq!(
            reason(b"13 path=name"),
            "the record length runs past the end of the header"
        );
        assert_eq!(
            reason(b"12 path=name"),
            "the record does not end with a newline"
        );
        // A length one short: the newline is the next record's first byte.
        assert_eq!(
            reason(b"12 path=name\n6 k=v\n"),
            "the record does not end with a newline"
        );
        assert_eq!(reason(b"6 kv\n\n"), "the record has no `=`");
        assert_eq!(reason(b"5 =v\n"), "the record has an empty key");
        assert_eq!(
            reason(&record(b"SCHILY.xattr.user.a\0b", b"x")),
            "the record key holds a NUL byte"
        );
        // A NUL in a value is a value.
        assert_eq!(parse(&record(b"k", b"a\0b")).unwrap()[0].value, b"a\0b");
    }

    #[test]
    fn trailing_bytes() {
        let good = record(b"path", b"p");
        let err = parse(&[&good[..], b"\0\0\0"].concat()).unwrap_err();
        assert_eq!(
            (err.offset, err.reason),
            (good.len(), "NUL padding after the last record")
        );
        assert_eq!(
            reason(&[&good[..], b"\n"].concat()),
            "the record does not start with its decimal length"
        );
        assert_eq!(
            reason(&[&good[..], b"junk"].concat()),
            "the record does not start with its decimal length"
        );
        assert_eq!(
            parse(&[&good[..], b"5 k=v"].concat()).unwrap_err().offset,
            good.len()
        );
        assert_eq!(
            parse(b"8 k=vv\n").unwrap_err().to_string(),
            "malformed PAX extended header record at byte 0: the record length runs past the end of the header"
        );
    }

    #[test]
    fn decimals() {
        assert_eq!(decimal(b"0"), Some(0));
        assert_eq!(decimal(b"0012"), Some(12));
        assert_eq!(decimal(b"18446744073709551615"), Some(u64::MAX));
        // Go's pax-pos-size-file.tar: `size=` and 30 digits.
        assert_eq!(decimal(b"000000000000000000000000000999"), Some(999));
        for bad in [
            &b""[..],
            b" 1",
            b"1 ",
            b"+1",
            b"-1",
            b"1x",
            b"0x10",
            b"18446744073709551616",
        ] {
            assert_eq!(decimal(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn the_tar_crates_size() {
        let size = |records: &[Vec<u8>]| size_as_the_tar_crate_reads_it(&records.concat());
        assert_eq!(size(&[record(b"size", b"10")]), Some(10));
        assert_eq!(
            size(&[record(b"path", b"p"), record(b"size", b"10")]),
            Some(10)
        );
        assert_eq!(size(&[record(b"path", b"p")]), None);
        // The first one wins.
        assert_eq!(
            size(&[record(b"size", b"10"), record(b"size", b"20")]),
            Some(10)
        );
        // It stops at a value holding a newline (records follow unseen)...
        assert_eq!(
            size(&[
                record(b"SCHILY.xattr.user.a", b"\n"),
                record(b"size", b"10")
            ]),
            None
        );
        // ...and at a size it cannot parse.
        assert_eq!(size(&[record(b"size", b" 10")]), None);
    }
}
