//! Where a packing job's archive goes: counted and hashed (the tar stream's
//! `diff_id`), compressed in the worker when asked (on its second thread),
//! and sent to the caller in `Data` frames on the job socket, between the
//! report batches, or written to the caller's file or pipe
//! (`Sandbox::pack_into`: one hop less, the reports alone on the socket).

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::mpsc::{self, Receiver, SyncSender};

use sha2::{Digest, Sha256};

use crate::options::Compression;
use crate::wire::data_frame_head;
use crate::worker::input::{Decoder, Decoding};

/// Archive bytes per `Data` frame (frames are at most `MAX_WORKER_FRAME`).
const CHUNK: usize = 256 << 10;

/// The end of the pipeline: bytes gathered into chunks, each sent as a
/// `Data` frame on the socket or written to the caller's output.
pub(super) struct Frames {
    socket: UnixStream,
    output: Option<File>,
    chunk: Vec<u8>,
}

impl Frames {
    pub(super) fn new(socket: UnixStream, output: Option<OwnedFd>) -> Self {
        Frames {
            socket,
            output: output.map(File::from),
            chunk: Vec::with_capacity(CHUNK),
        }
    }

    fn send(&mut self) -> io::Result<()> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        if let Some(output) = &mut self.output {
            output.write_all(&self.chunk)?;
            self.chunk.clear();
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

/// Adds to `chunk` what fits of `buf`: how much, and whether it is full.
fn gather(chunk: &mut Vec<u8>, buf: &[u8]) -> (usize, bool) {
    let n = buf.len().min(CHUNK - chunk.len());
    chunk.extend_from_slice(&buf[..n]);
    (n, chunk.len() == CHUNK)
}

/// Pieces at least this large go to the caller's output as they are, not
/// copied into a chunk first (a file's data: the copy was ~7% of packing
/// the Linux tree; the header gathered before goes first).
const DIRECT: usize = 32 << 10;

impl Write for Frames {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.len() >= DIRECT && self.output.is_some() {
            self.send()?;
            if let Some(output) = &mut self.output {
                return output.write(buf);
            }
        }
        let (n, full) = gather(&mut self.chunk, buf);
        if full {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

impl Frames {
    /// Writes a whole frame of another kind (a batch of reports) now; the
    /// data gathered so far stays for its own frame.
    fn frame(&mut self, frame: &[u8]) -> io::Result<()> {
        self.socket.write_all(frame)
    }
}

/// The compressor in front of the frames.
enum Encoder {
    Plain(Frames),
    /// On the worker's second thread, fed chunks of the tar stream.
    Threaded(Compressor),
}

/// Compression on the worker's parked second thread (started warm, every
/// privilege shed, filtered with this one), so that reading the tree and
/// compressing it overlap, as GNU tar's separate compressor process does.
struct Compressor {
    chunk: Vec<u8>,
    tx: SyncSender<Piece>,
    done: Receiver<io::Result<()>>,
    thread: Decoding,
}

/// What the compressing thread is sent: the tar stream's next chunk, or a
/// whole frame to write as it is (the thread is the socket's one writer).
enum Piece {
    Tar(Vec<u8>),
    Frame(Vec<u8>),
}

impl Compressor {
    fn start(decoder: Decoder, frames: Frames, compression: Compression) -> io::Result<Self> {
        let mut reports = frames.socket.try_clone()?;
        let encoder: Box<dyn Finish> = match compression {
            Compression::Gzip => Box::new(flate2::write::GzEncoder::new(
                frames,
                flate2::Compression::new(6),
            )),
            _ => Box::new(ZstdFrames::new(frames)?),
        };
        let (tx, rx) = mpsc::sync_channel::<Piece>(IN_FLIGHT);
        let (done_tx, done) = mpsc::sync_channel(1);
        let thread = decoder.run(move || {
            let mut encoder = encoder;
            let compressed = rx
                .iter()
                .try_for_each(|piece| match piece {
                    Piece::Tar(chunk) => encoder.write_all(&chunk),
                    Piece::Frame(frame) => reports.write_all(&frame),
                })
                .and_then(|()| encoder.finish());
            let _ = done_tx.send(compressed);
        });
        Ok(Compressor {
            chunk: Vec::with_capacity(CHUNK),
            tx,
            done,
            thread,
        })
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let (n, full) = gather(&mut self.chunk, buf);
        if full {
            self.send()?;
        }
        Ok(n)
    }

    fn send(&mut self) -> io::Result<()> {
        let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK));
        self.piece(Piece::Tar(chunk))
    }

    fn piece(&mut self, piece: Piece) -> io::Result<()> {
        self.tx
            .send(piece)
            .map_err(|_| io::Error::other("the compressing thread stopped"))
    }

    fn finish(mut self) -> io::Result<()> {
        if !self.chunk.is_empty() {
            self.send()?;
        }
        drop(self.tx);
        let result = self
            .done
            .recv()
            .unwrap_or_else(|_| Err(io::Error::other("the compressing thread ended early")));
        self.thread
            .join()
            .map_err(|_| io::Error::other("the compressing thread panicked"))?;
        result
    }
}

/// An encoder that can end its stream and flush the frames under it.
trait Finish: Write + Send {
    fn finish(self: Box<Self>) -> io::Result<()>;
}

impl Finish for flate2::write::GzEncoder<Frames> {
    fn finish(self: Box<Self>) -> io::Result<()> {
        (*self).finish()?.flush()
    }
}

/// The tar stream in zstd frames of [`ZSTD_FRAME`] bytes each, each
/// compressed in one call from a contiguous buffer (level 3, as `zstd`'s
/// command line). zstd's streaming encoder keeps its window in a ring,
/// and most blocks then take its slower external-dictionary path: on the
/// Linux tree 3.35 s against 2.91 s in 8 MiB frames, and the frames come
/// out 0.2% smaller (BENCHMARKS.md). A zstd stream may hold any number of
/// frames; every decoder reads them in turn.
struct ZstdFrames {
    compressor: zstd::bulk::Compressor<'static>,
    /// The tar bytes of the next frame.
    pending: Vec<u8>,
    /// The compressed frame.
    compressed: Vec<u8>,
    frames: Frames,
}

/// Tar bytes per zstd frame.
const ZSTD_FRAME: usize = 8 << 20;

impl ZstdFrames {
    fn new(frames: Frames) -> io::Result<Self> {
        Ok(ZstdFrames {
            compressor: zstd::bulk::Compressor::new(3)?,
            pending: Vec::with_capacity(ZSTD_FRAME),
            compressed: Vec::with_capacity(zstd::zstd_safe::compress_bound(ZSTD_FRAME)),
            frames,
        })
    }

    /// Compresses what is pending into one frame and sends it on.
    fn frame(&mut self) -> io::Result<()> {
        self.compressed.clear();
        self.compressor
            .compress_to_buffer(&self.pending, &mut self.compressed)?;
        self.pending.clear();
        self.frames.write_all(&self.compressed)
    }
}

impl Write for ZstdFrames {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(ZSTD_FRAME - self.pending.len());
        self.pending.extend_from_slice(&buf[..n]);
        if self.pending.len() == ZSTD_FRAME {
            self.frame()?;
        }
        Ok(n)
    }

    /// Nothing: frames are cut by size alone (a frame per flush would be
    /// a small frame per flush), and [`Finish::finish`] ends the last.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Finish for ZstdFrames {
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        if !self.pending.is_empty() {
            self.frame()?;
        }
        self.frames.flush()
    }
}

