//! Confinement: the worker's root becomes the destination.
//!
//! Sequence (checked on Linux 6.18 as root and in a user namespace):
//! `open_tree(path, OPEN_TREE_CLONE)` makes a non-recursive clone of the
//! destination's mount (mounts below it stay invisible); its `(st_dev, st_ino)`
//! must equal the caller's descriptor's, or someone swapped a path component;
//! `move_mount` attaches the clone over the path; `fchdir` into it;
//! `pivot_root(".", ".")` stacks the old root on top; `umount2(".", MNT_DETACH)`
//! drops it; `chdir("/")`. Afterwards `/` is the destination and nothing else,
//! not even `/proc`.
//!
//! Where `pivot_root` is impossible (an initramfs root, where it fails with
//! `EINVAL`), the worker falls back to `chroot(".")` into the clone; the rest of
//! the mount namespace is then still mapped but unreachable by path.

use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{fstat, CWD};
use rustix::io::Errno;
use rustix::mount::{
    mount_change, move_mount, open_tree, unmount, MountPropagationFlags, MoveMountFlags,
    OpenTreeFlags, UnmountFlags,
};
use rustix::process::{chdir, chroot, fchdir, pivot_root};

/// Why confinement failed.
pub(crate) enum ConfineError {
    /// The path no longer leads to the caller's directory (or does not exist in
    /// this worker's view of the mounts).
    Changed,
    /// A system call failed.
    Failed(String),
}

fn failed(call: &str, e: Errno) -> ConfineError {
    ConfineError::Failed(format!("{call} failed: {e}"))
}

/// Destination-independent set-up, done while the worker is warm: make every
/// mount a slave, so nothing the worker mounts propagates to the host while the
/// host's unmounts still reach the worker's copies.
pub(crate) fn prepare() -> Result<(), String> {
    mount_change(
        "/",
        MountPropagationFlags::DOWNSTREAM | MountPropagationFlags::REC,
    )
    .map_err(|e| format!("making / a recursive slave mount failed: {e}"))
}

/// Makes the destination the root of this process. `dest_fd` is the caller's
/// descriptor, the identity the mounted clone must match. `read_only`: the
/// clone is mounted read-only (a listing job), so no write reaches the
/// destination whatever the worker does.
pub(crate) fn enter(dest: &[u8], dest_fd: OwnedFd, read_only: bool) -> Result<(), ConfineError> {
    let path = Path::new(OsStr::from_bytes(dest));
    let tree = open_tree(
        CWD,
        path,
        OpenTreeFlags::OPEN_TREE_CLONE
            | OpenTreeFlags::OPEN_TREE_CLOEXEC
            | OpenTreeFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(|e| match e {
        Errno::NOENT | Errno::NOTDIR | Errno::LOOP => ConfineError::Changed,
        e => failed("open_tree(OPEN_TREE_CLONE)", e),
    })?;
    let ours = fstat(&tree).map_err(|e| failed("fstat", e))?;
    let theirs = fstat(&dest_fd).map_err(|e| failed("fstat", e))?;
    if (ours.st_dev, ours.st_ino) != (theirs.st_dev, theirs.st_ino) {
        return Err(ConfineError::Changed);
    }
    drop(dest_fd);
    if read_only {
        crate::sys::mounts::make_read_only(tree.as_fd()).map_err(|e| {
            ConfineError::Failed(format!("mount_setattr(MOUNT_ATTR_RDONLY) failed: {e}"))
        })?;
    }
    move_mount(
        &tree,
        "",
        CWD,
        path,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|e| failed("move_mount", e))?;
    fchdir(&tree).map_err(|e| failed("fchdir", e))?;
    match pivot_root(".", ".") {
        Ok(()) => {
            unmount(".", UnmountFlags::DETACH).map_err(|e| failed("umount2(MNT_DETACH)", e))?;
        }
        // An initramfs (rootfs) root cannot be pivoted away from.
        Err(Errno::INVAL) => chroot(".").map_err(|e| failed("chroot (pivot_root fallback)", e))?,
        Err(e) => return Err(failed("pivot_root", e)),
    }
    chdir("/").map_err(|e| failed("chdir(/)", e))?;
    Ok(())
}
