//! A packing job on the caller's side: starting it (the source opened and
//! handed to a warm worker, which confines itself to it read-only) and
//! [`Pack`], the archive's bytes as an `AsyncRead` with the entries' reports
//! and the summary.

use std::collections::VecDeque;
use std::io;
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
                Ok(Step::Data(n)) => {
                    if let Some(digest) = &mut this.digest {
                        digest.update(&buf.filled()[before..]);
                    }
                    this.archive_bytes += n as u64;
                    return Poll::Ready(Ok(()));
                }
                Ok(Step::Message(msg)) => {
                    if let Err(e) = this.handle(msg) {
                        this.fail(e);
                    }
                }
                Ok(Step::Closed) => this.fail(Error::WorkerDied {
                    pid: this.worker.pid,
                    how: "closed its socket before the end of the archive".into(),
                }),
                Err(e) => this.fail(e),
            }
        }
    }
}

fn is_sha256(digest: &str) -> bool {
    digest
        .strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Checks `options`, opens `source`, and starts a worker packing it.
pub(crate) async fn start(pool: &Pool, source: &Path, options: &PackOptions) -> Result<Pack> {
    let started = Instant::now();
    check(options)?;
    let (dir, canonical) = open_source(source)?;
    let header = JobHeader {
        dest: canonical.as_os_str().as_bytes().to_vec(),
        options: Options {
            list_only: true,
            ..Options::default()
        },
        pack: Some(options.clone()),
    };
    let fds = Fds {
        dir: &dir,
        lead: None,
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
    Ok(Pack {
        socket,
        worker: confined.worker,
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
