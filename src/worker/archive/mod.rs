//! The archive loop: one parser (the `tar` crate, driven entry by entry), the
//! limits, and the applier. Shared by the worker and the fuzzing harness.
//!
//! The `tar` crate frames the archive (headers, sizes, GNU long names, old-GNU
//! sparse maps); PAX records are read by [`pax`](super::pax), from the bytes the
//! crate read to reach each header, because the crate splits them at newlines.
//! Where the crate's reading of a PAX `size` differs from the records', the
//! archive is refused: the crate frames the data with its own.

use std::cell::{Cell, RefCell};
use std::io::{self, Read};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};

use sha2::{Digest, Sha256};

use crate::options::{Limit, Limits};
use crate::report::EntryKind;
use crate::wire::{WireError, WireReport};

use super::apply::layer;
use super::apply::{self, Applier, Fatal, Meta};

pub(crate) mod pax;
pub(crate) mod sparse;

/// What a finished archive leaves behind.
pub(crate) struct Run {
    /// Bytes of the uncompressed tar stream, read to its end.
    pub tar_bytes: u64,
    /// `sha256:<hex>` of that stream, when asked for.
    pub diff_id: Option<String>,
    /// The sum of every entry's data size.
    pub layer_size: u64,
    /// Directories whose deferred metadata failed: (raw name, message).
    pub corrections: Vec<(Vec<u8>, String)>,
}

/// Counts the bytes the parser consumes (for error offsets and the size of
/// extension headers), and hashes them when a digest is wanted.
/// While the parser looks for the next entry, `budget` caps what it may read
/// (extension headers are read whole into memory by the `tar` crate), and the
/// bytes read are kept in `capture` when `capturing` (the headers, to read
/// their PAX records again).
struct Counted<R> {
    inner: R,
    offset: Rc<Cell<u64>>,
    digest: Option<Sha256>,
    budget: Rc<Cell<u64>>,
    over_budget: Rc<Cell<bool>>,
    capturing: Rc<Cell<bool>>,
    capture: Rc<RefCell<Vec<u8>>>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let budget = self.budget.get();
        if budget == 0 && !buf.is_empty() {
            self.over_budget.set(true);
            return Err(io::Error::other(
                "extension headers exceed max_extension_size",
            ));
        }
        let len = buf.len().min(usize::try_from(budget).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..len])?;
        self.budget.set(budget.saturating_sub(n as u64));
        self.offset.set(self.offset.get() + n as u64);
        if let Some(digest) = &mut self.digest {
            digest.update(&buf[..n]);
        }
        if self.capturing.get() {
            self.capture.borrow_mut().extend_from_slice(&buf[..n]);
        }
        Ok(n)
    }
}

