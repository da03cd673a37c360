//! The worker's descriptor table: nothing of the zygote's or the caller's.
//!
//! Closing or replacing descriptors is sound only where no Rust object owns
//! them; that holds in one place, the child branch of
//! [`clone_worker`](super::clone_worker), which is why these functions are
//! private to `sys` and called only from there.

use std::io;
use std::os::fd::BorrowedFd;

/// Leaves the new worker with `keep` and fresh standard streams. A compromised
/// worker must not find the zygote's control socket (it could ask for more
/// workers) nor a host node on its standard streams.
/// The error is the reason to report.
pub(super) fn isolate(keep: BorrowedFd<'_>) -> Result<(), String> {
    close_other_fds(keep)
        .map_err(|e| format!("close_range failed: {e} (Linux 5.9 or later is needed)"))?;
    replace_stdio_with_pipes()
        .map_err(|e| format!("replacing standard input and output failed: {e}"))
}

/// Keeps `keep` and the standard descriptors, closes everything else.
fn close_other_fds(keep: BorrowedFd<'_>) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let keep = keep.as_raw_fd() as libc::c_uint;
    let close_range = |first: libc::c_uint, last: libc::c_uint| {
        // SAFETY: close_range only closes descriptors; in the new worker (the one
        // caller, see the module docs) no Rust object owns the ones closed here.
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

/// Points the standard descriptors at two fresh pipes, nothing of the host's:
/// standard input at an empty pipe whose writer is gone (reads see end of
/// file), output and error at a pipe whose reader is gone (writes fail with
/// `EPIPE`; the zygote ignores `SIGPIPE`). The zygote's standard input is its
/// control socket, which a worker must not keep; and a host node such as
/// `/dev/null`, open for writing, would let a compromised worker change it
/// (`fchmod` as root). Panics and errors travel on the job socket instead.
fn replace_stdio_with_pipes() -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let (input, writer) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    drop(writer);
    let (reader, output) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    drop(reader);
    for (from, to) in [(&input, 0), (&output, 1), (&output, 2)] {
        // SAFETY: dup2 onto a standard descriptor replaces it atomically; no Rust
        // object of the worker owns descriptors 0 to 2 (the zygote only borrows
        // its control socket at 0, and the worker never uses that borrow).
        if unsafe { libc::dup2(from.as_raw_fd(), to) } == -1 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}
