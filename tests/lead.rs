//! A bounded lead (`Options::max_lead`): the worker applies at most that many
//! entries ahead of the reports the caller has taken, so that a caller that
//! looks at the first reports and drops the job leaves only those entries
//! (and at most `max_lead` more) on disk. As root and as `nobody`.

mod common;

use std::path::Path;
use std::time::Duration;

use common::raw::Tar;
use common::Scene;
use sandtar::{Error, Options, Outcome, Sandbox};

root_and_nobody!(
    dropping_after_a_look_leaves_at_most_the_lead,
    finish_lifts_the_bound,
    lockstep_streams_every_entry,
);

const FILES: usize = 2_001;

fn many_files() -> Vec<u8> {
    let mut tar = Tar::new();
    for i in 0..FILES {
        tar.file(format!("f{i:05}"), b"x");
    }
    tar.finish()
}

fn files_in(dir: &Path) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

fn with_lead(lead: u32) -> Options {
    let mut options = Options::default();
    options.max_lead = Some(lead);
    options
}

/// Takes `taken` reports, waits for a worker that would run ahead, drops the
/// job, and counts what reached the disk.
async fn after_a_look(sandbox: &Sandbox, options: &Options, taken: usize) -> usize {
    let scene = Scene::new();
    let archive = many_files();
    let mut job = sandbox
        .start(&archive[..], &scene.dest, options)
        .await
        .unwrap();
    for _ in 0..taken {
        let report = job.next().await.unwrap().unwrap();
        assert_eq!(report.outcome, Outcome::Written);
    }
    // Time enough for an unbounded worker to write thousands of files.
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(job);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let on_disk = files_in(&scene.dest);
    scene.check();
    on_disk
}

async fn dropping_after_a_look_leaves_at_most_the_lead(sandbox: Sandbox) {
    for (lead, taken) in [(5u32, 5usize), (1, 3), (64, 10)] {
        let on_disk = after_a_look(&sandbox, &with_lead(lead), taken).await;
        println!("max_lead {lead}, {taken} reports taken: {on_disk} files on disk");
        assert!(on_disk >= taken, "{on_disk} < {taken}");
        assert!(
            on_disk <= taken + lead as usize,
            "max_lead {lead}: {on_disk} files on disk after {taken} reports"
        );
    }
    // The control: without a bound the worker runs far ahead.
    let on_disk = after_a_look(&sandbox, &Options::default(), 5).await;
    println!("unbounded, 5 reports taken: {on_disk} files on disk");
    assert!(on_disk > 5 + 64, "{on_disk}");
}

async fn finish_lifts_the_bound(sandbox: Sandbox) {
    let scene = Scene::new();
    let archive = many_files();
    let mut job = sandbox
        .start(&archive[..], &scene.dest, &with_lead(2))
        .await
        .unwrap();
    job.next().await.unwrap().unwrap();
    let summary = job.finish().await.unwrap();
    assert_eq!(summary.written, FILES as u64);
    assert_eq!(files_in(&scene.dest), FILES);
    // `extract` takes no report at all.
    let scene = Scene::new();
    let summary = sandbox
        .extract(&archive[..], &scene.dest, &with_lead(1))
        .await
        .unwrap();
    assert_eq!(summary.written, FILES as u64);
    assert_eq!(files_in(&scene.dest), FILES);
    let invalid = sandbox
        .extract(&archive[..], &scene.dest, &with_lead(0))
        .await;
    assert!(
        matches!(
            invalid,
            Err(Error::InvalidOption {
                option: "max_lead",
                ..
            })
        ),
        "{invalid:?}"
    );
    scene.check();
}

async fn lockstep_streams_every_entry(sandbox: Sandbox) {
    let scene = Scene::new();
    let archive = many_files();
    let mut job = sandbox
        .start(&archive[..], &scene.dest, &with_lead(1))
        .await
        .unwrap();
    let mut seen = 0;
    while let Some(report) = job.next().await {
        let report = report.unwrap();
        seen += 1;
        // Lockstep: never more than one entry beyond the reports taken.
        assert!(files_in(&scene.dest) <= seen + 1, "{}", report.shown_path());
    }
    assert_eq!(seen, FILES);
    assert_eq!(job.finish().await.unwrap().written, FILES as u64);
    scene.check();
}
