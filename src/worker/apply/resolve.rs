//! Opening a path below a directory as if that directory were `/`, one
//! component at a time, in user space: where the worker has no root of its own
//! (the Landlock rung without `CAP_SYS_CHROOT`) and `openat2(RESOLVE_IN_ROOT)`
//! is off the seccomp allow-list (its mode lies behind a pointer no filter can
//! read), and in the unconfined fuzzing harness.
//!
//! Each step is an `openat(O_PATH | O_NOFOLLOW | O_DIRECTORY)` from the
//! directory reached so far; a symlink (the step fails with `ENOTDIR` or
//! `ELOOP`) is read with `readlinkat` and its target's components are walked
//! in its place, an absolute target from the root again; `..` goes back to the
//! directory the walk came from (opened as `..` of the current one: one
//! descriptor is held, whatever the depth) and never above the root. An empty
//! path is the root itself (`openat` would say `ENOENT`). The walk thus keeps
//! to the tree as it is: no name of the archive leads outside. It is a
//! policy, not a wall: a process outside that moves directories while the walk
//! runs could lead a step past the root, and there Landlock, which governs
//! every access by where the file is and not by the way to it, refuses it.

use std::collections::VecDeque;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{openat, readlinkat, Mode, OFlags};
use rustix::io::Errno;

use crate::worker::names::cpath;

/// How many symlinks one walk may pass (Linux's own limit).
const MAX_SYMLINKS: usize = 40;
/// How many components one walk may take, symlink targets included: far more
/// than any real tree needs (a name has at most 2,048), far fewer than 40
/// targets of 4 KiB could ask for (each step is a system call, where the
/// kernel's own walk costs much less). Past it the walk fails with `ELOOP`.
const MAX_STEPS: usize = 16 * 1024;

/// How each step opens a directory on the way.
const STEP: OFlags = OFlags::PATH
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// Opens `path` below `root` with `flags` (a final symlink is followed unless
/// `flags` has `O_NOFOLLOW`), symlinks and `..` resolved as if `root` were `/`.
/// Errors are the kernel's, as `openat` would give them (`ELOOP` after too
/// many symlinks, `ENOTDIR` for a file on the way).
pub(crate) fn open_in_root(root: &OwnedFd, path: &[u8], flags: OFlags) -> Result<OwnedFd, Errno> {
    let mut walk = Walk {
        root: root.as_fd(),
        here: None,
        names: Vec::new(),
        pending: components(path).collect(),
        links: 0,
    };
    let mut steps = 0;
    while let Some(name) = walk.pending.pop_front() {
        steps += 1;
        if steps > MAX_STEPS {
            return Err(Errno::LOOP);
        }
        if name == b".." {
            walk.up()?;
            continue;
        }
        let last = walk.pending.is_empty();
        let follow = !last || !flags.contains(OFlags::NOFOLLOW);
        let how = match last {
            true => flags | OFlags::NOFOLLOW,
            false => STEP,
        };
        match openat(walk.here(), cpath(&name), how, Mode::empty()) {
            // `O_PATH` without `O_DIRECTORY` opens a symlink itself: follow it.
            Ok(fd) if last && follow && is_symlink(&fd, flags) => {
                walk.follow(&name, Errno::LOOP)?
            }
            Ok(fd) if last => return Ok(fd),
            Ok(fd) => {
                walk.here = Some(fd);
                walk.names.push(name);
            }
            Err(e @ (Errno::NOTDIR | Errno::LOOP)) if follow => walk.follow(&name, e)?,
            Err(e) => return Err(e),
        }
    }
    // The walk ended on a directory (the root, a `..`, or a symlink to one).
    openat(walk.here(), ".", flags, Mode::empty())
}

/// A walk in progress. It holds one directory open, not one per level: the
/// worker may hold only a few descriptors, and trees run thousands deep.
struct Walk<'r> {
    root: BorrowedFd<'r>,
    /// The directory reached (`None`: the root).
    here: Option<OwnedFd>,
    /// Its names from the root, each a directory (no symlink): how deep it is,
    /// so that `..` stops at the root.
    names: Vec<Vec<u8>>,
    /// The components still to walk.
    pending: VecDeque<Vec<u8>>,
    /// The symlinks passed so far.
    links: usize,
}

impl Walk<'_> {
    fn here(&self) -> BorrowedFd<'_> {
        self.here.as_ref().map_or(self.root, |fd| fd.as_fd())
    }

    /// `..`: the directory before, never above the root: opened from the
    /// current one (one call, whatever the depth). Each name walked is a
    /// directory, not a symlink, so its parent is the directory walked before
    /// it, unless a process outside moves directories meanwhile; then the
    /// step may leave the root, and Landlock stops whatever follows.
    fn up(&mut self) -> Result<(), Errno> {
        if self.names.pop().is_none() {
            return Ok(());
        }
        self.here = match self.names.is_empty() {
            true => None,
            false => Some(openat(self.here(), "..", STEP, Mode::empty())?),
        };
        Ok(())
    }

    /// `name` in the current directory could not be opened as a directory
    /// (`failed`): if it is a symlink, its target's components come next.
    fn follow(&mut self, name: &[u8], failed: Errno) -> Result<(), Errno> {
        let target = match readlinkat(self.here(), cpath(name), Vec::new()) {
            Ok(target) => target.into_bytes(),
            // Not a symlink: the step's own error stands.
            Err(Errno::INVAL) => return Err(failed),
            Err(e) => return Err(e),
        };
        self.links += 1;
        if self.links > MAX_SYMLINKS {
            return Err(Errno::LOOP);
        }
        if target.is_empty() {
            return Err(Errno::NOENT);
        }
        if target.starts_with(b"/") {
            self.here = None;
            self.names.clear();
        }
        for component in components(&target).rev() {
            self.pending.push_front(component);
        }
        Ok(())
    }
}

