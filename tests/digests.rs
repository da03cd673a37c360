//! The digests of an archive: the blob digest the caller computes itself from
//! the bytes it reads (`Options::expected_digest`, `Summary::digest`), the
//! `diff_id` the worker computes from the tar stream, and the options that ask
//! for them, checked before any work.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::WatchedReader;
use sandtar::{DigestKind, Error, Options, Sandbox};
use sha2::{Digest, Sha256};

root_and_nobody!(blob_digest_match_and_mismatch);

/// `sha256:<lowercase hex>` of `bytes`.
fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

fn layer() -> Vec<u8> {
    common::tar_files([("a", &b"12345"[..]), ("b", &b"678"[..])])
}

/// The archive as plain tar, gzip and zstd: (name, bytes).
fn encodings() -> Vec<(&'static str, Vec<u8>)> {
    let tar = layer();
    vec![
        ("plain", tar.clone()),
        ("gzip", common::gzip(&tar)),
        ("zstd", zstd::stream::encode_all(&tar[..], 3).unwrap()),
    ]
}

/// The blob digest is that of the bytes as read, compressed or not: the right
/// one passes (also as bare hex, in capitals), a wrong one fails with the
/// caller's own digest once the entries have been applied.
async fn blob_digest_match_and_mismatch(sandbox: Sandbox) {
    for (name, bytes) in encodings() {
        let real = sha256(&bytes);
        let bare = real.strip_prefix("sha256:").unwrap();
        for given in [real.clone(), bare.to_string(), bare.to_ascii_uppercase()] {
            let scene = common::Scene::new();
            let mut options = Options::default();
            options.expected_digest = Some(given.clone());
            let run = common::run(&sandbox, &bytes, &scene.dest, &options).await;
            let summary = run.summary();
            assert_eq!(
                summary.digest.as_deref(),
                Some(real.as_str()),
                "{name} {given}"
            );
            // Only the blob digest was asked for: the worker hashed nothing.
            assert_eq!(summary.diff_id, None, "{name}");
            assert_eq!(summary.written, 2, "{name}");
            scene.check();
        }
        let scene = common::Scene::new();
        let wrong = sha256(b"another blob");
        let mut options = Options::default();
        options.expected_digest = Some(wrong.clone());
        let run = common::run(&sandbox, &bytes, &scene.dest, &options).await;
        match &run.result {
            Err(Error::DigestMismatch {
                kind: DigestKind::Blob,
                expected,
                actual,
            }) => {
                assert_eq!((expected, actual), (&wrong, &real), "{name}");
            }
            other => panic!("{name}: expected DigestMismatch (Blob), got {other:?}"),
        }
        // Known only at the end: the entries were applied.
        common::assert_file(scene.dest.join("a"), b"12345", 0o644);
        scene.check();
    }
}

/// `Options::digest`: `Summary::digest` is the SHA-256 of the bytes read (the
/// compressed ones), `Summary::diff_id` that of the tar stream; without it,
/// neither is computed. `apply_layer` computes both.
#[tokio::test]
async fn summary_digest_is_the_sha256_of_the_input() {
    let sandbox = common::sandbox().await;
    let tar = layer();
    for (name, bytes) in encodings() {
        let dest = tempfile::tempdir().unwrap();
        let mut options = Options::default();
        options.digest = true;
        let summary = sandbox
            .extract(&bytes[..], dest.path(), &options)
            .await
            .unwrap();
        assert_eq!(summary.digest, Some(sha256(&bytes)), "{name}");
        assert_eq!(summary.diff_id, Some(sha256(&tar)), "{name}");
        assert_eq!(summary.archive_bytes, bytes.len() as u64, "{name}");

        let dest = tempfile::tempdir().unwrap();
        let summary = sandbox
            .extract(&bytes[..], dest.path(), &Options::default())
            .await
            .unwrap();
        assert_eq!((summary.digest, summary.diff_id), (None, None), "{name}");

        let dest = tempfile::tempdir().unwrap();
        let summary = sandbox
            .apply_layer(&bytes[..], dest.path(), &Options::layer())
            .await
            .unwrap();
        assert_eq!(summary.digest, Some(sha256(&bytes)), "{name}");
        assert_eq!(summary.diff_id, Some(sha256(&tar)), "{name}");
    }
}

