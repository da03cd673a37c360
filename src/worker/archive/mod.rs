//! Bytes -> entries: the stream ([`stream`]) framed member by member
//! ([`headers`]), each entry's name, metadata ([`meta`]) and data handed to a
//! visitor, after the refusals of ambiguous archives ([`frame`]) and the
//! limits ([`limits`]). Shared by the worker and the fuzzing harness; it
//! writes nothing.
//!
//! How an archive that tar readers read differently is taken is
//! [`Parsing`]'s choice: refused, or read as GNU tar reads it and noted.

mod frame;
mod headers;
mod limits;
pub(crate) mod meta;
mod not_tar;
pub(crate) mod pax;
pub(crate) mod sparse;
mod stream;

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::options::{Limit, Limits, Parsing};
use crate::report::Divergence;
use crate::wire::WireError;

use headers::{Framer, Headers, Next, Refused};
use limits::Counter;
pub(crate) use meta::Meta;
use meta::PaxGlobals;
use sparse::{Layout, Sparse};
use stream::{Data, Stream};

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
    parsing: Parsing,
    digest: bool,
    ratio_exceeded: &AtomicBool,
    visitor: &mut impl Visitor,
) -> Result<End, WireError> {
    let mut stream = Stream::new(reader, digest);
    let mut parser = Parser {
        framer: Framer::new(parsing),
        parsing,
        ratio_exceeded,
        counter: Counter::new(limits),
        globals: PaxGlobals::new(parsing),
        last_name: Vec::new(),
    };
    loop {
        let at = stream.offset();
        let next = parser
            .framer
            .next(&mut stream, parser.counter.extension_budget());
        match next.map_err(|refused| parser.refused(refused, &stream, at))? {
            Next::End => break,
            Next::Global(header, data) => parser.global_header(&header, &data, &stream)?,
            Next::Member(headers) => {
                let parsed = parser.parse(headers, &stream)?;
                parser.visit(&mut stream, parsed, visitor)?;
            }
        }
    }
    stream
        .drain()
        .map_err(|e| parser.read_error(&e, b"", &stream))?;
    if stream.offset() == 0 {
        return Err(WireError::NotTar(crate::error::NotTar::Empty));
    }
    Ok(End {
        tar_bytes: stream.offset(),
        diff_id: stream.digest(),
        layer_size: parser.counter.layer_size,
    })
}

/// An entry parsed from its headers, before its data.
struct Parsed {
    name: Vec<u8>,
    meta: Meta,
    /// Bytes of data in the archive (for an old-GNU sparse file, its chunks).
    stored: u64,
}

/// The archive loop's state between entries.
struct Parser<'a> {
    framer: Framer,
    parsing: Parsing,
    ratio_exceeded: &'a AtomicBool,
    counter: Counter<'a>,
    globals: PaxGlobals,
    /// The previous entry's name, for an error in the next header.
    last_name: Vec<u8>,
}

