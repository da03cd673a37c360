//! The process model seen from the caller: workers that are dropped, killed or
//! whose reader fails are gone at once (no process, no zombie); jobs run side by
//! side on multi-threaded and current-thread runtimes; a bad destination fails
//! before any byte is read; reports stream while the archive is still arriving.

mod common;

use std::io;
use std::path::Path;
use std::pin::Pin;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use common::raw::{Header, Tar};
use common::{
    assert_file, assert_gone, children, open_fds, parent_of, process_state, Scene, WatchedReader,
    GONE_WITHIN,
};
use sandtar::{Error, Options, Outcome, Sandbox};
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};

root_and_nobody!(
    dropped_job_leaves_no_process,
    reader_error_half_way,
    worker_killed_mid_job,
    reports_stream_before_the_reader_ends,
    unreadable_destination,
);

/// The start of an archive whose first file promises 1 MiB that never comes.
fn endless_head() -> Vec<u8> {
    let mut tar = Tar::new();
    tar.file("first.txt", b"first")
        .header(&Header::new("slow.bin", b'0', 1 << 20));
    tar.bytes()
}

/// Starts a job on an archive that never ends; returns the job, the writer
/// (keep it to keep the archive open) and the worker's pid, once the worker has
/// reported the first entry (so it is surely running the job).
async fn endless_job(
    sandbox: &Sandbox,
    dest: &Path,
) -> (
    sandtar::Job<tokio::io::DuplexStream>,
    tokio::io::DuplexStream,
    u32,
) {
    let (mut writer, reader) = tokio::io::duplex(256 * 1024);
    writer.write_all(&endless_head()).await.unwrap();
    let mut job = sandbox
        .start(reader, dest, &Options::default())
        .await
        .expect("start");
    let pid = job.worker_pid();
    assert_eq!(
        parent_of(pid),
        Some(std::process::id()),
        "workers are children of the caller"
    );
    let first = tokio::time::timeout(Duration::from_secs(10), job.next())
        .await
        .expect("the first report comes while the archive is still open")
        .expect("a report")
        .expect("no error");
    assert_eq!(first.path, Path::new("first.txt"));
    assert_eq!(first.outcome, Outcome::Written);
    assert!(process_state(pid).is_some());
    (job, writer, pid)
}

/// Dropping a job kills its worker, which is reaped: no process, no zombie.
async fn dropped_job_leaves_no_process(sandbox: Sandbox) {
    let scene = Scene::new();
    let (job, writer, pid) = endless_job(&sandbox, &scene.dest).await;
    drop(job);
    assert_gone(pid, "dropped job").await;
    drop(writer);
    // What was written before stays; the half-received file may stay too, but
    // nothing outside.
    assert_file(scene.dest.join("first.txt"), b"first", 0o644);
    scene.check();

    // Dropped right after start, before it was ever polled.
    let scene = Scene::new();
    let (_writer, reader) = tokio::io::duplex(1024);
    let job = sandbox
        .start(reader, &scene.dest, &Options::default())
        .await
        .unwrap();
    let pid = job.worker_pid();
    assert!(process_state(pid).is_some());
    drop(job);
    assert_gone(pid, "job dropped before polling").await;

    // The sandbox still serves jobs.
    let scene = Scene::new();
    let archive = Tar::new().file("next.txt", b"next").finish();
    let summary = sandbox
        .extract(&archive[..], &scene.dest, &Options::default())
        .await
        .unwrap();
    assert!(summary.is_complete());
    assert_file(scene.dest.join("next.txt"), b"next", 0o644);
}

fn job_archive(i: usize) -> Vec<u8> {
    let mut tar = Tar::new();
    tar.dir(format!("job-{i}/"), 0o755);
    for j in 0..20 {
        tar.file(
            format!("job-{i}/file-{j}.txt"),
            format!("job {i} file {j}\n").repeat(j * 50 + 1).as_bytes(),
        );
    }
    tar.symlink(format!("job-{i}/link"), "file-0.txt");
    tar.file(format!("big-{i}.bin"), &vec![i as u8; 300 * 1024]);
    tar.finish()
}

