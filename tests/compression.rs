//! Compressed archives: every supported format gives the same tree, multi-member
//! streams are read to the end, and corrupt or truncated input ends the job with
//! `Error::MalformedArchive`.

mod common;

use std::io::Write;

use common::{assert_malformed, gzip, noise, shape, snapshot, Scene};
use sandtar::{Compression, Error, NotTar, Options, Sandbox};

root_and_nobody!(every_format_same_tree, multi_member_streams, corrupt_input);

/// A small tree built with the `tar` crate: directories, files of several
/// sizes (one larger than the worker's chunks), a symlink and a hard link.
fn corpus() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, data: &[u8], mode: u32| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_mtime(1_650_000_000);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        b.append_data(&mut h, path, data).unwrap();
    };
    add("docs/readme.txt", b"read me\n", 0o644);
    add("docs/big.bin", &noise(300 * 1024, 7), 0o600);
    add(
        "text.txt",
        "hello sandtar\n".repeat(10_000).as_bytes(),
        0o644,
    );
    add("bin/tool", b"#!/bin/sh\nexit 0\n", 0o755);
    add("empty", b"", 0o644);
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o750);
    h.set_mtime(1_650_000_001);
    h.set_size(0);
    h.set_cksum();
    b.append_data(&mut h, "emptydir/", &[][..]).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_mode(0o777);
    h.set_mtime(1_650_000_002);
    h.set_size(0);
    b.append_link(&mut h, "docs/link", "readme.txt").unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Link);
    h.set_mtime(1_650_000_003);
    h.set_size(0);
    b.append_link(&mut h, "bin/tool-again", "bin/tool").unwrap();
    b.into_inner().unwrap()
}

fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(data, 3).unwrap()
}

