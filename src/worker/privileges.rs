//! The second wall: after confinement the worker sheds what its job does not need.
//!
//! In order: resource limits (`RLIMIT_CORE` 0, a small `RLIMIT_NOFILE`), every
//! capability the options do not need dropped from the bounding, ambient,
//! inheritable, permitted and effective sets, `PR_SET_NO_NEW_PRIVS`, and a
//! seccomp allow-list of the system calls the writer really makes. Everything
//! else fails with `EPERM`: no `execve`, `socket`, `connect`, `mount`, `umount2`,
//! `pivot_root`, `chroot`, `ptrace`, `unshare`, `setns`, `bpf`, `keyctl`,
//! `io_uring_*`, and no `clone`: the decoding thread is started before the filter
//! and the filter is applied to both threads at once (`SECCOMP_FILTER_FLAG_TSYNC`).

use std::collections::BTreeMap;

use rustix::process::{getpid, setrlimit, Resource, Rlimit};
use rustix::thread::{
    clear_ambient_capability_set, remove_capability_from_bounding_set, set_capabilities,
    set_no_new_privs, CapabilitySet, CapabilitySets,
};
use seccompiler::{
    SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
    TargetArch,
};

use crate::options::{ModePolicy, Options, WhiteoutFormat, XattrPolicy};

/// The most memory a worker may allocate (`RLIMIT_DATA`).
const MAX_DATA: u64 = 1 << 30;
/// The most descriptors a worker may hold (it needs about ten).
const MAX_OPEN_FILES: u64 = 64;

/// The capabilities a job with `options` needs.
///
/// Always `DAC_OVERRIDE` and `FOWNER`: the destination and what the archive
/// creates may belong to other users (or have read-only modes until the end), and
/// inside the confined root these reach nothing the archive could not replace
/// anyway. Keeping owners adds `CHOWN`; exact modes or kept owners add `FSETID`
/// (a set-group-id bit survives for a group the worker is not in),
/// device nodes add `MKNOD`, all extended attributes add `SETFCAP`
/// (`security.capability`).
pub(crate) fn needed_capabilities(options: &Options) -> CapabilitySet {
    let mut caps = CapabilitySet::DAC_OVERRIDE | CapabilitySet::FOWNER;
    if options.preserve_owners {
        caps |= CapabilitySet::CHOWN;
    }
    if options.preserve_owners || options.mode == ModePolicy::Exact {
        caps |= CapabilitySet::FSETID;
    }
    if options.allow_devices {
        caps |= CapabilitySet::MKNOD;
    }
    if options.xattrs == XattrPolicy::All {
        caps |= CapabilitySet::SETFCAP;
    }
    if options.whiteouts == Some(WhiteoutFormat::Overlay) {
        // trusted.overlay.opaque; mount and its kin stay denied by seccomp.
        caps |= CapabilitySet::SYS_ADMIN;
    }
    caps
}

/// Limits, capabilities and no-new-privs; call after confinement.
pub(crate) fn shed(options: &Options) -> Result<(), String> {
    let fail = |what: &str, e: rustix::io::Errno| format!("{what} failed: {e}");
    setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    )
    .map_err(|e| fail("setrlimit(RLIMIT_CORE)", e))?;
    // Memory: enough for decoders' windows and buffers, not for a hostile
    // multi-gigabyte extension header.
    let data = Rlimit {
        current: Some(MAX_DATA),
        maximum: Some(MAX_DATA),
    };
    setrlimit(Resource::Data, data).map_err(|e| fail("setrlimit(RLIMIT_DATA)", e))?;
    let files = Rlimit {
        current: Some(MAX_OPEN_FILES),
        maximum: Some(MAX_OPEN_FILES),
    };
    setrlimit(Resource::Nofile, files).map_err(|e| fail("setrlimit(RLIMIT_NOFILE)", e))?;
    let keep = needed_capabilities(options);
    for bit in 0..64 {
        let cap = CapabilitySet::from_bits_retain(1 << bit);
        if keep.contains(cap) {
            continue;
        }
        match remove_capability_from_bounding_set(cap) {
            // Past the kernel's last capability.
            Ok(()) | Err(rustix::io::Errno::INVAL) => {}
            Err(e) => return Err(fail("dropping a capability from the bounding set", e)),
        }
    }
    clear_ambient_capability_set().map_err(|e| fail("clearing the ambient capabilities", e))?;
    let sets = CapabilitySets {
        effective: keep,
        permitted: keep,
        inheritable: CapabilitySet::empty(),
    };
    set_capabilities(None, sets).map_err(|e| fail("capset", e))?;
    set_no_new_privs(true).map_err(|e| fail("prctl(PR_SET_NO_NEW_PRIVS)", e))?;
    Ok(())
}

#[cfg(target_arch = "x86_64")]
const ARCH: TargetArch = TargetArch::x86_64;
#[cfg(target_arch = "aarch64")]
const ARCH: TargetArch = TargetArch::aarch64;

/// The system calls a worker makes after confinement, for every thread.
fn allowed() -> Vec<libc::c_long> {
    let mut calls = vec![
        // I/O on the job socket and the files being written.
        libc::SYS_read,
        libc::SYS_write,
        libc::SYS_pwrite64,
        libc::SYS_readv,
        libc::SYS_writev,
        libc::SYS_recvfrom,
        libc::SYS_recvmsg,
        libc::SYS_sendto,
        libc::SYS_sendmsg,
        libc::SYS_close,
        libc::SYS_lseek,
        libc::SYS_fcntl,
        libc::SYS_ftruncate,
        libc::SYS_fallocate,
        // Creating entries.
        libc::SYS_openat,
        libc::SYS_openat2,
        libc::SYS_getdents64,
        libc::SYS_mkdirat,
        libc::SYS_unlinkat,
        libc::SYS_symlinkat,
        libc::SYS_linkat,
        libc::SYS_mknodat,
        libc::SYS_fchown,
        libc::SYS_fchownat,
        libc::SYS_fchmod,
        libc::SYS_fchmodat,
        libc::SYS_utimensat,
        libc::SYS_fsetxattr,
        libc::SYS_newfstatat,
        libc::SYS_fstat,
        libc::SYS_statx,
        // Memory and threads (no clone: no new thread or process).
        libc::SYS_mmap,
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
    ];
    #[cfg(target_arch = "x86_64")]
    calls.push(libc::SYS_fchmodat2);
    calls
}

/// Builds the seccomp allow-list for this worker (done while it is warm, so a
/// job only pays for installing it).
pub(crate) fn build_seccomp() -> Result<seccompiler::BpfProgram, String> {
    fn fail(e: impl std::fmt::Display) -> String {
        format!("building the seccomp filter failed: {e}")
    }
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
        allowed().into_iter().map(|nr| (nr, Vec::new())).collect();
    // Signals only to ourselves (abort() raises SIGABRT); never to other
    // processes of the same user outside the sandbox.
    let own_pid = getpid().as_raw_nonzero().get() as u64;
    let to_self = SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, own_pid)
        .map_err(fail)?;
    rules.insert(
        libc::SYS_tgkill,
        vec![SeccompRule::new(vec![to_self]).map_err(fail)?],
    );
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Errno(libc::EPERM as u32),
        SeccompAction::Allow,
        ARCH,
    )
    .map_err(fail)?;
    filter.try_into().map_err(fail)
}

/// Installs the allow-list on every thread of the worker at once.
pub(crate) fn install_seccomp(program: &seccompiler::BpfProgram) -> Result<(), String> {
    seccompiler::apply_filter_all_threads(program)
        .map_err(|e| format!("installing the seccomp filter failed: {e}"))
}
