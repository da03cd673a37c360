//! Packing straight into the caller's file or pipe (`Sandbox::pack_into`):
//! the worker writes the archive itself. The bytes are those `Sandbox::pack`
//! streams, at the output's offset (after what a file held, or at its end
//! when it appends), the summary's size and digest are the caller's own
//! measure of the file, a pipe works, and an output the worker must not get
//! (open for reading, a socket, a directory) is refused before any worker
//! starts. As root and as `nobody`.

mod common;

use std::io::{Read, Seek, SeekFrom};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use common::{pack_all, Scene};
use sandtar::{Compression, EntryReport, Error, Outcome, PackOptions, Sandbox};
use sha2::{Digest, Sha256};

root_and_nobody!(
    a_file_gets_the_streamed_archive,
    after_what_the_file_held_and_when_appending,
    a_pipe_gets_the_archive,
    outputs_the_worker_must_not_get_are_refused,
    a_failed_job_leaves_no_worker_behind,
    a_dropped_job_leaves_the_offset_at_the_end,
);

/// A small tree: files (one of several chunks), a directory, a symlink.
fn make_source(scene: &Scene) -> PathBuf {
    let src = scene.dest.clone();
    let w = |rel: &str, data: &[u8]| {
        let p = src.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, data).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    };
    w("a.txt", b"hello\n");
    w("dir/b.txt", b"second\n");
    let big: Vec<u8> = (0..1_500_000u32).map(|i| (i * 7 % 251) as u8).collect();
    w("dir/big.bin", &big);
    std::os::unix::fs::symlink("a.txt", src.join("link")).unwrap();
    src
}

/// Packs `src` into `out`; the reports and the summary.
async fn into(
    sandbox: &Sandbox,
    src: &Path,
    options: &PackOptions,
    out: impl Into<OwnedFd>,
) -> (Vec<EntryReport>, sandtar::Summary) {
    let mut pack = sandbox
        .pack_into(src, options, out)
        .await
        .expect("pack_into");
    let mut reports = Vec::new();
    while let Some(report) = pack.next().await {
        reports.push(report);
    }
    (reports, pack.finish().await.expect("summary"))
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

fn options(compression: Compression) -> PackOptions {
    let mut options = PackOptions::reproducible(1_700_000_000);
    options.compression = compression;
    options.digest = true;
    options
}

async fn a_file_gets_the_streamed_archive(sandbox: Sandbox) {
    let scene = Scene::new();
    let src = make_source(&scene);
    let outputs = tempfile::tempdir().unwrap();
    for compression in [Compression::None, Compression::Zstd, Compression::Gzip] {
        let options = options(compression);
        let (expected, expected_reports, expected_summary) =
            pack_all(&sandbox, &src, &options).await;
        let path = outputs.path().join("out.tar");
        let file = std::fs::File::create(&path).unwrap();
        let (reports, summary) = into(&sandbox, &src, &options, file).await;
        let written = std::fs::read(&path).unwrap();
        assert_eq!(
            written, expected,
            "{compression:?}: the same bytes as streamed"
        );
        assert_eq!(reports.len(), expected_reports.len());
        assert!(reports.iter().all(|r| r.outcome == Outcome::Written));
        assert_eq!(summary.archive_bytes, written.len() as u64);
        assert_eq!(summary.digest.as_deref(), Some(sha256(&written).as_str()));
        assert_eq!(summary.digest, expected_summary.digest);
        assert_eq!(summary.diff_id, expected_summary.diff_id);
        assert_eq!(summary.written, expected_summary.written);
        assert_eq!(summary.tar_bytes, expected_summary.tar_bytes);
        // The worker is gone: nothing is written after `finish`.
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            written.len() as u64
        );
    }
    scene.check();
}

async fn after_what_the_file_held_and_when_appending(sandbox: Sandbox) {
    let scene = Scene::new();
    let src = make_source(&scene);
    let outputs = tempfile::tempdir().unwrap();
    let options = options(Compression::None);
    let (expected, _, _) = pack_all(&sandbox, &src, &options).await;
    for append in [false, true] {
        let path = outputs.path().join(format!("held-{append}.tar"));
        std::fs::write(&path, b"HEAD-and-more").unwrap();
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .append(append)
            .open(&path)
            .unwrap();
        if !append {
            // Not at the end: refused (the archive is appended, never
            // written over what the file holds), the file unchanged.
            file.seek(SeekFrom::Start(5)).unwrap();
            let refused = sandbox
                .pack_into(&src, &options, file.try_clone().unwrap())
                .await;
            assert!(
                matches!(refused, Err(Error::InvalidOption { option: "out", .. })),
                "{refused:?}"
            );
            assert_eq!(std::fs::read(&path).unwrap(), b"HEAD-and-more");
            file.seek(SeekFrom::End(0)).unwrap();
        }
        let (_, summary) = into(&sandbox, &src, &options, file.try_clone().unwrap()).await;
        let written = std::fs::read(&path).unwrap();
        assert_eq!(&written[..13], b"HEAD-and-more");
        assert_eq!(&written[13..], &expected[..], "append {append}");
        assert_eq!(summary.archive_bytes, expected.len() as u64);
        assert_eq!(summary.digest.as_deref(), Some(sha256(&expected).as_str()));
        // The caller's offset is past the archive, as if it had written it,
        // and its flags are its own again (`O_APPEND` only if it was).
        assert_eq!(file.stream_position().unwrap(), written.len() as u64);
        let flags = rustix::fs::fcntl_getfl(&file).unwrap();
        assert_eq!(flags.contains(rustix::fs::OFlags::APPEND), append);
    }
    scene.check();
}

