//! A packing job on the caller's side: starting it (the source opened and
//! handed to a warm worker, which confines itself to it read-only) and
//! [`Pack`], the archive's bytes as an `AsyncRead` with the entries' reports
//! and the summary.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::UnixStream;

use crate::caller::child::Worker;
use crate::caller::data_frames::{DataFrames, Step};
use crate::caller::frames;
use crate::caller::job::check_report;
use crate::caller::pool::Pool;
use crate::caller::start::{confine, fresh_worker, open_directory, warm_worker, Fds};
use crate::error::{Error, Result};
use crate::mode::Rung;
use crate::options::{Compression, Options};
use crate::pack::PackOptions;
use crate::report::{EntryReport, Outcome, Summary};
use crate::wire::{untrusted_path, untrusted_text, JobHeader, WireReport, WorkerMsg};

/// A running packing job ([`Sandbox::pack`](crate::Sandbox::pack)): read the
/// archive from it (it is an [`AsyncRead`]; the worker waits while you do
/// not), take the entries' reports as they come ([`Pack::reports`]), and
/// call [`Pack::finish`] for the summary. Dropping it kills the worker.
///
/// ```no_run
/// # async fn demo(sandbox: sandtar::Sandbox) -> sandtar::Result<()> {
/// let options = sandtar::PackOptions::default();
/// let mut pack = sandbox.pack("/srv/site", &options).await?;
/// let mut out = tokio::fs::File::create("/tmp/site.tar").await.map_err(|e| sandtar::Error::Read(e.into()))?;
/// tokio::io::copy(&mut pack, &mut out).await.map_err(|e| sandtar::Error::Read(e.into()))?;
/// for report in pack.reports() {
///     if report.outcome != sandtar::Outcome::Written {
///         eprintln!("{}: {}", report.shown_path(), report.outcome.reason().unwrap_or_default());
///     }
/// }
/// let summary = pack.finish().await?;
/// println!("{} entries, {} bytes", summary.written, summary.archive_bytes);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Pack {
    socket: UnixStream,
    /// Where the worker writes the archive, when not in `Data` frames.
    output: Option<Output>,
    worker: Worker,
    frames: DataFrames,
    queue: VecDeque<EntryReport>,
    counts: Counts,
    /// The SHA-256 of the bytes read, when the options ask for digests.
    digest: Option<Sha256>,
    archive_bytes: u64,
    compression: Compression,
    started: Instant,
    rung: Rung,
    state: State,
}

#[derive(Debug, Default)]
struct Counts {
    entries: u64,
    written: u64,
    skipped: u64,
    not_selected: u64,
    failed: u64,
    bytes: u64,
}

#[derive(Debug)]
enum State {
    Running,
    /// The worker's last word (the archive ends here).
    Ended(Result<Summary>),
    /// The result was taken (read as an error, or by `finish`).
    Taken,
}