/// Parses the tar stream from `reader`, checks every limit, applies each entry
/// and hands its report to `sink` (which returns `false` to stop). Reads the
/// stream to its end. `ratio_exceeded` tells a decoder's ratio stop from a
/// malformed stream.
pub(crate) fn run<R: Read>(
    reader: R,
    applier: &mut Applier,
    limits: &Limits,
    digest: bool,
    ratio_exceeded: &AtomicBool,
    sink: &mut dyn FnMut(WireReport) -> bool,
) -> Result<Run, WireError> {
    let offset = Rc::new(Cell::new(0));
    let budget = Rc::new(Cell::new(u64::MAX));
    let over_budget = Rc::new(Cell::new(false));
    let capturing = Rc::new(Cell::new(false));
    let capture = Rc::new(RefCell::new(Vec::new()));
    let reader = Counted {
        inner: reader,
        offset: offset.clone(),
        digest: digest.then(Sha256::new),
        budget: budget.clone(),
        over_budget: over_budget.clone(),
        capturing: capturing.clone(),
        capture: capture.clone(),
    };
    let mut layer_size: u64 = 0;
    let mut archive = tar::Archive::new(reader);
    // A read error is a malformed archive, unless the decoder stopped on the
    // compression-ratio limit.
    let read_error = |e: &dyn std::fmt::Display, entry: &[u8]| {
        if over_budget.get() {
            // Tripped before the entry's own header was read: no name yet.
            WireError::Limit {
                limit: Limit::MaxExtensionSize,
                value: limits.get(Limit::MaxExtensionSize),
                entry: Vec::new(),
            }
        } else if ratio_exceeded.load(Ordering::Relaxed) {
            WireError::Limit {
                limit: Limit::MaxCompressionRatio,
                value: limits.get(Limit::MaxCompressionRatio),
                entry: entry.to_vec(),
            }
        } else {
            WireError::Malformed {
                offset: offset.get(),
                message: e.to_string(),
            }
        }
    };
    let limit = |limit: Limit, entry: &[u8]| WireError::Limit {
        limit,
        value: limits.get(limit),
        entry: entry.to_vec(),
    };
    let mut entries = archive.entries().map_err(|e| read_error(&e, b""))?;
    let mut globals = PaxGlobals::default();
    let mut count: u64 = 0;
    let mut total: u64 = 0;
    let mut last_path: Vec<u8> = Vec::new();
    // What the parser read to reach the current entry (from `captured_at`).
    let mut captured: Vec<u8> = Vec::new();
    let mut scratch = vec![0u8; 8192];
    loop {
        // Padding, extension headers (with their header blocks) and the entry's
        // header: stop reading once they exceed the limit.
        captured.clear();
        *capture.borrow_mut() = std::mem::take(&mut captured);
        let captured_at = offset.get();
        budget.set(limits.max_extension_size.saturating_add(2048));
        capturing.set(true);
        let next = entries.next();
        capturing.set(false);
        budget.set(u64::MAX);
        captured = std::mem::take(&mut *capture.borrow_mut());
        if captured.capacity() > CAPTURE_KEPT {
            captured.shrink_to(CAPTURE_KEPT);
        }
        let mut entry = match next {
            None => break,
            Some(Ok(entry)) => entry,
            Some(Err(e)) => return Err(read_error(&explain_blank_size(&e), &last_path)),
        };
        // Parser differentials (the CVE-2025-62518 family) refused outright:
        let malformed = |message: String| WireError::Malformed {
            offset: offset.get(),
            message,
        };
        let found = Extensions::find(&captured, captured_at, entry.raw_header_position())
            .map_err(|m| malformed(m.into()))?;
        let records = match found.pax {
            Some(data) => pax::parse(data).map_err(|e| malformed(e.to_string()))?,
            None => Vec::new(),
        };
        let last = |key: &[u8]| records.iter().rev().find(|r| r.key == key).map(|r| r.value);
        // A PAX `path` or `linkpath` wins over a GNU long name, as in GNU tar;
        // the crate's own reading of them is never used.
        let raw_path = match last(b"path") {
            Some(path) => path.to_vec(),
            None if found.long_name => entry.path_bytes().into_owned(),
            None => entry.header().path_bytes().into_owned(),
        };
        let link = match last(b"linkpath") {
            Some(link) => Some(link.to_vec()),
            None if found.long_link => entry.link_name_bytes().map(|l| l.into_owned()),
            None => entry.header().link_name_bytes().map(|l| l.into_owned()),
        };
        if let Some(data) = found.pax {
            check_pax_size(&entry, &records, data).map_err(malformed)?;
        }
        let extensions = found.size;
        if extensions > limits.max_extension_size {
            return Err(limit(Limit::MaxExtensionSize, &raw_path));
        }
        count += 1;
        if count > limits.max_entries {
            return Err(limit(Limit::MaxEntries, &raw_path));
        }
        let size = entry.size();
        layer_size = layer_size.saturating_add(size);
        if size > limits.max_entry_size {
            return Err(limit(Limit::MaxEntrySize, &raw_path));
        }
        total = total.saturating_add(size);
        if total > limits.max_total_size {
            return Err(limit(Limit::MaxTotalSize, &raw_path));
        }
        let entry_type = entry.header().entry_type();
        if entry_type.is_pax_local_extensions()
            || entry_type.is_gnu_longname()
            || entry_type.is_gnu_longlink()
        {
            // Without a ustar or GNU magic the `tar` crate takes an extension
            // header for a member; GNU tar applies it to the next one.
            return Err(malformed(format!(
                "an extended header (type {:?}) without a ustar or GNU magic",
                char::from(entry_type.as_byte())
            )));
        }
        if entry_type.as_byte() == b'X' {
            // Solaris's extended header: GNU tar and libarchive read it as a PAX
            // `x` header for the next member, the `tar` crate as a member of an
            // unknown type. Its records would mean different things.
            return Err(malformed(
                "a Solaris extended header (type 'X'): tar readers disagree on its meaning".into(),
            ));
        }
        if size > 0 && header_only(entry_type) {
            // The `tar` crate skips this data; GNU tar, Go and Python read the
            // next header right after such an entry: no meaning is safe.
            return Err(malformed(format!(
                "{} entry {:?} carries {size} bytes of data",
                kind_of(entry_type).name(),
                String::from_utf8_lossy(&raw_path)
            )));
        }
        if entry_type.is_pax_global_extensions() {
            if size > limits.max_extension_size {
                return Err(limit(Limit::MaxExtensionSize, &raw_path));
            }
            // A PAX or GNU extension header before a global header: the `tar`
            // crate attaches it to the global header, GNU tar to the next member.
            if found.headers > 0 {
                return Err(malformed(
                    "an extended header (PAX or GNU) precedes a PAX global header".into(),
                ));
            }
            let mut data = Vec::new();
            entry
                .read_to_end(&mut data)
                .map_err(|e| read_error(&e, &raw_path))?;
            globals.update(&data).map_err(malformed)?;
            continue;
        }
        let mut meta = read_meta(&entry, &globals, &records, &raw_path, link)
            .map_err(|e| read_error(&e, &raw_path))?;
        // Old-GNU sparse: the map, read again from the header blocks; the
        // applier gets the stored chunks only (see `Chunks`).
        let old_gnu_map = if entry_type == tar::EntryType::GNUSparse {
            let map = old_gnu_sparse_map(&entry, &captured, captured_at)
                .map_err(|m| malformed(m.into()))?;
            sparse::check(&map, entry.size()).map_err(|e| malformed(e.to_string()))?;
            meta.sparse = Some(sparse::Sparse {
                layout: sparse::Layout::Map(map.clone()),
                real_size: entry.size(),
                name: None,
            });
            Some(map)
        } else {
            None
        };
        if meta.kind == EntryKind::Directory && entry_type == tar::EntryType::Regular && size > 0 {
            // A pre-POSIX directory (a "file" named with a trailing slash) that
            // carries data: the same disagreement as for header-only types.
            return Err(malformed(format!(
                "directory entry {:?} carries {size} bytes of data",
                String::from_utf8_lossy(&raw_path)
            )));
        }
        // PAX sparse files carry their real name and size in records. (The
        // PAX `path`, when there is one, is `raw_path` already.)
        let raw_path = match meta.sparse.as_ref().and_then(|s| s.name.clone()) {
            Some(name) => name,
            None => raw_path,
        };
        if let Some(real) = meta.sparse.as_ref().map(|s| s.real_size) {
            if real > limits.max_entry_size {
                return Err(limit(Limit::MaxEntrySize, &raw_path));
            }
            total = total.saturating_add(real.saturating_sub(size));
            if total > limits.max_total_size {
                return Err(limit(Limit::MaxTotalSize, &raw_path));
            }
        }
        if applier.layer_mode() {
            let name = raw_path.strip_suffix(b"/").unwrap_or(&raw_path);
            let name = name.rsplit(|b| *b == b'/').next().unwrap_or_default();
            if layer::classify(name) != layer::Whiteout::None {
                meta.kind = EntryKind::Whiteout;
            }
        }
        // The limits apply to the name as it will be used, however long.
        if let Ok(path) = apply::normalize_lexically(&raw_path) {
            if path.len() as u64 > limits.max_path_length {
                return Err(limit(Limit::MaxPathLength, &raw_path));
            }
            let depth = path.split(|b| *b == b'/').count() as u64;
            if depth > limits.max_path_depth {
                return Err(limit(Limit::MaxPathDepth, &raw_path));
            }
        }
        let applied = match old_gnu_map {
            Some(map) => applier.apply(&raw_path, &meta, &mut Chunks::new(&mut entry, map)),
            None => applier.apply(&raw_path, &meta, &mut entry),
        };
        let outcome = match applied {
            Ok(outcome) => outcome,
            Err(Fatal::Read(message)) => {
                let message = format!("{}: {message}", String::from_utf8_lossy(&raw_path));
                return Err(read_error(&message, &raw_path));
            }
            Err(Fatal::Unmapped(message)) => {
                return Err(WireError::Unmapped {
                    entry: raw_path,
                    message,
                })
            }
            Err(Fatal::Write(message)) => {
                return Err(WireError::Write {
                    entry: raw_path,
                    message,
                })
            }
        };
        // Whatever the applier did not read (skipped and rejected entries).
        skip_rest(&mut entry, &mut scratch).map_err(|e| read_error(&e, &raw_path))?;
        let more = sink(WireReport {
            path: raw_path.clone(),
            kind: meta.kind,
            size: if meta.kind == EntryKind::File {
                meta.sparse.as_ref().map_or(meta.size, |s| s.real_size)
            } else {
                0
            },
            outcome,
        });
        if !more {
            return Err(WireError::Internal("the driver stopped listening".into()));
        }
        last_path = raw_path;
    }
    let corrections = applier
        .finish()
        .into_iter()
        .map(|(path, message)| {
            (
                crate::wire::bounded_path(path),
                crate::wire::bounded_text(message),
            )
        })
        .collect();
    // Read to the end of the stream: trailing blocks, and the compressed stream's
    // own checks (gzip's CRC, for example), which come last.
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(|e| read_error(&e, b""))?;
    let diff_id = rest
        .digest
        .take()
        .map(|d| format!("sha256:{:x}", d.finalize()));
    Ok(Run {
        tar_bytes: offset.get(),
        diff_id,
        layer_size,
        corrections,
    })
}

