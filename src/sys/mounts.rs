//! Mount attributes the `rustix` crate does not wrap (the worker).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

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

/// Makes the mount `tree` (a clone from `open_tree`, not yet attached) read-only,
/// leaving its other attributes as they are (`mount_setattr`, Linux 5.12).
pub(crate) fn make_read_only(tree: BorrowedFd<'_>) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
        ..MountAttr::default()
    };
    // SAFETY: the path is a NUL-terminated empty string; `attr` is a valid
    // `struct mount_attr` of the size passed, and outlives the call, which only
    // reads it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    match ret {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}
