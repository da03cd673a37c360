//! Processes: forking workers (zygote), entering a user namespace (zygote),
//! ending at once (zygote and worker), and reading one's own capabilities.

use std::io;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};

use super::startup::SingleThreaded;

/// The result of [`clone_worker`].
pub(crate) enum Forked {
    /// We are the new worker, single-threaded like the zygote it was forked
    /// from, holding its end of the job socket and nothing of the zygote's.
    Child(WorkerStart),
    /// We are the zygote; the worker is a child of *our parent* (the caller).
    /// `socket` is the driver's end of the job socket.
    Parent {
        pid: u32,
        pidfd: OwnedFd,
        socket: OwnedFd,
    },
}

/// What a new worker starts with.
pub(crate) struct WorkerStart {
    /// The worker's end of the job socket.
    pub(crate) socket: OwnedFd,
    /// Whether its descriptor table was emptied of the zygote's descriptors and
    /// its standard streams replaced; the worker reports a failure on `socket`
    /// and ends (the error is the reason to report).
    pub(crate) isolated: Result<(), String>,
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
/// with a pidfd returned to us (`CLONE_PIDFD`) to hand to the caller. Without
/// `namespaces` (the Landlock rung) neither namespace is asked for.
///
/// `driver_end` and `worker_end` are the two ends of the job socket: the child
/// keeps only `worker_end` (every other descriptor closed, fresh standard
/// streams), the zygote only `driver_end`.
///
/// Only a single-threaded process may fork and go on running arbitrary code in
/// the child: `single` proves the caller is the zygote.
pub(crate) fn clone_worker(
    single: &SingleThreaded,
    driver_end: OwnedFd,
    worker_end: OwnedFd,
    namespaces: bool,
) -> io::Result<Forked> {
    let _ = single;
    let mut pidfd: libc::c_int = -1;
    let mut flags = libc::CLONE_PARENT | libc::CLONE_PIDFD;
    if namespaces {
        flags |= libc::CLONE_NEWNS | libc::CLONE_NEWPID;
    }
    let ret = match fork_with(flags, &mut pidfd) {
        // clone3 refused as unknown (a container's seccomp profile answers
        // ENOSYS so that libc falls back): clone does the same here.
        -1 if io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) => {
            fork_with_clone(flags, &mut pidfd)
        }
        ret => ret,
    };
    match ret {
        -1 => Err(io::Error::last_os_error()),
        0 => {
            drop(driver_end);
            die_with_caller();
            // The child's only owned descriptor is now `worker_end`: the zygote
            // owns nothing else, and fd 0, its control socket, is only borrowed
            // by `zygote::serve`, which the worker never returns to.
            let isolated = super::fds::isolate(worker_end.as_fd());
            Ok(Forked::Child(WorkerStart {
                socket: worker_end,
                isolated,
            }))
        }
        pid => {
            drop(worker_end);
            Ok(Forked::Parent {
                pid: pid as u32,
                // SAFETY: on success the kernel stored a new, owned descriptor in `pidfd`.
                pidfd: unsafe { OwnedFd::from_raw_fd(pidfd) },
                socket: driver_end,
            })
        }
    }
}

/// In a new worker: asks the kernel for SIGKILL when its parent, the caller's
/// thread that forked the zygote (`CLONE_PARENT`), ends, so that a worker
/// cannot outlive the caller's process whatever its job made it do. Its PID
/// namespace hides who the parent is (`getppid` says 0), so there is no check
/// after it as in the zygote; none is needed: a worker forked as the caller
/// dies never gets a job. The other end of its job socket is on its way to
/// the caller, and closes when the caller's control socket does, so the
/// worker reads the end of the stream where it waits for its job, and exits.
fn die_with_caller() {
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
}

