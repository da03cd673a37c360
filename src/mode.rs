//! Which confinement a sandbox's workers get: public, and sent on the wire.

use serde::{Deserialize, Serialize};

/// How the sandbox confines its workers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
}

impl SandboxMode {
    /// Whether workers may give files owners other than the caller: as root, or
    /// within the subordinate ranges.
    pub fn can_keep_owners(&self) -> bool {
        !matches!(self, SandboxMode::UserNamespace { .. })
    }

    /// Whether workers may create device nodes and write `trusted.*` extended
    /// attributes: only as root, outside any user namespace.
    pub fn is_privileged(&self) -> bool {
        matches!(self, SandboxMode::Privileged)
    }
}
