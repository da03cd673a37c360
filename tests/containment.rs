//! The compromised worker: hostile code running inside a real worker, after its
//! seccomp filter, tries every wall of DESIGN.md's "The compromised worker", and
//! the kernel must refuse. Built only with the test-only payload compiled in:
//!
//! ```text
//! RUSTFLAGS="--cfg sandtar_hostile" cargo test --target-dir target/hostile --test containment
//! ```
//!
//! (without the cfg this file is empty). The payload (`src/sys/hostile.rs`) reads
//! a plan, `.sandtar-hostile`, from the destination and writes one line per
//! attempted operation to `.sandtar-hostile-results`: `NAME ok [detail]` or
//! `NAME errno=N (ENAME)`. Each scenario writes a plan into a fresh destination,
//! extracts a one-file archive through a real [`Sandbox`], then checks the
//! refusals in the results AND the state outside (victim processes, modes on
//! disk, `/dev/null`, the tree after `Done`). Every failed check of a scenario
//! is listed together, with the payload's results, so one run shows which walls
//! stand. Each scenario runs as root and as `nobody`.
#![cfg(sandtar_hostile)]

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use common::raw::Tar;
use common::{is_root, Run, Scene};
use sandtar::{DigestKind, Error, Options, PackOptions, Sandbox};

root_and_nobody!(
    signals,
    set_id_bits,
    nothing_after_done,
    job_socket_closes_only_at_exit,
    done_without_digest,
    environment,
    shared_memory,
    file_size,
    stdio,
    out_of_band,
    fcntl_misc,
    list_only_cannot_write,
    blob_digest_is_the_callers,
    directory_moved_out,
    canary_by_absolute_path,
    a_pack_worker_only_reads_its_source,
    a_pack_worker_only_writes_its_output,
    device_nodes,
);

// ---------------------------------------------------------------------------
// The secret in the environment
// ---------------------------------------------------------------------------

/// Holds a secret unique to this run, in this process's environment (and so in
/// the zygote's, which inherits it) before any sandbox exists.
const SECRET_VAR: &str = "SANDTAR_TEST_SECRET";

/// Sets [`SECRET_VAR`] before `main`, on the only thread: tests run in parallel
/// threads and each makes its sandbox first thing, so no test could set it in
/// time. A copy of this binary run as `nobody` (and the zygote) inherits it.
#[used]
#[link_section = ".init_array"]
static SET_SECRET: extern "C" fn() = set_secret;

extern "C" fn set_secret() {
    if std::env::var_os(SECRET_VAR).is_some() {
        return;
    }
    let mut bytes = [0u8; 8];
    let _ = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    let value = format!(
        "s3cr3t-{:016x}-{}",
        u64::from_le_bytes(bytes),
        std::process::id()
    );
    std::env::set_var(SECRET_VAR, value);
}

fn secret() -> String {
    std::env::var(SECRET_VAR).expect("the secret is set before main")
}

// ---------------------------------------------------------------------------
// Running the payload
// ---------------------------------------------------------------------------

/// What the payload wrote, by operation name.
struct Results {
    text: String,
    lines: BTreeMap<String, String>,
}

impl Results {
    /// The results file, or (where the destination is read-only) the results the
    /// payload sent as its `Failed` message.
    fn read(dest: &Path, run: &Run) -> Results {
        let text = match std::fs::read_to_string(dest.join(".sandtar-hostile-results")) {
            Ok(text) => text,
            Err(_) => match &run.result {
                Err(Error::Worker(message)) => message
                    .strip_prefix("sandtar-hostile-results: ")
                    .map(|rest| rest.replace("; ", "\n") + "\n")
                    .unwrap_or_default(),
                _ => String::new(),
            },
        };
        let lines = text
            .lines()
            .map(|l| match l.split_once(' ') {
                Some((name, rest)) => (name.to_string(), rest.to_string()),
                None => (l.to_string(), String::new()),
            })
            .collect();
        Results { text, lines }
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.lines.get(name).map(String::as_str)
    }

    /// `ENAME` of a refused operation, `None` if it succeeded or is missing.
    fn errno(&self, name: &str) -> Option<&str> {
        let rest = self.get(name)?.strip_prefix("errno=")?;
        let (_, ename) = rest.split_once('(')?;
        ename.strip_suffix(')')
    }
}

/// One scenario's findings: every failed check, reported together.
struct Verdict {
    what: String,
    failures: Vec<String>,
}

impl Verdict {
    fn new(what: &str) -> Verdict {
        Verdict {
            what: what.to_string(),
            failures: Vec::new(),
        }
    }

    fn check(&mut self, ok: bool, failure: impl Into<String>) {
        if !ok {
            self.failures.push(failure.into());
        }
    }

    /// The payload's `name` must have failed with one of `errnos`.
    fn refused(&mut self, r: &Results, name: &str, errnos: &[&str]) {
        match (r.get(name), r.errno(name)) {
            (_, Some(e)) if errnos.contains(&e) => {}
            (Some(line), _) => self.failures.push(format!(
                "{name}: expected {}, the kernel said: {line}",
                errnos.join(" or ")
            )),
            (None, _) => self.failures.push(format!(
                "{name}: not in the results (the payload did not get there)"
            )),
        }
    }

