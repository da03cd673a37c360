//! Framing: the bytes the `tar` crate reads, counted, hashed and (around each
//! header) kept, to find its extension headers again; and the refusals of
//! archives that tar readers frame differently (the CVE-2025-62518 family).

use std::cell::{Cell, RefCell};
use std::io::{self, Read};

use sha2::{Digest, Sha256};

use super::meta::kind_of;
use super::pax;

/// Captured header bytes kept between entries (more is given back).
const CAPTURE_KEPT: usize = 64 << 10;

/// What the reader inside the `tar` crate's archive and the archive loop
/// share: the reader is out of reach while the crate iterates.
pub(super) struct Framing {
    /// Bytes consumed so far: error offsets, extension header sizes.
    offset: Cell<u64>,
    /// What the parser may still read (`u64::MAX` outside headers).
    budget: Cell<u64>,
    /// The budget ran out: extension headers exceed `max_extension_size`.
    over_budget: Cell<bool>,
    /// Whether read bytes go to `capture`.
    capturing: Cell<bool>,
    capture: RefCell<Vec<u8>>,
}

impl Framing {
    pub(super) fn new() -> Self {
        Framing {
            offset: Cell::new(0),
            budget: Cell::new(u64::MAX),
            over_budget: Cell::new(false),
            capturing: Cell::new(false),
            capture: RefCell::new(Vec::new()),
        }
    }

    /// Bytes of the tar stream consumed so far.
    pub(super) fn offset(&self) -> u64 {
        self.offset.get()
    }

    /// `true` once the extension headers before one entry were too long.
    pub(super) fn over_budget(&self) -> bool {
        self.over_budget.get()
    }

    /// Runs `next` (the `tar` crate finding the next header) with at most
    /// `budget` bytes to read; returns its result and the bytes it read (in
    /// `buffer`, reused) from the offset it started at.
    pub(super) fn capture<T>(
        &self,
        budget: u64,
        buffer: &mut Vec<u8>,
        next: impl FnOnce() -> T,
    ) -> (T, u64) {
        buffer.clear();
        *self.capture.borrow_mut() = std::mem::take(buffer);
        let at = self.offset.get();
        self.budget.set(budget);
        self.capturing.set(true);
        let result = next();
        self.capturing.set(false);
        self.budget.set(u64::MAX);
        *buffer = std::mem::take(&mut *self.capture.borrow_mut());
        if buffer.capacity() > CAPTURE_KEPT {
            buffer.shrink_to(CAPTURE_KEPT);
        }
        (result, at)
    }
}

/// Counts the bytes the parser consumes (for error offsets and the size of
/// extension headers), and hashes them when a digest is wanted. While the
/// parser looks for the next entry, the budget caps what it may read
/// (extension headers are read whole into memory by the `tar` crate), and
/// the bytes read are captured (the headers, to read their PAX records again).
pub(super) struct Counted<'a, R> {
    inner: R,
    framing: &'a Framing,
    digest: Option<Sha256>,
}

impl<'a, R: Read> Counted<'a, R> {
    pub(super) fn new(inner: R, framing: &'a Framing, digest: bool) -> Self {
        Counted {
            inner,
            framing,
            digest: digest.then(Sha256::new),
        }
    }

    /// `sha256:<hex>` of the bytes read, when asked for.
    pub(super) fn digest(&mut self) -> Option<String> {
        self.digest
            .take()
            .map(|d| format!("sha256:{:x}", d.finalize()))
    }
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let framing = self.framing;
        let budget = framing.budget.get();
        if budget == 0 && !buf.is_empty() {
            framing.over_budget.set(true);
            return Err(io::Error::other(
                "extension headers exceed max_extension_size",
            ));
        }
        let len = buf.len().min(usize::try_from(budget).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..len])?;
        framing.budget.set(budget.saturating_sub(n as u64));
        framing.offset.set(framing.offset.get() + n as u64);
        if let Some(digest) = &mut self.digest {
            digest.update(&buf[..n]);
        }
        if framing.capturing.get() {
            framing.capture.borrow_mut().extend_from_slice(&buf[..n]);
        }
        Ok(n)
    }
}

/// The extension headers the `tar` crate read before an entry's header, found
/// again in the bytes it read to get there.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Extensions<'a> {
    /// The data of the PAX extended header (`x`), if there is one.
    pub pax: Option<&'a [u8]>,
    /// A GNU long name (`L`) was read: the crate's `path_bytes` is that name.
    pub long_name: bool,
    /// A GNU long link name (`K`) was read: the crate's `link_name_bytes` is it.
    pub long_link: bool,
    /// How many extension headers there were.
    pub headers: usize,
    /// Their bytes, less the first one's header block (`max_extension_size`).
    pub size: u64,
}

