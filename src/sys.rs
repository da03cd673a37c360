//! The few system calls that need `unsafe` or byte-level care, fenced here.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd};

use rustix::net::{
    recvmsg, sendmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags,
    SendAncillaryBuffer, SendAncillaryMessage, SendFlags,
};

/// The result of [`clone_worker`].
pub(crate) enum Forked {
    /// We are the new worker.
    Child,
    /// We are the zygote; the worker is a child of *our parent* (the caller).
    Parent { pid: u32, pidfd: OwnedFd },
}

#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
}

/// Forks a worker: a child of our parent (`CLONE_PARENT`, so the caller can wait
/// for it through its pidfd), in a new mount namespace (`CLONE_NEWNS`), with a
/// pidfd returned to us (`CLONE_PIDFD`) to hand to the caller.
///
/// # Safety
/// The calling process must be single-threaded (the zygote): the child continues
/// with a copy of this one thread and runs arbitrary code.
pub(crate) unsafe fn clone_worker() -> io::Result<Forked> {
    let mut pidfd: libc::c_int = -1;
    let args = CloneArgs {
        flags: (libc::CLONE_PARENT | libc::CLONE_PIDFD | libc::CLONE_NEWNS) as u64,
        pidfd: &mut pidfd as *mut libc::c_int as u64,
        // With CLONE_PARENT the exit signal must be 0; the kernel copies ours.
        exit_signal: 0,
        ..CloneArgs::default()
    };
    // SAFETY: clone3 with no stack behaves like fork; `args` and `pidfd` outlive the
    // call; the caller guarantees we are single-threaded, so the child's copy of
    // the address space holds no lock another thread owned.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match ret {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent {
            pid: pid as u32,
            // SAFETY: on success the kernel stored a new, owned descriptor in `pidfd`.
            pidfd: unsafe { OwnedFd::from_raw_fd(pidfd) },
        }),
    }
}

/// Makes writes to a closed socket return `EPIPE` instead of killing the process.
/// The zygote runs before Rust's runtime would have done this.
pub(crate) fn ignore_sigpipe() {
    // SAFETY: installing SIG_IGN for SIGPIPE has no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

/// Sends `data` with `fds` attached (`SCM_RIGHTS`).
pub(crate) fn send_with_fds(
    sock: BorrowedFd<'_>,
    data: &[u8],
    fds: &[BorrowedFd<'_>],
) -> io::Result<usize> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2))];
    let mut cmsg = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !cmsg.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "too many descriptors",
        ));
    }
    Ok(sendmsg(
        sock,
        &[IoSlice::new(data)],
        &mut cmsg,
        SendFlags::NOSIGNAL,
    )?)
}

/// Receives one message into `buf` with up to two attached descriptors.
/// Returns the byte count (0 at end of stream) and the descriptors.
pub(crate) fn recv_with_fds(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2))];
    let mut cmsg = RecvAncillaryBuffer::new(&mut space);
    let msg = recvmsg(
        sock,
        &mut [IoSliceMut::new(buf)],
        &mut cmsg,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    let mut fds = Vec::new();
    for m in cmsg.drain() {
        if let RecvAncillaryMessage::ScmRights(rights) = m {
            fds.extend(rights);
        }
    }
    if msg.flags.contains(ReturnFlags::CTRUNC) || msg.flags.contains(ReturnFlags::TRUNC) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "truncated message",
        ));
    }
    Ok((msg.bytes, fds))
}

/// `true` if `fd` is a Unix `SOCK_SEQPACKET` socket (how the zygote recognises its
/// control channel on standard input).
pub(crate) fn is_seqpacket_socket(fd: BorrowedFd<'_>) -> bool {
    matches!(
        rustix::net::sockopt::socket_type(fd),
        Ok(t) if t == rustix::net::SocketType::SEQPACKET
    )
}

/// Reads an environment variable without touching Rust's `std::env` (usable before
/// `main`, when the runtime has not been set up).
pub(crate) fn env_is_set(name: &std::ffi::CStr) -> bool {
    // SAFETY: `name` is NUL-terminated; before main no other thread can be
    // modifying the environment.
    unsafe { !libc::getenv(name.as_ptr()).is_null() }
}

/// Removes an environment variable (see [`env_is_set`]).
pub(crate) fn env_remove(name: &std::ffi::CStr) {
    // SAFETY: as for `env_is_set`; single-threaded before main.
    unsafe {
        libc::unsetenv(name.as_ptr());
    }
}

/// Ends the process at once, without running destructors or `atexit` handlers.
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` has no preconditions.
    unsafe { libc::_exit(code) }
}

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

/// The calling thread's capability: does it hold `CAP_SYS_ADMIN` in its user namespace?
pub(crate) fn has_cap_sys_admin() -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << 21) != 0)
}

/// The login name and primary group of `uid` (through NSS, as `newuidmap`
/// looks them up), if any. Only for the caller's process: NSS may load libraries.
pub(crate) fn user_entry(uid: u32) -> Option<(String, u32)> {
    let mut buf = vec![0u8; 4096];
    loop {
        // SAFETY: an all-zero passwd is a valid value (null pointers, zero ids);
        // getpwuid_r fills it with pointers into `buf`, which outlives their use.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the sizes given; getpwuid_r is thread-safe.
        let rc = unsafe {
            libc::getpwuid_r(
                uid,
                &mut pwd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
            return None;
        }
        // SAFETY: on success pw_name points to a NUL-terminated string in `buf`.
        let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
        return Some((name.to_string_lossy().into_owned(), pwd.pw_gid));
    }
}

/// Borrows a raw descriptor number that the process is known to have open.
pub(crate) fn borrow_raw(fd: i32) -> BorrowedFd<'static> {
    // SAFETY: callers pass descriptors that stay open for the process's life
    // (standard input in the zygote).
    unsafe { BorrowedFd::borrow_raw(fd) }
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

/// Registers an owned descriptor with tokio's reactor.
pub(crate) fn async_fd(
    fd: OwnedFd,
    interest: tokio::io::Interest,
) -> io::Result<tokio::io::unix::AsyncFd<OwnedFd>> {
    // SAFETY: an `OwnedFd` keeps its descriptor open, always the same one, until
    // it is dropped, which the `AsyncFd` does only when it is dropped itself.
    unsafe { tokio::io::unix::AsyncFd::register_with_interest(fd, interest) }.map_err(|e| e.into())
}
