//! The `service` example (examples/service.rs), served on a loopback port and
//! driven by a real HTTP client: a good upload, a hostile one, a bomb, a body
//! over the size limit, a client that disconnects half way, one that leaves
//! while its worker is busy, and one too slow.

mod common;
#[path = "../examples/service.rs"]
mod service;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{gzip, noise};
use feeder::stalled_body;
use sandtar::Sandbox;
use serde_json::Value;
use service::app::{router, Config};
use tar::EntryType::{Link, Regular, Symlink};

/// A service on 127.0.0.1:<ephemeral> extracting into `root/base`, with a
/// canary file beside the base directory.
struct Service {
    url: String,
    root: tempfile::TempDir,
}

impl Service {
    async fn start(tweak: impl FnOnce(&mut Config)) -> Service {
        // The service's log (and sandtar's), shown by `cargo test -- --nocapture`.
        let _ = tracing_subscriber::fmt().with_test_writer().try_init();
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("base")).unwrap();
        std::fs::write(root.path().join("canary.txt"), b"canary\n").unwrap();
        let mut config = Config::new(root.path().join("base"));
        tweak(&mut config);
        let sandbox = Sandbox::new()
            .await
            .expect("a sandbox (root or user namespaces)");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/extract", listener.local_addr().unwrap());
        // Served until the test's runtime shuts down.
        tokio::spawn(async move { axum::serve(listener, router(sandbox, config)).await });
        Service { url, root }
    }

    fn base(&self) -> PathBuf {
        self.root.path().join("base")
    }

    /// Nothing beside the base directory changed, and the canary is intact.
    fn assert_outside_untouched(&self) {
        assert_eq!(
            names(self.root.path()),
            ["base", "canary.txt"].map(String::from).into()
        );
        let canary = std::fs::read(self.root.path().join("canary.txt")).unwrap();
        assert_eq!(canary, b"canary\n");
    }

    async fn post(&self, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let response = client().post(&self.url).body(body).send().await.unwrap();
        let status = response.status().as_u16();
        let json = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
        println!("{status} {json}");
        (status, json)
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// A tar header with whatever name and link target, unchecked (the `tar`
/// crate's `append_data` refuses `..`).
fn raw_entry(
    tar: &mut tar::Builder<Vec<u8>>,
    kind: tar::EntryType,
    name: &str,
    link: &str,
    data: &[u8],
) {
    assert!(
        name.len() < 100 && link.len() < 100,
        "too long for a ustar header"
    );
    let mut header = tar::Header::new_ustar();
    header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    header.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
    header.set_entry_type(kind);
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(1_600_000_000);
    header.set_cksum();
    tar.append(&header, data).unwrap();
}

/// The seed of the incompressible contents ([`noise`]).
const SEED: u64 = 0x9e37_79b9_7f4a_7c15;

#[tokio::test]
async fn a_good_upload_is_extracted() {
    let service = Service::start(|_| {}).await;
    let mut tar = tar::Builder::new(Vec::new());
    for (name, data) in [
        ("site/index.html", &b"<h1>hi</h1>\n"[..]),
        ("site/a/b.txt", b"b\n"),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        tar.append_data(&mut header, name, data).unwrap();
    }
    let archive = gzip(&tar.into_inner().unwrap());

    let (status, json) = service.post(archive.clone()).await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["entries"], 2, "{json}");
    assert_eq!(json["written"], 2, "{json}");
    assert_eq!(json["bytes_written"], 14, "{json}");
    assert_eq!(json["archive_bytes"], archive.len() as u64, "{json}");
    assert_eq!(json["compression"], "gzip", "{json}");
    assert_eq!(json["not_written"], serde_json::json!([]), "{json}");

    // Complete, so renamed from `<id>.partial` to `<id>`.
    let id = json["id"].as_str().unwrap();
    assert_eq!(names(&service.base()), [id.to_string()].into());
    let dest = service.base().join(id);
    assert_eq!(
        std::fs::read(dest.join("site/index.html")).unwrap(),
        b"<h1>hi</h1>\n"
    );
    assert_eq!(std::fs::read(dest.join("site/a/b.txt")).unwrap(), b"b\n");
    service.assert_outside_untouched();
}

