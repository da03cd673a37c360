//! Entries -> filesystem: applying entries inside the confined root. Whether
//! an entry is written, skipped or rejected is [`policy`]'s decision (the same
//! for listing); image layers' whiteouts are in [`layer`]; this module writes.
//!
//! After `pivot_root` or `chroot` the process's `/` *is* the destination, so the
//! kernel keeps every path, symlink and `..` inside it; where the worker has no
//! root of its own (the Landlock rung without `CAP_SYS_CHROOT`) names are walked
//! below the destination's descriptor ([`resolve`]), and Landlock is the wall.
//! What remains is a lexical policy that keeps results predictable
//! (see [`normalize`]) and a careful order of system calls: create with
//! `O_CREAT|O_EXCL|O_NOFOLLOW`, never write through an existing symlink (replace
//! it), keep the last parent directory open, defer directory modes and times.

pub(crate) mod layer;
pub(crate) mod policy;
mod queue;
mod resolve;
pub(crate) mod writers;

use std::collections::HashSet;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc as Rc;

use rustix::fs::{
    chownat, fchmod, fchown, fsetxattr, futimens, linkat, makedev, mkdirat, mknodat, openat,
    statat, symlinkat, unlinkat, utimensat, AtFlags, FileType, Mode, OFlags, Timespec, Timestamps,
    XattrFlags, UTIME_OMIT,
};
use rustix::io::Errno;
use rustix::process::{Gid, Uid};

use crate::mode::{Rung, SandboxMode};
use crate::options::{Options, Overwrite, WhiteoutFormat};
use crate::report::{EntryKind, Outcome, RejectReason, SkipReason};
use crate::selection::Selector;

use crate::worker::archive::sparse::{Layout, Sparse};
use crate::worker::archive::Meta;
use crate::worker::names::{cpath, normalize, split};
use layer::Whiteout;
use policy::Decision;
pub(crate) use queue::{Applied, Settled};

/// How a whiteout's directory is opened.
const WHITEOUT_DIR: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::CLOEXEC);
/// Buffer for copying file data.
const COPY_BUFFER: usize = 256 * 1024;

/// A failure that ends the job.
#[derive(Debug)]
pub(crate) enum Fatal {
    /// Writing failed with an error that will not go away (full, read-only, EIO).
    Write(String),
    /// The archive ended inside an entry or its data could not be read.
    Read(String),
    /// The entry's owner is outside the id map.
    Unmapped(String),
}

/// Errors while applying one entry.
enum Fail {
    /// This entry fails; extraction goes on.
    Entry(String),
    /// Its name exists and [`Overwrite::Keep`] keeps what is there.
    Kept,
    /// The job stops.
    Fatal(Fatal),
}

fn os(call: &str, e: Errno) -> Fail {
    let msg = format!("{call}: {}", std::io::Error::from(e));
    match e {
        Errno::NOSPC | Errno::DQUOT | Errno::ROFS | Errno::IO => Fail::Fatal(Fatal::Write(msg)),
        _ => Fail::Entry(msg),
    }
}

/// What a regular file is given after its data.
pub(crate) struct FileMeta {
    /// Its mode, after [`Options::mode`].
    mode: u32,
    /// The (mapped) owner, when owners are kept.
    owner: Option<(u64, u64)>,
    /// The extended attributes the options allow.
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    mtime: Option<Timespec>,
}

/// Gives a file whose data is written its owner, set-id bits, extended
/// attributes and time, through its descriptor. Says which attribute the
/// filesystem could not hold, if one: the file stays, complete.
fn finish_file(file: &OwnedFd, meta: &FileMeta) -> Result<Option<String>, Fail> {
    if let Some((u, g)) = meta.owner {
        fchown(file, Some(uid(u)), Some(gid(g))).map_err(|e| os("fchown", e))?;
    }
    // Writing data and chown both clear setuid/setgid: put them back.
    if meta.mode & 0o7000 != 0 {
        fchmod(file, Mode::from_raw_mode(meta.mode)).map_err(|e| os("fchmod", e))?;
    }
    let lost = set_xattrs(file, &meta.xattrs).map_err(|e| os("fsetxattr", e))?;
    if let Some(mtime) = meta.mtime {
        futimens(file, &times(mtime)).map_err(|e| os("futimens", e))?;
    }
    Ok(lost)
}

struct DirFixup {
    /// The name as the archive gave it (the report's path).
    raw: Vec<u8>,
    path: Vec<u8>,
    /// The extended attributes the options allow.
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    mode: u32,
    mtime: Option<Timespec>,
    owner: Option<(u64, u64)>,
}

/// How paths below the root are opened.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resolution {
    /// With `openat`: the root is the process's root (`pivot_root` or
    /// `chroot`), so the kernel keeps every symlink and `..` inside it.
    ProcessRoot,
    /// Walked in user space ([`resolve::open_in_root`]): the root is any
    /// directory (the Landlock rung without `chroot`, the fuzzing harness).
    /// `openat2(RESOLVE_IN_ROOT)` would do it in one call, but the worker's
    /// seccomp filter refuses `openat2`: its mode is behind a pointer no
    /// filter can check.
    Walked,
}

