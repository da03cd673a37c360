//! Framing: from the stream's blocks to one member's headers — the extension
//! headers before it (PAX `x`, GNU long names `L` and `K`), its own header,
//! an old-GNU sparse file's extension blocks — with the header checks of
//! [`Parsing`]: refused where tar readers frame an archive differently
//! (`Strict`), read as GNU tar reads it (`GnuTar`), noted.
//!
//! sandtar frames archives itself rather than through the `tar` crate's
//! `Archive` so that both readings exist: the crate refuses some archives GNU
//! tar reads (repeated extension headers) and reads others differently
//! (header-only entries with a size). Its `Header` still decodes the fields.

use std::io::{self, Read};

use crate::options::Parsing;
use crate::report::Divergence;

use super::stream::{padding, Stream, BLOCK};

/// What the parser finds next.
pub(super) enum Next {
    /// A member: its headers; its data follows in the stream.
    Member(Headers),
    /// A PAX global header's records (read whole), with its header.
    Global(Box<tar::Header>, Vec<u8>),
    /// The end of the archive (a zero block, or the end of the stream).
    End,
}

/// A member's headers.
pub(super) struct Headers {
    pub header: Box<tar::Header>,
    /// The data of its PAX extended header.
    pub pax: Option<Vec<u8>>,
    /// Its GNU long name and long link name, as stored (a trailing NUL kept).
    pub long_name: Option<Vec<u8>>,
    pub long_link: Option<Vec<u8>>,
    /// An old-GNU sparse file's extension blocks (after its header).
    pub sparse_blocks: Vec<[u8; BLOCK]>,
    /// Bytes of extension headers before it, less the first one's header
    /// block, and its sparse extension blocks (`max_extension_size`).
    pub extension_size: u64,
    /// How GNU-only readings shaped it.
    pub notes: Vec<Divergence>,
}

/// Why the headers could not be read.
pub(super) enum Refused {
    /// Malformed, or framed differently by tar readers: the message says how.
    Malformed(String),
    /// The extension headers exceed `max_extension_size`.
    TooLarge,
    /// The stream failed under the parser (a decoder's error, a block cut
    /// short), or a field of the header is unreadable: the crate's message.
    Read(io::Error),
}

impl From<io::Error> for Refused {
    fn from(e: io::Error) -> Self {
        Refused::Read(e)
    }
}

/// Extension headers read for the member to come.
#[derive(Default)]
struct Pending {
    pax: Option<Vec<u8>>,
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
    /// Extension headers so far.
    count: usize,
    /// Their blocks and data, less the first one's header block.
    size: u64,
    notes: Vec<Divergence>,
}

impl Pending {
    fn any(&self) -> bool {
        self.pax.is_some() || self.long_name.is_some() || self.long_link.is_some()
    }

    fn note(&mut self, note: Divergence) {
        if !self.notes.contains(&note) {
            self.notes.push(note);
        }
    }
}

/// Reads members' headers, one after the other.
pub(super) struct Framer {
    parsing: Parsing,
    /// Extension headers that wait for their member (across a global header).
    pending: Pending,
}

impl Framer {
    pub(super) fn new(parsing: Parsing) -> Self {
        Framer {
            parsing,
            pending: Pending::default(),
        }
    }

    fn gnu(&self) -> bool {
        self.parsing == Parsing::GnuTar
    }