    fn finish(self, attack: &Attack) {
        if self.failures.is_empty() {
            return;
        }
        panic!(
            "{}: {} wall(s) missing:\n  - {}\nthe payload's results:\n{}job result: {:?}",
            self.what,
            self.failures.len(),
            self.failures.join("\n  - "),
            attack.results.text,
            attack.run.result,
        );
    }
}

struct Attack {
    scene: Scene,
    run: Run,
    results: Results,
}

fn archive() -> Vec<u8> {
    Tar::new()
        .file("hello.txt", b"hello from the archive\n")
        .finish()
}

/// Writes `plan` into a fresh destination and extracts a one-file archive there.
async fn attack(sandbox: &Sandbox, plan: &str, options: &Options) -> Attack {
    attack_in(Scene::new(), sandbox, plan, options).await
}

/// [`attack`] in a scene prepared (and snapshotted) by the caller.
async fn attack_in(scene: Scene, sandbox: &Sandbox, plan: &str, options: &Options) -> Attack {
    std::fs::write(scene.dest.join(".sandtar-hostile"), plan).unwrap();
    let run = common::run(sandbox, &archive(), &scene.dest, options).await;
    let results = Results::read(&scene.dest, &run);
    println!(
        "plan ({}):\n{plan}\nresults:\n{}job result: {:?}",
        if is_root() { "root" } else { "nobody" },
        results.text,
        run.result
    );
    Attack {
        scene,
        run,
        results,
    }
}

/// Every node under `root` with its metadata (no contents read: a file may be
/// 64 GiB, sparse).
fn stat_walk(root: &Path) -> Vec<(PathBuf, std::fs::Metadata)> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(path) = todo.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                todo.push(entry.unwrap().path());
            }
        }
        out.push((path, meta));
    }
    out
}

// ---------------------------------------------------------------------------
// Victims
// ---------------------------------------------------------------------------

/// Outside processes that the payload tries to signal.
struct Victims(Vec<(String, Child)>);

impl Victims {
    /// `sleep 30` as the current user and, as root, one as `nobody`.
    fn spawn() -> Victims {
        let mut v = vec![(
            "sleep as this user".to_string(),
            Command::new("sleep").arg("30").spawn().unwrap(),
        )];
        if is_root() {
            let group = if std::fs::read_to_string("/etc/group")
                .unwrap_or_default()
                .lines()
                .any(|l| l.starts_with("nogroup:"))
            {
                "nogroup"
            } else {
                "nobody"
            };
            let child = Command::new("setpriv")
                .args(["--reuid=nobody", &format!("--regid={group}")])
                .args(["--clear-groups", "sleep", "30"])
                .spawn()
                .unwrap();
            v.push(("sleep as nobody".to_string(), child));
        }
        v.iter()
            .for_each(|(what, c)| println!("victim: {what}, pid {}", c.id()));
        Victims(v)
    }

    fn pids(&self) -> Vec<u32> {
        self.0.iter().map(|(_, c)| c.id()).collect()
    }

    /// The victims that died (with how).
    fn dead(&mut self) -> Vec<String> {
        self.0
            .iter_mut()
            .filter_map(|(what, c)| {
                c.try_wait()
                    .unwrap()
                    .map(|status| format!("{what} (pid {}) died: {status}", c.id()))
            })
            .collect()
    }
}

