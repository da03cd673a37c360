//! The start of a job: opening the destination, handing it to a warm worker and
//! waiting until that worker is confined to it (once more on a fresh worker if
//! a warm one does not see the destination).
//!
//! By the time a [`Job`] is returned, the options have been checked, any
//! problem with the destination has been reported, and no byte of the archive
//! has been read.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWriteExt, Interest};
use tokio::net::UnixStream;

use crate::caller::child::{Lineage, Worker};
use crate::caller::frames::{self, Frames};
use crate::caller::job::{Expected, Job};
use crate::caller::lead;
use crate::caller::mounts;
use crate::caller::overlay::OpaqueMarks;
use crate::caller::pool::{Confined, Pool, Warm};
use crate::caller::zygote_conn::Arrival;
use crate::error::{Error, Result};
use crate::options::{Options, WhiteoutFormat};
use crate::sys;
use crate::wire::{encode_frame, JobHeader, WireError, WorkerMsg, HEADER_MAGIC};

/// Opens the destination, hands it to a warm worker, waits until the worker is
/// confined, and returns the job.
pub(crate) async fn start<R: AsyncRead + Unpin>(
    pool: &Pool,
    reader: R,
    dest: &Path,
    options: &Options,
) -> Result<Job<R>> {
    let started = Instant::now();
    // Before any work: a malformed expectation is the caller's mistake.
    let expected = Expected::from_options(options)?;
    check_selection(options)?;
    if options.max_lead == Some(0) {
        return Err(Error::InvalidOption {
            option: "max_lead",
            problem: "must be at least 1 (entries applied before their reports are taken)",
        });
    }
    if options.whiteouts.is_some() && options.overwrite != crate::Overwrite::Replace {
        return Err(Error::InvalidOption {
            option: "overwrite",
            problem: "a layer replaces what it names: only Overwrite::Replace applies",
        });
    }
    static JOB_IDS: AtomicU64 = AtomicU64::new(1);
    let id = JOB_IDS.fetch_add(1, Ordering::Relaxed);
    let span = tracing::info_span!(
        "sandtar_job",
        id,
        dest = %dest.display(),
        worker_pid = tracing::field::Empty
    );
    let result = confined_worker(pool, dest, options, &span).await;
    match result {
        Ok((confined, dir)) => {
            // As real root, the overlay format's opaque marks are the caller's.
            let opaque = (options.whiteouts == Some(WhiteoutFormat::Overlay)
                && pool.mode().is_privileged())
            .then(|| OpaqueMarks::new(dir));
            span.record("worker_pid", confined.worker.pid);
            tracing::debug!(parent: &span, compression = options.compression.name(), "worker confined");
            let rung = pool.mode().rung();
            Ok(Job::new(
                reader, confined, started, span, expected, opaque, rung,
            ))
        }
        Err(e) => {
            tracing::warn!(parent: &span, error = %e, "job could not start");
            Err(e)
        }
    }
}

/// The selection's patterns can be used, and it is not asked of a layer.
fn check_selection(options: &Options) -> Result<()> {
    let invalid = |problem| Error::InvalidOption {
        option: "select",
        problem,
    };
    crate::selection::Selector::new(&options.select).map_err(invalid)?;
    let select = &options.select;
    let bytes: usize = select
        .include
        .iter()
        .chain(&select.exclude)
        .map(String::len)
        .sum();
    if bytes > crate::selection::MAX_PATTERN_BYTES {
        return Err(invalid("its patterns add up to more than 16 KiB"));
    }
    if options.whiteouts.is_some() && options.select != crate::Selection::default() {
        return Err(invalid(
            "cannot be combined with whiteouts: an image layer is applied whole",
        ));
    }
    Ok(())
}

/// A worker confined to `dest`, waiting for the archive.
async fn confined_worker(
    pool: &Pool,
    dest: &Path,
    options: &Options,
    span: &tracing::Span,
) -> Result<(Confined, File)> {
    if options.create_destination {
        create_destination(dest)?;
    }
    let (dir, canonical) = open_destination(dest)?;
    let mut header = JobHeader {
        dest: canonical.as_os_str().as_bytes().to_vec(),
        options: options.clone(),
        pack: None,
        pack_into: false,
    };
    // The caller checks the blob digest itself; the worker need not know it.
    header.options.expected_digest = None;
    let channel = options.max_lead.map(|_| lead::channel()).transpose()?;
    let fds = Fds {
        dir: &dir,
        lead: channel.as_ref().map(|(_, theirs)| theirs),
        output: None,
    };
    let warm = warm_worker(pool).await?;
    let confined = match confine(warm, &header, &fds, dest).await {
        Err(Error::DestinationChanged { .. }) => {
            // This worker may predate a mount: try once with a new one.
            tracing::debug!(parent: span, "destination not seen by a warm worker; retrying on a fresh one");
            let fresh = fresh_worker(pool).await?;
            confine(fresh, &header, &fds, dest).await
        }
        other => other,
    };
    let mut confined = confined?;
    if let (Some((ours, _)), Some(max)) = (channel, options.max_lead) {
        confined.lead = Some(lead::Lead::new(ours, max));
    }
    Ok((confined, dir))
}