#[tokio::test]
async fn a_hostile_upload_stays_inside_and_lists_what_was_refused() {
    let service = Service::start(|_| {}).await;
    let outside = service.root.path().to_str().unwrap().to_string();
    let canary = format!("{outside}/canary.txt");
    // Unique, so that a write at the host's root would show.
    let absolute = format!("/sandtar-service-test-{}.txt", std::process::id());
    let mut tar = tar::Builder::new(Vec::new());
    raw_entry(&mut tar, Regular, "ok.txt", "", b"ok\n");
    raw_entry(&mut tar, Regular, "../canary.txt", "", b"pwned\n");
    raw_entry(&mut tar, Regular, &absolute, "", b"abs\n"); // leading '/' stripped
    raw_entry(&mut tar, Link, "hard", "../canary.txt", b"");
    // Symlinks out of the destination, then writes through them.
    raw_entry(&mut tar, Symlink, "up", "..", b"");
    raw_entry(&mut tar, Regular, "up/canary.txt", "", b"pwned\n");
    raw_entry(&mut tar, Symlink, "host", &outside, b"");
    raw_entry(&mut tar, Regular, "host/canary.txt", "", b"pwned\n");
    raw_entry(&mut tar, Symlink, "file", &canary, b"");
    raw_entry(&mut tar, Regular, "file", "", b"pwned\n");
    let archive = gzip(&tar.into_inner().unwrap());

    let (status, json) = service.post(archive).await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["entries"], 10, "{json}");
    let listed: Vec<(&str, &str)> = json["not_written"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["path"].as_str().unwrap(), e["outcome"].as_str().unwrap()))
        .collect();
    assert!(listed.contains(&("../canary.txt", "rejected")), "{json}");
    assert!(listed.contains(&("hard", "rejected")), "{json}");
    // Every entry not written says why in words; refusals and skips also by code.
    for e in json["not_written"].as_array().unwrap() {
        assert!(e["message"].is_string(), "{e}");
        if e["outcome"] != "failed" {
            assert!(e["reason"].is_string(), "{e}");
        }
    }
    let escape = json["not_written"].as_array().unwrap().iter();
    let escape = escape
        .clone()
        .find(|e| e["path"] == "../canary.txt")
        .unwrap();
    assert_eq!(escape["reason"], "parent-component", "{escape}");
    let rejected = json["rejected"].as_u64().unwrap();
    let not_written = json["entries"].as_u64().unwrap() - json["written"].as_u64().unwrap();
    assert_eq!(listed.len() as u64, not_written, "{json}");
    assert!(rejected >= 2, "{json}");

    let dest = service.base().join(json["id"].as_str().unwrap());
    assert_eq!(std::fs::read(dest.join("ok.txt")).unwrap(), b"ok\n");
    assert_eq!(std::fs::read(dest.join(&absolute[1..])).unwrap(), b"abs\n");
    assert!(!Path::new(&absolute).exists());
    assert_eq!(names(&service.base()).len(), 1);
    service.assert_outside_untouched();
}

