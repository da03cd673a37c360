//! Reading a packing worker's frames: a `Data` frame's bytes go from the
//! socket straight into the caller's buffer (no decoding, no copy); every
//! other frame is read whole (at most `MAX_WORKER_FRAME`) and decoded.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::UnixStream;

use crate::error::{Error, Result};
use crate::wire::{data_tag, decode, WorkerMsg, MAX_WORKER_FRAME};

/// The most bytes of a frame's start read at a time (length, variant, and a
/// `Data` frame's byte count).
const HEAD: usize = 16;

/// What one step of reading gave.
pub(crate) enum Step {
    /// This many bytes of archive data were put into the buffer.
    Data(usize),
    /// A frame other than `Data`.
    Message(WorkerMsg),
    /// The worker closed its end between frames.
    Closed,
}

/// The reader's state between steps.
#[derive(Debug, Default)]
pub(crate) struct DataFrames {
    /// Bytes read and not used yet (a frame's start, or data after it).
    head: Vec<u8>,
    /// Bytes of the current `Data` frame still to come.
    data_left: usize,
    /// A frame being read whole, and how long it is.
    message: Vec<u8>,
    message_len: usize,
}

impl DataFrames {
    /// Reads the next step from `socket` into `buf` (data) or a message.
    pub(crate) fn poll_step(
        &mut self,
        socket: &mut UnixStream,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<Result<Step>> {
        loop {
            if self.data_left > 0 {
                return self.poll_data(socket, cx, buf);
            }
            if self.message_len > 0 {
                return self.poll_message(socket, cx);
            }
            if self.start_frame()? {
                continue;
            }
            // More of the frame's start is needed.
            let had = self.head.len();
            match ready!(poll_fill(socket, cx, &mut self.head, HEAD)) {
                Err(e) => return Poll::Ready(closed_or(e)),
                Ok(0) if had == 0 => return Poll::Ready(Ok(Step::Closed)),
                Ok(0) => return Poll::Ready(Err(Error::Protocol("a frame cut short".into()))),
                Ok(_) => {}
            }
        }
    }

    /// Starts the frame whose start is in `head`, if enough of it is:
    /// `true` once started.
    fn start_frame(&mut self) -> Result<bool> {
        if self.head.len() < 5 {
            return Ok(false);
        }
        let len =
            u32::from_le_bytes([self.head[0], self.head[1], self.head[2], self.head[3]]) as usize;
        if len > MAX_WORKER_FRAME || len == 0 {
            return Err(Error::Protocol(format!("a frame of {len} bytes")));
        }
        if self.head[4] != data_tag() {
            self.message_len = len;
            let take = self.head.len().min(4 + len);
            self.message = self.head[4..take].to_vec();
            self.head.drain(..take);
            return Ok(true);
        }
        // `Data`: the byte count, a varint of at most 10 bytes.
        let Some((count, used)) = varint(&self.head[5..]) else {
            return match self.head.len() < HEAD {
                true => Ok(false),
                false => Err(Error::Protocol("a malformed Data frame".into())),
            };
        };
        if 1 + used + count != len {
            return Err(Error::Protocol(
                "a Data frame whose lengths disagree".into(),
            ));
        }
        self.head.drain(..5 + used);
        self.data_left = count;
        Ok(true)
    }

    /// Data bytes into `buf`: what is left in `head`, then from the socket.
    fn poll_data(
        &mut self,
        socket: &mut UnixStream,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<Result<Step>> {
        let want = self.data_left.min(buf.remaining());
        if !self.head.is_empty() {
            let n = want.min(self.head.len());
            buf.put_slice(&self.head[..n]);
            self.head.drain(..n);
            self.data_left -= n;
            return Poll::Ready(Ok(Step::Data(n)));
        }
        let unfilled = buf.initialize_unfilled_to(want);
        let mut read = ReadBuf::new(unfilled);
        match Pin::new(&mut *socket).poll_read(cx, &mut read) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(closed_or(e)),
            Poll::Ready(Ok(())) => {
                let n = read.filled().len();
                if n == 0 {
                    return Poll::Ready(Err(Error::Protocol("a Data frame cut short".into())));
                }
                buf.advance(n);
                self.data_left -= n;
                Poll::Ready(Ok(Step::Data(n)))
            }
        }
    }

    /// The rest of a non-`Data` frame, then the message.
    fn poll_message(
        &mut self,
        socket: &mut UnixStream,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Step>> {
        while self.message.len() < self.message_len {
            match ready!(poll_fill(socket, cx, &mut self.message, self.message_len)) {
                Err(e) => return Poll::Ready(closed_or(e)),
                Ok(0) => return Poll::Ready(Err(Error::Protocol("a frame cut short".into()))),
                Ok(_) => {}
            }
        }
        let message = std::mem::take(&mut self.message);
        self.message_len = 0;
        Poll::Ready(
            decode::<WorkerMsg>(&message)
                .map(Step::Message)
                .map_err(Error::Protocol),
        )
    }
}

/// Reads into `buf` up to `upto` bytes in all; how many came (0: the end).
fn poll_fill(
    socket: &mut UnixStream,
    cx: &mut Context<'_>,
    buf: &mut Vec<u8>,
    upto: usize,
) -> Poll<io::Result<usize>> {
    let had = buf.len();
    buf.resize(upto, 0);
    let mut read = ReadBuf::new(&mut buf[had..]);
    let polled = Pin::new(&mut *socket).poll_read(cx, &mut read);
    let n = read.filled().len();
    buf.truncate(had + n);
    polled.map_ok(|()| n)
}

/// A reset socket is a closed one; any other error is the caller's I/O error.
fn closed_or(e: io::Error) -> Result<Step> {
    match e.kind() {
        io::ErrorKind::ConnectionReset => Ok(Step::Closed),
        _ => Err(Error::io("reading from the worker", e)),
    }
}

/// A LEB128 varint at the start of `bytes` (postcard's lengths): the value
/// and how many bytes it took, if it is complete.
fn varint(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut value = 0u64;
    for (i, byte) in bytes.iter().take(10).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return usize::try_from(value).ok().map(|v| (v, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints() {
        assert_eq!(varint(&[0]), Some((0, 1)));
        assert_eq!(varint(&[0x80, 0x80, 0x10]), Some((256 << 10, 3)));
        assert_eq!(varint(&[0x80]), None);
    }
}
