//! The driver: one job, seen from the caller's runtime.
//!
//! A [`Job`] pumps the caller's reader into the worker's socket and reads the
//! worker's frames back, in the same poll, so that nothing deadlocks whatever the
//! caller does: poll the entry stream, only await [`Job::finish`], or drop the job
//! (which kills the worker; it is reaped in the background). Memory is bounded by
//! one pump buffer, one frame buffer and one frame's worth of reports.
//!
//! The worker's last word does not end its process: as soon as the result is
//! in (`Done`, `Failed`, or anything that ends the job), the driver sends it
//! SIGKILL through its pidfd, and the job ends only once the worker can make
//! no more system calls: its job socket reached end of file (the seccomp
//! filter lets no call close that socket, so only the kernel does, once the
//! last thread is gone) or its pidfd says it exited. Its reaping and the rest
//! of its exit (the parent's notification, its PID namespace's end) happen in
//! the background. Whatever
//! the worker does after its last message, it cannot change the destination
//! once the job has ended.
//!
//! No task is spawned: the job makes progress only while it is polled, and the
//! reader needs no `'static` or `Send` bound.

use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, Interest};
use tokio::net::UnixStream;

use crate::caller::child::{Exit, Worker};
use crate::caller::frames::{self, Frames};
use crate::caller::lead::Lead;
use crate::caller::overlay::OpaqueMarks;
use crate::caller::pool::Confined;
use crate::caller::pump::Pump;
use crate::error::{DigestKind, Error, Result};
use crate::mode::Rung;
use crate::options::{Compression, Limit, Options};
use crate::report::{EntryKind, EntryReport, Outcome, SkipReason, Summary};
use crate::sys;
use crate::wire::{
    untrusted_path, untrusted_text, WireReport, WorkerMsg, WorkerTotals, MAX_BATCH_ENTRIES,
    MAX_NOTES, MAX_REPORTED_PATH,
};

/// Socket send buffer asked for (the kernel doubles it, and caps it at
/// `net.core.wmem_max`).
const SEND_BUFFER: usize = 1024 * 1024;

/// A running extraction: a stream of per-entry reports, then a summary.
///
/// Poll it as a [`Stream`](futures_core::Stream) (or with [`Job::next`]) to see each
/// entry as it is handled, then call [`Job::finish`]; or call `finish` directly.
/// Dropping a job before it finished kills its worker. The worker runs ahead
/// of the reports taken, unless [`Options::max_lead`](crate::Options::max_lead)
/// bounds it.
///
/// When the stream ends or [`Job::finish`] returns, the worker process can do
/// nothing more: it is killed as soon as its result is in, and the job ends
/// once none of its threads is left (it is reaped in the background), so
/// nothing in the destination changes afterwards.
///
/// ```no_run
/// # async fn demo(sandbox: sandtar::Sandbox) -> sandtar::Result<()> {
/// let archive: &[u8] = &[]; // any tokio::io::AsyncRead + Unpin
/// let mut job = sandbox.start(archive, "/tmp/out", &sandtar::Options::default()).await?;
/// while let Some(report) = job.next().await {
///     let report = report?;
///     if report.outcome != sandtar::Outcome::Written {
///         eprintln!("{}: {}", report.shown_path(), report.outcome.reason().unwrap_or_default());
///     }
/// }
/// let summary = job.finish().await?;
/// # let _ = summary; Ok(()) }
/// ```
#[derive(Debug)]
pub struct Job<R> {
    reader: R,
    socket: UnixStream,
    worker: Worker,
    exit: Option<AsyncFd<OwnedFd>>,
    pump: Pump,
    frames: Frames,
    queue: VecDeque<EntryReport>,
    counts: Counts,
    state: State,
    started: Instant,
    span: tracing::Span,
    /// From the options: the digests checked at the end.
    expected: Expected,
    /// Overlay format as real root: the opaque marks to set at the end.
    opaque: Option<OpaqueMarks>,
    /// The rung the worker stands on (for the summary).
    rung: Rung,
    /// Reports taken, told to the worker (`Options::max_lead`).
    lead: Option<Lead>,
}

#[derive(Debug, Default)]
struct Counts {
    entries: u64,
    written: u64,
    listed: u64,
    skipped: u64,
    not_selected: u64,
    rejected: u64,
    failed: u64,
    bytes_written: u64,
}