impl Drop for Victims {
    fn drop(&mut self) {
        for (_, c) in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

// ---------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------

/// `kill`, `pidfd_open`, and `F_SETOWN`/`F_SETOWN_EX`/`F_SETSIG`/`O_ASYNC` on a
/// FIFO (a signal without `kill`), aimed at outside processes of the same user
/// (and of `nobody`), and at this test process itself.
async fn signals(sandbox: Sandbox) {
    let mut victims = Victims::spawn();
    let mut pids = victims.pids();
    pids.push(std::process::id());
    let plan: String = pids.iter().map(|p| format!("signal {p}\n")).collect();
    let a = attack(&sandbox, &plan, &Options::default()).await;
    // Let any signal in flight arrive.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut v = Verdict::new("signals");
    for dead in victims.dead() {
        v.check(false, dead);
    }
    for p in &pids {
        // EPERM from seccomp, or ESRCH: the worker's PID namespace names nobody outside.
        v.refused(&a.results, &format!("kill@{p}"), &["EPERM", "ESRCH"]);
        v.refused(&a.results, &format!("pidfd_open@{p}"), &["EPERM", "ESRCH"]);
        for op in ["F_SETSIG", "F_SETOWN", "F_SETOWN_EX", "F_SETFL-O_ASYNC"] {
            v.refused(&a.results, &format!("{op}@{p}"), &["EPERM"]);
        }
    }
    a.scene.check();
    v.finish(&a);
}

/// Set-user-id, set-group-id and sticky bits through every call that takes a
/// mode, under the default (safe) options: all refused, none on disk.
async fn set_id_bits(sandbox: Sandbox) {
    let a = attack(&sandbox, "setid\n", &Options::default()).await;
    let mut v = Verdict::new("set-id bits");
    for name in [
        "setid-openat",
        "setid-fchmod",
        "setid-fchmodat",
        "setid-fchmodat2",
        "setid-mkdirat-02777",
        "setid-mkdirat-01777",
        "setid-mknodat-fifo",
        "setid-openat2",
    ] {
        v.refused(&a.results, name, &["EPERM"]);
    }
    for (path, meta) in stat_walk(&a.scene.dest) {
        v.check(
            meta.mode() & 0o7000 == 0,
            format!(
                "{} has mode {:o}, owner {}:{}",
                path.display(),
                meta.mode() & 0o7777,
                meta.uid(),
                meta.gid()
            ),
        );
    }
    a.scene.check();
    v.finish(&a);
}

/// A worker that says `Done` and goes on writing: the caller must kill it as
/// soon as its result is in; the tree must not change after `finish()`.
async fn nothing_after_done(sandbox: Sandbox) {
    let a = attack(&sandbox, "after-done\n", &Options::default()).await;
    let before = common::snapshot(&a.scene.dest);
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let after = common::snapshot(&a.scene.dest);
    let results = Results::read(&a.scene.dest, &a.run);
    let mut v = Verdict::new("after Done");
    // The payload notes "done-frame ok" after its Done is out, and the caller
    // may kill it before it does; a job that succeeded had its Done.
    assert!(
        a.run.result.is_ok() || a.results.get("done-frame") == Some("ok"),
        "harness: the payload did not send its Done:\n{}job result: {:?}",
        a.results.text,
        a.run.result
    );
    let added: Vec<_> = after.keys().filter(|p| !before.contains_key(*p)).collect();
    let changed: Vec<_> = before
        .iter()
        .filter(|(p, n)| after.get(*p).is_some_and(|m| m != *n))
        .map(|(p, _)| p)
        .collect();
    v.check(
        added.is_empty() && changed.is_empty(),
        format!(
            "the tree changed after finish() returned: {} added ({:?}...), {} changed ({:?}); \
             the payload's last word: {:?}",
            added.len(),
            added.iter().take(3).collect::<Vec<_>>(),
            changed.len(),
            changed,
            results.get("after-done-writes"),
        ),
    );
    a.scene.check();
    v.finish(&a);
}

/// The caller ends a job at the end of file of the job socket, without waiting
/// for the worker's whole exit: the kernel must refuse every way to close that
/// socket early (a duplicate may be closed), and the tree must not change after
/// `finish()` even so.
async fn job_socket_closes_only_at_exit(sandbox: Sandbox) {
    let a = attack(&sandbox, "close-socket\nafter-done\n", &Options::default()).await;
    let before = common::snapshot(&a.scene.dest);
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let after = common::snapshot(&a.scene.dest);
    let mut v = Verdict::new("job socket");
    for name in [
        "shutdown-socket",
        "dup3-over-socket",
        "close-range-socket",
        "close-socket",
    ] {
        v.refused(&a.results, name, &["EPERM"]);
    }
    v.check(
        a.results
            .get("close-duplicate")
            .is_some_and(|r| r.starts_with("ok")),
        format!(
            "closing a duplicate of the socket: {:?}",
            a.results.get("close-duplicate")
        ),
    );
    v.check(before == after, "the tree changed after finish() returned");
    a.scene.check();
    v.finish(&a);
}

/// `sha256:<hex>` of `bytes`.
fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(bytes);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// A `Done` without the digest the caller expects (the right one, for this
/// archive): the job must fail, not succeed unchecked.
async fn done_without_digest(sandbox: Sandbox) {
    let mut options = Options::default();
    options.expected_diff_id = Some(sha256(&archive()));
    let a = attack(&sandbox, "done-no-digest\n", &options).await;
    // Only a `Done` without a diff_id ends a job with this error (the caller
    // may kill the payload before it notes "done-frame ok").
    let refused = matches!(&a.run.result, Err(Error::Protocol(m)) if m.contains("no diff_id"));
    assert!(
        refused || a.run.result.is_ok() || a.results.get("done-frame") == Some("ok"),
        "harness: the payload did not send its Done:\n{}job result: {:?}",
        a.results.text,
        a.run.result
    );
    let mut v = Verdict::new("Done without a digest");
    v.check(
        refused,
        format!(
            "expected_diff_id was set and the worker sent no digest: the job must fail \
             with Error::Protocol (no diff_id), it ended with {:?}",
            a.run.result
        ),
    );
    a.scene.check();
    v.finish(&a);
}

/// A worker that echoes whatever digest the caller expects cannot be caught
/// by comparing its word with the expectation: the caller computes the blob
/// digest itself from the bytes it sends (`Options::expected_digest`). The
/// expectation here is NOT the archive's digest, and the payload (told it by
/// its plan: the job header does not carry it) echoes it in its `Done`: the
/// job must fail with the caller's own digest of the archive.
async fn blob_digest_is_the_callers(sandbox: Sandbox) {
    let wrong = sha256(b"not the archive");
    let real = sha256(&archive());
    let mut options = Options::default();
    options.expected_digest = Some(wrong.clone());
    let a = attack(&sandbox, &format!("done-echo-digest {wrong}\n"), &options).await;
    // The blob digest is checked when the `Done` comes (the caller may kill
    // the payload before it notes "done-frame ok").
    let mismatch = matches!(
        &a.run.result,
        Err(Error::DigestMismatch {
            kind: DigestKind::Blob,
            ..
        })
    );
    assert!(
        mismatch || a.run.result.is_ok() || a.results.get("done-frame") == Some("ok"),
        "harness: the payload did not send its Done:\n{}job result: {:?}",
        a.results.text,
        a.run.result
    );
    let mut v = Verdict::new("echoed digest");
    v.check(
        matches!(
            &a.run.result,
            Err(Error::DigestMismatch { kind: DigestKind::Blob, expected, actual })
                if *expected == wrong && *actual == real
        ),
        format!(
            "the worker echoed the expected digest {wrong}, which is not the archive's \
             ({real}): the job must fail with DigestMismatch (Blob, actual {real}), it \
             ended with {:?}",
            a.run.result
        ),
    );
    a.scene.check();
    v.finish(&a);
}

/// The caller's environment (a secret set in this process before the sandbox
/// started) must not reach the worker.
async fn environment(sandbox: Sandbox) {
    let secret = secret();
    let a = attack(
        &sandbox,
        &format!("environ {SECRET_VAR} {secret}\n"),
        &Options::default(),
    )
    .await;
    let mut v = Verdict::new("environment");
    // The zygote's environment is cleared but for `LD_LIBRARY_PATH` (which
    // cargo sets for test binaries), and its own marker is removed.
    let allowed = usize::from(std::env::var_os("LD_LIBRARY_PATH").is_some());
    for name in ["environ-vars_os", "environ-raw"] {
        match a.results.get(name) {
            Some(line) => {
                v.check(
                    line.contains("name=absent") && line.contains("secret=absent"),
                    format!("{name}: {line}"),
                );
                let count = line
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("count="))
                    .and_then(|n| n.parse::<usize>().ok());
                v.check(
                    count.is_some_and(|n| n <= allowed),
                    format!("{name}: more than {allowed} variable(s) in the worker: {line}"),
                );
            }
            None => v.check(false, format!("{name}: not in the results")),
        }
    }
    v.check(
        !a.results.text.contains(&secret),
        "the secret is in the results",
    );
    a.scene.check();
    v.finish(&a);
}

/// 1.5 GiB of shared memory (not counted by `RLIMIT_DATA`), every page touched.
async fn shared_memory(sandbox: Sandbox) {
    let plan = format!("mmap-shared {}\n", 3u64 << 29);
    let a = attack(&sandbox, &plan, &Options::default()).await;
    let mut v = Verdict::new("shared memory");
    v.refused(&a.results, "mmap-shared", &["ENOMEM", "EPERM"]);
    v.check(
        a.results.get("mmap-shared-touch").is_none(),
        format!(
            "mmap-shared-touch {}",
            a.results.get("mmap-shared-touch").unwrap_or_default()
        ),
    );
    a.scene.check();
    v.finish(&a);
}

/// A 64 GiB file by `ftruncate`, `pwrite` and `fallocate` (the default
/// `max_entry_size` is 8 GiB): each refused with `EFBIG` or `EPERM`, or the
/// worker killed by `SIGXFSZ` right there.
async fn file_size(sandbox: Sandbox) {
    let a = attack(&sandbox, "fsize\n", &Options::default()).await;
    let mut v = Verdict::new("file size");
    let died_of_xfsz = matches!(&a.run.result, Err(e) if e.to_string().contains("SIGXFSZ"));
    for name in ["fsize-ftruncate", "fsize-pwrite", "fsize-fallocate"] {
        if died_of_xfsz && a.results.get(name).is_none() {
            println!("{name}: the worker died of SIGXFSZ");
            continue;
        }
        v.refused(&a.results, name, &["EFBIG", "EPERM"]);
    }
    let limits = Options::default().limits;
    let limit = limits.max_entry_size.max(limits.max_sparse_size);
    for (path, meta) in stat_walk(&a.scene.dest) {
        v.check(
            meta.len() <= limit,
            format!(
                "{} is {} bytes ({} on disk)",
                path.display(),
                meta.len(),
                meta.blocks() * 512
            ),
        );
    }
    a.scene.check();
    v.finish(&a);
}

/// Standard descriptors: pipes of the worker's own, nothing of the host's to
/// change (`fchmod` on `/dev/null` as root would change it for everyone).
async fn stdio(sandbox: Sandbox) {
    let dev_null = || common::mode_of("/dev/null");
    let before = dev_null();
    let a = attack(&sandbox, "stdio\n", &Options::default()).await;
    let mut v = Verdict::new("stdio");
    for fd in 0..3 {
        let name = format!("stdio-fstat-{fd}");
        let line = a.results.get(&name).unwrap_or("missing");
        v.check(line.starts_with("ok type=pipe"), format!("{name}: {line}"));
    }
    let after = dev_null();
    v.check(
        after == before && after == 0o666,
        format!("/dev/null's mode was {before:o}, is {after:o}"),
    );
    a.scene.check();
    v.finish(&a);
}

/// Out-of-band data on the job socket (`MSG_OOB`): refused.
async fn out_of_band(sandbox: Sandbox) {
    let a = attack(&sandbox, "oob\n", &Options::default()).await;
    let mut v = Verdict::new("MSG_OOB");
    for name in ["oob-recv", "oob-send", "oob-recvmsg"] {
        v.refused(&a.results, name, &["EPERM"]);
    }
    a.scene.check();
    v.finish(&a);
}

/// Leases, directory notification, locks and pipe sizes: refused.
async fn fcntl_misc(sandbox: Sandbox) {
    let a = attack(&sandbox, "fcntl-misc\n", &Options::default()).await;
    let mut v = Verdict::new("fcntl");
    for name in [
        "F_SETLEASE",
        "F_NOTIFY",
        "F_SETLK",
        "F_OFD_SETLK",
        "flock",
        "F_SETPIPE_SZ",
    ] {
        v.refused(&a.results, name, &["EPERM"]);
    }
    a.scene.check();
    v.finish(&a);
}

/// A `list_only` job writes nothing: a read-only mount (Landlock's read-only
/// rights on that rung), no write capability.
async fn list_only_cannot_write(sandbox: Sandbox) {
    let mut options = Options::default();
    options.list_only = true;
    let a = attack(&sandbox, "write\n", &options).await;
    assert!(
        !a.results.text.is_empty(),
        "harness: no results at all (neither the file nor the Failed message): {:?}",
        a.run.result
    );
    let mut v = Verdict::new("list_only");
    let refusals: &[&str] = match sandbox.mode().rung() {
        sandtar::Rung::Landlock => &["EACCES"],
        _ => &["EROFS", "EPERM"],
    };
    v.refused(&a.results, "write-open", refusals);
    v.check(
        !a.scene.dest.join("written-by-payload").exists(),
        "written-by-payload exists in the destination",
    );
    v.check(
        !a.scene.dest.join(".sandtar-hostile-results").exists(),
        "the payload wrote its results file into the destination",
    );
    a.scene.check();
    v.finish(&a);
}

/// A block device of this machine, `(major, minor)`: the first in
/// `/proc/partitions`, or the first loop device's number where there is none
/// (opening a node for a device that does not exist fails with `ENXIO`, not
/// the `EACCES` of a `nodev` mount, so the test tells them apart).
fn host_block_device() -> (u32, u32) {
    let table = std::fs::read_to_string("/proc/partitions").unwrap_or_default();
    table
        .lines()
        .skip(2)
        .find_map(|l| {
            let mut words = l.split_whitespace();
            Some((words.next()?.parse().ok()?, words.next()?.parse().ok()?))
        })
        .unwrap_or((7, 0))
}

/// Device nodes that name a disk of the host: one the payload makes (where
/// the worker may make devices at all: as root on the namespace rung, with
/// `allow_devices`) and, as root, one already in the destination. Neither
/// opens: the worker's clone of the destination's mount is `nodev`. On the
/// Landlock rung there is no mount of the worker's own, and no wall against
/// a device node already in the destination (SECURITY.md says so): that
/// case is only reported there.
async fn device_nodes(sandbox: Sandbox) {
    let (major, minor) = host_block_device();
    let scene = Scene::new();
    let existing = is_root() && {
        let node = std::ffi::CString::new(
            scene
                .dest
                .join("disk")
                .into_os_string()
                .into_encoded_bytes(),
        )
        .unwrap();
        let dev = libc::makedev(major, minor);
        // SAFETY: a NUL-terminated path.
        let r = unsafe { libc::mknod(node.as_ptr(), libc::S_IFBLK | 0o600, dev) };
        assert_eq!(r, 0, "mknod: {}", std::io::Error::last_os_error());
        true
    };
    let plan = format!(
        "device {major} {minor} {}\n",
        if existing { "disk" } else { "" }
    );
    let a = attack_in(scene, &sandbox, &plan, &Options::full_fidelity()).await;
    let mut v = Verdict::new("device_nodes");
    v.check(
        a.results.get("device-mknod").is_some(),
        "harness: the payload did not run its plan",
    );
    let landlock = sandbox.mode().rung() == sandtar::Rung::Landlock;
    // As root on the namespace rung the worker keeps CAP_MKNOD: the node is
    // made, and must be refused at open (nodev). Elsewhere it is never made.
    match is_root() && !landlock {
        true => {
            v.check(
                a.results.get("device-mknod") == Some("ok"),
                "harness: the worker could not make the node it should open",
            );
            v.refused(&a.results, "device-open-made", &["EACCES"]);
        }
        false => {
            v.refused(&a.results, "device-mknod", &["EPERM", "EACCES"]);
            v.refused(&a.results, "device-open-made", &["ENOENT"]);
        }
    }
    match (existing, landlock) {
        (true, false) => v.refused(&a.results, "device-open-existing", &["EACCES"]),
        (true, true) => println!(
            "NOTE: Landlock rung: a device node already in the destination: {:?}",
            a.results.get("device-open-existing")
        ),
        (false, _) => {}
    }
    a.scene.check();
    v.finish(&a);
}

/// A racing accomplice moves a directory the payload holds open out of the
/// destination (to `away/`, beside it): `..` of that directory then leads
/// past the worker's root, the classic way out of a chroot. The mount's
/// boundary stops the walk on the namespace rung; on the Landlock rung
/// Landlock refuses every access it handles, and seccomp every path-taking
/// change Landlock does not see (owner, mode, times). The canary keeps
/// contents, modes, owners and times.
async fn directory_moved_out(sandbox: Sandbox) {
    let mut scene = Scene::unsnapshotted();
    let away = scene.tmp.path().join("away");
    std::fs::create_dir(&away).unwrap();
    scene.snapshot_now();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mover = {
        let (from, to, stop) = (scene.dest.join("mover"), away.join("mover"), stop.clone());
        let cue = scene.dest.join("mover-ready");
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if cue.exists() && std::fs::rename(&from, &to).is_ok() {
                    return true;
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            false
        })
    };
    let a = attack_in(scene, &sandbox, "moved-out\n", &Options::default()).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let moved = mover.join().unwrap();
    let mut v = Verdict::new("directory_moved_out");
    v.check(moved, "harness: the accomplice never moved the directory");
    v.check(
        a.results.get("moved-wait") == Some("ok"),
        "harness: the payload did not see its directory move",
    );
    canary_refused(&mut v, &a.results, "moved");
    a.scene.check();
    v.finish(&a);
}