    /// The next member, global header or end; `budget` bounds the extension
    /// headers (`max_extension_size`).
    pub(super) fn next<R: Read>(
        &mut self,
        stream: &mut Stream<R>,
        budget: u64,
    ) -> Result<Next, Refused> {
        loop {
            let Some(block) = stream.block()? else {
                return self.end();
            };
            if block.iter().all(|b| *b == 0) {
                return self.end();
            }
            let header = Box::new(tar::Header::from_byte_slice(&block).clone());
            self.checksum(&header)?;
            let Some((kind, unmarked)) = Extension::of(&header, self.gnu())? else {
                return self.member(stream, header, budget).map(Next::Member);
            };
            if unmarked {
                self.pending.note(Divergence::UnmarkedExtension);
            }
            let (size, blank) = size_field(&header, self.parsing)?;
            if blank {
                self.pending.note(Divergence::BlankSize);
            }
            if kind == Extension::Global {
                if self.pending.any() {
                    if !self.gnu() {
                        return Err(Refused::Malformed(
                            "an extended header (PAX or GNU) precedes a PAX global header".into(),
                        ));
                    }
                    self.pending.note(Divergence::ExtensionAcrossGlobal);
                }
                if size > budget {
                    return Err(Refused::TooLarge);
                }
                let data = stream.data_whole(size)?;
                return Ok(Next::Global(header, data));
            }
            let first = self.pending.count == 0;
            self.pending.count += 1;
            let blocks = size.saturating_add(padding(size)).saturating_add(if first {
                0
            } else {
                BLOCK as u64
            });
            self.pending.size = self.pending.size.saturating_add(blocks);
            if self.pending.size > budget {
                return Err(Refused::TooLarge);
            }
            let data = stream.data_whole(size)?;
            self.extension(kind, data)?;
        }
    }

    /// Takes in one extension header's data.
    fn extension(&mut self, kind: Extension, data: Vec<u8>) -> Result<(), Refused> {
        let (slot, twice) = match kind {
            Extension::Pax => (
                &mut self.pending.pax,
                "two pax extensions entries describing the same member",
            ),
            Extension::LongName => (
                &mut self.pending.long_name,
                "two long name entries describing the same member",
            ),
            Extension::LongLink => (
                &mut self.pending.long_link,
                "two long link name entries describing the same member",
            ),
            Extension::Global => unreachable!("global headers are returned"),
        };
        let repeated = slot.is_some();
        *slot = Some(data);
        if repeated {
            if !self.gnu() {
                return Err(Refused::Malformed(twice.into()));
            }
            // GNU tar keeps the last one of each kind.
            self.pending.note(Divergence::RepeatedExtension);
        }
        Ok(())
    }

    /// The end of the archive: extension headers with no member after them
    /// are dropped by GNU tar, refused by the `tar` crate and Go.
    fn end(&mut self) -> Result<Next, Refused> {
        if self.pending.any() && !self.gnu() {
            return Err(Refused::Malformed(
                "an extended header (PAX or GNU) with no member after it".into(),
            ));
        }
        self.pending = Pending::default();
        Ok(Next::End)
    }

    /// The header's checksum: the sum of its bytes, the checksum field read
    /// as spaces. The sum of signed bytes, as some old tars wrote it, is
    /// accepted too, as GNU tar, bsdtar, Go and Python accept it (the `tar`
    /// crate refuses it: no reader sees other members); noted when reading
    /// as GNU tar.
    fn checksum(&mut self, header: &tar::Header) -> Result<(), Refused> {
        let bytes = header.as_bytes();
        let rest = || bytes[..148].iter().chain(&bytes[156..]);
        let unsigned = rest().map(|b| u32::from(*b)).sum::<u32>() + 8 * 32;
        let expected = header.cksum()?;
        if unsigned == expected {
            return Ok(());
        }
        let signed = rest().map(|b| i64::from(*b as i8)).sum::<i64>() + 8 * 32;
        if signed == i64::from(expected) {
            if self.gnu() {
                self.pending.note(Divergence::SignedChecksum);
            }
            return Ok(());
        }
        Err(Refused::Read(io::Error::other(
            "archive header checksum mismatch",
        )))
    }

