//! Image layers: OCI whiteouts, opaque directories, and removing trees without
//! ever following a symlink.
//!
//! `.wh.NAME` removes `NAME` from the tree below (a file, a symlink, or a whole
//! directory); `.wh..wh..opq` makes its directory opaque: everything that was in
//! it before this layer goes, whatever this layer wrote stays, in whatever order
//! the entries come. Other `.wh..wh.*` names are ignored; `.wh.`, `.wh..` and
//! `.wh...` are malformed. In the overlay format a whiteout becomes a 0:0
//! character device and an opaque directory gets `trusted.overlay.opaque=y`
//! (`user.overlay.opaque` in a user namespace).

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{openat, unlinkat, AtFlags, Dir, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::worker::names::cpath;

/// What an entry's name means in a layer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Whiteout<'a> {
    /// An ordinary entry.
    None,
    /// `.wh..wh..opq`: the parent directory is opaque.
    Opaque,
    /// `.wh.NAME`: remove `NAME`.
    Remove(&'a [u8]),
    /// Another `.wh..wh.*` name: ignored.
    Ignored,
    /// `.wh.`, `.wh..`, `.wh...`: refused.
    Malformed,
}

/// Classifies the last component of an entry name.
fn classify(name: &[u8]) -> Whiteout<'_> {
    let Some(rest) = name.strip_prefix(b".wh.") else {
        return Whiteout::None;
    };
    if rest == b".wh..opq" {
        Whiteout::Opaque
    } else if rest.starts_with(b".wh.") {
        Whiteout::Ignored
    } else if rest.is_empty() || rest == b"." || rest == b".." {
        Whiteout::Malformed
    } else {
        Whiteout::Remove(rest)
    }
}

/// Classifies an entry by the last component of its name once cleaned, as
/// Docker does (`etc/.wh.passwd/.` and `etc/.wh.passwd/` are whiteouts of
/// `etc/passwd`): empty and `.` components do not count.
pub(crate) fn classify_entry(raw: &[u8]) -> Whiteout<'_> {
    let last = raw
        .rsplit(|b| *b == b'/')
        .find(|c| !c.is_empty() && *c != b".")
        .unwrap_or_default();
    classify(last)
}

