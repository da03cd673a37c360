//! Owners as root: kept with full fidelity, through an id map by ranges, and an
//! id outside the map stops the job naming the entry.

mod common;

use std::os::unix::fs::MetadataExt;

use sandtar::{Error, Options, Sandbox, SandboxMode};

fn archive(entries: &[(&str, u64, u64)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, uid, gid) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o4755);
        h.set_uid(*uid);
        h.set_gid(*gid);
        h.set_cksum();
        b.append_data(&mut h, name, &b"hi"[..]).unwrap();
    }
    b.into_inner().unwrap()
}

#[tokio::test]
async fn owners_through_an_id_map() {
    let sandbox = Sandbox::new().await.unwrap();
    if sandbox.mode() != SandboxMode::Privileged {
        eprintln!("not root: owners cannot be kept; covered by the root run");
        return;
    }
    let mut options = Options::full_fidelity();
    options.id_map = common::id_map(0, 100_000, 65_536);

    let dest = tempfile::tempdir().unwrap();
    let data = archive(&[("root-owned", 0, 0), ("user-owned", 1000, 1001)]);
    let summary = sandbox
        .extract(&data[..], dest.path(), &options)
        .await
        .unwrap();
    assert_eq!(summary.written, 2);
    let meta = std::fs::metadata(dest.path().join("root-owned")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (100_000, 100_000));
    let meta = std::fs::metadata(dest.path().join("user-owned")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (101_000, 101_001));
    // chown clears set-id bits; full fidelity puts them back.
    assert_eq!(meta.mode() & 0o7777, 0o4755);

    let dest = tempfile::tempdir().unwrap();
    let data = archive(&[("fine", 5, 5), ("outside-map", 70_000, 5), ("never", 5, 5)]);
    match sandbox.extract(&data[..], dest.path(), &options).await {
        Err(Error::UnmappedId { entry, message }) => {
            assert_eq!(entry.to_str(), Some("outside-map"));
            assert!(message.contains("uid 70000"), "{message}");
        }
        other => panic!("expected UnmappedId, got {other:?}"),
    }
    assert!(dest.path().join("fine").exists());
    assert!(!dest.path().join("outside-map").exists());
    assert!(!dest.path().join("never").exists());

    // Without a map, full fidelity keeps the recorded ids; the default preset does not.
    let dest = tempfile::tempdir().unwrap();
    let data = archive(&[("kept", 1234, 5678)]);
    sandbox
        .extract(&data[..], dest.path(), &Options::full_fidelity())
        .await
        .unwrap();
    let meta = std::fs::metadata(dest.path().join("kept")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (1234, 5678));
    let dest = tempfile::tempdir().unwrap();
    sandbox
        .extract(&data[..], dest.path(), &Options::default())
        .await
        .unwrap();
    let meta = std::fs::metadata(dest.path().join("kept")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (0, 0));
    assert_eq!(meta.mode() & 0o7777, 0o755, "safe mode drops setuid");
}

/// Linux ids are 32 bits and `(uid_t)-1` means "leave unchanged": an archive id
/// of 2^32 must not become root (0) by truncation, nor -1 keep the worker's.
#[tokio::test]
async fn ids_beyond_32_bits_are_refused() {
    let sandbox = Sandbox::new().await.unwrap();
    if sandbox.mode() != SandboxMode::Privileged {
        eprintln!("not root: owners cannot be kept; covered by the root run");
        return;
    }
    for (uid, gid) in [
        (1u64 << 32, 5),
        (5, (1u64 << 32) + 1000),
        (u64::from(u32::MAX), 5),
    ] {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o4755);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_cksum();
        b.append_data(&mut h, "big", &b"hi"[..]).unwrap();
        let data = b.into_inner().unwrap();
        let dest = tempfile::tempdir().unwrap();
        match sandbox
            .extract(&data[..], dest.path(), &Options::full_fidelity())
            .await
        {
            Err(Error::UnmappedId { entry, message }) => {
                assert_eq!(entry.to_str(), Some("big"));
                assert!(message.contains("not a valid Linux id"), "{message}");
            }
            other => panic!("{uid}:{gid}: expected UnmappedId, got {other:?}"),
        }
        assert!(!dest.path().join("big").exists());
    }
}
