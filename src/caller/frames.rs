//! Reading the worker's frames off its job socket: the one reader, for the
//! start of a job and for the job itself.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::UnixStream;

use crate::error::{Error, Result};
use crate::wire::{decode, frame_at, WorkerMsg, MAX_WORKER_FRAME};

/// How much more the reader asks the socket for at a time.
const READ_AHEAD: usize = 64 * 1024;

/// The bytes received from a worker and not yet decoded. The worker is
/// untrusted: a frame longer than [`MAX_WORKER_FRAME`] or that does not decode
/// is a protocol error, and at most one frame's worth is ever buffered.
#[derive(Debug)]
pub(crate) struct Frames {
    /// Zeroed once as it grows (zeroing 64 KiB at every read was a
    /// measurable share of a tiny job); `inbox[..end]` is what was received.
    inbox: Vec<u8>,
    end: usize,
}

impl Frames {
    /// A reader that allocates its buffer on first use.
    pub(crate) fn new() -> Self {
        Frames {
            inbox: Vec::new(),
            end: 0,
        }
    }

    /// A reader with its buffer allocated up front (for a job's many frames).
    pub(crate) fn with_buffer() -> Self {
        Frames {
            inbox: vec![0; READ_AHEAD],
            end: 0,
        }
    }

    /// Whether bytes past the last frame were received.
    pub(crate) fn is_empty(&self) -> bool {
        self.end == 0
    }

    /// The next complete frame from `socket`; `None` when the worker closed
    /// (or reset) its end.
    pub(crate) async fn next(&mut self, socket: &mut UnixStream) -> Result<Option<WorkerMsg>> {
        std::future::poll_fn(|cx| self.poll_next(socket, cx)).await
    }

    /// Polls for the next complete frame from `socket`.
    pub(crate) fn poll_next(
        &mut self,
        socket: &mut UnixStream,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<WorkerMsg>>> {
        loop {
            let received = &self.inbox[..self.end];
            if let Some(range) = frame_at(received, MAX_WORKER_FRAME).map_err(Error::Protocol)? {
                let msg = decode::<WorkerMsg>(&received[range.clone()]).map_err(Error::Protocol);
                self.inbox.copy_within(range.end..self.end, 0);
                self.end -= range.end;
                return Poll::Ready(msg.map(Some));
            }
            // The rest of a large frame (a packing job's data) in one read.
            let frame = match received {
                [a, b, c, d, ..] => 4 + u32::from_le_bytes([*a, *b, *c, *d]) as usize,
                _ => 0,
            };
            let want = (self.end + READ_AHEAD).max(frame).min(MAX_WORKER_FRAME + 4);
            if self.inbox.len() < want {
                self.inbox.resize(want, 0);
            }
            let mut read_buf = ReadBuf::new(&mut self.inbox[self.end..want]);
            let polled = Pin::new(&mut *socket).poll_read(cx, &mut read_buf);
            let n = read_buf.filled().len();
            self.end += n;
            match polled {
                Poll::Ready(Ok(())) if n == 0 => return Poll::Ready(Ok(None)),
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::ConnectionReset => {
                    return Poll::Ready(Ok(None))
                }
                Poll::Ready(Err(e)) => {
                    return Poll::Ready(Err(Error::io("reading from the worker", e)))
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// A message's name, for protocol errors (never its untrusted contents).
pub(crate) fn name(msg: &WorkerMsg) -> &'static str {
    match msg {
        WorkerMsg::Warm => "Warm",
        WorkerMsg::Confined => "Confined",
        WorkerMsg::Reports(_) => "Reports",
        WorkerMsg::Corrections(_) => "Corrections",
        WorkerMsg::Done(_) => "Done",
        WorkerMsg::Failed(_) => "Failed",
        WorkerMsg::Data(_) => "Data",
    }
}