/// Applies entries to the tree rooted at `/`.
pub(crate) struct Applier {
    options: Options,
    /// Devices and `trusted.*` need real privilege (not a user namespace).
    privileged: bool,
    /// Owners other than the worker's own can be given (root, or a user
    /// namespace with subordinate ids).
    can_chown: bool,
    /// In a user namespace with subordinate ids: how many uids and gids it maps.
    namespace_ids: Option<(u32, u32)>,
    /// Owners and times only through descriptors opened for I/O (the Landlock
    /// rung's seccomp filter has no `fchownat` and no `utimensat` with a path):
    /// a symlink's are not kept, a FIFO's through a non-blocking read.
    by_descriptor: bool,
    root: Rc<OwnedFd>,
    resolution: Resolution,
    /// Which entries are written, and under which name (`Options::select`).
    selector: Selector,
    /// The parent directory of the previous entry, still open.
    parent: Option<(Vec<u8>, Rc<OwnedFd>)>,
    /// The directory of the previous hard link's target, still open: resolving
    /// a name through a chain of long symlinks costs up to ~1 ms, so an archive
    /// of hard links into one such place pays it once.
    link_parent: Option<(Vec<u8>, Rc<OwnedFd>)>,
    fixups: Vec<DirFixup>,
    /// Layer mode: every path this layer wrote, and their parents.
    layer_paths: layer::LayerPaths,
    /// Layer mode: the directories made opaque already. Another marker for one
    /// of them finds nothing to remove (what is there, this layer wrote), so
    /// it is not listed again.
    opaque_done: HashSet<Vec<u8>>,
    /// With an [`Overwrite`] that keeps what exists: the directories this job
    /// made (implied parents too), which are not "what exists" when the
    /// archive lists them later.
    made_dirs: HashSet<Vec<u8>>,
    /// The (mapped) owner to give the current entry, when owners are kept.
    owner: Option<(u64, u64)>,
    buffer: Vec<u8>,
    /// The writer threads, when files are written on them ([`queue`]).
    queue: Option<Box<queue::Queue>>,
}

