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

/// `MOUNT_ATTR_*` (linux/mount.h).
const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;
const MOUNT_ATTR_NOEXEC: u64 = 0x8;
/// `MS_PRIVATE`, as `mount_attr.propagation`.
const MS_PRIVATE: u64 = 1 << 18;

/// What a worker's clone of the destination's mount always is: no device
/// node opens through it (the destination may hold one, or the worker make
/// one, that names a host disk), and nothing executes from it, set-id or
/// not. Only this mount: the host's mount of the same directory keeps its
/// attributes. Device nodes can still be made (`mknod` ignores `nodev`).
const WORKER_ATTRS: u64 = MOUNT_ATTR_NODEV | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC;

/// The attributes of a worker's clone: [`WORKER_ATTRS`], read-only too if
/// `read_only`.
fn worker_attrs(read_only: bool) -> u64 {
    match read_only {
        true => WORKER_ATTRS | MOUNT_ATTR_RDONLY,
        false => WORKER_ATTRS,
    }
}

/// Gives the mount `tree` (a clone from `open_tree`, not yet attached) the
/// attributes of a worker's clone, leaving its others as they are
/// (`mount_setattr`, Linux 5.12). Allowed in a user namespace too: it only
/// adds restrictions.
pub(crate) fn restrict_for_worker(tree: BorrowedFd<'_>, read_only: bool) -> io::Result<()> {
    set_attributes(
        tree,
        &MountAttr {
            attr_set: worker_attrs(read_only),
            ..MountAttr::default()
        },
    )
}

/// The `struct mount_attr` of a worker's clone (read-write), and its size,
/// for the namespace probe's child, which may not allocate: a pointer to a
/// value that lives as long as the process.
pub(crate) fn probe_attributes() -> (*const libc::c_void, usize) {
    static ATTR: MountAttr = MountAttr {
        attr_set: WORKER_ATTRS,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    (
        &ATTR as *const MountAttr as *const libc::c_void,
        std::mem::size_of::<MountAttr>(),
    )
}

/// Whether the mount of `dir` (attached or not) has the attributes of a worker's
/// clone: the worker checks the clone its caller made before it enters it.
pub(crate) fn is_restricted_for_worker(dir: BorrowedFd<'_>, read_only: bool) -> io::Result<bool> {
    use rustix::fs::StatVfsMountFlags as F;
    let mut wanted = F::NODEV | F::NOSUID | F::NOEXEC;
    if read_only {
        wanted |= F::RDONLY;
    }
    Ok(rustix::fs::fstatvfs(dir)?.f_flag.contains(wanted))
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
/// either side later reaches the other), restricted as [`WORKER_ATTRS`]
/// says, and read-only if `read_only`. The
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
        attr_set: worker_attrs(read_only),
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
