//! The parsing thread's view of the input: one buffered [`Reader`] over either
//! source, the socket itself (plain tar) or the decoding thread's chunks.
//! Both call a hook before they wait (to flush pending reports), and neither
//! replays old bytes after an error.

use std::io::{self, Read};
use std::os::unix::net::UnixStream;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::sync::Arc;

use super::{Piece, CHUNK};

/// Where a [`Reader`] gets its bytes.
pub(crate) trait Source {
    /// Reads of this size or more skip the buffer (see [`Source::read_into`]).
    const DIRECT: usize;

    /// The next bytes, into `buf` (or in a buffer swapped for it); 0 at the
    /// end. Calls `wait` before it blocks.
    fn refill(&mut self, buf: &mut Vec<u8>, wait: &mut dyn FnMut()) -> io::Result<usize>;

    /// Reads straight into `out` (only asked for reads of [`Source::DIRECT`] bytes).
    fn read_into(&mut self, out: &mut [u8], wait: &mut dyn FnMut()) -> io::Result<usize>;
}

/// A buffered reader over a [`Source`].
pub(crate) struct Reader<S> {
    source: S,
    buf: Vec<u8>,
    pos: usize,
    len: usize,
    on_wait: Option<Box<dyn FnMut()>>,
}

impl<S: Source> Reader<S> {
    /// A reader of the first `len` bytes of `buf`, then of `source`.
    pub(crate) fn new(source: S, buf: Vec<u8>, len: usize) -> Self {
        Reader {
            source,
            buf,
            pos: 0,
            len,
            on_wait: None,
        }
    }

    /// Runs `f` whenever the reader is about to wait for input (used to flush
    /// pending reports, so a slow archive still streams its results).
    pub(crate) fn on_wait(&mut self, f: impl FnMut() + 'static) {
        self.on_wait = Some(Box::new(f));
    }

    pub(crate) fn source(&self) -> &S {
        &self.source
    }
}

impl<S: Source> Read for Reader<S> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        let Reader {
            source,
            buf,
            pos,
            len,
            on_wait,
        } = self;
        let mut wait = || {
            if let Some(f) = on_wait.as_mut() {
                f();
            }
        };
        if *pos == *len {
            if out.len() >= S::DIRECT {
                return source.read_into(out, &mut wait);
            }
            // Nothing buffered after an error: never replay old bytes.
            *pos = 0;
            *len = 0;
            *len = source.refill(buf, &mut wait)?;
        }
        let n = out.len().min(*len - *pos);
        out[..n].copy_from_slice(&buf[*pos..*pos + n]);
        *pos += n;
        Ok(n)
    }
}

/// The socket's first buffered read, at most; each later one may be four
/// times larger, up to a chunk. A small archive (a tiny job's is a few KiB)
/// never touches more memory than this.
const FIRST_REFILL: usize = 16 * 1024;

/// Plain tar, read from the socket on the parsing thread itself: no thread
/// hand-off and one copy less. Reads of a chunk or more go straight into the
/// caller's buffer; smaller ones (headers) through a buffer of one chunk.
pub(crate) struct Socket {
    socket: UnixStream,
    /// The last buffered read filled the buffer: the next may be larger.
    filled: bool,
}

impl Socket {
    /// Plain tar from `socket`.
    pub(crate) fn new(socket: UnixStream) -> Self {
        Socket {
            socket,
            filled: true,
        }
    }
}

impl Source for Socket {
    const DIRECT: usize = CHUNK;

    fn refill(&mut self, buf: &mut Vec<u8>, wait: &mut dyn FnMut()) -> io::Result<usize> {
        if buf.len() < CHUNK && self.filled {
            // Grown a step at a time, while reads fill it: zeroing a whole
            // chunk at once (and faulting in its pages) was a measurable
            // share of a tiny job.
            let grown = (buf.len() * 4).clamp(FIRST_REFILL, CHUNK);
            buf.resize(grown, 0);
        }
        let n = self.read_into(buf, wait)?;
        self.filled = n == buf.len();
        Ok(n)
    }

    /// One read from the socket: without waiting if possible, else after `wait`.
    fn read_into(&mut self, into: &mut [u8], wait: &mut dyn FnMut()) -> io::Result<usize> {
        use rustix::net::{recv, RecvFlags};
        loop {
            match recv(&self.socket, &mut *into, RecvFlags::DONTWAIT) {
                Ok((n, _)) => return Ok(n),
                Err(rustix::io::Errno::INTR) => {}
                Err(rustix::io::Errno::AGAIN) => break,
                Err(e) => return Err(e.into()),
            }
        }
        wait();
        loop {
            match self.socket.read(into) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => return other,
            }
        }
    }
}

/// The decoding thread's chunks, through a bounded channel; emptied buffers
/// go back to that thread to be filled again.
pub(crate) struct Channel {
    pub(crate) rx: Receiver<Piece>,
    pub(crate) recycle: Sender<Vec<u8>>,
    pub(crate) ratio_exceeded: Arc<AtomicBool>,
}

impl Channel {
    /// `true` once decoding stopped on the compression-ratio limit.
    pub(crate) fn ratio_exceeded(&self) -> Arc<AtomicBool> {
        self.ratio_exceeded.clone()
    }
}

impl Source for Channel {
    /// Never: a chunk is in memory already; copying it is all there is to do.
    const DIRECT: usize = usize::MAX;

    fn refill(&mut self, buf: &mut Vec<u8>, wait: &mut dyn FnMut()) -> io::Result<usize> {
        let piece = match self.rx.try_recv() {
            Ok(piece) => piece,
            Err(TryRecvError::Disconnected) => return Ok(0),
            Err(TryRecvError::Empty) => {
                wait();
                match self.rx.recv() {
                    Ok(piece) => piece,
                    Err(_) => return Ok(0),
                }
            }
        };
        let (chunk, len) = piece?;
        let old = std::mem::replace(buf, chunk);
        if old.capacity() > 0 {
            let _ = self.recycle.send(old);
        }
        Ok(len)
    }

    fn read_into(&mut self, _: &mut [u8], _: &mut dyn FnMut()) -> io::Result<usize> {
        unreachable!("a channel is read through its chunks")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Reads `input` through a socket in 512-byte reads (tar's header size);
    /// returns what came out and the buffer's final length.
    fn read_through_socket(input: Vec<u8>) -> (Vec<u8>, usize) {
        let (mut ours, theirs) = UnixStream::pair().expect("socket pair");
        let writer = std::thread::spawn(move || ours.write_all(&input));
        let mut reader = Reader::new(Socket::new(theirs), Vec::new(), 0);
        let mut out = Vec::new();
        let mut block = [0u8; 512];
        loop {
            match reader.read(&mut block).expect("reading") {
                0 => break,
                n => out.extend_from_slice(&block[..n]),
            }
        }
        writer.join().expect("writer").expect("writing");
        (out, reader.buf.len())
    }

    #[test]
    fn a_small_input_touches_only_the_first_buffer() {
        let input: Vec<u8> = (0..2560u32).map(|i| i as u8).collect();
        let (out, buffer) = read_through_socket(input.clone());
        assert_eq!(out, input);
        assert_eq!(buffer, FIRST_REFILL);
    }

    #[test]
    fn a_large_input_grows_the_buffer_to_a_chunk_and_loses_nothing() {
        let input: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let (out, buffer) = read_through_socket(input.clone());
        assert_eq!(out, input);
        assert_eq!(buffer, CHUNK);
    }
}