/// Every way at the canary that `reach_through` in the payload tries, with
/// lines named `tag-…`, was refused: no owner, mode, time, contents, name or
/// link of the canary reached.
fn canary_refused(v: &mut Verdict, results: &Results, tag: &str) {
    let gone = ["ENOENT", "EACCES", "EPERM", "EXDEV"];
    for what in [
        "chown", "chmod", "utimes", "read", "create", "unlink", "rename", "link", "mode3",
    ] {
        v.refused(results, &format!("{tag}-{what}"), &gone);
    }
    // Where an O_PATH descriptor of the outside file could be had (the
    // Landlock rung: opening one needs no right), it changes nothing either.
    if results.get(&format!("{tag}-opath")) == Some("ok") {
        for what in ["opath-chown", "opath-utimes", "opath-chmod"] {
            v.refused(results, &format!("{tag}-{what}"), &["EPERM", "EBADF"]);
        }
    } else {
        v.refused(results, &format!("{tag}-opath"), &gone);
    }
}

/// The canary by its absolute path, straight from the worker: nothing on the
/// namespace rung or under `chroot` (no such path); on the Landlock rung
/// without `chroot`, where every path of the host can be named, Landlock
/// refuses every access it handles and seccomp every path-taking change it
/// does not see. The canary keeps contents, modes, owners and times.
async fn canary_by_absolute_path(sandbox: Sandbox) {
    let scene = Scene::new();
    let plan = format!("outside {}\n", scene.canary.display());
    let a = attack_in(scene, &sandbox, &plan, &Options::default()).await;
    let mut v = Verdict::new("canary_by_absolute_path");
    canary_refused(&mut v, &a.results, "outside");
    v.check(
        a.results.get("outside-stat").is_some(),
        "harness: the payload did not run its plan",
    );
    a.scene.check();
    v.finish(&a);
}

