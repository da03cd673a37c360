//! A packing job, once the worker is confined to the source, read-only: the
//! tree walked from the worker's root in sorted order, each entry's headers
//! ([`header`]) and data written to the archive ([`output`]), one report per
//! entry; files with holes packed sparse ([`sparse`]), extended attributes
//! recorded as the options allow ([`xattrs`]).
//!
//! Every name is opened relative to its directory's descriptor without
//! following a symlink (`O_NOFOLLOW`, `O_DIRECTORY`), and a file's
//! descriptor is checked to be the regular file that was listed; a tree
//! changed while it is read gives a failed entry, never a byte from outside:
//! that is the mount clone's (or Landlock's) wall, read-only.

mod header;
mod output;
mod sparse;
mod xattrs;

use std::collections::HashMap;
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;

use rustix::fs::{openat, statat, AtFlags, FileType, Mode, OFlags, Stat, CWD};

use crate::ignore::IgnoreRules;
use crate::mode::SandboxMode;
use crate::pack::{PackOptions, PackOwners};
use crate::report::{EntryKind, Outcome, SkipReason};
use crate::selection::Selector;
use crate::wire::{WireError, WireReport, WorkerTotals, REPORT_BATCH_BYTES, REPORT_BATCH_ENTRIES};
use crate::worker::input::Decoder;

use header::Record;
use output::Output;

/// Directories kept open along the walk; deeper ones are opened again from
/// the nearest open ancestor (the worker may hold 64 descriptors).
const OPEN_DIRS: usize = 24;
/// The deepest directory whose contents are packed: the walk recurses once
/// per level, and the worker's stack (8 MiB) ends past about 6,000 levels
/// in a release build and far sooner in a debug one.
const MAX_DEPTH: usize = 1024;

/// Packs the worker's root into the archive sent on `socket`; each entry's
/// report goes to `report`.
pub(crate) fn run(
    socket: UnixStream,
    options: &PackOptions,
    mode: SandboxMode,
    decoder: Decoder,
    output: Option<OwnedFd>,
) -> Result<WorkerTotals, WireError> {
    let internal = |e: io::Error| WireError::Internal(e.to_string());
    let selector =
        Selector::new(&options.select).map_err(|e| WireError::Internal(e.to_string()))?;
    let ignore =
        IgnoreRules::new(&options.ignore).map_err(|e| WireError::Internal(e.to_string()))?;
    let root = openat(CWD, ".", dir_flags(), Mode::empty()).map_err(|e| internal(e.into()))?;
    let mut packer = Packer {
        out: Output::new(socket, output, options.compression, options.digest, decoder)
            .map_err(internal)?,
        options,
        selector,
        ignore,
        ids: Ids::new(mode),
        links: HashMap::new(),
        batch: Vec::new(),
        batch_bytes: 0,
        buffer: vec![0u8; 128 << 10],
        xattrs: xattrs::Reader::new(options.xattrs),
    };
    let mut dirs = vec![(Vec::new(), Some(root))];
    packer.directory(&mut dirs)?;
    packer.flush_reports()?;
    packer.out.write_all(&[0u8; 1024]).map_err(lost)?;
    let (tar_bytes, diff_id) = packer.out.finish().map_err(lost)?;
    Ok(WorkerTotals {
        tar_bytes,
        diff_id,
        layer_size: 0,
        compression: options.compression,
    })
}

/// The archive could not be sent: the caller is gone or stopped reading.
fn lost(e: io::Error) -> WireError {
    WireError::Internal(format!("sending the archive: {e}"))
}

fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

/// How the ids the worker sees become the ids recorded: in a user namespace
/// the caller's own ids are 0 inside.
struct Ids {
    outside: Option<(u32, u32)>,
}

impl Ids {
    fn new(mode: SandboxMode) -> Self {
        Ids {
            outside: match mode {
                SandboxMode::UserNamespace { uid, gid } => Some((uid, gid)),
                _ => None,
            },
        }
    }

    fn of(&self, stat: &Stat) -> (u64, u64) {
        match self.outside {
            Some((uid, gid)) => (
                if stat.st_uid == 0 { uid } else { stat.st_uid }.into(),
                if stat.st_gid == 0 { gid } else { stat.st_gid }.into(),
            ),
            None => (stat.st_uid.into(), stat.st_gid.into()),
        }
    }
}

