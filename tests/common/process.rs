//! Processes: running one test of this binary again as another user or in a
//! process of its own, and looking at processes through `/proc`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::is_root;

// ---------------------------------------------------------------------------
// Running a test again as nobody
// ---------------------------------------------------------------------------

/// How long a re-executed test may take.
const CHILD_TIMEOUT: Duration = Duration::from_secs(180);

/// Runs the ignored test `inner` (its full name within this test binary, e.g.
/// `parent_component::nobody_inner`) as the user `nobody`, and asserts that it
/// passed. When this process is not root, it cannot switch users: `direct`
/// (the inner test's function) is called instead, as the current user.
pub fn as_nobody(inner: &str, direct: impl FnOnce()) {
    let group = if group_exists("nogroup") {
        "nogroup"
    } else {
        "nobody"
    };
    as_user("nobody", group, inner, direct)
}

/// Runs the ignored test `inner` as `nobody` (see [`as_nobody`]). When this
/// process is not root it only says so: the binary's other tests already run
/// as this (unprivileged) user.
pub fn only_as_nobody(inner: &str) {
    as_nobody(inner, || {
        eprintln!("not root: cannot switch to nobody; the other cases cover this user")
    });
}

/// Like [`as_nobody`], as `user`:`group`.
pub fn as_user(user: &str, group: &str, inner: &str, direct: impl FnOnce()) {
    if !is_root() {
        direct();
        return;
    }
    let (cmd, dir) = command_as(user, group);
    run_test_process(cmd, inner, dir.path(), &format!("as {user}:{group}"));
}

/// A command that runs a copy of this test executable as `user`:`group`,
/// and the directory that holds the copy (remove it when done).
fn command_as(user: &str, group: &str) -> (Command, tempfile::TempDir) {
    // CI clones into a path `nobody` may not traverse: run a copy of this
    // executable from a fresh, world-readable directory in /tmp.
    let dir = tempfile::Builder::new()
        .prefix("sandtar-nobody-")
        .tempdir_in("/tmp")
        .expect("temporary directory in /tmp");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let exe = std::env::current_exe().expect("current_exe");
    let copy = dir.path().join(exe.file_name().unwrap());
    // Copy with cp(1), not std::fs::copy: a file open for writing in this
    // multi-threaded process leaks into children that other test threads fork
    // at that moment, and exec'ing the copy then fails with ETXTBSY.
    let status = Command::new("cp")
        .arg(&exe)
        .arg(&copy)
        .status()
        .expect("running cp");
    assert!(status.success(), "copying the test executable: {status}");
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={user}"))
        .arg(format!("--regid={group}"))
        .arg("--clear-groups")
        .arg(&copy);
    (cmd, dir)
}

/// Starts the ignored test `inner` of this test binary in a process of its
/// own, as `nobody` if asked (and this process is root), and returns at once:
/// the child (its standard output piped, for what the test prints) and the
/// directory of the executable's copy, if one was made. For a test that must
/// act on that process while it runs (kill it, say).
pub fn start_test_process(inner: &str, as_nobody: bool) -> (Child, Option<tempfile::TempDir>) {
    let (mut cmd, dir) = if as_nobody && is_root() {
        let group = if group_exists("nogroup") {
            "nogroup"
        } else {
            "nobody"
        };
        let (cmd, dir) = command_as("nobody", group);
        (cmd, Some(dir))
    } else {
        (
            Command::new(std::env::current_exe().expect("current_exe")),
            None,
        )
    };
    cmd.env(INNER_MARKER, "1")
        .args(["--exact", inner, "--include-ignored", "--nocapture"])
        .arg("--test-threads=1")
        .env("TMPDIR", "/tmp")
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("starting {inner}: {e}"));
    (child, dir)
}

/// Runs the ignored test `inner` of this test binary in a process of its own
/// (as the current user), and asserts that it passed. For scenarios that need
/// a process to themselves (counting its children, for example).
pub fn in_own_process(inner: &str) {
    let dir = tempfile::Builder::new()
        .prefix("sandtar-proc-")
        .tempdir()
        .expect("temporary directory");
    let cmd = Command::new(std::env::current_exe().expect("current_exe"));
    run_test_process(cmd, inner, dir.path(), "in its own process");
}

