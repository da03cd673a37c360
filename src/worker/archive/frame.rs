//! The refusals of archives that tar readers frame differently (the
//! CVE-2025-62518 family), and messages about the archive said without its
//! bytes.

use crate::report::EntryKind;

use super::pax;

/// Refuses an entry whose data the `tar` crate frames with another size than
/// its PAX records give: the crate reads the first `size` record it meets
/// before a record it cannot split (a value holding a newline), the records
/// give the last one (as GNU tar). `ours` is that size, `field` the header's,
/// `data` the PAX header's.
pub(super) fn check_pax_size(ours: u64, field: u64, data: &[u8]) -> Result<(), String> {
    let crates = pax::size_as_the_tar_crate_reads_it(data).unwrap_or(field);
    if ours != crates {
        return Err(format!(
            "ambiguous PAX size: {ours} by the record lengths, {crates} to a reader that splits \
             records at newlines (a record value holds a newline byte)"
        ));
    }
    Ok(())
}

/// Whether an entry of type `t` named `name` has no data to GNU tar, Go and
/// Python, whatever its size field says: links, nodes, directories, and a
/// regular or contiguous file whose name (read as GNU tar reads it: up to a
/// NUL byte) ends with `/`, which GNU tar makes a directory (not GNU's
/// dumpdir `D`, whose data is its listing). The `tar` crate reads `size`
/// bytes of data after them.
pub(super) fn header_only(t: tar::EntryType, name: &[u8]) -> bool {
    use tar::EntryType::*;
    let name = &name[..name.iter().position(|b| *b == 0).unwrap_or(name.len())];
    matches!(t, Link | Symlink | Char | Block | Directory | Fifo)
        || (matches!(t, Regular | Continuous) && name.ends_with(b"/"))
}

/// The refusal of a header-only entry that carries `size` bytes of data.
pub(super) fn carries_data(kind: EntryKind, name: &[u8], size: u64) -> String {
    format!(
        "{} entry {} carries {size} bytes of data",
        kind.name(),
        quoted(&String::from_utf8_lossy(name))
    )
}

/// A `tar` crate error, said without the archive's bytes: the crate quotes a
/// bad numeric field's text and the entry's name (`numeric field was not a
/// number: lohelloh when getting cksum for PK…`); this names the field and
/// the entry (escaped, cut short) instead. A size field that is blank (spaces,
/// NULs) or starts with a NUL byte is said so: such a field is refused, not
/// read as 0, as tar readers disagree on it (GNU tar and Python read 0, Go's
/// archive/tar the digits after the NULs), and the size frames the rest of
/// the archive. The crate's other messages (and the decoders') are fixed
/// texts: kept, escaped and cut short all the same.
pub(super) fn explain(message: &str) -> String {
    let Some(rest) = [
        "numeric field was not a number:",
        "numeric field did not have utf-8 text:",
    ]
    .iter()
    .find_map(|prefix| message.strip_prefix(prefix)) else {
        return cut(&crate::report::printable(message), 200);
    };
    let (number, field, name) = match rest.rsplit_once(" when getting ") {
        Some((number, what)) => match what.split_once(" for ") {
            Some((field, name)) => (number, field, Some(name)),
            None => (number, what.trim_end_matches(" from sparse header"), None),
        },
        None => (rest, "a numeric", None),
    };
    let field =
        match field.len() <= 16 && field.bytes().all(|b| b.is_ascii_lowercase() || b == b' ') {
            true => field,
            false => "a numeric",
        };
    let of = name.map_or(String::new(), |n| format!(" of {}", quoted(n)));
    if field == "size" && number.trim().is_empty() {
        return format!(
            "the size field{of} is blank or starts with a NUL byte: refused, as tar \
             readers disagree on its value (GNU tar reads 0, Go the digits after the NULs)"
        );
    }
    format!("the {field} field{of} is not an octal number")
}

/// An entry's name in a message: quoted, with what a terminal would act on
/// escaped, cut short.
pub(super) fn quoted(name: &str) -> String {
    format!("\"{}\"", cut(&crate::report::printable(name), 64))
}

/// `text` cut to `max` characters, with an ellipsis where it was cut.
fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_size_fields() {
        let mut h = tar::Header::new_gnu();
        h.as_mut_bytes()[..4].copy_from_slice(b"name");
        let mut explained = |field: &[u8]| {
            h.as_mut_bytes()[124..136].copy_from_slice(field);
            explain(&h.entry_size().unwrap_err().to_string())
        };
        let refused = "the size field of \"name\" is blank or starts with a NUL byte: refused, \
                       as tar readers disagree on its value (GNU tar reads 0, Go the digits \
                       after the NULs)";
        assert_eq!(explained(&[0; 12]), refused);
        assert_eq!(explained(b"           \0"), refused);
        assert_eq!(explained(b"\0\0\0\0\0\0\x000016\0"), refused);
        assert_eq!(
            explained(b"12x4\0\0\0\0\0\0\0\0"),
            "the size field of \"name\" is not an octal number"
        );
    }

    /// The field's bytes never come back; the name only escaped and cut short.
    #[test]
    fn no_raw_bytes_in_messages() {
        let mut h = tar::Header::new_gnu();
        let name = "PK\x03\x04\u{202e}evil".to_string() + &"n".repeat(300);
        h.as_mut_bytes()[..100].copy_from_slice(&name.as_bytes()[..100]);
        h.as_mut_bytes()[148..156].copy_from_slice(b"lohelloh");
        let message = explain(&h.cksum().unwrap_err().to_string());
        assert!(
            message.starts_with("the cksum field of \"PK\\u{3}\\u{4}\\u{202e}evil"),
            "{message}"
        );
        assert!(message.ends_with("…\" is not an octal number"), "{message}");
        assert!(
            !message.contains("lohelloh") && !message.contains('\u{202e}'),
            "{message}"
        );
        assert!(message.len() < 150, "{message}");
        let utf8 = tar::Header::new_gnu();
        let mut raw = *utf8.as_bytes();
        raw[108..116].copy_from_slice(b"7\xfe\x01\x02abcd");
        let h = tar::Header::from_byte_slice(&raw);
        let message = explain(&h.uid().unwrap_err().to_string());
        assert_eq!(message, "the uid field of \"\" is not an octal number");
        let fixed = "archive header checksum mismatch";
        assert_eq!(explain(fixed), fixed);
    }
}