struct Packer<'a> {
    out: Output,
    options: &'a PackOptions,
    selector: Selector,
    /// `.dockerignore` rules, after `selector`.
    ignore: IgnoreRules,
    ids: Ids,
    /// Files with more than one link seen so far: (device, inode) -> name.
    links: HashMap<(u64, u64), Vec<u8>>,
    /// Reports not sent yet, and their size (as the extraction's reporter).
    batch: Vec<WireReport>,
    batch_bytes: usize,
    buffer: Vec<u8>,
    /// Reads the attributes `PackOptions::xattrs` allows (none: no reader).
    xattrs: Option<xattrs::Reader>,
}

/// A file listed as regular, looked at before its name is.
enum Opened {
    /// The selection or the ignore rules left it out (reported).
    Skipped,
    /// Open for reading, with its descriptor's `fstat`.
    File(OwnedFd, Stat),
}

/// What follows an entry's headers.
enum Body {
    Nothing,
    /// A regular file's bytes, all of them.
    Whole(OwnedFd),
    /// A sparse file's map, then its data regions.
    Sparse(OwnedFd, Vec<(u64, u64)>),
}

impl Packer<'_> {
    /// Packs the contents of the last directory of `dirs` (relative names,
    /// open descriptors), in sorted order, then its subdirectories' after
    /// each.
    fn directory(&mut self, dirs: &mut Vec<(Vec<u8>, Option<OwnedFd>)>) -> Result<(), WireError> {
        let path = dirs.last().map(|(p, _)| p.clone()).unwrap_or_default();
        let listed = open_dir(dirs).and_then(|fd| Ok((listing(&fd)?, fd)));
        let (names, mut fd) = match listed {
            Ok(listed) => listed,
            Err(e) => return self.failed(&path, EntryKind::Directory, e),
        };
        for (name, listed_type) in names {
            let child = join(&path, &name);
            let Some((stat, opened)) = self.look_up(&fd, &name, &child, listed_type)? else {
                continue;
            };
            let kind = kind_of(&stat);
            // A file opened already passed the selection and the rules.
            let prechecked = opened.is_some();
            if !prechecked && self.deselected(&child, kind)? {
                continue;
            }
            if kind == EntryKind::Directory && dirs.len() >= MAX_DEPTH {
                // The walk recurses once per level.
                let problem = format!("more than {MAX_DEPTH} directories deep: not packed");
                self.send(&child, kind, 0, Outcome::Failed(problem))?;
                continue;
            }
            let ignored = !prechecked && self.ignore.ignores(&child);
            match ignored {
                true => self.skipped(&child, kind, SkipReason::NotSelected)?,
                false => self.entry(&fd, &name, &child, &stat, kind, opened)?,
            }
            // An ignored directory is walked for what a `!` rule re-includes.
            if kind == EntryKind::Directory && (!ignored || self.ignore.has_exceptions()) {
                // No descriptor of ours held below: the window stays small.
                drop(fd);
                self.descend(dirs, child)?;
                fd = match open_dir(dirs) {
                    Ok(fd) => fd,
                    Err(e) => return self.failed(&path, EntryKind::Directory, e),
                };
            }
        }
        Ok(())
    }

    /// Packs the directory `child` of the last of `dirs`.
    fn descend(
        &mut self,
        dirs: &mut Vec<(Vec<u8>, Option<OwnedFd>)>,
        child: Vec<u8>,
    ) -> Result<(), WireError> {
        // Keep at most `OPEN_DIRS` descriptors along the path.
        // (The root, first, stays open.)
        if dirs.len() > OPEN_DIRS {
            let far = dirs.len() - OPEN_DIRS;
            dirs[far].1 = None;
        }
        dirs.push((child, None));
        let result = self.directory(dirs);
        dirs.pop();
        result
    }

    /// The entry `name` in `dir` (`path` from the root) as it is now, and
    /// its descriptor if it is a regular file opened already: a file listed
    /// as regular is opened at once, and its descriptor's `fstat` is the
    /// entry's (one lookup of the name, not two); anything else, or a file
    /// that is not one any more, is looked up without following it. `None`
    /// if it was reported already (left out, or failed).
    fn look_up(
        &mut self,
        dir: &OwnedFd,
        name: &[u8],
        path: &[u8],
        listed: FileType,
    ) -> Result<Option<(Stat, Option<OwnedFd>)>, WireError> {
        if listed == FileType::RegularFile {
            match self.open_listed_file(dir, name, path)? {
                Some(Opened::Skipped) => return Ok(None),
                Some(Opened::File(file, stat)) => return Ok(Some((stat, Some(file)))),
                None => {}
            }
        }
        match statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => Ok(Some((stat, None))),
            Err(e) => {
                self.failed(path, EntryKind::File, e.into())?;
                Ok(None)
            }
        }
    }

    /// Whether the selection leaves `path` out (and then reports it).
    fn deselected(&mut self, path: &[u8], kind: EntryKind) -> Result<bool, WireError> {
        match self.selector.select(path, kind) {
            Ok(_) => Ok(false),
            Err(reason) => self.skipped(path, kind, reason).map(|()| true),
        }
    }

    /// Opens `name` in `dir`, listed as a regular file, if the selection
    /// and the ignore rules keep a file of that name (and reports it
    /// skipped if they do not). `None` if it is not a regular file now, or
    /// cannot be opened: the caller looks at it by name.
    fn open_listed_file(
        &mut self,
        dir: &OwnedFd,
        name: &[u8],
        path: &[u8],
    ) -> Result<Option<Opened>, WireError> {
        if self.deselected(path, EntryKind::File)? {
            return Ok(Some(Opened::Skipped));
        }
        if self.ignore.ignores(path) {
            self.skipped(path, EntryKind::File, SkipReason::NotSelected)?;
            return Ok(Some(Opened::Skipped));
        }
        let Ok(file) = openat(dir, name, file_flags(), Mode::empty()) else {
            return Ok(None);
        };
        Ok(match rustix::fs::fstat(&file) {
            Ok(stat) if FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile => {
                Some(Opened::File(file, stat))
            }
            _ => None,
        })
    }

    /// Writes one entry (`name` in `dir`, `path` from the root) and reports
    /// it; `opened`, the file's descriptor if it was opened already (its
    /// `stat` is that descriptor's).
    fn entry(
        &mut self,
        dir: &OwnedFd,
        name: &[u8],
        path: &[u8],
        stat: &Stat,
        kind: EntryKind,
        opened: Option<OwnedFd>,
    ) -> Result<(), WireError> {
        let mut record = self.record(path, stat, kind);
        if let EntryKind::Other(_) = kind {
            return self.skipped(path, kind, SkipReason::UnsupportedType(b's'));
        }
        if kind == EntryKind::Symlink {
            match rustix::fs::readlinkat(dir, name, Vec::new()) {
                Ok(target) => record.link = Some(target.into_bytes()),
                Err(e) => return self.failed(path, kind, e.into()),
            }
        }
        // A file with more names: later names link to the first one packed
        // with its data (one that could not be read is no target).
        let mut first_name = None;
        if kind == EntryKind::File && stat.st_nlink > 1 {
            let id = (stat.st_dev, stat.st_ino);
            if let Some(first) = self.links.get(&id) {
                record.kind = EntryKind::HardLink;
                record.link = Some(first.clone());
                record.size = 0;
                return self.write(record, Body::Nothing, path, None);
            }
            first_name = Some(id);
        }
        if kind == EntryKind::Directory {
            let left_out = self.directory_xattrs(dir, name, stat, &mut record);
            return self.write(record, Body::Nothing, path, left_out);
        }
        if kind != EntryKind::File {
            // Symlinks, FIFOs and devices are not opened: no attributes.
            return self.write(record, Body::Nothing, path, None);
        }
        let file = match opened.map_or_else(|| open_file(dir, name, stat), Ok) {
            Ok(file) => file,
            Err(e) => return self.failed(path, kind, e),
        };
        let left_out = self.read_xattrs(file.as_fd(), &mut record);
        let body = match sparse::regions(&file, stat) {
            Ok(Some(map)) => Body::Sparse(file, map),
            Ok(None) => Body::Whole(file),
            Err(e) => return self.failed(path, kind, e),
        };
        if let Some(id) = first_name {
            self.links.insert(id, record.name.clone());
        }
        self.write(record, body, path, left_out)
    }

    /// Puts the allowed attributes of the file open as `fd` in `record`;
    /// says why one was left out, if one was.
    fn read_xattrs(&mut self, fd: BorrowedFd<'_>, record: &mut Record) -> Option<String> {
        let found = self.xattrs.as_mut()?.read(fd);
        record.xattrs = found.list;
        found.left_out
    }

    /// A directory's attributes, through a descriptor of its own opened for
    /// them (the walk opens it again below, after its header). One that
    /// cannot be opened now gets none: its walk reports it.
    fn directory_xattrs(
        &mut self,
        dir: &OwnedFd,
        name: &[u8],
        listed: &Stat,
        record: &mut Record,
    ) -> Option<String> {
        self.xattrs.as_ref()?;
        let fd = openat(dir, name, dir_flags(), Mode::empty()).ok()?;
        let stat = rustix::fs::fstat(&fd).ok()?;
        if (stat.st_dev, stat.st_ino) != (listed.st_dev, listed.st_ino) {
            return None;
        }
        self.read_xattrs(fd.as_fd(), record)
    }

    /// The header fields of an entry.
    fn record(&self, path: &[u8], stat: &Stat, kind: EntryKind) -> Record {
        let mut name = match &self.options.prefix {
            Some(prefix) => join(prefix.trim_end_matches('/').as_bytes(), path),
            None => path.to_vec(),
        };
        if kind == EntryKind::Directory {
            name.push(b'/');
        }
        let (uid, gid) = match self.options.owners {
            PackOwners::Root => (0, 0),
            _ => {
                let (uid, gid) = self.ids.of(stat);
                (self.to_container(uid, true), self.to_container(gid, false))
            }
        };
        let mtime = match self.options.mtime_clamp {
            Some(clamp) => stat.st_mtime.min(clamp),
            None => stat.st_mtime,
        };
        let rdev = stat.st_rdev;
        Record {
            name,
            kind,
            mode: stat.st_mode & 0o7777,
            uid,
            gid,
            mtime,
            size: match kind {
                EntryKind::File => stat.st_size as u64,
                _ => 0,
            },
            link: None,
            device: (rustix::fs::major(rdev), rustix::fs::minor(rdev)),
            xattrs: Vec::new(),
            sparse: None,
        }
    }

    /// A host id as the container's, through `id_map` (reversed).
    fn to_container(&self, id: u64, uid: bool) -> u64 {
        let map = &self.options.id_map;
        let ranges = if uid { &map.uids } else { &map.gids };
        for r in ranges {
            let host = u64::from(r.host);
            if id >= host && id - host < u64::from(r.size) {
                return u64::from(r.container) + (id - host);
            }
        }
        id
    }

    /// Writes the headers, then the body, and reports the entry: failed if
    /// an attribute was `left_out`, or if the file shrank while it was read
    /// (the missing bytes are zeros, so the archive stays whole; a file that
    /// grew is cut), as GNU tar does.
    fn write(
        &mut self,
        mut record: Record,
        body: Body,
        path: &[u8],
        left_out: Option<String>,
    ) -> Result<(), WireError> {
        let real_size = record.size;
        if let Body::Sparse(_, map) = &body {
            record.sparse = Some(real_size);
            record.size = sparse::map_size(map) + sparse::data_size(map);
        }
        header::write(&mut self.out, &record).map_err(lost)?;
        let (missing, grew) = match &body {
            Body::Nothing => (0, None),
            Body::Whole(file) => {
                let (copied, more) = self.copy_whole(file, record.size)?;
                // A byte more, and a size that says so (a file whose size
                // says nothing, as in /proc, is packed as it was listed).
                let grew = more.then(|| grown_past(file, real_size)).flatten();
                (record.size - copied, grew)
            }
            Body::Sparse(file, map) => match self.copy_sparse(file, map, real_size)? {
                0 => (0, grown_past(file, real_size)),
                missing => (missing, None),
            },
        };
        let pad = header::padding(record.size);
        self.out.write_all(&[0u8; 512][..pad]).map_err(lost)?;
        let outcome = match (missing, grew, left_out) {
            (0, None, None) => Outcome::Written,
            (0, None, Some(message)) => Outcome::Failed(message),
            (0, Some(size), _) => Outcome::Failed(format!(
                "the file grew to {size} bytes while it was read; cut at {real_size}"
            )),
            (missing, _, _) => Outcome::Failed(format!(
                "the file shrank by {missing} bytes while it was read; padded with zeros"
            )),
        };
        self.send(path, record.kind, real_size, outcome)
    }

    /// Writes a sparse file's map and data regions; returns how many bytes
    /// of `real_size` were missing (at least 1 if the file is now shorter:
    /// its holes would have hidden that).
    fn copy_sparse(
        &mut self,
        file: &OwnedFd,
        map: &[(u64, u64)],
        real_size: u64,
    ) -> Result<u64, WireError> {
        sparse::write_map(&mut self.out, map).map_err(lost)?;
        let mut missing = 0;
        for &(offset, len) in map.iter().filter(|(_, len)| *len > 0) {
            let copied = match rustix::fs::seek(file, rustix::fs::SeekFrom::Start(offset)) {
                Ok(_) => self.copy(file, len)?,
                Err(_) => self.zeros(len).map(|()| 0)?,
            };
            missing += len - copied;
        }
        let now = rustix::fs::fstat(file).map_or(real_size, |stat| stat.st_size as u64);
        Ok(missing.max(real_size.saturating_sub(now)))
    }

    /// Copies a whole file as [`Packer::copy`] does; also says whether it
    /// holds more than `size` bytes (its last read asks for one byte more:
    /// a file that grew is found without another `fstat`).
    fn copy_whole(&mut self, file: &OwnedFd, size: u64) -> Result<(u64, bool), WireError> {
        let mut done = 0u64;
        let mut more = false;
        loop {
            let left = size - done;
            let want = (left + 1).min(self.buffer.len() as u64) as usize;
            let n = match rustix::io::read(file, &mut self.buffer[..want]) {
                Ok(0) | Err(_) => break,
                Ok(n) => n as u64,
            };
            let take = n.min(left) as usize;
            self.out.write_all(&self.buffer[..take]).map_err(lost)?;
            done += take as u64;
            if n > left {
                more = true;
                break;
            }
            // All of it, and not the byte beyond asked for: the end (a
            // short read of a regular file is its end; one that grew at
            // this very moment is cut, as by `fstat` a moment later).
            if done == size && n < want as u64 {
                break;
            }
        }
        self.zeros(size - done)?;
        Ok((done, more))
    }

    /// Copies up to `size` bytes of `file`, then zeros up to `size`; returns
    /// how many came from the file.
    fn copy(&mut self, file: &OwnedFd, size: u64) -> Result<u64, WireError> {
        let mut done = 0u64;
        while done < size {
            let want = (size - done).min(self.buffer.len() as u64) as usize;
            let n = match rustix::io::read(file, &mut self.buffer[..want]) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            self.out.write_all(&self.buffer[..n]).map_err(lost)?;
            done += n as u64;
        }
        self.zeros(size - done)?;
        Ok(done)
    }

    /// `n` zeros into the archive (the copy buffer is zeroed only here: a
    /// file that shrank is rare).
    fn zeros(&mut self, mut n: u64) -> Result<(), WireError> {
        if n > 0 {
            self.buffer.fill(0);
        }
        while n > 0 {
            let k = n.min(self.buffer.len() as u64) as usize;
            self.out.write_all(&self.buffer[..k]).map_err(lost)?;
            n -= k as u64;
        }
        Ok(())
    }

    fn send(
        &mut self,
        path: &[u8],
        kind: EntryKind,
        size: u64,
        outcome: Outcome,
    ) -> Result<(), WireError> {
        let size = if kind == EntryKind::File { size } else { 0 };
        let report = WireReport {
            path: crate::wire::bounded_path(path.to_vec()),
            kind,
            size,
            outcome,
            notes: Vec::new(),
        };
        self.batch_bytes += report.path.len() + 24;
        self.batch.push(report);
        if self.batch_bytes >= REPORT_BATCH_BYTES || self.batch.len() >= REPORT_BATCH_ENTRIES {
            self.flush_reports()?;
        }
        Ok(())
    }

    /// Sends the reports gathered, as one frame, through the archive's
    /// writer (the socket has one writer: the compressing thread, if any).
    fn flush_reports(&mut self) -> Result<(), WireError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        self.batch_bytes = 0;
        let frame = crate::wire::encode_frame(&crate::wire::WorkerMsg::Reports(batch));
        self.out.frame(frame).map_err(lost)
    }

    fn skipped(&mut self, path: &[u8], kind: EntryKind, why: SkipReason) -> Result<(), WireError> {
        self.send(path, kind, 0, Outcome::Skipped(why))
    }

    /// An entry that could not be read: reported, left out of the archive.
    fn failed(&mut self, path: &[u8], kind: EntryKind, e: io::Error) -> Result<(), WireError> {
        self.send(
            path,
            kind,
            0,
            Outcome::Failed(format!("cannot be read: {e}")),
        )
    }
}

