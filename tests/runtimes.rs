//! One sandbox, many runtimes: a `Sandbox` outlives the runtime that created
//! it and serves jobs from any other, as services, `#[tokio::test]`s sharing a
//! `OnceCell` and synchronous wrappers use it (a fresh current-thread runtime
//! per call). Each job extracts a real archive and its file is checked.

mod common;

use std::path::Path;
use std::sync::OnceLock;

use common::raw::Tar;
use sandtar::{Options, Sandbox};

/// Extracts a one-file archive with `sandbox` into a new directory and checks
/// the file; `tag` names the file.
async fn extract_one(sandbox: &Sandbox, tag: &str) {
    let dir = tempfile::tempdir().unwrap();
    let body = format!("from {tag}\n");
    let archive = Tar::new().file("f.txt", body.as_bytes()).finish();
    let run = common::run(sandbox, &archive, dir.path(), &Options::default()).await;
    assert!(run.summary().is_complete(), "{tag}: {:#?}", run.result);
    check(dir.path(), &body);
}

fn check(dir: &Path, body: &str) {
    assert_eq!(std::fs::read_to_string(dir.join("f.txt")).unwrap(), body);
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Created on one runtime, which is then shut down; used from three others,
/// one after another, then from four at once on their own threads.
#[test]
fn a_sandbox_outlives_the_runtime_that_created_it() {
    let creator = current_thread();
    let sandbox = creator.block_on(common::new_sandbox());
    creator.block_on(extract_one(&sandbox, "the creating runtime"));
    drop(creator);
    for round in 0..3 {
        let runtime = match round {
            1 => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap(),
            _ => current_thread(),
        };
        runtime.block_on(extract_one(&sandbox, &format!("runtime {round}")));
    }
    std::thread::scope(|scope| {
        for thread in 0..4 {
            let sandbox = &sandbox;
            scope.spawn(move || {
                let tag = format!("thread {thread}");
                for call in 0..3 {
                    current_thread().block_on(extract_one(sandbox, &format!("{tag}, call {call}")));
                }
            });
        }
    });
}

/// A blocking wrapper as a synchronous program writes one: a process-wide
/// sandbox made on first use, and a fresh runtime for every call.
fn extract_blocking(tag: &str) {
    static SANDBOX: OnceLock<Sandbox> = OnceLock::new();
    let runtime = current_thread();
    let sandbox = SANDBOX.get_or_init(|| runtime.block_on(common::new_sandbox()));
    runtime.block_on(extract_one(sandbox, tag));
}

#[test]
fn a_synchronous_wrapper_with_a_runtime_per_call() {
    for call in 0..5 {
        extract_blocking(&format!("blocking call {call}"));
    }
}

/// `#[tokio::test]`s sharing one sandbox: each test has its own runtime, and
/// the first to finish shuts down the one that made the sandbox while the
/// others still use it (the test harness runs them in parallel).
static SHARED: tokio::sync::OnceCell<Sandbox> = tokio::sync::OnceCell::const_new();

async fn shared() -> &'static Sandbox {
    SHARED.get_or_init(common::new_sandbox).await
}

macro_rules! shared_sandbox_tests {
    ($($name:ident),*) => {$(
        #[tokio::test]
        async fn $name() {
            for job in 0..3 {
                extract_one(shared().await, &format!("{} job {job}", stringify!($name))).await;
            }
        }
    )*};
}

shared_sandbox_tests!(
    shared_sandbox_1,
    shared_sandbox_2,
    shared_sandbox_3,
    shared_sandbox_4,
    shared_sandbox_5,
    shared_sandbox_6
);

/// A runtime with the I/O driver only (no timers), as a minimal synchronous
/// wrapper may build: jobs run, and so does the zygote's replacement, which
/// happens inside whichever call is due (`jobs_per_zygote(1)`: every call).
#[test]
fn a_runtime_without_timers_also_restarts_the_zygote() {
    let builder = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let sandbox = builder.block_on(async {
        let mut b = Sandbox::builder().jobs_per_zygote(1);
        if common::landlock_rung() {
            b = b.only_rung(sandtar::Rung::Landlock);
        }
        b.build().await.expect("a sandbox")
    });
    drop(builder);
    for call in 0..3 {
        let io_only = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap();
        io_only.block_on(extract_one(
            &sandbox,
            &format!("I/O-only runtime, call {call}"),
        ));
    }
}
