//! What an input that is not a tar archive is, from its first bytes: said
//! instead of the `tar` crate's complaint about the first header's fields.

use crate::error::NotTar;
use crate::options::Compression;
use crate::worker::input::sniff;

/// Formats recognised by their first bytes, with what they are.
const SIGNATURES: &[(&[u8], Found)] = &[
    (b"PK\x03\x04", Found::Archive(NotTar::Zip)),
    (b"PK\x05\x06", Found::Archive(NotTar::Zip)),
    (b"PK\x07\x08", Found::Archive(NotTar::Zip)),
    (b"7z\xbc\xaf\x27\x1c", Found::Archive(NotTar::SevenZip)),
    (b"Rar!\x1a\x07", Found::Archive(NotTar::Rar)),
    (b"!<arch>\n", Found::Archive(NotTar::Ar)),
    (b"070701", Found::Archive(NotTar::Cpio)),
    (b"070702", Found::Archive(NotTar::Cpio)),
    (b"070707", Found::Archive(NotTar::Cpio)),
    (b"\xc7\x71", Found::Archive(NotTar::Cpio)),
    (b"\x71\xc7", Found::Archive(NotTar::Cpio)),
    (b"LZIP", Found::Compression("lzip")),
    (b"\x1f\x9d", Found::Compression("Unix compress (.Z)")),
    (b"\x89LZO\x00\r\n\x1a\n", Found::Compression("lzop")),
    (b"\x02\x21\x4c\x18", Found::Compression("legacy lz4")),
    (b"\x5d\x00\x00", Found::Compression("lzma")),
    (b"\xff\x06\x00\x00sNaPpY", Found::Compression("snappy")),
];

/// One row's verdict (a `const` table cannot hold the `String` of
/// [`NotTar::Compression`]).
#[derive(Clone)]
enum Found {
    Archive(NotTar),
    Compression(&'static str),
}

/// Whether the `tar` crate's `message` is about the first block itself (its
/// checksum or numeric fields, or a block cut short), rather than about the
/// stream under it (a decoder's error), which stays a malformed archive.
pub(super) fn about_the_header(message: &str) -> bool {
    message == "archive header checksum mismatch"
        || message == "failed to read entire block"
        || message.starts_with("numeric field")
}

/// What `head`, the first bytes of a stream whose first header could not be
/// read, is; `None` where it starts with a tar header after all (whose
/// checksum matches: the archive is malformed further on), with a
/// compression sandtar reads (forced to another one: the caller's choice was
/// wrong, the archive may be fine), or is shorter than a block and nothing
/// known (a tar cut inside its first header, as likely as anything).
pub(super) fn identify(head: &[u8]) -> Option<NotTar> {
    if starts_with_tar_header(head) || sniff(head) != Compression::None {
        return None;
    }
    if head.is_empty() {
        return Some(NotTar::Empty);
    }
    let found = SIGNATURES
        .iter()
        .find(|(magic, _)| head.starts_with(magic))
        .map(|(_, found)| found.clone());
    match found {
        Some(Found::Archive(what)) => Some(what),
        Some(Found::Compression(name)) => Some(NotTar::Compression(name.to_string())),
        // Shorter than a block: as likely a tar cut inside its first header.
        None if head.len() < 512 => None,
        None => Some(NotTar::NoTarHeader),
    }
}

/// Whether `head` starts with a whole block whose stored checksum is its sum
/// (the bytes added up, the checksum field counted as spaces).
fn starts_with_tar_header(head: &[u8]) -> bool {
    let Some(block) = head.get(..512) else {
        return false;
    };
    let Ok(stored) = tar::Header::from_byte_slice(block).cksum() else {
        return false;
    };
    let field = 148..156;
    let sum: u32 = block
        .iter()
        .enumerate()
        .map(|(i, b)| match field.contains(&i) {
            true => u32::from(b' '),
            false => u32::from(*b),
        })
        .sum();
    stored == sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_format_by_its_first_bytes() {
        let is = |head: &[u8]| identify(head).unwrap();
        assert_eq!(is(b""), NotTar::Empty);
        assert_eq!(identify(b"\x1f\x8b\x08\x00"), None);
        assert_eq!(is(b"PK\x03\x04\x14\x00"), NotTar::Zip);
        assert_eq!(is(b"PK\x05\x06"), NotTar::Zip);
        assert_eq!(is(b"7z\xbc\xaf\x27\x1c\x00\x04"), NotTar::SevenZip);
        assert_eq!(is(b"Rar!\x1a\x07\x01\x00"), NotTar::Rar);
        assert_eq!(is(b"!<arch>\ndebian-binary"), NotTar::Ar);
        assert_eq!(is(b"07070100000001"), NotTar::Cpio);
        assert_eq!(is(b"LZIP\x01"), NotTar::Compression("lzip".into()));
        assert_eq!(is(&[b'x'; 512]), NotTar::NoTarHeader);
        assert_eq!(identify(b"hello world, cut short"), None);
    }

    /// A real header whose archive breaks later is malformed, not "not tar".
    #[test]
    fn a_tar_header_is_not_something_else() {
        let mut header = tar::Header::new_ustar();
        header.set_path("PK-looking/name").unwrap();
        header.set_size(3);
        header.set_cksum();
        let mut head = header.as_bytes().to_vec();
        assert_eq!(identify(&head), None);
        head[0] ^= 1;
        assert_eq!(identify(&head), Some(NotTar::NoTarHeader));
    }
}
