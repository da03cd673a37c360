//! Which files the applier hands to the writer threads ([`writers`]), and the
//! order kept around them.
//!
//! The rules, so that the tree and the reports are those of applying one
//! entry after another:
//! * a file goes to a writer only once its parent directory is resolved (or
//!   made) here, and its data read; a writer only creates a name;
//! * two files of one path go to the same writer, in archive order;
//! * results are settled in archive order; a name that existed comes back
//!   and is replaced (or kept, or refused) here, as for any entry;
//! * before anything else touches a path with a file still queued (an
//!   entry of that name, a hard link to it, a directory below it), and
//!   before removing anything, applying a whiteout, or the directories'
//!   deferred metadata, every queued file is settled.
//!
//! The first files of a job, sparse files and large ones are written here,
//! as before: a one-file job does not wait for another thread, and a large
//! file is not held in memory.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::Read;

use rustix::fs::{openat, unlinkat, AtFlags, Mode, OFlags};

use crate::report::{EntryKind, Outcome};
use crate::worker::archive::Meta;
use crate::worker::names::{cpath, split};

use super::writers::{Task, Writers, Written};
use super::{finish_file, read_some, write_all, Applier, Fail, Fatal};

/// Files larger than this are written by the applying thread (their data is
/// not held in memory).
const MAX_QUEUED_FILE: u64 = 1 << 20;
/// Data in flight at most.
const MAX_QUEUED_BYTES: usize = 8 << 20;
/// Files in flight at most. When the writers have this many, the applying
/// thread writes the next file itself instead of waiting: it never sleeps
/// for a writer, and the writers rarely run dry.
const MAX_QUEUED_FILES: usize = 64;
/// Directories held open by files in flight at most: with the worker's own,
/// well below its `RLIMIT_NOFILE` (an archive that puts every file in
/// another directory would otherwise hold a descriptor per queued file).
const MAX_QUEUED_DIRS: usize = 16;
/// Files of a job written by the applying thread before any is queued: a
/// small job is done before a writer would have woken up.
const SERIAL_FIRST: u32 = 16;

/// The writer threads and the files handed to them.
pub(super) struct Queue {
    writers: Writers,
    /// The place of the next queued file.
    next: u64,
    /// Results of places below this one are settled.
    settled: u64,
    /// Paths of the files not yet settled, in order, and whether each holds
    /// a directory the one before it did not.
    paths: VecDeque<(Vec<u8>, bool)>,
    /// The directory of the file queued last.
    last_dir: Option<std::sync::Arc<std::os::fd::OwnedFd>>,
    /// Files in flight that hold a directory the one before did not: at
    /// least as many as the directories they hold open.
    dirs: usize,
    /// The same, counted by path.
    pending: HashMap<Vec<u8>, u32>,
    /// Results received, not yet settled.
    arrived: BTreeMap<u64, Written>,
    /// Results settled, not yet taken for the reports.
    outcomes: HashMap<u64, Settled>,
    /// Files written here so far (the first ones always are).
    serial_files: u32,
    /// Settling (a replacement may wait for the writers: it must not settle
    /// later results before the one it is settling).
    settling: bool,
}

/// What became of a queued file.
pub(crate) enum Settled {
    /// Written, or failed for this entry alone.
    Done(Outcome),
    /// An error that ends the job.
    Fatal(Fatal),
    /// Not written, because an earlier file's error ends the job: never
    /// reported.
    Dropped,
}

/// What became of an entry: its outcome, or its place in the writers' queue
/// (see [`Applier::take`]).
pub(crate) enum Applied {
    Now(Outcome),
    Queued(u64),
}

impl Applier {
    /// Hands files to `writers` from now on.
    pub(crate) fn write_on(&mut self, writers: Writers) {
        self.queue = Some(Box::new(Queue {
            writers,
            next: 0,
            settled: 0,
            paths: VecDeque::new(),
            last_dir: None,
            dirs: 0,
            pending: HashMap::new(),
            arrived: BTreeMap::new(),
            outcomes: HashMap::new(),
            serial_files: 0,
            settling: false,
        }));
    }