impl Applier {
    /// An applier for the tree at `root` (the worker's `/`); `Err` if the
    /// options' selection cannot be used (the caller checks it first).
    pub(crate) fn new(
        options: Options,
        mode: SandboxMode,
        root: OwnedFd,
        resolution: Resolution,
    ) -> Result<Self, &'static str> {
        let selector = Selector::new(&options.select)?;
        let root = Rc::new(root);
        let namespace_ids = match mode {
            SandboxMode::SubordinateIds { uids, gids, .. } => Some((uids, gids)),
            _ => None,
        };
        Ok(Applier {
            options,
            privileged: mode.is_privileged(),
            can_chown: mode.can_keep_owners(),
            namespace_ids,
            by_descriptor: mode.rung() == Rung::Landlock,
            root,
            resolution,
            parent: None,
            link_parent: None,
            fixups: Vec::new(),
            layer_paths: layer::LayerPaths::default(),
            opaque_done: HashSet::new(),
            made_dirs: HashSet::new(),
            owner: None,
            buffer: vec![0; COPY_BUFFER],
            selector,
            queue: None,
        })
    }

    /// What `raw`'s last component means in a layer ([`Whiteout::None`]
    /// outside layer mode). Asked once per entry; [`Applier::apply`] takes it.
    pub(crate) fn classify<'n>(&self, raw: &'n [u8]) -> Whiteout<'n> {
        match self.layer_mode() {
            true => layer::classify_entry(raw),
            false => Whiteout::None,
        }
    }

    /// Applies one entry whose raw name is `raw`, whose name means `whiteout`
    /// in a layer (from [`Applier::classify`]), and whose data can be read
    /// from `data`. Returns its outcome (or its place in the writers' queue,
    /// see [`Applier::take`]), or a fatal error that ends the job.
    pub(crate) fn apply(
        &mut self,
        raw: &[u8],
        meta: &Meta,
        whiteout: Whiteout<'_>,
        data: &mut dyn Read,
    ) -> Result<Applied, Fatal> {
        self.apply_entry(raw, meta, whiteout, data)
            .map(|applied| match applied {
                Ok(seq) => Applied::Queued(seq),
                Err(outcome) => Applied::Now(outcome),
            })
    }

    /// [`Applier::apply`]: `Ok(place)` for a queued file, `Err(outcome)`
    /// for an entry applied here.
    fn apply_entry(
        &mut self,
        raw: &[u8],
        meta: &Meta,
        whiteout: Whiteout<'_>,
        data: &mut dyn Read,
    ) -> Result<Result<u64, Outcome>, Fatal> {
        let now = |outcome| Ok(Err(outcome));
        let path = match normalize(raw) {
            Ok(p) => p,
            Err(reason) => return now(Outcome::Rejected(reason)),
        };
        // What is selected is a suffix of the name (leading components stripped).
        let kept = match self.selector.select(&path, meta.kind) {
            Ok(selected) => selected.len(),
            Err(reason) => return now(Outcome::Skipped(reason)),
        };
        let path = match kept == path.len() {
            true => path,
            false => path[path.len() - kept..].to_vec(),
        };
        self.owner = match self.keep_owner() {
            true => Some(self.map_owner(meta)?),
            false => None,
        };
        if self.layer_mode() && meta.kind != EntryKind::Whiteout {
            self.remember_layer_path(&path);
        }
        let decision = policy::decide(&path, meta, whiteout, &self.options, self.privileged);
        let result = match decision {
            Decision::Skip(reason) => return now(Outcome::Skipped(reason)),
            Decision::Reject(reason) => return now(Outcome::Rejected(reason)),
            _ if self.options.list_only => return now(Outcome::Listed),
            Decision::Write if self.queues(&path, meta) => {
                return match self.enqueue(&path, meta, data) {
                    Ok(seq) => Ok(Ok(seq)),
                    Err(fail) => settle_fail(Err(fail)).map(Err),
                }
            }
            Decision::HardLink(target) => match self.selector.strip(&target) {
                Some(target) => {
                    self.settle_before(&path);
                    self.settle_before(target);
                    self.hard_link(&path, target)
                }
                None => return now(Outcome::Rejected(RejectReason::BadLinkTarget)),
            },
            Decision::Whiteout(whiteout) => {
                self.drain();
                self.whiteout(&path, whiteout)
            }
            Decision::Write => {
                self.settle_before(&path);
                self.write(raw, &path, meta, data)
            }
        };
        settle_fail(result).map(Err)
    }

    /// Remembers a directory this job made, where what exists is kept.
    fn note_made(&mut self, path: &[u8]) {
        if self.options.overwrite != Overwrite::Replace {
            self.made_dirs.insert(path.to_vec());
        }
    }

    /// What [`Options::overwrite`] says of an entry whose name exists (not a
    /// directory taking an existing directory's contents): `Ok` to replace it.
    fn may_replace(&self) -> Result<(), Fail> {
        match self.options.overwrite {
            Overwrite::Replace => Ok(()),
            Overwrite::Keep => Err(Fail::Kept),
            Overwrite::Refuse => Err(Fail::Entry(
                "exists in the destination (refused by Options::overwrite)".into(),
            )),
        }
    }

    /// Layer mode: everything this layer writes survives an opaque directory.
    fn remember_layer_path(&mut self, path: &[u8]) {
        self.layer_paths.insert(path);
    }

    /// Writes an entry the policy let through.
    fn write(
        &mut self,
        raw: &[u8],
        path: &[u8],
        meta: &Meta,
        data: &mut dyn Read,
    ) -> Result<Outcome, Fail> {
        if path.is_empty() {
            // "./": the destination itself takes the entry's mode and time at
            // the end, unless what exists is to be kept.
            if self.options.overwrite != Overwrite::Replace {
                return Err(Fail::Kept);
            }
            self.push_fixup(raw, Vec::new(), meta);
            return Ok(Outcome::Written);
        }
        match meta.kind {
            EntryKind::File => self.file(path, meta, data),
            EntryKind::Directory => self.directory(raw, path, meta),
            EntryKind::Symlink => self.symlink(path, meta),
            EntryKind::Fifo | EntryKind::CharDevice | EntryKind::BlockDevice => {
                self.node(path, meta)
            }
            // The policy decided on these.
            EntryKind::HardLink | EntryKind::Whiteout | EntryKind::Other(_) => {
                Err(Fail::Entry("not a kind to write".into()))
            }
        }
    }

    fn file(&mut self, path: &[u8], meta: &Meta, data: &mut dyn Read) -> Result<Outcome, Fail> {
        let finish = self.file_meta(meta);
        let (parent, name) = split(path);
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mode = Mode::from_raw_mode(finish.mode);
        let file = self.create(parent, name, |dir, name| {
            openat(dir, cpath(name), flags, mode)
        })?;
        let copied = match &meta.sparse {
            None => self.copy(&file, data, meta.size, None),
            Some(sparse) => self.sparse(&file, data, sparse),
        };
        if let Err(Fail::Fatal(fatal)) = copied {
            // The archive ended (or the disk filled) inside this file: the job
            // stops here, and no truncated file is left looking complete.
            drop(file);
            if let Ok(dir) = self.parent_dir(parent) {
                let _ = unlinkat(&*dir, cpath(name), AtFlags::empty());
            }
            return Err(Fail::Fatal(fatal));
        }
        copied?;
        let lost = finish_file(&file, &finish)?;
        Ok(lost.map_or(Outcome::Written, Outcome::Failed))
    }

    /// What a file of `meta` is given after its data.
    fn file_meta(&self, meta: &Meta) -> FileMeta {
        let policy = self.options.xattrs;
        FileMeta {
            mode: self.options.mode.apply(meta.mode),
            owner: self.owner,
            xattrs: meta
                .xattrs
                .iter()
                .filter(|(name, _)| policy.allows(name))
                .cloned()
                .collect(),
            mtime: self.mtime(meta),
        }
    }

    /// Copies `len` bytes of `data` into `file`: at its current position, or at
    /// `at` with `pwrite`. Returns nothing; counts the bytes written.
    fn copy(
        &mut self,
        file: &OwnedFd,
        data: &mut dyn Read,
        len: u64,
        mut at: Option<u64>,
    ) -> Result<(), Fail> {
        let mut remaining = len;
        while remaining > 0 {
            let want = remaining.min(self.buffer.len() as u64) as usize;
            let n = read_some(data, &mut self.buffer[..want], remaining, len)?;
            match at.as_mut() {
                None => write_all(file, &self.buffer[..n])?,
                Some(pos) => {
                    pwrite_all(file, &self.buffer[..n], *pos)?;
                    *pos += n as u64;
                }
            }
            remaining -= n as u64;
        }
        Ok(())
    }

    /// Writes a sparse file: only its data chunks, then its full size (the rest
    /// stays holes).
    fn sparse(&mut self, file: &OwnedFd, data: &mut dyn Read, sparse: &Sparse) -> Result<(), Fail> {
        let bad = |e: std::io::Error| Fail::Fatal(Fatal::Read(e.to_string()));
        match &sparse.layout {
            Layout::Map(map) => {
                for &(offset, length) in map {
                    self.copy(file, data, length, Some(offset))?;
                }
            }
            // The parser reads a PAX 1.0 map before the entry comes here.
            Layout::MapInData => {
                return Err(bad(std::io::Error::other("a sparse map left unread")));
            }
        }
        rustix::fs::ftruncate(file, sparse.real_size).map_err(|e| os("ftruncate", e))
    }

    fn directory(&mut self, raw: &[u8], path: &[u8], meta: &Meta) -> Result<Outcome, Fail> {
        let (parent, name) = split(path);
        let dir = self.parent_dir(parent)?;
        // Created owner-only and writable; the real mode comes at the end so that a
        // read-only directory does not block its own contents.
        match mkdirat(&dir, cpath(name), Mode::from_raw_mode(0o700)) {
            Ok(()) => self.note_made(path),
            Err(Errno::EXIST) => {
                let existing = statat(&dir, cpath(name), AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| os("fstatat", e))?;
                let is_dir = FileType::from_raw_mode(existing.st_mode) == FileType::Directory;
                if is_dir
                    && self.options.overwrite != Overwrite::Replace
                    && !self.made_dirs.contains(path)
                {
                    // Its contents come; its own metadata stays.
                    return Err(Fail::Kept);
                }
                if !is_dir {
                    self.may_replace()?;
                    self.remove(&dir, name)?;
                    mkdirat(&dir, cpath(name), Mode::from_raw_mode(0o700))
                        .map_err(|e| os("mkdirat", e))?;
                }
            }
            Err(e) => return Err(os("mkdirat", e)),
        }
        drop(dir);
        self.push_fixup(raw, path.to_vec(), meta);
        Ok(Outcome::Written)
    }

    fn symlink(&mut self, path: &[u8], meta: &Meta) -> Result<Outcome, Fail> {
        let target = meta.link.as_deref().unwrap_or_default();
        let (parent, name) = split(path);
        self.create(parent, name, |dir, name| {
            symlinkat(cpath(target), dir, cpath(name))
        })?;
        self.set_owner_and_time(parent, name, FileType::Symlink, meta)?;
        Ok(Outcome::Written)
    }

    /// A hard link to `target` (normalised, not empty).
    fn hard_link(&mut self, path: &[u8], target: &[u8]) -> Result<Outcome, Fail> {
        if target == path {
            return Err(Fail::Entry("hard link to itself".into()));
        }
        let (parent, name) = split(path);
        let (target_parent, target_name) = split(target);
        let target_dir = self.link_target_dir(target_parent)?;
        self.create(parent, name, |dir, name| {
            linkat(
                &*target_dir,
                cpath(target_name),
                dir,
                cpath(name),
                AtFlags::empty(),
            )
        })?;
        Ok(Outcome::Written)
    }

    /// The directory `path` of a hard link's target, reusing the previous
    /// one's when it is the same.
    fn link_target_dir(&mut self, path: &[u8]) -> Result<Rc<OwnedFd>, Fail> {
        if path.is_empty() {
            return Ok(self.root.clone());
        }
        if let Some((cached, fd)) = &self.link_parent {
            if cached == path {
                return Ok(fd.clone());
            }
        }
        self.settle_above(path);
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let fd = Rc::new(
            self.resolve(path, flags)
                .map_err(|e| os("hard link target", e))?,
        );
        self.link_parent = Some((path.to_vec(), fd.clone()));
        Ok(fd)
    }

    /// Forgets the directories kept open: what was removed may be one of them.
    fn forget_dirs(&mut self) {
        self.parent = None;
        self.link_parent = None;
    }

    /// A fifo or a device node (the policy allowed it).
    fn node(&mut self, path: &[u8], meta: &Meta) -> Result<Outcome, Fail> {
        let file_type = match meta.kind {
            EntryKind::Fifo => FileType::Fifo,
            EntryKind::CharDevice => FileType::CharacterDevice,
            _ => FileType::BlockDevice,
        };
        let mode = Mode::from_raw_mode(self.options.mode.apply(meta.mode));
        let dev = makedev(meta.device.0, meta.device.1);
        let (parent, name) = split(path);
        self.create(parent, name, |dir, name| {
            mknodat(dir, cpath(name), file_type, mode, dev)
        })?;
        self.set_owner_and_time(parent, name, file_type, meta)?;
        Ok(Outcome::Written)
    }

    /// Gives the `kind` just created at `name` in `parent` its owner and time,
    /// when they are kept, through a descriptor of that very inode (never by
    /// name: a racing process may have put another file there).
    fn set_owner_and_time(
        &mut self,
        parent: &[u8],
        name: &[u8],
        kind: FileType,
        meta: &Meta,
    ) -> Result<(), Fail> {
        let mtime = self.mtime(meta);
        if self.owner.is_none() && mtime.is_none() {
            return Ok(());
        }
        let dir = self.parent_dir(parent)?;
        if self.by_descriptor {
            return self.set_owner_and_time_by_descriptor(&dir, name, kind, mtime);
        }
        let entry = open_created(&dir, name, kind, OFlags::PATH)?;
        if let Some((u, g)) = self.owner {
            chownat(&entry, "", Some(uid(u)), Some(gid(g)), AtFlags::EMPTY_PATH)
                .map_err(|e| os("fchownat", e))?;
        }
        if let Some(mtime) = mtime {
            utimensat(&entry, "", &times(mtime), AtFlags::EMPTY_PATH)
                .map_err(|e| os("utimensat", e))?;
        }
        Ok(())
    }

    /// [`Self::set_owner_and_time`] where only a descriptor open for I/O may
    /// be changed: a FIFO opened for a non-blocking read (which waits for no
    /// writer); a symlink cannot be opened so and keeps the worker's owner and
    /// the time it was made.
    fn set_owner_and_time_by_descriptor(
        &self,
        dir: &OwnedFd,
        name: &[u8],
        kind: FileType,
        mtime: Option<Timespec>,
    ) -> Result<(), Fail> {
        if kind != FileType::Fifo {
            return Ok(());
        }
        let entry = open_created(dir, name, kind, OFlags::RDONLY | OFlags::NONBLOCK)?;
        if let Some((u, g)) = self.owner {
            fchown(&entry, Some(uid(u)), Some(gid(g))).map_err(|e| os("fchown", e))?;
        }
        if let Some(mtime) = mtime {
            futimens(&entry, &times(mtime)).map_err(|e| os("futimens", e))?;
        }
        Ok(())
    }

    /// Runs `make` in the parent directory; if the name exists, removes what is
    /// there (a file, a symlink, an empty directory: never following it) and
    /// tries once more.
    fn create<T>(
        &mut self,
        parent: &[u8],
        name: &[u8],
        make: impl FnMut(BorrowedFd<'_>, &[u8]) -> Result<T, Errno>,
    ) -> Result<T, Fail> {
        let dir = self.parent_dir(parent)?;
        self.create_in(&dir, name, make)
    }

    /// [`Applier::create`] in the directory `dir`.
    fn create_in<T>(
        &mut self,
        dir: &OwnedFd,
        name: &[u8],
        mut make: impl FnMut(BorrowedFd<'_>, &[u8]) -> Result<T, Errno>,
    ) -> Result<T, Fail> {
        match make(dir.as_fd(), name) {
            Ok(t) => Ok(t),
            Err(Errno::EXIST) => {
                self.may_replace()?;
                self.remove(dir, name)?;
                make(dir.as_fd(), name).map_err(|e| os("create", e))
            }
            Err(e) => Err(os("create", e)),
        }
    }

    /// Applies a whiteout (layer mode): removes what it names, or makes its
    /// directory opaque; in the overlay format, marks them for overlayfs instead.
    fn whiteout(&mut self, path: &[u8], whiteout: Whiteout<'_>) -> Result<Outcome, Fail> {
        let Some(format) = self.options.whiteouts else {
            return Err(Fail::Entry("whiteout outside layer mode".into()));
        };
        let parent = split(path).0;
        // Removing may take the cached parent directory away.
        self.forget_dirs();
        match (whiteout, format) {
            (Whiteout::Opaque, WhiteoutFormat::Oci) => {
                if !self.opaque_done.insert(parent.to_vec()) {
                    return Ok(Outcome::Written);
                }
                if let Some(dir) = self.whiteout_dir(parent)? {
                    layer::make_opaque(dir.as_fd(), parent, &self.layer_paths)
                        .map_err(|e| os("making a directory opaque", e))?;
                }
            }
            (Whiteout::Opaque, WhiteoutFormat::Overlay) => self.overlay_opaque(parent)?,
            (Whiteout::Remove(target), WhiteoutFormat::Oci) => {
                if let Some(dir) = self.whiteout_dir(parent)? {
                    layer::remove_all(dir.as_fd(), target)
                        .map_err(|e| os("removing a whited-out path", e))?;
                }
            }
            (Whiteout::Remove(target), WhiteoutFormat::Overlay) => {
                self.overlay_remove(parent, target)?
            }
            _ => return Err(Fail::Entry("not a whiteout".into())),
        }
        Ok(Outcome::Written)
    }

    /// Opens a whiteout's directory `parent` to read it; `None` if it does
    /// not exist (there is nothing below to hide).
    fn whiteout_dir(&self, parent: &[u8]) -> Result<Option<OwnedFd>, Fail> {
        let target = if parent.is_empty() { &b"."[..] } else { parent };
        match self.resolve(target, WHITEOUT_DIR) {
            Ok(fd) => Ok(Some(fd)),
            Err(Errno::NOENT) | Err(Errno::NOTDIR) => Ok(None),
            Err(e) => Err(os("open whiteout directory", e)),
        }
    }

    /// Overlay format: makes the directory `parent` if missing, and marks it
    /// opaque in a user namespace (`user.overlay.opaque`, for overlayfs'
    /// `userxattr`). As real root the mark is `trusted.overlay.opaque`, which
    /// needs `CAP_SYS_ADMIN`: no worker holds it, so the caller sets that one
    /// after the job, from this entry's report.
    fn overlay_opaque(&mut self, parent: &[u8]) -> Result<(), Fail> {
        let dir = match self.whiteout_dir(parent)? {
            Some(dir) => dir,
            None => {
                drop(self.parent_dir(parent)?);
                self.resolve(parent, WHITEOUT_DIR)
                    .map_err(|e| os("open whiteout directory", e))?
            }
        };
        if self.privileged {
            return Ok(());
        }
        fsetxattr(&dir, "user.overlay.opaque", b"y", XattrFlags::empty())
            .map_err(|e| os("fsetxattr", e))
    }

    /// Overlay format: replaces `target` in `parent` with a 0:0 character device.
    fn overlay_remove(&mut self, parent: &[u8], target: &[u8]) -> Result<(), Fail> {
        let dir = self.parent_dir(parent)?;
        layer::remove_all(dir.as_fd(), target).map_err(|e| os("removing a whited-out path", e))?;
        mknodat(
            &*dir,
            cpath(target),
            FileType::CharacterDevice,
            Mode::empty(),
            makedev(0, 0),
        )
        .map_err(|e| os("mknod (overlay whiteout)", e))
    }

    /// Removes `name` (not following symlinks); directories only when empty,
    /// except in layer mode, where whatever is in the way goes.
    fn remove(&mut self, dir: &OwnedFd, name: &[u8]) -> Result<(), Fail> {
        // A directory is removed only if empty: as it would be with every
        // file before this entry written.
        self.drain();
        // Whatever we remove may be the cached parent of later entries.
        self.forget_dirs();
        if self.options.whiteouts.is_some() {
            return layer::remove_all(dir.as_fd(), name).map_err(|e| os("remove", e));
        }
        match unlinkat(dir, cpath(name), AtFlags::empty()) {
            Ok(()) => Ok(()),
            Err(Errno::ISDIR) | Err(Errno::PERM) => {
                match unlinkat(dir, cpath(name), AtFlags::REMOVEDIR) {
                    Ok(()) => Ok(()),
                    Err(Errno::NOTEMPTY) | Err(Errno::EXIST) => {
                        Err(Fail::Entry("a non-empty directory is in the way".into()))
                    }
                    Err(e) => Err(os("rmdir", e)),
                }
            }
            Err(e) => Err(os("unlink", e)),
        }
    }

    /// Opens (or creates) the parent directory `parent`, reusing the previous
    /// entry's when it is the same.
    fn parent_dir(&mut self, parent: &[u8]) -> Result<Rc<OwnedFd>, Fail> {
        if parent.is_empty() {
            return Ok(self.root.clone());
        }
        if let Some((cached, fd)) = &self.parent {
            if cached == parent {
                return Ok(fd.clone());
            }
        }
        self.settle_above(parent);
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let fd = match self.resolve(parent, flags) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => self.make_parents(parent)?,
            Err(e) => return Err(os("open parent directory", e)),
        };
        let fd = Rc::new(fd);
        self.parent = Some((parent.to_vec(), fd.clone()));
        Ok(fd)
    }

    /// Creates the missing directories of `parent`, one component at a time.
    fn make_parents(&mut self, parent: &[u8]) -> Result<OwnedFd, Fail> {
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let mut dir = self
            .root
            .try_clone()
            .map_err(|e| Fail::Entry(e.to_string()))?;
        let owner = self.implied_owner();
        let mut end = 0;
        for component in parent.split(|b| *b == b'/') {
            end += component.len();
            let made = match mkdirat(&dir, cpath(component), Mode::from_raw_mode(0o755)) {
                Ok(()) => true,
                Err(Errno::EXIST) => false,
                Err(e) => return Err(os("mkdirat (parent)", e)),
            };
            // A directory just made is opened where it was made; one that was
            // there may be a symlink: resolved from the root, so that it leads
            // inside it.
            dir = match made {
                true => {
                    let open =
                        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                    openat(&dir, cpath(component), open, Mode::empty())
                }
                false => self.resolve(&parent[..end], flags),
            }
            .map_err(|e| os("open parent directory", e))?;
            if made {
                self.settle_implied(&dir, owner)?;
                self.note_made(&parent[..end]);
            }
            end += 1;
        }
        Ok(dir)
    }

    /// Gives a parent directory the archive did not list (just made, open as
    /// `dir`) its owner and exactly mode 0755, through the descriptor, never
    /// by name: whatever a racing process put at the name, this is a directory
    /// inside the destination. In a set-group-id destination the kernel makes
    /// new directories set-group-id too; implied parents lose the bit, like
    /// the directories the archive lists.
    fn settle_implied(&self, dir: &OwnedFd, owner: Option<(u32, u32)>) -> Result<(), Fail> {
        if let Some((u, g)) = owner {
            let (u, g) = (Some(uid(u.into())), Some(gid(g.into())));
            fchown(dir, u, g).map_err(|e| os("chown (parent)", e))?;
        }
        let mode = rustix::fs::fstat(dir)
            .map_err(|e| os("fstat (parent)", e))?
            .st_mode;
        if mode & 0o7000 != 0 {
            fchmod(dir, Mode::from_raw_mode(0o755)).map_err(|e| os("chmod (parent)", e))?;
        }
        Ok(())
    }

    /// Opens `path` below the root; every symlink and `..` on the way resolves as
    /// if the root were `/` (see [`Resolution`]).
    fn resolve(&self, path: &[u8], flags: OFlags) -> Result<OwnedFd, Errno> {
        match self.resolution {
            Resolution::ProcessRoot => openat(&*self.root, cpath(path), flags, Mode::empty()),
            Resolution::Walked => resolve::open_in_root(&self.root, path, flags),
        }
    }

    fn push_fixup(&mut self, raw: &[u8], path: Vec<u8>, meta: &Meta) {
        let policy = self.options.xattrs;
        let xattrs = meta
            .xattrs
            .iter()
            .filter(|(name, _)| policy.allows(name))
            .cloned()
            .collect();
        self.fixups.push(DirFixup {
            raw: raw.to_vec(),
            path,
            xattrs,
            mode: self.options.mode.apply(meta.mode),
            mtime: self.mtime(meta),
            owner: self.owner,
        });
    }

    /// Applies directory modes, owners, extended attributes and times, deepest
    /// first. Returns the failures as (raw name, message).
    pub(crate) fn finish(&mut self) -> Vec<(Vec<u8>, String)> {
        self.drain();
        let mut failures = Vec::new();
        let mut fixups = std::mem::take(&mut self.fixups);
        fixups.sort_by_key(|f| {
            std::cmp::Reverse(
                f.path.iter().filter(|b| **b == b'/').count() + usize::from(!f.path.is_empty()),
            )
        });
        self.forget_dirs();
        for fixup in fixups {
            let target = if fixup.path.is_empty() {
                &b"."[..]
            } else {
                &fixup.path[..]
            };
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let result = self.resolve(target, flags).and_then(|dir| {
                if let Some((u, g)) = fixup.owner {
                    fchown(&dir, Some(uid(u)), Some(gid(g)))?;
                }
                // An attribute the filesystem cannot hold is reported, and the
                // mode and time are still set.
                let lost = set_xattrs(&dir, &fixup.xattrs)?;
                fchmod(&dir, Mode::from_raw_mode(fixup.mode))?;
                if let Some(mtime) = fixup.mtime {
                    futimens(&dir, &times(mtime))?;
                }
                Ok(lost)
            });
            match result {
                Ok(Some(lost)) => failures.push((fixup.raw, lost)),
                // Replaced by a later entry (a file or symlink): nothing to fix.
                Ok(None) | Err(Errno::NOTDIR) | Err(Errno::LOOP) | Err(Errno::NOENT) => {}
                Err(e) => failures.push((
                    fixup.raw,
                    format!("setting directory metadata: {}", std::io::Error::from(e)),
                )),
            }
        }
        failures
    }

    /// Layer mode: whiteouts are applied, not written.
    pub(crate) fn layer_mode(&self) -> bool {
        self.options.whiteouts.is_some()
    }

    fn keep_owner(&self) -> bool {
        self.options.preserve_owners && self.can_chown
    }

    /// The owner of directories the archive leaves implicit: with an id map,
    /// the host ids of the container's root, as Docker does (otherwise the
    /// worker's own, root, is right already; also when the container's root
    /// has no valid host id).
    fn implied_owner(&self) -> Option<(u32, u32)> {
        let map = &self.options.id_map;
        if !self.keep_owner() || (map.uids.is_empty() && map.gids.is_empty()) {
            return None;
        }
        // Valid ids are below u32::MAX, so they fit.
        let (u, g) = self.map_ids(0, 0).ok()?;
        Some((u as u32, g as u32))
    }

    /// The host owner of an entry, through the id map.
    fn map_owner(&self, meta: &Meta) -> Result<(u64, u64), Fatal> {
        self.map_ids(meta.uid, meta.gid)
    }

    /// Archive ids to host ids: through the id map, then checked to be valid
    /// Linux ids that this worker's user namespace (if any) maps.
    fn map_ids(&self, uid: u64, gid: u64) -> Result<(u64, u64), Fatal> {
        let map = &self.options.id_map;
        let unmapped =
            |kind: &str, id: u64| Fatal::Unmapped(format!("{kind} {id} is outside the id map"));
        let u = map.map_uid(uid).ok_or_else(|| unmapped("uid", uid))?;
        let g = map.map_gid(gid).ok_or_else(|| unmapped("gid", gid))?;
        // Linux ids are 32 bits and -1 means "leave unchanged": never truncate.
        for (kind, id) in [("uid", u), ("gid", g)] {
            if id >= u64::from(u32::MAX) {
                return Err(Fatal::Unmapped(format!(
                    "{kind} {id} is not a valid Linux id"
                )));
            }
        }
        if let Some((uids, gids)) = self.namespace_ids {
            // chown would fail with EINVAL: say why instead.
            let outside = |kind: &str, id: u64, count: u32| {
                Fatal::Unmapped(format!(
                    "{kind} {id} is not mapped in the user namespace (its {kind}s are 0 to {})",
                    count - 1
                ))
            };
            if u >= u64::from(uids) {
                return Err(outside("uid", u, uids));
            }
            if g >= u64::from(gids) {
                return Err(outside("gid", g, gids));
            }
        }
        Ok((u, g))
    }

    fn mtime(&self, meta: &Meta) -> Option<Timespec> {
        if self.options.preserve_mtime {
            meta.mtime
        } else {
            None
        }
    }
}

