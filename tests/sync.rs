//! `Options::sync`: when the job succeeds, what it wrote is on the disk, not
//! only in the page cache. The destination is an ext4 filesystem on a loop
//! device whose backing file is read from outside: the loop device writes to
//! that file only what the filesystem flushed. Root (it mounts); on the rung
//! `SANDTAR_TEST_RUNG` names.

mod common;

use std::path::Path;
use std::process::Command;

use sandtar::Options;

/// A 64 MiB ext4 image in `dir`, mounted at `dir/mnt`; `None` (with a note)
/// where loop devices or `mkfs.ext4` are missing.
fn ext4_in(dir: &Path) -> Option<(std::path::PathBuf, std::path::PathBuf)> {
    let image = dir.join("disk.ext4");
    let mnt = dir.join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    std::fs::File::create(&image)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let made = Command::new("mkfs.ext4")
        .args(["-q", "-F"])
        .arg(&image)
        .status();
    let mounted = made.is_ok_and(|s| s.success())
        && Command::new("mount")
            .args(["-o", "loop"])
            .arg(&image)
            .arg(&mnt)
            .status()
            .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped: no loop device or mkfs.ext4 here");
        return None;
    }
    Some((image, mnt))
}

/// Whether `needle` is in the file at `path`.
fn contains(path: &Path, needle: &[u8]) -> bool {
    let bytes = std::fs::read(path).unwrap();
    bytes.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn synced_data_is_on_the_disk_when_the_job_succeeds() {
    if !common::needs_root("mount an ext4 image") {
        return;
    }
    let sandbox = common::sandbox().await;
    let tmp = tempfile::tempdir().unwrap();
    let Some((image, mnt)) = ext4_in(tmp.path()) else {
        return;
    };
    // Marker bytes that are nowhere on the disk before the job, in a file
    // large enough to leave the inode's inline space.
    let marker = format!("sandtar-sync-marker-{}-", std::process::id());
    let body = marker.repeat(4096);
    let archive = common::tar_files([("data/synced.txt", body.as_bytes())]);
    let dest = mnt.join("dest");
    std::fs::create_dir(&dest).unwrap();
    let mut options = Options::default();
    options.sync = true;
    let result = sandbox.extract(&archive[..], &dest, &options).await;
    let on_disk = contains(&image, marker.as_bytes());
    let _ = Command::new("umount").arg("-l").arg(&mnt).status();
    let summary = result.expect("the synced job");
    assert_eq!(summary.written, 1, "{summary:?}");
    assert!(
        on_disk,
        "the file's data reached the disk before the job ended"
    );
}