/// Removes `name` in `dir`, whatever it is, never following symlinks; a missing
/// name is not an error.
///
/// Depth first without recursion, holding one directory open at a time (the
/// worker may hold only a few descriptors, and a tree may be thousands of
/// levels deep): each directory is listed once, its files removed and its
/// subdirectories queued by their path from `dir`; it is removed after them.
/// The paths are followed by the kernel: under `pivot_root` or `chroot` they
/// stay inside the destination. On the Landlock rung without `chroot`, a
/// process outside that swapped a listed directory for a symlink could lead
/// one outside, where Landlock refuses the removal (without such a racer,
/// every component was listed as a directory).
pub(crate) fn remove_all(dir: BorrowedFd<'_>, name: &[u8]) -> Result<(), Errno> {
    // (path from `dir`, whether its children were queued already)
    let mut stack = vec![(name.to_vec(), false)];
    while let Some((path, emptied)) = stack.pop() {
        if emptied {
            match unlinkat(dir, cpath(&path), AtFlags::REMOVEDIR) {
                Ok(()) | Err(Errno::NOENT) => continue,
                Err(e) => return Err(e),
            }
        }
        match unlinkat(dir, cpath(&path), AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => continue,
            Err(Errno::ISDIR) | Err(Errno::PERM) => {}
            Err(e) => return Err(e),
        }
        stack.push((path.clone(), true));
        let sub = open_dir(dir, &path)?;
        for (child, _) in children(sub.as_fd())? {
            match unlinkat(&sub, cpath(&child), AtFlags::empty()) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(Errno::ISDIR) | Err(Errno::PERM) => stack.push((join(&path, &child), false)),
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// `parent/name` (`name` alone when `parent` is empty).
fn join(parent: &[u8], name: &[u8]) -> Vec<u8> {
    let mut path = Vec::with_capacity(parent.len() + 1 + name.len());
    path.extend_from_slice(parent);
    if !path.is_empty() {
        path.push(b'/');
    }
    path.extend_from_slice(name);
    path
}

fn open_dir(dir: BorrowedFd<'_>, name: &[u8]) -> Result<OwnedFd, Errno> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    openat(dir, cpath(name), flags, Mode::empty())
}

/// The names in `dir` (without `.` and `..`), and whether each is a directory.
fn children(dir: BorrowedFd<'_>) -> Result<Vec<(Vec<u8>, bool)>, Errno> {
    let mut names = Vec::new();
    for entry in Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push((name.to_vec(), entry.file_type() == FileType::Directory));
        }
    }
    Ok(names)
}

/// The paths a layer wrote, and their parents, as a tree of components:
/// memory in proportion to the distinct components, not to every prefix of
/// every name (a name of 4 KiB in 251 components would otherwise store
/// ~500 KiB of prefixes).
#[derive(Default)]
pub(crate) struct LayerPaths {
    /// (parent node, component) -> node; the root is node 0.
    nodes: HashMap<(u32, Box<[u8]>), u32>,
}

impl LayerPaths {
    /// Records `path` (normalised) and its parents.
    pub(crate) fn insert(&mut self, path: &[u8]) {
        let mut node = 0;
        for component in path.split(|b| *b == b'/') {
            let next = self.nodes.len() as u32 + 1;
            node = *self.nodes.entry((node, component.into())).or_insert(next);
        }
    }

    /// Whether `path` (normalised) or a path below it was recorded.
    pub(crate) fn contains(&self, path: &[u8]) -> bool {
        let mut node = 0;
        for component in path.split(|b| *b == b'/') {
            match self.nodes.get(&(node, component.into())) {
                Some(next) => node = *next,
                None => return false,
            }
        }
        true
    }
}

/// Makes the directory at `path` (normalised, below the root; open as `dir`)
/// opaque: removes every path under it that this layer did not write
/// (`layer_paths` holds every path the layer wrote, and their parents). Like
/// [`remove_all`], one directory open at a time.
pub(crate) fn make_opaque(
    dir: BorrowedFd<'_>,
    path: &[u8],
    layer_paths: &LayerPaths,
) -> Result<(), Errno> {
    // Paths from `dir` of directories this layer wrote, still to be looked at.
    let mut pending = vec![Vec::new()];
    while let Some(relative) = pending.pop() {
        let sub = match relative.is_empty() {
            true => None,
            false => Some(open_dir(dir, &relative)?),
        };
        let here = sub.as_ref().map_or(dir, |s| s.as_fd());
        for (name, is_dir) in children(here)? {
            let inner = join(&relative, &name);
            if !layer_paths.contains(&join(path, &inner)) {
                remove_all(dir, &inner)?;
            } else if is_dir {
                // Written by this layer, but it may hold older content.
                pending.push(inner);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whiteout_names() {
        assert_eq!(classify(b"file"), Whiteout::None);
        assert_eq!(classify(b".wh.file"), Whiteout::Remove(b"file"));
        assert_eq!(classify(b".wh..hidden"), Whiteout::Remove(b".hidden"));
        assert_eq!(classify(b".wh..wh..opq"), Whiteout::Opaque);
        assert_eq!(classify(b".wh..wh.plnk"), Whiteout::Ignored);
        assert_eq!(classify(b".wh."), Whiteout::Malformed);
        assert_eq!(classify(b".wh.."), Whiteout::Malformed);
        assert_eq!(classify(b".wh..."), Whiteout::Malformed);
        assert_eq!(classify(b"x.wh.y"), Whiteout::None);
    }

    #[test]
    fn layer_paths_hold_paths_and_their_parents() {
        let mut paths = LayerPaths::default();
        paths.insert(b"a/b/c");
        paths.insert(b"a/x");
        for yes in [&b"a"[..], b"a/b", b"a/b/c", b"a/x"] {
            assert!(paths.contains(yes), "{}", String::from_utf8_lossy(yes));
        }
        for no in [&b"b"[..], b"a/c", b"a/b/c/d", b"a/bb", b"b/c"] {
            assert!(!paths.contains(no), "{}", String::from_utf8_lossy(no));
        }
    }

    #[test]
    fn whiteout_names_are_read_after_cleaning() {
        assert_eq!(
            classify_entry(b"etc/.wh.passwd"),
            Whiteout::Remove(b"passwd")
        );
        assert_eq!(
            classify_entry(b"etc/.wh.passwd/."),
            Whiteout::Remove(b"passwd")
        );
        assert_eq!(
            classify_entry(b"etc/.wh.passwd/./"),
            Whiteout::Remove(b"passwd")
        );
        assert_eq!(classify_entry(b"./etc//.wh..wh..opq/."), Whiteout::Opaque);
        assert_eq!(classify_entry(b"etc/.wh.x/y"), Whiteout::None);
        assert_eq!(classify_entry(b"./"), Whiteout::None);
    }
}