/// Both digests can be expected at once: each is checked, the blob first.
#[tokio::test]
async fn both_digests_expected() {
    let sandbox = common::sandbox().await;
    let tar = layer();
    let gz = common::gzip(&tar);
    let mut options = Options::layer();
    options.expected_digest = Some(sha256(&gz));
    // Bare hex is accepted for the diff_id too.
    options.expected_diff_id = Some(sha256(&tar).replace("sha256:", ""));
    let dest = tempfile::tempdir().unwrap();
    let summary = sandbox
        .apply_layer(&gz[..], dest.path(), &options)
        .await
        .unwrap();
    assert_eq!(summary.digest, Some(sha256(&gz)));
    assert_eq!(summary.diff_id, Some(sha256(&tar)));

    // The right blob with a wrong diff_id: the worker's digest is refused.
    options.expected_diff_id = Some(sha256(b"not this layer"));
    let dest = tempfile::tempdir().unwrap();
    let result = sandbox.apply_layer(&gz[..], dest.path(), &options).await;
    assert!(
        matches!(
            &result,
            Err(Error::DigestMismatch { kind: DigestKind::DiffId, actual, .. }) if *actual == sha256(&tar)
        ),
        "{result:?}"
    );
    // Both wrong: the caller's own digest is the one reported.
    options.expected_digest = Some(sha256(b"not this blob"));
    let dest = tempfile::tempdir().unwrap();
    let result = sandbox.apply_layer(&gz[..], dest.path(), &options).await;
    assert!(
        matches!(
            &result,
            Err(Error::DigestMismatch { kind: DigestKind::Blob, actual, .. }) if *actual == sha256(&gz)
        ),
        "{result:?}"
    );
}

/// A digest option that is not a SHA-256 digest is refused before anything
/// happens: before the destination is looked at (this one does not exist),
/// before a byte is read. The message names the option, not the value.
#[tokio::test]
async fn a_malformed_expected_digest_fails_before_any_work() {
    let sandbox = common::sandbox().await;
    let missing = tempfile::tempdir().unwrap().path().join("does-not-exist");
    let hex = "ab".repeat(32);
    let malformed = [
        "sha256:".to_string(),
        "sha256:1234".to_string(),
        format!("sha512:{hex}"),
        format!("sha256:{hex}00"),
        format!("sha256:{}zz", &hex[2..]),
        "latest\u{1b}[31m".to_string(),
    ];
    for (option, value) in malformed
        .iter()
        .flat_map(|v| [("expected_digest", v), ("expected_diff_id", v)])
    {
        let mut options = Options::default();
        match option {
            "expected_digest" => options.expected_digest = Some(value.clone()),
            _ => options.expected_diff_id = Some(value.clone()),
        }
        let polls = Arc::new(AtomicUsize::new(0));
        let result = sandbox
            .start(WatchedReader(polls.clone()), &missing, &options)
            .await;
        assert_eq!(polls.load(Ordering::SeqCst), 0, "the archive was read");
        match result {
            Err(e @ Error::InvalidOption { option: o, .. }) => {
                assert_eq!(o, option);
                let text = e.to_string();
                assert!(text.contains(option), "{text}");
                assert!(!text.contains('\u{1b}') && !text.contains("1234"), "{text}");
            }
            other => panic!("{option} = {value:?}: got {:?}", other.map(|_| ())),
        }
    }
    // The sandbox is unharmed.
    let dest = tempfile::tempdir().unwrap();
    let summary = sandbox
        .extract(&layer()[..], dest.path(), &Options::default())
        .await
        .unwrap();
    assert_eq!(summary.written, 2);
}