/// A packing job's worker, compromised (its compressors are C code too): it
/// may read its source and nothing else. Writes into the source are refused
/// (a read-only mount, or Landlock's read rights; no write capability), so are
/// set-id modes and every way at the canary by its absolute path; signals to
/// outside processes as for extraction. The source, the canary and the victims
/// are unchanged. (Two jobs: the results of one would not fit in the one
/// `Failed` message a read-only worker can send them in.)
async fn a_pack_worker_only_reads_its_source(sandbox: Sandbox) {
    let scene = Scene::unsnapshotted();
    let plan = format!(
        "write\nsetid\nchange sub/kept.txt\noutside {}\n",
        scene.canary.display()
    );
    let (a, source_unchanged) = pack_attack(&sandbox, scene, &plan).await;
    let mut v = Verdict::new("a_pack_worker_only_reads_its_source: writes");
    v.check(
        a.results.get("outside-stat").is_some(),
        "harness: the payload did not run its plan",
    );
    // Seccomp refuses any open for writing first (EPERM); behind it the
    // read-only mount (EROFS) or Landlock's read rights (EACCES).
    v.refused(&a.results, "write-open", &["EPERM"]);
    let setid: Vec<_> = a
        .results
        .lines
        .keys()
        .filter(|k| k.starts_with("setid"))
        .collect();
    v.check(
        !setid.is_empty(),
        "harness: no set-id attempt in the results",
    );
    for name in setid {
        v.check(
            a.results.errno(name).is_some(),
            format!("{name}: {}", a.results.get(name).unwrap_or_default()),
        );
    }
    canary_refused(&mut v, &a.results, "outside");
    v.check(
        a.results.get("change-open") == Some("ok"),
        "harness: the payload could not open the source file to read",
    );
    // The seccomp filter (no call that changes a file, no write or
    // truncating open): on the Landlock rung the only wall against a
    // worker that owns the source.
    for name in [
        "change-fchmod",
        "change-fchown",
        "change-futimens",
        "change-fsetxattr",
        "change-ftruncate",
        "change-open-trunc",
    ] {
        v.refused(&a.results, name, &["EPERM"]);
    }
    v.check(
        source_unchanged,
        "the source changed while a compromised worker packed it",
    );
    a.scene.check();
    v.finish(&a);

    let mut victims = Victims::spawn();
    let mut pids = victims.pids();
    pids.push(std::process::id());
    let plan: String = pids.iter().map(|p| format!("signal {p}\n")).collect();
    let (a, source_unchanged) = pack_attack(&sandbox, Scene::unsnapshotted(), &plan).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut v = Verdict::new("a_pack_worker_only_reads_its_source: signals");
    for dead in victims.dead() {
        v.check(false, dead);
    }
    for p in &pids {
        v.refused(&a.results, &format!("kill@{p}"), &["EPERM", "ESRCH"]);
        v.refused(&a.results, &format!("pidfd_open@{p}"), &["EPERM", "ESRCH"]);
    }
    v.check(
        source_unchanged,
        "the source changed while a compromised worker packed it",
    );
    a.scene.check();
    v.finish(&a);
}