/// A warm worker: a spare one, or the next from the zygote.
pub(crate) async fn warm_worker(pool: &Pool) -> Result<Warm> {
    if let Some(warm) = pool.take_spare() {
        return Ok(warm);
    }
    expect_warm(pool.next_arrival(false).await?).await
}

/// A warm worker forked after this call: its mount namespace is a copy of the
/// current one (used when an older worker does not see the destination).
pub(crate) async fn fresh_worker(pool: &Pool) -> Result<Warm> {
    pool.drop_spares();
    expect_warm(pool.next_arrival(true).await?).await
}

/// Creates `dest` and its missing parents (`Options::create_destination`).
fn create_destination(dest: &Path) -> Result<()> {
    std::fs::create_dir_all(dest).map_err(|e| Error::Destination {
        path: dest.to_path_buf(),
        problem: format!("cannot be created: {e}"),
    })
}

/// Opens `dest` as a directory and finds its absolute path.
fn open_destination(dest: &Path) -> Result<(File, PathBuf)> {
    let problem = |problem: String| Error::Destination {
        path: dest.to_path_buf(),
        problem,
    };
    let (dir, link) = open_directory(dest, problem)?;
    let stat = rustix::fs::fstatvfs(&dir).map_err(|e| problem(format!("statvfs failed: {e}")))?;
    if stat.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY) {
        return Err(problem("is on a read-only filesystem".into()));
    }
    match mounts::first_mount_below(&link) {
        Ok(None) => Ok((dir, link)),
        Ok(Some(point)) => Err(problem(format!(
            "has a filesystem mounted below it, at {}: what that mount hides would be \
             in reach of the archive; unmount it or extract elsewhere",
            point.display()
        ))),
        Err(e) => Err(problem(format!(
            "cannot be checked for mounts below it (/proc/self/mountinfo: {e})"
        ))),
    }
}

/// Opens `path` as a directory and finds its absolute path (that of the
/// directory opened, which the worker checks its mount against); what is
/// wrong with it is said through `problem` (a destination's, a source's).
pub(crate) fn open_directory(
    path: &Path,
    problem: impl Fn(String) -> Error,
) -> Result<(File, PathBuf)> {
    let dir = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| {
            problem(match e.raw_os_error() {
                Some(libc::ENOENT) => "does not exist".into(),
                Some(libc::ENOTDIR) => "is not a directory".into(),
                Some(libc::EACCES) => "cannot be opened: permission denied".into(),
                _ => format!("cannot be opened: {e}"),
            })
        })?;
    let link = std::fs::read_link(format!("/proc/self/fd/{}", dir.as_raw_fd()))
        .or_else(|_| std::fs::canonicalize(path))
        .map_err(|e| problem(format!("cannot resolve its absolute path: {e}")))?;
    if link.as_os_str().as_bytes().ends_with(b" (deleted)") {
        return Err(problem("was deleted".into()));
    }
    Ok((dir, link))
}

/// Reads the `Warm` message a new worker sends once it is set up.
async fn expect_warm(arrival: Arrival) -> Result<Warm> {
    let lineage = arrival.worker.lineage.clone();
    let warm = read_warm(arrival).await;
    judge(warm, &lineage)
}

/// A worker that died or broke the protocol before its job retires its
/// zygote (see [`Pool`]'s recycling).
fn judge<T>(result: Result<T>, lineage: &Lineage) -> Result<T> {
    if let Err(e @ (Error::WorkerDied { .. } | Error::Protocol(_))) = &result {
        tracing::warn!(error = %e, "a sandtar worker ended abnormally before its job; its zygote will be replaced");
        lineage.retire();
    }
    result
}

