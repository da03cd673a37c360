//! Where a packing job's archive goes: counted and hashed (the tar stream's
//! `diff_id`), compressed in the worker when asked, and sent to the caller
//! in `Data` frames on the job socket, between the report batches.

use std::io::{self, Write};
use std::os::unix::net::UnixStream;

use sha2::{Digest, Sha256};

use crate::options::Compression;
use crate::wire::data_frame_head;

/// Archive bytes per `Data` frame (frames are at most `MAX_WORKER_FRAME`).
const CHUNK: usize = 256 << 10;

/// The socket end of the pipeline: bytes gathered into `Data` frames.
pub(super) struct Frames {
    socket: UnixStream,
    chunk: Vec<u8>,
}

impl Frames {
    pub(super) fn new(socket: UnixStream) -> Self {
        Frames {
            socket,
            chunk: Vec::with_capacity(CHUNK),
        }
    }

    fn send(&mut self) -> io::Result<()> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        // The frame's head and the chunk in one call, the chunk not copied.
        let head = data_frame_head(self.chunk.len());
        let mut parts = [io::IoSlice::new(&head), io::IoSlice::new(&self.chunk)];
        let mut parts = &mut parts[..];
        while !parts.is_empty() {
            let n = self.socket.write_vectored(parts)?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            io::IoSlice::advance_slices(&mut parts, n);
        }
        self.chunk.clear();
        Ok(())
    }
}

impl Write for Frames {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(CHUNK - self.chunk.len());
        self.chunk.extend_from_slice(&buf[..n]);
        if self.chunk.len() == CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// The compressor in front of the frames.
enum Encoder {
    Plain(Frames),
    Gzip(flate2::write::GzEncoder<Frames>),
    Zstd(zstd::stream::write::Encoder<'static, Frames>),
}

/// The tar stream's sink: counts, hashes, compresses, frames.
pub(super) struct Output {
    encoder: Encoder,
    tar_bytes: u64,
    digest: Option<Sha256>,
}

impl Output {
    /// `compression`: `None`, `Gzip` or `Zstd` (the caller checked);
    /// `digest`: whether to hash the tar stream.
    pub(super) fn new(
        socket: UnixStream,
        compression: Compression,
        digest: bool,
    ) -> io::Result<Self> {
        let frames = Frames::new(socket);
        let encoder = match compression {
            Compression::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                frames,
                flate2::Compression::new(6),
            )),
            Compression::Zstd => Encoder::Zstd(zstd::stream::write::Encoder::new(frames, 3)?),
            _ => Encoder::Plain(frames),
        };
        Ok(Output {
            encoder,
            tar_bytes: 0,
            digest: digest.then(Sha256::new),
        })
    }

    /// Ends the compressed stream and sends the last frame: the tar
    /// stream's size and `sha256:` digest (when asked for).
    pub(super) fn finish(self) -> io::Result<(u64, Option<String>)> {
        let mut frames = match self.encoder {
            Encoder::Plain(frames) => frames,
            Encoder::Gzip(gzip) => gzip.finish()?,
            Encoder::Zstd(zstd) => zstd.finish()?,
        };
        frames.flush()?;
        let digest = self.digest.map(|d| format!("sha256:{:x}", d.finalize()));
        Ok((self.tar_bytes, digest))
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = match &mut self.encoder {
            Encoder::Plain(w) => w.write(buf)?,
            Encoder::Gzip(w) => w.write(buf)?,
            Encoder::Zstd(w) => w.write(buf)?,
        };
        if let Some(digest) = &mut self.digest {
            digest.update(&buf[..n]);
        }
        self.tar_bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