/// A packing job that writes its archive itself (`Sandbox::pack_into`)
/// holds the caller's output, compromised or not: into a file (after a
/// header the caller wrote, not opened for appending) and into a pipe, it may
/// append and nothing else. Mode, owner, times, attributes and size other
/// than by appending are refused; so are its flags (`O_APPEND` cleared,
/// `O_NONBLOCK` set on the caller's pipe); a write after moving the offset
/// back to 0 or 1 TiB ahead lands at the end (the worker's own open
/// description, appending). The header, the caller's flags and the source
/// are as they were.
async fn a_pack_worker_only_writes_its_output(sandbox: Sandbox) {
    let outputs = tempfile::tempdir().unwrap();
    let path = outputs.path().join("out.tar");
    // Not opened for appending: its offset is at the end of the header.
    let mut file = std::fs::File::create(&path).unwrap();
    std::io::Write::write_all(&mut file, HEADER).unwrap();
    let was = meta(&path);
    let kept = file.try_clone().unwrap();
    let (a, source_unchanged) = output_attack(&sandbox, file.into()).await;
    let mut v = Verdict::new("a_pack_worker_only_writes_its_output (a file)");
    output_refused(&mut v, &a, source_unchanged, &kept);
    // Moving its own offset is allowed, and the writes after it too: they
    // must have been appended (the header and the size below).
    for name in ["output-rewound-write", "output-far-write"] {
        v.check(
            a.results.get(name).is_some_and(|l| l.starts_with("ok")),
            format!("harness: {name} did not write"),
        );
    }
    let now = meta(&path);
    v.check(
        now.0 == was.0 && now.0 & 0o7000 == 0,
        format!("the output's mode changed: {:o} -> {:o}", was.0, now.0),
    );
    v.check(
        now.1 == was.1 && now.2 == was.2,
        "the output's owner changed",
    );
    let written = std::fs::read(&path).unwrap();
    v.check(
        written.len() < 1 << 20,
        format!("the output grew to {} bytes", written.len()),
    );
    v.check(
        written.starts_with(HEADER),
        "the caller's header was written over",
    );
    // The file is the caller's again: its offset past what the worker
    // wrote, whatever the worker did to it, and no `O_APPEND` of ours.
    let mut kept_file = kept.try_clone().unwrap();
    let at = std::io::Seek::stream_position(&mut kept_file).unwrap();
    v.check(
        at == written.len() as u64,
        format!(
            "the caller's offset is {at}, the file {} bytes",
            written.len()
        ),
    );
    let flags = rustix::fs::fcntl_getfl(&kept_file).unwrap();
    v.check(
        !flags.contains(rustix::fs::OFlags::APPEND),
        "the caller's file was left O_APPEND",
    );
    v.check(
        common::get_xattr(&path, "user.planted")
            .ok()
            .flatten()
            .is_none(),
        "an attribute was set on the output",
    );
    v.finish(&a);

    let (mut reader, writer) = std::io::pipe().unwrap();
    let drained = std::thread::spawn(move || {
        let mut all = Vec::new();
        let _ = reader.read_to_end(&mut all);
        all.len()
    });
    let kept = writer.try_clone().unwrap();
    let (a, source_unchanged) = output_attack(&sandbox, writer.into()).await;
    let mut v = Verdict::new("a_pack_worker_only_writes_its_output (a pipe)");
    output_refused(&mut v, &a, source_unchanged, &kept);
    drop(kept);
    v.check(drained.join().is_ok(), "harness: the pipe's reader failed");
    v.finish(&a);
}

