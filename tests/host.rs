//! Where confinement is refused, the error says why: here, root in a process
//! shaped like a default Docker container (no `CAP_SYS_ADMIN`, and a seccomp
//! filter with Docker's namespace rules: `unshare`, `setns`, `mount`,
//! `pivot_root`, `open_tree`, `move_mount` refused, `clone` refused with any
//! `CLONE_NEW*` flag, `clone3` answered with `ENOSYS`).

mod common;

use std::collections::BTreeMap;

use seccompiler::{
    SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
    TargetArch,
};

#[test]
fn root_in_a_default_container_is_told_why() {
    if !common::needs_root("drop CAP_SYS_ADMIN") {
        return;
    }
    common::in_own_process("inner_root_in_a_default_container");
}

#[test]
#[ignore = "run through root_in_a_default_container_is_told_why"]
fn inner_root_in_a_default_container() {
    if !common::inner_should_run() {
        return;
    }
    drop_cap_sys_admin();
    install_docker_like_filter();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let result = runtime.block_on(sandtar::Sandbox::new());
    match result {
        Err(sandtar::Error::ConfinementUnavailable { reason }) => {
            println!("reason: {reason}");
            assert!(
                reason.contains("root but without CAP_SYS_ADMIN"),
                "{reason}"
            );
            assert!(reason.contains("seccomp filter is in force"), "{reason}");
            assert!(!reason.contains("not root"), "{reason}");
        }
        other => panic!(
            "expected ConfinementUnavailable, got {:?}",
            other.map(|s| s.mode())
        ),
    }
    // The diagnosis agrees.
    let checks = sandtar::diagnose();
    let userns = checks.iter().find(|c| c.wall == "user namespaces").unwrap();
    assert!(!userns.available, "{userns:?}");
}

/// Where `clone3` is answered with `ENOSYS` (as Docker's and containerd's
/// profiles do, so that libc falls back to `clone`), the zygote forks its
/// workers with `clone` instead, and jobs run as before.
#[test]
fn workers_without_clone3() {
    if !common::needs_root("keep the same confinement under the filter") {
        return;
    }
    common::in_own_process("inner_workers_without_clone3");
}

#[test]
#[ignore = "run through workers_without_clone3"]
fn inner_workers_without_clone3() {
    if !common::inner_should_run() {
        return;
    }
    install(&[clone3_unknown()]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let sandbox = sandtar::Sandbox::new().await.unwrap();
        let dest = tempfile::tempdir().unwrap();
        let archive = common::tar_files([("a/b.txt", b"hello".to_vec())]);
        let summary = sandbox
            .extract(&archive[..], dest.path(), &sandtar::Options::default())
            .await
            .unwrap();
        assert_eq!(summary.written, 1);
        assert_eq!(
            std::fs::read(dest.path().join("a/b.txt")).unwrap(),
            b"hello"
        );
    });
}

fn drop_cap_sys_admin() {
    use rustix::thread::{
        capabilities, remove_capability_from_bounding_set, set_capabilities, CapabilitySet,
    };
    remove_capability_from_bounding_set(CapabilitySet::SYS_ADMIN).unwrap();
    let mut sets = capabilities(None).unwrap();
    sets.effective.remove(CapabilitySet::SYS_ADMIN);
    sets.permitted.remove(CapabilitySet::SYS_ADMIN);
    sets.inheritable.remove(CapabilitySet::SYS_ADMIN);
    set_capabilities(None, sets).unwrap();
}

fn install_docker_like_filter() {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = [
        libc::SYS_unshare,
        libc::SYS_setns,
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_open_tree,
        libc::SYS_move_mount,
    ]
    .into_iter()
    .map(|nr| (nr, Vec::new()))
    .collect();
    // clone with any namespace flag (its first argument) is refused below.
    let new_ns = (libc::CLONE_NEWNS
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUSER
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWNET
        | libc::CLONE_NEWCGROUP) as u64;
    let deny = SeccompFilter::new(
        std::mem::take(&mut rules),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch(),
    )
    .unwrap();
    // One rule per namespace flag: "this bit is set" matches and is refused.
    let flag_rules = (0..64)
        .map(|bit| 1u64 << bit)
        .filter(|bit| new_ns & bit != 0)
        .map(|bit| {
            let set =
                SeccompCondition::new(0, SeccompCmpArgLen::Qword, SeccompCmpOp::MaskedEq(bit), bit);
            SeccompRule::new(vec![set.unwrap()]).unwrap()
        })
        .collect();
    let clone_ns = SeccompFilter::new(
        [(libc::SYS_clone, flag_rules)].into_iter().collect(),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch(),
    )
    .unwrap();
    install(&[deny, clone3_unknown(), clone_ns]);
}

/// `clone3` answered with `ENOSYS`, as container profiles do.
fn clone3_unknown() -> SeccompFilter {
    SeccompFilter::new(
        [(libc::SYS_clone3, Vec::new())].into_iter().collect(),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch(),
    )
    .unwrap()
}

/// Sets no_new_privs and installs `filters` on every thread.
fn install(filters: &[SeccompFilter]) {
    rustix::thread::set_no_new_privs(true).unwrap();
    for filter in filters {
        let program: seccompiler::BpfProgram = filter.clone().try_into().unwrap();
        seccompiler::apply_filter_all_threads(&program).unwrap();
    }
}

fn arch() -> TargetArch {
    #[cfg(target_arch = "x86_64")]
    return TargetArch::x86_64;
    #[cfg(target_arch = "aarch64")]
    return TargetArch::aarch64;
}
