//! Mounts: the attributes the `rustix` crate does not wrap, and the clone of
//! a destination's mount that a privileged caller hands its worker.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use rustix::fs::CWD;
use rustix::mount::{open_tree, OpenTreeFlags};

/// `struct mount_attr` (linux/mount.h).
#[repr(C)]
#[derive(Default)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `MOUNT_ATTR_RDONLY`.
const MOUNT_ATTR_RDONLY: u64 = 0x1;
/// `MS_PRIVATE`, as `mount_attr.propagation`.
const MS_PRIVATE: u64 = 1 << 18;

/// Makes the mount `tree` (a clone from `open_tree`, not yet attached) read-only,
/// leaving its other attributes as they are (`mount_setattr`, Linux 5.12).
pub(crate) fn make_read_only(tree: BorrowedFd<'_>) -> io::Result<()> {
    set_attributes(
        tree,
        &MountAttr {
            attr_set: MOUNT_ATTR_RDONLY,
            ..MountAttr::default()
        },
    )
}

fn set_attributes(tree: BorrowedFd<'_>, attr: &MountAttr) -> io::Result<()> {
    // SAFETY: the path is a NUL-terminated empty string; `attr` is a valid
    // `struct mount_attr` of the size passed, and outlives the call, which only
    // reads it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    match ret {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

/// A detached clone of the mount under `dir`, rooted at `dir` itself and
/// without the mounts below it (`open_tree(OPEN_TREE_CLONE)` of the
/// descriptor: no path is resolved again), private (nothing mounted on
/// either side later reaches the other) and read-only if `read_only`. The
/// caller makes it (with `CAP_SYS_ADMIN` over its mount namespace) for a
/// worker that waits in an empty root, which attaches it as its own.
pub(crate) fn clone_for_worker(dir: BorrowedFd<'_>, read_only: bool) -> io::Result<OwnedFd> {
    let tree = open_tree(
        dir,
        "",
        OpenTreeFlags::OPEN_TREE_CLONE
            | OpenTreeFlags::OPEN_TREE_CLOEXEC
            | OpenTreeFlags::AT_EMPTY_PATH,
    )?;
    let attr = MountAttr {
        attr_set: if read_only { MOUNT_ATTR_RDONLY } else { 0 },
        propagation: MS_PRIVATE,
        ..MountAttr::default()
    };
    set_attributes(tree.as_fd(), &attr)?;
    Ok(tree)
}

/// Whether this process may clone mounts of its mount namespace (the
/// zygote asks once, for its caller: root in the namespace's owner).
pub(crate) fn may_clone_mounts() -> bool {
    open_tree(
        CWD,
        "/",
        OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
    )
    .is_ok()
}