/// `clone3` without a stack (a fork) with `flags`, the pidfd stored in
/// `pidfd`; returns what the system call returned.
fn fork_with(flags: libc::c_int, pidfd: &mut libc::c_int) -> libc::c_long {
    let args = CloneArgs {
        flags: flags as u64,
        pidfd: pidfd as *mut libc::c_int as u64,
        // With CLONE_PARENT the exit signal must be 0; the kernel copies ours.
        exit_signal: 0,
        ..CloneArgs::default()
    };
    // SAFETY: clone3 with no stack behaves like fork; `args` and `pidfd` outlive the
    // call; the caller (`clone_worker`, given a `SingleThreaded` proof) is
    // single-threaded, so the child's copy of the address space holds no lock
    // another thread owned.
    unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    }
}

/// The same fork through the older `clone`: the exit signal in the flags' low
/// byte (0, as `CLONE_PARENT` wants), the pidfd stored at the parent-tid
/// argument (the third on x86_64 and aarch64 alike).
fn fork_with_clone(flags: libc::c_int, pidfd: &mut libc::c_int) -> libc::c_long {
    // SAFETY: as `fork_with`: no new stack (0: the child runs on a copy of
    // ours), `pidfd` outlives the call, single-threaded caller; no child tid
    // or TLS is asked for.
    unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags as libc::c_ulong,
            0usize,
            pidfd as *mut libc::c_int,
            0usize,
            0usize,
        )
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

/// Tries, in a short-lived child, what the namespace rung takes here: with
/// `user` (an ordinary user's uid), `unshare(CLONE_NEWUSER)` and mapping that
/// uid to 0; then `unshare(CLONE_NEWNS)` and making `/` a recursive slave
/// mount, as each worker will. Ubuntu 24.04's AppArmor restriction lets the
/// first `unshare` succeed and refuses the map; Docker's AppArmor profile
/// (`deny mount`) lets a container given `CAP_SYS_ADMIN` unshare and refuses
/// the mount. A child can fail where the zygote cannot afford to. `Err` says
/// which step failed and why.
pub(crate) fn probe_namespaces(single: &SingleThreaded, user: Option<u32>) -> Result<(), String> {
    let _ = single;
    let map = format!("0 {} 1\n", user.unwrap_or(0));
    let path = c"/proc/self/uid_map";
    let root = c"/";
    let empty = c"";
    let restrict = super::mounts::probe_attributes();
    // SAFETY: fork in a single-threaded process (`single`); the child makes
    // only async-signal-safe calls (unshare, open, write, mount,
    // mount_setattr, _exit) on data prepared before the fork.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // Exit code: the failed step times 40, plus its errno (39 if larger):
        // the five steps fit in the 8 bits of an exit code.
        let failed = |step: i32| {
            // SAFETY: reads this thread's errno.
            let errno = unsafe { *libc::__errno_location() };
            exit_now(step * 40 + errno.min(39))
        };
        // SAFETY: as above; the buffers outlive the calls.
        unsafe {
            if user.is_some() {
                if libc::unshare(libc::CLONE_NEWUSER) != 0 {
                    failed(0);
                }
                let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 || libc::write(fd, map.as_ptr().cast(), map.len()) < 0 {
                    failed(1);
                }
            }
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                failed(2);
            }
            let flags = libc::MS_REC | libc::MS_SLAVE;
            if libc::mount(
                std::ptr::null(),
                root.as_ptr(),
                std::ptr::null(),
                flags,
                std::ptr::null(),
            ) != 0
            {
                failed(3);
            }
            // Each job's clone of its destination is restricted (nodev,
            // nosuid, noexec) with `mount_setattr`: Linux 5.12, and allowed
            // by a container's seccomp profile. Asked of no mount (a clone
            // of `/` is refused here: it has locked mounts below), the call
            // says `EBADF` where it exists and is allowed.
            let (attr, size) = restrict;
            let set = libc::syscall(
                libc::SYS_mount_setattr,
                -1,
                empty.as_ptr(),
                libc::AT_EMPTY_PATH,
                attr,
                size,
            );
            if set != 0 && *libc::__errno_location() != libc::EBADF {
                failed(4);
            }
        }
        exit_now(0);
    }
    if pid < 0 {
        return Err(format!("fork failed: {}", io::Error::last_os_error()));
    }
    let pid = rustix::process::Pid::from_raw(pid).expect("a positive pid");
    let status = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty())
        .map_err(|e| format!("waiting for the probe failed: {e}"))?
        .and_then(|(_, status)| status.exit_status());
    let Some(code) = status else {
        return Err("the namespace probe died".into());
    };
    if code == 0 {
        return Ok(());
    }
    let step = [
        "unshare(CLONE_NEWUSER)",
        "writing uid_map in a new user namespace",
        "unshare(CLONE_NEWNS)",
        "making / a recursive slave mount in a new mount namespace",
        "mount_setattr (Linux 5.12)",
    ];
    let errno = match code % 40 {
        39 => "an error".to_string(),
        e => io::Error::from_raw_os_error(e).to_string(),
    };
    Err(format!(
        "{} failed: {errno}",
        step[(code / 40).min(4) as usize]
    ))
}

