//! The driver: one job, seen from the caller's runtime.
//!
//! A [`Job`] pumps the caller's reader into the worker's socket and reads the
//! worker's frames back, in the same poll, so that nothing deadlocks whatever the
//! caller does: poll the entry stream, only await [`Job::finish`], or drop the job
//! (which kills the worker; it is reaped in the background). Memory is bounded by
//! one pump buffer, one frame buffer and one frame's worth of reports.
//!
//! No task is spawned: the job makes progress only while it is polled, and the
//! reader needs no `'static` or `Send` bound.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, Interest, ReadBuf};
use tokio::net::UnixStream;

use crate::caller::sandbox::{Arrival, Inner, Warm};
use crate::error::{Error, Result};
use crate::options::{Compression, Options};
use crate::report::{EntryKind, EntryReport, Outcome, Summary};
use crate::sys;
use crate::wire::MAX_BATCH_ENTRIES;
use crate::wire::{
    decode, encode_frame, frame_at, JobHeader, WireError, WireReport, WorkerMsg, HEADER_MAGIC,
    MAX_REPORTED_PATH, MAX_WORKER_FRAME,
};

/// Bytes read from the caller's reader at a time.
const PUMP_BUFFER: usize = 256 * 1024;
/// Socket send buffer asked for (the kernel doubles it, and caps it at
/// `net.core.wmem_max`).
const SEND_BUFFER: usize = 1024 * 1024;

/// A running extraction: a stream of per-entry reports, then a summary.
///
/// Poll it as a [`Stream`](futures_core::Stream) (or with [`Job::next`]) to see each
/// entry as it is handled, then call [`Job::finish`]; or call `finish` directly.
/// Dropping a job before it finished kills its worker.
///
/// ```no_run
/// # async fn demo(sandbox: sandtar::Sandbox) -> sandtar::Result<()> {
/// let archive: &[u8] = &[]; // any tokio::io::AsyncRead + Unpin
/// let mut job = sandbox.start(archive, "/tmp/out", &sandtar::Options::default()).await?;
/// while let Some(report) = job.next().await {
///     let report = report?;
///     if report.outcome != sandtar::Outcome::Written {
///         eprintln!("{}: {}", report.path.display(), report.outcome.reason().unwrap_or_default());
///     }
/// }
/// let summary = job.finish().await?;
/// # let _ = summary; Ok(()) }
/// ```
#[derive(Debug)]
pub struct Job<R> {
    reader: R,
    socket: UnixStream,
    worker: crate::caller::child::Worker,
    exit: Option<AsyncFd<OwnedFd>>,
    pump: Pump,
    inbox: Vec<u8>,
    queue: VecDeque<EntryReport>,
    counts: Counts,
    state: State,
    started: Instant,
    span: tracing::Span,
    /// From the options: checked against the worker's digest.
    expected_diff_id: Option<String>,
}

#[derive(Debug)]
struct Pump {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    reader_done: bool,
    shut: bool,
    /// The worker stopped reading (it failed or died; its frames say why).
    broken: bool,
    bytes: u64,
}

#[derive(Debug, Default)]
struct Counts {
    entries: u64,
    written: u64,
    listed: u64,
    skipped: u64,
    rejected: u64,
    failed: u64,
    bytes_written: u64,
}

#[derive(Debug)]
enum State {
    Running,
    /// The worker's socket closed without a last message: wait for its exit.
    Dying,
    Finished {
        result: Result<Summary>,
        error_seen: bool,
    },
    Taken,
}

/// Opens the destination, hands it to a warm worker, waits until the worker is
/// confined, and returns the job.
pub(crate) async fn start<R: AsyncRead + Unpin>(
    inner: &Inner,
    reader: R,
    dest: &Path,
    options: &Options,
) -> Result<Job<R>> {
    let started = Instant::now();
    static JOB_IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let id = JOB_IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let span = tracing::info_span!(
        "sandtar_job",
        id,
        dest = %dest.display(),
        worker_pid = tracing::field::Empty
    );
    let result = start_in(inner, reader, dest, options, started, span.clone()).await;
    if let Err(e) = &result {
        tracing::warn!(parent: &span, error = %e, "job could not start");
    }
    result
}

