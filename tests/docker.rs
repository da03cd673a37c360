//! sandtar inside real Docker containers: the `untar` example, in an image made
//! of it and its shared libraries (`docker import`, no registry), run the way
//! a service would be, with a hostile archive on standard input. Each run's
//! `docker diff` must list changes inside the destination (`/out`) only.
//!
//! | `docker run …` | expected |
//! |---|---|
//! | default (root, Docker's seccomp profile) | the Landlock rung |
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

/// The `untar` example `cargo test` built next to this test binary.
fn untar_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let untar = profile_dir.join("examples/untar");
    assert!(
        untar.is_file(),
        "{} missing: `cargo test` builds it",
        untar.display()
    );
    untar
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
        let untar = untar_binary();
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

/// One container's run: its output, and what `docker diff` says it changed.
struct Run {
    status: Option<i32>,
    stdout: String,
    stderr: String,
    changed: Vec<String>,
}

impl Run {
    /// The summary's `"rung"` value, if the summary line is there.
    fn rung(&self) -> Option<&str> {
        let line = self.stdout.lines().last()?;
        let at = line.find("\"rung\":\"")? + "\"rung\":\"".len();
        line[at..].split('"').next()
    }

    /// Changes outside the destination (`docker diff` lines not under `/out`).
    fn outside(&self) -> Vec<&String> {
        self.changed
            .iter()
            .filter(|line| {
                let path = line.get(2..).unwrap_or("");
                path != "/out" && !path.starts_with("/out/")
            })
            .collect()
    }
}

/// `docker run [args] IMAGE /bin/untar --json [untar_args] - /out` with the
/// hostile archive on standard input.
fn run(args: &[&str], untar_args: &[&str]) -> Run {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "sandtar-test-{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    );
    let mut command = Command::new("docker");
    command
        .args(["run", "-i", "--name", &name])
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

/// The archive is extracted on `rung`: the files that belong inside are
/// there, the escapes rejected or kept inside, nothing outside changed.
fn extracted_on(args: &[&str], rung: &str) {
    let run = run(args, &[]);
    assert_eq!(run.status, Some(1), "some entries are rejected: exit 1");
    assert_eq!(run.rung(), Some(rung));
    for inside in ["/out/ok.txt", "/out/etc/planted-absolute", "/out/etc-link"] {
        assert!(
            run.changed.iter().any(|l| l.ends_with(inside)),
            "{inside} not written"
        );
    }
    assert_eq!(run.outside(), Vec::<&String>::new(), "changed outside /out");
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
    let written: Vec<&String> = run.changed.iter().filter(|l| l.contains("/out/")).collect();
    assert_eq!(written, Vec::<&String>::new(), "written although refused");
    assert_eq!(run.outside(), Vec::<&String>::new(), "changed outside /out");
}

#[test]
fn default_container_gets_the_landlock_rung() {
    if docker_here() {
        extracted_on(&[], "landlock");
    }
}

#[test]
fn cap_sys_admin_gets_the_namespace_rung() {
    if docker_here() {
        extracted_on(&["--cap-add", "SYS_ADMIN"], "namespaces");
    }
}

#[test]
fn unconfined_seccomp_gets_the_namespace_rung() {
    if docker_here() {
        extracted_on(&["--security-opt", "seccomp=unconfined"], "namespaces");
    }
}

#[test]
fn non_root_user_is_refused() {
    if docker_here() {
        refused(
            &["--user", "65534:65534"],
            &[],
            &["namespaces:", "CAP_SYS_CHROOT"],
        );
    }
}

#[test]
fn no_capabilities_is_refused() {
    if docker_here() {
        let blockers = ["seccomp filter", "CAP_SYS_CHROOT"];
        refused(&["--cap-drop", "ALL"], &[], &blockers);
    }
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
        .args(["run", "--rm", image(), "/bin/untar", "--doctor"])
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
