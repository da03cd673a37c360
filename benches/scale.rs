//! Time and memory against the size of the archive: entries (1k to 1M files
//! of 64 bytes, 1,000 per directory) and bytes (one file of 1 MiB to 4 GiB).
//! Plain tar, streamed by `Sandbox::start` from a file on tmpfs into a fresh
//! tmpfs destination; for each input the median of `ROUNDS` extractions, the
//! worker's peak RSS (`VmHWM`, sampled every 2 ms) and how much the caller's
//! peak RSS grew during the job.
//!
//! ```sh
//! cargo bench --bench scale                  # every case (about 8 GiB of tmpfs at the largest)
//! SANDTAR_SCALE_QUICK=1 cargo bench --bench scale   # up to 100k entries and 1 GiB
//! ```
//!
//! Inputs are written once to `$SANDTAR_SCALE_DIR` (default
//! `/dev/shm/sandtar-scale`) and kept for the next run.

use std::fs;
use std::io::{self, BufWriter, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Extractions per input; the median is reported.
const ROUNDS: usize = 3;

/// One input: its name, how to make it, and its unit of work.
struct Case {
    name: String,
    entries: u64,
    bytes: u64,
}

fn cases(quick: bool) -> Vec<Case> {
    let entries: &[u64] = match quick {
        true => &[1_000, 10_000, 100_000],
        false => &[1_000, 10_000, 100_000, 1_000_000],
    };
    let bytes: &[u64] = match quick {
        true => &[1 << 20, 64 << 20, 1 << 30],
        false => &[1 << 20, 64 << 20, 1 << 30, 4 << 30],
    };
    let mut all: Vec<Case> = entries
        .iter()
        .map(|&n| Case {
            name: format!("{n} files"),
            entries: n,
            bytes: 0,
        })
        .collect();
    all.extend(bytes.iter().map(|&b| Case {
        name: format!("{} MiB", b >> 20),
        entries: 1,
        bytes: b,
    }));
    all
}

/// Writes the case's archive to `path` (files of 64 bytes in directories of
/// 1,000, or one file of `bytes` bytes).
fn write_input(case: &Case, path: &Path) -> io::Result<()> {
    let tmp = path.with_extension("part");
    let mut builder = tar::Builder::new(BufWriter::with_capacity(1 << 20, fs::File::create(&tmp)?));
    let header = |size: u64| {
        let mut h = tar::Header::new_ustar();
        h.set_size(size);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        h.set_entry_type(tar::EntryType::Regular);
        h
    };
    if case.bytes > 0 {
        let data = io::repeat(b's').take(case.bytes);
        builder.append_data(&mut header(case.bytes), "big", data)?;
    } else {
        for i in 0..case.entries {
            let name = format!("d{:04}/f{:04}", i / 1000, i % 1000);
            let body = format!("{i:063}\n");
            builder.append_data(&mut header(64), name, body.as_bytes())?;
        }
    }
    builder
        .into_inner()?
        .into_inner()
        .map_err(|e| e.into_error())?;
    fs::rename(tmp, path)
}

fn status_kib(pid: &str, field: &str) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Samples the worker's `VmHWM` every 2 ms until `stop` (the last sample is
/// the largest).
fn watch(pid: u32, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Option<u64>> {
    std::thread::spawn(move || {
        let pid = pid.to_string();
        let mut last = None;
        while !stop.load(Ordering::Relaxed) {
            match status_kib(&pid, "VmHWM:") {
                Some(v) => last = Some(v),
                None if last.is_some() => break,
                None => {}
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        last
    })
}

/// One extraction: its time, the worker's peak and the caller's growth (KiB).
async fn extract(sandbox: &sandtar::Sandbox, input: &Path, dest: &Path) -> (Duration, u64, u64) {
    fs::write("/proc/self/clear_refs", "5").expect("resetting VmHWM");
    let before = status_kib("self", "VmRSS:").unwrap_or(0);
    let mut options = sandtar::Options::default();
    options.limits = sandtar::Limits::unlimited();
    let started = Instant::now();
    let file = tokio::fs::File::open(input)
        .await
        .expect("opening the input");
    let job = sandbox.start(file, dest, &options).await.expect("start");
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch(job.worker_pid(), stop.clone());
    let summary = job.finish().await.expect("extract");
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let worker = watcher.join().expect("watcher").unwrap_or(0);
    let caller = status_kib("self", "VmHWM:").unwrap_or(0);
    assert!(summary.written > 0);
    (elapsed, worker, caller.saturating_sub(before))
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument is a name filter.
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let quick = std::env::var_os("SANDTAR_SCALE_QUICK").is_some_and(|v| !v.is_empty());
    let dir = PathBuf::from(
        std::env::var_os("SANDTAR_SCALE_DIR").unwrap_or_else(|| "/dev/shm/sandtar-scale".into()),
    );
    fs::create_dir_all(&dir).expect("creating the inputs' directory");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let sandbox = rt.block_on(sandtar::Sandbox::new()).expect("sandbox");
    println!("| input | entries | data | median time | per entry or MiB/s | worker peak RSS | caller RSS growth |");
    println!("|---|---|---|---|---|---|---|");
    for case in cases(quick) {
        if !filter.is_empty() && !filter.iter().any(|f| case.name.contains(f.as_str())) {
            continue;
        }
        let input = dir.join(format!("{}.tar", case.name.replace(' ', "-")));
        if !input.exists() {
            write_input(&case, &input).expect("writing an input");
        }
        let mut runs = Vec::new();
        for _ in 0..ROUNDS {
            let dest = dir.join("out");
            let _ = fs::remove_dir_all(&dest);
            fs::create_dir(&dest).unwrap();
            runs.push(rt.block_on(extract(&sandbox, &input, &dest)));
            let _ = fs::remove_dir_all(&dest);
        }
        runs.sort_by_key(|r| r.0);
        let (time, _, _) = runs[ROUNDS / 2];
        let worker = runs.iter().map(|r| r.1).max().unwrap_or(0);
        let caller = runs.iter().map(|r| r.2).max().unwrap_or(0);
        let data = case.bytes.max(case.entries * 64);
        let rate = match case.bytes {
            0 => format!("{:.2} µs", time.as_secs_f64() * 1e6 / case.entries as f64),
            b => format!("{:.0} MiB/s", (b >> 20) as f64 / time.as_secs_f64()),
        };
        println!(
            "| {} | {} | {} KiB | {:.3} s | {} | {} KiB | {} KiB |",
            case.name,
            case.entries,
            data >> 10,
            time.as_secs_f64(),
            rate,
            worker,
            caller
        );
    }
}