fn run_test_process(mut cmd: Command, inner: &str, dir: &Path, how: &str) {
    let stdout_path = dir.join("stdout");
    let stderr_path = dir.join("stderr");
    let stdout = std::fs::File::create(&stdout_path).unwrap();
    let stderr = std::fs::File::create(&stderr_path).unwrap();
    cmd.env(INNER_MARKER, "1")
        .arg("--exact")
        .arg(inner)
        .arg("--include-ignored")
        .arg("--nocapture")
        .arg("--test-threads=1")
        .env("TMPDIR", "/tmp")
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("running {inner} {how}: {e}"));
    let deadline = Instant::now() + CHILD_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = std::fs::read_to_string(&stdout_path).unwrap_or_default();
    let err = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let show = format!("--- stdout ---\n{out}\n--- stderr ---\n{err}");
    match status {
        None => panic!("{inner} ({how}) timed out after {CHILD_TIMEOUT:?}\n{show}"),
        Some(s) if !s.success() => panic!("{inner} ({how}) failed: {s}\n{show}"),
        Some(_) => {}
    }
    // A wrong name runs zero tests and still exits 0.
    assert!(
        out.contains("test result: ok. 1 passed"),
        "{inner} ({how}) did not run exactly one test\n{show}"
    );
    println!("{inner} ({how}) passed\n{show}");
}

/// Set in the environment of the processes [`as_nobody`] and
/// [`in_own_process`] start.
const INNER_MARKER: &str = "SANDTAR_TEST_INNER";

/// Whether an ignored inner test should do its work: yes when started by
/// [`as_nobody`] / [`in_own_process`], or when this process is not root (then
/// the outer test calls it directly); no when a root user runs the whole suite
/// with `--include-ignored` (it would run privileged, which is not its point).
pub fn inner_should_run() -> bool {
    if std::env::var_os(INNER_MARKER).is_some() || !is_root() {
        true
    } else {
        println!("NOTE: inner test skipped: it runs through its outer test");
        false
    }
}

fn group_exists(name: &str) -> bool {
    std::fs::read_to_string("/etc/group")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(':').next() == Some(name))
}

// ---------------------------------------------------------------------------
// Looking at processes
// ---------------------------------------------------------------------------

/// The value of `field` (e.g. `"PPid:"`, with its colon) in
/// `/proc/<pid>/status`, trimmed; `None` if there is no such process (any more).
pub fn status_field(pid: u32, field: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field).map(|v| v.trim().to_string()))
}

/// The state letter of process `pid` (`R`, `S`, `Z`...), or `None` if it does
/// not exist (any more).
pub fn process_state(pid: u32) -> Option<char> {
    status_field(pid, "State:")?.chars().next()
}

/// The parent of process `pid`.
pub fn parent_of(pid: u32) -> Option<u32> {
    status_field(pid, "PPid:")?.parse().ok()
}

/// Children of this process (including zombies).
pub fn children() -> Vec<u32> {
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| parent_of(*pid) == Some(me))
        .collect()
}

/// How many descriptors this process has open.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// The live (not zombie) zygotes of this process: children named
/// `sandtar-zygote` in our mount namespace (workers are clones of the zygote,
/// with the same command line and parent, but have mount namespaces of their
/// own).
pub fn zygotes() -> Vec<u32> {
    let own_mnt = std::fs::read_link("/proc/self/ns/mnt").ok();
    children()
        .into_iter()
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let mnt = std::fs::read_link(format!("/proc/{pid}/ns/mnt")).ok();
            cmdline.starts_with(b"sandtar-zygote\0")
                && process_state(*pid).is_some_and(|s| s != 'Z')
                && mnt.is_some()
                && mnt == own_mnt
        })
        .collect()
}

/// How long a killed or dropped worker may take to disappear.
pub const GONE_WITHIN: Duration = Duration::from_secs(2);

/// Waits until process `pid` is gone: not running and not a zombie either (a
/// zombie still has its `/proc` entry until it is reaped); fails after
/// [`GONE_WITHIN`].
pub async fn assert_gone(pid: u32, what: &str) {
    let deadline = Instant::now() + GONE_WITHIN;
    loop {
        match process_state(pid) {
            None => break,
            Some(state) => assert!(
                Instant::now() < deadline,
                "{what}: worker {pid} still exists after {GONE_WITHIN:?} (state {state}{})",
                if state == 'Z' { ", a zombie" } else { "" }
            ),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
    assert!(!Path::new(&format!("/proc/{pid}/status")).exists());
}

// ---------------------------------------------------------------------------
// The untar example
// ---------------------------------------------------------------------------

/// The `untar` example, built next to this test binary (`cargo test` builds
/// the example's own tests, not the program: build it here if it is missing).
pub fn untar_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let untar = profile_dir.join("examples/untar");
    if !untar.is_file() {
        let target_dir = profile_dir.parent().unwrap();
        let release = profile_dir.file_name().is_some_and(|n| n == "release");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut build = Command::new(cargo);
        build
            .args(["build", "--example", "untar", "--manifest-path"])
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
            .arg("--target-dir")
            .arg(target_dir);
        if release {
            build.arg("--release");
        }
        let status = build.status().unwrap();
        assert!(status.success(), "building the untar example failed");
    }
    assert!(untar.is_file(), "{} missing", untar.display());
    untar
}
