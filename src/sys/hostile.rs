//! Test-only attacker code, compiled into the worker only with
//! `RUSTFLAGS="--cfg sandtar_hostile"` (never in a normal build or the published
//! crate): what an archive that achieved code execution in a decoder could do.
//! `tests/containment.rs` runs it and asserts the kernel's refusals.
//!
//! The worker calls [`run`] right after its seccomp filter is installed, with `/`
//! the destination. It does nothing unless the destination holds a plan file,
//! [`PLAN`]: one attack per line, with arguments. Each attempted operation
//! appends a line to [`RESULTS`]: `NAME ok [detail]` or `NAME errno=N (ENAME)`.
//! Where the results file cannot be written (a read-only destination), the lines
//! are sent instead as a `Failed(Internal)` message starting with
//! [`RESULTS_MESSAGE`], lines separated by `"; "`, and the worker exits.
//! Nothing here panics: every failure is recorded. `after-done` and `done-*`
//! end the process themselves; the other attacks return and the worker goes on.

use std::ffi::CStr;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use crate::options::Compression;
use crate::wire::{encode_frame, WireError, WorkerMsg, WorkerTotals};

/// The plan, in the destination (the worker's working directory; relative
/// names work with and without `chroot`).
const PLAN: &str = ".sandtar-hostile";
/// The results, next to it.
const RESULTS: &str = ".sandtar-hostile-results";
/// Prefix of the fallback `Failed(Internal)` message that carries the results.
const RESULTS_MESSAGE: &str = "sandtar-hostile-results: ";

const GIB: i64 = 1 << 30;

// Not in the `libc` crate (linux/fcntl.h, asm-generic/fcntl.h).
const F_SETSIG: libc::c_int = 10;
const F_SETOWN_EX: libc::c_int = 15;
const F_OWNER_PID: libc::c_int = 1;
const DN_CREATE: libc::c_int = 0x4;

/// `struct f_owner_ex`.
#[repr(C)]
struct FOwnerEx {
    type_: libc::c_int,
    pid: libc::pid_t,
}

/// Runs the plan in `.sandtar-hostile`, if there is one.
pub(crate) fn run(socket: &UnixStream) {
    let Ok(plan) = std::fs::read_to_string(PLAN) else {
        return;
    };
    let mut out = Results::default();
    for line in plan.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some((&attack, args)) = words.split_first() else {
            continue;
        };
        let arg = |i: usize| args.get(i).copied().unwrap_or("");
        match attack {
            "signal" => signal(&mut out, arg(0)),
            "setid" => setid(&mut out),
            "after-done" => after_done(&mut out, socket),
            "close-socket" => close_socket(&mut out, socket),
            "done-no-digest" => done(&mut out, socket, None),
            "done-echo-digest" => done(&mut out, socket, Some(arg(0).to_string())),
            "environ" => environ(&mut out, arg(0), arg(1)),
            "mmap-shared" => mmap_shared(&mut out, arg(0)),
            "fsize" => fsize(&mut out),
            "stdio" => stdio(&mut out),
            "oob" => oob(&mut out, socket),
            "fcntl-misc" => fcntl_misc(&mut out),
            "write" => write(&mut out),
            "change" => change(&mut out, arg(0)),
            "moved-out" => moved_out(&mut out),
            "outside" => reach_through(&mut out, libc::AT_FDCWD, arg(0), "outside"),
            "output" => output(&mut out),
            "device" => device(&mut out, arg(0), arg(1), arg(2)),
            other => out.line(&format!("{other} unknown-attack")),
        }
    }
    out.end(socket);
}

/// The lines so far; appended to the results file one by one, so that a worker
/// killed in the middle of the plan leaves what it did before.
#[derive(Default)]
struct Results {
    lines: Vec<String>,
    /// The results file could not be written: send the lines at the end.
    unwritable: bool,
}

impl Results {
    fn line(&mut self, line: &str) {
        self.lines.push(line.to_string());
        if self.unwritable {
            return;
        }
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(RESULTS)
            .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
        if written.is_err() {
            self.unwritable = true;
        }
    }

    /// Records a raw system call's return value (`-1` and `errno` on failure).
    fn call(&mut self, name: &str, ret: i64) -> Option<i64> {
        self.call_with(name, ret, "")
    }

    fn call_with(&mut self, name: &str, ret: i64, detail: &str) -> Option<i64> {
        if ret < 0 {
            let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
            self.line(&format!("{name} errno={errno} ({})", errno_name(errno)));
            None
        } else {
            let sep = if detail.is_empty() { "" } else { " " };
            self.line(&format!("{name} ok{sep}{detail}"));
            Some(ret)
        }
    }

    /// After the plan: if the results file could not be written, send the
    /// lines to the caller instead and end the process.
    fn end(self, socket: &UnixStream) {
        if !self.unwritable {
            return;
        }
        let text = format!("{RESULTS_MESSAGE}{}", self.lines.join("; "));
        let frame = encode_frame(&WorkerMsg::Failed(WireError::Internal(text)));
        let _ = (&*socket).write_all(&frame);
        exit(0);
    }
}