impl Pack {
    /// The reports received so far and not taken yet, in the archive's
    /// order. Reports arrive with the archive's bytes: read the archive to
    /// get them all.
    pub fn reports(&mut self) -> impl Iterator<Item = EntryReport> + '_ {
        self.queue.drain(..)
    }

    /// Reads the rest of the archive (dropping it) and returns the summary:
    /// `written` entries packed, `archive_bytes` the archive's size as read,
    /// `tar_bytes` the uncompressed stream's size; with
    /// [`PackOptions::digest`], `diff_id` its SHA-256 and `digest` the
    /// SHA-256 of the bytes as read.
    pub async fn finish(mut self) -> Result<Summary> {
        let mut sink = tokio::io::sink();
        if let Err(e) = tokio::io::copy(&mut self, &mut sink).await {
            if let State::Ended(Err(_)) | State::Taken = self.state {
            } else {
                return Err(Error::io("reading the archive", e));
            }
        }
        self.worker.kill();
        match std::mem::replace(&mut self.state, State::Taken) {
            State::Ended(result) => result,
            _ => Err(Error::Protocol(
                "the packing job ended without a result".into(),
            )),
        }
    }

    /// Handles one frame from the worker.
    fn handle(&mut self, msg: WorkerMsg) -> Result<()> {
        match msg {
            WorkerMsg::Reports(batch) => batch.into_iter().try_for_each(|r| self.accept(r)),
            WorkerMsg::Done(totals) => {
                let diff_id = match (totals.diff_id, &self.digest) {
                    (Some(d), Some(_)) if is_sha256(&d) => Some(d),
                    (None, None) => None,
                    _ => {
                        return Err(Error::Protocol(
                            "a diff_id the options did not ask for, or none where they did".into(),
                        ))
                    }
                };
                let c = &self.counts;
                let summary = Summary {
                    entries: c.entries,
                    written: c.written,
                    listed: 0,
                    skipped: c.skipped,
                    not_selected: c.not_selected,
                    rejected: 0,
                    failed: c.failed,
                    bytes_written: c.bytes,
                    archive_bytes: self.archive_bytes,
                    tar_bytes: totals.tar_bytes,
                    compression: self.compression,
                    elapsed: self.started.elapsed(),
                    diff_id,
                    digest: self
                        .digest
                        .clone()
                        .map(|d| format!("sha256:{:x}", d.finalize())),
                    layer_size: 0,
                    rung: self.rung,
                };
                self.state = State::Ended(Ok(summary));
                Ok(())
            }
            WorkerMsg::Failed(error) => Err(error.into()),
            other => Err(Error::Protocol(format!(
                "unexpected {} during a packing job",
                frames::name(&other)
            ))),
        }
    }

    /// Validates one report from the (untrusted) worker and queues it.
    fn accept(&mut self, report: WireReport) -> Result<()> {
        check_report(&report)?;
        if !report.notes.is_empty()
            || matches!(report.outcome, Outcome::Rejected(_) | Outcome::Listed)
        {
            return Err(Error::Protocol("a report a packing job cannot make".into()));
        }
        let c = &mut self.counts;
        c.entries += 1;
        match &report.outcome {
            Outcome::Written => {
                c.written += 1;
                c.bytes = c.bytes.saturating_add(report.size);
            }
            Outcome::Skipped(reason) => {
                c.skipped += 1;
                if reason.is_selection() {
                    c.not_selected += 1;
                }
            }
            _ => c.failed += 1,
        }
        let outcome = match report.outcome {
            Outcome::Failed(message) => Outcome::Failed(untrusted_text(message)),
            other => other,
        };
        self.queue.push_back(EntryReport {
            path: untrusted_path(report.path),
            kind: report.kind,
            size: report.size,
            outcome,
            notes: Vec::new(),
        });
        Ok(())
    }

    /// Handles one step that is not archive data for the reader.
    fn take(&mut self, step: Result<Step>) {
        match step {
            Ok(Step::Data(_)) => self.fail(Error::Protocol(
                "archive data on the socket of a job that writes its archive itself".into(),
            )),
            Ok(Step::Message(msg)) => {
                if let Err(e) = self.handle(msg) {
                    self.fail(e);
                }
            }
            Ok(Step::Closed) => self.fail(Error::WorkerDied {
                pid: self.worker.pid,
                how: "closed its socket before the end of the archive".into(),
            }),
            Err(e) => self.fail(e),
        }
    }

    /// Reads frames (a job writing its archive itself: reports and the
    /// last word only) until a report is queued, or, with `to_end`, until
    /// the job has ended.
    fn poll_frames(&mut self, cx: &mut Context<'_>, to_end: bool) -> Poll<()> {
        while matches!(self.state, State::Running) && (to_end || self.queue.is_empty()) {
            let mut nothing = ReadBuf::new(&mut []);
            let step = ready!(self.frames.poll_step(&mut self.socket, cx, &mut nothing));
            self.take(step);
        }
        Poll::Ready(())
    }

    /// The job's end with `error`: the worker is killed.
    fn fail(&mut self, error: Error) {
        self.worker.kill();
        self.state = State::Ended(Err(error));
    }
}

