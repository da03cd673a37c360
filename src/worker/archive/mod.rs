//! Bytes -> entries: one parser (the `tar` crate, driven entry by entry)
//! yields each entry's name, metadata ([`meta`]) and data to a visitor, after
//! the refusals of ambiguous archives ([`frame`]) and the limits ([`limits`]).
//! Shared by the worker and the fuzzing harness; it writes nothing.
//!
//! The `tar` crate frames the archive (headers, sizes, GNU long names, old-GNU
//! sparse maps); PAX records are read by [`pax`], from the bytes the crate
//! read to reach each header, because the crate splits them at newlines.
//! Where the crate's reading of a PAX `size` differs from the records', the
//! archive is refused: the crate frames the data with its own.

mod frame;
mod limits;
pub(crate) mod meta;
mod not_tar;
pub(crate) mod pax;
pub(crate) mod sparse;

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::options::{Limit, Limits};
use crate::report::EntryKind;
use crate::wire::WireError;

use frame::{Counted, Extensions, Framing};
use limits::Counter;
pub(crate) use meta::Meta;
use meta::PaxGlobals;
use sparse::{Chunks, Layout, Sparse};

/// One entry, as the visitor sees it.
pub(crate) struct Entry<'a> {
    /// The name as the archive gives it (from PAX records, a GNU long name,
    /// the header, or a sparse file's real name).
    pub name: Vec<u8>,
    pub meta: Meta,
    /// The entry's data (for old-GNU sparse files, the stored chunks only).
    /// Whatever the visitor leaves unread is skipped.
    pub data: &'a mut dyn Read,
}

/// What the archive hands its entries to.
pub(crate) trait Visitor {
    /// What [`Visitor::entry`] leaves for [`Visitor::done`].
    type Outcome;
    /// Takes in one entry; what it leaves of the data unread is skipped.
    fn entry(&mut self, entry: &mut Entry<'_>) -> Result<Self::Outcome, Stop>;
    /// The entry's data has been read to its end (after [`Visitor::entry`]).
    fn done(&mut self, name: &[u8], meta: &Meta, outcome: Self::Outcome) -> Result<(), Stop>;
}

/// Why a visitor stops the archive.
pub(crate) enum Stop {
    /// The entry's data could not be read (the archive ends inside it, or the
    /// decoder failed): reported as the archive's error, at its offset.
    Data(String),
    /// Any other fatal error, as it is.
    Fatal(WireError),
}

/// What a tar stream read to its end leaves behind.
pub(crate) struct End {
    /// Bytes of the uncompressed tar stream.
    pub tar_bytes: u64,
    /// `sha256:<hex>` of that stream, when asked for.
    pub diff_id: Option<String>,
    /// The sum of every entry's data size.
    pub layer_size: u64,
}

/// Parses the tar stream from `reader`, checks every limit, and hands each
/// entry to `visitor`. Reads the stream to its end. `ratio_exceeded` tells a
/// decoder's ratio stop from a malformed stream; `digest` asks for a
/// `diff_id`.
pub(crate) fn read<R: Read>(
    reader: R,
    limits: &Limits,
    digest: bool,
    ratio_exceeded: &AtomicBool,
    visitor: &mut impl Visitor,
) -> Result<End, WireError> {
    let framing = Framing::new();
    let mut archive = tar::Archive::new(Counted::new(reader, &framing, digest));
    let mut parser = Parser {
        framing: &framing,
        ratio_exceeded,
        counter: Counter::new(limits),
        globals: PaxGlobals::default(),
        captured: Vec::new(),
        last_name: Vec::new(),
        scratch: vec![0u8; 8192],
    };
    let mut entries = archive.entries().map_err(|e| parser.read_error(&e, b""))?;
    while let Some((mut entry, at)) = parser.next(&mut entries)? {
        if let Some(parsed) = parser.parse(&mut entry, at)? {
            parser.visit(&mut entry, parsed, visitor)?;
        }
    }
    // Read to the end of the stream: trailing blocks, and the compressed stream's
    // own checks (gzip's CRC, for example), which come last.
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(|e| parser.read_error(&e, b""))?;
    if framing.offset() == 0 {
        return Err(WireError::NotTar(crate::error::NotTar::Empty));
    }
    Ok(End {
        tar_bytes: framing.offset(),
        diff_id: rest.digest(),
        layer_size: parser.counter.layer_size,
    })
}

/// An entry parsed from its headers, before its data.
struct Parsed {
    name: Vec<u8>,
    meta: Meta,
    /// An old-GNU sparse file's map: its data comes through [`Chunks`].
    old_gnu_map: Option<Vec<(u64, u64)>>,
}

/// The archive loop's state between entries.
struct Parser<'a> {
    framing: &'a Framing,
    ratio_exceeded: &'a AtomicBool,
    counter: Counter<'a>,
    globals: PaxGlobals,
    /// What the parser read to reach the current entry.
    captured: Vec<u8>,
    /// The previous entry's name, for an error in the next header.
    last_name: Vec<u8>,
    /// For skipping what the visitor did not read.
    scratch: Vec<u8>,
}

