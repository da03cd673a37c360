//! The tar stream as the parser reads it: 512-byte blocks and data, counted
//! (error offsets) and hashed (the `diff_id`) as they pass.

use std::io::{self, Read};

use sha2::{Digest, Sha256};

/// A tar stream's unit.
pub(super) const BLOCK: usize = 512;

/// The bytes under the parser, counted and, when asked, hashed.
pub(super) struct Stream<R> {
    inner: R,
    offset: u64,
    digest: Option<Sha256>,
    /// The first block's bytes (to say what an input that is no tar is).
    head: Vec<u8>,
}

impl<R: Read> Stream<R> {
    pub(super) fn new(inner: R, digest: bool) -> Self {
        Stream {
            inner,
            offset: 0,
            digest: digest.then(Sha256::new),
            head: Vec::new(),
        }
    }

    /// The first bytes of the stream, up to a block.
    pub(super) fn head(&self) -> &[u8] {
        &self.head
    }

    /// Bytes of the tar stream consumed so far.
    pub(super) fn offset(&self) -> u64 {
        self.offset
    }

    /// `sha256:<hex>` of the bytes read, when asked for.
    pub(super) fn digest(&mut self) -> Option<String> {
        self.digest
            .take()
            .map(|d| format!("sha256:{:x}", d.finalize()))
    }

    /// The next block; `None` at the end of the stream. A stream that ends
    /// inside a block is an error ("failed to read entire block").
    pub(super) fn block(&mut self) -> io::Result<Option<[u8; BLOCK]>> {
        let mut block = [0u8; BLOCK];
        let mut filled = 0;
        while filled < BLOCK {
            match self.read(&mut block[filled..]) {
                Ok(0) if filled == 0 => return Ok(None),
                Ok(0) => return Err(io::Error::other("failed to read entire block")),
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Some(block))
    }

    /// `size` bytes of an extension header's data, and its padding.
    /// The buffer grows with the bytes that arrive, never ahead of them by
    /// more than 64 KiB: a size field alone allocates nothing.
    pub(super) fn data_whole(&mut self, size: u64) -> io::Result<Vec<u8>> {
        let mut data = Vec::with_capacity(size.min(64 << 10) as usize);
        self.by_ref().take(size).read_to_end(&mut data)?;
        if (data.len() as u64) < size {
            return Err(ended_early(io::ErrorKind::UnexpectedEof.into()));
        }
        self.skip(padding(size))?;
        Ok(data)
    }

    /// Reads and drops `n` bytes; the stream must hold them.
    pub(super) fn skip(&mut self, n: u64) -> io::Result<()> {
        let mut scratch = [0u8; 8192];
        let mut left = n;
        while left > 0 {
            let want = left.min(scratch.len() as u64) as usize;
            match self.read(&mut scratch[..want]) {
                Ok(0) => return Err(io::Error::other("unexpected EOF during skip")),
                Ok(k) => left -= k as u64,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads the stream to its end: trailing blocks, and the compressed
    /// stream's own checks (gzip's CRC, for example), which come last.
    pub(super) fn drain(&mut self) -> io::Result<()> {
        let mut scratch = [0u8; 8192];
        loop {
            match self.read(&mut scratch) {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

impl<R: Read> Read for Stream<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if self.offset < BLOCK as u64 {
            let keep = (BLOCK - self.offset as usize).min(n);
            self.head.extend_from_slice(&buf[..keep]);
        }
        self.offset += n as u64;
        if let Some(digest) = &mut self.digest {
            digest.update(&buf[..n]);
        }
        Ok(n)
    }
}

/// The zeros that fill an entry's data of `size` bytes to a whole block.
pub(super) fn padding(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

/// A stream that ends inside an entry, said as the `tar` crate said it.
fn ended_early(e: io::Error) -> io::Error {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => io::Error::other("failed to read entire block"),
        _ => e,
    }
}

/// One entry's data: at most `size` bytes of the stream (fewer where the
/// stream ends sooner); [`Data::finish`] skips what is left and the padding,
/// and fails if the stream does not hold them.
pub(super) struct Data<'s, R> {
    stream: &'s mut Stream<R>,
    left: u64,
    size: u64,
}

impl<'s, R: Read> Data<'s, R> {
    pub(super) fn new(stream: &'s mut Stream<R>, size: u64) -> Self {
        Data {
            stream,
            left: size,
            size,
        }
    }

    /// Skips the data not read; returns the padding after it, for the
    /// parser to skip once the entry is reported.
    pub(super) fn finish(self) -> io::Result<u64> {
        self.stream.skip(self.left)?;
        Ok(padding(self.size))
    }
}

impl<R: Read> Read for Data<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        // At the end of the stream: 0, as from `Read::take` (the applier
        // says how much of the file is missing; `finish` fails).
        let n = self.stream.read(&mut buf[..want])?;
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_data_and_padding() {
        let mut bytes = vec![1u8; BLOCK];
        bytes.extend_from_slice(b"abc");
        bytes.resize(2 * BLOCK, 0);
        bytes.extend_from_slice(&[2u8; 100]);
        let mut s = Stream::new(&bytes[..], true);
        assert_eq!(s.block().unwrap().unwrap()[0], 1);
        let mut data = Data::new(&mut s, 3);
        let mut got = [0u8; 2];
        assert_eq!(data.read(&mut got).unwrap(), 2);
        let padding = data.finish().unwrap();
        s.skip(padding).unwrap();
        assert_eq!(s.offset(), 2 * BLOCK as u64);
        assert_eq!(
            s.block().unwrap_err().to_string(),
            "failed to read entire block"
        );
        assert!(s.digest().unwrap().starts_with("sha256:"));
    }

    #[test]
    fn data_cut_short() {
        let bytes = [7u8; 10];
        let mut s = Stream::new(&bytes[..], false);
        let mut data = Data::new(&mut s, 20);
        let mut all = Vec::new();
        data.read_to_end(&mut all).unwrap();
        assert_eq!(all.len(), 10);
        assert!(data.finish().is_err());
    }
}