/// The size of the file open as `file` if it is now larger than `listed`,
/// the size its header promised (GNU tar: "file changed as we read it").
fn grown_past(file: &OwnedFd, listed: u64) -> Option<u64> {
    let size = rustix::fs::fstat(file).ok()?.st_size as u64;
    (size > listed).then_some(size)
}

/// The names in the directory `fd` with their listed types (`Unknown`
/// where the filesystem does not say), sorted by name (`.` and `..` left
/// out).
fn listing(fd: &OwnedFd) -> io::Result<Vec<(Vec<u8>, FileType)>> {
    let mut names = Vec::new();
    let mut dir = rustix::fs::Dir::read_from(fd)?;
    while let Some(entry) = dir.read() {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push((name.to_vec(), entry.file_type()));
        }
    }
    names.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(names)
}

/// `dir/name` (or `name` at the root).
fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    match dir.is_empty() {
        true => name.to_vec(),
        false => [dir, b"/", name].concat(),
    }
}

/// The descriptor of the last directory of `dirs`, opened again from its
/// nearest open ancestor, one component at a time, if it was closed.
fn open_dir(dirs: &mut [(Vec<u8>, Option<OwnedFd>)]) -> io::Result<OwnedFd> {
    let last = dirs.len() - 1;
    let open = (0..=last)
        .rev()
        .find(|&i| dirs[i].1.is_some())
        .expect("the root stays open");
    let mut fd = dirs[open].1.as_ref().expect("open").try_clone()?;
    // Only the last `OPEN_DIRS` levels keep what is opened again: deeper
    // in a tree, keeping every level would run out of descriptors.
    let kept_from = dirs.len().saturating_sub(OPEN_DIRS);
    for (i, (path, slot)) in dirs.iter_mut().enumerate().skip(open + 1) {
        let name = path.rsplit(|b| *b == b'/').next().unwrap_or_default();
        let next = openat(&fd, name, dir_flags(), Mode::empty())?;
        if i >= kept_from {
            *slot = Some(next.try_clone()?);
        }
        fd = next;
    }
    Ok(fd)
}

