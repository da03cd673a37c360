//! Racing processes: while an archive of tens of thousands of files under `d/` is
//! extracted, another thread keeps exchanging `d` with a symlink to a directory
//! outside the destination (`renameat2(RENAME_EXCHANGE)`). Not one file may land
//! outside, over many runs. The same race against the `tar` crate's unconfined
//! `unpack` is run for contrast and its count printed (see SECURITY.md).

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use rustix::fs::{renameat_with, RenameFlags, CWD};
use sandtar::{Options, SandboxMode};

const FILES: usize = 20_000;
const RUNS: usize = 5;

fn archive() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for i in 0..FILES {
        let mut h = tar::Header::new_gnu();
        h.set_size(8);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, format!("d/f{i}"), &b"racing!\n"[..])
            .unwrap();
    }
    b.into_inner().unwrap()
}

/// A destination with `d/` and `link -> <outside>`, and the outside directory.
fn setup(base: &Path) -> (PathBuf, PathBuf) {
    let outside = base.join("outside");
    let dest = base.join("dest");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::create_dir_all(dest.join("d")).unwrap();
    std::os::unix::fs::symlink(&outside, dest.join("link")).unwrap();
    (dest, outside)
}

/// Exchanges `dest/d` and `dest/link` as fast as it can until stopped.
fn racer(
    dest: PathBuf,
    stop: Arc<AtomicBool>,
    swaps: Arc<AtomicU64>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let (a, b) = (dest.join("d"), dest.join("link"));
        while !stop.load(Ordering::Relaxed) {
            if renameat_with(CWD, &a, CWD, &b, RenameFlags::EXCHANGE).is_ok() {
                swaps.fetch_add(1, Ordering::Relaxed);
            }
        }
    })
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| {
                    let t = e.file_type().unwrap();
                    if t.is_dir() {
                        1 + count_files(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

async fn sandtar_race() -> SandboxMode {
    let sandbox = common::new_sandbox().await;
    let data = archive();
    let mut total_swaps = 0;
    for run in 0..RUNS {
        let base = tempfile::tempdir().unwrap();
        let (dest, outside) = setup(base.path());
        let stop = Arc::new(AtomicBool::new(false));
        let swaps = Arc::new(AtomicU64::new(0));
        let handle = racer(dest.clone(), stop.clone(), swaps.clone());
        let summary = sandbox.extract(&data[..], &dest, &Options::default()).await;
        stop.store(true, Ordering::Relaxed);
        handle.join().unwrap();
        let summary = summary.expect("the race never stops the job");
        assert_eq!(summary.entries, FILES as u64);
        let escaped = count_files(&outside);
        assert_eq!(
            escaped, 0,
            "run {run}: {escaped} files appeared outside the destination"
        );
        assert!(swaps.load(Ordering::Relaxed) > 0, "the racer never swapped");
        total_swaps += swaps.load(Ordering::Relaxed);
        println!(
            "sandtar run {run}: {} written, {} failed, {} swaps, 0 outside",
            summary.written,
            summary.failed,
            swaps.load(Ordering::Relaxed)
        );
    }
    println!("sandtar: {RUNS} runs, {total_swaps} swaps, no file outside");
    sandbox.mode()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchange_race_never_escapes() {
    sandtar_race().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run through exchange_race_never_escapes_unprivileged"]
async fn inner_exchange_race_unprivileged() {
    let mode = sandtar_race().await;
    // A user namespace, or under SANDTAR_TEST_RUNG=landlock the Landlock rung
    // without chroot (names walked in user space while the racer swaps them).
    let expected = match common::landlock_rung() {
        true => matches!(mode, SandboxMode::Landlock { chroot: false, .. }),
        false => matches!(mode, SandboxMode::UserNamespace { .. }),
    };
    assert!(expected, "{mode:?}");
}

#[test]
fn exchange_race_never_escapes_unprivileged() {
    common::only_as_nobody("inner_exchange_race_unprivileged");
}

/// For contrast: the same race against the `tar` crate's unconfined `unpack`.
/// Prints how many files landed outside; asserts nothing about it.
#[test]
fn contrast_tar_crate_unpack() {
    let data = archive();
    let mut escaped_total = 0;
    for run in 0..RUNS {
        let base = tempfile::tempdir().unwrap();
        let (dest, outside) = setup(base.path());
        let stop = Arc::new(AtomicBool::new(false));
        let swaps = Arc::new(AtomicU64::new(0));
        let handle = racer(dest.clone(), stop.clone(), swaps.clone());
        let result = tar::Archive::new(&data[..]).unpack(&dest);
        stop.store(true, Ordering::Relaxed);
        handle.join().unwrap();
        let escaped = count_files(&outside);
        escaped_total += escaped;
        println!(
            "tar crate run {run}: {} , {} swaps, {escaped} files outside",
            match result {
                Ok(()) => "finished".to_string(),
                Err(e) => format!("failed ({e})"),
            },
            swaps.load(Ordering::Relaxed)
        );
    }
    println!("tar crate: {RUNS} runs, {escaped_total} files outside the destination");
}
