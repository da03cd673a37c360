//! The seccomp allow-list: which system calls a confined worker may make, and
//! the classic BPF program that says so.
//!
//! Everything not listed fails with `EPERM`: no `execve`, `socket`, `connect`,
//! `mount`, `umount2`, `pivot_root`, `chroot`, `ptrace`, `unshare`, `setns`,
//! `bpf`, `keyctl`, `io_uring_*`, and no `clone`: the decoding thread is started
//! before the filter, and the filter is applied to both threads at once
//! (`SECCOMP_FILTER_FLAG_TSYNC`). The program is built while the worker is warm
//! ([`build`]) and installed after confinement ([`install`]).

use std::os::fd::{AsRawFd, BorrowedFd};

use rustix::process::getpid;

use crate::options::ModePolicy;

/// `AUDIT_ARCH_*` of the architecture the filter is built for.
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 62 | 0x8000_0000 | 0x4000_0000;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 183 | 0x8000_0000 | 0x4000_0000;

/// The system calls a worker makes after confinement, for every thread, that
/// are allowed whatever their arguments.
fn allowed() -> Vec<libc::c_long> {
    vec![
        // I/O on the job socket and the files being written.
        libc::SYS_read,
        libc::SYS_write,
        libc::SYS_pwrite64,
        libc::SYS_readv,
        libc::SYS_writev,
        libc::SYS_lseek,
        libc::SYS_ftruncate,
        libc::SYS_fallocate,
        // `Options::sync`: the destination's filesystem flushed.
        libc::SYS_syncfs,
        // Creating entries (those taking a mode are in `checked`).
        libc::SYS_getdents64,
        libc::SYS_unlinkat,
        libc::SYS_symlinkat,
        libc::SYS_linkat,
        libc::SYS_fchown,
        libc::SYS_fsetxattr,
        libc::SYS_newfstatat,
        libc::SYS_fstat,
        libc::SYS_statx,
        // Reading symlinks: names walked in user space where there is no
        // `chroot`, and packing jobs.
        libc::SYS_readlinkat,
        // Memory and threads (no clone: no new thread or process).
        libc::SYS_munmap,
        libc::SYS_mremap,
        libc::SYS_mprotect,
        libc::SYS_madvise,
        libc::SYS_brk,
        libc::SYS_futex,
        libc::SYS_set_robust_list,
        libc::SYS_rseq,
        libc::SYS_sched_yield,
        libc::SYS_rt_sigprocmask,
        libc::SYS_rt_sigaction,
        libc::SYS_rt_sigreturn,
        libc::SYS_sigaltstack,
        libc::SYS_getrandom,
        libc::SYS_gettid,
        libc::SYS_getpid,
        libc::SYS_clock_gettime,
        libc::SYS_exit,
        libc::SYS_exit_group,
    ]
}

/// What a packing job adds: reading extended attributes through the
/// descriptors of the files and directories it opened. Never the calls that
/// take a path (`getxattr`, `lgetxattr`, `listxattr`, `llistxattr`,
/// `getxattrat`, `listxattrat`): on the Landlock rung without `chroot` a
/// path can name a file outside the source (a symlink's own attributes
/// would be read so), and Landlock does not govern reading attributes. An
/// `O_PATH` descriptor, which needs no Landlock right, takes neither call
/// (`EBADF`). Extraction workers, which parse hostile archives, get neither.
fn pack_reads() -> [libc::c_long; 2] {
    [libc::SYS_flistxattr, libc::SYS_fgetxattr]
}

/// The set-user-id, set-group-id and sticky bits.
const SPECIAL_MODE_BITS: u32 = 0o7000;
/// The `send`/`recv` flags the worker uses; anything else (`MSG_OOB` first of
/// all) is refused.
const USED_MSG_FLAGS: u32 =
    (libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT | libc::MSG_WAITALL | libc::MSG_CMSG_CLOEXEC) as u32;

/// How the calls that change an inode's owner or times without opening it
/// (`fchownat`, `utimensat`) may name it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Naming {
    /// By any path: the mount's boundary stops every walk at the root, even
    /// `..` of a directory a racing process moved out (the namespace rung).
    Paths,
    /// By descriptor only (`utimensat` with a NULL path; no `fchownat`), and
    /// `readlinkat` for walking names without `chroot`: on the Landlock rung, `..` of a directory moved out of the destination leads
    /// past the `chroot`, and Landlock does not govern owners and times.
    /// (`AT_EMPTY_PATH` would not do: the filter cannot read the path, and an
    /// `O_PATH` descriptor of an outside file needs no Landlock right.)
    Descriptors,
}

/// `openat`'s alternatives: never access mode 3 (`O_WRONLY | O_RDWR`), which
/// opens for neither reading nor writing, so that Landlock asks for no right,
/// and yet the descriptor takes `fchmod`, `fchown`, `fsetxattr` and
/// `futimens` (the worker never opens so); and, for safe modes, no set-id or
/// sticky bit in the mode.
fn openat(safe_modes: bool) -> Leaf {
    use Test::Clear;
    let mode = match safe_modes {
        true => vec![Clear(3, SPECIAL_MODE_BITS)],
        false => Vec::new(),
    };
    let access = |bit: libc::c_int| [vec![Clear(2, bit as u32)], mode.clone()].concat();
    Leaf::Any(vec![access(libc::O_WRONLY), access(libc::O_RDWR)])
}