fn check_job_tree(dest: &Path, i: usize) {
    for j in 0..20 {
        assert_file(
            dest.join(format!("job-{i}/file-{j}.txt")),
            format!("job {i} file {j}\n").repeat(j * 50 + 1).as_bytes(),
            0o644,
        );
    }
    common::assert_symlink(dest.join(format!("job-{i}/link")), "file-0.txt");
    assert_file(
        dest.join(format!("big-{i}.bin")),
        &vec![i as u8; 300 * 1024],
        0o644,
    );
    let top: Vec<_> = std::fs::read_dir(dest).unwrap().collect();
    assert_eq!(top.len(), 2);
}

const CONCURRENT: usize = 16;

async fn one_of_many(sandbox: Sandbox, i: usize) -> Scene {
    let scene = Scene::new();
    let archive = job_archive(i);
    // Half the jobs are watched entry by entry, half only finished.
    let summary = if i.is_multiple_of(2) {
        let mut job = sandbox
            .start(&archive[..], &scene.dest, &Options::default())
            .await
            .unwrap();
        let mut n = 0;
        while let Some(r) = job.next().await {
            assert_eq!(r.unwrap().outcome, Outcome::Written);
            n += 1;
        }
        assert_eq!(n, 23);
        job.finish().await.unwrap()
    } else {
        sandbox
            .extract(&archive[..], &scene.dest, &Options::default())
            .await
            .unwrap()
    };
    assert!(summary.is_complete());
    assert_eq!(summary.entries, 23);
    scene
}

/// Waits for the [`one_of_many`] tasks and checks each one's tree; all
/// [`CONCURRENT`] of them must finish.
async fn check_all(mut tasks: tokio::task::JoinSet<(usize, Scene)>) {
    let mut done = 0;
    while let Some(res) = tasks.join_next().await {
        let (i, scene) = res.expect("task panicked");
        check_job_tree(&scene.dest, i);
        scene.check();
        done += 1;
    }
    assert_eq!(done, CONCURRENT);
}

/// 16 jobs at once on a multi-threaded runtime, each in its own task.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_jobs_multi_thread() {
    let sandbox = common::sandbox().await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..CONCURRENT {
        let sandbox = sandbox.clone();
        tasks.spawn(async move { (i, one_of_many(sandbox, i).await) });
    }
    check_all(tasks).await;
}

/// 16 jobs at once on a current-thread runtime: they make progress together on
/// one thread (no job may block the runtime).
#[tokio::test(flavor = "current_thread")]
async fn concurrent_jobs_current_thread() {
    let sandbox = common::sandbox().await;
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let mut tasks = tokio::task::JoinSet::new();
            for i in 0..CONCURRENT {
                let sandbox = sandbox.clone();
                tasks.spawn_local(async move { (i, one_of_many(sandbox, i).await) });
            }
            check_all(tasks).await;
        })
        .await;
}

/// Jobs on one thread interleave: while one job waits for its (slow) archive,
/// another one runs to its end.
#[tokio::test(flavor = "current_thread")]
async fn a_waiting_job_does_not_block_another() {
    let sandbox = common::sandbox().await;
    let slow = Scene::new();
    let (job, writer, pid) = endless_job(&sandbox, &slow.dest).await;
    let fast = Scene::new();
    let archive = job_archive(3);
    let summary = tokio::time::timeout(
        Duration::from_secs(30),
        sandbox.extract(&archive[..], &fast.dest, &Options::default()),
    )
    .await
    .expect("the second job is not held up by the first")
    .unwrap();
    assert!(summary.is_complete());
    check_job_tree(&fast.dest, 3);
    drop(job);
    drop(writer);
    assert_gone(pid, "slow job").await;
}

/// A reader that yields `data` in small pieces, then fails.
struct FailingReader {
    data: Vec<u8>,
    pos: usize,
}

impl AsyncRead for FailingReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.pos >= self.data.len() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "upload interrupted (test)",
            )));
        }
        let n = buf.remaining().min(4096).min(self.data.len() - self.pos);
        let pos = self.pos;
        buf.put_slice(&self.data[pos..pos + n]);
        self.pos += n;
        Poll::Ready(Ok(()))
    }
}