/// An entry's failure as its outcome, or the error that ends the job.
fn settle_fail(result: Result<Outcome, Fail>) -> Result<Outcome, Fatal> {
    match result {
        Ok(outcome) => Ok(outcome),
        Err(Fail::Entry(message)) => Ok(Outcome::Failed(message)),
        Err(Fail::Kept) => Ok(Outcome::Skipped(SkipReason::Exists)),
        Err(Fail::Fatal(f)) => Err(f),
    }
}

/// Sets extended attributes on `fd`. A filesystem without them (or a namespace
/// this worker may not write) loses them, as with GNU tar. One the filesystem
/// cannot hold (a value too large for it: `ENOSPC` on ext4 when it does not fit
/// in a block, `E2BIG` past 64 KiB; a name too long: `ERANGE`) is skipped, the
/// others set, and the first such is described.
fn set_xattrs<'a>(
    fd: &OwnedFd,
    xattrs: impl IntoIterator<Item = &'a (Vec<u8>, Vec<u8>)>,
) -> Result<Option<String>, Errno> {
    let mut lost = None;
    for (name, value) in xattrs {
        match fsetxattr(fd, cpath(name), value, XattrFlags::empty()) {
            Ok(()) | Err(Errno::NOTSUP) | Err(Errno::PERM) => {}
            Err(e @ (Errno::NOSPC | Errno::TOOBIG | Errno::RANGE)) => {
                lost.get_or_insert_with(|| xattr_lost(name, value.len(), e));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(lost)
}

/// Why an extended attribute is missing, in words a user can act on.
fn xattr_lost(name: &[u8], len: usize, e: Errno) -> String {
    let mut shown = String::from_utf8_lossy(name).into_owned();
    if shown.len() > 64 {
        let mut end = 64;
        while !shown.is_char_boundary(end) {
            end -= 1;
        }
        shown.truncate(end);
        shown.push('…');
    }
    let why = match e {
        Errno::RANGE => "its name is too long for this filesystem",
        _ => "its value is too large for this filesystem",
    };
    format!(
        "written without the extended attribute {shown} ({len} bytes): {why} ({})",
        std::io::Error::from(e)
    )
}

/// Reads at least one byte of an entry's data; the archive ending first is fatal.
fn read_some(
    data: &mut dyn Read,
    buf: &mut [u8],
    remaining: u64,
    total: u64,
) -> Result<usize, Fail> {
    loop {
        return match data.read(buf) {
            Ok(0) => Err(Fail::Fatal(Fatal::Read(format!(
                "the archive ends inside this file ({remaining} of {total} bytes missing)"
            )))),
            Ok(n) => Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => Err(Fail::Fatal(Fatal::Read(e.to_string()))),
        };
    }
}

fn pwrite_all(file: &OwnedFd, mut bytes: &[u8], mut at: u64) -> Result<(), Fail> {
    while !bytes.is_empty() {
        match rustix::io::pwrite(file, bytes, at) {
            Ok(0) => return Err(os("pwrite", Errno::NOSPC)),
            Ok(n) => {
                bytes = &bytes[n..];
                at += n as u64;
            }
            Err(Errno::INTR) => {}
            Err(e) => return Err(os("pwrite", e)),
        }
    }
    Ok(())
}

fn write_all(file: &OwnedFd, mut bytes: &[u8]) -> Result<(), Fail> {
    while !bytes.is_empty() {
        match rustix::io::write(file, bytes) {
            Ok(0) => return Err(os("write", Errno::NOSPC)),
            Ok(n) => bytes = &bytes[n..],
            Err(Errno::INTR) => {}
            Err(e) => return Err(os("write", e)),
        }
    }
    Ok(())
}

/// Opens (with `how`: `O_PATH`, or a read for a FIFO; not following) what was
/// just created at `name` in `dir` as `kind`, and checks that it still is: of
/// that kind, with one link. A
/// racing process may have renamed something else over the name, such as a
/// hard link to a file outside the destination (a mount boundary does not
/// stop a link made from outside); that inode has more than one link, or is
/// of another kind, and is left alone.
fn open_created(dir: &OwnedFd, name: &[u8], kind: FileType, how: OFlags) -> Result<OwnedFd, Fail> {
    let flags = how | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let entry = openat(dir, cpath(name), flags, Mode::empty()).map_err(|e| os("open", e))?;
    let stat = rustix::fs::fstat(&entry).map_err(|e| os("fstat", e))?;
    if FileType::from_raw_mode(stat.st_mode) != kind || stat.st_nlink != 1 {
        return Err(Fail::Entry(
            "replaced by another file while it was being written".into(),
        ));
    }
    Ok(entry)
}

fn times(mtime: Timespec) -> Timestamps {
    Timestamps {
        last_access: Timespec {
            tv_sec: 0,
            tv_nsec: UTIME_OMIT,
        },
        last_modification: mtime,
    }
}

fn uid(id: u64) -> Uid {
    Uid::from_raw(id as u32)
}

fn gid(id: u64) -> Gid {
    Gid::from_raw(id as u32)
}