fn exit(code: i32) -> ! {
    // SAFETY: _exit ends the process at once; nothing needs to run first.
    unsafe { libc::_exit(code) }
}

fn errno_name(errno: i32) -> &'static str {
    match errno {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ESPIPE => "ESPIPE",
        libc::ESRCH => "ESRCH",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::EMFILE => "EMFILE",
        libc::EFBIG => "EFBIG",
        libc::ENOSPC => "ENOSPC",
        libc::EROFS => "EROFS",
        libc::EPIPE => "EPIPE",
        libc::ENOSYS => "ENOSYS",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::ENOTSOCK => "ENOTSOCK",
        libc::ENOTCONN => "ENOTCONN",
        libc::EOVERFLOW => "EOVERFLOW",
        libc::ENXIO => "ENXIO",
        libc::EXDEV => "EXDEV",
        _ => "other",
    }
}

/// A path for the raw calls, NUL-terminated.
fn c(name: &str) -> std::ffi::CString {
    std::ffi::CString::new(name).unwrap_or_default()
}

fn close(fd: i64) {
    // SAFETY: `fd` was opened by this module and is not used after this.
    unsafe { libc::close(fd as i32) };
}

/// Opens (creating) a file in the destination for reading and writing.
fn create(out: &mut Results, name: &str, path: &CStr, mode: libc::mode_t) -> Option<i64> {
    // SAFETY: `path` is NUL-terminated; the descriptor is closed by the caller.
    let fd = unsafe {
        libc::openat(
            libc::AT_FDCWD,
            path.as_ptr(),
            libc::O_CREAT | libc::O_RDWR | libc::O_CLOEXEC,
            mode,
        )
    };
    out.call(name, i64::from(fd))
}

/// `signal PID`: every way to get a signal to an outside process.
fn signal(out: &mut Results, pid: &str) {
    let Ok(pid) = pid.parse::<libc::pid_t>() else {
        out.line(&format!("signal-{pid} bad-argument"));
        return;
    };
    // SAFETY: kill has no memory arguments.
    let r = unsafe { libc::kill(pid, libc::SIGKILL) };
    out.call(&format!("kill@{pid}"), i64::from(r));

    let fifo = c(&format!("hostile-fifo-{pid}"));
    // SAFETY: the path is NUL-terminated.
    let r = unsafe { libc::mknodat(libc::AT_FDCWD, fifo.as_ptr(), libc::S_IFIFO | 0o600, 0) };
    out.call(&format!("mknodat-fifo@{pid}"), i64::from(r));
    // SAFETY: the path is NUL-terminated.
    let fd = unsafe {
        libc::openat(
            libc::AT_FDCWD,
            fifo.as_ptr(),
            libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    if let Some(fd) = out.call(&format!("fifo-open@{pid}"), i64::from(fd)) {
        let fd = fd as i32;
        // SAFETY: fcntl on our own descriptor with integer arguments.
        let r = unsafe { libc::fcntl(fd, F_SETSIG, libc::SIGKILL) };
        out.call(&format!("F_SETSIG@{pid}"), i64::from(r));
        // SAFETY: as above.
        let r = unsafe { libc::fcntl(fd, libc::F_SETOWN, pid) };
        out.call(&format!("F_SETOWN@{pid}"), i64::from(r));
        let owner = FOwnerEx {
            type_: F_OWNER_PID,
            pid,
        };
        // SAFETY: `owner` is a valid f_owner_ex that outlives the call.
        let r = unsafe { libc::fcntl(fd, F_SETOWN_EX, &owner as *const FOwnerEx) };
        out.call(&format!("F_SETOWN_EX@{pid}"), i64::from(r));
        // SAFETY: fcntl with integer arguments.
        let r = unsafe { libc::fcntl(fd, libc::F_SETFL, libc::O_ASYNC | libc::O_NONBLOCK) };
        out.call(&format!("F_SETFL-O_ASYNC@{pid}"), i64::from(r));
        // SAFETY: one byte from a live buffer.
        let r = unsafe { libc::write(fd, b"!".as_ptr().cast(), 1) };
        out.call(&format!("fifo-write@{pid}"), r as i64);
        close(i64::from(fd));
    }
    // SAFETY: pidfd_open has no memory arguments.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if let Some(pidfd) = out.call(&format!("pidfd_open@{pid}"), r) {
        // SAFETY: our own pidfd; a null siginfo is allowed.
        let r = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                pidfd as i32,
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        out.call(&format!("pidfd_send_signal@{pid}"), r);
        close(pidfd);
    }
}

/// `setid`: every way to put a set-user-id, set-group-id or sticky bit on disk.
fn setid(out: &mut Results) {
    let p = c("setid-openat");
    // SAFETY: raw call with NUL-terminated paths, our own descriptors and live buffers.
    let fd = unsafe {
        libc::openat(
            libc::AT_FDCWD,
            p.as_ptr(),
            libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
            0o4755 as libc::c_uint,
        )
    };
    if let Some(fd) = out.call("setid-openat", i64::from(fd)) {
        close(fd);
    }

    let p = c("setid-fchmod");
    if let Some(fd) = create(out, "setid-fchmod-create", &p, 0o644) {
        // SAFETY: raw call with NUL-terminated paths, our own descriptors and live buffers.
        let r = unsafe { libc::fchmod(fd as i32, 0o6755) };
        out.call("setid-fchmod", i64::from(r));
        close(fd);
    }

    let p = c("setid-fchmodat");
    if let Some(fd) = create(out, "setid-fchmodat-create", &p, 0o644) {
        close(fd);
        // SAFETY: raw call with NUL-terminated paths, our own descriptors and live buffers.
        let r = unsafe { libc::fchmodat(libc::AT_FDCWD, p.as_ptr(), 0o4755, 0) };
        out.call("setid-fchmodat", i64::from(r));
    }

    let p = c("setid-fchmodat2");
    if let Some(fd) = create(out, "setid-fchmodat2-create", &p, 0o644) {
        close(fd);
        // SAFETY: raw call with NUL-terminated paths, our own descriptors and live buffers.
        let r = unsafe { libc::syscall(452, libc::AT_FDCWD, p.as_ptr(), 0o2755, 0) };
        out.call("setid-fchmodat2", r);
    }

    let p = c("setid-mkdirat-02777");
    // SAFETY: raw call with NUL-terminated paths, our own descriptors and live buffers.
    let r = unsafe { libc::mkdirat(libc::AT_FDCWD, p.as_ptr(), 0o2777) };
    out.call("setid-mkdirat-02777", i64::from(r));
    let p = c("setid-mkdirat-01777");
    // SAFETY: raw call with NUL-terminated paths, our own descriptors and live buffers.
    let r = unsafe { libc::mkdirat(libc::AT_FDCWD, p.as_ptr(), 0o1777) };
    out.call("setid-mkdirat-01777", i64::from(r));

    let p = c("setid-mknodat-fifo");
    // SAFETY: raw call with NUL-terminated paths, our own descriptors and live buffers.
    let r = unsafe { libc::mknodat(libc::AT_FDCWD, p.as_ptr(), libc::S_IFIFO | 0o4644, 0) };
    out.call("setid-mknodat-fifo", i64::from(r));

    /// `struct open_how` (linux/openat2.h).
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }
    let how = OpenHow {
        flags: (libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC) as u64,
        mode: 0o4755,
        resolve: 0,
    };
    let p = c("setid-openat2");
    // SAFETY: raw call with NUL-terminated paths, our own descriptors and live buffers.
    let r = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            libc::AT_FDCWD,
            p.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if let Some(fd) = out.call("setid-openat2", r) {
        close(fd);
    }
}