#[derive(Debug)]
enum State {
    Running,
    /// The job's result is known (`None`: the worker closed its socket without
    /// a last message) and the worker was sent SIGKILL: wait until it is gone.
    Ending(Option<Result<Summary>>),
    Finished {
        result: Result<Summary>,
        error_seen: bool,
    },
    Taken,
}

/// What a job checks at its end, from the options (validated before the job
/// starts: [`Expected::from_options`]): the digests, and the CPU-time limit a
/// worker ended by `SIGXCPU` ran into.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Expected {
    /// Whether the pump hashes the bytes it sends (the blob digest).
    pub hash_input: bool,
    /// The blob digest the caller's own hash must match.
    pub digest: Option<String>,
    /// The `diff_id` the worker must report.
    pub diff_id: Option<String>,
    /// [`Limits::max_cpu_time`](crate::Limits::max_cpu_time).
    pub max_cpu_time: u64,
    /// Whether the options select entries: only then may the worker report
    /// one left out by the selection (which counts as done).
    pub selects: bool,
    /// Whether the options keep what exists: only then may the worker report
    /// `SkipReason::Exists`.
    pub keeps: bool,
    /// Whether the options read archives as GNU tar does: only then may a
    /// report carry notes ([`Divergence`](crate::Divergence)).
    pub notes: bool,
}

impl Expected {
    /// The checks `options` ask for, with digests normalised to `sha256:` and
    /// lowercase hex; [`Error::InvalidOption`] for a digest that is not one.
    pub(crate) fn from_options(options: &Options) -> Result<Expected> {
        let parse = |option: &'static str, value: &Option<String>| {
            match value {
            None => Ok(None),
            Some(v) => sha256_digest(v).map(Some).ok_or(Error::InvalidOption {
                option,
                problem: "not a SHA-256 digest (\"sha256:\" and 64 hex digits, or the 64 hex digits alone)",
            }),
        }
        };
        let digest = parse("expected_digest", &options.expected_digest)?;
        let diff_id = parse("expected_diff_id", &options.expected_diff_id)?;
        Ok(Expected {
            hash_input: options.digest || digest.is_some(),
            digest,
            diff_id,
            max_cpu_time: options.limits.max_cpu_time,
            selects: options.select != crate::Selection::default(),
            keeps: options.overwrite != crate::Overwrite::Replace,
            notes: options.parsing == crate::Parsing::GnuTar,
        })
    }
}

/// `value` as `sha256:<64 lowercase hex digits>`, if it is a SHA-256 digest
/// (with or without the `sha256:` prefix).
fn sha256_digest(value: &str) -> Option<String> {
    let hex = value.strip_prefix("sha256:").unwrap_or(value);
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| format!("sha256:{}", hex.to_ascii_lowercase()))
}

impl<R> Job<R> {
    /// A job driving `warm`'s worker, which is confined and waits for bytes.
    pub(crate) fn new(
        reader: R,
        warm: Confined,
        started: Instant,
        span: tracing::Span,
        expected: Expected,
        opaque: Option<OpaqueMarks>,
        rung: Rung,
    ) -> Self {
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
            pump: Pump::new(expected.hash_input),
            frames: Frames::new(),
            queue: VecDeque::new(),
            counts: Counts::default(),
            state: State::Running,
            started,
            span,
            expected,
            opaque,
            rung,
            lead: warm.lead,
        }
    }
}

impl<R: AsyncRead + Unpin> Job<R> {
    /// Bytes read from the caller's reader so far (for progress displays).
    pub fn bytes_read(&self) -> u64 {
        self.pump.bytes()
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
    /// summary (or the error that ended the job). By then the worker process has
    /// been killed and none of its threads is left.
    pub async fn finish(mut self) -> Result<Summary> {
        if let Some(lead) = &mut self.lead {
            lead.release();
        }
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
                if let Some(lead) = &mut self.lead {
                    lead.took();
                }
                return Poll::Ready(Some(Ok(report)));
            }
            match self.state {
                State::Running => ready!(self.poll_worker(cx)),
                State::Ending(_) => ready!(self.poll_end(cx)),
                State::Finished { .. } | State::Taken => return Poll::Ready(self.take_error()),
            }
        }
    }

    /// One turn of a running job: pump the archive, then read one frame.
    fn poll_worker(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let Err(e) = self.pump.poll(&mut self.reader, &mut self.socket, cx) {
            self.end(Some(Err(e)));
            return Poll::Ready(());
        }
        match ready!(self.frames.poll_next(&mut self.socket, cx)) {
            Ok(Some(msg)) => self.handle(msg),
            // No last message: the worker died or misbehaved. Make sure it is
            // gone, then say how it ended.
            Ok(None) => self.end(None),
            Err(e) => self.end(Some(Err(e))),
        }
        Poll::Ready(())
    }
}