/// Ends the process at once, without running destructors or `atexit` handlers.
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` has no preconditions.
    unsafe { libc::_exit(code) }
}

/// Ignores `SIGPIPE` and `SIGXFSZ` (the zygote, before `main`'s runtime would
/// have; the workers inherit it): a write to a closed pipe or past
/// `RLIMIT_FSIZE` then fails with `EPIPE` or `EFBIG`, which the worker reports,
/// instead of killing it without a word.
pub(crate) fn ignore_write_signals() -> io::Result<()> {
    for signal in [libc::SIGPIPE, libc::SIGXFSZ] {
        // SAFETY: SIG_IGN installs no handler, so no code runs in signal context;
        // signal() only changes this process's disposition.
        if unsafe { libc::signal(signal, libc::SIG_IGN) } == libc::SIG_ERR {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The exit status of a worker stopped by its CPU-time limit (128 + `SIGXCPU`,
/// as a shell would show a death by that signal).
pub(crate) const EXIT_CPU_TIME: i32 = 128 + libc::SIGXCPU;

extern "C" fn exit_on_cpu_limit(_signal: libc::c_int) {
    // SAFETY: `_exit` is async-signal-safe and has no preconditions.
    unsafe { libc::_exit(EXIT_CPU_TIME) }
}

/// Makes `SIGXCPU` (`RLIMIT_CPU`'s soft limit) end the worker with
/// [`EXIT_CPU_TIME`]. A worker is pid 1 of its PID namespace, where the kernel
/// drops a signal left at its default action, so the soft limit would pass
/// unseen and only the hard limit's `SIGKILL` would end it, indistinguishable
/// from any other kill.
pub(crate) fn exit_on_cpu_time_limit() -> io::Result<()> {
    // SAFETY: the handler only calls `_exit`, which is async-signal-safe; it
    // touches no state of the interrupted code.
    let previous = unsafe {
        libc::signal(
            libc::SIGXCPU,
            exit_on_cpu_limit as extern "C" fn(libc::c_int) as libc::sighandler_t,
        )
    };
    match previous == libc::SIG_ERR {
        true => Err(io::Error::last_os_error()),
        false => Ok(()),
    }
}

/// The Landlock ABI version the kernel offers (`landlock_create_ruleset` with
/// `LANDLOCK_CREATE_RULESET_VERSION`), or the error: `ENOSYS` (not built in),
/// `EOPNOTSUPP` (disabled at boot), `EPERM` (refused by a seccomp filter).
pub(crate) fn landlock_abi() -> io::Result<u32> {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with the VERSION flag the kernel reads no attribute (null, size 0)
    // and only returns a number.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    match ret {
        -1 => Err(io::Error::last_os_error()),
        abi => Ok(abi as u32),
    }
}
