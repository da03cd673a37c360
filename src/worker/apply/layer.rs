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

use std::collections::HashSet;
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
pub(crate) fn remove_all(dir: BorrowedFd<'_>, name: &[u8]) -> Result<(), Errno> {
    match unlinkat(dir, cpath(name), AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(Errno::ISDIR) | Err(Errno::PERM) => {
            let sub = open_dir(dir, name)?;
            empty_dir(sub.as_fd())?;
            unlinkat(dir, cpath(name), AtFlags::REMOVEDIR)
        }
        Err(e) => Err(e),
    }
}

fn open_dir(dir: BorrowedFd<'_>, name: &[u8]) -> Result<OwnedFd, Errno> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    openat(dir, cpath(name), flags, Mode::empty())
}

/// Removes every child of `dir`, recursively.
fn empty_dir(dir: BorrowedFd<'_>) -> Result<(), Errno> {
    for name in children(dir)?.into_iter().map(|(name, _)| name) {
        remove_all(dir, &name)?;
    }
    Ok(())
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

/// Makes the directory at `path` (normalised, below the root) opaque: removes
/// every path under it that this layer did not write (`layer_paths` holds every
/// path the layer wrote, and their parents).
pub(crate) fn make_opaque(
    dir: BorrowedFd<'_>,
    path: &[u8],
    layer_paths: &HashSet<Vec<u8>>,
) -> Result<(), Errno> {
    for (name, is_dir) in children(dir)? {
        let mut child = path.to_vec();
        if !child.is_empty() {
            child.push(b'/');
        }
        child.extend_from_slice(&name);
        if !layer_paths.contains(&child) {
            remove_all(dir, &name)?;
        } else if is_dir {
            // Written by this layer, but it may hold older content.
            let sub = open_dir(dir, &name)?;
            make_opaque(sub.as_fd(), &child, layer_paths)?;
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
    fn whiteout_names_are_read_after_cleaning() {
        assert_eq!(classify_entry(b"etc/.wh.passwd"), Whiteout::Remove(b"passwd"));
        assert_eq!(classify_entry(b"etc/.wh.passwd/."), Whiteout::Remove(b"passwd"));
        assert_eq!(classify_entry(b"etc/.wh.passwd/./"), Whiteout::Remove(b"passwd"));
        assert_eq!(classify_entry(b"./etc//.wh..wh..opq/."), Whiteout::Opaque);
        assert_eq!(classify_entry(b"etc/.wh.x/y"), Whiteout::None);
        assert_eq!(classify_entry(b"./"), Whiteout::None);
    }
}
