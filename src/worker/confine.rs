//! Confinement: the worker's root becomes the destination.
//!
//! Where the caller is root over its mount namespace ([`Root::Empty`]), the
//! warm worker first leaves the host's mounts: it mounts an empty read-only
//! tmpfs on `/`, `pivot_root`s into it and detaches the old root (or
//! `chroot`s into it where `pivot_root` is refused), all before a job
//! exists. A job then brings a detached clone of the destination's mount,
//! made by the caller from its descriptor (`open_tree(OPEN_TREE_CLONE)`,
//! no path resolved again, mounts below it left out, private, `nodev`,
//! `nosuid` and `noexec`, read-only for a listing or packing job); [`attach`]
//! checks those attributes, mounts it over the empty root and `chroot`s into
//! it. The worker's namespace then holds two mounts, the empty tmpfs beneath
//! the destination's clone, and nothing of the host (where `pivot_root` was
//! refused and the worker `chroot`ed into the empty root instead, the host's
//! mounts stay in its namespace, unreachable by path, as below).
//! Detaching the host's mounts ends in an RCU grace period (hundreds of
//! microseconds on a busy machine, milliseconds in the tail): done warm, it
//! is off the job's path.
//!
//! Otherwise ([`Root::Host`]: a user namespace, which cannot clone the
//! caller's mounts), the worker does it all at job time. Sequence (checked
//! on Linux 6.18 as root and in a user namespace):
//! `open_tree(path, OPEN_TREE_CLONE)` makes a non-recursive clone of the
//! destination's mount (mounts below it stay invisible); its `(st_dev, st_ino)`
//! must equal the caller's descriptor's, or someone swapped a path component;
//! `mount_setattr` makes it `nodev`, `nosuid`, `noexec` (and read-only);
//! `move_mount` attaches the clone over the path; `fchdir` into it;
//! `pivot_root(".", ".")` stacks the old root on top; `umount2(".", MNT_DETACH)`
//! drops it; `chdir("/")`. Afterwards `/` is the destination and nothing else,
//! not even `/proc`.
//!
//! Where `pivot_root` is impossible (an initramfs root, where it fails with
//! `EINVAL`, or a container's seccomp profile, `EPERM`), the worker falls back
//! to `chroot(".")` into the clone; the rest of the mount namespace is then
//! still mapped but unreachable by path (`..` stops at the clone's boundary,
//! and the worker keeps no `CAP_SYS_CHROOT` and may not call `chroot`).
//!
//! On the Landlock rung ([`enter_landlock`]) there is no mount namespace: the
//! worker changes into the caller's descriptor of the destination and, where
//! it holds `CAP_SYS_CHROOT`, `chroot`s there (so no path names anything
//! outside it, and the capability to leave is dropped right after), and
//! restricts itself with a Landlock ruleset that handles
//! every filesystem right the kernel knows and grants them only beneath the
//! destination (read rights only for a listing job; never block devices or
//! device ioctls), plus the signal and abstract-socket scopes from ABI 6.

use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{fstat, CWD};
use rustix::io::Errno;
use rustix::mount::{
    fsconfig_create, fsconfig_set_string, fsmount, fsopen, mount_change, move_mount, open_tree,
    unmount, FsMountFlags, FsOpenFlags, MountAttrFlags, MountPropagationFlags, MoveMountFlags,
    OpenTreeFlags, UnmountFlags,
};
use rustix::process::{chdir, chroot, fchdir, pivot_root};

/// Why confinement failed.
pub(crate) enum ConfineError {
    /// The path no longer leads to the caller's directory (or does not exist in
    /// this worker's view of the mounts).
    Changed,
    /// A system call failed.
    Failed(String),
}

fn failed(call: &str, e: Errno) -> ConfineError {
    ConfineError::Failed(format!("{call} failed: {e}"))
}

