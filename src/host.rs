//! What this host allows: the facts each confinement wall depends on, read
//! from `/proc` (and one harmless Landlock query). Used by the zygote to say
//! *why* confinement is unavailable, and by [`diagnose`] (`untar --doctor`).

use crate::sys;

/// One wall and whether this process could have it, with the reason.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Check {
    /// The wall: "user namespaces", "mount namespace", ...
    pub wall: &'static str,
    /// Whether the facts read allow it. A `true` is a necessary condition, not
    /// a proof: [`Sandbox::new`](crate::Sandbox::new) probes by doing the work.
    pub available: bool,
    /// What was read, in words.
    pub detail: String,
}

/// The facts read from `/proc/self/status` and the sysctls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Facts {
    pub euid: u32,
    /// `CapEff`.
    pub caps: u64,
    /// `Seccomp:` 0 none, 1 strict, 2 filter.
    pub seccomp: u32,
    pub no_new_privs: bool,
    /// `user.max_user_namespaces`.
    pub max_user_namespaces: Option<u64>,
    /// Debian's `kernel.unprivileged_userns_clone`.
    pub unprivileged_userns_clone: Option<u64>,
    /// Ubuntu's `kernel.apparmor_restrict_unprivileged_userns`.
    pub apparmor_restricts_userns: Option<u64>,
    /// `/proc/self/attr/current` (the AppArmor or SELinux label).
    pub lsm_label: Option<String>,
    pub landlock: Result<u32, String>,
}

impl Default for Facts {
    fn default() -> Self {
        Facts {
            euid: 0,
            caps: 0,
            seccomp: 0,
            no_new_privs: false,
            max_user_namespaces: None,
            unprivileged_userns_clone: None,
            apparmor_restricts_userns: None,
            lsm_label: None,
            landlock: Err("not read".into()),
        }
    }
}

const CAP_SYS_CHROOT: u32 = 18;
const CAP_SYS_ADMIN: u32 = 21;

