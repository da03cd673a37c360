//! Replays the fuzzing corpora kept in `tests/data/fuzz/<target>/` (a small,
//! minimised set of interesting inputs per target of `fuzz/`, and every input
//! that once crashed or hung a target) through the same entry points as the
//! fuzz targets, so that `cargo test` catches a regression without cargo-fuzz.
//! See FUZZING.md.
//!
//! Inputs of the `extract` target are one selector byte and a plain tar stream,
//! exactly as in `fuzz/fuzz_targets/extract.rs`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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

/// The options the `extract` target derives from its selector byte.
fn options(selector: u8) -> sandtar::Options {
    let mut options = if selector & 1 != 0 {
        sandtar::Options::full_fidelity()
    } else {
        sandtar::Options::default()
    };
    if selector & 2 != 0 {
        let l = &mut options.limits;
        l.max_entries = 64;
        l.max_entry_size = 1 << 20;
        l.max_total_size = 4 << 20;
        l.max_extension_size = 8 << 10;
        l.max_path_length = 200;
        l.max_path_depth = 8;
    }
    if selector & 4 != 0 {
        options.preserve_mtime = false;
    }
    options
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
    let result = sandtar::fuzzing::extract_unconfined(archive, &dest, &options(selector));
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

/// A 2 KiB archive: one old-GNU sparse (`S`) entry whose real size is just
/// under 8 GiB (the default `max_entry_size`), one 512-byte chunk at its end.
/// GNU tar extracts it in milliseconds. The `tar` crate expands the holes with
/// zeros and the applier reads and scans all 8 GiB to skip them: minutes of
/// worker CPU (108 s in a debug build, 55 s of CPU with the release+ASan fuzz
/// build), linear in the real size.
#[test]
#[ignore = "BUG: old-GNU sparse holes are read as zeros: CPU linear in the real size (8 GiB under the default limits)"]
fn bug_old_gnu_sparse_costs_its_real_size() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/fuzz/bugs/extract-oldgnu-sparse-8gib.bin");
    let data = std::fs::read(path).unwrap();
    let started = Instant::now();
    let result = extract_one(&data);
    let elapsed = started.elapsed();
    assert_eq!(result, Ok(1));
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
}
