//! Reading the worker's frames off its job socket: the one reader, for the
//! start of a job and for the job itself.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::UnixStream;

use crate::error::{Error, Result};
use crate::wire::{decode, frame_at, WorkerMsg, MAX_WORKER_FRAME};

/// How much more the reader asks the socket for at a time, at most.
const READ_AHEAD: usize = 64 * 1024;

/// The buffer's first size: a job's `Warm`, `Confined` and `Done` frames are
/// a few bytes, and zeroing 64 KiB for each was a measurable share of a
/// tiny job.
const FIRST_READ: usize = 4 * 1024;

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
    /// A reader that allocates its buffer on first use, and grows it as
    /// frames need.
    pub(crate) fn new() -> Self {
        Frames {
            inbox: Vec::new(),
            end: 0,
        }
    }

    /// Makes room for the next read when the buffer is full or shorter than
    /// the frame being received: four times larger (at least
    /// [`FIRST_READ`], at least `frame`), never past `want`. A job's few
    /// small frames never make it grow past its first size.
    fn grow(&mut self, frame: usize, want: usize) {
        let len = self.inbox.len();
        if len < want && (self.end == len || frame > len) {
            let grown = (len * 4).max(FIRST_READ).max(frame).min(want);
            self.inbox.resize(grown, 0);
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
            self.grow(frame, want);
            let limit = self.inbox.len().min(want);
            let mut read_buf = ReadBuf::new(&mut self.inbox[self.end..limit]);
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
        WorkerMsg::Warm { .. } => "Warm",
        WorkerMsg::Confined => "Confined",
        WorkerMsg::Reports(_) => "Reports",
        WorkerMsg::Corrections(_) => "Corrections",
        WorkerMsg::Done(_) => "Done",
        WorkerMsg::Failed(_) => "Failed",
        WorkerMsg::Data(_) => "Data",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::encode_frame;
    use tokio::io::AsyncWriteExt;

    fn data(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed)
            .collect()
    }

    #[tokio::test]
    async fn small_and_large_frames_arrive_whole_and_in_order() {
        let (mut worker, mut ours) = UnixStream::pair().expect("socket pair");
        // Sizes around the first buffer, the read-ahead and the maximum.
        let sizes = [0, 10, 4_000, 4_100, 70_000, 3, MAX_WORKER_FRAME - 16, 1];
        let sent: Vec<Vec<u8>> = sizes
            .iter()
            .enumerate()
            .map(|(i, &len)| data(len, i as u8))
            .collect();
        let mut bytes = encode_frame(&WorkerMsg::Warm {
            awaits_clone: false,
        });
        for chunk in &sent {
            bytes.extend(encode_frame(&WorkerMsg::Data(chunk.clone())));
        }
        let writer = tokio::spawn(async move {
            // In uneven pieces, so frames straddle reads.
            for piece in bytes.chunks(7_777) {
                worker.write_all(piece).await.expect("writing");
            }
        });
        let mut frames = Frames::new();
        let first = frames.next(&mut ours).await.expect("a frame");
        assert!(matches!(first, Some(WorkerMsg::Warm { .. })));
        for expected in &sent {
            match frames.next(&mut ours).await.expect("a frame") {
                Some(WorkerMsg::Data(got)) => assert_eq!(&got, expected),
                other => panic!("expected data, got {:?}", other.map(|m| name(&m))),
            }
        }
        writer.await.expect("writer");
        assert!(frames.next(&mut ours).await.expect("end").is_none());
        assert!(frames.is_empty());
    }

    #[tokio::test]
    async fn a_few_small_frames_keep_the_first_buffer() {
        let (mut worker, mut ours) = UnixStream::pair().expect("socket pair");
        let mut bytes = encode_frame(&WorkerMsg::Warm {
            awaits_clone: false,
        });
        bytes.extend(encode_frame(&WorkerMsg::Confined));
        worker.write_all(&bytes).await.expect("writing");
        drop(worker);
        let mut frames = Frames::new();
        assert!(matches!(
            frames.next(&mut ours).await,
            Ok(Some(WorkerMsg::Warm { .. }))
        ));
        assert!(matches!(
            frames.next(&mut ours).await,
            Ok(Some(WorkerMsg::Confined))
        ));
        assert!(matches!(frames.next(&mut ours).await, Ok(None)));
        assert_eq!(frames.inbox.len(), FIRST_READ);
    }
}
