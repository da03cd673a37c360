//! Load: 64 concurrent jobs on a 2-core machine, on multi-thread and
//! current-thread runtimes, all correct.

mod common;

use std::path::Path;

use sandtar::{Options, Sandbox};

fn archive(i: usize) -> Vec<u8> {
    let tar = common::tar_files((0..20).map(|j| {
        (
            format!("d{}/f{j}", j % 3),
            format!("job {i} file {j}\n").repeat(50),
        )
    }));
    // Every other job compressed, so both decoding paths run concurrently.
    if i.is_multiple_of(2) {
        zstd::stream::encode_all(&tar[..], 1).unwrap()
    } else {
        tar
    }
}

fn check(dest: &Path, i: usize) {
    for j in 0..20 {
        let body = std::fs::read_to_string(dest.join(format!("d{}/f{j}", j % 3))).unwrap();
        assert_eq!(
            body,
            format!("job {i} file {j}\n").repeat(50),
            "job {i} file {j}"
        );
    }
}

async fn sixty_four(sandbox: Sandbox) {
    let mut tasks = Vec::new();
    for i in 0..64 {
        let sandbox = sandbox.clone();
        tasks.push(tokio::spawn(async move {
            let dest = tempfile::tempdir().unwrap();
            let data = archive(i);
            let summary = sandbox
                .extract(&data[..], dest.path(), &Options::default())
                .await
                .unwrap();
            assert_eq!((summary.entries, summary.written), (20, 20), "job {i}");
            check(dest.path(), i);
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_concurrent_jobs_multi_thread() {
    sixty_four(Sandbox::new().await.unwrap()).await;
}

#[tokio::test(flavor = "current_thread")]
async fn sixty_four_concurrent_jobs_current_thread() {
    sixty_four(Sandbox::new().await.unwrap()).await;
}
