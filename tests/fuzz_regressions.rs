//! Replays the fuzzing corpora kept in `tests/data/fuzz/<target>/` (a small,
//! minimised set of interesting inputs per target of `fuzz/`, and every input
//! that once crashed or hung a target) through the same entry points as the
//! fuzz targets, so that `cargo test` catches a regression without cargo-fuzz.
//! See FUZZING.md.
//!
//! The entry points exist only with `--cfg fuzzing`:
//! `RUSTFLAGS="--cfg fuzzing" cargo test --target-dir target/fuzzing --test fuzz_regressions`
//! (without the cfg this file is empty).
#![cfg(fuzzing)]
//!
//! Inputs of the `extract` target are one selector byte and a plain tar stream,
//! exactly as in `fuzz/fuzz_targets/extract.rs`.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::raw::{pax_record, Header, Tar};

const CANARY: &[u8] = b"canary: must stay as it is";

fn inputs(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/fuzz")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no inputs in {}", dir.display());
    files
}

/// What the `extract` target does with one input, checks included.
fn extract_one(data: &[u8]) -> Result<usize, String> {
    extract_and_list(data).0
}

/// The same, with the names left in the destination.
fn extract_and_list(data: &[u8]) -> (Result<usize, String>, Vec<String>) {
    let Some((&selector, archive)) = data.split_first() else {
        return (Ok(0), Vec::new());
    };
    let outer = tempfile::Builder::new()
        .prefix("sandtar-fuzz-regression-")
        .tempdir()
        .unwrap();
    let dest = outer.path().join("dest");
    std::fs::create_dir(&dest).unwrap();
    let canary = outer.path().join("canary");
    std::fs::write(&canary, CANARY).unwrap();
    let result = sandtar::fuzzing::extract_unconfined(
        archive,
        &dest,
        &sandtar::fuzzing::options_from_selector(selector),
    );
    let mut names = Vec::new();
    list(&dest, "", &mut names);
    let mut beside: Vec<_> = std::fs::read_dir(outer.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    beside.sort();
    assert_eq!(beside, ["canary", "dest"], "written beside the destination");
    assert_eq!(std::fs::read(&canary).unwrap(), CANARY, "canary changed");
    outer.close().expect("removing the temporary directory");
    (result, names)
}

fn list(dir: &Path, prefix: &str, out: &mut Vec<String>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = format!("{prefix}{}", e.file_name().to_string_lossy());
        let meta = e.path().symlink_metadata().unwrap();
        out.push(format!(
            "{name} ({:?}, {} bytes)",
            meta.file_type(),
            meta.len()
        ));
        if meta.is_dir() {
            list(&e.path(), &format!("{name}/"), out);
        }
    }
}