/// Chunks in flight to the compressing thread (4 MiB).
const IN_FLIGHT: usize = 16;

/// The tar stream's sink: counts, hashes, compresses, frames.
pub(super) struct Output {
    encoder: Encoder,
    tar_bytes: u64,
    digest: Option<Sha256>,
}

impl Output {
    /// `output`: where the archive goes if not to the socket;
    /// `compression`: `None`, `Gzip` or `Zstd` (the caller checked), on
    /// `decoder`'s thread; `digest`: whether to hash the tar stream.
    pub(super) fn new(
        socket: UnixStream,
        output: Option<OwnedFd>,
        compression: Compression,
        digest: bool,
        decoder: Decoder,
    ) -> io::Result<Self> {
        let frames = Frames::new(socket, output);
        let encoder = match compression {
            Compression::Gzip | Compression::Zstd => {
                Encoder::Threaded(Compressor::start(decoder, frames, compression)?)
            }
            _ => Encoder::Plain(frames),
        };
        Ok(Output {
            encoder,
            tar_bytes: 0,
            digest: digest.then(Sha256::new),
        })
    }

    /// Sends a whole frame of another kind (a batch of reports) through
    /// the socket's one writer.
    pub(super) fn frame(&mut self, frame: Vec<u8>) -> io::Result<()> {
        match &mut self.encoder {
            Encoder::Plain(frames) => frames.frame(&frame),
            Encoder::Threaded(compressor) => compressor.piece(Piece::Frame(frame)),
        }
    }

    /// Ends the compressed stream and sends the last frame: the tar
    /// stream's size and `sha256:` digest (when asked for).
    pub(super) fn finish(self) -> io::Result<(u64, Option<String>)> {
        match self.encoder {
            Encoder::Plain(mut frames) => frames.flush()?,
            Encoder::Threaded(compressor) => compressor.finish()?,
        }
        let digest = self.digest.map(|d| format!("sha256:{:x}", d.finalize()));
        Ok((self.tar_bytes, digest))
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = match &mut self.encoder {
            Encoder::Plain(w) => w.write(buf)?,
            Encoder::Threaded(w) => w.write(buf)?,
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