async fn read_warm(arrival: Arrival) -> Result<Warm> {
    let Arrival { worker, socket, .. } = arrival;
    let std_socket = std::os::unix::net::UnixStream::from(socket);
    std_socket
        .set_nonblocking(true)
        .map_err(|e| Error::io("worker socket", e))?;
    let mut socket = UnixStream::from_std(std_socket).map_err(|e| Error::io("worker socket", e))?;
    match Frames::new().next(&mut socket).await? {
        // Unregistered again (and still non-blocking), for any runtime.
        Some(WorkerMsg::Warm { awaits_clone }) => Ok(Warm {
            worker,
            awaits_clone,
            socket: socket
                .into_std()
                .map_err(|e| Error::io("worker socket", e))?,
        }),
        Some(WorkerMsg::Failed(error @ WireError::Confinement(_))) => Err(error.into()),
        Some(other) => Err(Error::Protocol(format!(
            "expected Warm, got {}",
            frames::name(&other)
        ))),
        None => Err(died(worker).await),
    }
}

/// The descriptors a job's header comes with: the destination, and the
/// worker's end of the lead channel when the options bound the lead.
pub(crate) struct Fds<'a> {
    pub dir: &'a File,
    pub lead: Option<&'a OwnedFd>,
    /// A packing job's output (`Sandbox::pack_into`).
    pub output: Option<BorrowedFd<'a>>,
}

/// Sends the job header with its descriptors and waits until the worker is
/// confined to `dest`.
pub(crate) async fn confine(
    warm: Warm,
    header: &JobHeader,
    fds: &Fds<'_>,
    dest: &Path,
) -> Result<Confined> {
    let lineage = warm.worker.lineage.clone();
    judge(send_job(warm, header, fds, dest).await, &lineage)
}

async fn send_job(warm: Warm, header: &JobHeader, fds: &Fds<'_>, dest: &Path) -> Result<Confined> {
    let mut message = HEADER_MAGIC.to_vec();
    message.extend_from_slice(&encode_frame(header));
    // Registered with this job's runtime, whichever received the worker.
    let mut confined = Confined {
        socket: UnixStream::from_std(warm.socket).map_err(|e| Error::io("worker socket", e))?,
        worker: warm.worker,
        lead: None,
    };
    // A worker waiting in an empty root gets a clone of the destination's
    // mount, made here from the descriptor (no path resolved again).
    let read_only = header.options.list_only || header.pack.is_some();
    let clone = match warm.awaits_clone {
        true => Some(
            sys::clone_for_worker(fds.dir.as_fd(), read_only).map_err(|e| {
                Error::io(
                    "cloning the destination's mount (open_tree, mount_setattr)",
                    e,
                )
            })?,
        ),
        false => None,
    };
    let dest_fd = clone.as_ref().map_or(fds.dir.as_fd(), |tree| tree.as_fd());
    let mut attached = vec![dest_fd];
    attached.extend(fds.lead.map(|fd| fd.as_fd()));
    attached.extend(fds.output);
    let sent = confined
        .socket
        .async_io(Interest::WRITABLE, || {
            sys::send_with_fds(confined.socket.as_fd(), &message, &attached)
        })
        .await
        .map_err(|e| Error::io("sending the job", e))?;
    confined
        .socket
        .write_all(&message[sent..])
        .await
        .map_err(|e| Error::io("sending the job", e))?;
    let mut frames = Frames::new();
    match frames.next(&mut confined.socket).await? {
        Some(WorkerMsg::Confined) if frames.is_empty() => Ok(confined),
        // Confined, then failed at once (before the first archive byte): the
        // failure is the answer. Anything else this early is out of place.
        Some(WorkerMsg::Confined) => match frames.next(&mut confined.socket).await? {
            Some(WorkerMsg::Failed(error)) => Err(error.into()),
            _ => Err(Error::Protocol("a frame right after Confined".into())),
        },
        Some(WorkerMsg::Failed(WireError::DestinationChanged)) => Err(Error::DestinationChanged {
            path: dest.to_path_buf(),
        }),
        Some(WorkerMsg::Failed(error)) => Err(error.into()),
        Some(other) => Err(Error::Protocol(format!(
            "expected Confined, got {}",
            frames::name(&other)
        ))),
        None => Err(died(confined.worker).await),
    }
}

/// Waits for a worker that closed its socket to exit, and says how it ended.
async fn died(mut worker: Worker) -> Error {
    worker.kill();
    let pid = worker.pid;
    if let Some(fd) = worker.pidfd().and_then(|fd| fd.try_clone().ok()) {
        if let Ok(fd) = sys::async_fd(fd, Interest::READABLE) {
            let _ = fd.readable().await;
        }
    }
    let how = worker
        .try_reap()
        .map_or_else(|| "closed its socket".into(), |exit| exit.describe());
    Error::WorkerDied { pid, how }
}