fn zstd_checksummed(data: &[u8]) -> Vec<u8> {
    let mut e = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    e.include_checksum(true).unwrap();
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn xz(data: &[u8]) -> Vec<u8> {
    let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn bzip2(data: &[u8]) -> Vec<u8> {
    let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// An lz4 frame with a content checksum (as the `lz4` tool writes by
/// default): flipped bytes are then detected, not just decoded differently.
fn lz4(data: &[u8]) -> Vec<u8> {
    let info = lz4_flex::frame::FrameInfo::new().content_checksum(true);
    let mut e = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::new());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

type Encoder = fn(&[u8]) -> Vec<u8>;

const FORMATS: [(Compression, Encoder); 6] = [
    (Compression::None, |d| d.to_vec()),
    (Compression::Gzip, gzip),
    (Compression::Zstd, zstd),
    (Compression::Xz, xz),
    (Compression::Bzip2, bzip2),
    (Compression::Lz4, lz4),
];

/// Checks the tree the corpus makes (contents, modes, links, times).
fn check_corpus_tree(dest: &std::path::Path) {
    use common::{assert_dir, assert_file, assert_symlink};
    use std::os::unix::fs::MetadataExt;
    assert_file(dest.join("docs/readme.txt"), b"read me\n", 0o644);
    assert_file(dest.join("docs/big.bin"), &noise(300 * 1024, 7), 0o600);
    assert_file(
        dest.join("text.txt"),
        "hello sandtar\n".repeat(10_000).as_bytes(),
        0o644,
    );
    assert_file(dest.join("bin/tool"), b"#!/bin/sh\nexit 0\n", 0o755);
    assert_file(dest.join("empty"), b"", 0o644);
    assert_dir(dest.join("emptydir"), 0o750);
    assert_symlink(dest.join("docs/link"), "readme.txt");
    let a = std::fs::metadata(dest.join("bin/tool")).unwrap();
    let b = std::fs::metadata(dest.join("bin/tool-again")).unwrap();
    assert_eq!(a.ino(), b.ino());
    assert_eq!(a.mtime(), 1_650_000_000);
    assert_eq!(
        std::fs::symlink_metadata(dest.join("emptydir"))
            .unwrap()
            .mtime(),
        1_650_000_001
    );
}

/// The same archive plain, gzip, zstd, xz and bzip2: the same tree, and the
/// summary names the format it recognised.
async fn every_format_same_tree(sandbox: Sandbox) {
    let tar = corpus();
    let mut reference = None;
    for (format, encode) in FORMATS {
        let scene = Scene::new();
        let archive = encode(&tar);
        let run = common::run(&sandbox, &archive, &scene.dest, &Options::default()).await;
        let summary = run.summary();
        assert!(summary.is_complete(), "{format:?}: {:#?}", run.reports);
        assert_eq!(summary.entries, 8, "{format:?}");
        assert_eq!(summary.compression, format);
        assert_eq!(summary.archive_bytes, archive.len() as u64, "{format:?}");
        assert_eq!(summary.tar_bytes, tar.len() as u64, "{format:?}");
        check_corpus_tree(&scene.dest);
        // Directories made as parents (and the destination) carry the time of
        // extraction, and so do symlinks on the Landlock rung: compare
        // everything but their times.
        let landlock = sandbox.mode().rung() == sandtar::Rung::Landlock;
        let mut tree = shape(&snapshot(&scene.dest));
        for (kind, _, mtime) in tree.values_mut() {
            let symlink = matches!(kind, common::Kind::Symlink(_));
            if *kind == common::Kind::Dir || (symlink && landlock) {
                *mtime = (0, 0);
            }
        }
        match &reference {
            None => reference = Some(tree),
            Some(r) => assert!(r == &tree, "{format:?} made a different tree"),
        }
        scene.check();
    }
}

/// Concatenated members (`cat a.gz b.gz`), frames and streams: everything is
/// read, in every format, wherever the split falls.
async fn multi_member_streams(sandbox: Sandbox) {
    let tar = corpus();
    // An odd split point, in the middle of a header or of file data.
    for split in [512 + 100, tar.len() / 2 + 3, tar.len() - 1024] {
        let (a, b) = tar.split_at(split);
        for (format, encode) in &FORMATS[1..] {
            let scene = Scene::new();
            let mut archive = encode(a);
            archive.extend_from_slice(&encode(b));
            let run = common::run(&sandbox, &archive, &scene.dest, &Options::default()).await;
            let summary = run.summary();
            assert!(summary.is_complete(), "{format:?} split {split}");
            assert_eq!(summary.compression, *format);
            assert_eq!(summary.tar_bytes, tar.len() as u64);
            check_corpus_tree(&scene.dest);
            scene.check();
        }
    }
}

/// Corrupt and truncated input, in every format.
async fn corrupt_input(sandbox: Sandbox) {
    let tar = corpus();
    for (format, encode) in FORMATS {
        let good = encode(&tar);
        // Truncated in the middle.
        let scene = Scene::new();
        let cut = &good[..good.len() / 2];
        let run = common::run(&sandbox, cut, &scene.dest, &Options::default()).await;
        assert_malformed(&format!("{format:?} truncated"), &run.result);
        scene.check();
        // Truncated a few bytes before the end (a compressed stream's trailer).
        if format != Compression::None {
            let scene = Scene::new();
            let cut = &good[..good.len() - 4];
            let run = common::run(&sandbox, cut, &scene.dest, &Options::default()).await;
            assert_malformed(&format!("{format:?} without its trailer"), &run.result);
            scene.check();
        }
        // Bytes flipped in the middle. A zstd frame only carries a checksum
        // when the encoder is asked for one (without it, flipped bytes in a raw
        // block just change the contents): ask for one.
        let scene = Scene::new();
        let mut bad = if format == Compression::Zstd {
            zstd_checksummed(&tar)
        } else {
            good.clone()
        };
        let mid = bad.len() / 2;
        for b in &mut bad[mid..mid + 16] {
            *b ^= 0x5a;
        }
        let run = common::run(&sandbox, &bad, &scene.dest, &Options::default()).await;
        if format == Compression::None {
            // Flipped file data is not an error in a plain tar: only the
            // contents of that file differ.
            let summary = run.summary();
            assert!(summary.is_complete());
        } else {
            assert_malformed(&format!("{format:?} with flipped bytes"), &run.result);
        }
        scene.check();
    }
}

/// A corrupt header checksum in a plain tar, and garbage in place of a header.
#[tokio::test]
async fn bad_headers_are_malformed() {
    let sandbox = common::sandbox().await;
    let mut tar = common::raw::Tar::new().file("first.txt", b"first").finish();
    tar.truncate(1024);
    let mut second = common::raw::Header::new("second.txt", b'0', 3).encode();
    second[148] ^= 1; // wrong checksum
    tar.extend_from_slice(&second);
    tar.extend_from_slice(&[b'x'; 512]);
    tar.extend_from_slice(&[0; 1024]);
    let scene = Scene::new();
    let run = common::run(&sandbox, &tar, &scene.dest, &Options::default()).await;
    assert_malformed("bad checksum", &run.result);
    // The entries before the bad header were written and reported.
    assert_eq!(
        run.outcomes(),
        vec![("first.txt".into(), sandtar::Outcome::Written)]
    );
    common::assert_file(scene.dest.join("first.txt"), b"first", 0o644);
    common::assert_absent(scene.dest.join("second.txt"));

    let scene = Scene::new();
    let garbage = vec![b'G'; 4096];
    let run = common::run(&sandbox, &garbage, &scene.dest, &Options::default()).await;
    assert!(
        matches!(run.result, Err(Error::NotTar(NotTar::NoTarHeader))),
        "garbage: {:?}",
        run.result
    );
    assert!(run.reports.is_empty());
    scene.check();
}

/// A forced compression that does not match the input.
#[tokio::test]
async fn forced_compression_mismatch() {
    let sandbox = common::sandbox().await;
    let tar = corpus();
    let mut options = Options::default();
    options.compression = Compression::Gzip;
    let scene = Scene::new();
    let run = common::run(&sandbox, &tar, &scene.dest, &options).await;
    assert_malformed("plain tar read as gzip", &run.result);
    scene.check();

    // Forced and right: the same tree, and the summary says what was forced.
    let scene = Scene::new();
    options.compression = Compression::Xz;
    let run = common::run(&sandbox, &xz(&tar), &scene.dest, &options).await;
    assert_eq!(run.summary().compression, Compression::Xz);
    check_corpus_tree(&scene.dest);

    let scene = Scene::new();
    options.compression = Compression::None;
    let run = common::run(&sandbox, &gzip(&tar), &scene.dest, &options).await;
    assert_malformed("gzip read as plain tar", &run.result);
    scene.check();
}

/// An archive of only end blocks: nothing to do, no error. An empty input
/// (GNU tar: "This does not look like a tar archive") is not a tar archive.
#[tokio::test]
async fn empty_archives() {
    let sandbox = common::sandbox().await;
    for (what, archive) in [
        ("empty input", Vec::new()),
        ("gzip of nothing", gzip(&[])),
        ("end blocks only", vec![0u8; 1024]),
        ("gzip of end blocks", gzip(&[0u8; 1024])),
    ] {
        let scene = Scene::new();
        let run = common::run(&sandbox, &archive, &scene.dest, &Options::default()).await;
        match what.contains("nothing") || what.contains("empty") {
            true => assert!(
                matches!(run.result, Err(Error::NotTar(NotTar::Empty))),
                "{what}: {:?}",
                run.result
            ),
            false => assert_eq!(run.summary().entries, 0, "{what}"),
        }
        assert!(common::snapshot(&scene.dest).len() == 1, "{what}");
        scene.check();
    }
}

/// Input that is not a tar archive is named for what it is, compressed or
/// not, and the message never carries the input's bytes.
#[tokio::test]
async fn what_is_not_a_tar() {
    let sandbox = common::sandbox().await;
    let zip = [&b"PK\x03\x04\x14\x00\x00\x00"[..], &[b'x'; 200]].concat();
    let random = noise(3000, 11);
    let cases: Vec<(&str, Vec<u8>, NotTar)> = vec![
        ("zip", zip.clone(), NotTar::Zip),
        ("gzip of a zip", gzip(&zip), NotTar::Zip),
        ("short zip", b"PK\x03\x04hello".to_vec(), NotTar::Zip),
        (
            "7z",
            b"7z\xbc\xaf\x27\x1c\x00\x04rest".to_vec(),
            NotTar::SevenZip,
        ),
        ("rar", b"Rar!\x1a\x07\x01\x00rest".to_vec(), NotTar::Rar),
        ("deb", b"!<arch>\ndebian-binary   ".to_vec(), NotTar::Ar),
        (
            "lzip",
            b"LZIP\x01\x0c\x00rest".to_vec(),
            NotTar::Compression("lzip".into()),
        ),
        ("random bytes", random.clone(), NotTar::NoTarHeader),
    ];
    for (what, input, expected) in cases {
        let scene = Scene::new();
        let run = common::run(&sandbox, &input, &scene.dest, &Options::default()).await;
        let message = match &run.result {
            Err(e @ Error::NotTar(found)) if *found == expected => e.to_string(),
            other => panic!("{what}: {other:?}"),
        };
        assert!(
            message.starts_with("not a tar archive: "),
            "{what}: {message}"
        );
        assert!(message.len() < 160, "{what}: {message}");
        // Our words only: plain ASCII, and no run of 4 of the random bytes.
        assert!(
            message.bytes().all(|b| (b' '..=b'~').contains(&b)),
            "{what}: {message}"
        );
        let shown = message.as_bytes();
        assert!(
            !random.windows(4).any(|w| shown.windows(4).any(|m| m == w)),
            "{what}: {message}"
        );
        assert!(run.reports.is_empty(), "{what}");
        scene.check();
    }
    // A tar whose second header is garbage stays a malformed archive.
    let mut tar = common::raw::Tar::new().file("first.txt", b"first").finish();
    tar.truncate(1024);
    tar.extend_from_slice(&random[..1024]);
    let scene = Scene::new();
    let run = common::run(&sandbox, &tar, &scene.dest, &Options::default()).await;
    assert_malformed("garbage after an entry", &run.result);
}

/// lz4 as the `lz4` tool writes it (default settings, and two frames one
/// after another): the same tree. Skipped, with a note, without the tool.
#[tokio::test]
async fn lz4_from_the_lz4_tool() {
    let tool = |data: &[u8]| -> Option<Vec<u8>> {
        let mut child = std::process::Command::new("lz4")
            .args(["-q", "-c"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .ok()?;
        let mut stdin = child.stdin.take().unwrap();
        let data = data.to_vec();
        let writer = std::thread::spawn(move || stdin.write_all(&data));
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap().unwrap();
        assert!(out.status.success(), "lz4 failed");
        Some(out.stdout)
    };
    let tar = corpus();
    let Some(whole) = tool(&tar) else {
        println!("NOTE: no lz4 tool; skipped");
        return;
    };
    let (a, b) = tar.split_at(tar.len() / 2 + 7);
    let two_frames = [tool(a).unwrap(), tool(b).unwrap()].concat();
    let sandbox = common::sandbox().await;
    for archive in [whole, two_frames] {
        let scene = Scene::new();
        let run = common::run(&sandbox, &archive, &scene.dest, &Options::default()).await;
        assert!(run.summary().is_complete(), "{:#?}", run.reports);
        assert_eq!(run.summary().compression, Compression::Lz4);
        assert_eq!(run.summary().tar_bytes, tar.len() as u64);
        check_corpus_tree(&scene.dest);
        scene.check();
    }
}