async fn a_pipe_gets_the_archive(sandbox: Sandbox) {
    let scene = Scene::new();
    let src = make_source(&scene);
    let mut options = options(Compression::Zstd);
    options.digest = false;
    let (expected, _, _) = pack_all(&sandbox, &src, &options).await;
    let (mut reader, writer) = std::io::pipe().unwrap();
    let drained = std::thread::spawn(move || {
        let mut all = Vec::new();
        reader.read_to_end(&mut all).unwrap();
        all
    });
    let (reports, summary) = into(&sandbox, &src, &options, writer).await;
    assert_eq!(
        drained.join().unwrap(),
        expected,
        "the pipe's reader got the archive"
    );
    assert!(reports.iter().all(|r| r.outcome == Outcome::Written));
    assert_eq!(
        summary.archive_bytes, 0,
        "a pipe's bytes are not the caller's to count"
    );
    // The caller cannot hash what goes into a pipe: refused, not guessed.
    let (_reader, writer) = std::io::pipe().unwrap();
    let refused = sandbox
        .pack_into(&src, &self::options(Compression::None), writer)
        .await;
    assert!(
        matches!(
            refused,
            Err(Error::InvalidOption {
                option: "digest",
                ..
            })
        ),
        "{refused:?}"
    );
    scene.check();
}

async fn outputs_the_worker_must_not_get_are_refused(sandbox: Sandbox) {
    let scene = Scene::new();
    let src = make_source(&scene);
    let outputs = tempfile::tempdir().unwrap();
    let options = PackOptions::default();
    let path = outputs.path().join("held.tar");
    std::fs::write(&path, b"keep me").unwrap();
    let refuse = |out: OwnedFd, why: &str| {
        let sandbox = &sandbox;
        let src = &src;
        let options = &options;
        let why = why.to_string();
        async move {
            match sandbox.pack_into(src, options, out).await {
                Err(Error::InvalidOption { option: "out", .. }) => {}
                other => panic!("{why}: {other:?}"),
            }
        }
    };
    let read_only = std::fs::File::open(&path).unwrap();
    refuse(read_only.into(), "open for reading").await;
    let read_write = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    refuse(read_write.into(), "open for reading and writing").await;
    let (socket, _other) = std::os::unix::net::UnixStream::pair().unwrap();
    refuse(socket.into(), "a socket").await;
    let dir = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(scene.parent())
        .unwrap();
    refuse(dir.into(), "a directory").await;
    assert_eq!(std::fs::read(&path).unwrap(), b"keep me");
    scene.check();
}

async fn a_failed_job_leaves_no_worker_behind(sandbox: Sandbox) {
    let scene = Scene::new();
    let src = make_source(&scene);
    let options = options(Compression::None);
    // A pipe whose reader is gone: the worker's first write fails (EPIPE).
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut pack = sandbox
        .pack_into(&src, &options_without_digest(options), writer)
        .await
        .unwrap();
    while pack.next().await.is_some() {}
    let pid = pack.worker_pid();
    let result = pack.finish().await;
    assert!(result.is_err(), "a broken pipe fails the job: {result:?}");
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "the worker is gone (reaped) when finish returns"
    );
    scene.check();
}

/// A job dropped half way: the worker is killed; the caller's offset is
/// past what it wrote (its next write does not land over the partial
/// archive), and the file stays `O_APPEND` (a write of the dying worker's
/// may still be under way when the job is dropped).
async fn a_dropped_job_leaves_the_offset_at_the_end(sandbox: Sandbox) {
    let scene = Scene::new();
    let src = make_source(&scene);
    for i in 0..200 {
        std::fs::write(src.join(format!("more-{i:03}")), vec![b'm'; 64 << 10]).unwrap();
    }
    let outputs = tempfile::tempdir().unwrap();
    let path = outputs.path().join("partial.tar");
    let mut file = std::fs::File::create(&path).unwrap();
    std::io::Write::write_all(&mut file, b"HEAD").unwrap();
    let options = options_without_digest(options(Compression::None));
    let mut pack = sandbox
        .pack_into(&src, &options, file.try_clone().unwrap())
        .await
        .expect("pack_into");
    pack.next().await;
    let pid = pack.worker_pid();
    drop(pack);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while Path::new(&format!("/proc/{pid}")).exists() {
        assert!(std::time::Instant::now() < deadline, "the worker is gone");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let len = std::fs::metadata(&path).unwrap().len();
    assert_eq!(file.stream_position().unwrap(), len);
    std::io::Write::write_all(&mut file, b"TAIL").unwrap();
    let written = std::fs::read(&path).unwrap();
    assert!(written.starts_with(b"HEAD") && written.ends_with(b"TAIL"));
    assert_eq!(written.len() as u64, len + 4, "nothing written over");
    scene.check();
}

fn options_without_digest(mut options: PackOptions) -> PackOptions {
    options.digest = false;
    options
}
