//! The compression formats the worker reads: one row per format, its magic
//! bytes and its decoder. Recognising a format ([`sniff`]) and decoding it
//! ([`decoder`]) both read this table; a new format is a row here (and a
//! variant of [`Compression`]).

use std::io::{self, BufRead, Read};

use crate::options::Compression;

use super::Compressed;

/// One compression format: how it starts and how it is decoded.
struct Codec {
    compression: Compression,
    magic: &'static [u8],
    /// A decoder of the (buffered) compressed input. Multi-member streams
    /// (`cat a.gz b.gz`) are read to their end, as the tools that made them do.
    decoder: for<'a> fn(Compressed<'a>) -> io::Result<Box<dyn Read + 'a>>,
}

const CODECS: &[Codec] = &[
    Codec {
        compression: Compression::Gzip,
        magic: &[0x1f, 0x8b],
        decoder: |input| Ok(Box::new(flate2::bufread::MultiGzDecoder::new(input))),
    },
    Codec {
        compression: Compression::Zstd,
        magic: &[0x28, 0xb5, 0x2f, 0xfd],
        decoder: |input| Ok(Box::new(zstd::stream::read::Decoder::with_buffer(input)?)),
    },
    Codec {
        compression: Compression::Xz,
        magic: &[0xfd, b'7', b'z', b'X', b'Z', 0],
        decoder: |input| {
            Ok(Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(
                input,
            )))
        },
    },
    Codec {
        compression: Compression::Bzip2,
        magic: b"BZh",
        decoder: |input| Ok(Box::new(bzip2::bufread::MultiBzDecoder::new(input))),
    },
    Codec {
        compression: Compression::Lz4,
        magic: &[0x04, 0x22, 0x4d, 0x18],
        decoder: |input| {
            Ok(Box::new(Lz4Frames(Some(
                lz4_flex::frame::FrameDecoder::new(input),
            ))))
        },
    },
];

/// lz4 frames one after another (`cat a.lz4 b.lz4`, which the `lz4` tool
/// reads whole): the decoder reads one frame; while input is left after it, a
/// new decoder reads the next.
///
/// (`lz4_flex` takes input that ends between two blocks for the frame's end;
/// the tar layer then finds the archive cut short, except at a member's end,
/// as for a plain tar stream cut there.)
struct Lz4Frames<'a>(Option<lz4_flex::frame::FrameDecoder<Compressed<'a>>>);

impl Read for Lz4Frames<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while let Some(decoder) = &mut self.0 {
            let n = decoder.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            let Some(mut input) = self.0.take().map(|d| d.into_inner()) else {
                break;
            };
            if !input.fill_buf()?.is_empty() {
                self.0 = Some(lz4_flex::frame::FrameDecoder::new(input));
            }
        }
        Ok(0)
    }
}

/// Bytes read before the format is recognised: at least the longest magic.
pub(crate) const SNIFF: usize = 8;

// A longer magic would be compared against a head too short for it.
const _: () = {
    let mut i = 0;
    while i < CODECS.len() {
        assert!(CODECS[i].magic.len() <= SNIFF);
        i += 1;
    }
};

/// Recognises a compression by the first bytes of a stream; anything else is
/// plain tar.
pub(crate) fn sniff(head: &[u8]) -> Compression {
    CODECS
        .iter()
        .find(|codec| head.starts_with(codec.magic))
        .map_or(Compression::None, |codec| codec.compression)
}

/// A decoder of `input` as `compression`; plain input is passed through.
pub(crate) fn decoder(
    compression: Compression,
    input: Compressed<'_>,
) -> io::Result<Box<dyn Read + '_>> {
    match CODECS.iter().find(|codec| codec.compression == compression) {
        Some(codec) => (codec.decoder)(input),
        None => Ok(Box::new(input)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_every_format() {
        assert_eq!(sniff(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(sniff(&[0x28, 0xb5, 0x2f, 0xfd, 0]), Compression::Zstd);
        assert_eq!(sniff(b"\xfd7zXZ\0\0"), Compression::Xz);
        assert_eq!(sniff(b"BZh91AY"), Compression::Bzip2);
        assert_eq!(sniff(b"hello.txt\0"), Compression::None);
        assert_eq!(sniff(b""), Compression::None);
    }
}