/// The chunks of an old-GNU sparse entry (`S`), read from the header and its
/// extension blocks as the `tar` crate read them: (offset, length) in the file.
fn old_gnu_sparse_map<R: Read>(
    entry: &tar::Entry<'_, R>,
    captured: &[u8],
    at: u64,
) -> Result<Vec<(u64, u64)>, &'static str> {
    const LOST: &str = "the sparse map of an old-GNU sparse entry could not be read again";
    let gnu = entry.header().as_gnu().ok_or(LOST)?;
    let mut map = Vec::new();
    let mut add = |block: &tar::GnuSparseHeader| -> Result<(), &'static str> {
        // As the crate: a block whose fields start with NUL is no block.
        if !block.is_empty() {
            map.push((
                block.offset().map_err(|_| LOST)?,
                block.length().map_err(|_| LOST)?,
            ));
        }
        Ok(())
    };
    gnu.sparse.iter().try_for_each(&mut add)?;
    let mut extended = gnu.is_extended();
    let mut pos = entry.raw_header_position() + 512;
    while extended {
        let start = usize::try_from(pos - at).map_err(|_| LOST)?;
        let bytes = captured.get(start..start + 512).ok_or(LOST)?;
        let mut ext = tar::GnuExtSparseHeader::new();
        ext.as_mut_bytes().copy_from_slice(bytes);
        ext.sparse.iter().try_for_each(&mut add)?;
        extended = ext.is_extended();
        pos += 512;
    }
    Ok(map)
}