/// Makes the destination, given as the caller's descriptor, the working
/// directory of this process (both threads share it) and, with `chroot`, its
/// root; restricts the calling thread, and the threads it starts afterwards,
/// with Landlock to it. Sets no-new-privs (Landlock requires it of an
/// unprivileged process).
pub(crate) fn enter_landlock(
    dest_fd: OwnedFd,
    read_only: bool,
    chroot_too: bool,
) -> Result<(), ConfineError> {
    use landlock::{
        Access, AccessFs, PathBeneath, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus,
        Scope, ABI,
    };
    fchdir(&dest_fd).map_err(|e| failed("fchdir", e))?;
    if chroot_too {
        chroot(".").map_err(|e| failed("chroot", e))?;
        chdir("/").map_err(|e| failed("chdir(/)", e))?;
    }
    rustix::thread::set_no_new_privs(true).map_err(|e| failed("prctl(PR_SET_NO_NEW_PRIVS)", e))?;
    // Every right this crate knows; the kernel's own subset is handled (best
    // effort), and the rung is refused below if nothing is enforced.
    let abi = ABI::V6;
    // No block devices and no device ioctls: this rung makes no device node
    // (a character device is an overlay whiteout, 0:0, the only kind the
    // kernel lets a process without CAP_MKNOD make, and the worker has none).
    let granted = match read_only {
        true => AccessFs::from_read(abi),
        false => AccessFs::from_all(abi) & !(AccessFs::MakeBlock | AccessFs::IoctlDev),
    };
    let landlock = |e: landlock::RulesetError| ConfineError::Failed(format!("Landlock: {e}"));
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
        .and_then(|r| r.scope(Scope::from_all(abi)))
        .and_then(|r| r.create())
        .and_then(|r| r.add_rule(PathBeneath::new(dest_fd, granted)))
        .and_then(|r| r.restrict_self())
        .map_err(landlock)?;
    match status.ruleset {
        RulesetStatus::NotEnforced => Err(ConfineError::Failed(
            "Landlock: the kernel enforced no rule".into(),
        )),
        _ => Ok(()),
    }
}

/// Destination-independent set-up, done while the worker is warm: make every
/// mount a slave, so nothing the worker mounts propagates to the host while the
/// host's unmounts still reach the worker's copies.
pub(crate) fn prepare() -> Result<(), String> {
    mount_change(
        "/",
        MountPropagationFlags::DOWNSTREAM | MountPropagationFlags::REC,
    )
    .map_err(|e| format!("making / a recursive slave mount failed: {e}"))
}

/// Where a warm worker waits for its job.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Root {
    /// Its copy of the host's mounts: the worker clones the destination's
    /// mount itself ([`enter`]).
    Host,
    /// An empty read-only tmpfs: the job brings a clone of the
    /// destination's mount ([`attach`]).
    Empty,
}