async fn start_in<R: AsyncRead + Unpin>(
    inner: &Inner,
    reader: R,
    dest: &Path,
    options: &Options,
    started: Instant,
    span: tracing::Span,
) -> Result<Job<R>> {
    let (dir, canonical) = open_destination(dest)?;
    let header = JobHeader {
        dest: canonical.as_os_str().as_bytes().to_vec(),
        options: options.clone(),
    };
    let warm = inner.warm_worker().await?;
    let warm = match confine(warm, &header, &dir).await {
        Err(Error::DestinationChanged { .. }) => {
            // This worker may predate a mount: try once with a new one.
            tracing::debug!(parent: &span, "destination not seen by a warm worker; retrying on a fresh one");
            let fresh = inner.fresh_worker().await?;
            confine(fresh, &header, &dir).await
        }
        other => other,
    };
    let warm = warm.map_err(|e| match e {
        Error::DestinationChanged { .. } => Error::DestinationChanged {
            path: dest.to_path_buf(),
        },
        e => e,
    })?;
    span.record("worker_pid", warm.worker.pid);
    tracing::debug!(parent: &span, compression = options.compression.name(), "worker confined");
    let mut job = Job::new(reader, warm, started);
    job.span = span;
    job.expected_diff_id = options.expected_diff_id.clone();
    Ok(job)
}

impl<R> Job<R> {
    /// A job driving `warm`'s worker, which is confined and waits for bytes.
    fn new(reader: R, warm: Warm, started: Instant) -> Self {
        // More of the archive in flight: fewer wake-ups of the worker and of this
        // task per byte (best effort: the kernel caps it at `wmem_max`).
        let _ = rustix::net::sockopt::set_socket_send_buffer_size(&warm.socket, SEND_BUFFER);
        let exit = warm
            .worker
            .pidfd()
            .and_then(|fd| fd.try_clone().ok())
            .and_then(|fd| sys::async_fd(fd, Interest::READABLE).ok());
        Job {
            reader,
            socket: warm.socket,
            worker: warm.worker,
            exit,
            pump: Pump {
                buf: vec![0; PUMP_BUFFER].into_boxed_slice(),
                start: 0,
                end: 0,
                reader_done: false,
                shut: false,
                broken: false,
                bytes: 0,
            },
            inbox: Vec::with_capacity(64 * 1024),
            queue: VecDeque::new(),
            counts: Counts::default(),
            state: State::Running,
            started,
            span: tracing::Span::none(),
            expected_diff_id: None,
        }
    }
}

/// Opens `dest` as a directory and finds its absolute path.
fn open_destination(dest: &Path) -> Result<(File, PathBuf)> {
    let problem = |problem: String| Error::Destination {
        path: dest.to_path_buf(),
        problem,
    };
    let dir = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dest)
        .map_err(|e| {
            problem(match e.raw_os_error() {
                Some(libc::ENOENT) => "does not exist".into(),
                Some(libc::ENOTDIR) => "is not a directory".into(),
                Some(libc::EACCES) => "cannot be opened: permission denied".into(),
                _ => format!("cannot be opened: {e}"),
            })
        })?;
    let stat = rustix::fs::fstatvfs(&dir).map_err(|e| problem(format!("statvfs failed: {e}")))?;
    if stat.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY) {
        return Err(problem("is on a read-only filesystem".into()));
    }
    let link = std::fs::read_link(format!("/proc/self/fd/{}", dir.as_raw_fd()))
        .or_else(|_| std::fs::canonicalize(dest))
        .map_err(|e| problem(format!("cannot resolve its absolute path: {e}")))?;
    if link.as_os_str().as_bytes().ends_with(b" (deleted)") {
        return Err(problem("was deleted".into()));
    }
    Ok((dir, link))
}