/// The system calls allowed only with some arguments (each a low 32-bit word:
/// the kernel reads every one of these as an `int`, `unsigned int` or
/// `umode_t`, unless a test says otherwise). `safe_modes`: no mode argument may
/// carry a set-id or sticky bit (`ModePolicy::Safe`). `job_socket`: the
/// descriptor that must stay open until the process exits (see [`build`]).
fn checked(
    pid: u32,
    job_socket: u32,
    safe_modes: bool,
    naming: Naming,
) -> Vec<(libc::c_long, Leaf)> {
    use Test::{Clear, Eq, High, Ne};
    let mode_at = |arg: u8| match safe_modes {
        true => Leaf::Any(vec![vec![Clear(arg, SPECIAL_MODE_BITS)]]),
        false => Leaf::Allow,
    };
    let flags_at = |arg: u8| Leaf::Any(vec![vec![Clear(arg, !USED_MSG_FLAGS)]]);
    let cmd = |value: libc::c_int| vec![Eq(1, value as u32)];
    let mut calls = vec![
        // Signals only to ourselves (abort() raises SIGABRT).
        (libc::SYS_tgkill, Leaf::Any(vec![vec![Eq(0, pid)]])),
        // Any descriptor but the job socket: it closes only when the process
        // is gone (there is no `dup2`, `dup3`, `close_range` or `shutdown`).
        (libc::SYS_close, Leaf::Any(vec![vec![Ne(0, job_socket)]])),
        // Descriptor flags and duplicates; no owner, signal, lease, lock,
        // notification or pipe size (the first two deliver signals).
        (
            libc::SYS_fcntl,
            Leaf::Any(vec![
                cmd(libc::F_GETFD),
                cmd(libc::F_SETFD),
                cmd(libc::F_GETFL),
                cmd(libc::F_DUPFD_CLOEXEC),
                vec![Eq(1, libc::F_SETFL as u32), Clear(2, libc::O_ASYNC as u32)],
            ]),
        ),
        (libc::SYS_recvfrom, flags_at(3)),
        (libc::SYS_recvmsg, flags_at(2)),
        (libc::SYS_sendto, flags_at(3)),
        (libc::SYS_sendmsg, flags_at(2)),
        // Private mappings only: a shared one would escape RLIMIT_DATA.
        (
            libc::SYS_mmap,
            Leaf::Any(vec![vec![Clear(3, libc::MAP_SHARED as u32)]]),
        ),
        (libc::SYS_openat, openat(safe_modes)),
        (libc::SYS_mkdirat, mode_at(2)),
        (libc::SYS_mknodat, mode_at(2)),
        // Modes by descriptor only: no `fchmodat`, `fchmodat2`.
        (libc::SYS_fchmod, mode_at(1)),
    ];
    match naming {
        Naming::Paths => {
            calls.push((libc::SYS_fchownat, Leaf::Allow));
            calls.push((libc::SYS_utimensat, Leaf::Allow));
        }
        Naming::Descriptors => {
            // `futimens`: the whole pointer NULL, both halves.
            calls.push((
                libc::SYS_utimensat,
                Leaf::Any(vec![vec![Eq(1, 0), High(1, 0)]]),
            ));
        }
    }
    calls
}

/// The worker's three filters, built while it is warm (a job only pays for
/// installing one): one per mode policy for extraction, and the packing
/// job's (safe modes, and [`pack_reads`]). `openat2` is on none, since its
/// mode lies behind a pointer no filter can read (the applier opens with
/// `openat` inside the sandbox, whose root already is the destination).
pub(crate) struct Programs {
    safe: seccompiler::BpfProgram,
    exact: seccompiler::BpfProgram,
    pack: seccompiler::BpfProgram,
}

impl Programs {
    /// The filter for an extracting job with this mode policy.
    pub(crate) fn for_modes(&self, modes: ModePolicy) -> &seccompiler::BpfProgram {
        match modes {
            ModePolicy::Safe => &self.safe,
            ModePolicy::Exact => &self.exact,
        }
    }

    /// The filter for a packing job.
    pub(crate) fn for_packing(&self) -> &seccompiler::BpfProgram {
        &self.pack
    }
}

/// Builds the seccomp filters for this worker.
///
/// Each program is a binary search over the sorted system-call numbers, not
/// the linear chain of comparisons `seccompiler` emits: when a filter is
/// installed, the kernel evaluates it once for every system-call number of
/// every architecture (to fill its per-syscall action cache), with
/// interrupts off, and the JIT compiles every instruction. For a linear chain
/// of ~270 instructions that took ~130 µs per job here, against ~24 µs for
/// an ~80-instruction tree (before the argument checks were added). The
/// policy is the same: the architecture is
/// checked first (anything else kills the process, as with `seccompiler`),
/// the allowed numbers are allowed, those in [`checked`] when one of their
/// alternatives holds, and everything else fails with `EPERM`.
///
/// `job_socket` is the worker's end of the job socket, which no call may
/// close: its closing (end of file at the caller) then proves that every
/// thread of the worker has left for good, and the caller ends the job on it
/// without waiting for the whole exit (see `caller::job`).
///
/// `naming`: how owners and times may be set (see [`Naming`]).
pub(crate) fn build(job_socket: BorrowedFd<'_>, naming: Naming) -> Result<Programs, String> {
    let pid = getpid().as_raw_nonzero().get() as u32;
    let job_socket = job_socket.as_raw_fd() as u32;
    let one = |safe_modes, packing| {
        compile(
            policy(pid, job_socket, safe_modes, naming, packing),
            AUDIT_ARCH,
        )
        .map_err(|e| format!("building the seccomp filter failed: {e}"))
    };
    Ok(Programs {
        safe: one(true, false)?,
        exact: one(false, false)?,
        pack: one(true, true)?,
    })
}