/// Opens the regular file `name` in `dir` for reading and checks that it is
/// the one `listed` (not a FIFO, device or another file swapped in).
fn open_file(dir: &OwnedFd, name: &[u8], listed: &Stat) -> io::Result<OwnedFd> {
    let fd = openat(dir, name, file_flags(), Mode::empty())?;
    let stat = rustix::fs::fstat(fd.as_fd())?;
    let same = FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile
        && (stat.st_dev, stat.st_ino) == (listed.st_dev, listed.st_ino);
    match same {
        true => Ok(fd),
        false => Err(io::Error::other("it was replaced while the tree was read")),
    }
}

/// How a file is opened for reading: never following a symlink, and
/// without waiting or taking a terminal if something else was swapped in.
fn file_flags() -> OFlags {
    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC
}

/// The kind of entry a file's type makes.
fn kind_of(stat: &Stat) -> EntryKind {
    match FileType::from_raw_mode(stat.st_mode) {
        FileType::RegularFile => EntryKind::File,
        FileType::Directory => EntryKind::Directory,
        FileType::Symlink => EntryKind::Symlink,
        FileType::Fifo => EntryKind::Fifo,
        FileType::CharacterDevice => EntryKind::CharDevice,
        FileType::BlockDevice => EntryKind::BlockDevice,
        _ => EntryKind::Other(b's'),
    }
}
