//! The pump: moves the caller's archive bytes into the worker's socket, one
//! buffer at a time, then shuts the socket's write side (end of archive). When
//! asked, it hashes the bytes on their way (the blob digest): the caller's own
//! digest, which no worker can forge.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::UnixStream;

use crate::error::{Error, Result};

/// Bytes read from the caller's reader at a time, at most.
const PUMP_BUFFER: usize = 256 * 1024;

/// The buffer a job starts with: a small archive (a tiny job's is a few KiB)
/// is never copied through more, and allocating and zeroing 256 KiB for it was
/// a measurable share of a tiny job's CPU. A read that fills the buffer makes
/// the next one four times larger, up to [`PUMP_BUFFER`].
const FIRST_BUFFER: usize = 16 * 1024;

/// One buffer of the archive in flight (memory stays bounded whatever the
/// archive's size), and how far the archive got.
#[derive(Debug)]
pub(crate) struct Pump {
    buf: Box<[u8]>,
    /// The last read filled `buf`: the next one gets a larger buffer.
    grow: bool,
    /// `buf[start..end]` is read and not yet sent.
    start: usize,
    end: usize,
    /// The caller's reader reached its end.
    reader_done: bool,
    /// The socket's write side is shut: the worker saw the end of the archive.
    shut: bool,
    /// The worker stopped reading (it failed or died; its frames say why).
    broken: bool,
    bytes: u64,
    /// The SHA-256 of every byte read so far, if asked for.
    hasher: Option<Sha256>,
}

impl Pump {
    /// A pump; with `hash`, it computes the digest of what it reads.
    pub(crate) fn new(hash: bool) -> Self {
        Pump {
            buf: vec![0; FIRST_BUFFER].into_boxed_slice(),
            grow: false,
            start: 0,
            end: 0,
            reader_done: false,
            shut: false,
            broken: false,
            bytes: 0,
            hasher: hash.then(Sha256::new),
        }
    }

    /// `sha256:<lowercase hex>` of the whole archive, once it has all been
    /// read (and if the pump hashes).
    pub(crate) fn digest(&self) -> Option<String> {
        if !self.reader_done {
            return None;
        }
        let hash = self.hasher.clone()?.finalize();
        let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
        Some(format!("sha256:{hex}"))
    }

    /// Bytes read from the caller's reader so far.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Whether the whole archive was read and handed to the socket.
    pub(crate) fn all_sent(&self) -> bool {
        self.reader_done && self.start == self.end
    }

    /// Moves bytes from `reader` to `socket` until one side would block.
    pub(crate) fn poll<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut R,
        socket: &mut UnixStream,
        cx: &mut Context<'_>,
    ) -> Result<()> {
        loop {
            if self.shut || self.broken {
                return Ok(());
            }
            let progress = if self.start < self.end {
                self.poll_send(socket, cx)?
            } else if self.reader_done {
                // End of archive: shutdown(SHUT_WR).
                match Pin::new(&mut *socket).poll_shutdown(cx) {
                    Poll::Ready(_) => {
                        self.shut = true;
                        Poll::Ready(())
                    }
                    Poll::Pending => Poll::Pending,
                }
            } else {
                self.poll_fill(reader, cx)?
            };
            if progress.is_pending() {
                return Ok(());
            }
        }
    }

    /// Writes buffered bytes to the worker.
    fn poll_send(&mut self, socket: &mut UnixStream, cx: &mut Context<'_>) -> Result<Poll<()>> {
        match Pin::new(socket).poll_write(cx, &self.buf[self.start..self.end]) {
            Poll::Ready(Ok(n)) => self.start += n,
            Poll::Ready(Err(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                ) =>
            {
                self.broken = true;
            }
            Poll::Ready(Err(e)) => return Err(Error::io("writing to the worker", e)),
            Poll::Pending => return Ok(Poll::Pending),
        }
        Ok(Poll::Ready(()))
    }

    /// Refills the (empty) buffer from the caller's reader.
    fn poll_fill<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut R,
        cx: &mut Context<'_>,
    ) -> Result<Poll<()>> {
        if self.grow {
            let len = (self.buf.len() * 4).min(PUMP_BUFFER);
            self.buf = vec![0; len].into_boxed_slice();
            self.grow = false;
        }
        let mut read_buf = ReadBuf::new(&mut self.buf);
        match Pin::new(reader).poll_read(cx, &mut read_buf) {
            Poll::Ready(Ok(())) => {
                let n = read_buf.filled().len();
                if n == 0 {
                    self.reader_done = true;
                } else {
                    if let Some(hasher) = &mut self.hasher {
                        hasher.update(read_buf.filled());
                    }
                    self.grow = n == self.buf.len() && n < PUMP_BUFFER;
                    self.start = 0;
                    self.end = n;
                    self.bytes += n as u64;
                }
            }
            Poll::Ready(Err(e)) => return Err(Error::Read(e.into())),
            Poll::Pending => return Ok(Poll::Pending),
        }
        Ok(Poll::Ready(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// Pumps `archive` through a socket pair; returns what the other end
    /// read and the buffer the pump ended with.
    async fn pump_through(archive: Vec<u8>) -> (Vec<u8>, usize) {
        let (mut ours, mut theirs) = UnixStream::pair().expect("socket pair");
        let reading = tokio::spawn(async move {
            let mut got = Vec::new();
            theirs
                .read_to_end(&mut got)
                .await
                .expect("reading the pump");
            got
        });
        let mut pump = Pump::new(false);
        let mut reader = &archive[..];
        std::future::poll_fn(|cx| {
            pump.poll(&mut reader, &mut ours, cx).expect("pumping");
            match pump.shut {
                true => Poll::Ready(()),
                false => Poll::Pending,
            }
        })
        .await;
        (reading.await.expect("reader task"), pump.buf.len())
    }

    #[tokio::test]
    async fn a_small_archive_keeps_the_small_buffer() {
        let archive: Vec<u8> = (0..2560u32).map(|i| i as u8).collect();
        let (got, buffer) = pump_through(archive.clone()).await;
        assert_eq!(got, archive);
        assert_eq!(buffer, FIRST_BUFFER);
    }

    #[tokio::test]
    async fn a_large_archive_grows_the_buffer_and_loses_nothing() {
        let archive: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let (got, buffer) = pump_through(archive.clone()).await;
        assert_eq!(got, archive);
        assert_eq!(buffer, PUMP_BUFFER);
    }
}