/// An old-GNU sparse entry's data as stored: the `tar` crate gives it with
/// the holes expanded as zeros; they are read into a scratch buffer and
/// dropped (the crate fills it: a `memset`, not a scan), and only the chunks'
/// bytes reach the applier, which writes them at their offsets.
struct Chunks<'a, R> {
    inner: &'a mut R,
    map: std::vec::IntoIter<(u64, u64)>,
    /// Position in the expanded data.
    pos: u64,
    /// Bytes left in the current chunk.
    left: u64,
    scratch: Vec<u8>,
}

impl<'a, R: Read> Chunks<'a, R> {
    fn new(inner: &'a mut R, map: Vec<(u64, u64)>) -> Self {
        Chunks {
            inner,
            map: map.into_iter(),
            pos: 0,
            left: 0,
            scratch: Vec::new(),
        }
    }
}

impl<R: Read> Read for Chunks<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.left == 0 {
            let Some((offset, length)) = self.map.next() else {
                return Ok(0);
            };
            // `sparse::check` ordered the chunks.
            let mut hole = offset - self.pos;
            if hole > 0 && self.scratch.is_empty() {
                self.scratch = vec![0; 1 << 16];
            }
            while hole > 0 {
                let want = hole.min(self.scratch.len() as u64) as usize;
                let n = self.inner.read(&mut self.scratch[..want])?;
                if n == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                hole -= n as u64;
            }
            self.pos = offset;
            self.left = length;
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.left -= n as u64;
        self.pos += n as u64;
        Ok(n)
    }
}

/// The `tar` crate's error for a header whose size field is blank (spaces or
/// NULs) or starts with a NUL byte, said so that a user can tell what is wrong;
/// other errors as they are. Such a field is refused, not read as 0: tar
/// readers disagree on it (GNU tar and Python read 0, Go's archive/tar the
/// digits after the NULs), and the size frames the rest of the archive.
fn explain_blank_size(e: &io::Error) -> String {
    let message = e.to_string();
    let blank = message
        .strip_prefix("numeric field was not a number:")
        .and_then(|rest| rest.split_once(" when getting size for "))
        .filter(|(number, _)| number.trim().is_empty());
    match blank {
        Some((_, name)) => format!(
            "the size field of {name:?} is blank or starts with a NUL byte: refused, as tar \
             readers disagree on its value (GNU tar reads 0, Go the digits after the NULs)"
        ),
        None => message,
    }
}

