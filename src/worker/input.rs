//! Reading the archive: plain tar straight from the socket on the parsing
//! thread; compressed input on a decoding thread of its own, handed to the
//! parsing thread in chunks through a small bounded channel, so that
//! decompression and writing overlap and memory stays bounded.
//!
//! The decoding thread is started while the worker is warm (a thread created
//! at job time waited up to a scheduler tick, ~4 ms, before it first ran on a
//! busy machine), drops every privilege it has at once, and touches no input
//! until the job hands it the socket, after the seccomp filter is installed on
//! both threads.

use std::cell::Cell;
use std::io::{self, BufReader, Read};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::options::Compression;

/// Size of one decoded chunk, and of the plain reader's buffer.
const CHUNK: usize = 256 * 1024;
/// Decoded bytes before the compression ratio is checked.
pub(crate) const RATIO_GRACE: u64 = 64 << 20;
/// Chunks in flight between the threads (bounds memory to about 4 MiB; 4
/// chunks instead of 16 made large zstd extraction 10–17% slower).
const IN_FLIGHT: usize = 16;
/// Bytes read before the format is recognised (the longest magic is xz's 6).
const SNIFF: usize = 8;

type Piece = io::Result<(Vec<u8>, usize)>;

/// What the decoding thread found.
pub(crate) struct DecodeStats {
    pub compression: Compression,
    pub input_bytes: u64,
}

/// A job for the decoding thread.
struct Go {
    input: io::Chain<io::Cursor<Vec<u8>>, UnixStream>,
    compression: Compression,
    max_ratio: u64,
    tripped: Arc<AtomicBool>,
    tx: SyncSender<Piece>,
    recycle: Receiver<Vec<u8>>,
}

/// The decoding thread, parked until a job needs it.
pub(crate) struct Decoder {
    gate: Sender<Go>,
    handle: JoinHandle<DecodeStats>,
    ready: Receiver<Result<(), String>>,
}

/// The decoding thread at work; join it for its figures.
pub(crate) struct Decoding(JoinHandle<DecodeStats>);

impl Decoding {
    pub(crate) fn join(self) -> std::thread::Result<DecodeStats> {
        self.0.join()
    }
}

impl Decoder {
    /// Starts the thread (while the worker is warm). `shed` runs on it first, to
    /// drop whatever it will never need; [`Decoder::ready`] says how that went.
    pub(crate) fn spawn(shed: fn() -> Result<(), String>) -> Result<Decoder, String> {
        let (gate, gate_rx) = mpsc::channel::<Go>();
        let (ready_tx, ready) = mpsc::sync_channel::<Result<(), String>>(1);
        let handle = std::thread::Builder::new()
            .name("sandtar-decode".into())
            .spawn(move || {
                let shed = shed();
                let failed = shed.is_err();
                let _ = ready_tx.send(shed);
                let idle = DecodeStats {
                    compression: Compression::None,
                    input_bytes: 0,
                };
                if failed {
                    return idle;
                }
                // No job (the worker exits) or a plain one (the sender stays
                // alive until the process ends): this just waits.
                match gate_rx.recv() {
                    Ok(go) => decode(go),
                    Err(_) => idle,
                }
            })
            .map_err(|e| format!("starting the decoding thread failed: {e}"))?;
        Ok(Decoder {
            gate,
            handle,
            ready,
        })
    }

    /// Waits until the thread has shed its privileges (it has, unless the
    /// job came before the thread first ran); its error if that failed. Call
    /// before installing the seccomp filter, which would forbid the shedding.
    pub(crate) fn ready(&mut self) -> Result<(), String> {
        match self.ready.recv() {
            Ok(result) => result,
            Err(_) => Err("the decoding thread ended at start-up".into()),
        }
    }