/// Leaves the host's mounts for an empty read-only tmpfs, while warm (after
/// [`prepare`], so that nothing mounted here reaches the host). `Root::Host`
/// if the kernel or a security module refuses the new mount (nothing has
/// changed then); an error if a later step fails.
pub(crate) fn enter_empty_root() -> Result<Root, String> {
    // Entering the clone at job time is a `chroot` (a `pivot_root` would
    // leave the empty root stacked above, to unmount on the job's path):
    // without `CAP_SYS_CHROOT` (a bounding set without it), the old way.
    if !may_chroot() {
        return Ok(Root::Host);
    }
    let Ok(empty) = empty_tmpfs() else {
        return Ok(Root::Host);
    };
    if move_mount(
        &empty,
        "",
        CWD,
        "/",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .is_err()
    {
        return Ok(Root::Host);
    }
    let failed = |call: &str, e: Errno| format!("entering an empty root: {call} failed: {e}");
    fchdir(&empty).map_err(|e| failed("fchdir", e))?;
    match pivot_root(".", ".") {
        Ok(()) => unmount(".", UnmountFlags::DETACH).map_err(|e| failed("umount2", e))?,
        // As in `enter`: an initramfs root, or a container's seccomp profile.
        Err(Errno::INVAL | Errno::PERM) => chroot(".").map_err(|e| failed("chroot", e))?,
        Err(e) => return Err(failed("pivot_root", e)),
    }
    chdir("/").map_err(|e| failed("chdir(/)", e))?;
    Ok(Root::Empty)
}

fn may_chroot() -> bool {
    rustix::thread::capabilities(None).is_ok_and(|sets| {
        sets.effective
            .contains(rustix::thread::CapabilitySet::SYS_CHROOT)
    })
}

/// A new tmpfs, detached, read-only and empty (nothing can be created in it).
fn empty_tmpfs() -> rustix::io::Result<OwnedFd> {
    let fs = fsopen("tmpfs", FsOpenFlags::FSOPEN_CLOEXEC)?;
    fsconfig_set_string(&fs, "mode", "0555")?;
    fsconfig_create(&fs)?;
    fsmount(
        &fs,
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::MOUNT_ATTR_RDONLY
            | MountAttrFlags::MOUNT_ATTR_NOSUID
            | MountAttrFlags::MOUNT_ATTR_NODEV
            | MountAttrFlags::MOUNT_ATTR_NOEXEC,
    )
}

/// Makes `tree`, the caller's detached clone of the destination's mount, the
/// root of this process: mounted over the empty root, then `chroot` (no
/// unmount on the job's path; the empty tmpfs stays beneath, unreachable).
/// The clone came from the caller's descriptor, so no identity check is
/// needed; a descriptor that is not a detached mount is refused by
/// `move_mount`, and one without the attributes a worker's clone must have
/// (no devices, no execution; read-only if `read_only`) is refused before.
pub(crate) fn attach(tree: OwnedFd, read_only: bool) -> Result<(), ConfineError> {
    match crate::sys::mounts::is_restricted_for_worker(tree.as_fd(), read_only) {
        Ok(true) => {}
        Ok(false) => {
            return Err(ConfineError::Failed(
                "the destination's clone lacks nodev, nosuid, noexec or read-only".into(),
            ))
        }
        Err(e) => return Err(ConfineError::Failed(format!("fstatvfs failed: {e}"))),
    }
    move_mount(&tree, "", CWD, "/", MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH)
        .map_err(|e| failed("move_mount", e))?;
    fchdir(&tree).map_err(|e| failed("fchdir", e))?;
    chroot(".").map_err(|e| failed("chroot", e))?;
    chdir("/").map_err(|e| failed("chdir(/)", e))?;
    Ok(())
}

/// Makes the destination the root of this process. `dest_fd` is the caller's
/// descriptor, the identity the mounted clone must match. The clone is
/// mounted `nodev`, `nosuid` and `noexec`; `read_only`: read-only too (a
/// listing or packing job), so no write reaches the destination whatever the
/// worker does.
pub(crate) fn enter(dest: &[u8], dest_fd: OwnedFd, read_only: bool) -> Result<(), ConfineError> {
    let path = Path::new(OsStr::from_bytes(dest));
    let tree = open_tree(
        CWD,
        path,
        OpenTreeFlags::OPEN_TREE_CLONE
            | OpenTreeFlags::OPEN_TREE_CLOEXEC
            | OpenTreeFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(|e| match e {
        Errno::NOENT | Errno::NOTDIR | Errno::LOOP => ConfineError::Changed,
        e => failed("open_tree(OPEN_TREE_CLONE)", e),
    })?;
    let ours = fstat(&tree).map_err(|e| failed("fstat", e))?;
    let theirs = fstat(&dest_fd).map_err(|e| failed("fstat", e))?;
    if (ours.st_dev, ours.st_ino) != (theirs.st_dev, theirs.st_ino) {
        return Err(ConfineError::Changed);
    }
    drop(dest_fd);
    crate::sys::mounts::restrict_for_worker(tree.as_fd(), read_only)
        .map_err(|e| ConfineError::Failed(format!("mount_setattr failed: {e}")))?;
    move_mount(
        &tree,
        "",
        CWD,
        path,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|e| failed("move_mount", e))?;
    fchdir(&tree).map_err(|e| failed("fchdir", e))?;
    match pivot_root(".", ".") {
        Ok(()) => {
            unmount(".", UnmountFlags::DETACH).map_err(|e| failed("umount2(MNT_DETACH)", e))?;
        }
        // An initramfs (rootfs) root cannot be pivoted away from (EINVAL), and
        // Docker's default seccomp profile refuses pivot_root even to a
        // container given CAP_SYS_ADMIN (EPERM).
        Err(Errno::INVAL | Errno::PERM) => {
            chroot(".").map_err(|e| failed("chroot (pivot_root fallback)", e))?
        }
        Err(e) => return Err(failed("pivot_root", e)),
    }
    chdir("/").map_err(|e| failed("chdir(/)", e))?;
    Ok(())
}
