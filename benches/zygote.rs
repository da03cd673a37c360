//! The cost of a zygote: starting one, and the job that has to wait for one.
//!
//! ```text
//! cargo bench --bench zygote
//! ```
//!
//! * `start`: `Sandbox::new()`, from the call to its return: re-executing the
//!   program as the zygote, its hello, and the first warm worker (forked, set
//!   up, `Warm` received). This is what replacing a zygote costs.
//! * `tiny, default`: one job after another, each extracting one 1 KiB file,
//!   with the default `jobs_per_zygote` (no replacement during the run).
//! * `tiny, jobs_per_zygote(1)`: the same jobs, with a new zygote before
//!   every job: each job waits for the replacement and its first warm worker.
//!
//! Medians and 90th percentiles, in milliseconds, written to standard output.
//! Destinations are fresh directories under `/dev/shm` (tmpfs).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sandtar::{Options, Sandbox};

const STARTS: usize = 40;
const JOBS: usize = 300;

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is ignored.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let root = scratch();
    rt.block_on(async {
        let starts = time_starts().await;
        report("start (Sandbox::new: zygote + first warm worker)", starts);
        let default = Sandbox::new().await.expect("Sandbox::new");
        report("tiny, default", tiny_jobs(&default, &root).await);
        let recycled = Sandbox::builder()
            .jobs_per_zygote(1)
            .build()
            .await
            .expect("build");
        report(
            "tiny, jobs_per_zygote(1)",
            tiny_jobs(&recycled, &root).await,
        );
    });
    let _ = std::fs::remove_dir_all(&root);
}

/// Times `STARTS` sandboxes from `Sandbox::new()` to its return; each is
/// dropped, and its zygote given time to go, before the next.
async fn time_starts() -> Vec<Duration> {
    let mut times = Vec::with_capacity(STARTS);
    for _ in 0..STARTS {
        let started = Instant::now();
        let sandbox = Sandbox::new().await.expect("Sandbox::new");
        times.push(started.elapsed());
        drop(sandbox);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    times
}

/// Times `JOBS` one-file jobs, one after another, each into a new directory.
async fn tiny_jobs(sandbox: &Sandbox, root: &Path) -> Vec<Duration> {
    let archive = one_file();
    let mut times = Vec::with_capacity(JOBS);
    for i in 0..JOBS {
        let dest = root.join(format!("job-{i}"));
        let _ = std::fs::remove_dir_all(&dest);
        std::fs::create_dir(&dest).expect("destination");
        let started = Instant::now();
        let summary = sandbox
            .extract(&archive[..], &dest, &Options::default())
            .await
            .expect("extract");
        times.push(started.elapsed());
        assert_eq!(summary.written, 1);
        std::fs::remove_dir_all(&dest).expect("cleanup");
    }
    times
}

/// A tar archive of one 1 KiB file.
fn one_file() -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(1024);
    header.set_mode(0o644);
    header.set_cksum();
    builder
        .append_data(&mut header, "hello.txt", &[b'x'; 1024][..])
        .expect("tar");
    builder.into_inner().expect("tar")
}

fn scratch() -> PathBuf {
    let root = PathBuf::from(format!(
        "/dev/shm/sandtar-zygote-bench-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&root).expect("scratch directory");
    root
}

fn report(what: &str, mut times: Vec<Duration>) {
    times.sort();
    let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize].as_secs_f64() * 1000.0;
    println!(
        "{what}: n={} p50 {:.2} ms, p90 {:.2} ms, min {:.2} ms",
        times.len(),
        at(0.5),
        at(0.9),
        at(0.0)
    );
}
