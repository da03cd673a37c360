//! sandtar inside real Docker containers: the `untar` example (as `cargo test`
//! built it), in an image made of it and its shared libraries (`docker
//! import`, no registry), run the way a service would be (`--network none`),
//! with a hostile archive on standard input and a host directory bind-mounted
//! as the destination, `/out`. The files that belong inside must be there,
//! seen from the host; nothing may appear beside that directory on the host,
//! and `docker diff` must list no change in the container.
//!
//! | `docker run …` | expected |
//! |---|---|
//! | default (root, Docker's seccomp profile) | the Landlock rung |
//! | `--read-only --tmpfs /tmp` (and the built-in sample) | the Landlock rung |
//! | `--cap-add SYS_ADMIN` | the namespace rung (`chroot` where the profile refuses `pivot_root`) |
//! | `--security-opt seccomp=unconfined` | the namespace rung |
//! | `--user 65534:65534`, `--cap-drop ALL` | refused, naming each rung's blocker; nothing written |
//! | default, `--only-rung namespaces` | refused, naming the seccomp filter |
//!
//! Needs a running Docker engine (`docker info`) and root; without them each
//! test prints a note and passes, unless `SANDTAR_REQUIRE_DOCKER=1` (CI's
//! `.ci/run` starts `dockerd` and sets it).

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use common::raw::Tar;

/// The image's tag.
const IMAGE: &str = "sandtar-test/untar:latest";

/// Whether Docker can be used here; `false` (with a note) where it may be
/// missing, a panic where it must not.
fn docker_here() -> bool {
    let required = std::env::var_os("SANDTAR_REQUIRE_DOCKER").is_some_and(|v| v == "1");
    let works = common::is_root()
        && Command::new("docker")
            .args(["info", "--format", "{{.ServerVersion}}"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    match (works, required) {
        (true, _) => true,
        (false, true) => panic!("SANDTAR_REQUIRE_DOCKER=1, but `docker info` fails (or not root)"),
        (false, false) => {
            println!("NOTE: needs root and a running Docker engine; skipped");
            false
        }
    }
}

/// The shared libraries `path` loads (from `ldd`), the loader included.
fn libraries(path: &Path) -> Vec<PathBuf> {
    let out = Command::new("ldd").arg(path).output().unwrap();
    assert!(out.status.success(), "ldd: {out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .filter(|word| word.starts_with('/'))
        .map(PathBuf::from)
        .collect()
}

/// Imports the image once per test run: `/bin/untar`, its libraries, `/tmp`
/// and an empty `/out`.
fn image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        for dir in ["bin", "tmp", "out"] {
            std::fs::create_dir(r.join(dir)).unwrap();
        }
        let untar = common::untar_binary();
        std::fs::copy(&untar, r.join("bin/untar")).unwrap();
        for lib in libraries(&untar) {
            let to = r.join(lib.strip_prefix("/").unwrap());
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(&lib, &to).unwrap();
        }
        let tar = Command::new("tar")
            .arg("-C")
            .arg(r)
            .args(["-c", "."])
            .output()
            .unwrap();
        assert!(tar.status.success(), "tar: {tar:?}");
        let imported = feed(
            Command::new("docker").args(["import", "-", IMAGE]),
            &tar.stdout,
        );
        assert!(imported.status.success(), "docker import: {imported:?}");
    });
    IMAGE
}

/// Runs `command` with `input` on its standard input.
fn feed(command: &mut Command, input: &[u8]) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

/// Every escape a plain archive tries, and files that belong inside.
fn hostile_archive() -> Vec<u8> {
    Tar::new()
        .file("ok.txt", b"inside\n")
        .file("../escape.txt", b"outside?\n")
        .file("/etc/planted-absolute", b"outside?\n")
        .symlink("etc-link", "/etc")
        .file("etc-link/planted-through-symlink", b"outside?\n")
        .symlink("up", "../../../../..")
        .file("up/planted-up", b"outside?\n")
        .hardlink("passwd-link", "/etc/passwd")
        .finish()
}

/// One container's run: its output, what `docker diff` says it changed in
/// the container, and the host's directory bind-mounted as `/out`.
struct Run {
    status: Option<i32>,
    stdout: String,
    stderr: String,
    changed: Vec<String>,
    /// Holds `out/` (the container's `/out`) and `canary`, beside it.
    host: tempfile::TempDir,
}

impl Run {
    /// The summary's `"rung"` value, if the summary line is there.
    fn rung(&self) -> Option<&str> {
        let line = self.stdout.lines().last()?;
        let at = line.find("\"rung\":\"")? + "\"rung\":\"".len();
        line[at..].split('"').next()
    }

