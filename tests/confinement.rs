//! The walls of a live worker, read from outside while a job waits for input:
//! no_new_privs, seccomp, capabilities, and a mount table with nothing of the host.
//! Runs as root and, through `setpriv`, as `nobody`.

mod common;

use std::time::{Duration, Instant};

use common::status_field;
use sandtar::{Options, Sandbox, SandboxMode};
use tokio::io::AsyncWriteExt;

/// Starts a job whose archive never ends and checks the worker from outside.
async fn check_live_worker(options: Options, expected_caps: u64) -> SandboxMode {
    let sandbox = Sandbox::new().await.expect("sandbox");
    let dest = tempfile::tempdir().expect("tempdir");
    let (mut writer, reader) = tokio::io::duplex(64 * 1024);
    // Half an archive: the worker is parsing and waits for the rest.
    let mut header = tar::Header::new_gnu();
    header.set_path("slow.txt").unwrap();
    header.set_size(1 << 20);
    header.set_mode(0o644);
    header.set_cksum();
    writer.write_all(header.as_bytes()).await.unwrap();
    let mut job = sandbox
        .start(reader, dest.path(), &options)
        .await
        .expect("start");
    let pid = job.worker_pid();
    // Drive the job a little so the worker gets its header, without finishing.
    let _ = tokio::time::timeout(Duration::from_millis(200), job.next()).await;

    let deadline = Instant::now() + Duration::from_secs(5);
    while status_field(pid, "Seccomp:").as_deref() != Some("2") {
        assert!(
            Instant::now() < deadline,
            "worker {pid} never reached seccomp mode 2"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // Every thread of the worker (capabilities, no_new_privs and seccomp are
    // per thread): the applier (the process's main thread), with the job's
    // capabilities, and the decoder (which writes files the applier hands it
    // when the input is plain), with none at all.
    let tasks: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(tasks.len(), 2, "threads: {tasks:?}");
    let mut names = Vec::new();
    for tid in tasks {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm")).unwrap();
        names.push(comm.trim().to_string());
        let status = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")).unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
                .unwrap()
        };
        let hex = |name: &str| u64::from_str_radix(&field(name), 16).unwrap();
        let expected_caps = match tid == pid.to_string() {
            true => expected_caps,
            false => 0,
        };
        assert_eq!(field("NoNewPrivs:"), "1", "thread {tid}");
        assert_eq!(field("Seccomp:"), "2", "thread {tid}");
        assert_eq!(
            hex("CapEff:"),
            expected_caps,
            "effective capabilities of thread {tid}"
        );
        assert_eq!(
            hex("CapPrm:"),
            expected_caps,
            "permitted capabilities of thread {tid}"
        );
        assert_eq!(
            hex("CapBnd:"),
            expected_caps,
            "bounding set of thread {tid}"
        );
        assert_eq!(hex("CapAmb:"), 0, "ambient set of thread {tid}");
        assert_eq!(hex("CapInh:"), 0, "inheritable set of thread {tid}");
    }
    names.sort();
    assert_eq!(names[1..], ["sandtar-decode"], "{names:?}");

    // The worker's mount table: its root (the destination) and nothing else.
    let mountinfo = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    let mounts: Vec<&str> = mountinfo.lines().collect();
    assert_eq!(
        mounts.len(),
        1,
        "worker sees more than its root:\n{mountinfo}"
    );
    let fields: Vec<&str> = mounts[0].split(' ').collect();
    assert_eq!(fields[4], "/", "mount point of the only mount");
    // Its own attributes: no device opens, nothing executes from it.
    let attrs: Vec<&str> = fields[5].split(',').collect();
    for attr in ["nodev", "nosuid", "noexec"] {
        assert!(
            attrs.contains(&attr),
            "the root's mount is not {attr}: {}",
            mounts[0]
        );
    }
    // Its root directory is the destination (same inode).
    let root = std::fs::metadata(format!("/proc/{pid}/root/.")).unwrap();
    let dest_meta = std::fs::metadata(dest.path()).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!((root.dev(), root.ino()), (dest_meta.dev(), dest_meta.ino()));
    // Only the job's socket and the standard descriptors (on /dev/null), plus what
    // the job itself opened (the root and the file being written).
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    assert!(fds <= 10, "worker holds {fds} descriptors");
    assert_eq!(status_field(pid, "Threads:").as_deref(), Some("2"));
    // First in line for the OOM killer; alone in its PID namespace (pid 1 there).
    let oom = std::fs::read_to_string(format!("/proc/{pid}/oom_score_adj")).unwrap();
    assert_eq!(oom.trim(), "1000");
    assert_eq!(
        status_field(pid, "NSpid:")
            .as_deref()
            .map(|n| n.split_whitespace().last()),
        Some(Some("1"))
    );
    // Memory, file size and CPU time bounded by the kernel.
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let limit = |name: &str| {
        limits
            .lines()
            .find(|l| l.starts_with(name))
            .map(|l| {
                l[name.len()..]
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .to_string()
            })
            .unwrap()
    };
    assert_eq!(limit("Max address space"), (1536u64 << 20).to_string());
    // The larger of max_entry_size (8 GiB) and max_sparse_size (1 TiB).
    assert_eq!(limit("Max file size"), (1u64 << 40).to_string());
    assert_eq!(limit("Max cpu time"), "600");

    let mode = sandbox.mode();
    drop(job);
    drop(writer);
    mode
}

const DAC_OVERRIDE: u64 = 1 << 1;
const CHOWN: u64 = 1 << 0;
const FOWNER: u64 = 1 << 3;
const FSETID: u64 = 1 << 4;
const MKNOD: u64 = 1 << 27;
const SETFCAP: u64 = 1 << 31;

#[tokio::test]
async fn default_preset_worker_is_walled_in() {
    check_live_worker(Options::default(), DAC_OVERRIDE | FOWNER).await;
}

#[tokio::test]
async fn full_fidelity_worker_keeps_only_what_it_needs() {
    let all = CHOWN | DAC_OVERRIDE | FOWNER | FSETID | MKNOD | SETFCAP;
    check_live_worker(Options::full_fidelity(), all).await;
}

#[tokio::test]
#[ignore = "run through unprivileged_worker_is_walled_in"]
async fn inner_unprivileged_worker() {
    let mode = check_live_worker(Options::default(), DAC_OVERRIDE | FOWNER).await;
    assert!(
        matches!(mode, SandboxMode::UserNamespace { .. }),
        "{mode:?}"
    );
}

/// Runs `inner_unprivileged_worker` as `nobody` (from a copy of this test
/// executable that `nobody` can read).
#[test]
fn unprivileged_worker_is_walled_in() {
    common::only_as_nobody("inner_unprivileged_worker");
}
