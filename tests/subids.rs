//! Subordinate ids: an unprivileged caller whose user namespace maps the ranges
//! of `/etc/subuid` and `/etc/subgid` (through `newuidmap`/`newgidmap`) keeps the
//! owners recorded in the archive, as root would. Runs as `nobody`, which CI
//! gives the ranges 200000:65536 (see `.ci/run`), and as `daemon`, which has none.
//!
//! Needs root (to switch users), the `uidmap` package and the ranges. Where they
//! are missing the tests say so and pass, unless `SANDTAR_REQUIRE_SUBIDS=1` (set
//! by CI) makes that a failure.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::raw::{Header, Tar};
use common::run;
use sandtar::{Error, Options, Outcome, Sandbox, SandboxMode, SkipReason, SubordinateIds};

/// The first subordinate id of `user` in `file`, if it has a range.
fn first_subordinate(file: &str, user: &str) -> Option<u32> {
    std::fs::read_to_string(file)
        .ok()?
        .lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            Some((f.next()?, f.next()?.parse().ok()?))
        })
        .find(|(owner, _)| *owner == user)
        .map(|(_, start)| start)
}

/// Whether this machine can run the subordinate-id scenarios; if it cannot,
/// says why, and fails when CI requires them.
fn ready() -> bool {
    let missing = if !common::is_root() {
        Some("not root: cannot switch to nobody")
    } else if !Path::new("/usr/bin/newuidmap").exists() {
        Some("newuidmap missing (apt-get install uidmap)")
    } else if first_subordinate("/etc/subuid", "nobody").is_none()
        || first_subordinate("/etc/subgid", "nobody").is_none()
    {
        Some("no subordinate ids for nobody (echo nobody:200000:65536 >> /etc/subuid /etc/subgid)")
    } else {
        None
    };
    match missing {
        None => true,
        Some(why) if std::env::var_os("SANDTAR_REQUIRE_SUBIDS").is_some() => {
            panic!("SANDTAR_REQUIRE_SUBIDS is set but {why}")
        }
        Some(why) => {
            println!("NOTE: skipped: {why}");
            false
        }
    }
}

/// Declares `NAME` (runs `NAME_inner` as nobody) for each scenario.
macro_rules! as_nobody {
    ($($name:ident => $inner:ident),* $(,)?) => {$(
        #[test]
        fn $name() {
            if ready() {
                common::as_user("nobody", "nogroup", stringify!($inner), || {
                    unreachable!("root runs the scenario as nobody")
                });
            }
        }
    )*};
}

as_nobody!(
    owners_are_kept => owners_are_kept_inner,
    ids_outside_the_namespace => ids_outside_the_namespace_inner,
    layer_with_an_id_map => layer_with_an_id_map_inner,
    if_available_and_never => if_available_and_never_inner,
    a_restarted_zygote_maps_again => a_restarted_zygote_maps_again_inner,
);

/// A sandbox that must map nobody's subordinate ids.
async fn mapped_sandbox() -> Sandbox {
    let sandbox = Sandbox::builder()
        .subordinate_ids(SubordinateIds::Required)
        .build()
        .await
        .expect("Sandbox with subordinate ids");
    match sandbox.mode() {
        SandboxMode::SubordinateIds {
            uid,
            gid,
            uids,
            gids,
        } => {
            assert_eq!((uid, gid), (65534, 65534));
            assert_eq!((uids, gids), (65537, 65537), "0 plus nobody's 65536");
        }
        other => panic!("expected SubordinateIds, got {other:?}"),
    }
    assert!(sandbox.mode().can_keep_owners());
    sandbox
}

/// The host id of namespace id `id`: 0 is nobody, 1.. the subordinate range.
fn host(file: &str, id: u32) -> u32 {
    match id {
        0 => 65534,
        _ => first_subordinate(file, "nobody").unwrap() + id - 1,
    }
}

fn owner(path: &Path) -> (u32, u32) {
    let meta = std::fs::symlink_metadata(path).unwrap();
    (meta.uid(), meta.gid())
}

