//! The applier's second boundary, without the sandbox: run unconfined (as the
//! fuzzing harness does), every path still resolves inside the directory,
//! walked as the Landlock rung without `chroot` walks it. Needs the fuzzing
//! entry points: `--cfg fuzzing` (see `tests/fuzz_regressions.rs`).
#![cfg(fuzzing)]

use std::path::Path;

fn hostile(outside: &Path) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut link = |name: &str, target: &Path| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        b.append_link(&mut h, name, target).unwrap();
    };
    link("abs", outside);
    link("up", Path::new("../../../../../.."));
    let mut file = |name: &str| {
        let mut h = tar::Header::new_gnu();
        h.set_size(4);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, &b"evil"[..]).unwrap();
    };
    file("abs/escaped-abs");
    file("up/escaped-up");
    file("abs/new/dir/escaped-parents");
    b.into_inner().unwrap()
}

#[test]
fn unconfined_loop_stays_inside() {
    let base = tempfile::tempdir().unwrap();
    let outside = base.path().join("outside");
    let dir = base.path().join("dir");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    let reports = sandtar::fuzzing::extract_unconfined(
        &hostile(&outside),
        &dir,
        &sandtar::Options::default(),
    )
    .unwrap();
    assert_eq!(reports, 5);
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        0,
        "something escaped"
    );
    // The absolute symlink resolves inside `dir`, to dir/<outside path>, which
    // does not exist: those entries fail, and nothing is created anywhere else.
    assert!(!dir.join(outside.strip_prefix("/").unwrap()).exists());
    // `..` stops at `dir`.
    assert_eq!(std::fs::read(dir.join("escaped-up")).unwrap(), b"evil");
}

#[test]
fn frame_and_header_decoders_refuse_garbage() {
    assert_eq!(sandtar::fuzzing::decode_worker_frames(&[0xff; 64]), 0);
    assert!(sandtar::fuzzing::decode_job_header(b"STR1\xff\xff\xff\xff").is_err());
    assert!(sandtar::fuzzing::decode_job_header(b"XXXX\0\0\0\0").is_err());
}