/// Runs `f` on every input of `target`, each in a thread of its own so that a
/// panic names its input; fails if one input takes more than `budget`.
fn replay(target: &str, budget: Duration, f: fn(&[u8])) {
    let mut failures = Vec::new();
    for path in inputs(target) {
        let data = std::fs::read(&path).unwrap();
        let started = Instant::now();
        let outcome = std::thread::spawn(move || f(&data)).join();
        let elapsed = started.elapsed();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if outcome.is_err() {
            failures.push(format!("{target}/{name}: panicked"));
        } else if elapsed > budget {
            failures.push(format!("{target}/{name}: took {elapsed:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn extract_corpus() {
    replay("extract", Duration::from_secs(5), |data| {
        let _ = extract_one(data);
    });
}

#[test]
fn worker_frames_corpus() {
    replay("worker_frames", Duration::from_secs(1), |data| {
        let _ = sandtar::fuzzing::decode_worker_frames(data);
    });
}

#[test]
fn job_header_corpus() {
    replay("job_header", Duration::from_secs(1), |data| {
        let _ = sandtar::fuzzing::decode_job_header(data);
    });
}

/// Prints what the `extract` target makes of the inputs named in
/// `SANDTAR_FUZZ_INPUT` (paths separated by `:`): for looking at a new finding.
#[test]
#[ignore = "a tool: SANDTAR_FUZZ_INPUT=path cargo test --test fuzz_regressions show -- --ignored --nocapture"]
fn show() {
    let Some(paths) = std::env::var_os("SANDTAR_FUZZ_INPUT") else {
        return;
    };
    for path in std::env::split_paths(&paths) {
        let data = std::fs::read(&path).unwrap();
        let started = Instant::now();
        let (result, names) = extract_and_list(&data);
        println!("{}: {result:?} in {:?}", path.display(), started.elapsed());
        for name in names {
            println!("    {name}");
        }
    }
}

/// Was a bug (fixed): a 2 KiB archive: one old-GNU sparse (`S`) entry whose
/// real size is just under 8 GiB (the default `max_entry_size`), one 512-byte
/// chunk at its end. GNU tar extracts it in milliseconds. The `tar` crate
/// expands the holes with zeros, and the applier read and scanned all 8 GiB to
/// skip them: minutes of worker CPU (108 s in a debug build, 55 s of CPU with
/// the release+ASan fuzz build), linear in the real size. The archive loop now
/// hands the applier the chunks only, and drops the zeros unscanned (about
/// 50 ms for this one in a debug build).
#[test]
fn old_gnu_sparse_holes_cost_little() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/fuzz/bugs/extract-oldgnu-sparse-8gib.bin");
    let data = std::fs::read(path).unwrap();
    let started = Instant::now();
    let (result, names) = extract_and_list(&data);
    let elapsed = started.elapsed();
    assert_eq!(result, Ok(1));
    assert_eq!(names.len(), 1);
    assert!(names[0].ends_with(", 8589934080 bytes)"), "{names:?}");
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
}

// ---------------------------------------------------------------------------
// PAX record parsing: found by tests/conformance.rs (the `tar` crate split PAX
// data at newlines), fixed by reading each record by its length
// (src/worker/archive/pax.rs); kept here as small, fast reproductions through the same
// entry point (see FUZZING.md).
// ---------------------------------------------------------------------------

/// An archive: a PAX header whose data is `records` (taken as they are), then
/// an empty file `f`, then the end blocks. Behind the extract target's
/// selector byte 1 (full fidelity).
fn pax_archive(records: &[u8]) -> Vec<u8> {
    pax_archive_typed(b'x', records, 0)
}

/// The same with a PAX header of type `typeflag` (`x` or `g`) and a file `f`
/// whose header says `size` (its data: `size` bytes of `d`).
fn pax_archive_typed(typeflag: u8, records: &[u8], size: usize) -> Vec<u8> {
    let tar = Tar::new()
        .entry(Header::new("PaxHeaders/f", typeflag, 0), records)
        .entry(Header::new("f", b'0', 0), &vec![b'd'; size])
        .finish();
    // Full fidelity, read strictly (selector bits 0 and 3): these are the
    // refusals of `Parsing::Strict`.
    [&[9u8][..], &tar].concat()
}

#[test]
fn pax_records_well_formed() {
    // The control: a plain binary value without a newline byte.
    let archive = pax_archive(&pax_record(b"SCHILY.xattr.user.bin", &[0, 1, 2, 0xff]));
    assert_eq!(extract_one(&archive), Ok(1));
}

/// Was a bug (fixed): GNU tar (and POSIX) read a record by its length, so a
/// value may hold a newline byte: a `security.capability` granting
/// `cap_dac_override` and `cap_fowner` has the byte 0x0a. The `tar` crate
/// splits PAX data at newlines, and the archive was refused as malformed.
#[test]
fn pax_value_with_a_newline_is_valid() {
    let archive = pax_archive(&pax_record(b"SCHILY.xattr.user.bin", b"a\nb"));
    assert_eq!(extract_one(&archive), Ok(1));
    // With every byte, and records after it.
    let all: Vec<u8> = (0..=255).collect();
    let records = [
        pax_record(b"SCHILY.xattr.user.all", &all),
        pax_record(b"SCHILY.xattr.user.nl", b"\n\n"),
        pax_record(b"mtime", b"1700000000.5"),
    ]
    .concat();
    assert_eq!(extract_one(&pax_archive(&records)), Ok(1));
}

/// Was a bug (fixed): `13 path=name` is 12 bytes: its newline is missing. GNU
/// tar: "Extended header length 13 path=name is out of range", exit 2. sandtar
/// renamed the file `name`.
#[test]
fn unterminated_pax_record_is_malformed() {
    let result = extract_one(&pax_archive(b"13 path=name"));
    assert_malformed(result, "the record length runs past the end of the header");
    let result = extract_one(&pax_archive(b"12 path=name"));
    assert_malformed(result, "the record does not end with a newline");
}

/// Was a bug (fixed): GNU tar: "Malformed extended header: missing equal
/// sign", exit 2; sandtar accepted it.
#[test]
fn nul_in_pax_key_is_malformed() {
    let result = extract_one(&pax_archive(&pax_record(b"SCHILY.xattr.user.a\0b", b"x")));
    assert_malformed(result, "the record key holds a NUL byte");
}

/// Asserts a malformed-archive error whose message says `reason`.
fn assert_malformed(result: Result<usize, String>, reason: &str) {
    match result {
        Err(e) if e.starts_with("Malformed {") && e.contains(&format!("{reason}\"")) => {}
        other => panic!("expected a malformed archive ({reason}), got {other:?}"),
    }
}

/// The rest of what GNU tar refuses in PAX data, refused too.
#[test]
fn malformed_pax_records() {
    let good = pax_record(b"path", b"p");
    for (data, reason) in [
        (
            b"x5 k=v\n".to_vec(),
            "the record does not start with its decimal length",
        ),
        (
            b" 7 k=v\n".to_vec(),
            "the record does not start with its decimal length",
        ),
        (
            b"7\tk=v\n".to_vec(),
            "the record length is not followed by a space",
        ),
        (b"2 k=v\n".to_vec(), "the record length is too small"),
        (b"6 kv\n\n".to_vec(), "the record has no `=`"),
        (b"5 =v\n".to_vec(), "the record has an empty key"),
        (
            [&good[..], b"junk"].concat(),
            "the record does not start with its decimal length",
        ),
        (
            [&good[..], b"\0\0"].concat(),
            "NUL padding after the last record",
        ),
    ] {
        assert_malformed(extract_one(&pax_archive(&data)), reason);
        // The same in a global header.
        assert_malformed(extract_one(&pax_archive_typed(b'g', &data, 0)), reason);
    }
}

/// A value holding a newline hides the records after it from the `tar`
/// crate's lookup of `size` (it stops at the first line it cannot parse), and
/// the crate frames the data with the header's size instead: when the two
/// differ the archive is refused, not read one way by sandtar and another by
/// GNU tar.
#[test]
fn pax_size_after_a_value_with_a_newline() {
    let nl = pax_record(b"SCHILY.xattr.user.nl", b"a\nb");
    // The header says 0, the record 1024: refused.
    let records = [nl.clone(), pax_record(b"size", b"1024")].concat();
    assert_malformed(
        extract_one(&pax_archive_typed(b'x', &records, 0)),
        "ambiguous PAX size: 1024 by the record lengths, 0 to a reader that splits records at \
         newlines (a record value holds a newline byte)",
    );
    // The header agrees: extracted (GNU tar's archives of files under 8 GiB).
    assert_eq!(extract_one(&pax_archive_typed(b'x', &records, 1024)), Ok(1));
    // `size` first: the crate sees it too.
    let records = [pax_record(b"size", b"1024"), nl.clone()].concat();
    assert_eq!(extract_one(&pax_archive_typed(b'x', &records, 0)), Ok(1));
    // Two sizes: the crate takes the first, GNU tar the last: refused.
    let records = [pax_record(b"size", b"0"), pax_record(b"size", b"1024")].concat();
    assert_malformed(
        extract_one(&pax_archive_typed(b'x', &records, 0)),
        "ambiguous PAX size: 1024 by the record lengths, 0 to a reader that splits records at \
         newlines (a record value holds a newline byte)",
    );
    // An unparseable size, wherever it is.
    let records = [pax_record(b"size", b"0"), nl, pax_record(b"size", b" 0")].concat();
    assert_malformed(
        extract_one(&pax_archive_typed(b'x', &records, 0)),
        "invalid PAX size record",
    );
}

/// A value that looks like records once split at newlines: the `tar` crate's
/// own lookup of `path` would find the one inside it. The name is the header's.
#[test]
fn pax_path_inside_a_value() {
    let records = pax_record(b"SCHILY.xattr.user.a", b"\n17 path=smuggled\n");
    let inside = tar::PaxExtensions::new(&records)
        .filter_map(Result::ok)
        .find(|r| r.key_bytes() == b"path")
        .map(|r| r.value_bytes());
    assert_eq!(inside, Some(&b"smuggled"[..]), "the crate's reading");
    let (result, names) = extract_and_list(&pax_archive(&records));
    assert_eq!(result, Ok(1));
    assert_eq!(names.len(), 1);
    assert!(names[0].starts_with("f ("), "{names:?}");
    // A real `path` after it is read.
    let records = [records, pax_record(b"path", b"real")].concat();
    let (result, names) = extract_and_list(&pax_archive(&records));
    assert_eq!(result, Ok(1));
    assert_eq!(names.len(), 1);
    assert!(names[0].starts_with("real ("), "{names:?}");
}

/// GNU tar applies a `size` from a global header to every later member; the
/// `tar` crate (and Go) ignore it: refused.
#[test]
fn pax_global_size_is_refused() {
    let result = extract_one(&pax_archive_typed(b'g', &pax_record(b"size", b"0"), 0));
    assert_malformed(result, "a PAX global header with a size record");
    // Other global records are fine.
    let records = [
        pax_record(b"mtime", b"1700000000"),
        pax_record(b"comment", b"a\nb"),
    ]
    .concat();
    assert_eq!(extract_one(&pax_archive_typed(b'g', &records, 3)), Ok(1));
}