/// The caller's reader fails half way: `Error::Read` with the reader's error,
/// and the worker is gone.
async fn reader_error_half_way(sandbox: Sandbox) {
    let scene = Scene::new();
    let archive = job_archive(1);
    let reader = FailingReader {
        data: archive[..archive.len() / 2].to_vec(),
        pos: 0,
    };
    let mut job = sandbox
        .start(reader, &scene.dest, &Options::default())
        .await
        .unwrap();
    let pid = job.worker_pid();
    let mut errors = 0;
    while let Some(r) = job.next().await {
        match r {
            Ok(report) => {
                assert_eq!(errors, 0, "a report after the error");
                assert_eq!(report.outcome, Outcome::Written);
            }
            Err(e) => {
                assert!(matches!(e, Error::Read(_)), "{e:?}");
                errors += 1;
            }
        }
    }
    assert_eq!(errors, 1, "the stream yields the error once, then ends");
    match job.finish().await {
        Err(Error::Read(e)) => {
            assert_eq!(e.kind(), io::ErrorKind::ConnectionReset);
            assert!(e.to_string().contains("upload interrupted"), "{e}");
        }
        other => panic!("expected Error::Read, got {other:?}"),
    }
    assert_gone(pid, "failed reader").await;
    scene.check();
}

/// A worker killed with SIGKILL in the middle of a job: `Error::WorkerDied`
/// says so, and the sandbox goes on serving jobs.
async fn worker_killed_mid_job(sandbox: Sandbox) {
    let scene = Scene::new();
    let (job, writer, pid) = endless_job(&sandbox, &scene.dest).await;
    let worker = rustix::process::Pid::from_raw(pid as i32).expect("a worker pid");
    rustix::process::kill_process(worker, rustix::process::Signal::KILL).expect("kill");
    let result = tokio::time::timeout(Duration::from_secs(10), job.finish())
        .await
        .expect("a killed worker ends the job");
    match result {
        Err(Error::WorkerDied { pid: p, how }) => {
            assert_eq!(p, pid);
            assert!(how.contains("SIGKILL"), "{how}");
        }
        other => panic!("expected Error::WorkerDied, got {other:?}"),
    }
    drop(writer);
    assert_gone(pid, "killed worker").await;
    scene.check();

    let scene = Scene::new();
    let archive = job_archive(2);
    let summary = sandbox
        .extract(&archive[..], &scene.dest, &Options::default())
        .await
        .expect("the next job on the same sandbox");
    assert!(summary.is_complete());
    check_job_tree(&scene.dest, 2);
    scene.check();
}

/// A destination that is missing, a file, or below a file fails with
/// `Error::Destination` before a byte of the archive is read.
#[tokio::test]
async fn bad_destination_fails_before_reading() {
    let sandbox = common::sandbox().await;
    let scene = Scene::new();
    let file = scene.parent().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let dangling = scene.parent().join("dangling");
    std::os::unix::fs::symlink("does-not-exist", &dangling).unwrap();
    let cases = [
        (scene.parent().join("missing"), "does not exist"),
        (file.clone(), "is not a directory"),
        (file.join("below"), "is not a directory"),
        (dangling.clone(), "does not exist"),
    ];
    for (dest, problem_words) in &cases {
        let polls = Arc::new(AtomicUsize::new(0));
        let res = sandbox
            .start(WatchedReader(polls.clone()), dest, &Options::default())
            .await;
        match res {
            Err(Error::Destination { path, problem }) => {
                assert_eq!(&path, dest);
                assert!(problem.contains(problem_words), "{dest:?}: {problem}");
            }
            Err(e) => panic!("{dest:?}: expected Error::Destination, got {e:?}"),
            Ok(_) => panic!("{dest:?}: the job started"),
        }
        let res = sandbox
            .extract(WatchedReader(polls.clone()), dest, &Options::default())
            .await;
        assert!(matches!(res, Err(Error::Destination { .. })), "{res:?}");
        assert_eq!(
            polls.load(Ordering::SeqCst),
            0,
            "{dest:?}: the reader was read"
        );
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"not a directory");
    assert!(!scene.parent().join("missing").exists());
    std::fs::remove_file(&file).unwrap();
    std::fs::remove_file(&dangling).unwrap();
    scene.check();
}