/// What the caller wrote before the archive.
const HEADER: &[u8] = b"the caller's header, kept\n";

/// Mode, owner and modification time of `path`.
fn meta(path: &Path) -> (u32, u32, u32, i64, i64) {
    let m = std::fs::metadata(path).unwrap();
    (m.mode(), m.uid(), m.gid(), m.mtime(), m.mtime_nsec())
}

/// Packs a source holding the `output` plan into `out`.
async fn output_attack(sandbox: &Sandbox, out: OwnedFd) -> (Attack, bool) {
    let mut scene = Scene::unsnapshotted();
    std::fs::write(scene.dest.join("kept.txt"), b"source file\n").unwrap();
    std::fs::write(scene.dest.join(".sandtar-hostile"), "output\n").unwrap();
    scene.snapshot_now();
    let before = common::snapshot(&scene.dest);
    let run = Run {
        reports: Vec::new(),
        result: pack_into_all(sandbox, &scene.dest, out).await,
    };
    let results = Results::read(&scene.dest, &run);
    println!(
        "pack_into results:\n{}job result: {:?}",
        results.text, run.result
    );
    let source_unchanged = common::snapshot(&scene.dest) == before;
    let attack = Attack {
        scene,
        run,
        results,
    };
    (attack, source_unchanged)
}

