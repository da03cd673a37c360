//! The worker's descriptor table: nothing of the zygote's or the caller's.

use std::io;
use std::os::fd::BorrowedFd;

/// Keeps `fd` and the standard descriptors, closes everything else.
pub(crate) fn close_other_fds(keep: BorrowedFd<'_>) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let keep = keep.as_raw_fd() as libc::c_uint;
    let close_range = |first: libc::c_uint, last: libc::c_uint| {
        // SAFETY: close_range only closes descriptors; nothing in this
        // single-threaded process owns the ones closed here any more (the callers
        // dropped their handles first or never created any).
        match unsafe { libc::syscall(libc::SYS_close_range, first, last, 0u32) } {
            0 => Ok(()),
            _ => Err(io::Error::last_os_error()),
        }
    };
    if keep > 3 {
        close_range(3, keep - 1)?;
    }
    close_range(keep + 1, u32::MAX)
}

/// Points the standard descriptors at `/dev/null`: the zygote's standard input is
/// its control socket, and the caller's output and error streams are not the
/// worker's to write (panics and errors travel on the job socket instead).
pub(crate) fn replace_stdio_with_null() {
    use std::os::fd::AsRawFd;
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        // SAFETY: dup2 onto the standard descriptors, which no Rust object owns here.
        unsafe {
            libc::dup2(null.as_raw_fd(), 0);
            libc::dup2(null.as_raw_fd(), 1);
            libc::dup2(null.as_raw_fd(), 2);
        }
    }
}