/// What a packing job may not do that an extracting one may: change any
/// file. On the Landlock rung these are walls of their own: Landlock does
/// not govern owners, modes, times or attributes, and the worker runs as
/// the user who usually owns the source.
const PACK_REFUSES: [libc::c_long; 13] = [
    libc::SYS_pwrite64,
    libc::SYS_ftruncate,
    libc::SYS_fallocate,
    libc::SYS_unlinkat,
    libc::SYS_symlinkat,
    libc::SYS_linkat,
    libc::SYS_fchown,
    libc::SYS_fsetxattr,
    libc::SYS_mkdirat,
    libc::SYS_mknodat,
    libc::SYS_fchmod,
    libc::SYS_fchownat,
    libc::SYS_utimensat,
];

/// `O_TMPFILE` without the `O_DIRECTORY` bit it includes.
const O_TMPFILE_ONLY: u32 = 0o20_000_000;

/// A packing job's `openat`: for reading only, nothing created, truncated
/// or appended to (Landlock below ABI 3 does not stop `O_TRUNC` on a
/// read-only open).
fn openat_for_reading() -> Leaf {
    let writes = libc::O_WRONLY | libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC | libc::O_APPEND;
    Leaf::Any(vec![vec![Test::Clear(2, writes as u32 | O_TMPFILE_ONLY)]])
}

/// A packing job's `fcntl`: no `F_SETFL`. With `Sandbox::pack_into` the
/// worker holds the caller's output (its open file description, a regular
/// file made `O_APPEND` for the job): it may neither clear the file's
/// `O_APPEND` (and write over what was there before the archive) nor set a
/// pipe `O_NONBLOCK` under the caller's feet. Nothing in a packing worker
/// sets descriptor flags.
fn fcntl_without_setfl(leaf: Leaf) -> Leaf {
    match leaf {
        Leaf::Any(alternatives) => Leaf::Any(
            alternatives
                .into_iter()
                .filter(|tests| !tests.contains(&Test::Eq(1, libc::F_SETFL as u32)))
                .collect(),
        ),
        Leaf::Allow => Leaf::Allow,
    }
}

/// The whole allow-list, as the compiler takes it. A packing job's is the
/// extracting job's (safe modes) without [`PACK_REFUSES`], with `openat`
/// for reading only, plus [`pack_reads`].
fn policy(
    pid: u32,
    job_socket: u32,
    safe_modes: bool,
    naming: Naming,
    packing: bool,
) -> Vec<(u32, Leaf)> {
    let reads = match packing {
        true => pack_reads().to_vec(),
        false => Vec::new(),
    };
    allowed()
        .into_iter()
        .chain(reads)
        .map(|nr| (nr, Leaf::Allow))
        .chain(checked(pid, job_socket, safe_modes, naming))
        .filter(|(nr, _)| !(packing && PACK_REFUSES.contains(nr)))
        .map(|(nr, leaf)| match (packing, nr) {
            (true, libc::SYS_openat) => (nr, openat_for_reading()),
            (true, libc::SYS_fcntl) => (nr, fcntl_without_setfl(leaf)),
            _ => (nr, leaf),
        })
        .map(|(nr, leaf)| (nr as u32, leaf))
        .collect()
}

/// What a system call in the allow-list leads to.
#[derive(Clone, Debug, PartialEq)]
enum Leaf {
    Allow,
    /// Allowed when every test of one of the alternatives holds.
    Any(Vec<Vec<Test>>),
}

/// A test on the low 32 bits of one argument.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Test {
    /// The argument equals the value.
    Eq(u8, u32),
    /// The argument has none of the bits of the mask.
    Clear(u8, u32),
    /// The argument differs from the value.
    Ne(u8, u32),
    /// The high 32 bits of the argument (a pointer's) equal the value.
    High(u8, u32),
}

// Classic BPF opcodes (linux/bpf_common.h) and seccomp return values.
/// `BPF_LD | BPF_W | BPF_ABS`.
const LD_W_ABS: u16 = 0x20;
/// `BPF_JMP | BPF_JEQ | BPF_K`.
const JMP_JEQ_K: u16 = 0x15;
/// `BPF_JMP | BPF_JGE | BPF_K`.
const JMP_JGE_K: u16 = 0x35;
/// `BPF_JMP | BPF_JSET | BPF_K`.
const JMP_JSET_K: u16 = 0x45;
/// `BPF_RET | BPF_K`.
const RET_K: u16 = 0x06;
const RET_ALLOW: u32 = 0x7fff_0000;
const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_EPERM: u32 = 0x0005_0000 | libc::EPERM as u32;
/// Offsets in `struct seccomp_data`.
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;