impl Parser<'_> {
    /// A read error is a malformed archive, unless the decoder stopped on the
    /// compression-ratio limit, or the extension headers ran over theirs.
    fn read_error(&self, e: &dyn std::fmt::Display, entry: &[u8]) -> WireError {
        if self.framing.over_budget() {
            // Tripped before the entry's own header was read: no name yet.
            self.limit(Limit::MaxExtensionSize, b"")
        } else if self.ratio_exceeded.load(Ordering::Relaxed) {
            self.limit(Limit::MaxCompressionRatio, entry)
        } else {
            self.malformed(frame::explain(&e.to_string()))
        }
    }

    /// The archive is refused at the current offset.
    fn malformed(&self, message: String) -> WireError {
        WireError::Malformed {
            offset: self.framing.offset(),
            message,
        }
    }

    fn limit(&self, limit: Limit, entry: &[u8]) -> WireError {
        WireError::Limit {
            limit,
            value: self.counter.value(limit),
            entry: entry.to_vec(),
        }
    }

    /// The next entry, and the offset from which its headers were captured.
    /// Padding, extension headers (with their header blocks) and the entry's
    /// header: reading stops once they exceed the limit.
    fn next<'e, R: Read>(
        &mut self,
        entries: &mut tar::Entries<'e, R>,
    ) -> Result<Option<(tar::Entry<'e, R>, u64)>, WireError> {
        let budget = self.counter.header_budget();
        let (next, at) = self
            .framing
            .capture(budget, &mut self.captured, || entries.next());
        match next {
            None => Ok(None),
            Some(Ok(entry)) => Ok(Some((entry, at))),
            Some(Err(e)) => match self.read_error(&e, &self.last_name) {
                // The very first header: say what the input is instead.
                WireError::Malformed { offset, message }
                    if at == 0 && not_tar::about_the_header(&e.to_string()) =>
                {
                    Err(match not_tar::identify(&self.captured) {
                        Some(what) => WireError::NotTar(what),
                        None => WireError::Malformed { offset, message },
                    })
                }
                other => Err(other),
            },
        }
    }

    /// Reads an entry's headers (captured from offset `at`): its name and
    /// metadata, refused where tar readers disagree, counted against the
    /// limits. `None` for a PAX global header (taken in, not an entry).
    fn parse<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        at: u64,
    ) -> Result<Option<Parsed>, WireError> {
        let malformed = |message: String| self.malformed(message);
        let found = Extensions::find(&self.captured, at, entry.raw_header_position())
            .map_err(|m| malformed(m.into()))?;
        let records = match found.pax {
            Some(data) => pax::parse(data).map_err(|e| malformed(e.to_string()))?,
            None => Vec::new(),
        };
        let (name, link) = meta::names(entry, &records, found.long_name, found.long_link);
        if let Some(data) = found.pax {
            frame::check_pax_size(entry, &records, data).map_err(malformed)?;
        }
        let size = entry.size();
        let entry_type = entry.header().entry_type();
        // Old-GNU sparse: `size` is the apparent size, the header's own field
        // what the archive stores (checked against the map below).
        let stored = match entry_type == tar::EntryType::GNUSparse {
            true => entry.header().entry_size().unwrap_or(size),
            false => size,
        };
        self.counter
            .entry(found.size, size, stored)
            .map_err(|limit| self.limit(limit, &name))?;
        frame::check_type(entry_type, size, &name).map_err(|m| self.malformed(m))?;
        if entry_type.is_pax_global_extensions() {
            let headers = found.headers;
            drop(records);
            self.global_header(entry, headers, &name)?;
            return Ok(None);
        }
        let meta = meta::read_meta(entry, &self.globals, &records, &name, link)
            .map_err(|e| self.read_error(&e, &name))?;
        drop(records);
        self.data_layout(entry, at, name, meta).map(Some)
    }

    /// Takes in a PAX global header (`headers`: how many extension headers
    /// came before it).
    fn global_header<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        headers: usize,
        name: &[u8],
    ) -> Result<(), WireError> {
        self.counter
            .global_header(entry.size())
            .map_err(|limit| self.limit(limit, name))?;
        // A PAX or GNU extension header before a global header: the `tar`
        // crate attaches it to the global header, GNU tar to the next member.
        if headers > 0 {
            return Err(self
                .malformed("an extended header (PAX or GNU) precedes a PAX global header".into()));
        }
        let mut data = Vec::new();
        entry
            .read_to_end(&mut data)
            .map_err(|e| self.read_error(&e, name))?;
        self.globals
            .update(&data)
            .map_err(|message| self.malformed(message))
    }

    /// Where the entry's data goes: old-GNU sparse maps (read again from the
    /// header blocks captured from `at`), the real name and size of sparse
    /// files, checked against the limits with the final name.
    fn data_layout<R: Read>(
        &mut self,
        entry: &tar::Entry<'_, R>,
        at: u64,
        name: Vec<u8>,
        mut meta: Meta,
    ) -> Result<Parsed, WireError> {
        let entry_type = entry.header().entry_type();
        let size = entry.size();
        // Old-GNU sparse: the visitor gets the stored chunks only (see `Chunks`).
        let old_gnu_map = if entry_type == tar::EntryType::GNUSparse {
            let map = sparse::old_gnu_map(entry, &self.captured, at)
                .map_err(|m| self.malformed(m.into()))?;
            sparse::check(&map, size).map_err(|e| self.malformed(e.to_string()))?;
            meta.sparse = Some(Sparse {
                layout: Layout::Map(map.clone()),
                real_size: size,
                name: None,
            });
            Some(map)
        } else {
            None
        };
        if meta.kind == EntryKind::Directory && entry_type == tar::EntryType::Regular && size > 0 {
            // A pre-POSIX directory (a "file" named with a trailing slash) that
            // carries data: the same disagreement as for header-only types.
            return Err(self.malformed(format!(
                "directory entry {:?} carries {size} bytes of data",
                String::from_utf8_lossy(&name)
            )));
        }
        // PAX sparse files carry their real name and size in records. (The
        // PAX `path`, when there is one, is `name` already.)
        let name = match meta.sparse.as_ref().and_then(|s| s.name.clone()) {
            Some(real) => real,
            None => name,
        };
        if let Some(real) = meta.sparse.as_ref().map(|s| s.real_size) {
            self.counter
                .sparse(real)
                .map_err(|limit| self.limit(limit, &name))?;
        }
        self.counter
            .name(&name)
            .map_err(|limit| self.limit(limit, &name))?;
        Ok(Parsed {
            name,
            meta,
            old_gnu_map,
        })
    }

    /// Hands the entry to `visitor`, skips what it left unread, and tells it.
    fn visit<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        parsed: Parsed,
        visitor: &mut impl Visitor,
    ) -> Result<(), WireError> {
        let Parsed {
            name,
            meta,
            old_gnu_map,
        } = parsed;
        let (visited, name, meta) = match old_gnu_map {
            Some(map) => {
                let data = &mut Chunks::new(entry, map);
                let mut entry = Entry { name, meta, data };
                (visitor.entry(&mut entry), entry.name, entry.meta)
            }
            None => {
                let data = &mut *entry;
                let mut entry = Entry { name, meta, data };
                (visitor.entry(&mut entry), entry.name, entry.meta)
            }
        };
        let outcome = visited.map_err(|stop| self.stopped(stop, &name))?;
        // Whatever the visitor did not read (skipped and rejected entries).
        skip_rest(entry, &mut self.scratch).map_err(|e| self.read_error(&e, &name))?;
        visitor
            .done(&name, &meta, outcome)
            .map_err(|stop| self.stopped(stop, &name))?;
        self.last_name = name;
        Ok(())
    }

    /// The job's error for a visitor's stop on entry `name`.
    fn stopped(&self, stop: Stop, name: &[u8]) -> WireError {
        match stop {
            Stop::Data(message) => {
                let shown = frame::quoted(&String::from_utf8_lossy(name));
                self.read_error(&format!("{shown}: {message}"), name)
            }
            Stop::Fatal(error) => error,
        }
    }
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