/// Reads the rest of the job socket (the archive) up to the caller's end, so
/// that a `Done` that follows looks like a worker that read everything.
fn drain(out: &mut Results, socket: &UnixStream) {
    let mut buf = [0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        match (&*socket).read(&mut buf) {
            Ok(0) => break,
            Ok(n) => total += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                out.line(&format!("drain failed={e:?}"));
                return;
            }
        }
    }
    out.line(&format!("drain ok bytes={total}"));
}

/// A `Done` frame, made by the worker's own encoder.
fn done_frame(diff_id: Option<String>) -> Vec<u8> {
    encode_frame(&WorkerMsg::Done(WorkerTotals {
        tar_bytes: 0,
        diff_id,
        layer_size: 0,
        compression: Compression::None,
    }))
}

fn send_done(out: &mut Results, socket: &UnixStream, diff_id: Option<String>) {
    drain(out, socket);
    match (&*socket).write_all(&done_frame(diff_id)) {
        Ok(()) => out.line("done-frame ok"),
        Err(e) => out.line(&format!("done-frame failed={e:?}")),
    }
}

/// `after-done`: say `Done`, then keep writing for three seconds.
fn after_done(out: &mut Results, socket: &UnixStream) {
    // A file that exists before `Done`, to be rewritten after it.
    let _ = std::fs::write("after-done-victim", b"before Done\n");
    send_done(out, socket, None);
    let start = Instant::now();
    let mut next = start;
    let mut created = 0u64;
    let mut failed = 0u64;
    while start.elapsed() < Duration::from_secs(3) {
        if Instant::now() < next {
            // No sleeping: nanosleep is not in the allow-list.
            // SAFETY: sched_yield has no arguments.
            unsafe { libc::sched_yield() };
            continue;
        }
        next += Duration::from_millis(10);
        let wrote = std::fs::write(format!("after-done-{created}"), b"after Done\n")
            .and_then(|()| std::fs::write("after-done-victim", format!("after Done {created}\n")));
        match wrote {
            Ok(()) => created += 1,
            Err(_) => failed += 1,
        }
    }
    out.line(&format!(
        "after-done-writes ok created={created} failed={failed}"
    ));
    exit(0)
}