    fn out(&self) -> PathBuf {
        self.host.path().join("out")
    }

    /// What is beside `out/` on the host, and the canary's contents.
    fn beside_out(&self) -> (Vec<String>, String) {
        let mut names: Vec<String> = std::fs::read_dir(self.host.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let canary = std::fs::read_to_string(self.host.path().join("canary")).unwrap();
        (names, canary)
    }
}

/// `docker run --network none -v HOST/out:/out [args] IMAGE /bin/untar
/// --json [untar_args] - /out` with the hostile archive on standard input.
fn run(args: &[&str], untar_args: &[&str]) -> Run {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "sandtar-test-{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    );
    let host = tempfile::tempdir().unwrap();
    std::fs::create_dir(host.path().join("out")).unwrap();
    // Writable by any user the container runs as (`--user`).
    let open = std::os::unix::fs::PermissionsExt::from_mode(0o777);
    std::fs::set_permissions(host.path().join("out"), open).unwrap();
    std::fs::write(host.path().join("canary"), "beside /out\n").unwrap();
    let volume = format!("{}:/out", host.path().join("out").display());
    let mut command = Command::new("docker");
    command
        .args(["run", "-i", "--network", "none", "--name", &name])
        .args(["-v", &volume])
        .args(args)
        .args([image(), "/bin/untar", "--json"])
        .args(untar_args)
        .args(["-", "/out"]);
    let out = feed(&mut command, &hostile_archive());
    let diff = Command::new("docker")
        .args(["diff", &name])
        .output()
        .unwrap();
    let _ = Command::new("docker").args(["rm", "-f", &name]).output();
    assert!(diff.status.success(), "docker diff: {diff:?}");
    let run = Run {
        status: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        changed: String::from_utf8_lossy(&diff.stdout)
            .lines()
            .map(str::to_string)
            .collect(),
        host,
    };
    println!(
        "docker run {args:?} untar {untar_args:?}: exit {:?}\nstdout:\n{}stderr:\n{}changed:\n{}",
        run.status,
        run.stdout,
        run.stderr,
        run.changed.join("\n")
    );
    run
}

/// Nothing changed in the container (`/out` is the host's) nor beside `out/`.
fn nothing_outside(run: &Run) {
    assert_eq!(
        run.changed,
        Vec::<String>::new(),
        "changed in the container"
    );
    let beside = (
        vec!["canary".to_string(), "out".to_string()],
        "beside /out\n".to_string(),
    );
    assert_eq!(run.beside_out(), beside, "changed beside out/ on the host");
}

/// The archive is extracted on `rung`: the files that belong inside are
/// there (seen from the host), the escapes rejected or kept inside, nothing
/// outside changed.
fn extracted_on(args: &[&str], rung: &str, sandbox: &str) {
    let run = run(args, &[]);
    assert_eq!(run.status, Some(1), "some entries are rejected: exit 1");
    assert_eq!(run.rung(), Some(rung));
    let named = format!("\"sandbox\":\"{sandbox}\"");
    assert!(run.stdout.contains(&named), "not {named}");
    let out = run.out();
    assert_eq!(std::fs::read(out.join("ok.txt")).unwrap(), b"inside\n");
    for inside in [
        "etc/planted-absolute",
        "etc/planted-through-symlink",
        "planted-up",
    ] {
        assert!(out.join(inside).is_file(), "{inside} not written inside");
    }
    assert_eq!(
        std::fs::read_link(out.join("etc-link")).unwrap(),
        Path::new("/etc")
    );
    assert!(!out.join("passwd-link").exists());
    nothing_outside(&run);
}

/// No rung here: exit 2, each `blocker` named, nothing written.
fn refused(args: &[&str], untar_args: &[&str], blockers: &[&str]) {
    let run = run(args, untar_args);
    assert_eq!(run.status, Some(2));
    assert!(
        run.stderr.contains("confinement unavailable"),
        "{}",
        run.stderr
    );
    for blocker in blockers {
        assert!(run.stderr.contains(blocker), "{blocker} not named");
    }
    let written: Vec<_> = std::fs::read_dir(run.out()).unwrap().collect();
    assert!(written.is_empty(), "written although refused");
    nothing_outside(&run);
}

#[test]
fn default_container_gets_the_landlock_rung() {
    if docker_here() {
        extracted_on(&[], "landlock", "landlock");
    }
}

#[test]
fn cap_sys_admin_gets_the_namespace_rung() {
    if docker_here() {
        extracted_on(&["--cap-add", "SYS_ADMIN"], "namespaces", "privileged");
    }
}

/// `CAP_SYS_ADMIN` but no mounts (what Docker's AppArmor profile,
/// `deny mount`, does to a container given the capability, emulated with a
/// seccomp profile that refuses `mount`): the namespace rung's probe fails on
/// the slave mount and the zygote takes the Landlock rung, instead of
/// failing every job in the worker.
#[test]
fn cap_sys_admin_without_mounts_gets_the_landlock_rung() {
    if !docker_here() {
        return;
    }
    let profile = tempfile::NamedTempFile::new().unwrap();
    let refuse = r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mount"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}"#;
    std::fs::write(profile.path(), refuse).unwrap();
    let seccomp = format!("seccomp={}", profile.path().display());
    let args = ["--cap-add", "SYS_ADMIN", "--security-opt", &seccomp];
    extracted_on(&args, "landlock", "landlock");
}

#[test]
fn unconfined_seccomp_gets_the_namespace_rung() {
    if docker_here() {
        extracted_on(
            &["--security-opt", "seccomp=unconfined"],
            "namespaces",
            "user-namespace",
        );
    }
}

/// A read-only root file system with a tmpfs `/tmp`: the hostile archive on
/// the Landlock rung, and the built-in sample (into a new directory in `/tmp`).
#[test]
fn read_only_root_gets_the_landlock_rung() {
    if !docker_here() {
        return;
    }
    extracted_on(&["--read-only", "--tmpfs", "/tmp"], "landlock", "landlock");
    let out = Command::new("docker")
        .args(["run", "--rm", "--network", "none", "--read-only"])
        .args(["--tmpfs", "/tmp", image(), "/bin/untar", "--json"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("sample: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the sample extracts: exit 0");
    let summary = stdout.lines().last().unwrap_or("");
    assert!(summary.contains("\"rung\":\"landlock\""), "{summary}");
    assert!(summary.contains("\"failed\":0"), "{summary}");
}

/// An ordinary user in the container: no user namespaces (Docker's profile),
/// no `CAP_SYS_CHROOT`: the Landlock rung without `chroot`.
#[test]
fn non_root_user_gets_the_landlock_rung() {
    if docker_here() {
        extracted_on(&["--user", "65534:65534"], "landlock", "landlock-no-chroot");
    }
}

/// Root without any capability: the Landlock rung without `chroot`.
#[test]
fn no_capabilities_gets_the_landlock_rung() {
    if docker_here() {
        extracted_on(&["--cap-drop", "ALL"], "landlock", "landlock-no-chroot");
    }
}

/// What Kubernetes' Restricted pod security standard asks of a pod: a
/// non-root user, every capability dropped, no privilege escalation, the
/// runtime's default seccomp profile.
#[test]
fn kubernetes_restricted_gets_the_landlock_rung() {
    if docker_here() {
        let args = [
            "--user",
            "1000:1000",
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
        ];
        extracted_on(&args, "landlock", "landlock-no-chroot");
    }
}

/// A seccomp profile that refuses Landlock and user namespaces (as Docker's
/// profiles before 20.10.18 refused Landlock): no rung at all, and each
/// rung's blocker is named.
#[test]
fn no_landlock_and_no_namespaces_is_refused() {
    if !docker_here() {
        return;
    }
    let profile = tempfile::NamedTempFile::new().unwrap();
    let refuse = r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["landlock_create_ruleset", "landlock_add_rule",
                   "landlock_restrict_self"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
        {"names": ["unshare"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}"#;
    std::fs::write(profile.path(), refuse).unwrap();
    let seccomp = format!("seccomp={}", profile.path().display());
    let args = ["--user", "65534:65534", "--security-opt", &seccomp];
    refused(&args, &[], &["namespaces:", "Landlock: unavailable"]);
}

#[test]
fn namespaces_demanded_in_a_default_container_is_refused() {
    if docker_here() {
        refused(&[], &["--only-rung", "namespaces"], &["seccomp filter"]);
    }
}

/// `untar --doctor` in a default container: user namespaces refused, the
/// Landlock rung possible, and the sandbox it starts stands on it.
#[test]
fn doctor_in_a_default_container() {
    if !docker_here() {
        return;
    }
    let out = Command::new("docker")
        .args(["run", "--rm", "--network", "none", image()])
        .args(["/bin/untar", "--doctor"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success());
    let line = |wall: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(wall) && l[wall.len()..].starts_with("  "))
            .unwrap_or_else(|| panic!("no {wall} line"))
            .to_string()
    };
    assert!(line("user namespaces").contains(" no "));
    assert!(line("Landlock rung").contains(" yes "));
    assert!(stdout.contains("(the landlock rung)"));
}