/// Reads the `Warm` message a new worker sends once it is set up.
pub(crate) async fn expect_warm(arrival: Arrival) -> Result<Warm> {
    let Arrival { worker, socket, .. } = arrival;
    let std_socket = std::os::unix::net::UnixStream::from(socket);
    std_socket
        .set_nonblocking(true)
        .map_err(|e| Error::io("worker socket", e))?;
    let mut socket = UnixStream::from_std(std_socket).map_err(|e| Error::io("worker socket", e))?;
    let mut inbox = Vec::new();
    match read_message(&mut socket, &mut inbox).await? {
        Some(WorkerMsg::Warm) => Ok(Warm { worker, socket }),
        Some(WorkerMsg::Failed(WireError::Confinement(reason))) => {
            Err(Error::ConfinementUnavailable { reason })
        }
        Some(other) => Err(Error::Protocol(format!(
            "expected Warm, got {}",
            msg_name(&other)
        ))),
        None => Err(died(worker).await),
    }
}

/// Sends the job header with the destination's descriptor and waits until the
/// worker is confined.
async fn confine(mut warm: Warm, header: &JobHeader, dir: &File) -> Result<Warm> {
    let mut message = HEADER_MAGIC.to_vec();
    message.extend_from_slice(&encode_frame(header));
    let sent = warm
        .socket
        .async_io(Interest::WRITABLE, || {
            sys::send_with_fds(warm.socket.as_fd(), &message, &[dir.as_fd()])
        })
        .await
        .map_err(|e| Error::io("sending the job", e))?;
    warm.socket
        .write_all(&message[sent..])
        .await
        .map_err(|e| Error::io("sending the job", e))?;
    let mut inbox = Vec::new();
    match read_message(&mut warm.socket, &mut inbox).await? {
        Some(WorkerMsg::Confined) if inbox.is_empty() => Ok(warm),
        Some(WorkerMsg::Failed(WireError::DestinationChanged)) => Err(Error::DestinationChanged {
            path: PathBuf::new(),
        }),
        Some(WorkerMsg::Failed(WireError::Confinement(reason))) => {
            Err(Error::ConfinementUnavailable { reason })
        }
        Some(WorkerMsg::Failed(other)) => Err(Error::Worker(format!("{other:?}"))),
        Some(other) => Err(Error::Protocol(format!(
            "expected Confined, got {}",
            msg_name(&other)
        ))),
        None => Err(died(warm.worker).await),
    }
}

/// Waits for a worker that closed its socket to exit, and says how it ended.
async fn died(mut worker: crate::caller::child::Worker) -> Error {
    worker.kill();
    let pid = worker.pid;
    if let Some(fd) = worker.pidfd().and_then(|fd| fd.try_clone().ok()) {
        if let Ok(fd) = sys::async_fd(fd, Interest::READABLE) {
            let _ = fd.readable().await;
        }
    }
    let how = worker
        .try_reap()
        .unwrap_or_else(|| "closed its socket".into());
    Error::WorkerDied { pid, how }
}

/// Reads one frame outside a job's poll loop (during set-up).
async fn read_message(socket: &mut UnixStream, inbox: &mut Vec<u8>) -> Result<Option<WorkerMsg>> {
    use tokio::io::AsyncReadExt;
    loop {
        if let Some(range) = frame_at(inbox, MAX_WORKER_FRAME).map_err(Error::Protocol)? {
            let msg = decode::<WorkerMsg>(&inbox[range.clone()]).map_err(Error::Protocol)?;
            inbox.drain(..range.end);
            return Ok(Some(msg));
        }
        let mut chunk = [0u8; 4096];
        let n = socket
            .read(&mut chunk)
            .await
            .map_err(|e| Error::io("reading from the worker", e))?;
        if n == 0 {
            return Ok(None);
        }
        inbox.extend_from_slice(&chunk[..n]);
    }
}