#[tokio::test]
async fn a_bomb_trips_a_limit_with_413() {
    let service = Service::start(|_| {}).await;
    // One entry of 300 MiB of zeros: about 10 KiB of zstd.
    let mut header = tar::Header::new_ustar();
    header.set_path("zeros").unwrap();
    header.set_size(300 << 20);
    header.set_mode(0o644);
    header.set_cksum();
    let mut zstd = zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
    zstd.write_all(header.as_bytes()).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..300 {
        zstd.write_all(&zeros).unwrap();
    }
    zstd.write_all(&[0; 1024]).unwrap();
    let archive = zstd.finish().unwrap();
    assert!(archive.len() < 64 << 10, "{} bytes", archive.len());

    let (status, json) = service.post(archive).await;
    assert_eq!(status, 413, "{json}");
    assert_eq!(json["limit"], "max_total_size", "{json}");
    assert!(
        json["error"].as_str().unwrap().contains("max_total_size"),
        "{json}"
    );
    // The job failed: its directory keeps the `.partial` suffix.
    let left: Vec<String> = names(&service.base()).into_iter().collect();
    assert!(left.len() == 1 && left[0].ends_with(".partial"), "{left:?}");
    service.assert_outside_untouched();
}

#[tokio::test]
async fn a_body_over_the_size_limit_gets_413() {
    let service = Service::start(|config| config.max_body = 256 << 10).await;
    let mut tar = tar::Builder::new(Vec::new());
    raw_entry(&mut tar, Regular, "big", "", &noise(1 << 20, SEED));
    // Streamed (chunked), as an upload of unknown length would be.
    let (feeder, body) = stalled_body();
    let archive = tar.into_inner().unwrap();
    feeder.send(archive).await;
    feeder.finish();
    let (status, json) = service.post(body).await;
    assert_eq!(status, 413, "{json}");
    assert_eq!(json["limit"], "max_body", "{json}");
    service.assert_outside_untouched();
}

#[tokio::test]
async fn a_client_that_disconnects_half_way_stops_its_worker() {
    let service = Service::start(|_| {}).await;
    let mut tar = tar::Builder::new(Vec::new());
    raw_entry(&mut tar, Regular, "first.txt", "", b"first\n");
    raw_entry(&mut tar, Regular, "noise", "", &noise(4 << 20, SEED));
    let archive = gzip(&tar.into_inner().unwrap());

    // Send the first 256 KiB (all of first.txt, part of noise), then stall.
    let (feeder, body) = stalled_body();
    feeder.send(archive[..256 << 10].to_vec()).await;
    let url = service.url.clone();
    let request = tokio::spawn(async move { client().post(url).body(body).send().await });

    // The worker has written first.txt: it is busy with this upload.
    let first = wait_for(Duration::from_secs(10), || {
        let partial = names(&service.base()).into_iter().next()?;
        let first = service.base().join(partial).join("first.txt");
        first.exists().then_some(first)
    })
    .await
    .expect("the worker never wrote first.txt");
    let worker = busy_worker(&service.base()).expect("no busy worker found");

    // The client goes away: its connection closes mid-body.
    request.abort();
    common::assert_gone(worker, "the upload's worker").await;
    drop(feeder);

    // What it wrote stays in the partial directory, inside the base.
    assert_eq!(std::fs::read(&first).unwrap(), b"first\n");
    assert!(first.starts_with(service.base()));
    service.assert_outside_untouched();
}

#[tokio::test]
async fn a_client_that_leaves_while_its_worker_is_busy_stops_it() {
    let service = Service::start(|_| {}).await;
    // 10,000 empty files: 200 KB to send (little enough for the server to
    // read all of it at once, see examples/service.rs), seconds to extract.
    let total = 10_000;
    let mut tar = tar::Builder::new(Vec::new());
    for i in 0..total {
        let mut header = tar::Header::new_ustar();
        header.set_size(0);
        header.set_mode(0o644);
        tar.append_data(&mut header, format!("d{}/f{i}", i % 100), &[][..])
            .unwrap();
    }
    let archive = gzip(&tar.into_inner().unwrap());

    // The whole body is sent at once; then the client waits for the answer.
    let url = service.url.clone();
    let request = tokio::spawn(async move { client().post(url).body(archive).send().await });
    let worker = wait_for(Duration::from_secs(10), || busy_worker(&service.base()))
        .await
        .expect("no busy worker found");
    let partial = service
        .base()
        .join(names(&service.base()).pop_first().unwrap());
    wait_for(Duration::from_secs(10), || {
        (walk_count(&partial) >= 100).then_some(())
    })
    .await
    .expect("the worker wrote nothing");

    // The client goes away while the worker is extracting.
    request.abort();
    common::assert_gone(worker, "the upload's worker").await;

    // It stopped part way, and nothing is written any more.
    let written = walk_count(&partial);
    assert!(
        written < total,
        "the extraction finished before the client left"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(walk_count(&partial), written);
    service.assert_outside_untouched();
}

/// How many entries are below `dir`.
fn walk_count(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            1 + if path.is_dir() { walk_count(&path) } else { 0 }
        })
        .sum()
}