/// Captured header bytes kept between entries (more is given back).
const CAPTURE_KEPT: usize = 64 << 10;

/// The extension headers the `tar` crate read before an entry's header, found
/// again in the bytes it read to get there.
#[derive(Debug, Default, PartialEq, Eq)]
struct Extensions<'a> {
    /// The data of the PAX extended header (`x`), if there is one.
    pax: Option<&'a [u8]>,
    /// A GNU long name (`L`) was read: the crate's `path_bytes` is that name.
    long_name: bool,
    /// A GNU long link name (`K`) was read: the crate's `link_name_bytes` is it.
    long_link: bool,
    /// How many extension headers there were.
    headers: usize,
    /// Their bytes, less the first one's header block (`max_extension_size`).
    size: u64,
}

impl<'a> Extensions<'a> {
    /// `captured` holds the bytes read from offset `at` to past the entry's
    /// header, which starts at `header`: the padding of the previous entry's
    /// data, then the extension headers, each a header block and its data.
    fn find(captured: &'a [u8], at: u64, header: u64) -> Result<Self, &'static str> {
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
fn check_pax_size<R: Read>(
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

/// Reads `entry` to its end. (`io::copy` would zero its 8 KiB buffer on every
/// call, that is for every entry, even one already read.)
fn skip_rest(entry: &mut impl Read, scratch: &mut [u8]) -> io::Result<()> {
    loop {
        match entry.read(scratch) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// PAX global header records (`g` entries) that apply to every later entry.
#[derive(Default)]
struct PaxGlobals {
    mtime: Option<rustix::fs::Timespec>,
    uid: Option<u64>,
    gid: Option<u64>,
}

impl PaxGlobals {
    /// Takes the data of one global header. `path` and `linkpath` are ignored
    /// (as in Go's archive/tar; GNU tar renames every later member); `size` is
    /// refused (GNU tar frames every later member with it, the `tar` crate and
    /// Go ignore it).
    fn update(&mut self, data: &[u8]) -> Result<(), String> {
        for record in pax::parse(data).map_err(|e| e.to_string())? {
            let value = record.value;
            match record.key {
                b"mtime" => {
                    self.mtime = Some(parse_pax_time(value).ok_or("invalid PAX mtime record")?)
                }
                b"uid" => self.uid = Some(pax::decimal(value).ok_or("invalid PAX uid record")?),
                b"gid" => self.gid = Some(pax::decimal(value).ok_or("invalid PAX gid record")?),
                b"size" => return Err("a PAX global header with a size record".into()),
                _ => {}
            }
        }
        Ok(())
    }
}

/// Parses a PAX time (`1700000000.25`, possibly negative) into a timespec.
fn parse_pax_time(v: &[u8]) -> Option<rustix::fs::Timespec> {
    let s = std::str::from_utf8(v).ok()?.trim();
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = int.parse().ok()?;
    let digits: String = frac.chars().take(9).collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let mut nanos: i64 = if digits.is_empty() {
        0
    } else {
        format!("{digits:0<9}").parse().ok()?
    };
    let mut secs = secs;
    if s.starts_with('-') && nanos > 0 {
        // -1.25 is 1.25 s before the epoch: -2 s + 0.75 s.
        secs -= 1;
        nanos = 1_000_000_000 - nanos;
    }
    Some(rustix::fs::Timespec {
        tv_sec: secs,
        tv_nsec: nanos,
    })
}

/// Entry types whose size field means nothing to other tools.
fn header_only(t: tar::EntryType) -> bool {
    use tar::EntryType::*;
    matches!(t, Link | Symlink | Char | Block | Directory | Fifo)
}

fn kind_of(t: tar::EntryType) -> EntryKind {
    use tar::EntryType::*;
    match t {
        Regular | Continuous | GNUSparse => EntryKind::File,
        Directory => EntryKind::Directory,
        Symlink => EntryKind::Symlink,
        Link => EntryKind::HardLink,
        Fifo => EntryKind::Fifo,
        Char => EntryKind::CharDevice,
        Block => EntryKind::BlockDevice,
        // GNU incremental dumps: a directory (its data is the listing).
        other if other.as_byte() == b'D' => EntryKind::Directory,
        other => EntryKind::Other(other.as_byte()),
    }
}

/// Collects what the applier needs from an entry's headers (ustar, GNU and
/// PAX): `records` are its PAX records, `name` and `link` the name and link
/// target they and the GNU long names give.
fn read_meta<R: Read>(
    entry: &tar::Entry<'_, R>,
    globals: &PaxGlobals,
    records: &[pax::Record<'_>],
    name: &[u8],
    link: Option<Vec<u8>>,
) -> io::Result<Meta> {
    let header = entry.header();
    let mut kind = kind_of(header.entry_type());
    // Pre-POSIX archives mark directories only by a trailing slash, as GNU tar
    // reads them (but a "file" named `/` does not get to change the root).
    if kind == EntryKind::File
        && header.entry_type() == tar::EntryType::Regular
        && name.ends_with(b"/")
        && apply::normalize(name).is_ok_and(|p| !p.is_empty())
    {
        kind = EntryKind::Directory;
    }
    let mut mtime = globals.mtime.or_else(|| {
        header.mtime().ok().map(|s| rustix::fs::Timespec {
            tv_sec: s as i64,
            tv_nsec: 0,
        })
    });
    // The `tar` crate wrote the first PAX uid and gid into the header; the
    // records below override them.
    let mut uid = globals.uid.or(header.uid().ok()).unwrap_or(0);
    let mut gid = globals.gid.or(header.gid().ok()).unwrap_or(0);
    // An empty mode field is mode 0, as GNU tar reads it.
    let mode = header.mode().unwrap_or(0);
    // Only nodes have device numbers; the `tar` crate formats an error message
    // (with the entry's name) for every empty field it is asked to read.
    let device = match kind {
        EntryKind::CharDevice | EntryKind::BlockDevice | EntryKind::Fifo => (
            header.device_major().ok().flatten().unwrap_or(0),
            header.device_minor().ok().flatten().unwrap_or(0),
        ),
        _ => (0, 0),
    };
    let mut xattrs = Vec::new();
    let mut pax_sparse = sparse::PaxSparse::default();
    let malformed = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    // Be as strict as GNU tar: a value it would not read makes other tools
    // see something else (the CVE-2025-62518 family). The last record of a
    // key wins, as in GNU tar.
    for record in records {
        let value = record.value;
        match record.key {
            // The caller took the name from the records already.
            b"path" | b"linkpath" => {}
            // Unreadable: refused (GNU tar reads a prefix, Go refuses).
            b"mtime" => {
                mtime = Some(
                    parse_pax_time(value).ok_or_else(|| malformed("invalid PAX mtime record"))?,
                )
            }
            b"uid" => {
                uid = pax::decimal(value).ok_or_else(|| malformed("invalid PAX uid record"))?
            }
            b"gid" => {
                gid = pax::decimal(value).ok_or_else(|| malformed("invalid PAX gid record"))?
            }
            key => {
                if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                    xattrs.push((name.to_vec(), value.to_vec()));
                } else {
                    pax_sparse.record(key, value)?;
                }
            }
        }
    }
    // Old-GNU sparse entries get their map in the loop.
    let sparse = if entry.header().entry_type() == tar::EntryType::GNUSparse {
        None
    } else if kind == EntryKind::File {
        pax_sparse.finish()?
    } else {
        None
    };
    Ok(Meta {
        sparse,
        kind,
        mode,
        uid,
        gid,
        mtime,
        link,
        device,
        xattrs,
        size: entry.size(),
    })
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
            explain_blank_size(&h.entry_size().unwrap_err())
        };
        let refused = "the size field of \"name\" is blank or starts with a NUL byte: refused, as \
                       tar readers disagree on its value (GNU tar reads 0, Go the digits after the \
                       NULs)";
        assert_eq!(explained(&[0; 12]), refused);
        assert_eq!(explained(b"           \0"), refused);
        assert_eq!(explained(b"\0\0\0\0\0\0\x000016\0"), refused);
        assert_eq!(
            explained(b"12x4\0\0\0\0\0\0\0\0"),
            "numeric field was not a number: 12x4 when getting size for name"
        );
    }

    #[test]
    fn pax_times() {
        let t = parse_pax_time(b"1700000000.25").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (1_700_000_000, 250_000_000));
        let t = parse_pax_time(b"-1.25").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (-2, 750_000_000));
        let t = parse_pax_time(b"42").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (42, 0));
        assert!(parse_pax_time(b"x").is_none());
        assert!(parse_pax_time(b"1.2x").is_none());
    }
}