impl Parser<'_> {
    fn gnu(&self) -> bool {
        self.parsing == Parsing::GnuTar
    }

    /// The job's error for headers that could not be read from offset `at`.
    /// The very first header: say what the input is instead, if it is known.
    fn refused<R: Read>(&self, refused: Refused, stream: &Stream<R>, at: u64) -> WireError {
        match refused {
            Refused::Malformed(message) => self.malformed(message, stream),
            Refused::TooLarge => self.limit(Limit::MaxExtensionSize, b""),
            Refused::Read(e) => match self.read_error(&e, &self.last_name, stream) {
                WireError::Malformed { offset, message }
                    if at == 0 && not_tar::about_the_header(&e.to_string()) =>
                {
                    match not_tar::identify(stream.head()) {
                        Some(what) => WireError::NotTar(what),
                        None => WireError::Malformed { offset, message },
                    }
                }
                other => other,
            },
        }
    }

    /// A read error is a malformed archive, unless the decoder stopped on the
    /// compression-ratio limit.
    fn read_error<R: Read>(
        &self,
        e: &dyn std::fmt::Display,
        entry: &[u8],
        stream: &Stream<R>,
    ) -> WireError {
        if self.ratio_exceeded.load(Ordering::Relaxed) {
            self.limit(Limit::MaxCompressionRatio, entry)
        } else {
            self.malformed(frame::explain(&e.to_string()), stream)
        }
    }

    /// The archive is refused at the stream's offset.
    fn malformed<R: Read>(&self, message: String, stream: &Stream<R>) -> WireError {
        WireError::Malformed {
            offset: stream.offset(),
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

    /// Takes in a PAX global header (counted as an entry).
    fn global_header<R: Read>(
        &mut self,
        header: &tar::Header,
        data: &[u8],
        stream: &Stream<R>,
    ) -> Result<(), WireError> {
        let size = data.len() as u64;
        self.counter
            .entry(0, size, size)
            .map_err(|limit| self.limit(limit, b""))?;
        let name = header.path_bytes();
        self.counter
            .global_header(size)
            .map_err(|limit| self.limit(limit, &name))?;
        self.globals
            .update(data)
            .map_err(|message| self.malformed(message, stream))
    }

    /// Reads an entry's headers: its name, data size and metadata, refused
    /// where tar readers disagree (or read as GNU tar does), counted against
    /// the limits.
    fn parse<R: Read>(
        &mut self,
        headers: Headers,
        stream: &Stream<R>,
    ) -> Result<Parsed, WireError> {
        let records = match &headers.pax {
            Some(data) => pax::parse(data).map_err(|e| self.malformed(e.to_string(), stream))?,
            None => Vec::new(),
        };
        let mut notes = headers.notes.clone();
        let (mut name, mut link) = meta::names(&headers, &records);
        if self.gnu() && meta::cut_at_nul(&mut name, &mut link) {
            note(&mut notes, Divergence::CutAtNul);
        }
        let header = &headers.header;
        let (mut size, blank) = self
            .data_size(&headers, &records)
            .map_err(|refused| self.refused(refused, stream, u64::MAX))?;
        if blank {
            note(&mut notes, Divergence::BlankSize);
        }
        let entry_type = header.entry_type();
        let kind = meta::kind_of_named(entry_type, &name);
        if size > 0 && frame::header_only(entry_type, &name) {
            if !self.gnu() {
                return Err(self.malformed(frame::carries_data(kind, &name, size), stream));
            }
            // GNU tar (and Go, Python) read the next header right after.
            size = 0;
            note(&mut notes, Divergence::SizeIgnored);
        }
        // Old-GNU sparse: `real` is the apparent size, `size` what is stored.
        let real = match entry_type == tar::EntryType::GNUSparse {
            true => header.as_gnu().map_or(Ok(0), |g| g.real_size()),
            false => Ok(size),
        };
        let real = real.map_err(|e| self.read_error(&e, &name, stream))?;
        self.counter
            .entry(headers.extension_size, real, size)
            .map_err(|limit| self.limit(limit, &name))?;
        let mut meta = meta::read_meta(header, &self.globals, &records, kind, link, size)
            .map_err(|e| self.read_error(&e, &name, stream))?;
        if entry_type == tar::EntryType::GNUSparse {
            let map = sparse::old_gnu_map(header, &headers.sparse_blocks, size, real)
                .map_err(|m| self.malformed(m.into(), stream))?;
            meta.sparse = Some(Sparse {
                layout: Layout::Map(map),
                real_size: real,
                name: None,
            });
        }
        if let Some(sparse) = &mut meta.sparse {
            if self.gnu() && sparse.end_at_map() {
                note(&mut notes, Divergence::SparseEndsWithMap);
            }
        }
        for divergence in notes {
            note(&mut meta.notes, divergence);
        }
        drop(records);
        self.named(name, meta, size)
    }

    /// The entry's data size, and whether a blank size field was read as 0.
    /// A PAX `size` record wins over the header's field (the last one, as
    /// GNU tar); strictly, the `tar` crate's reading of the records must
    /// agree (it frames with the first record it can split).
    fn data_size(
        &mut self,
        headers: &Headers,
        records: &[pax::Record<'_>],
    ) -> Result<(u64, bool), Refused> {
        let (field, blank) = headers::size_field(&headers.header, self.parsing)?;
        let mut size = None;
        for record in records.iter().filter(|r| r.key == b"size") {
            size = Some(
                pax::decimal(record.value)
                    .ok_or_else(|| Refused::Malformed("invalid PAX size record".into()))?,
            );
        }
        let ours = size.unwrap_or(field);
        if ours.checked_next_multiple_of(512).is_none() {
            return Err(Refused::Malformed("size overflow".into()));
        }
        if let (Some(data), false) = (&headers.pax, self.gnu()) {
            frame::check_pax_size(ours, field, data).map_err(Refused::Malformed)?;
        }
        Ok((ours, blank))
    }

    /// The entry's final name (a PAX sparse file's real name), checked
    /// against the limits.
    fn named(&mut self, name: Vec<u8>, meta: Meta, stored: u64) -> Result<Parsed, WireError> {
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
        Ok(Parsed { name, meta, stored })
    }

    /// Hands the entry to `visitor`, skips what it left unread, and tells it.
    fn visit<R: Read>(
        &mut self,
        stream: &mut Stream<R>,
        parsed: Parsed,
        visitor: &mut impl Visitor,
    ) -> Result<(), WireError> {
        let Parsed {
            name,
            mut meta,
            stored,
        } = parsed;
        let mut data = Data::new(stream, stored);
        if let Err(message) = self.map_in_data(&mut meta, &mut data) {
            return Err(self.stopped(Stop::Data(message), &name, stream));
        }
        let mut entry = Entry {
            name,
            meta,
            data: &mut data,
        };
        let visited = visitor.entry(&mut entry);
        let Entry { name, meta, .. } = entry;
        let outcome = match visited {
            Ok(outcome) => outcome,
            Err(stop) => return Err(self.stopped(stop, &name, stream)),
        };
        // Whatever the visitor did not read (skipped and rejected entries).
        let padding = data
            .finish()
            .map_err(|e| self.read_error(&e, &name, stream))?;
        visitor
            .done(&name, &meta, outcome)
            .map_err(|stop| self.stopped(stop, &name, stream))?;
        stream
            .skip(padding)
            .map_err(|e| self.read_error(&e, &name, stream))?;
        self.last_name = name;
        Ok(())
    }

    /// A PAX 1.0 sparse file's map, read from the start of its `data`: the
    /// applier gets the chunks that follow, with the map.
    fn map_in_data(&self, meta: &mut Meta, data: &mut impl Read) -> Result<(), String> {
        let Some(sparse) = &mut meta.sparse else {
            return Ok(());
        };
        if sparse.layout != Layout::MapInData {
            return Ok(());
        }
        let (map, _) = sparse::read_map(data).map_err(|e| e.to_string())?;
        sparse::check(&map, sparse.real_size).map_err(|e| e.to_string())?;
        sparse.layout = Layout::Map(map);
        if self.gnu() && sparse.end_at_map() {
            note(&mut meta.notes, Divergence::SparseEndsWithMap);
        }
        Ok(())
    }

    /// The job's error for a visitor's stop on entry `name`.
    fn stopped<R: Read>(&self, stop: Stop, name: &[u8], stream: &Stream<R>) -> WireError {
        match stop {
            Stop::Data(message) => {
                let shown = frame::quoted(&String::from_utf8_lossy(name));
                self.read_error(&format!("{shown}: {message}"), name, stream)
            }
            Stop::Fatal(error) => error,
        }
    }
}

/// Adds `divergence` to `notes` once.
fn note(notes: &mut Vec<Divergence>, divergence: Divergence) {
    if !notes.contains(&divergence) {
        notes.push(divergence);
    }
}
