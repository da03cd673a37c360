//! The archive loop: one parser (the `tar` crate, driven entry by entry), the
//! limits, and the applier. Shared by the worker and the fuzzing harness.

use std::cell::Cell;
use std::io::{self, Read};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};

use sha2::{Digest, Sha256};

use crate::options::Limits;
use crate::protocol::{WireError, WireReport};
use crate::report::EntryKind;

use super::apply::{self, Applier, Fatal, Meta};
use super::layer;
use super::sparse;

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
/// (extension headers are read whole into memory by the `tar` crate).
struct Counted<R> {
    inner: R,
    offset: Rc<Cell<u64>>,
    digest: Option<Sha256>,
    budget: Rc<Cell<u64>>,
    over_budget: Rc<Cell<bool>>,
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
    let reader = Counted {
        inner: reader,
        offset: offset.clone(),
        digest: digest.then(Sha256::new),
        budget: budget.clone(),
        over_budget: over_budget.clone(),
    };
    let mut layer_size: u64 = 0;
    let mut archive = tar::Archive::new(reader);
    // A read error is a malformed archive, unless the decoder stopped on the
    // compression-ratio limit.
    let read_error = |e: &dyn std::fmt::Display, entry: &[u8]| {
        if over_budget.get() {
            // Tripped before the entry's own header was read: no name yet.
            WireError::Limit {
                limit: "max_extension_size".into(),
                value: limits.max_extension_size,
                entry: Vec::new(),
            }
        } else if ratio_exceeded.load(Ordering::Relaxed) {
            WireError::Limit {
                limit: "max_compression_ratio".into(),
                value: limits.max_compression_ratio,
                entry: entry.to_vec(),
            }
        } else {
            WireError::Malformed {
                offset: offset.get(),
                message: e.to_string(),
            }
        }
    };
    let limit = |limit: &str, value: u64, entry: &[u8]| WireError::Limit {
        limit: limit.into(),
        value,
        entry: entry.to_vec(),
    };
    let mut entries = archive.entries().map_err(|e| read_error(&e, b""))?;
    let mut globals = PaxGlobals::default();
    let mut count: u64 = 0;
    let mut total: u64 = 0;
    let mut last_path: Vec<u8> = Vec::new();
    let mut next_header: u64 = 0;
    let mut scratch = vec![0u8; 8192];
    loop {
        // Padding, extension headers (with their header blocks) and the entry's
        // header: stop reading once they exceed the limit.
        budget.set(limits.max_extension_size.saturating_add(2048));
        let next = entries.next();
        budget.set(u64::MAX);
        let mut entry = match next {
            None => break,
            Some(Ok(entry)) => entry,
            Some(Err(e)) => return Err(read_error(&e, &last_path)),
        };
        let raw_path = entry.path_bytes().into_owned();
        // Between the end of the previous entry's data and this header: the
        // extension headers (PAX, GNU long names) describing this entry, less
        // the first one's own header block.
        let extensions = entry
            .raw_header_position()
            .saturating_sub(next_header)
            .saturating_sub(512);
        let stored = match entry.header().entry_type() {
            // The crate reports a sparse file's real size; the archive holds less.
            tar::EntryType::GNUSparse => entry.header().entry_size().unwrap_or(0),
            _ => entry.size(),
        };
        next_header = entry
            .raw_file_position()
            .saturating_add(stored)
            .saturating_add(511)
            & !511;
        if extensions > limits.max_extension_size {
            return Err(limit(
                "max_extension_size",
                limits.max_extension_size,
                &raw_path,
            ));
        }
        count += 1;
        if count > limits.max_entries {
            return Err(limit("max_entries", limits.max_entries, &raw_path));
        }
        let size = entry.size();
        layer_size = layer_size.saturating_add(size);
        if size > limits.max_entry_size {
            return Err(limit("max_entry_size", limits.max_entry_size, &raw_path));
        }
        total = total.saturating_add(size);
        if total > limits.max_total_size {
            return Err(limit("max_total_size", limits.max_total_size, &raw_path));
        }
        // Parser differentials (the CVE-2025-62518 family) refused outright:
        let malformed = |message: String| WireError::Malformed {
            offset: offset.get(),
            message,
        };
        let entry_type = entry.header().entry_type();
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
                return Err(limit(
                    "max_extension_size",
                    limits.max_extension_size,
                    &raw_path,
                ));
            }
            let mut records = Vec::new();
            entry
                .read_to_end(&mut records)
                .map_err(|e| read_error(&e, &raw_path))?;
            // A PAX or GNU extension header before a global header: the `tar`
            // crate attaches it to the global header, GNU tar to the next
            // member. (With its data read, the entry's own records are empty.)
            let attached = entry
                .pax_extensions()
                .ok()
                .flatten()
                .is_some_and(|mut records| records.next().is_some())
                || entry.path_bytes() != entry.header().path_bytes()
                || entry.link_name_bytes() != entry.header().link_name_bytes();
            if attached {
                return Err(malformed(
                    "an extended header (PAX or GNU) precedes a PAX global header".into(),
                ));
            }
            globals.update(&records);
            continue;
        }
        let mut meta = read_meta(&mut entry, &globals).map_err(|e| read_error(&e, &raw_path))?;
        if meta.kind == EntryKind::Directory && entry_type == tar::EntryType::Regular && size > 0 {
            // A pre-POSIX directory (a "file" named with a trailing slash) that
            // carries data: the same disagreement as for header-only types.
            return Err(malformed(format!(
                "directory entry {:?} carries {size} bytes of data",
                String::from_utf8_lossy(&raw_path)
            )));
        }
        // PAX sparse files carry their real name and size in records; a PAX
        // `path` wins over a GNU long name, as in GNU tar.
        let raw_path = match (
            meta.sparse.as_ref().and_then(|s| s.name.clone()),
            meta.pax_path.take(),
        ) {
            (Some(name), _) | (None, Some(name)) => name,
            (None, None) => raw_path,
        };
        if let Some(real) = meta.sparse.as_ref().map(|s| s.real_size) {
            if real > limits.max_entry_size {
                return Err(limit("max_entry_size", limits.max_entry_size, &raw_path));
            }
            total = total.saturating_add(real.saturating_sub(size));
            if total > limits.max_total_size {
                return Err(limit("max_total_size", limits.max_total_size, &raw_path));
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
                return Err(limit("max_path_length", limits.max_path_length, &raw_path));
            }
            let depth = path.split(|b| *b == b'/').count() as u64;
            if depth > limits.max_path_depth {
                return Err(limit("max_path_depth", limits.max_path_depth, &raw_path));
            }
        }
        let outcome = match applier.apply(&raw_path, &meta, &mut entry) {
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
                crate::protocol::bounded_path(path),
                crate::protocol::bounded_text(message),
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
    fn update(&mut self, records: &[u8]) {
        for ext in tar::PaxExtensions::new(records).flatten() {
            let value = ext.value_bytes();
            match ext.key_bytes() {
                b"mtime" => self.mtime = parse_pax_time(value),
                b"uid" => self.uid = parse_decimal(value),
                b"gid" => self.gid = parse_decimal(value),
                _ => {}
            }
        }
    }
}