impl<R> Job<R> {
    /// After the end: the error that ended the job (once), then nothing.
    fn take_error(&mut self) -> Option<Result<EntryReport>> {
        match &mut self.state {
            State::Finished {
                result: Err(e),
                error_seen,
            } if !*error_seen => {
                *error_seen = true;
                Some(Err(e.clone()))
            }
            _ => None,
        }
    }

    /// The result is in (`None`: the worker left without one): kill the
    /// worker, whatever it said, and wait for it to be reaped.
    fn end(&mut self, result: Option<Result<Summary>>) {
        self.worker.kill();
        self.state = State::Ending(result);
    }

    /// Waits until the killed worker can do nothing more, then ends the job:
    /// with the result, or with how the worker died if it left without one.
    fn poll_end(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let State::Ending(result) = &self.state else {
            unreachable!("poll_end runs only while the job is ending")
        };
        // Without a result, how the worker died is the job's error: wait for
        // its exit status.
        let exit = match result.is_some() {
            true => ready!(self.poll_gone(cx)),
            false => Some(ready!(self.poll_reaped(cx))),
        };
        let State::Ending(result) = std::mem::replace(&mut self.state, State::Taken) else {
            unreachable!("poll_end runs only while the job is ending")
        };
        let result = match result {
            Some(Ok(summary)) => Ok(Summary {
                elapsed: self.started.elapsed(),
                ..summary
            }),
            Some(Err(e)) => Err(e),
            // The kernel's RLIMIT_CPU: the limit, not a crash.
            None if exit == Some(Exit::Code(sys::EXIT_CPU_TIME)) => Err(Error::LimitExceeded {
                limit: Limit::MaxCpuTime,
                value: self.expected.max_cpu_time,
                entry: std::path::PathBuf::new(),
            }),
            None => Err(Error::WorkerDied {
                pid: self.worker.pid,
                how: exit.unwrap_or(Exit::Unknown).describe(),
            }),
        };
        self.judge_exit(exit, &result);
        self.log(&result);
        self.state = State::Finished {
            result,
            error_seen: false,
        };
        Poll::Ready(())
    }

    /// Waits until the killed worker is gone for good: it exited (`Some`: how,
    /// reaped), or every one of its threads has left, which its job socket's
    /// end of file proves (`None`: the reaper thread collects its status). Its
    /// seccomp filter lets no call close or shut down its end of the socket,
    /// so only the kernel closes it, after the last thread stopped making
    /// system calls (at the end of its exit's own work: the address space,
    /// the descriptors and the namespaces go first, and the last reference
    /// to a file is released after them) and before the parent is told,
    /// which the job does not wait for.
    fn poll_gone(&mut self, cx: &mut Context<'_>) -> Poll<Option<Exit>> {
        if let Poll::Ready(exit) = self.poll_reaped(cx) {
            return Poll::Ready(Some(exit));
        }
        ready!(self.poll_socket_closed(cx));
        self.worker.reap_later();
        Poll::Ready(None)
    }

    /// Reads the job socket to its end, discarding whatever the worker sent
    /// after its result. Ready only at end of file (or a reset: the worker's
    /// end was closed with data unread); on any other error it stays pending
    /// and the job waits for the exit instead.
    fn poll_socket_closed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut scratch = [0u8; 4096];
        loop {
            match self.socket.try_read(&mut scratch) {
                Ok(0) => return Poll::Ready(()),
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Poll::Ready(()),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if ready!(self.socket.poll_read_ready(cx)).is_err() {
                        return Poll::Pending;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return Poll::Pending,
            }
        }
    }