impl AsyncRead for Pack {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            match &this.state {
                State::Ended(Err(e)) => return Poll::Ready(Err(io::Error::other(e.to_string()))),
                State::Ended(Ok(_)) | State::Taken => return Poll::Ready(Ok(())),
                State::Running if buf.remaining() == 0 => return Poll::Ready(Ok(())),
                State::Running => {}
            }
            let before = buf.filled().len();
            match ready!(this.frames.poll_step(&mut this.socket, cx, buf)) {
                Ok(Step::Data(n)) if this.output.is_none() => {
                    if let Some(digest) = &mut this.digest {
                        digest.update(&buf.filled()[before..]);
                    }
                    this.archive_bytes += n as u64;
                    return Poll::Ready(Ok(()));
                }
                step => this.take(step),
            }
        }
    }
}

/// A running packing job whose worker writes the archive itself, to the
/// file or pipe given to [`Sandbox::pack_into`](crate::Sandbox::pack_into):
/// take the entries' reports with [`PackInto::next`] as they come, and call
/// [`PackInto::finish`] for the summary, which returns once the worker is
/// gone (nothing is written to the output after it). Dropping it kills the
/// worker.
///
/// ```no_run
/// # async fn demo(sandbox: sandtar::Sandbox) -> sandtar::Result<()> {
/// let out = std::fs::File::create("/tmp/site.tar").map_err(|e| sandtar::Error::Read(e.into()))?;
/// let options = sandtar::PackOptions::default();
/// let mut pack = sandbox.pack_into("/srv/site", &options, out).await?;
/// while let Some(report) = pack.next().await {
///     if report.outcome != sandtar::Outcome::Written {
///         eprintln!("{}: {}", report.shown_path(), report.outcome.reason().unwrap_or_default());
///     }
/// }
/// let summary = pack.finish().await?;
/// println!("{} entries, {} bytes", summary.written, summary.archive_bytes);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct PackInto {
    pack: Pack,
}

impl PackInto {
    pub(crate) fn new(pack: Pack) -> Self {
        PackInto { pack }
    }

    /// The worker's process id (for logs).
    pub fn worker_pid(&self) -> u32 {
        self.pack.worker.pid
    }

    /// The next entry's report, in the archive's order; `None` once the
    /// job has ended (its result, failure included, is
    /// [`PackInto::finish`]'s).
    pub async fn next(&mut self) -> Option<EntryReport> {
        let pack = &mut self.pack;
        std::future::poll_fn(|cx| pack.poll_frames(cx, false)).await;
        pack.queue.pop_front()
    }

    /// Waits for the job's end and returns the summary, as
    /// [`Pack::finish`]'s, once the worker is gone: `archive_bytes` is how
    /// far the output grew (a regular file; 0 for a pipe), and
    /// with [`PackOptions::digest`] `digest` is the SHA-256 of those bytes,
    /// read back from the file. Reports not taken are dropped.
    pub async fn finish(mut self) -> Result<Summary> {
        let pack = &mut self.pack;
        std::future::poll_fn(|cx| pack.poll_frames(cx, true)).await;
        pack.worker.kill();
        wait_gone(&mut pack.worker).await;
        let result = match std::mem::replace(&mut pack.state, State::Taken) {
            State::Ended(result) => result,
            _ => Err(Error::Protocol(
                "the packing job ended without a result".into(),
            )),
        };
        // The worker is gone: the output is the caller's again, whatever
        // the result (its offset past what was written, its flags its own).
        let written = pack.output.as_mut().map(Output::settle).transpose();
        let mut summary = result?;
        if let (Some(output), Some(written)) = (&pack.output, written?) {
            summary.archive_bytes = written;
            if pack.digest.is_some() {
                summary.digest = Some(output.digest(written)?);
            }
        }
        Ok(summary)
    }
}