/// The refusals a file and a pipe have in common, and the caller's own
/// description of the output (`kept`) with its flags as they were.
fn output_refused(v: &mut Verdict, a: &Attack, source_unchanged: bool, kept: &impl AsFd) {
    v.check(
        a.results
            .get("output-found")
            .is_some_and(|l| l.starts_with("ok")),
        "harness: the payload did not find the output among its descriptors",
    );
    for name in [
        "output-fchmod",
        "output-fchown",
        "output-futimens",
        "output-fsetxattr",
        "output-ftruncate",
        "output-fallocate",
        "output-pwrite",
        "output-fchmodat2",
        "output-setfl-clear-append",
        "output-setfl-nonblock",
    ] {
        v.refused(&a.results, name, &["EPERM"]);
    }
    let flags = rustix::fs::fcntl_getfl(kept).unwrap();
    v.check(
        !flags.contains(rustix::fs::OFlags::NONBLOCK),
        "the caller's output became non-blocking",
    );
    v.check(
        source_unchanged,
        "the source changed while a compromised worker packed it",
    );
    a.scene.check();
}

/// Packs `source` into `out` through the worker; the job's result.
async fn pack_into_all(
    sandbox: &Sandbox,
    source: &Path,
    out: OwnedFd,
) -> sandtar::Result<sandtar::Summary> {
    let mut pack = sandbox
        .pack_into(source, &PackOptions::default(), out)
        .await?;
    while pack.next().await.is_some() {}
    pack.finish().await
}

/// Puts `plan` and two files into the scene's destination, the source here,
/// and packs it; the attack, and whether the source is as it was.
async fn pack_attack(sandbox: &Sandbox, mut scene: Scene, plan: &str) -> (Attack, bool) {
    std::fs::create_dir(scene.dest.join("sub")).unwrap();
    std::fs::write(scene.dest.join("sub/kept.txt"), b"source file\n").unwrap();
    std::fs::write(scene.dest.join(".sandtar-hostile"), plan).unwrap();
    scene.snapshot_now();
    let before = common::snapshot(&scene.dest);
    let run = Run {
        reports: Vec::new(),
        result: pack_all(sandbox, &scene.dest).await,
    };
    let results = Results::read(&scene.dest, &run);
    println!(
        "pack plan ({}):\n{plan}\nresults:\n{}job result: {:?}",
        if is_root() { "root" } else { "nobody" },
        results.text,
        run.result
    );
    let unchanged = common::snapshot(&scene.dest) == before;
    let attack = Attack {
        scene,
        run,
        results,
    };
    (attack, unchanged)
}

/// Packs `source` and reads the archive to its end; the job's result.
async fn pack_all(sandbox: &Sandbox, source: &Path) -> sandtar::Result<sandtar::Summary> {
    use tokio::io::AsyncReadExt;
    let mut pack = sandbox.pack(source, &PackOptions::default()).await?;
    let mut archive = Vec::new();
    let read = pack.read_to_end(&mut archive).await;
    // The job's own error, from finish(), says more than the read's.
    match (read, pack.finish().await) {
        (Err(e), Ok(_)) => Err(Error::Read(std::sync::Arc::new(e))),
        (_, finished) => finished,
    }
}
