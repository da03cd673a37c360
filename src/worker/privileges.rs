//! The second wall: after confinement the worker sheds what its job does not need.
//!
//! In order: resource limits (`RLIMIT_CORE` 0, a small `RLIMIT_NOFILE`), every
//! capability the options do not need dropped from the bounding, ambient,
//! inheritable, permitted and effective sets, and `PR_SET_NO_NEW_PRIVS`. Then
//! the seccomp allow-list of the system calls the writer really makes (see
//! [`seccomp`](super::seccomp)).

use rustix::process::{setrlimit, Resource, Rlimit};
use rustix::thread::{
    clear_ambient_capability_set, remove_capability_from_bounding_set, set_capabilities,
    set_no_new_privs, CapabilitySet, CapabilitySets,
};

use crate::options::{ModePolicy, Options, XattrPolicy};

/// The most memory a worker may allocate (`RLIMIT_DATA`: private writable
/// mappings and the heap).
const MAX_DATA: u64 = 1 << 30;
/// The most address space a worker may map (`RLIMIT_AS`): `MAX_DATA` and room
/// for what is mapped already (the executable, libraries, two stacks, the
/// allocator's reserved arenas: about 100 MiB here). Shared mappings are
/// refused by the seccomp filter; this bounds every other kind.
const MAX_ADDRESS_SPACE: u64 = MAX_DATA + (512 << 20);
/// The most descriptors a worker may hold (it needs about ten).
const MAX_OPEN_FILES: u64 = 64;

/// The capabilities a job with `options` needs.
///
/// Always `DAC_OVERRIDE` and `FOWNER`: the destination and what the archive
/// creates may belong to other users (or have read-only modes until the end), and
/// inside the confined root these reach nothing the archive could not replace
/// anyway. Keeping owners adds `CHOWN`; exact modes or kept owners add `FSETID`
/// (a set-group-id bit survives for a group the worker is not in),
/// device nodes add `MKNOD` (only where `devices` are made at all: as root on
/// the namespace rung), all extended attributes add `SETFCAP`
/// (`security.capability`). A listing job needs none; a packing job
/// (`packing`) reads every file of its source, read-only: `DAC_READ_SEARCH`.
pub(crate) fn needed_capabilities(
    options: &Options,
    devices: bool,
    packing: bool,
) -> CapabilitySet {
    if packing {
        return CapabilitySet::DAC_READ_SEARCH;
    }
    if options.list_only {
        // A listing writes nothing (and its root is mounted read-only).
        return CapabilitySet::empty();
    }
    let mut caps = CapabilitySet::DAC_OVERRIDE | CapabilitySet::FOWNER;
    if options.preserve_owners {
        caps |= CapabilitySet::CHOWN;
    }
    if options.preserve_owners || options.mode == ModePolicy::Exact {
        caps |= CapabilitySet::FSETID;
    }
    if options.allow_devices && devices {
        caps |= CapabilitySet::MKNOD;
    }
    if options.xattrs == XattrPolicy::All {
        caps |= CapabilitySet::SETFCAP;
    }
    caps
}

/// Limits, capabilities and no-new-privs; call after confinement. `devices`:
/// whether this sandbox makes device nodes, `packing`: whether the job packs
/// (see [`needed_capabilities`]).
pub(crate) fn shed(options: &Options, devices: bool, packing: bool) -> Result<(), String> {
    set_limits(options)?;
    shed_thread_to(kept_capabilities(options, devices, packing)?)
}

/// What the options need and the calling thread has: on the Landlock rung a
/// container may have dropped some (the entries that need it then fail).
fn kept_capabilities(
    options: &Options,
    devices: bool,
    packing: bool,
) -> Result<CapabilitySet, String> {
    let held = rustix::thread::capabilities(None)
        .map_err(|e| format!("capget failed: {e}"))?
        .permitted;
    Ok(needed_capabilities(options, devices, packing) & held)
}