#[tokio::test]
#[ignore = "run as nobody by owners_are_kept"]
async fn owners_are_kept_inner() {
    let sandbox = mapped_sandbox().await;
    let archive = Tar::new()
        .entry(Header::new("d/", b'5', 0).owner(33, 34).mode(0o711), b"")
        .entry(Header::new("d/f", b'0', 2).owner(1000, 1001), b"hi")
        .entry(Header::new("root", b'0', 1).owner(0, 0), b"r")
        .entry(Header::new("top", b'0', 1).owner(65536, 65536), b"t")
        .entry(
            Header::new("suid", b'0', 1).owner(1000, 1000).mode(0o4755),
            b"s",
        )
        .entry(Header::new("l", b'2', 0).owner(7, 8).link("d/f"), b"")
        .device("null", b'3', 1, 3)
        .finish();
    let dest = tempfile::tempdir().unwrap();
    let mut options = Options::full_fidelity();
    options.allow_devices = true;
    let result = run(&sandbox, &archive, dest.path(), &options).await;
    let summary = result.summary();
    assert_eq!(summary.failed, 0, "{:#?}", result.reports);
    assert_eq!(
        result.outcome("null"),
        &Outcome::Skipped(SkipReason::DevicesNotPermitted)
    );
    let (u, g) = ("/etc/subuid", "/etc/subgid");
    let d = dest.path();
    assert_eq!(owner(&d.join("d")), (host(u, 33), host(g, 34)));
    assert_eq!(owner(&d.join("d/f")), (host(u, 1000), host(g, 1001)));
    assert_eq!(owner(&d.join("root")), (65534, 65534));
    assert_eq!(owner(&d.join("top")), (host(u, 65536), host(g, 65536)));
    assert_eq!(owner(&d.join("l")), (host(u, 7), host(g, 8)));
    assert_eq!(owner(&d.join("suid")), (host(u, 1000), host(g, 1000)));
    // Exact modes: the set-uid bit survives the chown to a mapped owner.
    assert_eq!(common::mode_of(d.join("suid")), 0o4755);
    assert_eq!(common::mode_of(d.join("d")), 0o711);
    assert_eq!(std::fs::read(d.join("d/f")).unwrap(), b"hi");
}

#[tokio::test]
#[ignore = "run as nobody by ids_outside_the_namespace"]
async fn ids_outside_the_namespace_inner() {
    let sandbox = mapped_sandbox().await;
    let options = Options::full_fidelity();
    for (name, uid, gid) in [("big-uid", 65537, 0), ("big-gid", 0, 70000)] {
        let archive = Tar::new()
            .file("before", b"b")
            .entry(Header::new(name, b'0', 1).owner(uid, gid), b"x")
            .finish();
        let dest = tempfile::tempdir().unwrap();
        let result = run(&sandbox, &archive, dest.path(), &options).await;
        match &result.result {
            Err(Error::UnmappedId {
                entry,
                message: reason,
            }) => {
                assert_eq!(entry, Path::new(name));
                assert!(
                    reason.contains("not mapped in the user namespace"),
                    "{reason}"
                );
                assert!(reason.contains("0 to 65536"), "{reason}");
            }
            other => panic!("{name}: expected UnmappedId, got {other:?}"),
        }
        assert!(dest.path().join("before").exists());
        common::assert_absent(dest.path().join(name));
    }
}

#[tokio::test]
#[ignore = "run as nobody by layer_with_an_id_map"]
async fn layer_with_an_id_map_inner() {
    let sandbox = mapped_sandbox().await;
    // Container ids 0..1000 are ids 1000..2000 of the namespace.
    let mut options = Options::layer();
    options.id_map = common::id_map(0, 1000, 1000);
    let layer = Tar::new()
        .entry(Header::new("a/b/f", b'0', 1).owner(5, 6), b"x")
        .finish();
    let dest = tempfile::tempdir().unwrap();
    let summary = sandbox
        .apply_layer(&layer[..], dest.path(), &options)
        .await
        .unwrap();
    assert_eq!(summary.written, 1);
    let (u, g) = ("/etc/subuid", "/etc/subgid");
    let d = dest.path();
    assert_eq!(owner(&d.join("a/b/f")), (host(u, 1005), host(g, 1006)));
    // Directories the layer leaves implicit belong to the container's root.
    assert_eq!(owner(&d.join("a")), (host(u, 1000), host(g, 1000)));
    assert_eq!(owner(&d.join("a/b")), (host(u, 1000), host(g, 1000)));
}

