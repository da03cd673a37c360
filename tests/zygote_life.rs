//! The zygote's life, seen from outside: it starts with nothing of the
//! caller's environment, and it (with its workers) dies with the caller even
//! when it could not notice by itself.
//!
//! The scenarios that count this process's zygotes run in processes of their
//! own (`common::in_own_process`), where the only zygote is theirs.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use common::{process_state, zygotes};
use rustix::process::{kill_process, Pid, Signal};
use sandtar::{Options, Sandbox};

root_and_nobody!(zygote_environment);

// ---------------------------------------------------------------------------
// The environment
// ---------------------------------------------------------------------------

/// `NAME=value` entries of `/proc/<pid>/environ`: the environment the process
/// was started with.
fn environ_of(pid: u32) -> Vec<Vec<u8>> {
    let raw = std::fs::read(format!("/proc/{pid}/environ"))
        .unwrap_or_else(|e| panic!("reading /proc/{pid}/environ: {e}"));
    raw.split(|b| *b == 0)
        .filter(|entry| !entry.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

/// The zygote was started with `SANDTAR_ZYGOTE=<our pid>:<rungs>` and, if we have
/// one, our `LD_LIBRARY_PATH`: none of our other variables (`PATH`, `HOME`,
/// whatever secrets a service keeps there).
async fn zygote_environment(sandbox: Sandbox) {
    let found = zygotes();
    assert!(!found.is_empty(), "no zygote among our children");
    let pid = std::process::id();
    // The rungs the builder allows: both by default, the Landlock one alone
    // under `SANDTAR_TEST_RUNG=landlock`.
    let rungs = match sandbox.mode().rung() {
        sandtar::Rung::Landlock => "l",
        _ => "nl",
    };
    let mut allowed = vec![format!("SANDTAR_ZYGOTE={pid}:{rungs}").into_bytes()];
    if let Some(path) = std::env::var_os("LD_LIBRARY_PATH") {
        allowed.push([b"LD_LIBRARY_PATH=", path.as_bytes()].concat());
    }
    let ours: Vec<Vec<u8>> = std::env::vars_os()
        .map(|(k, v)| [k.as_bytes(), b"=", v.as_bytes()].concat())
        .filter(|entry| !allowed.contains(entry))
        .collect();
    assert!(!ours.is_empty(), "this test needs a variable of its own");
    // Every zygote of this process (other tests may have theirs).
    for pid in found {
        let theirs = environ_of(pid);
        let show = |v: &[Vec<u8>]| -> Vec<String> {
            v.iter()
                .map(|e| String::from_utf8_lossy(e).into_owned())
                .collect()
        };
        assert!(
            theirs.iter().all(|entry| allowed.contains(entry)),
            "zygote {pid} was started with {:?}; only {:?} may pass",
            show(&theirs),
            show(&allowed)
        );
        assert_eq!(
            theirs.len(),
            allowed.len(),
            "zygote {pid}: {:?}",
            show(&theirs)
        );
    }
    drop(sandbox);
}

// ---------------------------------------------------------------------------
// Dying with the caller
// ---------------------------------------------------------------------------

/// What the caller process prints once its job runs.
const PIDS: &str = "sandtar-pids ";

/// A caller dies (SIGKILL): its zygote and its workers must go too. They are
/// stopped (SIGSTOP) first, so that they cannot notice the end of their
/// sockets and exit by themselves: only the kernel's parent-death signal
/// (SIGKILL, which ends a stopped process too) can end them.
fn dies_with_the_caller(as_nobody: bool) {
    let (mut caller, _copy) = common::start_test_process("caller_inner", as_nobody);
    let (zygote, worker, dest) = read_pids(&mut caller);
    let mut left = Leftovers(vec![zygote, worker], dest);
    for pid in [zygote, worker] {
        signal(pid, Signal::STOP);
        wait_for(pid, "stopped", |s| s == Some('T') || s == Some('t'));
    }
    kill_process(Pid::from_raw(caller.id() as i32).unwrap(), Signal::KILL).unwrap();
    caller.wait().unwrap();
    // Dead: gone, or a zombie waiting for whoever adopted it.
    let dead = |pid| matches!(process_state(pid), None | Some('Z'));
    let deadline = Instant::now() + Duration::from_secs(1);
    while !(dead(zygote) && dead(worker)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        dead(zygote) && dead(worker),
        "a second after the caller was killed: zygote {zygote} in state {:?}, \
         worker {worker} in state {:?} (None: gone)",
        process_state(zygote),
        process_state(worker)
    );
    left.0.clear();
}

/// Reads the caller's standard output until it names its zygote, its worker
/// and its job's destination.
fn read_pids(caller: &mut Child) -> (u32, u32, PathBuf) {
    let out = caller.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            // libtest may have written "test caller_inner ... " before it.
            if let Some(at) = line.find(PIDS) {
                let _ = tx.send(line[at + PIDS.len()..].to_string());
            }
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the caller process never ran its job");
    let field = |key: &str| -> &str {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in {line:?}"))
    };
    let pid = |key: &str| -> u32 {
        field(key)
            .parse()
            .unwrap_or_else(|_| panic!("bad {key} in {line:?}"))
    };
    (
        pid("zygote="),
        pid("worker="),
        PathBuf::from(field("dest=")),
    )
}

fn signal(pid: u32, sig: Signal) {
    kill_process(Pid::from_raw(pid as i32).unwrap(), sig)
        .unwrap_or_else(|e| panic!("signal {sig:?} to {pid}: {e}"));
}

/// Waits up to a second for process `pid`'s state to satisfy `ok`.
fn wait_for(pid: u32, what: &str, ok: impl Fn(Option<char>) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let state = process_state(pid);
        if ok(state) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "process {pid}: expected {what} within a second, its state is {state:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Processes to kill if the test fails half way (stopped orphans would
/// stay), and the killed caller's destination, to remove.
struct Leftovers(Vec<u32>, PathBuf);

impl Drop for Leftovers {
    fn drop(&mut self) {
        for &pid in &self.0 {
            let _ = kill_process(Pid::from_raw(pid as i32).unwrap(), Signal::KILL);
        }
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

#[test]
fn zygote_and_workers_die_with_the_caller() {
    dies_with_the_caller(false);
}

#[test]
fn zygote_and_workers_die_with_the_caller_as_nobody() {
    if !common::is_root() {
        println!("NOTE: not root: the other case runs as this user");
        return;
    }
    dies_with_the_caller(true);
}

/// The caller: a sandbox, one job whose archive never ends (its worker waits
/// in the middle of it), the pids printed; then it waits to be killed.
#[tokio::test]
#[ignore = "run by zygote_and_workers_die_with_the_caller"]
async fn caller_inner() {
    if !common::inner_should_run() {
        return;
    }
    let sandbox = Sandbox::new().await.expect("Sandbox::new");
    let found = zygotes();
    assert_eq!(found.len(), 1, "one zygote: {found:?}");
    // Removed by the outer test: this process does not live to do it.
    let dest = tempfile::Builder::new()
        .prefix("sandtar-caller-")
        .tempdir_in("/tmp")
        .expect("destination")
        .keep();
    let (_writer, reader) = tokio::io::duplex(1024);
    let job = sandbox
        .start(reader, &dest, &Options::default())
        .await
        .expect("start");
    println!(
        "{PIDS}zygote={} worker={} dest={}",
        found[0],
        job.worker_pid(),
        dest.display()
    );
    tokio::time::sleep(Duration::from_secs(60)).await;
    panic!("the caller was not killed");
}

// ---------------------------------------------------------------------------
// Replacement: every N jobs, and after a worker ends abnormally
// ---------------------------------------------------------------------------

/// This process's only zygote, once there is exactly one (a replaced one is
/// killed and reaped in the background); fails after two seconds.
async fn settled_zygote() -> u32 {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let found = zygotes();
        if let [one] = found[..] {
            return one;
        }
        assert!(Instant::now() < deadline, "zygotes: {found:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// One job that writes one file, checked.
async fn one_job(sandbox: &Sandbox) {
    let dest = tempfile::tempdir().unwrap();
    let archive = common::tar_files([("f", b"abc")]);
    let summary = sandbox
        .extract(&archive[..], dest.path(), &Options::default())
        .await
        .expect("a job");
    assert_eq!(summary.written, 1);
    assert_eq!(std::fs::read(dest.path().join("f")).unwrap(), b"abc");
}

/// With `jobs_per_zygote(3)`, three jobs run in workers of one zygote, and
/// the fourth in a worker of a new one; the old zygote is gone. Twice.
#[test]
fn the_zygote_is_replaced_every_n_jobs() {
    common::in_own_process("every_n_jobs_inner");
}

#[test]
fn the_zygote_is_replaced_every_n_jobs_as_nobody() {
    common::only_as_nobody("every_n_jobs_inner");
}

#[tokio::test]
#[ignore = "run through the_zygote_is_replaced_every_n_jobs"]
async fn every_n_jobs_inner() {
    if !common::inner_should_run() {
        return;
    }
    let sandbox = Sandbox::builder()
        .jobs_per_zygote(3)
        .build()
        .await
        .expect("build");
    let mut seen: Vec<u32> = Vec::new();
    for round in 0..3 {
        // The first job of a round finds the zygote due (after the first
        // round) and starts a new one; the next two use it too.
        let mut zygote = None;
        for job in 0..3 {
            one_job(&sandbox).await;
            let now = settled_zygote().await;
            match zygote {
                None => assert!(
                    !seen.contains(&now),
                    "round {round}: zygote {now} again ({seen:?})"
                ),
                Some(same) => assert_eq!(now, same, "round {round}, job {job}"),
            }
            zygote = Some(now);
        }
        for old in &seen {
            assert!(
                matches!(process_state(*old), None | Some('Z')),
                "round {round}: the replaced zygote {old} still runs"
            );
        }
        seen.extend(zygote);
    }
}

/// A worker that dies in the middle of its job, without a result, retires
/// its zygote: the next job runs in a worker of a new one. (A crash would do
/// the same, an exploit probing the address-space layout say; but a worker
/// is the init of its PID namespace, and the kernel delivers no signal sent
/// from outside to it but SIGKILL and SIGSTOP, so SIGKILL stands in for one.)
/// A job that fails cleanly (a malformed archive) changes nothing.
#[test]
fn a_worker_dead_mid_job_retires_its_zygote() {
    common::in_own_process("dead_worker_inner");
}

#[test]
fn a_worker_dead_mid_job_retires_its_zygote_as_nobody() {
    common::only_as_nobody("dead_worker_inner");
}

#[tokio::test]
#[ignore = "run through a_worker_dead_mid_job_retires_its_zygote"]
async fn dead_worker_inner() {
    if !common::inner_should_run() {
        return;
    }
    let sandbox = Sandbox::new().await.expect("Sandbox::new");
    let first = settled_zygote().await;
    let dest = tempfile::tempdir().unwrap();
    let garbage = vec![0x5a_u8; 4096];
    let failed = sandbox
        .extract(&garbage[..], dest.path(), &Options::default())
        .await;
    assert!(
        matches!(
            failed,
            Err(sandtar::Error::NotTar(sandtar::NotTar::NoTarHeader))
        ),
        "{failed:?}"
    );
    one_job(&sandbox).await;
    assert_eq!(
        settled_zygote().await,
        first,
        "a clean failure kept the zygote"
    );

    let (_writer, reader) = tokio::io::duplex(1024);
    let dest = tempfile::tempdir().unwrap();
    let job = sandbox
        .start(reader, dest.path(), &Options::default())
        .await
        .expect("start");
    signal(job.worker_pid(), Signal::KILL);
    match job.finish().await {
        Err(sandtar::Error::WorkerDied { how, .. }) => assert!(how.contains("SIGKILL"), "{how}"),
        other => panic!("expected WorkerDied, got {other:?}"),
    }
    one_job(&sandbox).await;
    let second = settled_zygote().await;
    assert_ne!(
        second, first,
        "the worker dead mid-job did not replace the zygote"
    );
    assert!(matches!(process_state(first), None | Some('Z')));
}