    /// A member's header, with the extension headers that came before it.
    fn member<R: Read>(
        &mut self,
        stream: &mut Stream<R>,
        header: Box<tar::Header>,
        budget: u64,
    ) -> Result<Headers, Refused> {
        let mut sparse_blocks = Vec::new();
        if header.entry_type() == tar::EntryType::GNUSparse {
            let gnu = header.as_gnu().ok_or_else(|| {
                Refused::Read(io::Error::other(
                    "sparse entry type listed but not GNU header",
                ))
            })?;
            let mut extended = gnu.is_extended();
            while extended {
                self.pending.size = self.pending.size.saturating_add(BLOCK as u64);
                if self.pending.size > budget {
                    return Err(Refused::TooLarge);
                }
                let block = stream
                    .block()?
                    .ok_or_else(|| io::Error::other("failed to read extension"))?;
                extended = block[504] != 0;
                sparse_blocks.push(block);
            }
        }
        let pending = std::mem::take(&mut self.pending);
        Ok(Headers {
            header,
            pax: pending.pax,
            long_name: pending.long_name,
            long_link: pending.long_link,
            sparse_blocks,
            extension_size: pending.size,
            notes: pending.notes,
        })
    }
}

/// The kinds of extension header.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Extension {
    Pax,
    LongName,
    LongLink,
    Global,
}

impl Extension {
    /// Which extension header `header` is, if it is one. Without a ustar or
    /// GNU magic the `tar` crate takes `x`, `L` and `K` for members, GNU tar
    /// for extension headers; Solaris's `X` is a PAX header to GNU tar and
    /// libarchive, an unknown member to the crate. With it, whether it is
    /// one only to GNU tar.
    fn of(header: &tar::Header, gnu: bool) -> Result<Option<(Extension, bool)>, Refused> {
        let t = header.entry_type().as_byte();
        let kind = match t {
            b'x' | b'X' => Extension::Pax,
            b'L' => Extension::LongName,
            b'K' => Extension::LongLink,
            b'g' => return Ok(Some((Extension::Global, false))),
            _ => return Ok(None),
        };
        let marked = header.as_ustar().is_some() || header.as_gnu().is_some();
        if marked && t != b'X' {
            return Ok(Some((kind, false)));
        }
        if gnu {
            return Ok(Some((kind, true)));
        }
        Err(Refused::Malformed(match t {
            b'X' => {
                "a Solaris extended header (type 'X'): tar readers disagree on its meaning".into()
            }
            _ => format!(
                "an extended header (type {:?}) without a ustar or GNU magic",
                char::from(t)
            ),
        }))
    }
}

/// The header's size field, and whether it was blank. Blank, or starting
/// with a NUL byte: GNU tar reads 0, Go the digits after the NULs; refused
/// when strict.
pub(super) fn size_field(header: &tar::Header, parsing: Parsing) -> Result<(u64, bool), Refused> {
    let field = &header.as_bytes()[124..136];
    // Base-256 with bits above the low 64: the `tar` crate reads the low 8
    // bytes only, GNU tar refuses the value (Go's `issue12435.tar`).
    let base256 = field[0] & 0x80 != 0 && field[0] != 0xff;
    if base256 && (field[0] & 0x7f != 0 || field[1..4].iter().any(|b| *b != 0)) {
        return Err(Refused::Malformed(
            "the size field is a base-256 number past 64 bits".into(),
        ));
    }
    match header.entry_size() {
        Ok(size) => Ok((size, false)),
        Err(_) if parsing == Parsing::GnuTar && is_blank(&header.as_bytes()[124..136]) => {
            Ok((0, true))
        }
        Err(e) => Err(Refused::Read(e)),
    }
}

/// Whether a numeric field is blank: spaces, then a NUL byte or the end.
fn is_blank(field: &[u8]) -> bool {
    let rest = field.iter().skip_while(|b| **b == b' ');
    rest.clone().next().is_none_or(|b| *b == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_fields() {
        assert!(is_blank(&[0; 12]));
        assert!(is_blank(b"           \0"));
        assert!(is_blank(b"\0\0\0\0\0\0\x000016\0"));
        assert!(!is_blank(b"00000000012\0"));
        assert!(!is_blank(b"  x\0"));
    }
}
