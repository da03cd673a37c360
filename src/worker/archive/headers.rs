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

    /// An old-GNU sparse header's "more blocks follow" flag: GNU tar tests
    /// it against 0, the `tar` crate against 1; anything else is refused
    /// strictly (readers would frame the data apart).
    fn extended_flag(&self, flag: u8) -> Result<bool, Refused> {
        match (flag, self.gnu()) {
            (0, _) => Ok(false),
            (1, _) | (_, true) => Ok(true),
            _ => Err(Refused::Malformed(
                "an old-GNU sparse header's extension flag is neither 0 nor 1".into(),
            )),
        }
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
            if header.as_gnu().is_none() {
                return Err(Refused::Read(io::Error::other(
                    "sparse entry type listed but not GNU header",
                )));
            }
            let mut extended = self.extended_flag(header.as_bytes()[482])?;
            while extended {
                self.pending.size = self.pending.size.saturating_add(BLOCK as u64);
                if self.pending.size > budget {
                    return Err(Refused::TooLarge);
                }
                let block = stream
                    .block()?
                    .ok_or_else(|| io::Error::other("failed to read extension"))?;
                extended = self.extended_flag(block[504])?;
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

/// The header's size field, and whether the `tar` crate would have read
/// it otherwise (noted). The size frames the rest of the archive, so only
/// what every reader reads alike passes `Strict`: spaces, octal digits, then
/// NULs or spaces; or a positive base-256 number below 2^63. `GnuTar` reads
/// it as GNU tar's `from_header` does (one leading NUL skipped, then
/// spaces; nothing but blanks refused; no digits at all is 0).
pub(super) fn size_field(header: &tar::Header, parsing: Parsing) -> Result<(u64, bool), Refused> {
    let field = &header.as_bytes()[124..136];
    if field[0] & 0x80 != 0 {
        return base256(field).map(|size| (size, false));
    }
    match parsing {
        Parsing::Strict => {
            // The crate's own errors first (they name the field): blank,
            // not a number.
            let size = header.entry_size()?;
            match plain_octal(field) == Some(size) {
                true => Ok((size, false)),
                false => Err(Refused::Malformed(
                    "the size field is not plain octal (a sign, other blanks than spaces, \
                     or bytes after the number): tar readers read it differently"
                        .into(),
                )),
            }
        }
        Parsing::GnuTar => {
            let size = gnu_octal(field).ok_or_else(|| {
                Refused::Malformed("the size field is not a number GNU tar reads".into())
            })?;
            Ok((size, header.entry_size().ok() != Some(size)))
        }
    }
}

/// A base-256 size: positive, below 2^63 (GNU tar refuses the rest as out
/// of `off_t`'s range; the `tar` crate kept the low 64 bits of anything).
fn base256(field: &[u8]) -> Result<u64, Refused> {
    let fits = field[0] == 0x80 && field[1..4].iter().all(|b| *b == 0) && field[4] & 0x80 == 0;
    if !fits {
        return Err(Refused::Malformed(
            "the size field is a base-256 number that is negative or past 2^63".into(),
        ));
    }
    let mut low = [0u8; 8];
    low.copy_from_slice(&field[4..12]);
    Ok(u64::from_be_bytes(low))
}

/// `field` as the plain octal every reader reads: spaces, digits, then only
/// NULs and spaces.
fn plain_octal(field: &[u8]) -> Option<u64> {
    let start = field.iter().position(|b| *b != b' ')?;
    let digits = field[start..]
        .iter()
        .take_while(|b| (b'0'..=b'7').contains(b))
        .count();
    let end = start + digits;
    if digits == 0 || !field[end..].iter().all(|b| *b == 0 || *b == b' ') {
        return None;
    }
    octal(&field[start..end])
}

/// `field` as GNU tar 1.34's `from_header` reads a size: one leading NUL
/// skipped, then white space; blanks to the end are refused; the octal
/// digits that follow (none: 0), ended by a NUL or white space.
fn gnu_octal(field: &[u8]) -> Option<u64> {
    let space = |b: &u8| matches!(*b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r');
    let mut at = usize::from(field[0] == 0);
    while at < field.len() && space(&field[at]) {
        at += 1;
    }
    if at == field.len() {
        return None;
    }
    let digits = field[at..]
        .iter()
        .take_while(|b| (b'0'..=b'7').contains(b))
        .count();
    let value = octal(&field[at..at + digits])?;
    let end = at + digits;
    match field.get(end) {
        None => Some(value),
        Some(b) if *b == 0 || space(b) => Some(value),
        // A sign (GNU tar's obsolete base-64) or another byte: refused.
        Some(_) => None,
    }
}

/// The value of octal `digits` (none: 0), if it fits.
fn octal(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |v, d| {
        v.checked_mul(8)?.checked_add(u64::from(d - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_fields_as_each_reader_reads_them() {
        // (field, strict, GNU tar)
        let cases: [(&[u8; 12], Option<u64>, Option<u64>); 9] = [
            (b"00000001000\0", Some(512), Some(512)),
            (b"   1000  \0\0\0", Some(512), Some(512)),
            (&[0; 12], None, Some(0)),
            (b"\x0000000001000", None, Some(512)),
            (b"\0\0\0\0\0\0\x000016\0", None, Some(0)),
            (b"            ", None, None),
            (b"+0000001000\0", None, None),
            (b"0001000\0x\0\0\0", None, Some(512)),
            (b"00000001000\t", None, Some(512)),
        ];
        for (field, strict, gnu) in cases {
            assert_eq!(plain_octal(field), strict, "{field:?}");
            assert_eq!(gnu_octal(field), gnu, "{field:?}");
        }
        let mut big = [0u8; 12];
        big[0] = 0x80;
        big[11] = 2;
        assert_eq!(base256(&big).ok(), Some(2));
        big[4] = 0x80;
        assert!(base256(&big).is_err());
        assert!(base256(&[0xff; 12]).is_err());
    }
}