fn msg_name(msg: &WorkerMsg) -> &'static str {
    match msg {
        WorkerMsg::Warm => "Warm",
        WorkerMsg::Confined => "Confined",
        WorkerMsg::Reports(_) => "Reports",
        WorkerMsg::Corrections(_) => "Corrections",
        WorkerMsg::Done(_) => "Done",
        WorkerMsg::Failed(_) => "Failed",
    }
}

impl<R: AsyncRead + Unpin> Job<R> {
    /// Bytes read from the caller's reader so far (for progress displays).
    pub fn bytes_read(&self) -> u64 {
        self.pump.bytes
    }

    /// The worker's process id (for logs and monitoring).
    pub fn worker_pid(&self) -> u32 {
        self.worker.pid
    }

    /// The next entry report; `None` when the archive is done (or the job failed,
    /// after yielding the error once). Cancel-safe: dropping the future (in a
    /// `select!`, say) loses nothing; the job keeps its state.
    pub async fn next(&mut self) -> Option<Result<EntryReport>> {
        std::future::poll_fn(|cx| self.poll_report(cx)).await
    }

    /// Runs the job to its end, discarding reports not yet taken, and returns the
    /// summary (or the error that ended the job).
    pub async fn finish(mut self) -> Result<Summary> {
        std::future::poll_fn(|cx| loop {
            match self.poll_report(cx) {
                Poll::Ready(Some(Ok(_))) => continue,
                Poll::Ready(_) => return Poll::Ready(()),
                Poll::Pending => return Poll::Pending,
            }
        })
        .await;
        match std::mem::replace(&mut self.state, State::Taken) {
            State::Finished { result, .. } => result,
            _ => Err(Error::Protocol("the job ended without a result".into())),
        }
    }

