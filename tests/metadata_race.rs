//! A racing process against metadata calls: while an archive of thousands of
//! entries all named `x` (symlinks or FIFOs, with an old mtime and, where kept,
//! another owner) is extracted, another thread keeps hard-linking a file from
//! outside the destination into it and renaming the link over `x`. The worker
//! must set owners and times only through a descriptor of the inode it made:
//! the outside file keeps its owner and times in every run.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use common::Scene;
use sandtar::{Options, Sandbox};

const ENTRIES: usize = 5_000;
const RUNS: usize = 3;

root_and_nobody!(symlinks_with_defaults, fifos_with_defaults);

#[tokio::test]
async fn symlinks_with_owners() {
    if common::needs_root("keep owners") {
        let mut options = Options::full_fidelity();
        options.limits.max_entries = u64::MAX;
        race(common::sandbox().await, b'2', &options).await;
    }
}

#[tokio::test]
async fn fifos_in_a_layer() {
    if common::needs_root("keep owners") {
        race(common::sandbox().await, b'6', &Options::layer()).await;
    }
}

async fn symlinks_with_defaults(sandbox: Sandbox) {
    race(sandbox, b'2', &Options::default()).await;
}

async fn fifos_with_defaults(sandbox: Sandbox) {
    race(sandbox, b'6', &Options::default()).await;
}

/// `ENTRIES` entries named `x` of type `typeflag` (a symlink to `t` or a
/// FIFO), mtime 1000000000, owner 65534:65534.
fn archive(typeflag: u8) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for _ in 0..ENTRIES {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::new(typeflag));
        h.set_size(0);
        h.set_mode(0o644);
        h.set_mtime(1_000_000_000);
        h.set_uid(65534);
        h.set_gid(65534);
        if typeflag == b'2' {
            h.set_link_name("t").unwrap();
        }
        h.set_cksum();
        b.append_data(&mut h, "x", &[][..]).unwrap();
    }
    b.into_inner().unwrap()
}

/// Hard-links `victim` into `dest` and renames the link over `dest/x`, as
/// fast as it can until stopped.
fn racer(
    victim: PathBuf,
    dest: PathBuf,
    stop: Arc<AtomicBool>,
    wins: Arc<AtomicU64>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let (link, x) = (dest.join(".racer"), dest.join("x"));
        while !stop.load(Ordering::Relaxed) {
            let _ = std::fs::remove_file(&link);
            if std::fs::hard_link(&victim, &link).is_ok() && std::fs::rename(&link, &x).is_ok() {
                wins.fetch_add(1, Ordering::Relaxed);
            }
        }
    })
}

async fn race(sandbox: Sandbox, typeflag: u8, options: &Options) {
    let data = archive(typeflag);
    let mut renames = 0;
    for _ in 0..RUNS {
        let mut scene = Scene::unsnapshotted();
        scene.snapshot_now();
        let victim = scene.canary.join("file.txt");
        let (stop, wins) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU64::new(0)),
        );
        let thread = racer(victim, scene.dest.clone(), stop.clone(), wins.clone());
        let result = sandbox.extract(&data[..], &scene.dest, options).await;
        stop.store(true, Ordering::Relaxed);
        thread.join().unwrap();
        renames += wins.load(Ordering::Relaxed);
        if let Err(e) = &result {
            panic!("the job failed: {e}");
        }
        // Owner, mode and times of everything outside as before (the link
        // count and ctime of the victim change with the racer's links).
        scene.check_except_links();
        forget(&scene.dest);
    }
    println!("racer renames over x: {renames}");
    assert!(renames > 0, "the racer never won a rename: no race was run");
}

/// Removes the destination's content early (the scene's drop would too).
fn forget(dest: &Path) {
    let _ = std::fs::remove_dir_all(dest);
}