/// A destination given through a symlink is the directory it points to.
#[tokio::test]
async fn destination_through_a_symlink() {
    let sandbox = common::sandbox().await;
    let mut scene = Scene::unsnapshotted();
    let link = scene.parent().join("dest-link");
    std::os::unix::fs::symlink("dest", &link).unwrap();
    scene.snapshot_now();
    let archive = Tar::new().file("through.txt", b"via link").finish();
    let summary = sandbox
        .extract(&archive[..], &link, &Options::default())
        .await
        .unwrap();
    assert!(summary.is_complete());
    assert_file(scene.dest.join("through.txt"), b"via link", 0o644);
    common::assert_symlink(&link, "dest");
    scene.check();
}

/// Reports arrive while the archive is still being read: each entry is
/// reported before the next one is even sent.
async fn reports_stream_before_the_reader_ends(sandbox: Sandbox) {
    let scene = Scene::new();
    let (mut writer, reader) = tokio::io::duplex(64 * 1024);
    let mut job = sandbox
        .start(reader, &scene.dest, &Options::default())
        .await
        .unwrap();
    for i in 0..5 {
        let entry = Tar::new()
            .file(format!("part-{i}.txt"), format!("part {i}").as_bytes())
            .bytes();
        writer.write_all(&entry).await.unwrap();
        let report = tokio::time::timeout(Duration::from_secs(10), job.next())
            .await
            .unwrap_or_else(|_| panic!("no report for part {i} while the archive is open"))
            .expect("a report")
            .expect("no error");
        assert_eq!(report.path, Path::new(&format!("part-{i}.txt")));
        assert_eq!(report.outcome, Outcome::Written);
        // Written by the time it is reported.
        assert_file(
            scene.dest.join(format!("part-{i}.txt")),
            format!("part {i}").as_bytes(),
            0o644,
        );
    }
    // Nothing more until the archive ends.
    let pending = tokio::time::timeout(Duration::from_millis(200), job.next()).await;
    assert!(
        pending.is_err(),
        "a report for an entry not sent: {pending:?}"
    );
    writer.write_all(&[0u8; 1024]).await.unwrap();
    drop(writer);
    assert!(job.next().await.is_none());
    let summary = job.finish().await.unwrap();
    assert_eq!((summary.entries, summary.written), (5, 5));
    scene.check();
}

/// Many jobs leak neither descriptors nor processes, and dropping the sandbox
/// ends the zygote and its warm workers. Runs in a process of its own, where
/// it can count its children.
#[test]
fn no_leaks_and_clean_shutdown() {
    common::in_own_process("no_leaks_inner");
}