/// `close-socket`: every way to close or shut down the job socket before the
/// process exits (the caller takes its end of file as proof that the worker's
/// threads are gone), and a duplicate of it closed, which is allowed.
fn close_socket(out: &mut Results, socket: &UnixStream) {
    let fd = socket.as_raw_fd();
    // SAFETY: plain descriptor calls; if one is let through, the socket is
    // gone and the results say so.
    let r = unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
    out.call("shutdown-socket", r.into());
    // SAFETY: as above (descriptor 0 is the worker's own standard input).
    let r = unsafe { libc::dup3(0, fd, 0) };
    out.call("dup3-over-socket", r.into());
    // SAFETY: as above.
    let r = unsafe { libc::syscall(libc::SYS_close_range, fd, fd, 0) };
    out.call("close-range-socket", r);
    // SAFETY: as above.
    let r = unsafe { libc::close(fd) };
    out.call("close-socket", r.into());
    // SAFETY: F_DUPFD_CLOEXEC takes an int; the duplicate is closed below.
    let copy = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if out.call("dup-socket", copy.into()).is_some() {
        // SAFETY: `copy` is the duplicate just made, used nowhere else.
        let r = unsafe { libc::close(copy) };
        out.call("close-duplicate", r.into());
    }
}

/// `done-no-digest` / `done-echo-digest VALUE`: a `Done` with this digest.
fn done(out: &mut Results, socket: &UnixStream, diff_id: Option<String>) {
    send_done(out, socket, diff_id);
    exit(0)
}

/// `environ NAME SECRET`: is `NAME`, or any value holding `SECRET`, reachable?
fn environ(out: &mut Results, name: &str, secret: &str) {
    let present = |b: bool| if b { "present" } else { "absent" };
    let holds = |text: &[u8]| {
        !secret.is_empty() && text.windows(secret.len()).any(|w| w == secret.as_bytes())
    };

    let mut count = 0;
    let (mut named, mut leaked) = (false, false);
    for (key, value) in std::env::vars_os() {
        use std::os::unix::ffi::OsStrExt;
        count += 1;
        named |= key.as_bytes() == name.as_bytes();
        leaked |= holds(key.as_bytes()) || holds(value.as_bytes());
    }
    out.line(&format!(
        "environ-vars_os ok count={count} name={} secret={}",
        present(named),
        present(leaked)
    ));

    extern "C" {
        static environ: *const *const libc::c_char;
    }
    let (mut count, mut named, mut leaked) = (0, false, false);
    let prefix = format!("{name}=");
    // SAFETY: `environ` is libc's NULL-terminated array of NUL-terminated
    // strings; nothing changes the environment in the worker.
    unsafe {
        let mut p = environ;
        while !p.is_null() && !(*p).is_null() {
            let entry = CStr::from_ptr(*p).to_bytes();
            count += 1;
            named |= entry.starts_with(prefix.as_bytes());
            leaked |= holds(entry);
            p = p.add(1);
        }
    }
    out.line(&format!(
        "environ-raw ok count={count} name={} secret={}",
        present(named),
        present(leaked)
    ));
}

/// `mmap-shared BYTES`: shared memory is not counted by `RLIMIT_DATA`.
fn mmap_shared(out: &mut Results, bytes: &str) {
    let Ok(len) = bytes.parse::<usize>() else {
        out.line("mmap-shared bad-argument");
        return;
    };
    // SAFETY: a fresh anonymous mapping; nothing else refers to it.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    let ret = if p == libc::MAP_FAILED { -1 } else { 0 };
    if out.call("mmap-shared", ret).is_none() {
        return;
    }
    let mut touched = 0usize;
    let mut at = 0;
    while at < len {
        // SAFETY: `at` is inside the `len`-byte mapping made above.
        unsafe { p.cast::<u8>().add(at).write_volatile(1) };
        touched += 1;
        at += 4096;
    }
    out.line(&format!(
        "mmap-shared-touch ok touched={touched} pages ({} MiB)",
        (touched * 4096) >> 20
    ));
    // SAFETY: the mapping made above, not used after this.
    unsafe { libc::munmap(p, len) };
}

