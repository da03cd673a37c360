//! 10,000 jobs in a row: the caller's descriptors, child processes and resident
//! memory stay flat. Alone in its binary so that nothing else moves the counts.

mod common;

use common::{children, open_fds};
use sandtar::{Options, Sandbox};

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_jobs_stay_flat() {
    let jobs: usize = std::env::var("SANDTAR_SOAK_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let sandbox = Sandbox::new().await.unwrap();
    let data = common::tar_files([("one", b"entry")]);
    let dest = tempfile::tempdir().unwrap();
    let mut baseline = None;
    let started = std::time::Instant::now();
    for i in 0..jobs {
        let summary = sandbox
            .extract(&data[..], dest.path(), &Options::default())
            .await
            .unwrap();
        assert_eq!(summary.written, 1, "job {i}");
        if i == jobs / 10 {
            // Warmed up: allocator arenas, the reaper thread, the pool.
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            baseline = Some((open_fds(), children().len(), rss_kib()));
        }
    }
    let elapsed = started.elapsed();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let (fds, kids, rss) = baseline.unwrap();
    let (fds_end, kids_end, rss_end) = (open_fds(), children().len(), rss_kib());
    println!(
        "{jobs} jobs in {elapsed:?} ({:.0} jobs/s): fds {fds} -> {fds_end}, children {kids} -> {kids_end}, RSS {rss} -> {rss_end} KiB",
        jobs as f64 / elapsed.as_secs_f64()
    );
    assert!(fds_end <= fds + 2, "descriptors grew: {fds} -> {fds_end}");
    assert!(
        kids_end <= kids + 2,
        "child processes grew: {kids} -> {kids_end}"
    );
    assert!(
        rss_end <= rss + 4096,
        "resident memory grew by more than 4 MiB: {rss} -> {rss_end} KiB"
    );
}