/// The offset of the low half of argument `arg` (little-endian).
fn arg_low(arg: u8) -> u32 {
    16 + 8 * u32::from(arg)
}

/// A jump target while the program is being laid out.
#[derive(Clone, Copy)]
enum Target {
    At(usize),
    Allow,
    Deny,
    /// The argument checks of the `index`-th conditional leaf.
    Check(usize),
}

/// An instruction whose jumps are still symbolic: (code, jt, jf, k).
type Op = (u16, Target, Target, u32);

/// Compiles `calls` into a binary search on the system-call number, followed by
/// the argument checks of the conditional ones.
fn compile(
    mut calls: Vec<(u32, Leaf)>,
    arch: u32,
) -> Result<seccompiler::BpfProgram, &'static str> {
    calls.sort_by_key(|c| c.0);
    calls.dedup_by_key(|c| c.0);
    let mut ops: Vec<Op> = Vec::new();
    let stmt = |code, k| (code, Target::Allow, Target::Allow, k);
    ops.push(stmt(LD_W_ABS, DATA_ARCH));
    // A foreign architecture's numbers mean other calls: kill (checked below).
    ops.push((JMP_JEQ_K, Target::At(3), Target::At(2), arch));
    ops.push(stmt(RET_K, RET_KILL_PROCESS));
    ops.push(stmt(LD_W_ABS, DATA_NR));
    let mut checks = Vec::new();
    search(&calls, &mut ops, &mut checks);
    let check_at: Vec<usize> = checks
        .iter()
        .map(|alternatives| {
            let at = ops.len();
            lay_out_check(alternatives, &mut ops);
            at
        })
        .collect();
    let allow = ops.len();
    ops.push(stmt(RET_K, RET_ALLOW));
    let deny = ops.len();
    ops.push(stmt(RET_K, RET_EPERM));
    let resolve = |target: Target| match target {
        Target::At(at) => at,
        Target::Allow => allow,
        Target::Deny => deny,
        Target::Check(n) => check_at[n],
    };
    let mut program = Vec::with_capacity(ops.len());
    for (i, (code, jt, jf, k)) in ops.into_iter().enumerate() {
        let offset = |target: Target| -> Result<u8, &'static str> {
            resolve(target)
                .checked_sub(i + 1)
                .and_then(|d| u8::try_from(d).ok())
                .ok_or("a jump out of range")
        };
        let (jt, jf) = match code & 0x07 {
            0x05 => (offset(jt)?, offset(jf)?),
            _ => (0, 0),
        };
        program.push(seccompiler::sock_filter { code, jt, jf, k });
    }
    if program.len() > 4096 {
        return Err("too many instructions");
    }
    Ok(program)
}

/// Lays out one conditional leaf: each alternative's tests in turn (two
/// instructions each: load the argument, jump); the first alternative whose
/// tests all hold allows, and when none does the call is denied.
fn lay_out_check(alternatives: &[Vec<Test>], ops: &mut Vec<Op>) {
    let mut start = ops.len();
    for (a, tests) in alternatives.iter().enumerate() {
        let next = start + 2 * tests.len();
        let fail = match a + 1 == alternatives.len() {
            true => Target::Deny,
            false => Target::At(next),
        };
        for (t, test) in tests.iter().enumerate() {
            let pass = match t + 1 == tests.len() {
                true => Target::Allow,
                false => Target::At(ops.len() + 2),
            };
            let (at, op) = match *test {
                Test::Eq(arg, value) => (arg_low(arg), (JMP_JEQ_K, pass, fail, value)),
                Test::Clear(arg, mask) => (arg_low(arg), (JMP_JSET_K, fail, pass, mask)),
                Test::Ne(arg, value) => (arg_low(arg), (JMP_JEQ_K, fail, pass, value)),
                Test::High(arg, value) => (arg_low(arg) + 4, (JMP_JEQ_K, pass, fail, value)),
            };
            ops.push((LD_W_ABS, Target::Allow, Target::Allow, at));
            ops.push(op);
        }
        start = next;
    }
}

/// Lays out the search over `calls` (sorted): halves by `>=` down to runs of
/// three, then compares each. A number not in `calls` ends at `Deny`.
fn search(calls: &[(u32, Leaf)], ops: &mut Vec<Op>, checks: &mut Vec<Vec<Vec<Test>>>) {
    if calls.len() <= 3 {
        for (i, (nr, leaf)) in calls.iter().enumerate() {
            let hit = match leaf {
                Leaf::Allow => Target::Allow,
                Leaf::Any(alternatives) => {
                    checks.push(alternatives.clone());
                    Target::Check(checks.len() - 1)
                }
            };
            let miss = match i + 1 == calls.len() {
                true => Target::Deny,
                false => Target::At(ops.len() + 1),
            };
            ops.push((JMP_JEQ_K, hit, miss, *nr));
        }
        if calls.is_empty() {
            ops.push((RET_K, Target::Allow, Target::Allow, RET_EPERM));
        }
        return;
    }
    let mid = calls.len() / 2;
    let at = ops.len();
    ops.push((JMP_JGE_K, Target::Deny, Target::At(at + 1), calls[mid].0));
    search(&calls[..mid], ops, checks);
    ops[at].1 = Target::At(ops.len());
    search(&calls[mid..], ops, checks);
}