/// Keeps only `keep` of the calling thread's capabilities (every set), and
/// sets no_new_privs.
fn shed_thread_to(keep: CapabilitySet) -> Result<(), String> {
    let fail = |what: &str, e: rustix::io::Errno| format!("{what} failed: {e}");
    shrink_bounding_set(keep)?;
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

/// The resource limits: no core dumps; memory (enough for decoders' windows
/// and buffers, not for a hostile multi-gigabyte extension header); a few
/// descriptors; and no file larger than the largest entry the job allows (a
/// sparse file's apparent size, when that is larger), so a compromised worker
/// cannot make one file larger either.
fn set_limits(options: &Options) -> Result<(), String> {
    let limits = &options.limits;
    let max_file = limits.max_entry_size.max(limits.max_sparse_size);
    let limits = [
        (Resource::Core, 0, "RLIMIT_CORE"),
        (Resource::Data, MAX_DATA, "RLIMIT_DATA"),
        (Resource::As, MAX_ADDRESS_SPACE, "RLIMIT_AS"),
        (Resource::Nofile, MAX_OPEN_FILES, "RLIMIT_NOFILE"),
        (Resource::Fsize, max_file, "RLIMIT_FSIZE"),
    ];
    set_cpu_limit(options.limits.max_cpu_time)?;
    for (resource, value, name) in limits {
        // u64::MAX (Limits::unlimited) is RLIM_INFINITY.
        let value = (value != u64::MAX).then_some(value);
        let limit = Rlimit {
            current: value,
            maximum: value,
        };
        setrlimit(resource, limit).map_err(|e| format!("setrlimit({name}) failed: {e}"))?;
    }
    Ok(())
}

/// `RLIMIT_CPU`: `SIGXCPU` at `seconds`, which ends the worker with
/// [`sys::EXIT_CPU_TIME`](crate::sys::EXIT_CPU_TIME) (the caller names the
/// limit), and `SIGKILL` one second later should a compromised worker catch it.
fn set_cpu_limit(seconds: u64) -> Result<(), String> {
    crate::sys::exit_on_cpu_time_limit().map_err(|e| format!("handling SIGXCPU failed: {e}"))?;
    let limit = match seconds {
        u64::MAX => Rlimit {
            current: None,
            maximum: None,
        },
        s => Rlimit {
            current: Some(s),
            maximum: Some(s.saturating_add(1)),
        },
    };
    setrlimit(Resource::Cpu, limit).map_err(|e| format!("setrlimit(RLIMIT_CPU) failed: {e}"))
}

/// Drops every capability of the calling thread (bounding, ambient,
/// effective, permitted and inheritable sets) and sets no_new_privs: for the
/// decoding thread (also the writer of plain input), which needs none. Capabilities are per thread: the
/// applier's own set is [`shed`]'s business.
pub(crate) fn shed_thread() -> Result<(), String> {
    shed_thread_to(CapabilitySet::empty())
}

/// Drops every capability but `keep` from the bounding set. A thread without
/// `CAP_SETPCAP` (an ordinary user on the Landlock rung) may not, and need
/// not: the bounding set only limits what an `execve` could gain, and
/// no-new-privs and the seccomp filter (no `execve`) rule that out already.
fn shrink_bounding_set(keep: CapabilitySet) -> Result<(), String> {
    let effective = rustix::thread::capabilities(None)
        .map_err(|e| format!("capget failed: {e}"))?
        .effective;
    if !effective.contains(CapabilitySet::SETPCAP) {
        return Ok(());
    }
    for bit in 0..64 {
        let cap = CapabilitySet::from_bits_retain(1 << bit);
        if keep.contains(cap) {
            continue;
        }
        match remove_capability_from_bounding_set(cap) {
            Ok(()) => {}
            // Past the kernel's last capability.
            Err(rustix::io::Errno::INVAL) => break,
            Err(e) => {
                return Err(format!(
                    "dropping a capability from the bounding set failed: {e}"
                ))
            }
        }
    }
    Ok(())
}