    /// Whether the file entry `meta` at `path` goes to a writer.
    pub(super) fn queues(&mut self, path: &[u8], meta: &Meta) -> bool {
        let Some(queue) = self.queue.as_mut() else {
            return false;
        };
        let policy = self.options.xattrs;
        if meta.kind != EntryKind::File
            || meta.sparse.is_some()
            || meta.size > MAX_QUEUED_FILE
            || path.is_empty()
            // Attributes may need a capability (`security.capability`).
            || meta.xattrs.iter().any(|(name, _)| policy.allows(name))
        {
            return false;
        }
        if queue.serial_files < SERIAL_FIRST {
            queue.serial_files += 1;
            return false;
        }
        queue.writers.outstanding() < MAX_QUEUED_FILES
            && queue.dirs < MAX_QUEUED_DIRS
            && queue.writers.outstanding_bytes() + meta.size as usize <= MAX_QUEUED_BYTES
    }

    /// Resolves the file's parent, reads its data and queues it; its place.
    pub(super) fn enqueue(
        &mut self,
        path: &[u8],
        meta: &Meta,
        data: &mut dyn Read,
    ) -> Result<u64, Fail> {
        let dir = self.parent_dir(split(path).0)?;
        let mut bytes = vec![0; meta.size as usize];
        let mut filled = 0;
        while filled < bytes.len() {
            let left = (bytes.len() - filled) as u64;
            filled += read_some(data, &mut bytes[filled..], left, meta.size)?;
        }
        let finish = self.file_meta(meta);
        self.forget_dirs_below(path);
        let Some(queue) = self.queue.as_mut() else {
            return Err(Fail::Entry("no writer threads".into()));
        };
        let seq = queue.next;
        queue.next += 1;
        let new_dir = !queue
            .last_dir
            .as_ref()
            .is_some_and(|last| std::sync::Arc::ptr_eq(last, &dir));
        if new_dir {
            queue.dirs += 1;
            queue.last_dir = Some(dir.clone());
        }
        queue.paths.push_back((path.to_vec(), new_dir));
        *queue.pending.entry(path.to_vec()).or_default() += 1;
        let task = Box::new(Task {
            seq,
            dir,
            path: path.to_vec(),
            data: bytes,
            meta: finish,
        });
        if let Err(task) = queue.writers.send(task) {
            // No writer to take it: written here when settled.
            queue.arrived.insert(seq, Written::Conflict(task));
        }
        Ok(seq)
    }

    /// The outcome of the queued file at `seq`, once settled: waiting for it
    /// when `wait`. `None` if it is not in yet (or, waiting, never comes).
    pub(crate) fn take(&mut self, seq: u64, wait: bool) -> Option<Settled> {
        loop {
            let queue = self.queue.as_mut()?;
            if let Some(outcome) = queue.outcomes.remove(&seq) {
                return Some(outcome);
            }
            let mut got = false;
            while let Some((at, written)) = queue.writers.receive(false) {
                queue.arrived.insert(at, written);
                got = true;
            }
            if !got && wait {
                if let Some((at, written)) = queue.writers.receive(true) {
                    queue.arrived.insert(at, written);
                    got = true;
                }
            }
            let unsettled = queue.arrived.contains_key(&queue.settled);
            if !got && !unsettled {
                return None;
            }
            self.settle();
        }
    }

    /// Waits for every queued file and settles them all (see the module's
    /// rules); while settling, only waits.
    pub(super) fn drain(&mut self) {
        let Some(queue) = self.queue.as_mut() else {
            return;
        };
        while let Some((at, written)) = queue.writers.receive(true) {
            queue.arrived.insert(at, written);
        }
        self.settle();
    }

    /// Whether a queued file met an error that ends the job: the applying
    /// thread applies nothing more (see [`Applier::take`] for the error).
    pub(crate) fn stopped(&self) -> bool {
        self.queue.as_ref().is_some_and(|q| q.writers.stopped())
    }