/// Installs the allow-list on every thread of the worker at once.
pub(crate) fn install(program: &seccompiler::BpfProgram) -> Result<(), String> {
    seccompiler::apply_filter_all_threads(program)
        .map_err(|e| format!("installing the seccomp filter failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::os::fd::AsFd;

    /// The job socket's number in these tests (standard input's descriptor).
    const JOB_SOCKET: u32 = 0;

    fn build(naming: Naming) -> Result<Programs, String> {
        super::build(std::io::stdin().as_fd(), naming)
    }

    /// Not in the `libc` crate (linux/fcntl.h, asm-generic/fcntl.h).
    const F_SETSIG: libc::c_int = 10;
    const F_SETOWN_EX: libc::c_int = 15;

    /// Runs a classic BPF seccomp program the way the kernel would.
    fn run(program: &[seccompiler::sock_filter], nr: u32, arch: u32, args: [u64; 6]) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_ne_bytes());
        data[4..8].copy_from_slice(&arch.to_ne_bytes());
        for (i, arg) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&arg.to_ne_bytes());
        }
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let op = &program[pc];
            pc += 1;
            let jump = |taken: bool| usize::from(if taken { op.jt } else { op.jf });
            match op.code {
                LD_W_ABS => {
                    let at = op.k as usize;
                    acc = u32::from_ne_bytes(data[at..at + 4].try_into().unwrap());
                }
                JMP_JEQ_K => pc += jump(acc == op.k),
                JMP_JGE_K => pc += jump(acc >= op.k),
                JMP_JSET_K => pc += jump(acc & op.k != 0),
                RET_K => return op.k,
                // BPF_JMP | BPF_JA (in `seccompiler`'s programs).
                0x05 => pc += op.k as usize,
                // BPF_ALU | BPF_AND | BPF_K (`seccompiler`'s masked comparisons).
                0x54 => acc &= op.k,
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    }

    /// The same policy as `seccompiler` compiles it (a linear chain).
    fn reference(
        pid: u32,
        safe_modes: bool,
        naming: Naming,
        packing: bool,
    ) -> seccompiler::BpfProgram {
        use seccompiler::{
            SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
            SeccompRule, TargetArch,
        };
        let condition = |test: &Test| {
            use SeccompCmpArgLen::{Dword, Qword};
            let (arg, len, op, value) = match *test {
                Test::Eq(arg, value) => (arg, Dword, SeccompCmpOp::Eq, value.into()),
                Test::Clear(arg, mask) => (arg, Dword, SeccompCmpOp::MaskedEq(mask.into()), 0),
                Test::Ne(arg, value) => (arg, Dword, SeccompCmpOp::Ne, value.into()),
                Test::High(arg, value) => (
                    arg,
                    Qword,
                    SeccompCmpOp::MaskedEq(0xffff_ffff_0000_0000),
                    u64::from(value) << 32,
                ),
            };
            SeccompCondition::new(arg, len, op, value).unwrap()
        };
        let rules: BTreeMap<i64, Vec<SeccompRule>> =
            policy(pid, JOB_SOCKET, safe_modes, naming, packing)
                .into_iter()
                .map(|(nr, leaf)| {
                    let rules = match leaf {
                        Leaf::Allow => Vec::new(),
                        Leaf::Any(alternatives) => alternatives
                            .iter()
                            .map(|tests| SeccompRule::new(tests.iter().map(condition).collect()))
                            .collect::<Result<_, _>>()
                            .unwrap(),
                    };
                    (i64::from(nr), rules)
                })
                .collect();
        #[cfg(target_arch = "x86_64")]
        let arch = TargetArch::x86_64;
        #[cfg(target_arch = "aarch64")]
        let arch = TargetArch::aarch64;
        let filter = SeccompFilter::new(
            rules,
            SeccompAction::Errno(libc::EPERM as u32),
            SeccompAction::Allow,
            arch,
        )
        .unwrap();
        filter.try_into().unwrap()
    }

    /// Argument values worth trying: the ones the policy names, and neighbours.
    fn interesting(pid: u32) -> Vec<u64> {
        let mut values = vec![0, 1, 2, 3, u64::from(pid), u64::from(pid) + 1];
        values
            .extend([libc::F_GETFD, libc::F_SETFD, libc::F_GETFL, libc::F_SETFL].map(|c| c as u64));
        values.extend(
            [
                libc::F_DUPFD_CLOEXEC,
                libc::F_SETOWN,
                F_SETSIG,
                libc::F_SETLEASE,
            ]
            .map(|c| c as u64),
        );
        values.extend([
            libc::O_ASYNC as u64,
            0o644,
            0o4755,
            0o2775,
            0o1777,
            0o100644,
        ]);
        values.extend([libc::MSG_OOB, libc::MSG_NOSIGNAL, libc::MSG_PEEK].map(|f| f as u64));
        values.push(libc::MSG_NOSIGNAL as u64 | libc::MSG_CMSG_CLOEXEC as u64);
        values.extend([libc::MAP_PRIVATE | libc::MAP_ANONYMOUS].map(|f| f as u64));
        let high: Vec<u64> = values.iter().map(|v| v | 1 << 32).collect();
        values.extend(high);
        values
    }

    #[test]
    fn the_search_tree_decides_like_the_linear_filter() {
        let pid = getpid().as_raw_nonzero().get() as u32;
        let values = interesting(pid);
        // (naming, safe modes, packing): the packing job's filter has safe modes.
        let cases = [Naming::Paths, Naming::Descriptors]
            .into_iter()
            .flat_map(|naming| {
                [
                    (naming, true, false),
                    (naming, false, false),
                    (naming, true, true),
                ]
            });
        for (naming, safe_modes, packing) in cases {
            let programs = build(naming).unwrap();
            let program = match (packing, safe_modes) {
                (true, _) => programs.for_packing(),
                (false, true) => programs.for_modes(ModePolicy::Safe),
                (false, false) => programs.for_modes(ModePolicy::Exact),
            };
            let linear = reference(pid, safe_modes, naming, packing);
            assert!(
                program.len() < linear.len() / 2,
                "{} instructions",
                program.len()
            );
            let mut allowed_seen = 0;
            for nr in (0..1100u32).chain((0..1100).map(|nr| nr | 0x4000_0000)) {
                // Each value in each argument position, the others zero.
                for (arg, value) in (0..6).flat_map(|a| values.iter().map(move |v| (a, *v))) {
                    let mut args = [0u64; 6];
                    args[arg] = value;
                    let ours = run(program, nr, AUDIT_ARCH, args);
                    let theirs = run(&linear, nr, AUDIT_ARCH, args);
                    assert_eq!(ours, theirs, "nr {nr} args {args:?}");
                }
                allowed_seen += usize::from(run(program, nr, AUDIT_ARCH, [0; 6]) == RET_ALLOW);
                // i386 (or any other architecture) numbers kill.
                assert_eq!(run(program, nr, 0x4000_0003, [0; 6]), RET_KILL_PROCESS);
            }
            // With all-zero arguments everything but tgkill (to pid 0), fcntl
            // (F_DUPFD) and close (of descriptor 0, the job socket) passes.
            let all = policy(pid, JOB_SOCKET, safe_modes, naming, packing).len();
            assert_eq!(allowed_seen, all - 3);
        }
    }

    /// The walls the worker relies on, spelled out call by call.
    #[test]
    fn what_the_filters_refuse() {
        let pid = getpid().as_raw_nonzero().get() as u32;
        let programs = build(Naming::Paths).unwrap();
        let (safe, exact) = (
            programs.for_modes(ModePolicy::Safe),
            programs.for_modes(ModePolicy::Exact),
        );
        let call = |program: &[seccompiler::sock_filter], nr: libc::c_long, args: [u64; 6]| {
            run(program, nr as u32, AUDIT_ARCH, args)
        };
        let fcntl = |cmd: libc::c_int, arg: u64| [3, cmd as u64, arg, 0, 0, 0];
        for program in [safe, exact] {
            assert_eq!(
                call(program, libc::SYS_tgkill, [pid.into(), 1, 6, 0, 0, 0]),
                RET_ALLOW
            );
            assert_eq!(
                call(program, libc::SYS_tgkill, [1, 1, 9, 0, 0, 0]),
                RET_EPERM
            );
            assert_eq!(
                call(program, libc::SYS_fcntl, fcntl(libc::F_DUPFD_CLOEXEC, 0)),
                RET_ALLOW
            );
            assert_eq!(
                call(
                    program,
                    libc::SYS_fcntl,
                    fcntl(libc::F_SETFL, libc::O_NONBLOCK as u64)
                ),
                RET_ALLOW
            );
            for (cmd, arg) in [
                (libc::F_SETFL, libc::O_ASYNC as u64),
                (libc::F_SETOWN, 1),
                (F_SETOWN_EX, 0),
                (F_SETSIG, 9),
                (libc::F_SETLEASE, 1),
                (libc::F_NOTIFY, 1),
                (libc::F_SETPIPE_SZ, 1 << 20),
                (libc::F_SETLK, 0),
                (libc::F_OFD_SETLK, 0),
            ] {
                assert_eq!(
                    call(program, libc::SYS_fcntl, fcntl(cmd, arg)),
                    RET_EPERM,
                    "fcntl {cmd}"
                );
            }
            // The job socket stays open until the process is gone.
            let close = |fd: u64| call(program, libc::SYS_close, [fd, 0, 0, 0, 0, 0]);
            assert_eq!(close(JOB_SOCKET.into()), RET_EPERM);
            assert_eq!(close(u64::from(JOB_SOCKET) | 1 << 32), RET_EPERM);
            assert_eq!(close(5), RET_ALLOW);
            #[cfg(target_arch = "x86_64")]
            assert_eq!(call(program, libc::SYS_dup2, [5, 0, 0, 0, 0, 0]), RET_EPERM);
            for nr in [libc::SYS_dup3, libc::SYS_close_range, libc::SYS_shutdown] {
                assert_eq!(call(program, nr, [5, 0, 0, 0, 0, 0]), RET_EPERM, "nr {nr}");
            }
            let oob = [3, 0, 1, libc::MSG_OOB as u64, 0, 0];
            assert_eq!(call(program, libc::SYS_sendto, oob), RET_EPERM);
            assert_eq!(call(program, libc::SYS_recvfrom, oob), RET_EPERM);
            assert_eq!(
                call(
                    program,
                    libc::SYS_sendmsg,
                    [3, 0, libc::MSG_OOB as u64, 0, 0, 0]
                ),
                RET_EPERM
            );
            let shared = (libc::MAP_SHARED | libc::MAP_ANONYMOUS) as u64;
            assert_eq!(
                call(program, libc::SYS_mmap, [0, 4096, 3, shared, u64::MAX, 0]),
                RET_EPERM
            );
            for nr in [
                libc::SYS_openat2,
                libc::SYS_clone,
                libc::SYS_clone3,
                libc::SYS_execve,
                libc::SYS_kill,
            ] {
                assert_eq!(call(program, nr, [0; 6]), RET_EPERM, "nr {nr}");
            }
        }
        for program in [safe, exact] {
            let open =
                |flags: libc::c_int| call(program, libc::SYS_openat, [0, 0, flags as u64, 0, 0, 0]);
            assert_eq!(open(libc::O_RDONLY), RET_ALLOW);
            assert_eq!(open(libc::O_WRONLY), RET_ALLOW);
            assert_eq!(open(libc::O_RDWR | libc::O_CREAT), RET_ALLOW);
            assert_eq!(open(libc::O_WRONLY | libc::O_RDWR), RET_EPERM);
            assert_eq!(
                open(libc::O_WRONLY | libc::O_RDWR | libc::O_PATH),
                RET_EPERM
            );
        }
        let openat = |mode: u64| [0, 0, libc::O_CREAT as u64, mode, 0, 0];
        assert_eq!(call(safe, libc::SYS_openat, openat(0o4755)), RET_EPERM);
        assert_eq!(call(exact, libc::SYS_openat, openat(0o4755)), RET_ALLOW);
        assert_eq!(call(safe, libc::SYS_openat, openat(0o755)), RET_ALLOW);
        assert_eq!(
            call(exact, libc::SYS_fchmodat, [3, 0, 0o644, 0, 0, 0]),
            RET_EPERM
        );
        #[cfg(target_arch = "x86_64")]
        assert_eq!(
            call(exact, libc::SYS_fchmodat2, [3, 0, 0o644, 0, 0, 0]),
            RET_EPERM
        );
        for (nr, at) in [
            (libc::SYS_fchmod, 1),
            (libc::SYS_mkdirat, 2),
            (libc::SYS_mknodat, 2),
        ] {
            for bits in [0o4000, 0o2000, 0o1000] {
                let mut args = [3, 0, 0, 0, 0, 0];
                args[at] = 0o755 | bits;
                assert_eq!(
                    call(safe, nr, args),
                    RET_EPERM,
                    "nr {nr} mode {:o}",
                    args[at]
                );
                assert_eq!(call(exact, nr, args), RET_ALLOW, "nr {nr}");
                args[at] = 0o755;
                assert_eq!(call(safe, nr, args), RET_ALLOW, "nr {nr}");
            }
        }
    }

    /// Owners and times by descriptor only: no `fchownat`, and `utimensat`
    /// only with a NULL path (a pointer is 64 bits: both halves count).
    #[test]
    fn owners_and_times_by_descriptor() {
        let run = |naming, nr: libc::c_long, args| {
            let programs = build(naming).unwrap();
            run(
                programs.for_modes(ModePolicy::Exact),
                nr as u32,
                AUDIT_ARCH,
                args,
            )
        };
        let pointer = 0x7ffd_1234_5000u64;
        let times = |path: u64| [3, path, pointer, 0, 0, 0];
        let chown = [3, pointer, 0, 0, libc::AT_EMPTY_PATH as u64, 0];
        assert_eq!(run(Naming::Paths, libc::SYS_fchownat, chown), RET_ALLOW);
        assert_eq!(
            run(Naming::Paths, libc::SYS_utimensat, times(pointer)),
            RET_ALLOW
        );
        assert_eq!(
            run(Naming::Descriptors, libc::SYS_fchownat, chown),
            RET_EPERM
        );
        assert_eq!(
            run(Naming::Descriptors, libc::SYS_utimensat, times(0)),
            RET_ALLOW
        );
        for path in [pointer, 1 << 32, pointer & 0xffff_ffff] {
            let verdict = run(Naming::Descriptors, libc::SYS_utimensat, times(path));
            assert_eq!(verdict, RET_EPERM, "path {path:#x}");
        }
    }

    /// `getxattrat` and `listxattrat` (Linux 6.13, the same number on every
    /// architecture; not in the `libc` crate yet).
    const SYS_GETXATTRAT: libc::c_long = 464;
    const SYS_LISTXATTRAT: libc::c_long = 465;

    /// A packing job reads extended attributes through its descriptors,
    /// never by path (a path may name a file outside the source on the
    /// Landlock rung); an extracting job reads none.
    #[test]
    fn extended_attributes_by_descriptor_and_only_when_packing() {
        let by_path = [
            libc::SYS_getxattr,
            libc::SYS_lgetxattr,
            libc::SYS_listxattr,
            libc::SYS_llistxattr,
            SYS_GETXATTRAT,
            SYS_LISTXATTRAT,
        ];
        let by_fd = [libc::SYS_fgetxattr, libc::SYS_flistxattr];
        for naming in [Naming::Paths, Naming::Descriptors] {
            let programs = build(naming).unwrap();
            let call = |program: &[seccompiler::sock_filter], nr: libc::c_long| {
                run(program, nr as u32, AUDIT_ARCH, [3, 0x7ffd_0000, 0, 0, 0, 0])
            };
            for nr in by_fd {
                assert_eq!(call(programs.for_packing(), nr), RET_ALLOW, "nr {nr}");
            }
            let extracting = [ModePolicy::Safe, ModePolicy::Exact].map(|m| programs.for_modes(m));
            for program in extracting {
                for nr in by_fd.into_iter().chain(by_path) {
                    assert_eq!(call(program, nr), RET_EPERM, "nr {nr}");
                }
            }
            for nr in by_path {
                assert_eq!(call(programs.for_packing(), nr), RET_EPERM, "nr {nr}");
            }
            // A packing job changes no file: no creation, no write access,
            // no owner, mode, time, size or attribute change.
            let packing = programs.for_packing();
            let open = |flags: libc::c_int| {
                let args = [3, 0x7ffd_0000, flags as u64, 0o644, 0, 0];
                run(packing, libc::SYS_openat as u32, AUDIT_ARCH, args)
            };
            let reading = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
            assert_eq!(open(reading), RET_ALLOW);
            assert_eq!(open(libc::O_RDONLY | libc::O_NONBLOCK), RET_ALLOW);
            for flags in [
                libc::O_WRONLY,
                libc::O_RDWR,
                libc::O_CREAT,
                libc::O_RDONLY | libc::O_TRUNC,
                libc::O_APPEND,
                libc::O_TMPFILE | libc::O_RDWR,
            ] {
                assert_eq!(open(flags), RET_EPERM, "openat flags {flags:#o}");
            }
            for nr in PACK_REFUSES {
                assert_eq!(call(packing, nr), RET_EPERM, "nr {nr}");
            }
            // Nor any descriptor's flags (`pack_into`'s output: `O_APPEND`
            // kept, a pipe never made non-blocking); reading them is fine.
            let fcntl = |cmd: libc::c_int, arg: libc::c_int| {
                let args = [3, cmd as u64, arg as u64, 0, 0, 0];
                run(packing, libc::SYS_fcntl as u32, AUDIT_ARCH, args)
            };
            for arg in [0, libc::O_NONBLOCK, libc::O_APPEND] {
                assert_eq!(fcntl(libc::F_SETFL, arg), RET_EPERM, "F_SETFL {arg:#o}");
            }
            assert_eq!(fcntl(libc::F_GETFL, 0), RET_ALLOW);
            assert_eq!(fcntl(libc::F_SETFD, libc::FD_CLOEXEC), RET_ALLOW);
        }
    }

    #[test]
    fn every_shape_of_list_compiles_and_decides() {
        for n in 0..40u32 {
            let calls: Vec<(u32, Leaf)> = (0..n)
                .map(|i| {
                    let leaf = match i % 7 {
                        3 => Leaf::Any(vec![vec![Test::Eq(0, i)]]),
                        5 => Leaf::Any(vec![
                            vec![Test::Eq(1, i), Test::Clear(2, 4)],
                            vec![Test::Eq(1, 0)],
                        ]),
                        _ => Leaf::Allow,
                    };
                    (i * 3 + 1, leaf)
                })
                .collect();
            let program = compile(calls.clone(), AUDIT_ARCH).unwrap();
            for nr in 0..130 {
                let leaf = calls.iter().find(|c| c.0 == nr).map(|c| &c.1);
                let decide = |args: [u64; 6]| run(&program, nr, AUDIT_ARCH, args);
                match leaf {
                    None => assert_eq!(decide([0; 6]), RET_EPERM, "n {n} nr {nr}"),
                    Some(Leaf::Allow) => assert_eq!(decide([u64::MAX; 6]), RET_ALLOW),
                    Some(Leaf::Any(alternatives)) if alternatives.len() == 1 => {
                        assert_eq!(decide([u64::MAX; 6]), RET_EPERM);
                        assert_eq!(decide([nr.into(), 0, 0, 0, 0, 0]), RET_EPERM);
                        assert_eq!(decide([((nr - 1) / 3).into(), 0, 0, 0, 0, 0]), RET_ALLOW);
                    }
                    Some(Leaf::Any(_)) => {
                        let i = u64::from((nr - 1) / 3);
                        assert_eq!(decide([0, i, 0, 0, 0, 0]), RET_ALLOW);
                        assert_eq!(decide([0, i, 4, 0, 0, 0]), RET_EPERM);
                        assert_eq!(decide([0, 0, 4, 0, 0, 0]), RET_ALLOW);
                        assert_eq!(decide([0, i + 1, 0, 0, 0, 0]), RET_EPERM);
                    }
                }
            }
        }
    }
}