/// `fsize`: a 64 GiB file, three ways.
fn fsize(out: &mut Results) {
    // Past the default file-size limit: the larger of `max_entry_size` (8 GiB)
    // and `max_sparse_size` (1 TiB).
    let size = 2048 * GIB;
    let p = c("fsize-ftruncate");
    if let Some(fd) = create(out, "fsize-ftruncate-create", &p, 0o644) {
        // SAFETY: raw call with NUL-terminated paths, our own descriptors and live buffers.
        let r = unsafe { libc::ftruncate(fd as i32, size) };
        out.call("fsize-ftruncate", i64::from(r));
        close(fd);
    }
    let p = c("fsize-pwrite");
    let mut pwrite_refused = false;
    if let Some(fd) = create(out, "fsize-pwrite-create", &p, 0o644) {
        // SAFETY: raw call with NUL-terminated paths, our own descriptors and live buffers.
        let r = unsafe { libc::pwrite(fd as i32, b"!".as_ptr().cast(), 1, size) };
        pwrite_refused = out.call("fsize-pwrite", r as i64).is_none();
        close(fd);
    }
    // Without a file-size limit fallocate would really allocate 64 GiB (or fill
    // the disk, which the test machine shares): try it only once the limit is
    // in place, when ftruncate and pwrite were refused.
    let truncate_refused = std::fs::metadata("fsize-ftruncate").map_or(true, |m| m.len() == 0);
    if !(pwrite_refused && truncate_refused) {
        out.line("fsize-fallocate skipped (ftruncate or pwrite got through: no file-size limit, it would allocate 2 TiB of real disk)");
        return;
    }
    let p = c("fsize-fallocate");
    if let Some(fd) = create(out, "fsize-fallocate-create", &p, 0o644) {
        // SAFETY: raw call with NUL-terminated paths, our own descriptors and live buffers.
        let r = unsafe { libc::fallocate(fd as i32, 0, 0, size) };
        out.call("fsize-fallocate", i64::from(r));
        close(fd);
    }
}

/// `stdio`: what fds 0 to 2 are, and whether their inodes can be changed.
fn stdio(out: &mut Results) {
    for fd in 0..3 {
        // SAFETY: `st` is a writable stat buffer.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: as above; fstat of a standard descriptor.
        let r = unsafe { libc::fstat(fd, &mut st) };
        let kind = match st.st_mode & libc::S_IFMT {
            libc::S_IFIFO => "pipe",
            libc::S_IFCHR => "char",
            libc::S_IFSOCK => "socket",
            libc::S_IFREG => "file",
            libc::S_IFDIR => "dir",
            _ => "other",
        };
        out.call_with(
            &format!("stdio-fstat-{fd}"),
            i64::from(r),
            &format!("type={kind} mode={:o}", st.st_mode & 0o7777),
        );
    }
    for fd in 0..3 {
        // SAFETY: fchmod with integer arguments.
        let r = unsafe { libc::fchmod(fd, 0o600) };
        out.call(&format!("stdio-fchmod-{fd}"), i64::from(r));
    }
}

/// `oob`: out-of-band data on the job socket.
fn oob(out: &mut Results, socket: &UnixStream) {
    let fd = socket.as_raw_fd();
    let mut byte = [0u8; 1];
    // SAFETY: a one-byte live buffer.
    let r = unsafe {
        libc::recv(
            fd,
            byte.as_mut_ptr().cast(),
            1,
            libc::MSG_OOB | libc::MSG_DONTWAIT,
        )
    };
    out.call("oob-recv", r as i64);
    // SAFETY: a one-byte live buffer.
    let r = unsafe {
        libc::send(
            fd,
            b"!".as_ptr().cast(),
            1,
            libc::MSG_OOB | libc::MSG_DONTWAIT,
        )
    };
    out.call("oob-send", r as i64);
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // SAFETY: a zeroed msghdr is valid (no name, no control data).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    // SAFETY: `msg` points at `iov`, which points at `byte`; all live.
    let r = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_OOB | libc::MSG_DONTWAIT) };
    out.call("oob-recvmsg", r as i64);
}

