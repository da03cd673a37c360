//! Regular files written on more threads than the parser's.
//!
//! GNU tar creates one file at a time; most of that time is the kernel's
//! (`openat`, `write`, `utimensat`, `close`). Here the applying thread parses,
//! resolves each file's parent directory and reads its data, then hands the
//! rest to a writer thread: create the name in that directory (`O_CREAT |
//! O_EXCL | O_NOFOLLOW`, one component, through the descriptor the applier
//! resolved), write, give owner, mode, attributes and time, close.
//!
//! A writer only ever *creates* a new name; whatever removes or replaces
//! something, and every other kind of entry, stays on the applying thread,
//! in archive order (see [`Applier`](super::Applier)'s queue). A name that
//! exists comes back as [`Written::Conflict`], with its data, for the
//! applying thread to handle as it handles any other entry.
//!
//! The writer is the decoding thread, idle when the input is plain tar: it
//! was started before the seccomp filter (which refuses `clone`) and holds
//! no capability, so what a file needs beyond that (a directory the worker
//! may not write without `CAP_DAC_OVERRIDE`, another owner) is handed back
//! to the applying thread. A thread of its own would serve compressed input
//! too, but made every one-file job pay for it (BENCHMARKS.md). The threads
//! share the worker's address space, so the writer is no wall from the
//! applying thread: the kernel's walls (root, Landlock, seccomp, rlimits)
//! hold for both alike.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::Arc;

use rustix::fs::{openat, unlinkat, AtFlags, Mode, OFlags};
use rustix::io::Errno;

use crate::report::Outcome;
use crate::worker::input::Decoder;
use crate::worker::names::{cpath, split};

use rustix::process::{Gid, Uid};

use super::{os, write_all, Fail, Fatal, FileMeta};

/// Files waiting per writer: with the byte budget, bounds memory and how far
/// reports lag behind the parser.
const QUEUE: usize = 512;

/// One file for a writer: its name in a directory the applying thread
/// resolved, its data and what to give it.
pub(crate) struct Task {
    /// The entry's place in the archive (the order of its report).
    pub seq: u64,
    pub dir: Arc<OwnedFd>,
    /// The file's normalised path (its last component is created in `dir`).
    pub path: Vec<u8>,
    pub data: Vec<u8>,
    pub meta: FileMeta,
}

/// What a writer did with a [`Task`].
pub(crate) enum Written {
    /// Written, or failed for this entry alone.
    Done(Outcome),
    /// The name exists (the applying thread decides: replace, keep,
    /// refuse), or the writer may not do what the file needs: handed back,
    /// nothing left of it, for the applying thread to write.
    Conflict(Box<Task>),
    /// The job stops (the disk is full, read-only, failing).
    Fatal(Fatal),
    /// Not written: an earlier file's error stops the job.
    Dropped,
}

/// A task's place, its data's size, and what became of it.
type Finished = (u64, usize, Written);

/// The writer thread of one job (one lane; the lanes keep two files of one
/// path on one thread, should there be more).
pub(crate) struct Writers {
    lanes: Vec<SyncSender<Box<Task>>>,
    results: Receiver<Finished>,
    /// Tasks handed out whose result has not been received.
    outstanding: usize,
    /// Bytes of data in those tasks.
    outstanding_bytes: usize,
    /// Set by a writer whose file met an error that ends the job: the
    /// writers write no more, and the applying thread stops.
    stopped: Arc<AtomicBool>,
}

impl Writers {
    /// Makes `thread` (the parked decoding thread, without capabilities) the
    /// writer, until the applier drops this.
    pub(crate) fn start(thread: Decoder) -> Writers {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let (results_tx, results) = mpsc::channel();
        let stopped = Arc::new(AtomicBool::new(false));
        let flag = stopped.clone();
        // Not joined: the worker ends with the job, and a writer that never
        // answers is an internal error of the job (`Applier::take`).
        drop(thread.run(move || serve(rx, results_tx, &flag)));
        Writers {
            lanes: vec![tx],
            results,
            outstanding: 0,
            outstanding_bytes: 0,
            stopped,
        }
    }

    /// Hands `task` to its lane: the same path always to the same lane, so
    /// that two entries of one name are written in archive order.
    pub(crate) fn send(&mut self, task: Box<Task>) -> Result<(), Box<Task>> {
        let lane = lane_of(&task.path, self.lanes.len());
        let bytes = task.data.len();
        match self.lanes[lane].send(task) {
            Ok(()) => {
                self.outstanding += 1;
                self.outstanding_bytes += bytes;
                Ok(())
            }
            Err(mpsc::SendError(task)) => Err(task),
        }
    }