    /// Waits (through the pidfd) for the worker, already sent SIGKILL, to
    /// exit, and reaps it.
    fn poll_reaped(&mut self, cx: &mut Context<'_>) -> Poll<Exit> {
        loop {
            if self.worker.pidfd().is_none() {
                return Poll::Ready(Exit::Unknown);
            }
            if let Some(exit) = self.worker.try_reap() {
                return Poll::Ready(exit);
            }
            let readable = match &self.exit {
                Some(exit) => exit.poll_read_ready(cx),
                None => Poll::Ready(Err(std::io::ErrorKind::Unsupported.into())),
            };
            match readable {
                // Readable: it exited; reap on the next turn.
                Poll::Ready(Ok(mut guard)) => guard.clear_ready(),
                // The pidfd cannot be polled: wait here (SIGKILL was sent, and
                // the job must not end before the worker is gone).
                Poll::Ready(Err(_)) => {
                    return Poll::Ready(self.worker.reap_blocking().unwrap_or(Exit::Unknown))
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// A worker that ended abnormally retires its zygote: it left without a
    /// result, broke the protocol, or had died of something else than a clean
    /// exit or our SIGKILL (see [`Exit::is_clean`]; when its status is not in
    /// yet, the reaper thread judges it).
    fn judge_exit(&self, exit: Option<Exit>, result: &Result<Summary>) {
        let why = match result {
            Err(Error::WorkerDied { .. }) => "it ended without a result",
            Err(Error::Protocol(_)) => "it broke the protocol",
            _ if exit.is_some_and(|e| !e.is_clean()) => "it died on its own after its result",
            _ => return,
        };
        self.worker.ended_abnormally(why, exit);
    }

    fn log(&self, result: &Result<Summary>) {
        match result {
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
            Err(e) => tracing::warn!(parent: &self.span, error = %e, "extraction failed"),
        }
    }

    /// Acts on one frame from the worker; a frame out of bounds or out of
    /// place ends the job.
    fn handle(&mut self, msg: WorkerMsg) {
        let handled = match msg {
            WorkerMsg::Reports(batch) => self.on_reports(batch),
            WorkerMsg::Corrections(failures) => self.on_corrections(failures),
            WorkerMsg::Done(totals) => self.on_done(totals),
            WorkerMsg::Failed(error) => Err(error.into()),
            other => Err(Error::Protocol(format!(
                "unexpected {} during a job",
                frames::name(&other)
            ))),
        };
        if let Err(e) = handled {
            self.end(Some(Err(e)));
        }
    }

    fn on_reports(&mut self, batch: Vec<WireReport>) -> Result<()> {
        if batch.len() > MAX_BATCH_ENTRIES {
            return Err(Error::Protocol(format!(
                "a batch of {} reports",
                batch.len()
            )));
        }
        batch.into_iter().try_for_each(|report| self.accept(report))
    }

    /// Directories reported written whose metadata could not be set at the end.
    fn on_corrections(&mut self, failures: Vec<(Vec<u8>, String)>) -> Result<()> {
        if failures.len() > MAX_BATCH_ENTRIES {
            return Err(Error::Protocol("too many corrections".into()));
        }
        for (path, message) in failures {
            if path.len() > MAX_REPORTED_PATH || message.len() > MAX_REPORTED_PATH {
                return Err(Error::Protocol("correction too long".into()));
            }
            // A directory counted as written turns out failed.
            self.counts.written = self.counts.written.saturating_sub(1);
            self.counts.failed += 1;
            self.queue.push_back(EntryReport {
                path: untrusted_path(path),
                kind: EntryKind::Directory,
                size: 0,
                outcome: Outcome::Failed(untrusted_text(message)),
                notes: Vec::new(),
            });
        }
        Ok(())
    }

    /// The worker's last message: checks it and the digests (the caller's own
    /// first), then ends the job with the summary.
    fn on_done(&mut self, mut totals: WorkerTotals) -> Result<()> {
        if !self.pump.all_sent() {
            return Err(Error::Protocol(
                "the worker finished before the archive was sent".into(),
            ));
        }
        let digest = self.pump.digest();
        check_digest(DigestKind::Blob, &self.expected.digest, digest.as_deref())?;
        let diff_id = checked_digest(totals.diff_id.take())?;
        if self.expected.diff_id.is_some() && diff_id.is_none() {
            return Err(Error::Protocol(
                "no diff_id in the worker's last message, though the options ask for one".into(),
            ));
        }
        check_digest(
            DigestKind::DiffId,
            &self.expected.diff_id,
            diff_id.as_deref(),
        )?;
        if let Some(opaque) = &mut self.opaque {
            opaque.apply()?;
        }
        let summary = self.summary(&totals, diff_id, digest);
        self.end(Some(Ok(summary)));
        Ok(())
    }

    /// The summary of a job that ended well (its `elapsed` is set once the
    /// worker is reaped).
    fn summary(
        &self,
        totals: &WorkerTotals,
        diff_id: Option<String>,
        digest: Option<String>,
    ) -> Summary {
        let c = &self.counts;
        let compression = match totals.compression {
            Compression::Auto => Compression::None,
            c => c,
        };
        Summary {
            entries: c.entries,
            written: c.written,
            listed: c.listed,
            skipped: c.skipped,
            not_selected: c.not_selected,
            rejected: c.rejected,
            failed: c.failed,
            bytes_written: c.bytes_written,
            archive_bytes: self.pump.bytes(),
            tar_bytes: totals.tar_bytes,
            compression,
            elapsed: self.started.elapsed(),
            diff_id,
            digest,
            layer_size: totals.layer_size,
            rung: self.rung,
        }
    }

    /// A skip the options cannot have caused is the worker's lie (one left
    /// out "by the selection" would make an incomplete job look complete).
    fn check_skip(&self, outcome: &Outcome) -> Result<()> {
        let Outcome::Skipped(reason) = outcome else {
            return Ok(());
        };
        let allowed = match reason {
            SkipReason::NotSelected | SkipReason::StrippedAway => self.expected.selects,
            SkipReason::Exists => self.expected.keeps,
            _ => true,
        };
        match allowed {
            true => Ok(()),
            false => Err(Error::Protocol(format!(
                "a skip the options did not ask for ({})",
                reason.code()
            ))),
        }
    }

    /// Validates one report from the (untrusted) worker and queues it.
    fn accept(&mut self, report: WireReport) -> Result<()> {
        check_report(&report)?;
        self.check_skip(&report.outcome)?;
        if !report.notes.is_empty() && !self.expected.notes {
            return Err(Error::Protocol("notes the options did not ask for".into()));
        }
        if let Some(opaque) = &mut self.opaque {
            opaque.note(&report);
        }
        let c = &mut self.counts;
        c.entries += 1;
        match &report.outcome {
            Outcome::Written => {
                c.written += 1;
                c.bytes_written = c.bytes_written.saturating_add(report.size);
            }
            Outcome::Listed => c.listed += 1,
            Outcome::Skipped(reason) => {
                c.skipped += 1;
                if reason.is_selection() {
                    c.not_selected += 1;
                }
            }
            Outcome::Rejected(_) => c.rejected += 1,
            Outcome::Failed(_) => c.failed += 1,
        }
        let outcome = match report.outcome {
            Outcome::Failed(message) => Outcome::Failed(untrusted_text(message)),
            other => other,
        };
        tracing::trace!(
            parent: &self.span,
            path = %crate::report::printable(&String::from_utf8_lossy(&report.path)),
            kind = report.kind.name(),
            outcome = outcome.name(),
            reason = outcome.reason().as_deref(),
            "entry"
        );
        self.queue.push_back(EntryReport {
            path: untrusted_path(report.path),
            kind: report.kind,
            size: report.size,
            outcome,
            notes: report.notes,
        });
        Ok(())
    }
}

/// A digest from the worker, if well-formed (`sha256:` and 64 hex digits).
fn checked_digest(diff_id: Option<String>) -> Result<Option<String>> {
    match diff_id {
        None => Ok(None),
        Some(d)
            if d.len() == 71
                && d.starts_with("sha256:")
                && d[7..].bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            Ok(Some(d))
        }
        Some(_) => Err(Error::Protocol("malformed digest".into())),
    }
}

/// [`Error::DigestMismatch`] if `expected` is set and `actual` differs (hex
/// digits in either case).
fn check_digest(kind: DigestKind, expected: &Option<String>, actual: Option<&str>) -> Result<()> {
    match (expected, actual) {
        (Some(expected), Some(actual)) if !expected.eq_ignore_ascii_case(actual) => {
            Err(Error::DigestMismatch {
                kind,
                expected: expected.clone(),
                actual: actual.to_string(),
            })
        }
        _ => Ok(()),
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
    if report.notes.len() > MAX_NOTES {
        return Err(Error::Protocol("too many notes on a report".into()));
    }
    Ok(())
}

impl<R> Drop for Job<R> {
    fn drop(&mut self) {
        if matches!(self.state, State::Running | State::Ending(_)) {
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
    use crate::caller::child::{Lineage, Worker};
    use crate::wire::encode_frame;

    fn fake_job(archive: &'static [u8]) -> (Job<&'static [u8]>, StdStream, Child) {
        let (ours, theirs) = StdStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let stand_in = Command::new("sleep").arg("60").spawn().unwrap();
        let pid = rustix::process::Pid::from_raw(stand_in.id() as i32).unwrap();
        let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).unwrap();
        let warm = Confined {
            worker: Worker::new(stand_in.id(), pidfd, Lineage::default()),
            socket: UnixStream::from_std(ours).unwrap(),
            lead: None,
        };
        let job = Job::new(
            archive,
            warm,
            Instant::now(),
            tracing::Span::none(),
            Expected::default(),
            None,
            Rung::Namespaces,
        );
        (job, theirs, stand_in)
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
            notes: Vec::new(),
        }
    }

    #[test]
    fn expected_digests_are_normalised_or_refused() {
        let hex = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855";
        let normal = format!("sha256:{}", hex.to_ascii_lowercase());
        let mut options = Options::default();
        assert_eq!(
            Expected::from_options(&options).unwrap(),
            Expected {
                max_cpu_time: options.limits.max_cpu_time,
                ..Expected::default()
            }
        );
        for given in [hex.to_string(), format!("sha256:{hex}"), normal.clone()] {
            options.expected_digest = Some(given.clone());
            options.expected_diff_id = Some(given);
            let expected = Expected::from_options(&options).unwrap();
            assert_eq!(expected.digest.as_deref(), Some(normal.as_str()));
            assert_eq!(expected.diff_id.as_deref(), Some(normal.as_str()));
            assert!(expected.hash_input);
        }
        let bad = [
            "",
            "sha256:",
            &hex[1..],
            &format!("{hex}0"),
            &format!("sha512:{hex}"),
            &format!("SHA256:{hex}"),
            &format!(" {hex}"),
            &format!("sha256:{}g", &hex[1..]),
        ];
        for given in bad {
            for option in ["expected_digest", "expected_diff_id"] {
                let mut options = options.clone();
                let value = Some(given.to_string());
                match option {
                    "expected_digest" => options.expected_digest = value,
                    _ => options.expected_diff_id = value,
                }
                let e = Expected::from_options(&options).unwrap_err();
                assert!(
                    matches!(e, Error::InvalidOption { option: o, .. } if o == option),
                    "{option} {given:?}: {e:?}"
                );
                // The value is not repeated in the message.
                assert!(
                    !e.to_string().to_ascii_lowercase().contains(&normal[10..30]),
                    "{e}"
                );
            }
        }
        options.expected_digest = None;
        options.expected_diff_id = None;
        options.digest = true;
        assert!(Expected::from_options(&options).unwrap().hash_input);
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
        fake.write_all(&encode_frame(&WorkerMsg::Warm {
            awaits_clone: false,
        }))
        .unwrap();
        expect_protocol(finish_within(job).await, "Warm during a job");

        // Skips the default options cannot cause: the worker would make an
        // incomplete job look complete (left out "by the selection").
        for reason in [
            SkipReason::NotSelected,
            SkipReason::StrippedAway,
            SkipReason::Exists,
        ] {
            let (job, mut fake, _child) = fake_job(b"");
            let lie = WireReport {
                kind: EntryKind::File,
                size: 0,
                outcome: Outcome::Skipped(reason.clone()),
                ..report(b"f".to_vec())
            };
            fake.write_all(&encode_frame(&WorkerMsg::Reports(vec![lie])))
                .unwrap();
            expect_protocol(finish_within(job).await, reason.code());
        }

        // Notes of GNU-only readings, under options that read strictly.
        let (job, mut fake, _child) = fake_job(b"");
        let noted = WireReport {
            notes: vec![crate::Divergence::SizeIgnored],
            ..report(b"f".to_vec())
        };
        fake.write_all(&encode_frame(&WorkerMsg::Reports(vec![noted])))
            .unwrap();
        expect_protocol(finish_within(job).await, "notes under Parsing::Strict");
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
    async fn a_worker_that_says_done_is_killed_and_reaped_before_the_job_ends() {
        let (job, mut fake, _child) = fake_job(b"");
        let pid = job.worker_pid();
        // Let the (empty) archive be sent first.
        tokio::time::sleep(Duration::from_millis(1)).await;
        let done = WorkerMsg::Done(WorkerTotals {
            tar_bytes: 0,
            diff_id: None,
            layer_size: 0,
            compression: Compression::None,
        });
        fake.write_all(&encode_frame(&done)).unwrap();
        // The stand-in (`sleep 60`) goes on running after its Done: the job
        // kills it, and reaps it (no zombie either) before it returns.
        let summary = finish_within(job).await.expect("Done is a success");
        assert_eq!(summary.entries, 0);
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "the worker {pid} outlived its job"
        );
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