/// Waits until `worker`, sent SIGKILL, has exited, and reaps it: after this
/// it writes nothing more anywhere.
async fn wait_gone(worker: &mut Worker) {
    let watched = worker
        .pidfd()
        .and_then(|fd| fd.try_clone().ok())
        .and_then(|fd| crate::sys::async_fd(fd, tokio::io::Interest::READABLE).ok());
    if let Some(fd) = watched {
        let _ = fd.readable().await;
    }
    if worker.try_reap().is_none() {
        worker.reap_blocking();
    }
}

/// A packing job's output, as the caller keeps it: for a regular file,
/// where the archive starts (to measure and read back what the worker
/// wrote), and the flags to give back once the worker is gone.
///
/// The worker shares the caller's open file description. For a regular
/// file, it is made `O_APPEND` first (the packing filter refuses
/// `F_SETFL`, so the worker cannot clear it): every write lands at the
/// end, whatever the worker does to the offset, so nothing the file held
/// is written over and no hole opens. A pipe has no offset, and its flags
/// (`O_NONBLOCK`) stay the caller's for the same reason.
#[derive(Debug)]
struct Output {
    file: std::fs::File,
    /// Where the archive starts, in a regular file.
    start: Option<u64>,
    /// `O_APPEND` was added for the job, to take off again.
    added_append: bool,
    /// The same file opened for reading, to hash what was written.
    reader: Option<std::fs::File>,
    /// The worker is gone and the output given back ([`Output::settle`]).
    settled: bool,
}

impl Output {
    /// Checks `fd` (a regular file or a pipe, open for writing only; a
    /// regular file's offset at its end, where the archive is appended),
    /// notes where the archive will start, and makes a regular file
    /// `O_APPEND`.
    fn new(fd: OwnedFd, digest: bool) -> Result<Self> {
        use rustix::fs::{fcntl_getfl, fcntl_setfl, fstat, seek, FileType, OFlags, SeekFrom};
        let invalid = |problem| Error::InvalidOption {
            option: "out",
            problem,
        };
        let kind = fstat(&fd).map(|st| FileType::from_raw_mode(st.st_mode));
        let flags = fcntl_getfl(&fd).map_err(|_| invalid("is not an open descriptor"))?;
        if flags & OFlags::RWMODE != OFlags::WRONLY {
            return Err(invalid(
                "must be open for writing only (the worker gets it and must not read it)",
            ));
        }
        let failed = |e: rustix::io::Errno| Error::io("preparing the output", e.into());
        let start = match kind {
            Ok(FileType::RegularFile) => {
                let size = fstat(&fd).map_err(failed)?.st_size as u64;
                let at = seek(&fd, SeekFrom::Current(0)).map_err(failed)?;
                if !flags.contains(OFlags::APPEND) && at != size {
                    return Err(invalid(
                        "must be at its end: the archive is appended (seek to the end, \
                         or truncate the file first)",
                    ));
                }
                Some(size)
            }
            Ok(FileType::Fifo) => None,
            _ => return Err(invalid("must be a regular file or a pipe")),
        };
        let reader = match (digest, start) {
            (false, _) => None,
            (true, Some(_)) => Some(reopen_for_reading(&fd)?),
            (true, None) => {
                return Err(Error::InvalidOption {
                    option: "digest",
                    problem: "the caller cannot hash what the worker writes to a pipe \
                              (use Sandbox::pack, or a regular file)",
                })
            }
        };
        let added_append = start.is_some() && !flags.contains(OFlags::APPEND);
        if added_append {
            fcntl_setfl(&fd, flags | OFlags::APPEND).map_err(failed)?;
        }
        Ok(Output {
            file: fd.into(),
            start,
            added_append,
            reader,
            settled: false,
        })
    }