/// `fcntl-misc`: leases, directory notification, locks, pipe sizes.
fn fcntl_misc(out: &mut Results) {
    let p = c("fcntl-file");
    if let Some(fd) = create(out, "fcntl-file-create", &p, 0o644) {
        let fd = fd as i32;
        // SAFETY: raw call with NUL-terminated paths, our own descriptors and live buffers.
        let r = unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_WRLCK) };
        out.call("F_SETLEASE", i64::from(r));
        if r == 0 {
            // SAFETY: raw call with NUL-terminated paths, our own descriptors and live buffers.
            unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_UNLCK) };
        }
        // SAFETY: all-zero bytes are a valid `flock`.
        let mut lock: libc::flock = unsafe { std::mem::zeroed() };
        lock.l_type = libc::F_WRLCK as libc::c_short;
        lock.l_whence = libc::SEEK_SET as libc::c_short;
        // SAFETY: raw call with NUL-terminated paths, our own descriptors and live buffers.
        let r = unsafe { libc::fcntl(fd, libc::F_SETLK, &lock as *const libc::flock) };
        out.call("F_SETLK", i64::from(r));
        // Unlocked again: an open file description lock would conflict with it.
        let mut unlock = lock;
        unlock.l_type = libc::F_UNLCK as libc::c_short;
        // SAFETY: raw call with our own descriptor and a live flock.
        unsafe { libc::fcntl(fd, libc::F_SETLK, &unlock as *const libc::flock) };
        // SAFETY: raw call with NUL-terminated paths, our own descriptors and live buffers.
        let r = unsafe { libc::fcntl(fd, libc::F_OFD_SETLK, &lock as *const libc::flock) };
        out.call("F_OFD_SETLK", i64::from(r));
        // SAFETY: raw call with NUL-terminated paths, our own descriptors and live buffers.
        let r = unsafe { libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) };
        out.call("flock", i64::from(r));
        close(i64::from(fd));
    }
    let root = c(".");
    // SAFETY: raw call with NUL-terminated paths, our own descriptors and live buffers.
    let dir = unsafe {
        libc::openat(
            libc::AT_FDCWD,
            root.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if let Some(dir) = out.call("fcntl-dir-open", i64::from(dir)) {
        // SAFETY: raw call with NUL-terminated paths, our own descriptors and live buffers.
        let r = unsafe { libc::fcntl(dir as i32, libc::F_NOTIFY, DN_CREATE) };
        out.call("F_NOTIFY", i64::from(r));
        close(dir);
    }
    // SAFETY: raw call with NUL-terminated paths, our own descriptors and live buffers.
    let r = unsafe { libc::fcntl(1, libc::F_SETPIPE_SZ, 1 << 20) };
    out.call("F_SETPIPE_SZ", i64::from(r));
}

/// `device MAJOR MINOR [EXISTING]`: make a block device node for
/// `MAJOR:MINOR` (a disk of the host) and read from it; then read from
/// `EXISTING`, a device node already in the destination. Only reads: a
/// missing wall must not cost the test machine its disk. Lines start
/// `device-`.
fn device(out: &mut Results, major: &str, minor: &str, existing: &str) {
    let (Ok(major), Ok(minor)) = (major.parse::<u32>(), minor.parse::<u32>()) else {
        out.line("device bad-arguments");
        return;
    };
    let made = c("payload-blk");
    let dev = libc::makedev(major, minor);
    // SAFETY: the path is NUL-terminated.
    let r = unsafe { libc::mknodat(libc::AT_FDCWD, made.as_ptr(), libc::S_IFBLK | 0o600, dev) };
    out.call("device-mknod", i64::from(r));
    read_device(out, "device-open-made", &made);
    if !existing.is_empty() {
        read_device(out, "device-open-existing", &c(existing));
    }
}

/// Opens `path` read-only and reads a sector from it.
fn read_device(out: &mut Results, name: &str, path: &CStr) {
    // SAFETY: the path is NUL-terminated; the descriptor is closed below.
    let fd = unsafe {
        libc::openat(
            libc::AT_FDCWD,
            path.as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if let Some(fd) = out.call(name, i64::from(fd)) {
        let mut sector = [0u8; 512];
        // SAFETY: our own descriptor and a live buffer of that size.
        let r = unsafe { libc::read(fd as i32, sector.as_mut_ptr().cast(), sector.len()) };
        out.call(&format!("{name}-read"), r as i64);
        close(fd);
    }
}

/// `write`: create a file (refused for a `list_only` job).
fn write(out: &mut Results) {
    let p = c("written-by-payload");
    // SAFETY: the path is NUL-terminated.
    let fd = unsafe {
        libc::openat(
            libc::AT_FDCWD,
            p.as_ptr(),
            libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_CLOEXEC,
            0o644 as libc::c_uint,
        )
    };
    if let Some(fd) = out.call("write-open", i64::from(fd)) {
        // SAFETY: a live buffer.
        let r = unsafe { libc::write(fd as i32, b"payload\n".as_ptr().cast(), 8) };
        out.call("write", r as i64);
        close(fd);
    }
}

/// `change FILE`: every change to an existing file that needs no write
/// access to open it: owner, mode, times, an attribute and the size through
/// a read-only descriptor, and truncation at open. Lines start `change-`.
fn change(out: &mut Results, file: &str) {
    let path = c(file);
    // SAFETY: the path is NUL-terminated; the descriptor is closed below.
    let fd = unsafe {
        libc::openat(
            libc::AT_FDCWD,
            path.as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    let Some(fd) = out.call("change-open", i64::from(fd)) else {
        return;
    };
    let fd = fd as i32;
    // SAFETY (every call below): our own descriptor, live buffers and a
    // NUL-terminated name.
    let r = unsafe { libc::fchmod(fd, 0o777) };
    out.call("change-fchmod", i64::from(r));
    let r = unsafe { libc::fchown(fd, u32::MAX, libc::getgid()) };
    out.call("change-fchown", i64::from(r));
    let times = [libc::timespec {
        tv_sec: 1,
        tv_nsec: 0,
    }; 2];
    let r = unsafe { libc::futimens(fd, times.as_ptr()) };
    out.call("change-futimens", i64::from(r));
    let name = c("user.planted");
    let r = unsafe { libc::fsetxattr(fd, name.as_ptr(), b"x".as_ptr().cast(), 1, 0) };
    out.call("change-fsetxattr", i64::from(r));
    let r = unsafe { libc::ftruncate(fd, 0) };
    out.call("change-ftruncate", i64::from(r));
    close(fd.into());
    let flags = libc::O_RDONLY | libc::O_TRUNC | libc::O_CLOEXEC;
    // SAFETY: as above.
    let fd = unsafe { libc::openat(libc::AT_FDCWD, path.as_ptr(), flags) };
    if let Some(fd) = out.call("change-open-trunc", i64::from(fd)) {
        close(fd);
    }
}

/// `output`: a packing job that writes its archive itself holds the caller's
/// file or pipe (`Sandbox::pack_into`): found among the open descriptors (a
/// regular file or a pipe open for writing only), then every change but
/// appending to it: a set-id mode, owner, times, an attribute, its size
/// (truncated, allocated), a write at an offset of our choosing, its flags
/// (`O_APPEND` cleared, `O_NONBLOCK` set), and writes after moving its
/// offset back to 0 and 1 TiB ahead (they must land at the end). Lines
/// start `output-`.
fn output(out: &mut Results) {
    let found = (3..256).find(|&fd| {
        // SAFETY: fstat and fcntl on any number are harmless; a closed one fails.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        let kind = match unsafe { libc::fstat(fd, &mut st) } {
            0 => st.st_mode & libc::S_IFMT,
            _ => 0,
        };
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        (kind == libc::S_IFREG || kind == libc::S_IFIFO)
            && flags >= 0
            && flags & libc::O_ACCMODE == libc::O_WRONLY
    });
    let Some(fd) = found else {
        out.line("output-found errno=0 (none)");
        return;
    };
    out.line(&format!("output-found ok {fd}"));
    // SAFETY (every call below): a descriptor of ours, live buffers and a
    // NUL-terminated name.
    let r = unsafe { libc::fchmod(fd, 0o6755) };
    out.call("output-fchmod", i64::from(r));
    let r = unsafe { libc::fchown(fd, 0, 0) };
    out.call("output-fchown", i64::from(r));
    let times = [libc::timespec {
        tv_sec: 1,
        tv_nsec: 0,
    }; 2];
    let r = unsafe { libc::futimens(fd, times.as_ptr()) };
    out.call("output-futimens", i64::from(r));
    let name = c("user.planted");
    let r = unsafe { libc::fsetxattr(fd, name.as_ptr(), b"x".as_ptr().cast(), 1, 0) };
    out.call("output-fsetxattr", i64::from(r));
    let r = unsafe { libc::ftruncate(fd, 64 * GIB) };
    out.call("output-ftruncate", i64::from(r));
    let r = unsafe { libc::fallocate(fd, 0, 0, GIB) };
    out.call("output-fallocate", i64::from(r));
    let r = unsafe { libc::pwrite(fd, b"planted".as_ptr().cast(), 7, 64 * GIB) };
    out.call("output-pwrite", r as i64);
    let empty = c("");
    let r = unsafe {
        libc::syscall(
            libc::SYS_fchmodat2,
            fd,
            empty.as_ptr(),
            0o6755,
            libc::AT_EMPTY_PATH,
        )
    };
    out.call("output-fchmodat2", r);
    let r = unsafe { libc::fcntl(fd, libc::F_SETFL, 0) };
    out.call("output-setfl-clear-append", i64::from(r));
    let r = unsafe { libc::fcntl(fd, libc::F_SETFL, libc::O_NONBLOCK) };
    out.call("output-setfl-nonblock", i64::from(r));
    for (name, offset) in [("output-rewound", 0), ("output-far", 1i64 << 40)] {
        let r = unsafe { libc::lseek(fd, offset, libc::SEEK_SET) };
        out.call(&format!("{name}-seek"), r);
        let r = unsafe { libc::write(fd, b"PLANTED".as_ptr().cast(), 7) };
        out.call(&format!("{name}-write"), r as i64);
    }
}

/// `moved-out`: makes `/mover`, holds it open and waits (up to 20 s) for a
/// process outside, the archive's accomplice, to move it out of the
/// destination to `../away/mover` (its cue: `/mover-ready`); then reaches for the scene's canary
/// (`../../canary`) through `..` of the moved directory, the classic way out
/// of a chroot. Each call's line starts with `moved-`.
fn moved_out(out: &mut Results) {
    let dir = c("mover");
    // SAFETY: the path is NUL-terminated.
    let r = unsafe { libc::mkdirat(libc::AT_FDCWD, dir.as_ptr(), 0o755) };
    out.call("moved-mkdir", i64::from(r));
    // SAFETY: the path is NUL-terminated; the descriptor is closed below.
    let fd = unsafe {
        libc::openat(
            libc::AT_FDCWD,
            dir.as_ptr(),
            libc::O_DIRECTORY | libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    let Some(fd) = out.call("moved-open", i64::from(fd)) else {
        return;
    };
    let fd = fd as i32;
    // The accomplice's cue.
    let _ = std::fs::write("mover-ready", b"");
    if !wait_moved_out(fd) {
        out.line("moved-wait timeout");
        close(fd.into());
        return;
    }
    out.line("moved-wait ok");
    reach_through(out, fd, "../../canary", "moved");
    close(fd.into());
}

/// Whether `..` of `dir` stopped being the root (or stopped resolving, as a
/// mount's boundary makes it) within 20 s.
fn wait_moved_out(dir: i32) -> bool {
    let inode = |fd: i32, path: &CStr| {
        // SAFETY: an all-zero `stat` is valid; the path is NUL-terminated.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: `st` is a live, writable `stat`.
        let r = unsafe { libc::fstatat(fd, path.as_ptr(), &mut st, 0) };
        (r == 0).then_some((st.st_dev, st.st_ino))
    };
    let root = inode(libc::AT_FDCWD, c".");
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if inode(dir, c"..") != root {
            return true;
        }
        // No sleeping: nanosleep is not in the allow-list.
        // SAFETY: sched_yield has no arguments.
        unsafe { libc::sched_yield() };
    }
    false
}

/// Every way at the scene's canary, `canary` from `dir` (`../../canary`
/// through a directory that was moved out, or its absolute path from the
/// working directory); each line's name starts with `tag`.
fn reach_through(out: &mut Results, dir: i32, canary: &str, tag: &str) {
    let at = |name: &str| c(&format!("{canary}/{name}"));
    let n = |name: &str| format!("{tag}-{name}");
    let file = at("file.txt");
    let secret = at("secret");
    // SAFETY (every call below): the paths are NUL-terminated strings that
    // live to the end of this function; `times` is a live array of two.
    let r = unsafe { libc::fchownat(dir, file.as_ptr(), 4242, 4242, libc::AT_SYMLINK_NOFOLLOW) };
    out.call(&n("chown"), i64::from(r));
    let r = unsafe { libc::fchmodat(dir, file.as_ptr(), 0o666, 0) };
    out.call(&n("chmod"), i64::from(r));
    let times = [libc::timespec {
        tv_sec: 1,
        tv_nsec: 0,
    }; 2];
    let r = unsafe { libc::utimensat(dir, file.as_ptr(), times.as_ptr(), 0) };
    out.call(&n("utimes"), i64::from(r));
    let r = unsafe { libc::openat(dir, secret.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if let Some(fd) = out.call(&n("read"), i64::from(r)) {
        close(fd);
    }
    let planted = at("planted");
    let flags = libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC;
    let r = unsafe { libc::openat(dir, planted.as_ptr(), flags, 0o644 as libc::c_uint) };
    if let Some(fd) = out.call(&n("create"), i64::from(r)) {
        close(fd);
    }
    let r = unsafe { libc::unlinkat(dir, file.as_ptr(), 0) };
    out.call(&n("unlink"), i64::from(r));
    let (run, stolen) = (at("run.sh"), c("stolen"));
    let r = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            dir,
            run.as_ptr(),
            libc::AT_FDCWD,
            stolen.as_ptr(),
            0,
        )
    };
    out.call(&n("rename"), r);
    let link = c("stolen-link");
    let r = unsafe { libc::linkat(dir, secret.as_ptr(), libc::AT_FDCWD, link.as_ptr(), 0) };
    out.call(&n("link"), i64::from(r));
    // Access mode 3 (O_WRONLY|O_RDWR): the kernel opens it for neither read
    // nor write, so Landlock asks for no right; the descriptor could then
    // take fchmod, fchown, fsetxattr and futimens.
    let r = unsafe {
        libc::openat(
            dir,
            file.as_ptr(),
            libc::O_WRONLY | libc::O_RDWR | libc::O_CLOEXEC,
        )
    };
    if let Some(fd) = out.call(&n("mode3"), i64::from(r)) {
        let r = unsafe { libc::fchmod(fd as i32, 0o666) };
        out.call(&n("mode3-chmod"), i64::from(r));
        close(fd);
    }
    // An O_PATH descriptor needs no Landlock right; what it can change:
    let flags = libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    let r = unsafe { libc::openat(dir, file.as_ptr(), flags) };
    if let Some(fd) = out.call(&n("opath"), i64::from(r)) {
        let (fd, empty) = (fd as i32, c"");
        let r = unsafe { libc::fchownat(fd, empty.as_ptr(), 4242, 4242, libc::AT_EMPTY_PATH) };
        out.call(&n("opath-chown"), i64::from(r));
        let r = unsafe { libc::utimensat(fd, empty.as_ptr(), times.as_ptr(), libc::AT_EMPTY_PATH) };
        out.call(&n("opath-utimes"), i64::from(r));
        let r = unsafe { libc::fchmod(fd, 0o666) };
        out.call(&n("opath-chmod"), i64::from(r));
        close(fd.into());
    }
    // Metadata only (no contents): recorded, not a wall on every rung.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::fstatat(dir, secret.as_ptr(), &mut st, 0) };
    out.call(&n("stat"), i64::from(r));
}