    /// Settles queued files before `path` is touched, if one is `path`.
    pub(super) fn settle_before(&mut self, path: &[u8]) {
        if self.is_queued(path) {
            self.drain();
        }
    }

    /// Settles queued files before a directory is resolved or made at
    /// `path`, if one is `path` or one of its ancestors.
    pub(super) fn settle_above(&mut self, path: &[u8]) {
        let busy = self.queue.as_ref().is_some_and(|q| !q.pending.is_empty());
        if !busy {
            return;
        }
        let above = (0..path.len())
            .filter(|&i| path[i] == b'/')
            .any(|i| self.is_queued(&path[..i]));
        if above || self.is_queued(path) {
            self.drain();
        }
    }

    fn is_queued(&self, path: &[u8]) -> bool {
        self.queue
            .as_ref()
            .is_some_and(|q| q.pending.contains_key(path))
    }

    /// Settles the results received, in order: a name that existed is
    /// written here now.
    fn settle(&mut self) {
        match self.queue.as_mut() {
            Some(queue) if !queue.settling => queue.settling = true,
            _ => return,
        }
        loop {
            let Some(queue) = self.queue.as_mut() else {
                return;
            };
            let seq = queue.settled;
            let Some(written) = queue.arrived.remove(&seq) else {
                break;
            };
            let outcome = match written {
                Written::Done(outcome) => Settled::Done(outcome),
                Written::Fatal(fatal) => Settled::Fatal(fatal),
                Written::Dropped => Settled::Dropped,
                Written::Conflict(task) => match self.write_here(*task) {
                    Ok(outcome) => Settled::Done(outcome),
                    Err(fatal) => Settled::Fatal(fatal),
                },
            };
            let Some(queue) = self.queue.as_mut() else {
                return;
            };
            queue.settled += 1;
            if let Some((path, new_dir)) = queue.paths.pop_front() {
                queue.dirs -= usize::from(new_dir);
                if queue.paths.is_empty() {
                    // Nothing in flight holds it any more.
                    queue.last_dir = None;
                }
                if let Some(count) = queue.pending.get_mut(&path) {
                    *count -= 1;
                    if *count == 0 {
                        queue.pending.remove(&path);
                    }
                }
            }
            queue.outcomes.insert(seq, outcome);
        }
        if let Some(queue) = self.queue.as_mut() {
            queue.settling = false;
        }
    }

    /// Writes a queued file whose name existed, as the applying thread
    /// writes any file: what is there replaced, kept or refused.
    fn write_here(&mut self, task: Task) -> Result<Outcome, Fatal> {
        let name = split(&task.path).1;
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mode = Mode::from_raw_mode(task.meta.mode);
        let written = self
            .create_in(&task.dir, name, |dir, name| {
                openat(dir, cpath(name), flags, mode)
            })
            .and_then(|file| match write_all(&file, &task.data) {
                Err(Fail::Fatal(fatal)) => {
                    drop(file);
                    let _ = unlinkat(&*task.dir, cpath(name), AtFlags::empty());
                    Err(Fail::Fatal(fatal))
                }
                Err(fail) => Err(fail),
                Ok(()) => finish_file(&file, &task.meta),
            });
        match written {
            Ok(lost) => Ok(lost.map_or(Outcome::Written, Outcome::Failed)),
            Err(fail) => super::settle_fail(Err(fail)),
        }
    }

    /// Forgets the directories kept open at or below `path`, where a file is
    /// about to be queued: a later entry below it must resolve it again
    /// (and wait for the file).
    fn forget_dirs_below(&mut self, path: &[u8]) {
        let below = |cached: &[u8]| {
            cached.starts_with(path) && (cached.len() == path.len() || cached[path.len()] == b'/')
        };
        if self.parent.as_ref().is_some_and(|(p, _)| below(p)) {
            self.parent = None;
        }
        if self.link_parent.as_ref().is_some_and(|(p, _)| below(p)) {
            self.link_parent = None;
        }
    }
}