    /// What the worker gets: the caller's file (appending) or pipe.
    fn for_worker(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// Once the worker is gone: moves the caller's offset past what it
    /// wrote (as if the caller had written it), gives the caller its flags
    /// back, and returns how many bytes the worker wrote (how far the file
    /// grew: it could only append; 0 for a pipe).
    fn settle(&mut self) -> Result<u64> {
        self.settled = true;
        let Some(start) = self.start else {
            return Ok(0);
        };
        use rustix::fs::{fcntl_getfl, fcntl_setfl, seek, OFlags, SeekFrom};
        let failed = |e: rustix::io::Errno| Error::io("giving the output back", e.into());
        // Both steps, whatever the other did; only `O_APPEND` is taken off
        // (another holder of the description may have changed the rest).
        let restored = match std::mem::take(&mut self.added_append) {
            true => fcntl_getfl(&self.file)
                .and_then(|flags| fcntl_setfl(&self.file, flags - OFlags::APPEND)),
            false => Ok(()),
        };
        let end = seek(&self.file, SeekFrom::End(0));
        restored.map_err(failed)?;
        Ok(end.map_err(failed)?.saturating_sub(start))
    }

    /// The SHA-256 of the `len` bytes written, read back.
    fn digest(&self, len: u64) -> Result<String> {
        use std::os::unix::fs::FileExt;
        let (Some(reader), Some(start)) = (&self.reader, self.start) else {
            return Err(Error::Protocol("no output to hash".into()));
        };
        let mut hash = Sha256::new();
        let mut buffer = vec![0u8; 256 << 10];
        let mut at = 0u64;
        while at < len {
            let want = buffer.len().min((len - at) as usize);
            let n = reader
                .read_at(&mut buffer[..want], start + at)
                .map_err(|e| Error::io("reading the archive back", e))?;
            if n == 0 {
                return Err(Error::io(
                    "reading the archive back",
                    io::ErrorKind::UnexpectedEof.into(),
                ));
            }
            hash.update(&buffer[..n]);
            at += n as u64;
        }
        Ok(format!("sha256:{:x}", hash.finalize()))
    }
}

/// The same regular file opened again, for reading (through
/// `/proc/thread-self/fd`, which names the open file itself, not a path).
fn reopen_for_reading(fd: &OwnedFd) -> Result<std::fs::File> {
    std::fs::File::open(format!("/proc/thread-self/fd/{}", fd.as_raw_fd())).map_err(|_| {
        Error::InvalidOption {
            option: "digest",
            problem: "the output cannot be opened again for reading through \
                      /proc/thread-self/fd to hash it (is /proc mounted, and may this \
                      process read the file by its mode?); use Sandbox::pack",
        }
    })
}

impl Drop for Output {
    /// A job dropped before [`PackInto::finish`]: the worker is killed but
    /// may not be gone yet, so the file stays `O_APPEND` (a write of its
    /// that is still under way lands at the end); the caller's offset moves
    /// past what was written, so its next write does not land over it.
    fn drop(&mut self) {
        if !self.settled && self.start.is_some() {
            let _ = rustix::fs::seek(&self.file, rustix::fs::SeekFrom::End(0));
        }
    }
}

fn is_sha256(digest: &str) -> bool {
    digest
        .strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Checks `options`, opens `source`, and starts a worker packing it,
/// writing the archive to `output` itself if there is one.
pub(crate) async fn start(
    pool: &Pool,
    source: &Path,
    options: &PackOptions,
    output: Option<OwnedFd>,
) -> Result<Pack> {
    let started = Instant::now();
    check(options)?;
    let (dir, canonical) = open_source(source)?;
    let mut output = output
        .map(|fd| Output::new(fd, options.digest))
        .transpose()?;
    let launched = launch(pool, (source, &canonical, &dir), options, output.as_ref()).await;
    let (socket, worker) = match launched {
        Ok(launched) => launched,
        Err(e) => {
            // No worker is writing to it: the output is the caller's again.
            if let Some(output) = &mut output {
                let _ = output.settle();
            }
            return Err(e);
        }
    };
    Ok(Pack {
        socket,
        output,
        worker,
        frames: DataFrames::default(),
        queue: VecDeque::new(),
        counts: Counts::default(),
        digest: options.digest.then(Sha256::new),
        archive_bytes: 0,
        compression: options.compression,
        started,
        rung: pool.mode().rung(),
        state: State::Running,
    })
}

/// Confines a worker to the source (as given, canonical, open) and starts
/// it packing, into `output` if there is one; its socket and the worker.
async fn launch(
    pool: &Pool,
    (source, canonical, dir): (&Path, &Path, &std::fs::File),
    options: &PackOptions,
    output: Option<&Output>,
) -> Result<(UnixStream, Worker)> {
    let header = JobHeader {
        dest: canonical.as_os_str().as_bytes().to_vec(),
        options: Options {
            list_only: true,
            ..Options::default()
        },
        pack: Some(options.clone()),
        pack_into: output.is_some(),
    };
    let fds = Fds {
        dir,
        lead: None,
        output: output.map(Output::for_worker),
    };
    let warm = warm_worker(pool).await?;
    let confined = match confine(warm, &header, &fds, source).await {
        Err(Error::DestinationChanged { .. }) => {
            // This worker may predate a mount: try once with a new one.
            let fresh = fresh_worker(pool).await?;
            confine(fresh, &header, &fds, source).await
        }
        other => other,
    }
    .map_err(|e| match e {
        Error::DestinationChanged { path } => Error::Source {
            path,
            problem: "was replaced while the worker was confined to it".into(),
        },
        other => other,
    })?;
    let mut socket = confined.socket;
    // Go: the worker starts once this side is shut.
    tokio::io::AsyncWriteExt::shutdown(&mut socket)
        .await
        .map_err(|e| Error::io("starting the packing job", e))?;
    Ok((socket, confined.worker))
}

/// The options a packing job can take.
fn check(options: &PackOptions) -> Result<()> {
    let invalid = |option, problem| Error::InvalidOption { option, problem };
    if !matches!(
        options.compression,
        Compression::None | Compression::Gzip | Compression::Zstd
    ) {
        return Err(invalid(
            "compression",
            "a packing job compresses with gzip or zstd, or not at all",
        ));
    }
    if options.select.strip_components != 0 {
        return Err(invalid(
            "select",
            "strip_components is for extraction; use prefix to rename the top",
        ));
    }
    crate::selection::Selector::new(&options.select).map_err(|p| invalid("select", p))?;
    crate::ignore::IgnoreRules::new(&options.ignore).map_err(|p| invalid("ignore", p))?;
    let select = &options.select;
    let patterns = select.include.iter().chain(&select.exclude);
    let bytes: usize = patterns.chain(&options.ignore).map(String::len).sum();
    if bytes > crate::selection::MAX_PATTERN_BYTES {
        return Err(invalid(
            "ignore",
            "its rules and select's patterns add up to more than 16 KiB",
        ));
    }
    if let Some(prefix) = &options.prefix {
        let parts: Vec<&str> = prefix.split('/').filter(|p| !p.is_empty()).collect();
        if prefix.starts_with('/')
            || parts.is_empty()
            || parts.iter().any(|p| *p == ".." || *p == ".")
        {
            return Err(invalid(
                "prefix",
                "must be a relative name without '.' or '..' components",
            ));
        }
    }
    Ok(())
}

/// Opens `source` as a directory and finds its absolute path. A filesystem
/// mounted below it is not packed on the namespace rung (the worker sees the
/// directory under it).
fn open_source(source: &Path) -> Result<(std::fs::File, PathBuf)> {
    open_directory(source, |problem| Error::Source {
        path: source.to_path_buf(),
        problem,
    })
}
