//! Where a rung is refused, the error says why, and the next rung holds:
//! here, root in a process shaped like a default Docker container (no `CAP_SYS_ADMIN`, and a seccomp
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
fn root_in_a_default_container_gets_the_landlock_rung() {
    if !common::needs_root("drop CAP_SYS_ADMIN") {
        return;
    }
    common::in_own_process("inner_root_in_a_default_container");
}

/// Root without `CAP_SYS_ADMIN` under Docker's namespace rules: the namespace
/// rung is refused with the reason named (asked for alone); by default the
/// sandbox falls through to the Landlock rung, where a hostile archive's
/// escapes land inside the destination and nothing reaches the directory next
/// to it.
#[test]
#[ignore = "run through root_in_a_default_container_gets_the_landlock_rung"]
fn inner_root_in_a_default_container() {
    if !common::inner_should_run() {
        return;
    }
    drop_cap_sys_admin();
    install_docker_like_filter();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let only_namespaces = sandtar::Sandbox::builder()
        .minimum_rung(sandtar::Rung::Namespaces)
        .build();
    match runtime.block_on(only_namespaces) {
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
    runtime.block_on(hostile_archive_on_the_landlock_rung());
}

async fn hostile_archive_on_the_landlock_rung() {
    let sandbox = sandtar::Sandbox::new().await.expect("the Landlock rung");
    assert_eq!(sandbox.mode().rung(), sandtar::Rung::Landlock);
    let top = tempfile::tempdir().unwrap();
    let (dest, outside) = (top.path().join("dest"), top.path().join("outside"));
    std::fs::create_dir(&dest).unwrap();
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("secret"), b"secret").unwrap();
    let o = outside.display();
    let archive = common::raw::Tar::new()
        .symlink("link", outside.as_os_str().as_encoded_bytes())
        .file("link/pwned", b"through a symlink")
        .file("../outside/dotdot", b"through ..")
        .file(format!("{o}/absolute"), b"absolute")
        .hardlink("hard", format!("{o}/secret"))
        .file("hard", b"overwritten through a hard link")
        .finish();
    let summary = sandbox
        .extract(&archive[..], &dest, &sandtar::Options::default())
        .await;
    println!("{summary:?}");
    let names: Vec<_> = std::fs::read_dir(&outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["secret"], "something landed outside");
    assert_eq!(std::fs::read(outside.join("secret")).unwrap(), b"secret");
    // The absolute name landed inside, under the destination's root.
    assert!(dest.join(format!(".{o}/absolute")).exists());
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