    /// Hands the rest of `input` (after `head`, already read) to the thread, to
    /// be decoded as `compression`; returns the reader for the parsing side.
    ///
    /// Decoding stops with an error (and [`ChannelReader::ratio_exceeded`] turns
    /// true) when more than `max_ratio` decoded bytes per input byte come out,
    /// once [`RATIO_GRACE`] bytes have been decoded.
    pub(crate) fn start(
        self,
        input: UnixStream,
        head: Vec<u8>,
        compression: Compression,
        max_ratio: u64,
    ) -> (ChannelReader, Decoding) {
        let ratio_exceeded = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::sync_channel::<Piece>(IN_FLIGHT);
        let (recycle_tx, recycle_rx) = mpsc::channel::<Vec<u8>>();
        let go = Go {
            input: io::Cursor::new(head).chain(input),
            compression,
            max_ratio,
            tripped: ratio_exceeded.clone(),
            tx,
            recycle: recycle_rx,
        };
        // If the thread is gone, `rx` reports the end at once and the parser
        // finds the archive truncated; the join reports the panic.
        let _ = self.gate.send(go);
        let reader = ChannelReader {
            rx,
            recycle: recycle_tx,
            current: Vec::new(),
            pos: 0,
            len: 0,
            on_wait: None,
            ratio_exceeded,
        };
        (reader, Decoding(self.handle))
    }
}

/// Reads the first bytes of the archive from `input` (at least enough to
/// recognise a compression format, unless the input is shorter), into a
/// buffer of one chunk.
pub(crate) fn read_head(input: &mut UnixStream) -> io::Result<Vec<u8>> {
    let mut head = vec![0u8; CHUNK];
    let mut len = 0;
    while len < SNIFF {
        match input.read(&mut head[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    head.truncate(len);
    Ok(head)
}

/// Plain tar, read from the socket on the parsing thread itself: no thread
/// hand-off and one copy less. Reads of a chunk or more go straight into the
/// caller's buffer; smaller ones (headers) through a buffer of one chunk.
pub(crate) struct PlainReader {
    input: UnixStream,
    buf: Vec<u8>,
    pos: usize,
    len: usize,
    on_wait: Option<Box<dyn FnMut()>>,
}

impl PlainReader {
    /// A reader of `head` (from [`read_head`]), then the rest of `input`.
    pub(crate) fn new(input: UnixStream, mut head: Vec<u8>) -> PlainReader {
        let len = head.len();
        head.resize(CHUNK, 0);
        PlainReader {
            input,
            buf: head,
            pos: 0,
            len,
            on_wait: None,
        }
    }

    /// Runs `f` whenever the reader is about to wait for input (see
    /// [`ChannelReader::on_wait`]).
    pub(crate) fn on_wait(&mut self, f: impl FnMut() + 'static) {
        self.on_wait = Some(Box::new(f));
    }

    /// One read from the socket: without waiting if possible, else after
    /// `on_wait`.
    fn fill(&mut self, into: &mut [u8]) -> io::Result<usize> {
        use rustix::net::{recv, RecvFlags};
        let n = loop {
            match recv(&self.input, &mut *into, RecvFlags::DONTWAIT) {
                Ok((n, _)) => break n,
                Err(rustix::io::Errno::INTR) => {}
                Err(rustix::io::Errno::AGAIN) => {
                    if let Some(f) = self.on_wait.as_mut() {
                        f();
                    }
                    break loop {
                        match self.input.read(into) {
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            other => break other?,
                        }
                    };
                }
                Err(e) => return Err(e.into()),
            }
        };
        Ok(n)
    }
}

impl Read for PlainReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        if self.pos == self.len {
            if out.len() >= self.buf.len() {
                return self.fill(out);
            }
            let mut buf = std::mem::take(&mut self.buf);
            let filled = self.fill(&mut buf);
            self.buf = buf;
            self.pos = 0;
            // Nothing buffered after an error: never replay old bytes.
            self.len = 0;
            self.len = filled?;
        }
        let n = out.len().min(self.len - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
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

fn decode(go: Go) -> DecodeStats {
    let Go {
        input,
        compression,
        max_ratio,
        tripped,
        tx,
        recycle,
    } = go;
    let count = Rc::new(Cell::new(0));
    let input = BufReader::with_capacity(
        CHUNK,
        Counting {
            inner: input,
            count: count.clone(),
        },
    );
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