    /// Whether a writer met an error that ends the job.
    pub(crate) fn stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// Tasks whose result has not been received.
    pub(crate) fn outstanding(&self) -> usize {
        self.outstanding
    }

    /// Bytes of data in those tasks.
    pub(crate) fn outstanding_bytes(&self) -> usize {
        self.outstanding_bytes
    }

    /// The next result (the task's place and what became of it): waiting
    /// for it when `wait`, else only if one is in. `None` when none is
    /// outstanding (or, without `wait`, none is in yet).
    pub(crate) fn receive(&mut self, wait: bool) -> Option<(u64, Written)> {
        if self.outstanding == 0 {
            return None;
        }
        let received = match wait {
            true => self.results.recv().ok(),
            false => self.results.try_recv().ok(),
        };
        let Some((seq, bytes, written)) = received else {
            if wait {
                // Every writer is gone: nothing more will come.
                self.outstanding = 0;
                self.outstanding_bytes = 0;
            }
            return None;
        };
        self.outstanding -= 1;
        self.outstanding_bytes = self.outstanding_bytes.saturating_sub(bytes);
        Some((seq, written))
    }
}

/// A writer thread: its set-up, then tasks until the worker is done.
fn serve(rx: Receiver<Box<Task>>, results: Sender<Finished>, stopped: &AtomicBool) {
    while let Ok(task) = rx.recv() {
        let (seq, bytes) = (task.seq, task.data.len());
        let written = match stopped.load(Ordering::Acquire) {
            true => Written::Dropped,
            false => write(task),
        };
        if let Written::Fatal(_) = written {
            stopped.store(true, Ordering::Release);
        }
        if results.send((seq, bytes, written)).is_err() {
            return;
        }
    }
}

/// Creates and writes the task's file. The thread holds no capability: what
/// it may not do (create in a directory it may not write, give another
/// owner, set a time on a file it does not own) it hands back, having
/// removed what it made, for the applying thread to do with its own.
fn write(task: Box<Task>) -> Written {
    let name = split(&task.path).1;
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mode = Mode::from_raw_mode(task.meta.mode);
    let file = match openat(&*task.dir, cpath(name), flags, mode) {
        Ok(file) => file,
        Err(Errno::EXIST | Errno::ACCESS | Errno::PERM) => return Written::Conflict(task),
        Err(e) => return failed(os("create", e)),
    };
    if let Err(fail) = write_all(&file, &task.data) {
        if let Fail::Fatal(_) = fail {
            // No truncated file is left looking complete.
            drop(file);
            let _ = unlinkat(&*task.dir, cpath(name), AtFlags::empty());
        }
        return failed(fail);
    }
    match finish(&file, &task.meta) {
        Ok(()) => Written::Done(Outcome::Written),
        Err(Errno::PERM | Errno::ACCESS) => {
            drop(file);
            let _ = unlinkat(&*task.dir, cpath(name), AtFlags::empty());
            Written::Conflict(task)
        }
        Err(e) => failed(os("finishing the file", e)),
    }
}

/// [`finish_file`](super::finish_file) without extended attributes (files
/// with some are not queued), saying which error came.
fn finish(file: &OwnedFd, meta: &FileMeta) -> Result<(), Errno> {
    if let Some((u, g)) = meta.owner {
        let (u, g) = (Uid::from_raw(u as u32), Gid::from_raw(g as u32));
        rustix::fs::fchown(file, Some(u), Some(g))?;
    }
    // Writing data and chown both clear setuid/setgid: put them back.
    if meta.mode & 0o7000 != 0 {
        rustix::fs::fchmod(file, Mode::from_raw_mode(meta.mode))?;
    }
    if let Some(mtime) = meta.mtime {
        rustix::fs::futimens(file, &super::times(mtime))?;
    }
    Ok(())
}

fn failed(fail: Fail) -> Written {
    match fail {
        Fail::Entry(message) => Written::Done(Outcome::Failed(message)),
        Fail::Kept => Written::Done(Outcome::Skipped(crate::report::SkipReason::Exists)),
        Fail::Fatal(fatal) => Written::Fatal(fatal),
    }
}

/// The lane of `path` among `lanes` (FNV-1a).
fn lane_of(path: &[u8], lanes: usize) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in path {
        hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    (hash % lanes as u64) as usize
}