impl<'a> Extensions<'a> {
    /// `captured` holds the bytes read from offset `at` to past the entry's
    /// header, which starts at `header`: the padding of the previous entry's
    /// data, then the extension headers, each a header block and its data.
    pub(super) fn find(captured: &'a [u8], at: u64, header: u64) -> Result<Self, &'static str> {
        const LOST: &str = "the extension headers before a header could not be read again";
        let block = |pos: u64, len: u64| -> Result<&'a [u8], &'static str> {
            let start = usize::try_from(pos - at).map_err(|_| LOST)?;
            let len = usize::try_from(len).map_err(|_| LOST)?;
            captured
                .get(start..start.checked_add(len).ok_or(LOST)?)
                .ok_or(LOST)
        };
        let first = at.checked_next_multiple_of(512).ok_or(LOST)?;
        let mut found = Extensions {
            size: header.saturating_sub(first).saturating_sub(512),
            ..Extensions::default()
        };
        let mut pos = first;
        while pos < header {
            let h = tar::Header::from_byte_slice(block(pos, 512)?);
            let size = h.entry_size().map_err(|_| LOST)?;
            let data = block(pos + 512, size)?;
            let t = h.entry_type();
            if t.is_pax_local_extensions() && found.pax.is_none() {
                found.pax = Some(data);
            } else if t.is_gnu_longname() {
                found.long_name = true;
            } else if t.is_gnu_longlink() {
                found.long_link = true;
            } else {
                return Err(LOST);
            }
            found.headers += 1;
            pos = size
                .checked_next_multiple_of(512)
                .and_then(|s| (pos + 512).checked_add(s))
                .ok_or(LOST)?;
        }
        if pos != header {
            return Err(LOST);
        }
        Ok(found)
    }
}

/// Refuses an entry whose data the `tar` crate frames with another size than
/// its PAX records give: the crate reads the first `size` record it meets
/// before a record it cannot split (a value holding a newline), these records
/// give the last one (as GNU tar). An unparseable `size` is refused too.
pub(super) fn check_pax_size<R: Read>(
    entry: &tar::Entry<'_, R>,
    records: &[pax::Record<'_>],
    data: &[u8],
) -> Result<(), String> {
    let mut size = None;
    for record in records.iter().filter(|r| r.key == b"size") {
        size = Some(pax::decimal(record.value).ok_or("invalid PAX size record")?);
    }
    // The crate checked the header's size field before using a PAX one.
    let header = entry.header().entry_size().map_err(|e| e.to_string())?;
    let ours = size.unwrap_or(header);
    let crates = pax::size_as_the_tar_crate_reads_it(data).unwrap_or(header);
    if ours != crates {
        return Err(format!(
            "ambiguous PAX size: {ours} by the record lengths, {crates} to a reader that splits \
             records at newlines (a record value holds a newline byte)"
        ));
    }
    Ok(())
}

/// Refuses entry types that tar readers frame differently: an extension
/// header taken for a member, Solaris's `X`, and data after a header-only
/// type. `name` is the entry's, `size` its data size.
pub(super) fn check_type(t: tar::EntryType, size: u64, name: &[u8]) -> Result<(), String> {
    if t.is_pax_local_extensions() || t.is_gnu_longname() || t.is_gnu_longlink() {
        // Without a ustar or GNU magic the `tar` crate takes an extension
        // header for a member; GNU tar applies it to the next one.
        return Err(format!(
            "an extended header (type {:?}) without a ustar or GNU magic",
            char::from(t.as_byte())
        ));
    }
    if t.as_byte() == b'X' {
        // Solaris's extended header: GNU tar and libarchive read it as a PAX
        // `x` header for the next member, the `tar` crate as a member of an
        // unknown type. Its records would mean different things.
        return Err(
            "a Solaris extended header (type 'X'): tar readers disagree on its meaning".into(),
        );
    }
    if size > 0 && header_only(t) {
        // The `tar` crate skips this data; GNU tar, Go and Python read the
        // next header right after such an entry: no meaning is safe.
        return Err(format!(
            "{} entry {:?} carries {size} bytes of data",
            kind_of(t).name(),
            String::from_utf8_lossy(name)
        ));
    }
    Ok(())
}

/// Entry types whose size field means nothing to other tools.
fn header_only(t: tar::EntryType) -> bool {
    use tar::EntryType::*;
    matches!(t, Link | Symlink | Char | Block | Directory | Fifo)
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