fn parse_decimal(v: &[u8]) -> Option<u64> {
    std::str::from_utf8(v).ok()?.trim().parse().ok()
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

/// Collects what the applier needs from an entry's headers (ustar, GNU and PAX).
fn read_meta<R: Read>(entry: &mut tar::Entry<'_, R>, globals: &PaxGlobals) -> io::Result<Meta> {
    let header = entry.header();
    let mut kind = kind_of(header.entry_type());
    // Pre-POSIX archives mark directories only by a trailing slash, as GNU tar
    // reads them (but a "file" named `/` does not get to change the root).
    if kind == EntryKind::File
        && header.entry_type() == tar::EntryType::Regular
        && entry.path_bytes().ends_with(b"/")
        && apply::normalize(&entry.path_bytes()).is_ok_and(|p| !p.is_empty())
    {
        kind = EntryKind::Directory;
    }
    let mut mtime = globals.mtime.or_else(|| {
        header.mtime().ok().map(|s| rustix::fs::Timespec {
            tv_sec: s as i64,
            tv_nsec: 0,
        })
    });
    let mut uid = header.uid().ok().or(globals.uid).unwrap_or(0);
    let mut gid = header.gid().ok().or(globals.gid).unwrap_or(0);
    if let Some(g) = globals.uid {
        uid = g;
    }
    if let Some(g) = globals.gid {
        gid = g;
    }
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
    let (mut pax_path, mut pax_linkpath) = (None, None);
    if let Some(extensions) = entry.pax_extensions()? {
        let malformed = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
        for ext in extensions {
            // Be as strict as GNU tar: a record the parser skipped, or a size it
            // could not read (and so replaced by the header's), would make other
            // tools see a different archive (the CVE-2025-62518 family).
            let ext = ext.map_err(|_| malformed("malformed PAX extended header record"))?;
            let key = ext.key_bytes();
            if key == b"size" && parse_decimal(ext.value_bytes()).is_none() {
                return Err(malformed("invalid PAX size record"));
            }
            if key == b"path" {
                pax_path = Some(ext.value_bytes().to_vec());
            } else if key == b"linkpath" {
                pax_linkpath = Some(ext.value_bytes().to_vec());
            } else if key == b"mtime" {
                // Unreadable: refused (GNU tar reads a prefix, Go refuses).
                mtime = Some(
                    parse_pax_time(ext.value_bytes())
                        .ok_or_else(|| malformed("invalid PAX mtime record"))?,
                );
            } else if key == b"uid" {
                uid = parse_decimal(ext.value_bytes()).unwrap_or(uid);
            } else if key == b"gid" {
                gid = parse_decimal(ext.value_bytes()).unwrap_or(gid);
            } else if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                xattrs.push((name.to_vec(), ext.value_bytes().to_vec()));
            } else {
                pax_sparse.record(key, ext.value_bytes())?;
            }
        }
    }
    let link = pax_linkpath.or_else(|| entry.link_name_bytes().map(|l| l.into_owned()));
    let sparse = if entry.header().entry_type() == tar::EntryType::GNUSparse {
        Some(sparse::Sparse {
            layout: sparse::Layout::Expanded,
            real_size: entry.size(),
            name: None,
        })
    } else if kind == EntryKind::File {
        pax_sparse.finish()?
    } else {
        None
    };
    Ok(Meta {
        sparse,
        pax_path,
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
