//! Which confinement a sandbox's workers get: public, and sent on the wire.

use serde::{Deserialize, Serialize};

/// How the sandbox confines its workers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum SandboxMode {
    /// The caller has `CAP_SYS_ADMIN` (root): workers get a new mount namespace
    /// and keep the privileges the job's options need.
    Privileged,
    /// An ordinary user: workers run in a user namespace where the caller's uid and
    /// gid (given here, as seen outside) are mapped to root. Files are owned by the
    /// caller; owners from the archive and device nodes cannot be kept.
    UserNamespace {
        /// The caller's uid outside the namespace.
        uid: u32,
        /// The caller's gid outside the namespace.
        gid: u32,
    },
    /// An ordinary user with subordinate ids (`/etc/subuid`, `/etc/subgid`),
    /// mapped by `newuidmap`/`newgidmap`: in the workers' user namespace, id 0 is
    /// the caller and ids `1..uids` (`1..gids`) are the caller's subordinate ids,
    /// in the order the files list them. Owners from the archive within those
    /// ranges are kept (with [`Options::preserve_owners`](crate::Options::preserve_owners));
    /// device nodes still cannot be created. See
    /// [`SandboxBuilder::subordinate_ids`](crate::SandboxBuilder::subordinate_ids).
    SubordinateIds {
        /// The caller's uid outside the namespace.
        uid: u32,
        /// The caller's gid outside the namespace.
        gid: u32,
        /// How many user ids the namespace maps (ids `0..uids`).
        uids: u32,
        /// How many group ids the namespace maps (ids `0..gids`).
        gids: u32,
    },
    /// The second rung, where namespaces cannot be had (a default Docker or
    /// Kubernetes container, Ubuntu 24.04 and later as a user): workers
    /// restrict themselves with Landlock to the destination (every filesystem
    /// right the kernel knows handled, reads included, granted only beneath
    /// it), with the same seccomp filter, capabilities, limits and
    /// no-new-privs as the first rung; no PID namespace (signals are refused by
    /// the seccomp filter, and by Landlock's signal scope from ABI 6). Where
    /// the process holds `CAP_SYS_CHROOT` (root in a default container) they
    /// also `chroot` into the destination; without it (any ordinary user) names
    /// are resolved below the destination in user space and Landlock alone
    /// keeps every access inside, while `stat` and `readlink` of outside paths
    /// remain possible for code running in the worker. Device nodes are not
    /// created on this rung, and a symlink keeps the worker's owner and the
    /// time it was made: owners and times are set through descriptors only
    /// (Landlock does not govern them), and a symlink cannot be opened for
    /// that.
    Landlock {
        /// The caller's effective uid (0: owners from the archive can be kept).
        uid: u32,
        /// The Landlock ABI version the kernel offers.
        abi: u32,
        /// Whether workers also `chroot` into the destination.
        chroot: bool,
    },
}

/// A rung of the confinement ladder, strongest first. See
/// [`SandboxBuilder::minimum_rung`](crate::SandboxBuilder::minimum_rung).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Rung {
    /// A mount namespace (and a user namespace unless root) with `pivot_root`
    /// into the destination, and a PID namespace.
    Namespaces,
    /// Landlock, and `chroot` into the destination where the process may (see
    /// [`SandboxMode::Landlock`]).
    Landlock,
}

impl std::fmt::Display for Rung {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Rung::Namespaces => "namespaces",
            Rung::Landlock => "landlock",
        })
    }
}

/// Which rungs a zygote may use, strongest first (the builder's choice, passed
/// to the zygote in its start-up marker).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rungs {
    pub(crate) namespaces: bool,
    pub(crate) landlock: bool,
}

impl Default for Rungs {
    fn default() -> Self {
        Rungs {
            namespaces: true,
            landlock: true,
        }
    }
}

impl Rungs {
    /// The marker's text: `n` and `l` for each allowed rung.
    pub(crate) fn encode(self) -> &'static str {
        match (self.namespaces, self.landlock) {
            (true, true) => "nl",
            (true, false) => "n",
            (false, true) => "l",
            (false, false) => "",
        }
    }

    /// The inverse of [`Rungs::encode`]; anything else allows every rung.
    pub(crate) fn decode(text: &str) -> Rungs {
        match text {
            "n" => Rungs {
                namespaces: true,
                landlock: false,
            },
            "l" => Rungs {
                namespaces: false,
                landlock: true,
            },
            _ => Rungs::default(),
        }
    }
}

impl SandboxMode {
    /// Whether workers may give files owners other than the caller: as root, or
    /// within the subordinate ranges.
    pub fn can_keep_owners(&self) -> bool {
        match self {
            SandboxMode::UserNamespace { .. } => false,
            SandboxMode::Landlock { uid, .. } => *uid == 0,
            _ => true,
        }
    }

    /// The rung of the confinement ladder this mode stands on.
    pub fn rung(&self) -> Rung {
        match self {
            SandboxMode::Landlock { .. } => Rung::Landlock,
            _ => Rung::Namespaces,
        }
    }

    /// Whether the workers' root is the destination (`pivot_root` or
    /// `chroot`): on every rung but Landlock without `CAP_SYS_CHROOT`.
    pub(crate) fn chroots(&self) -> bool {
        !matches!(self, SandboxMode::Landlock { chroot: false, .. })
    }

    /// Whether workers may create device nodes and write `trusted.*` extended
    /// attributes: only as root, outside any user namespace.
    pub fn is_privileged(&self) -> bool {
        matches!(self, SandboxMode::Privileged)
    }
}
