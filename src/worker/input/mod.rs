//! Reading the archive: plain tar straight from the socket on the parsing
//! thread; compressed input on a decoding thread of its own, handed to the
//! parsing thread in chunks through a small bounded channel, so that
//! decompression and writing overlap and memory stays bounded. The formats
//! are in [`codecs`], the parsing thread's reader in [`reader`].
//!
//! The decoding thread is started while the worker is warm (a thread created
//! at job time waited up to a scheduler tick, ~4 ms, before it first ran on a
//! busy machine), drops every privilege it has at once, and touches no input
//! until the job hands it the socket, after the seccomp filter is installed on
//! both threads.

mod codecs;

pub(crate) use codecs::sniff;
mod reader;

use std::cell::Cell;
use std::io::{self, BufReader, Read};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::options::Compression;

use codecs::SNIFF;
use reader::{Channel, Reader, Socket};

/// Size of one decoded chunk, and of the plain reader's buffer.
const CHUNK: usize = 256 * 1024;
/// Decoded bytes before the compression ratio is checked.
pub(crate) const RATIO_GRACE: u64 = 64 << 20;
/// Chunks in flight between the threads (bounds memory to about 4 MiB; 4
/// chunks instead of 16 made large zstd extraction 10–17% slower).
const IN_FLIGHT: usize = 16;

/// One decoded chunk (a buffer and how much of it is filled), or the error
/// that ended decoding.
type Piece = io::Result<(Vec<u8>, usize)>;

/// The compressed input, as the decoders read it: the bytes already read
/// (`head`), then the socket, counted for the compression-ratio limit.
type Compressed<'a> = BufReader<Counting<'a, io::Chain<io::Cursor<Vec<u8>>, UnixStream>>>;

/// A job for the decoding thread.
struct Go {
    input: io::Chain<io::Cursor<Vec<u8>>, UnixStream>,
    compression: Compression,
    max_ratio: u64,
    tripped: Arc<AtomicBool>,
    tx: SyncSender<Piece>,
    recycle: Receiver<Vec<u8>>,
}

/// What the parked thread is given: a decoding job, or other work of the
/// job's (a packing job's compression).
enum Task {
    Decode(Go),
    Run(Box<dyn FnOnce() + Send>),
}

/// The decoding thread, parked until a job needs it.
pub(crate) struct Decoder {
    gate: Sender<Task>,
    handle: JoinHandle<()>,
    ready: Receiver<Result<(), String>>,
}

/// The decoding thread at work; join it to learn whether it panicked.
pub(crate) struct Decoding(JoinHandle<()>);

impl Decoding {
    pub(crate) fn join(self) -> std::thread::Result<()> {
        self.0.join()
    }
}