/// Whether `fd`, opened with `flags`, is a symlink (only `O_PATH` without
/// `O_DIRECTORY` opens one).
fn is_symlink(fd: &OwnedFd, flags: OFlags) -> bool {
    let may_be = flags.contains(OFlags::PATH) && !flags.contains(OFlags::DIRECTORY);
    may_be
        && rustix::fs::fstat(fd)
            .is_ok_and(|st| rustix::fs::FileType::from_raw_mode(st.st_mode).is_symlink())
}

/// The components of `path` that name something: not empty, not `.`.
fn components(path: &[u8]) -> impl DoubleEndedIterator<Item = Vec<u8>> + '_ {
    path.split(|b| *b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .map(<[u8]>::to_vec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tree() -> (tempfile::TempDir, OwnedFd) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/b/file"), b"in").unwrap();
        std::fs::write(tmp.path().join("file"), b"out").unwrap();
        std::fs::create_dir(tmp.path().join("b")).unwrap();
        symlink("/a", root.join("abs")).unwrap();
        symlink("../../..", root.join("a/up")).unwrap();
        symlink("up/a/b/file", root.join("a/chain")).unwrap();
        symlink("loop", root.join("loop")).unwrap();
        symlink("a/b/file", root.join("tofile")).unwrap();
        let fd = std::fs::File::open(&root).unwrap().into();
        (tmp, fd)
    }

    fn read(root: &OwnedFd, path: &str) -> Result<String, Errno> {
        use std::io::Read;
        let fd = open_in_root(root, path.as_bytes(), OFlags::RDONLY | OFlags::CLOEXEC)?;
        let mut text = String::new();
        std::fs::File::from(fd).read_to_string(&mut text).unwrap();
        Ok(text)
    }

    #[test]
    fn symlinks_and_dot_dot_stay_below_the_root() {
        let (_tmp, root) = tree();
        assert_eq!(read(&root, "a/b/file").unwrap(), "in");
        assert_eq!(read(&root, "abs/b/file").unwrap(), "in");
        assert_eq!(read(&root, "/../../a/b/file").unwrap(), "in");
        // `a/up` is `../../..` from `a`: the root, not the directory above.
        assert_eq!(read(&root, "a/up/file"), Err(Errno::NOENT));
        assert_eq!(read(&root, "a/up/a/b/file").unwrap(), "in");
        assert_eq!(read(&root, "a/chain").unwrap(), "in");
        assert_eq!(read(&root, "a/b/../../tofile").unwrap(), "in");
    }

    #[test]
    fn errors_are_the_kernels() {
        let (_tmp, root) = tree();
        assert_eq!(read(&root, "loop").unwrap_err(), Errno::LOOP);
        assert_eq!(read(&root, "loop/x").unwrap_err(), Errno::LOOP);
        assert_eq!(read(&root, "a/b/file/x").unwrap_err(), Errno::NOTDIR);
        assert_eq!(read(&root, "missing/x").unwrap_err(), Errno::NOENT);
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let last = open_in_root(&root, b"tofile", flags).unwrap_err();
        assert_eq!(last, Errno::LOOP, "a final symlink with O_NOFOLLOW");
        let dir = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        // `O_PATH` without `O_DIRECTORY` follows a final symlink too.
        let path_only = OFlags::PATH | OFlags::CLOEXEC;
        let fd = open_in_root(&root, b"tofile", path_only).unwrap();
        let st = rustix::fs::fstat(&fd).unwrap();
        assert!(rustix::fs::FileType::from_raw_mode(st.st_mode).is_file());
        assert_eq!(
            open_in_root(&root, b"loop", path_only).unwrap_err(),
            Errno::LOOP
        );
        assert!(open_in_root(&root, b"abs", dir).is_ok());
        assert!(open_in_root(&root, b"", dir).is_ok());
        assert!(open_in_root(&root, b"a/..", dir).is_ok());
        assert_eq!(
            open_in_root(&root, b"tofile", dir).unwrap_err(),
            Errno::NOTDIR
        );
    }

    /// `..` at depth costs one step, and a walk that would take too many
    /// steps fails: 300 levels, and a symlink at the bottom whose target
    /// climbs them all and descends again, 40 times over.
    #[test]
    fn deep_climbs_and_the_step_bound() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let deep: std::path::PathBuf = std::iter::repeat_n("d", 300).collect();
        std::fs::create_dir_all(root.join(&deep)).unwrap();
        std::fs::write(root.join("top.txt"), b"top").unwrap();
        let up = "../".repeat(300);
        symlink(format!("{up}top.txt"), root.join(&deep).join("climb")).unwrap();
        let fd: OwnedFd = std::fs::File::open(&root).unwrap().into();
        let file = |path: &std::path::Path| {
            let flags = OFlags::RDONLY | OFlags::CLOEXEC;
            open_in_root(&fd, path.as_os_str().as_encoded_bytes(), flags)
        };
        assert!(file(&deep.join("climb")).is_ok());
        // 40 descents and climbs of 300 levels, through 40 chained symlinks
        // (one target may hold 4 KiB at most): 24,000 steps, over the bound.
        let chunk = format!("{}{}", "d/".repeat(300), "../".repeat(300));
        for i in 0..40 {
            let next = match i {
                39 => "top.txt".to_string(),
                _ => format!("c{}", i + 1),
            };
            symlink(format!("{chunk}{next}"), root.join(format!("c{i}"))).unwrap();
        }
        assert_eq!(file(std::path::Path::new("c0")).unwrap_err(), Errno::LOOP);
        assert!(
            file(std::path::Path::new("c30")).is_ok(),
            "10 links: under the bound"
        );
    }
}