impl Facts {
    /// Reads them for this process.
    pub(crate) fn read() -> Facts {
        // Capabilities and seccomp are per thread: this thread's.
        let status = std::fs::read_to_string("/proc/thread-self/status")
            .or_else(|_| std::fs::read_to_string("/proc/self/status"))
            .unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(str::trim)
        };
        let sysctl = |path: &str| {
            std::fs::read_to_string(path)
                .ok()
                .and_then(|v| v.trim().parse().ok())
        };
        Facts {
            euid: rustix::process::geteuid().as_raw(),
            caps: field("CapEff:")
                .and_then(|h| u64::from_str_radix(h, 16).ok())
                .unwrap_or(0),
            seccomp: field("Seccomp:").and_then(|v| v.parse().ok()).unwrap_or(0),
            no_new_privs: field("NoNewPrivs:") == Some("1"),
            max_user_namespaces: sysctl("/proc/sys/user/max_user_namespaces"),
            unprivileged_userns_clone: sysctl("/proc/sys/kernel/unprivileged_userns_clone"),
            apparmor_restricts_userns: sysctl(
                "/proc/sys/kernel/apparmor_restrict_unprivileged_userns",
            ),
            lsm_label: std::fs::read_to_string("/proc/self/attr/current")
                .ok()
                .map(|l| l.trim_end_matches(['\0', '\n']).to_string())
                .filter(|l| !l.is_empty() && l != "unconfined"),
            landlock: sys::landlock_abi().map_err(|e| e.to_string()),
        }
    }

    /// Whether this thread holds `CAP_SYS_ADMIN` in its user namespace (the
    /// zygote then confines its workers as root).
    pub(crate) fn has_cap_sys_admin(&self) -> bool {
        self.has(CAP_SYS_ADMIN)
    }

    /// Whether this thread holds `CAP_SYS_CHROOT` (the Landlock rung needs it).
    pub(crate) fn has_cap_sys_chroot(&self) -> bool {
        self.has(CAP_SYS_CHROOT)
    }

    fn has(&self, cap: u32) -> bool {
        self.caps & (1 << cap) != 0
    }

    /// Why creating or using a user namespace may have been refused: every
    /// blocker these facts show, most likely first. Root is "root without
    /// `CAP_SYS_ADMIN`" when it lacks it, never "not root".
    pub(crate) fn user_namespace_blockers(&self) -> Vec<String> {
        let mut found = Vec::new();
        match (self.euid, self.has(CAP_SYS_ADMIN)) {
            (0, false) => found.push(
                "the process is root but without CAP_SYS_ADMIN (a container's default \
                 capability set)"
                    .to_string(),
            ),
            (0, true) => {}
            (uid, _) => found.push(format!("the process is not root (uid {uid})")),
        }
        if self.seccomp == 2 {
            found.push(
                "a seccomp filter is in force (Docker's, containerd's and Kubernetes' \
                 RuntimeDefault profiles refuse unshare(CLONE_NEWUSER), clone with \
                 CLONE_NEW* and mount without CAP_SYS_ADMIN)"
                    .to_string(),
            );
        }
        if self.max_user_namespaces == Some(0) {
            found.push("user.max_user_namespaces is 0".to_string());
        }
        if self.unprivileged_userns_clone == Some(0) {
            found.push("kernel.unprivileged_userns_clone is 0".to_string());
        }
        if self.apparmor_restricts_userns == Some(1) {
            found.push(
                "kernel.apparmor_restrict_unprivileged_userns is 1 (Ubuntu 24.04 and \
                 later: a user namespace can be created but holds no capability)"
                    .to_string(),
            );
        }
        if let Some(label) = &self.lsm_label {
            found.push(format!("an LSM confines the process: label {label}"));
        }
        found
    }

    /// The walls, one check each.
    pub(crate) fn checks(&self) -> Vec<Check> {
        let blockers = self.user_namespace_blockers();
        let privileged = self.euid == 0 && self.has(CAP_SYS_ADMIN);
        // Who the process is decides only whether it needs a user namespace.
        let userns_ok = privileged || !blockers.iter().any(|b| !b.starts_with("the process is"));
        let check = |wall, available, detail: String| Check {
            wall,
            available,
            detail,
        };
        let joined = |list: &[String]| match list.is_empty() {
            true => "nothing in the way found".to_string(),
            false => list.join("; "),
        };
        vec![
            check(
                "capabilities",
                privileged,
                format!(
                    "euid {}, CAP_SYS_ADMIN {}, CAP_SYS_CHROOT {}",
                    self.euid,
                    yes(self.has(CAP_SYS_ADMIN)),
                    yes(self.has(CAP_SYS_CHROOT))
                ),
            ),
            check(
                "user namespaces",
                userns_ok,
                match (privileged, userns_ok) {
                    (true, _) => "not needed: root with CAP_SYS_ADMIN".to_string(),
                    (false, true) => format!(
                        "needed ({}); nothing in the way found",
                        blockers.first().map_or("", String::as_str)
                    ),
                    (false, false) => joined(&blockers),
                },
            ),
            check(
                "mount namespace and pivot_root",
                userns_ok,
                "need CAP_SYS_ADMIN, as root or inside a user namespace".to_string(),
            ),
            check(
                "PID namespace",
                userns_ok,
                "needs CAP_SYS_ADMIN, as root or inside a user namespace".to_string(),
            ),
            check(
                "Landlock",
                self.landlock.is_ok(),
                match &self.landlock {
                    Ok(abi) => format!("ABI {abi}"),
                    Err(e) => format!("unavailable: {e}"),
                },
            ),
            check(
                "Landlock rung",
                self.landlock.is_ok(),
                match (&self.landlock, self.has_cap_sys_chroot()) {
                    (Ok(_), true) => "possible, with chroot (CAP_SYS_CHROOT is held; \
                                      used where namespaces are refused)"
                        .to_string(),
                    (Ok(_), false) => "possible, without chroot (no CAP_SYS_CHROOT: names \
                                       are walked below the destination, Landlock keeps \
                                       every access inside it)"
                        .to_string(),
                    (Err(_), _) => "not possible: no Landlock".to_string(),
                },
            ),
            check(
                "seccomp",
                true,
                format!(
                    "the worker installs its own filter; this process has {}{}",
                    match self.seccomp {
                        0 => "none",
                        1 => "strict mode",
                        _ => "a filter already",
                    },
                    match self.no_new_privs {
                        true => ", no_new_privs set",
                        false => "",
                    }
                ),
            ),
        ]
    }
}

