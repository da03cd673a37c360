//! Processes: forking workers (zygote), entering a user namespace (zygote),
//! ending at once (zygote and worker), and reading one's own capabilities.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

use super::startup::SingleThreaded;

/// The result of [`clone_worker`].
pub(crate) enum Forked {
    /// We are the new worker, single-threaded like the zygote it was forked from.
    Child(SingleThreaded),
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
/// for it through its pidfd), in a new mount namespace (`CLONE_NEWNS`) and a new
/// PID namespace (`CLONE_NEWPID`: the worker is its pid 1 and can name no
/// process outside it, so it can signal none, whatever system call it finds),
/// with a pidfd returned to us (`CLONE_PIDFD`) to hand to the caller.
///
/// Only a single-threaded process may fork and go on running arbitrary code in
/// the child: `single` proves the caller is the zygote.
pub(crate) fn clone_worker(single: &SingleThreaded) -> io::Result<Forked> {
    let _ = single;
    let mut pidfd: libc::c_int = -1;
    let args = CloneArgs {
        flags: (libc::CLONE_PARENT | libc::CLONE_PIDFD | libc::CLONE_NEWNS | libc::CLONE_NEWPID)
            as u64,
        pidfd: &mut pidfd as *mut libc::c_int as u64,
        // With CLONE_PARENT the exit signal must be 0; the kernel copies ours.
        exit_signal: 0,
        ..CloneArgs::default()
    };
    // SAFETY: clone3 with no stack behaves like fork; `args` and `pidfd` outlive the
    // call; `single` proves we are single-threaded, so the child's copy of the
    // address space holds no lock another thread owned.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match ret {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child(SingleThreaded::forked())),
        pid => Ok(Forked::Parent {
            pid: pid as u32,
            // SAFETY: on success the kernel stored a new, owned descriptor in `pidfd`.
            pidfd: unsafe { OwnedFd::from_raw_fd(pidfd) },
        }),
    }
}

/// Enters a new user namespace. The kernel refuses it (`EINVAL`) in a
/// multi-threaded process; `single` proves the caller is the zygote.
pub(crate) fn unshare_user_namespace(single: &SingleThreaded) -> io::Result<()> {
    let _ = single;
    // SAFETY: unshare is unsafe only for flags that split state Rust relies on
    // (CLONE_FILES, CLONE_FS); this unshares only the user namespace.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWUSER) }?;
    Ok(())
}

/// Ends the process at once, without running destructors or `atexit` handlers.
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` has no preconditions.
    unsafe { libc::_exit(code) }
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
