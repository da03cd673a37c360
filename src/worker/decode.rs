//! Decoding on its own thread: archive bytes from the socket, decompressed, handed
//! to the parsing thread in chunks through a small bounded channel, so that
//! decompression and writing overlap and memory stays bounded.

use std::cell::Cell;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::options::Compression;

/// Size of one decoded chunk.
const CHUNK: usize = 256 * 1024;
/// Decoded bytes before the compression ratio is checked.
pub(crate) const RATIO_GRACE: u64 = 64 << 20;
/// Chunks in flight between the threads (bounds memory to about 1 MiB).
const IN_FLIGHT: usize = 4;

type Piece = io::Result<(Vec<u8>, usize)>;

/// What the decoding thread found.
pub(crate) struct DecodeStats {
    pub compression: Compression,
    pub input_bytes: u64,
}

/// Starts the decoding thread on `input`; returns the reader for the parsing side.
///
/// The thread touches no input until `gate` says go (`true`), so that the worker
/// can install its seccomp filter on both threads first; `false` or a dropped
/// gate ends it.
///
/// Decoding stops with an error (and [`ChannelReader::ratio_exceeded`] turns
/// true) when more than `max_ratio` decoded bytes per input byte come out, once
/// [`RATIO_GRACE`] bytes have been decoded.
pub(crate) fn spawn(
    input: UnixStream,
    compression: Compression,
    max_ratio: u64,
    gate: Receiver<bool>,
) -> io::Result<(ChannelReader, JoinHandle<DecodeStats>)> {
    let ratio_exceeded = Arc::new(AtomicBool::new(false));
    let tripped = ratio_exceeded.clone();
    let (tx, rx) = mpsc::sync_channel::<Piece>(IN_FLIGHT);
    let (recycle_tx, recycle_rx) = mpsc::channel::<Vec<u8>>();
    let handle = std::thread::Builder::new()
        .name("sandtar-decode".into())
        .spawn(move || {
            if gate.recv() != Ok(true) {
                return DecodeStats {
                    compression,
                    input_bytes: 0,
                };
            }
            decode(input, compression, max_ratio, &tripped, tx, recycle_rx)
        })?;
    Ok((
        ChannelReader {
            rx,
            recycle: recycle_tx,
            current: Vec::new(),
            pos: 0,
            len: 0,
            on_wait: None,
            ratio_exceeded,
        },
        handle,
    ))
}

/// Counts the compressed bytes read from the socket.
struct Counting<R> {
    inner: R,
    count: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

fn decode(
    input: UnixStream,
    forced: Compression,
    max_ratio: u64,
    tripped: &AtomicBool,
    tx: SyncSender<Piece>,
    recycle: Receiver<Vec<u8>>,
) -> DecodeStats {
    let count = Rc::new(Cell::new(0));
    let mut input = BufReader::with_capacity(
        CHUNK,
        Counting {
            inner: input,
            count: count.clone(),
        },
    );
    let compression = match forced {
        Compression::Auto => match input.fill_buf() {
            Ok(head) => Compression::sniff(head),
            Err(e) => {
                let _ = tx.send(Err(e));
                return DecodeStats {
                    compression: Compression::None,
                    input_bytes: count.get(),
                };
            }
        },
        other => other,
    };
    let stats = |count: &Rc<Cell<u64>>| DecodeStats {
        compression,
        input_bytes: count.get(),
    };
    let mut decoder: Box<dyn Read> = match compression {
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(input)),
        Compression::Zstd => match zstd::stream::read::Decoder::with_buffer(input) {
            Ok(d) => Box::new(d),
            Err(e) => {
                let _ = tx.send(Err(e));
                return stats(&count);
            }
        },
        Compression::Xz => Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(input)),
        Compression::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(input)),
        Compression::None | Compression::Auto => Box::new(input),
    };
    let mut decoded: u64 = 0;
    loop {
        let mut buf = recycle.try_recv().unwrap_or_else(|_| vec![0u8; CHUNK]);
        let n = loop {
            match decoder.read(&mut buf) {
                Ok(n) => break Ok(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => break Err(e),
            }
        };
        match n {
            Ok(0) => return stats(&count), // end of input: dropping `tx` tells the reader
            Ok(n) => {
                decoded += n as u64;
                if decoded > RATIO_GRACE && decoded / count.get().max(1) > max_ratio {
                    tripped.store(true, Ordering::Relaxed);
                    let _ = tx.send(Err(io::Error::other("compression ratio limit exceeded")));
                    return stats(&count);
                }
                if tx.send(Ok((buf, n))).is_err() {
                    return stats(&count); // the parser stopped
                }
            }
            Err(e) => {
                let e = io::Error::new(e.kind(), format!("{} stream: {e}", compression.name()));
                let _ = tx.send(Err(e));
                return stats(&count);
            }
        }
    }
}

/// The parsing side of the channel: a `Read` over the decoded chunks.
pub(crate) struct ChannelReader {
    rx: Receiver<Piece>,
    recycle: Sender<Vec<u8>>,
    current: Vec<u8>,
    pos: usize,
    len: usize,
    on_wait: Option<Box<dyn FnMut()>>,
    ratio_exceeded: Arc<AtomicBool>,
}

impl ChannelReader {
    /// `true` once decoding stopped on the compression-ratio limit.
    pub(crate) fn ratio_exceeded(&self) -> Arc<AtomicBool> {
        self.ratio_exceeded.clone()
    }

    /// Runs `f` whenever the reader is about to wait for the decoder (used to
    /// flush pending reports, so a slow archive still streams its results).
    pub(crate) fn on_wait(&mut self, f: impl FnMut() + 'static) {
        self.on_wait = Some(Box::new(f));
    }

    fn next_chunk(&mut self) -> io::Result<bool> {
        let piece = match self.rx.try_recv() {
            Ok(piece) => piece,
            Err(TryRecvError::Disconnected) => return Ok(false),
            Err(TryRecvError::Empty) => {
                if let Some(f) = self.on_wait.as_mut() {
                    f();
                }
                match self.rx.recv() {
                    Ok(piece) => piece,
                    Err(_) => return Ok(false),
                }
            }
        };
        let (buf, len) = piece?;
        let old = std::mem::replace(&mut self.current, buf);
        if old.capacity() > 0 {
            let _ = self.recycle.send(old);
        }
        self.pos = 0;
        self.len = len;
        Ok(true)
    }
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        while self.pos == self.len {
            if !self.next_chunk()? {
                return Ok(0);
            }
        }
        let n = out.len().min(self.len - self.pos);
        out[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