fn yes(b: bool) -> &'static str {
    match b {
        true => "yes",
        false => "no",
    }
}

/// Each confinement wall and whether this process could have it, from what
/// `/proc` says (capabilities, the seccomp filter in force, the user-namespace
/// sysctls, the LSM label, the Landlock ABI). A diagnosis, not a probe:
/// [`Sandbox::new`](crate::Sandbox::new) and
/// [`Sandbox::mode`](crate::Sandbox::mode) say what was really obtained.
///
/// ```
/// for check in sandtar::diagnose() {
///     println!("{:32} {:3} {}", check.wall, if check.available { "yes" } else { "no" }, check.detail);
/// }
/// ```
pub fn diagnose() -> Vec<Check> {
    Facts::read().checks()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root_in_docker() -> Facts {
        Facts {
            euid: 0,
            caps: 0xa80425fb, // Docker's default set: no CAP_SYS_ADMIN
            seccomp: 2,
            no_new_privs: false,
            max_user_namespaces: Some(63_000),
            lsm_label: Some("docker-default (enforce)".into()),
            landlock: Ok(7),
            ..Facts::default()
        }
    }

    #[test]
    fn root_without_cap_sys_admin_is_not_called_not_root() {
        let blockers = root_in_docker().user_namespace_blockers();
        assert!(
            blockers[0].contains("root but without CAP_SYS_ADMIN"),
            "{blockers:?}"
        );
        assert!(
            !blockers.iter().any(|b| b.contains("not root")),
            "{blockers:?}"
        );
        assert!(blockers.iter().any(|b| b.contains("seccomp filter")));
        assert!(blockers.iter().any(|b| b.contains("docker-default")));
        // Docker's default set holds CAP_SYS_CHROOT: the second rung is there,
        // with chroot.
        let checks = root_in_docker().checks();
        let rung = checks.iter().find(|c| c.wall == "Landlock rung").unwrap();
        assert!(rung.available, "{rung:?}");
        assert!(rung.detail.contains("with chroot"), "{rung:?}");
    }

    #[test]
    fn each_sysctl_is_named() {
        let facts = Facts {
            euid: 1000,
            max_user_namespaces: Some(0),
            unprivileged_userns_clone: Some(0),
            apparmor_restricts_userns: Some(1),
            landlock: Err("ENOSYS".into()),
            ..Facts::default()
        };
        let text = facts.user_namespace_blockers().join("\n");
        for expected in [
            "not root (uid 1000)",
            "user.max_user_namespaces is 0",
            "unprivileged_userns_clone is 0",
            "apparmor_restrict_unprivileged_userns is 1",
        ] {
            assert!(text.contains(expected), "{expected}: {text}");
        }
        let checks = facts.checks();
        let landlock = checks.iter().find(|c| c.wall == "Landlock").unwrap();
        assert!(!landlock.available);
        let rung = checks.iter().find(|c| c.wall == "Landlock rung").unwrap();
        assert_eq!(
            (rung.available, rung.detail.as_str()),
            (false, "not possible: no Landlock")
        );
    }

    #[test]
    fn this_process_is_diagnosed() {
        let checks = diagnose();
        let walls: Vec<_> = checks.iter().map(|c| c.wall).collect();
        assert_eq!(
            walls,
            [
                "capabilities",
                "user namespaces",
                "mount namespace and pivot_root",
                "PID namespace",
                "Landlock",
                "Landlock rung",
                "seccomp"
            ]
        );
        // Available or not (the kernel decides), the detail says which.
        let landlock = &checks[4];
        let shown = match landlock.available {
            true => landlock
                .detail
                .strip_prefix("ABI ")
                .is_some_and(|v| v.parse::<u32>().is_ok()),
            false => landlock.detail.starts_with("unavailable: "),
        };
        assert!(shown, "{landlock:?}");
    }
}