#[tokio::test]
#[ignore = "run as nobody by if_available_and_never"]
async fn if_available_and_never_inner() {
    let archive = Tar::new()
        .entry(Header::new("f", b'0', 1).owner(1000, 1000), b"x")
        .finish();
    let options = Options::full_fidelity();

    let available = Sandbox::builder()
        .subordinate_ids(SubordinateIds::IfAvailable)
        .build()
        .await
        .unwrap();
    assert!(matches!(
        available.mode(),
        SandboxMode::SubordinateIds { .. }
    ));
    let dest = tempfile::tempdir().unwrap();
    run(&available, &archive, dest.path(), &options)
        .await
        .summary();
    assert_eq!(
        owner(&dest.path().join("f")),
        (host("/etc/subuid", 1000), host("/etc/subgid", 1000))
    );

    // The default maps the caller only: owners are flattened to the caller.
    let single = Sandbox::new().await.unwrap();
    assert_eq!(
        single.mode(),
        SandboxMode::UserNamespace {
            uid: 65534,
            gid: 65534
        }
    );
    assert!(!single.mode().can_keep_owners());
    let dest = tempfile::tempdir().unwrap();
    run(&single, &archive, dest.path(), &options)
        .await
        .summary();
    assert_eq!(owner(&dest.path().join("f")), (65534, 65534));
}

/// `daemon` has no subordinate ids: `Required` fails saying so, `IfAvailable`
/// falls back to the single-id namespace.
#[test]
fn without_subordinate_ids() {
    if ready() {
        common::as_user("daemon", "daemon", "without_subordinate_ids_inner", || {
            unreachable!("root runs the scenario as daemon")
        });
    }
}

#[tokio::test]
#[ignore = "run as daemon by without_subordinate_ids"]
async fn without_subordinate_ids_inner() {
    if first_subordinate("/etc/subuid", "daemon").is_some() {
        panic!("this scenario needs a user without subordinate ids");
    }
    match Sandbox::builder()
        .subordinate_ids(SubordinateIds::Required)
        .build()
        .await
    {
        Err(Error::ConfinementUnavailable { reason }) => {
            assert!(
                reason.contains("/etc/subuid lists no subordinate ids for daemon"),
                "{reason}"
            );
        }
        other => panic!("expected ConfinementUnavailable, got {other:?}"),
    }
    let fallback = Sandbox::builder()
        .subordinate_ids(SubordinateIds::IfAvailable)
        .build()
        .await
        .unwrap();
    assert_eq!(
        fallback.mode(),
        SandboxMode::UserNamespace { uid: 1, gid: 1 }
    );
    let dest = tempfile::tempdir().unwrap();
    let archive = Tar::new().file("f", b"x").finish();
    run(&fallback, &archive, dest.path(), &Options::default())
        .await
        .summary();
    assert_eq!(owner(&dest.path().join("f")), (1, 1));
}

/// Root needs no user namespace: the setting is ignored.
#[tokio::test]
async fn root_ignores_the_setting() {
    if !common::needs_root("") {
        return;
    }
    let sandbox = Sandbox::builder()
        .subordinate_ids(SubordinateIds::Required)
        .build()
        .await
        .unwrap();
    assert_eq!(sandbox.mode(), SandboxMode::Privileged);
}

/// The zygote (see [`common::zygotes`]).
fn zygote_pid() -> u32 {
    *common::zygotes().first().expect("the zygote")
}

#[tokio::test]
#[ignore = "run as nobody by a_restarted_zygote_maps_again"]
async fn a_restarted_zygote_maps_again_inner() {
    let sandbox = mapped_sandbox().await;
    let first = zygote_pid();
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(first as i32).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    let archive = Tar::new()
        .entry(Header::new("f", b'0', 1).owner(1000, 1000), b"x")
        .finish();
    // The warm workers of the dead zygote may serve the first jobs; then a new
    // zygote must map the ranges again.
    for round in 0..6 {
        let dest = tempfile::tempdir().unwrap();
        run(&sandbox, &archive, dest.path(), &Options::full_fidelity())
            .await
            .summary();
        assert_eq!(
            owner(&dest.path().join("f")),
            (host("/etc/subuid", 1000), host("/etc/subgid", 1000)),
            "round {round}"
        );
    }
    assert_ne!(zygote_pid(), first, "a new zygote");
    assert!(matches!(sandbox.mode(), SandboxMode::SubordinateIds { .. }));
}