#[tokio::test]
async fn a_stalled_upload_times_out_and_stops_its_worker() {
    let timeout = Duration::from_millis(500);
    let service = Service::start(|config| config.timeout = timeout).await;
    let mut tar = tar::Builder::new(Vec::new());
    raw_entry(&mut tar, Regular, "noise", "", &noise(1 << 20, SEED));
    let archive = tar.into_inner().unwrap();

    let (feeder, body) = stalled_body();
    feeder.send(archive[..64 << 10].to_vec()).await;
    let started = Instant::now();
    let base = service.base();
    let watch =
        tokio::spawn(async move { wait_for(Duration::from_secs(10), || busy_worker(&base)).await });
    let (status, json) = service.post(body).await;
    assert_eq!(status, 408, "{json}");
    assert!(
        json["error"].as_str().unwrap().contains("longer than"),
        "{json}"
    );
    assert!(started.elapsed() >= timeout, "{:?}", started.elapsed());
    let worker = watch.await.unwrap().expect("no busy worker seen");
    common::assert_gone(worker, "the upload's worker").await;
    drop(feeder);
    service.assert_outside_untouched();
}

/// Polls `check` every 10 ms until it returns `Some`, for at most `limit`.
async fn wait_for<T>(limit: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(found) = check() {
            return Some(found);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The pid of the worker extracting into a directory of `base`: a child of
/// this process (workers are forked with `CLONE_PARENT`) whose command line
/// says `sandtar-zygote` and whose root directory (after `pivot_root`) is one
/// of the upload directories. Warm workers and the zygote have the host's root.
fn busy_worker(base: &Path) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let id = |m: std::fs::Metadata| (m.dev(), m.ino());
    let uploads: BTreeSet<_> = std::fs::read_dir(base)
        .ok()?
        .filter_map(|e| Some(id(e.ok()?.metadata().ok()?)))
        .collect();
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc").ok()?.find_map(|entry| {
        let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let ppid = status.lines().find_map(|l| l.strip_prefix("PPid:"))?.trim();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let root = std::fs::metadata(format!("/proc/{pid}/root")).ok()?;
        (ppid == me && cmdline.starts_with(b"sandtar-zygote") && uploads.contains(&id(root)))
            .then_some(pid)
    })
}

/// A request body fed by the test: chunks go out as they are sent, and the
/// body stays open (stalled) until the feeder is finished or dropped.
mod feeder {
    use futures_util::stream;
    use tokio::sync::mpsc;

    pub struct Feeder(mpsc::Sender<Vec<u8>>);

    impl Feeder {
        pub async fn send(&self, chunk: Vec<u8>) {
            self.0.send(chunk).await.unwrap();
        }

        /// Ends the body cleanly.
        pub fn finish(self) {}
    }

    pub fn stalled_body() -> (Feeder, reqwest::Body) {
        let (tx, rx) = mpsc::channel::<Vec<u8>>(4);
        let chunks = stream::unfold(rx, |mut rx| async move {
            let chunk = rx.recv().await?;
            Some((Ok::<_, std::io::Error>(chunk), rx))
        });
        (Feeder(tx), reqwest::Body::wrap_stream(chunks))
    }
}