impl Decoder {
    /// Starts the thread (while the worker is warm). `shed` runs on it first, to
    /// drop whatever it will never need; [`Decoder::ready`] says how that went.
    pub(crate) fn spawn(shed: fn() -> Result<(), String>) -> Result<Decoder, String> {
        let (gate, gate_rx) = mpsc::channel::<Task>();
        let (ready_tx, ready) = mpsc::sync_channel::<Result<(), String>>(1);
        let handle = std::thread::Builder::new()
            .name("sandtar-decode".into())
            .spawn(move || {
                let shed = shed();
                let failed = shed.is_err();
                let _ = ready_tx.send(shed);
                if failed {
                    return;
                }
                // No job (the worker exits) or a plain one (the sender stays
                // alive as long as the job's `Input`): this just waits.
                match gate_rx.recv() {
                    Ok(Task::Decode(go)) => decode(go),
                    Ok(Task::Run(work)) => work(),
                    Err(_) => {}
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

    /// Runs `work` on the thread (privileges shed, filtered with the rest of
    /// the worker); join the result to wait for it.
    pub(crate) fn run(self, work: impl FnOnce() + Send + 'static) -> Decoding {
        // If the thread is gone, `work` is dropped; whatever it was to
        // report never comes, and the caller sees that.
        let _ = self.gate.send(Task::Run(Box::new(work)));
        Decoding(self.handle)
    }

    /// Hands the rest of `input` (after `head`, already read) to the thread, to
    /// be decoded as `compression`; returns the reader for the parsing side.
    ///
    /// Decoding stops with an error (and [`Channel::ratio_exceeded`] turns
    /// true) when more than `max_ratio` decoded bytes per input byte come out,
    /// once [`RATIO_GRACE`] bytes have been decoded.
    fn start(
        self,
        input: UnixStream,
        head: Vec<u8>,
        compression: Compression,
        max_ratio: u64,
    ) -> (Reader<Channel>, Decoding) {
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
        let _ = self.gate.send(Task::Decode(go));
        let channel = Channel {
            rx,
            recycle: recycle_tx,
            ratio_exceeded,
        };
        (Reader::new(channel, Vec::new(), 0), Decoding(self.handle))
    }
}

/// The archive's input, ready for the parser.
pub(crate) struct Input {
    /// The tar stream: from the socket, or decoded by the decoding thread.
    pub reader: Box<dyn Read>,
    /// The compression found (or forced).
    pub compression: Compression,
    /// Turns true when the decoder stopped on the compression-ratio limit.
    pub ratio_exceeded: Arc<AtomicBool>,
    /// The decoding thread, when it runs.
    pub decoding: Option<Decoding>,
    /// The decoding thread, when plain input leaves it parked: the job may
    /// give it other work ([`Decoder::run`]); else it waits as long as this
    /// lives (the job's whole life), then ends.
    pub parked: Option<Decoder>,
}

/// Reads the first bytes from `socket`, recognises the compression (unless
/// `forced`), and returns the reader of the tar stream: plain tar on this
/// thread (the decoder stays parked), anything else through `decoder`.
/// `on_wait` runs whenever the reader is about to wait for input.
pub(crate) fn open(
    mut socket: UnixStream,
    decoder: Decoder,
    forced: Compression,
    max_ratio: u64,
    on_wait: impl FnMut() + 'static,
) -> io::Result<Input> {
    let head = read_head(&mut socket)?;
    let compression = match forced {
        Compression::Auto => codecs::sniff(&head),
        forced => forced,
    };
    Ok(match compression {
        Compression::None | Compression::Auto => {
            let len = head.len();
            let mut reader = Reader::new(Socket::new(socket), head, len);
            reader.on_wait(on_wait);
            Input {
                reader: Box::new(reader),
                compression,
                ratio_exceeded: Arc::new(AtomicBool::new(false)),
                decoding: None,
                parked: Some(decoder),
            }
        }
        compression => {
            let (mut reader, decoding) = decoder.start(socket, head, compression, max_ratio);
            reader.on_wait(on_wait);
            Input {
                ratio_exceeded: reader.source().ratio_exceeded(),
                reader: Box::new(reader),
                compression,
                decoding: Some(decoding),
                parked: None,
            }
        }
    })
}

/// Reads the first bytes of the archive from `input` (at least enough to
/// recognise a compression format, unless the input is shorter), into a
/// buffer of one chunk.
fn read_head(input: &mut UnixStream) -> io::Result<Vec<u8>> {
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

/// Counts the compressed bytes read from the socket.
struct Counting<'a, R> {
    inner: R,
    count: &'a Cell<u64>,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

/// The decoding thread's work: decodes the input into chunks for the parsing
/// thread until the end, an error, the ratio limit, or the parser stops.
fn decode(go: Go) {
    let count = Cell::new(0);
    let input = BufReader::with_capacity(
        CHUNK,
        Counting {
            inner: go.input,
            count: &count,
        },
    );
    let mut decoder = match codecs::decoder(go.compression, input) {
        Ok(decoder) => decoder,
        Err(e) => {
            let _ = go.tx.send(Err(e));
            return;
        }
    };
    let mut decoded: u64 = 0;
    loop {
        let mut buf = go.recycle.try_recv().unwrap_or_else(|_| vec![0u8; CHUNK]);
        let n = match read_retrying(&mut decoder, &mut buf) {
            Ok(0) => return, // end of input: dropping `tx` tells the reader
            Ok(n) => n,
            Err(e) => {
                let name = go.compression.name();
                let _ = go
                    .tx
                    .send(Err(io::Error::new(e.kind(), format!("{name} stream: {e}"))));
                return;
            }
        };
        decoded += n as u64;
        if decoded > RATIO_GRACE && decoded / count.get().max(1) > go.max_ratio {
            go.tripped.store(true, Ordering::Relaxed);
            let _ = go
                .tx
                .send(Err(io::Error::other("compression ratio limit exceeded")));
            return;
        }
        if go.tx.send(Ok((buf, n))).is_err() {
            return; // the parser stopped
        }
    }
}

/// One read, tried again when interrupted.
fn read_retrying(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match reader.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}