#[tokio::test]
#[ignore = "run through no_leaks_and_clean_shutdown"]
async fn no_leaks_inner() {
    if !common::inner_should_run() {
        return;
    }
    assert!(children().is_empty(), "children before: {:?}", children());
    let sandbox = common::sandbox().await;
    // The zygote and the two warm workers of the default, no more.
    let deadline = Instant::now() + Duration::from_secs(5);
    while children().len() < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(children().len(), 3, "the zygote and 2 warm workers");
    let archive = Tar::new().file("f", b"x").finish();
    let run_one = || async {
        let scene = Scene::new();
        let s = sandbox
            .extract(&archive[..], &scene.dest, &Options::default())
            .await
            .unwrap();
        assert!(s.is_complete());
    };
    run_one().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let fds = open_fds();
    let procs = children().len();
    for _ in 0..40 {
        run_one().await;
    }
    // Killed and dropped jobs too.
    for _ in 0..5 {
        let scene = Scene::new();
        let (job, _writer, pid) = endless_job(&sandbox, &scene.dest).await;
        drop(job);
        assert_gone(pid, "dropped").await;
    }
    // Futures of `extract` dropped half way (a timeout, say).
    for _ in 0..5 {
        let scene = Scene::new();
        let (mut writer, reader) = tokio::io::duplex(256 * 1024);
        writer.write_all(&endless_head()).await.unwrap();
        let options = Options::default();
        let first = scene.dest.join("first.txt");
        // Poll the future until the worker wrote the first file, then drop it.
        tokio::select! {
            res = sandbox.extract(reader, &scene.dest, &options) => {
                panic!("the archive never ends: {res:?}")
            }
            _ = async {
                while std::fs::read(&first).ok().as_deref() != Some(&b"first"[..]) {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            } => {}
            _ = tokio::time::sleep(Duration::from_secs(20)) => panic!("first.txt never came"),
        }
        assert_file(&first, b"first", 0o644);
        scene.check();
    }
    let deadline = Instant::now() + GONE_WITHIN;
    while children().len() > procs || open_fds() > fds {
        assert!(
            Instant::now() < deadline,
            "after 55 jobs: {} children (was {procs}), {} descriptors (was {fds})",
            children().len(),
            open_fds()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(open_fds(), fds, "descriptors leaked by 55 jobs");
    assert_eq!(children().len(), procs, "processes left by 55 jobs");
    drop(sandbox);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !children().is_empty() {
        assert!(
            Instant::now() < deadline,
            "processes left after dropping the sandbox: {:?}",
            children()
                .iter()
                .map(|p| (p, process_state(*p)))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A destination the caller may not open (mode 000, or below a directory it may
/// not search): `Error::Destination` saying so, before a byte is read. Root may
/// open anything; there the job runs.
async fn unreadable_destination(sandbox: Sandbox) {
    use std::os::unix::fs::PermissionsExt;
    let scene = Scene::new();
    let closed = scene.parent().join("closed");
    std::fs::create_dir(&closed).unwrap();
    std::fs::create_dir(closed.join("inner")).unwrap();
    std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o000)).unwrap();
    for dest in [closed.clone(), closed.join("inner")] {
        let polls = Arc::new(AtomicUsize::new(0));
        let res = sandbox
            .start(WatchedReader(polls.clone()), &dest, &Options::default())
            .await;
        match (common::is_root(), res) {
            (false, Err(Error::Destination { path, problem })) => {
                assert_eq!(path, dest);
                assert!(problem.contains("permission denied"), "{dest:?}: {problem}");
                assert_eq!(
                    polls.load(Ordering::SeqCst),
                    0,
                    "{dest:?}: the reader was read"
                );
            }
            (true, Ok(job)) => {
                // The job ran: the reader's empty input is no archive at all.
                let result = job.finish().await;
                assert!(
                    matches!(result, Err(Error::NotTar(sandtar::NotTar::Empty))),
                    "{result:?}"
                );
            }
            (root, other) => {
                let other = other.map(|_| "a job");
                panic!("{dest:?} (root: {root}): unexpected {other:?}")
            }
        }
    }
    std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::remove_dir_all(&closed).unwrap();
    scene.check();
}

/// A program run through the dynamic loader (`ld-linux-x86-64.so.2 ./untar`)
/// cannot re-execute itself as the zygote (`/proc/self/exe` is the loader):
/// the error says so and what to do, instead of the loader's own complaint.
#[test]
fn started_through_the_dynamic_loader() {
    let untar = common::untar_binary();
    let ldd = Command::new("ldd").arg(&untar).output().unwrap();
    let listing = String::from_utf8_lossy(&ldd.stdout).into_owned();
    let Some(loader) = listing
        .split_whitespace()
        .find(|w| w.starts_with('/') && w.contains("/ld-"))
    else {
        println!("NOTE: no dynamic loader in `ldd` output (a static build?); skipped");
        return;
    };
    let archive = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        archive.path(),
        common::raw::Tar::new().file("a", b"a").finish(),
    )
    .unwrap();
    let out = Command::new(loader)
        .arg(&untar)
        .arg("--list")
        .arg(archive.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("started through the dynamic loader"),
        "{stderr}"
    );
    assert!(stderr.contains("run the program directly"), "{stderr}");
    assert!(!stderr.contains("missing program name"), "{stderr}");
}