    fn poll_report(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<EntryReport>>> {
        loop {
            if let Some(report) = self.queue.pop_front() {
                return Poll::Ready(Some(Ok(report)));
            }
            match &mut self.state {
                State::Running => {}
                State::Dying => {
                    ready!(self.poll_exit(cx));
                    continue;
                }
                State::Finished { result: Ok(_), .. } | State::Taken => return Poll::Ready(None),
                State::Finished {
                    result: Err(e),
                    error_seen,
                } => {
                    if *error_seen {
                        return Poll::Ready(None);
                    }
                    *error_seen = true;
                    return Poll::Ready(Some(Err(e.clone())));
                }
            }
            if let Err(e) = self.poll_pump(cx) {
                self.fail(e);
                continue;
            }
            match self.poll_frame(cx) {
                Poll::Ready(Ok(Some(msg))) => self.handle(msg),
                Poll::Ready(Ok(None)) => {
                    // No last message: the worker died or misbehaved. Make sure it
                    // is gone, then say how it ended.
                    self.worker.kill();
                    self.state = State::Dying;
                }
                Poll::Ready(Err(e)) => self.fail(e),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// Waits (through the pidfd) for a worker that closed its socket to exit,
    /// then ends the job with how it died.
    fn poll_exit(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if self.worker.pidfd().is_none() {
                self.died("ended");
                return Poll::Ready(());
            }
            if let Some(how) = self.worker.try_reap() {
                self.died(&how);
                return Poll::Ready(());
            }
            let Some(exit) = &self.exit else {
                self.died("closed its socket");
                return Poll::Ready(());
            };
            match exit.poll_read_ready(cx) {
                // Readable: it exited; reap on the next turn.
                Poll::Ready(Ok(mut guard)) => guard.clear_ready(),
                Poll::Ready(Err(_)) => {
                    self.died("closed its socket");
                    return Poll::Ready(());
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn died(&mut self, how: &str) {
        let error = Error::WorkerDied {
            pid: self.worker.pid,
            how: how.to_string(),
        };
        self.finish_with(Err(error));
    }

    fn finish_with(&mut self, result: Result<Summary>) {
        match &result {
            Ok(s) => tracing::info!(
                parent: &self.span,
                entries = s.entries,
                written = s.written,
                skipped = s.skipped,
                rejected = s.rejected,
                failed = s.failed,
                bytes_written = s.bytes_written,
                archive_bytes = s.archive_bytes,
                compression = s.compression.name(),
                elapsed_ms = s.elapsed.as_secs_f64() * 1000.0,
                "extraction finished"
            ),
            Err(e) => {
                tracing::warn!(parent: &self.span, error = %e, "extraction failed");
                self.worker.kill();
            }
        }
        self.state = State::Finished {
            result,
            error_seen: false,
        };
    }

    fn fail(&mut self, e: Error) {
        self.finish_with(Err(e));
    }

    /// Moves bytes from the caller's reader to the worker until one side would block.
    fn poll_pump(&mut self, cx: &mut Context<'_>) -> Result<()> {
        let pump = &mut self.pump;
        loop {
            if pump.shut || pump.broken {
                return Ok(());
            }
            if pump.start < pump.end {
                match Pin::new(&mut self.socket).poll_write(cx, &pump.buf[pump.start..pump.end]) {
                    Poll::Ready(Ok(n)) => pump.start += n,
                    Poll::Ready(Err(e))
                        if matches!(
                            e.kind(),
                            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                        ) =>
                    {
                        pump.broken = true;
                    }
                    Poll::Ready(Err(e)) => return Err(Error::io("writing to the worker", e)),
                    Poll::Pending => return Ok(()),
                }
                continue;
            }
            if pump.reader_done {
                // End of archive: shutdown(SHUT_WR).
                match Pin::new(&mut self.socket).poll_shutdown(cx) {
                    Poll::Ready(_) => pump.shut = true,
                    Poll::Pending => return Ok(()),
                }
                continue;
            }
            let mut read_buf = ReadBuf::new(&mut pump.buf);
            match Pin::new(&mut self.reader).poll_read(cx, &mut read_buf) {
                Poll::Ready(Ok(())) => {
                    let n = read_buf.filled().len();
                    if n == 0 {
                        pump.reader_done = true;
                    } else {
                        pump.start = 0;
                        pump.end = n;
                        pump.bytes += n as u64;
                    }
                }
                Poll::Ready(Err(e)) => return Err(Error::Read(e.into())),
                Poll::Pending => return Ok(()),
            }
        }
    }

    /// Reads the next complete frame from the worker.
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<WorkerMsg>>> {
        loop {
            if let Some(range) = frame_at(&self.inbox, MAX_WORKER_FRAME).map_err(Error::Protocol)? {
                let msg = decode::<WorkerMsg>(&self.inbox[range.clone()]).map_err(Error::Protocol);
                self.inbox.drain(..range.end);
                return Poll::Ready(msg.map(Some));
            }
            let len = self.inbox.len();
            let want = (len + 64 * 1024).min(MAX_WORKER_FRAME + 4);
            self.inbox.resize(want, 0);
            let mut read_buf = ReadBuf::new(&mut self.inbox[len..]);
            let polled = Pin::new(&mut self.socket).poll_read(cx, &mut read_buf);
            let n = read_buf.filled().len();
            self.inbox.truncate(len + n);
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

    fn handle(&mut self, msg: WorkerMsg) {
        match msg {
            WorkerMsg::Reports(batch) => {
                if batch.len() > MAX_BATCH_ENTRIES {
                    self.fail(Error::Protocol(format!(
                        "a batch of {} reports",
                        batch.len()
                    )));
                    return;
                }
                for report in batch {
                    if let Err(e) = self.accept(report) {
                        self.fail(e);
                        return;
                    }
                }
            }
            WorkerMsg::Corrections(failures) => {
                if failures.len() > MAX_BATCH_ENTRIES {
                    self.fail(Error::Protocol("too many corrections".into()));
                    return;
                }
                for (path, message) in failures {
                    if path.len() > MAX_REPORTED_PATH || message.len() > MAX_REPORTED_PATH {
                        self.fail(Error::Protocol("correction too long".into()));
                        return;
                    }
                    // A directory counted as written turns out failed.
                    self.counts.written = self.counts.written.saturating_sub(1);
                    self.counts.failed += 1;
                    self.queue.push_back(EntryReport {
                        path: path_of(path),
                        kind: EntryKind::Directory,
                        size: 0,
                        outcome: Outcome::Failed(text(message)),
                    });
                }
            }
            WorkerMsg::Done(totals) => {
                if !self.pump.reader_done || self.pump.start < self.pump.end {
                    self.fail(Error::Protocol(
                        "the worker finished before the archive was sent".into(),
                    ));
                    return;
                }
                self.worker.finished = true;
                let diff_id = match totals.diff_id {
                    None => None,
                    Some(d)
                        if d.len() == 71
                            && d.starts_with("sha256:")
                            && d[7..].bytes().all(|b| b.is_ascii_hexdigit()) =>
                    {
                        Some(d)
                    }
                    Some(_) => {
                        self.fail(Error::Protocol("malformed digest".into()));
                        return;
                    }
                };
                if let (Some(expected), Some(actual)) = (&self.expected_diff_id, &diff_id) {
                    if !expected.eq_ignore_ascii_case(actual) {
                        let error = Error::DigestMismatch {
                            expected: expected.clone(),
                            actual: actual.clone(),
                        };
                        self.fail(error);
                        return;
                    }
                }
                let c = &self.counts;
                let compression = match totals.compression {
                    Compression::Auto => Compression::None,
                    c => c,
                };
                self.finish_with(Ok(Summary {
                    entries: c.entries,
                    written: c.written,
                    listed: c.listed,
                    skipped: c.skipped,
                    rejected: c.rejected,
                    failed: c.failed,
                    bytes_written: c.bytes_written,
                    archive_bytes: self.pump.bytes,
                    tar_bytes: totals.tar_bytes,
                    compression,
                    elapsed: self.started.elapsed(),
                    diff_id,
                    layer_size: totals.layer_size,
                }));
            }
            WorkerMsg::Failed(error) => {
                let error = match error {
                    WireError::Malformed { offset, message } => Error::MalformedArchive {
                        offset,
                        message: text(message),
                    },
                    WireError::Write { entry, message } => Error::Write {
                        entry: path_of(entry),
                        message: text(message),
                    },
                    WireError::Confinement(reason) => Error::ConfinementUnavailable {
                        reason: text(reason),
                    },
                    WireError::DestinationChanged => Error::DestinationChanged {
                        path: PathBuf::new(),
                    },
                    WireError::Limit {
                        limit,
                        value,
                        entry,
                    } => Error::LimitExceeded {
                        limit,
                        value,
                        entry: path_of(entry),
                    },
                    WireError::Unmapped { entry, message } => Error::UnmappedId {
                        entry: path_of(entry),
                        message: text(message),
                    },
                    WireError::Internal(message) => Error::Worker(text(message)),
                };
                self.fail(error);
            }
            other => self.fail(Error::Protocol(format!(
                "unexpected {} during a job",
                msg_name(&other)
            ))),
        }
    }

    /// Validates one report from the (untrusted) worker and queues it.
    fn accept(&mut self, report: WireReport) -> Result<()> {
        check_report(&report)?;
        let c = &mut self.counts;
        c.entries += 1;
        match &report.outcome {
            Outcome::Written => {
                c.written += 1;
                c.bytes_written = c.bytes_written.saturating_add(report.size);
            }
            Outcome::Listed => c.listed += 1,
            Outcome::Skipped(_) => c.skipped += 1,
            Outcome::Rejected(_) => c.rejected += 1,
            Outcome::Failed(_) => c.failed += 1,
        }
        let outcome = match report.outcome {
            Outcome::Failed(message) => Outcome::Failed(text(message)),
            other => other,
        };
        tracing::trace!(
            parent: &self.span,
            path = %String::from_utf8_lossy(&report.path),
            kind = report.kind.name(),
            outcome = outcome.name(),
            reason = outcome.reason().as_deref(),
            "entry"
        );
        self.queue.push_back(EntryReport {
            path: path_of(report.path),
            kind: report.kind,
            size: report.size,
            outcome,
        });
        Ok(())
    }
}

/// The bounds every report from the (untrusted) worker must respect.
pub(crate) fn check_report(report: &WireReport) -> Result<()> {
    if report.path.len() > MAX_REPORTED_PATH {
        return Err(Error::Protocol("report path too long".into()));
    }
    if report.kind != EntryKind::File && report.size != 0 {
        return Err(Error::Protocol(
            "size on an entry that is not a file".into(),
        ));
    }
    Ok(())
}

/// A message from the worker made safe to log: control characters (which an
/// archive can smuggle into parser errors) escaped, and at most 1 KiB kept.
fn text(message: String) -> String {
    const MAX: usize = 1024;
    if message.len() <= MAX && !message.chars().any(char::is_control) {
        return message;
    }
    let mut out = String::with_capacity(message.len().min(MAX) + 8);
    for c in message.chars() {
        if out.len() >= MAX {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

fn path_of(bytes: Vec<u8>) -> PathBuf {
    PathBuf::from(OsString::from_vec(bytes))
}

impl<R> Drop for Job<R> {
    fn drop(&mut self) {
        if matches!(self.state, State::Running | State::Dying) {
            // The worker itself is killed and reaped by `Worker`'s own drop.
            tracing::info!(parent: &self.span, "job dropped before it finished; worker killed");
        }
    }
}

impl<R: AsyncRead + Unpin> futures_core::Stream for Job<R> {
    type Item = Result<EntryReport>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_report(cx)
    }
}

#[cfg(test)]
mod tests {
    //! The driver against a fake worker: a socketpair whose far end the test
    //! writes, and a `sleep` process standing in for the worker's pid.
    use std::io::Write;
    use std::os::unix::net::UnixStream as StdStream;
    use std::process::{Child, Command};
    use std::time::Duration;

    use super::*;
    use crate::caller::child::Worker;
    use crate::wire::{WorkerTotals, MAX_BATCH_ENTRIES};

    fn fake_job(archive: &'static [u8]) -> (Job<&'static [u8]>, StdStream, Child) {
        let (ours, theirs) = StdStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let stand_in = Command::new("sleep").arg("60").spawn().unwrap();
        let pid = rustix::process::Pid::from_raw(stand_in.id() as i32).unwrap();
        let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).unwrap();
        let warm = Warm {
            worker: Worker::new(stand_in.id(), pidfd),
            socket: UnixStream::from_std(ours).unwrap(),
        };
        (Job::new(archive, warm, Instant::now()), theirs, stand_in)
    }

    async fn finish_within(job: Job<&'static [u8]>) -> Result<Summary> {
        tokio::time::timeout(Duration::from_secs(5), job.finish())
            .await
            .expect("the driver hung on a misbehaving worker")
    }

    fn expect_protocol(result: Result<Summary>, what: &str) {
        assert!(
            matches!(result, Err(Error::Protocol(_))),
            "{what}: {result:?}"
        );
    }

    fn report(path: Vec<u8>) -> WireReport {
        WireReport {
            path,
            kind: EntryKind::File,
            size: 1,
            outcome: Outcome::Written,
        }
    }

    #[test]
    fn worker_text_is_made_safe_to_log() {
        assert_eq!(text("plain".into()), "plain");
        assert_eq!(text("a\nb\x1b[31m".into()), "a\\nb\\u{1b}[31m");
        assert!(text("x".repeat(5000)).chars().count() <= 1025);
    }

    #[tokio::test]
    async fn an_over_long_frame_is_refused_without_allocating_it() {
        let (job, mut fake, _child) = fake_job(b"");
        fake.write_all(&u32::MAX.to_le_bytes()).unwrap();
        expect_protocol(finish_within(job).await, "4 GiB frame");
    }

    #[tokio::test]
    async fn garbage_payloads_are_refused() {
        for garbage in [&[0xffu8; 16][..], &[7, 1, 2, 3][..], &[][..]] {
            let (job, mut fake, _child) = fake_job(b"");
            let mut frame = (garbage.len() as u32).to_le_bytes().to_vec();
            frame.extend_from_slice(garbage);
            fake.write_all(&frame).unwrap();
            expect_protocol(finish_within(job).await, "garbage");
        }
    }

    #[tokio::test]
    async fn reports_out_of_bounds_are_refused() {
        let (job, mut fake, _child) = fake_job(b"");
        let long = WorkerMsg::Reports(vec![report(vec![b'a'; MAX_REPORTED_PATH + 1])]);
        fake.write_all(&encode_frame(&long)).unwrap();
        expect_protocol(finish_within(job).await, "long path");

        let (job, mut fake, _child) = fake_job(b"");
        let many = WorkerMsg::Reports(
            (0..=MAX_BATCH_ENTRIES)
                .map(|_| report(Vec::new()))
                .collect(),
        );
        fake.write_all(&encode_frame(&many)).unwrap();
        expect_protocol(finish_within(job).await, "huge batch");

        let (job, mut fake, _child) = fake_job(b"");
        let sized_dir = WireReport {
            kind: EntryKind::Directory,
            ..report(b"d".to_vec())
        };
        fake.write_all(&encode_frame(&WorkerMsg::Reports(vec![sized_dir])))
            .unwrap();
        expect_protocol(finish_within(job).await, "size on a directory");

        let (job, mut fake, _child) = fake_job(b"");
        fake.write_all(&encode_frame(&WorkerMsg::Warm)).unwrap();
        expect_protocol(finish_within(job).await, "Warm during a job");
    }

    #[tokio::test]
    async fn done_before_the_archive_was_sent_is_refused() {
        // The archive is larger than the socket buffer, so it cannot all be sent
        // before the fake worker claims to be done.
        let archive: &'static [u8] = Box::leak(vec![0u8; 8 << 20].into_boxed_slice());
        let (job, mut fake, _child) = fake_job(archive);
        let done = WorkerMsg::Done(WorkerTotals {
            tar_bytes: 0,
            diff_id: None,
            layer_size: 0,
            compression: Compression::None,
        });
        fake.write_all(&encode_frame(&done)).unwrap();
        expect_protocol(finish_within(job).await, "early Done");
    }

    #[tokio::test]
    async fn a_malformed_digest_is_refused() {
        let (job, mut fake, _child) = fake_job(b"");
        // Let the (empty) archive be sent first.
        tokio::time::sleep(Duration::from_millis(1)).await;
        let done = WorkerMsg::Done(WorkerTotals {
            tar_bytes: 0,
            diff_id: Some("sha256:not hex".into()),
            layer_size: 0,
            compression: Compression::None,
        });
        fake.write_all(&encode_frame(&done)).unwrap();
        expect_protocol(finish_within(job).await, "malformed digest");
    }

    #[tokio::test]
    async fn a_worker_that_closes_its_socket_is_killed_and_reported() {
        let (job, fake, mut child) = fake_job(b"");
        drop(fake);
        match finish_within(job).await {
            Err(Error::WorkerDied { how, .. }) => assert!(how.contains("SIGKILL"), "{how}"),
            other => panic!("expected WorkerDied, got {other:?}"),
        }
        // The stand-in was killed (and reaped by the job, so std sees no child).
        assert!(child.try_wait().is_err() || child.try_wait().unwrap().is_some());
    }

    #[tokio::test]
    async fn a_silent_worker_is_cancelled_by_a_timeout_and_killed_on_drop() {
        let (job, _fake, child) = fake_job(b"");
        let pid = child.id();
        let result = tokio::time::timeout(Duration::from_millis(100), job.finish()).await;
        assert!(result.is_err(), "the silent worker produced {result:?}");
        // Dropping the job killed the stand-in; the reaper collects it.
        let deadline = Instant::now() + Duration::from_secs(2);
        while std::path::Path::new(&format!("/proc/{pid}")).exists() {
            assert!(
                Instant::now() < deadline,
                "stand-in worker {pid} still alive"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
